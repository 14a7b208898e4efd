"""The public yardstick: the Autobahn Testsuite's fuzzingclient against wsocket's server.

wstest (Python 2.7, installed by README's test command, ./test.sh, with
autobahn/install.sh into .autobahn/venv) connects to an echo app served by ``python -m wsocket`` and
judges every case; a case passes as OK, NON-STRICT or INFORMATIONAL with a
clean closing. Groups 12 and 13 (permessage-deflate) are run with messages
up to 8 KiB here; ``python autobahn/run.py`` runs every case (see docs/reliability.md).

The same echo runs under uWSGI too (``--http-socket --threads``), with
groups 1 to 7 and 10 in full and a sample of 9, 12 and 13 on every test run;
``WSOCKET_AUTOBAHN_ALL=1`` runs all 517 cases through uWSGI (about 45 minutes
on a busy 2-core machine; groups 12 and 13 take most of it).
"""

import importlib.util
import os
from pathlib import Path

import pytest

from tests.serverproc import start_server, uwsgi

ROOT = Path(__file__).resolve().parent.parent


def _load_runner():
    spec = importlib.util.spec_from_file_location("autobahn_run", ROOT / "autobahn" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


runner = _load_runner()


@pytest.fixture(scope="module")
def wstest_installed():
    """wstest, as ./test.sh installed it; a test never installs anything itself."""
    wstest = Path(runner.VENV) / "bin" / "wstest"
    if wstest.exists():
        return wstest
    unavailable = Path(runner.UNAVAILABLE)
    if unavailable.exists():  # no Python 2.7 could be had: install.sh said why
        pytest.skip(unavailable.read_text().strip())
    pytest.fail("%s is missing: run ./test.sh (README's test command), which installs it "
                "with autobahn/install.sh" % wstest)


def _serve(wsocket_process_module, app):
    """``python -m wsocket app`` for one module of tests: (its ws:// URL, the server)."""
    server = wsocket_process_module(app, "--port", "0", "--log-level", "warning")
    yield server.ws_url.rstrip("/"), server
    assert server.terminate() == 0
    assert "Traceback" not in server.stderr(), server.stderr()


@pytest.fixture(scope="module")
def echo_server(wstest_installed, wsocket_process_module):
    yield from _serve(wsocket_process_module, "tests.apps:echo_unlimited")


# Case groups, each run in its own wstest session so a failure names its group.
GROUPS = {
    "1 framing": ["1.*"],
    "2 ping/pong": ["2.*"],
    "3 reserved bits": ["3.*"],
    "4 opcodes": ["4.*"],
    "5 fragmentation": ["5.*"],
    "6 UTF-8": ["6.*"],
    "7 close": ["7.*"],
    "9 limits and speed": ["9.*"],
    "10 auto-fragmentation": ["10.*"],
    # 12.x.1-6 and 13.x.1-6 send 1,000 messages of 16 B to 8 KiB each.
    "12 permessage-deflate": ["12.%d.%d" % (group, case)
                              for group in range(1, 6) for case in range(1, 7)],
    "13 permessage-deflate parameters": ["13.%d.%d" % (group, case)
                                         for group in range(1, 8) for case in range(1, 7)],
}


@pytest.mark.timeout(900)
@pytest.mark.parametrize("group", list(GROUPS))
def test_autobahn_group(group, echo_server, tmp_path):
    url, _ = echo_server
    results = runner.run_fuzzingclient(url, GROUPS[group], report_dir=str(tmp_path),
                                       timeout=840)
    assert results, "wstest ran no case"
    failures = {case: results[case] for case in runner.bad_cases(results)}
    assert not failures, "cases not passed (behavior, behaviorClose): %s" % failures


# Samples of the long groups, for the runs below (the event app, uWSGI).
SAMPLED_GROUPS = {
    # 9.x.1-3: messages and frames of 64 KiB to 1 MiB, text and binary, in one go
    # and in chunks (9.x.4-6, up to 16 MiB, and the 9.7/9.8 speed rounds are the long ones).
    "9 limits and speed": ["9.%d.%d" % (group, case) for group in range(1, 7)
                           for case in range(1, 4)],
    "12 permessage-deflate": ["12.%d.%d" % (group, case)
                              for group in range(1, 6) for case in (1, 5)],
    "13 permessage-deflate parameters": ["13.%d.%d" % (group, case)
                                         for group in range(1, 8) for case in (1, 5)],
}


# -- the event app ---------------------------------------------------------------------
# Its messages take their own way in (the reactor's turn: one read, the
# messages as they are, see Connection.receive_messages); the same groups as
# through uWSGI (below), every case of the short ones and samples of the long.

@pytest.fixture(scope="module")
def events_echo_server(wstest_installed, wsocket_process_module):
    yield from _serve(wsocket_process_module, "tests.apps:events_echo_unlimited")


@pytest.mark.timeout(900)
@pytest.mark.parametrize("group", list(GROUPS))
def test_autobahn_group_on_the_event_app(group, events_echo_server, tmp_path):
    url, _ = events_echo_server
    cases = SAMPLED_GROUPS.get(group, GROUPS[group])
    results = runner.run_fuzzingclient(url, cases, report_dir=str(tmp_path), timeout=840)
    assert results, "wstest ran no case"
    failures = {case: results[case] for case in runner.bad_cases(results)}
    assert not failures, "cases not passed (behavior, behaviorClose): %s" % failures


# -- through uWSGI --------------------------------------------------------------------

# Groups 1-7 and 10 in full, as on wsocket's own server; samples of the long ones.
UWSGI_GROUPS = {name + (" (sample)" if name in SAMPLED_GROUPS else ""):
                SAMPLED_GROUPS.get(name, cases) for name, cases in GROUPS.items()}
ALL_GROUPS = {
    "1-7, 9, 10, 12, 13: every case": ["*"],
}


@pytest.fixture(scope="module")
def uwsgi_echo_server(wstest_installed, tmp_path_factory):
    server = start_server("uwsgi", uwsgi("--http-socket", "127.0.0.1:{port}", "--threads", "8",
                                         module="tests.apps:echo_unlimited"),
                          tmp_path_factory.mktemp("uwsgi-autobahn") / "stderr.txt")
    yield server
    server.stop()
    assert "Traceback" not in server.stderr(), server.stderr()[-4000:]


@pytest.mark.timeout(3600)
@pytest.mark.parametrize("group", list(
    ALL_GROUPS if os.environ.get("WSOCKET_AUTOBAHN_ALL") else UWSGI_GROUPS))
def test_autobahn_group_through_uwsgi(group, uwsgi_echo_server, tmp_path):
    cases = ALL_GROUPS.get(group) or UWSGI_GROUPS[group]
    results = runner.run_fuzzingclient(uwsgi_echo_server.ws_url, cases,
                                       report_dir=str(tmp_path), timeout=3540)
    assert results, "wstest ran no case"
    failures = {case: results[case] for case in runner.bad_cases(results)}
    assert not failures, "cases not passed (behavior, behaviorClose): %s" % failures
