"""The public yardstick: the Autobahn Testsuite's fuzzingclient against wsocket's server.

wstest (Python 2.7, installed by README's test command, ./test.sh, with
autobahn/install.sh into .autobahn/venv) connects to an echo app served by ``python -m wsocket`` and
judges every case; a case passes as OK, NON-STRICT or INFORMATIONAL with a
clean closing. Groups 12 and 13 (permessage-deflate) are run with messages
up to 8 KiB here; ``python autobahn/run.py`` runs every case (see README).
"""

import importlib.util
from pathlib import Path

import pytest

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


@pytest.fixture(scope="module")
def echo_server(wstest_installed, wsocket_process_module):
    server = wsocket_process_module("tests.apps:echo_unlimited", "--port", "0",
                                    "--log-level", "warning")
    yield server.ws_url.rstrip("/"), server
    assert server.terminate() == 0
    assert "Traceback" not in server.stderr(), server.stderr()


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
