"""Servers that cannot hand their socket over: a clear error at the first upgrade.

The client gets a 501 that says why (never a hang or a half-open socket),
the server's log gets a line naming the server and what to use instead,
and plain HTTP on the same server goes on working.
"""

import pytest

from tests.netutil import ROOT, Reader, open_connection, request, upgrade_request
from tests.serverproc import python, start_server, uwsgi

TIMEOUT = 20.0

# (name, command line, folder, what the log line and the 501 must say)
UNSUPPORTED = [
    ("waitress", python("-m", "waitress", "--listen=127.0.0.1:{port}", "tests.matrix_app:app"),
     ROOT, ["waitress cannot hand its socket over", "gunicorn (-k gthread"]),
    ("wsgiref", python("-m", "tests.serve", "wsgiref", "{port}"),
     ROOT, ["wsgiref cannot hand its socket over", "wsocket.make_server()"]),
    ("django-runserver", python("manage.py", "runserver", "--noreload", "127.0.0.1:{port}"),
     ROOT / "examples" / "django_echo",
     ["Django's runserver cannot hand its socket over",
      "wsocket mysite.wsgi:application"]),
    ("gunicorn-sync", python("-m", "gunicorn", "-k", "sync", "-b", "127.0.0.1:{port}",
                             "tests.matrix_app:app"),
     ROOT, ["gunicorn's sync worker cannot hand its socket over",
            "--timeout", "gunicorn -k gthread --threads 100"]),
    ("werkzeug-unthreaded", python("-m", "tests.serve", "werkzeug_unthreaded", "{port}"),
     ROOT, ["werkzeug's development server runs without threads", "threaded=True"]),
    ("uwsgi-one-process", uwsgi("--http-socket", "127.0.0.1:{port}"),
     ROOT, ["uWSGI runs one process with one thread here", "--threads 100"]),
    ("uwsgi-async", uwsgi("--http-socket", "127.0.0.1:{port}", "--async", "10", "--ugreen"),
     ROOT, ["uWSGI's --async mode switches between requests", "Use --gevent N"]),
    ("uwsgi-http-router", uwsgi("--http", "127.0.0.1:{port}", "--threads", "4"),
     ROOT, ["uWSGI's --http router sits between the client",
            "Add --http-websockets", "uwsgi --http-socket 127.0.0.1:8000"]),
]


@pytest.fixture(params=UNSUPPORTED, ids=[entry[0] for entry in UNSUPPORTED])
def unsupported(request, tmp_path):
    name, command, folder, phrases = request.param
    server = start_server(name, command, tmp_path / "stderr.txt", cwd=folder,
                          env={"HOME": str(tmp_path)})
    server.phrases = phrases
    yield server
    server.stop()


def exchange(server, data, path="/ws"):
    sock = open_connection("127.0.0.1", server.port, TIMEOUT)
    with sock:
        sock.sendall(data)
        return Reader(sock).read_response()


def test_upgrade_gets_a_clear_error_and_the_log_says_what_to_use(unsupported):
    host = "127.0.0.1:%d" % unsupported.port
    response = exchange(unsupported, upgrade_request("/ws", host=host))
    assert response.status == 501, response
    body = response.body.decode()
    assert "WebSocket upgrade refused" in body
    for phrase in unsupported.phrases:
        assert phrase in body
    log = unsupported.stderr()
    assert "Traceback" not in log
    logged = [line for line in log.splitlines() if "WebSocket upgrade refused" in line]
    assert logged, log
    for phrase in unsupported.phrases:
        assert phrase in logged[0]
    # The server goes on serving plain HTTP.
    plain = exchange(unsupported, request("GET", "/", [("Connection", "close")], host=host))
    assert plain.status == 200
