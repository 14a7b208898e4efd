"""Under gunicorn, wsocket's records go to gunicorn's error log (time, pid, level).

Unless the app configured logging itself: then its configuration wins.
"""

import re
import socket
import time

from tests.netutil import Reader, upgrade_request
from tests.serverproc import python, start_server

TIMEOUT = 15.0

APP = """
from wsocket import WSocketApp

def plain(environ, start_response):
    websocket = environ.get("wsgi.websocket")
    if websocket is not None:  # accepting is what gunicorn's sync worker cannot do
        for message in websocket:
            websocket.send(message)
        return []
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"plain"]

app = WSocketApp(plain)
"""

# gunicorn's error log format: [2026-12-02 07:53:01 +0000] [1234] [ERROR] message
GUNICORN_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[\d+\] \[ERROR\] "
                           r"WebSocket upgrade refused: gunicorn's sync worker", re.MULTILINE)


def _refused_upgrade(server):
    """An upgrade request to gunicorn's sync worker: wsocket answers 501 and logs an error."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        sock.sendall(upgrade_request("/", host="127.0.0.1:%d" % server.port))
        assert Reader(sock).read_response().status == 501


def _gunicorn(tmp_path, source):
    (tmp_path / "logged.py").write_text(source)
    return start_server("gunicorn", python("-m", "gunicorn", "-k", "sync", "-b",
                                           "127.0.0.1:{port}", "logged:app"),
                        tmp_path / "stderr.txt", cwd=tmp_path, env={"HOME": str(tmp_path)})


def _stderr_once_logged(server, text):
    deadline = time.monotonic() + TIMEOUT
    while text not in server.stderr() and time.monotonic() < deadline:
        time.sleep(0.1)
    return server.stderr()


def test_wsocket_logs_through_gunicorns_error_log(tmp_path):
    with _gunicorn(tmp_path, APP) as server:
        _refused_upgrade(server)
        stderr = _stderr_once_logged(server, "WebSocket upgrade refused")
    assert GUNICORN_LINE.search(stderr), stderr
    # once, not also bare through Python's last resort
    assert stderr.count("WebSocket upgrade refused") == 1, stderr


def test_the_apps_own_logging_configuration_wins(tmp_path):
    configured = "import logging\nlogging.basicConfig(format='MINE %(levelname)s %(message)s')\n"
    with _gunicorn(tmp_path, configured + APP) as server:
        _refused_upgrade(server)
        stderr = _stderr_once_logged(server, "WebSocket upgrade refused")
    assert "MINE ERROR WebSocket upgrade refused: gunicorn's sync worker" in stderr, stderr
    assert not GUNICORN_LINE.search(stderr), stderr
