"""The fixtures stop what they started, whatever fails.

conftest.py tags every process of a test session and fails the session
when one is still running at its end; these tests show that the check
sees a leak and that a fixture failing half-way leaves none.
"""

import os
import subprocess
import sys
import time
import uuid

from tests.netutil import ROOT
from tests.serverproc import processes_tagged, start_server, stop_process

RUN_TIMEOUT = 240


def test_stopping_a_server_ends_its_whole_process_group(tmp_path):
    """A server started in a session of its own: its children go with it."""
    marker = "WSOCKET_GROUP_PROBE"
    tag = uuid.uuid4().hex
    process = subprocess.Popen(
        ["sh", "-c", "sleep 300 & sleep 300 & wait"], start_new_session=True,
        env=dict(os.environ, **{marker: tag}))
    try:
        assert len(_wait_for(lambda: processes_tagged(marker, tag), 3)) == 3
    finally:
        stop_process(process, timeout=5)
    assert _wait_for(lambda: not processes_tagged(marker, tag), 0) is True


def _wait_for(check, count_or_true, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        done = value is True if count_or_true == 0 else len(value) >= count_or_true
        if done or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def _pytest(tmp_path, *args, env=None):
    """A nested pytest run; its processes carry WSOCKET_LEAK_PROBE=<tag>."""
    tag = uuid.uuid4().hex
    environment = dict(os.environ, WSOCKET_LEAK_PROBE=tag, **(env or {}))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp",
         str(tmp_path / "nested"), *args],
        cwd=str(ROOT), env=environment, stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=RUN_TIMEOUT)
    return done, tag


def test_nginx_missing_leaves_no_gunicorn(tmp_path):
    done, tag = _pytest(tmp_path, "tests/test_nginx.py::test_plain_http_through_nginx",
                        env={"WSOCKET_TEST_NGINX": str(tmp_path / "no-nginx-here")})
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "nginx is missing" in output, output[-3000:]
    assert "leaked processes" not in output, output[-3000:]
    assert processes_tagged("WSOCKET_LEAK_PROBE", tag) == []


def test_the_session_check_reports_a_leak(tmp_path):
    test_file = tmp_path / "test_leaky.py"
    test_file.write_text(
        "import subprocess\n"
        "def test_forgets_its_process():\n"
        "    subprocess.Popen(['sleep', '300'])\n")
    # the test lives outside tests/, so it gets the project's conftest as a plugin
    done, tag = _pytest(tmp_path, "-p", "tests.conftest", str(test_file))
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "leaked processes, still running after the tests (now killed):" in output, output
    assert "sleep 300" in output
    assert processes_tagged("WSOCKET_LEAK_PROBE", tag) == []
