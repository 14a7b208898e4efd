"""Details of taking connections over that the server matrix does not show.

In-process servers here (werkzeug's, wsocket's), a real framework (Flask)
and the ``websockets`` client.
"""

import logging
import threading
import time

import pytest
from flask import Flask, request
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from werkzeug.serving import make_server

from tests.netutil import TEXT, Reader, client_frame, close_frame, open_connection, upgrade_request
from tests.serverproc import assert_clean_end, python, recording_socket, start_server
from wsocket import WSocketApp
from wsocket.adapters import _same_address, request_http_version

TIMEOUT = 10.0


@pytest.fixture
def werkzeug_serve():
    servers = []

    def start(app):
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                  daemon=True)
        thread.start()
        servers.append((server, thread))
        return server

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)


def flask_app():
    app = Flask(__name__)
    app.wsgi_app = WSocketApp(app.wsgi_app)

    @app.route("/forgot")  # no websocket=True: werkzeug's router answers 400
    def forgot():
        request.environ["wsgi.websocket"].send("never sent")
        return ""

    @app.route("/ws", websocket=True)
    def echo():
        websocket = request.environ["wsgi.websocket"]
        for message in websocket:
            websocket.send(message)
        return ""

    return app


def test_a_route_that_refuses_the_websocket_is_named_in_a_warning(werkzeug_serve, caplog):
    """The router's 400 reaches the client, and the log says why."""
    server = werkzeug_serve(flask_app())
    caplog.set_level(logging.WARNING, logger="wsocket")
    with pytest.raises(InvalidStatus) as refused:
        connect("ws://127.0.0.1:%d/forgot" % server.port, open_timeout=TIMEOUT)
    assert refused.value.response.status_code == 400
    warnings = [record.getMessage() for record in caplog.records if record.name == "wsocket"]
    assert len(warnings) == 1, warnings
    assert "/forgot" in warnings[0] and "400" in warnings[0]
    assert "websocket=True" in warnings[0]


def test_a_flask_view_that_returns_nothing_is_named_in_the_warning(werkzeug_serve, caplog):
    """Flask's 500 after the WebSocket is dropped, and the warning names the real cause."""
    app = flask_app()

    @app.route("/none", websocket=True)
    def returns_none():
        websocket = request.environ["wsgi.websocket"]
        for message in websocket:
            websocket.send(message)

    server = werkzeug_serve(app)
    caplog.set_level(logging.WARNING, logger="wsocket")
    with connect("ws://127.0.0.1:%d/none" % server.port, open_timeout=TIMEOUT) as connection:
        connection.send("hello")
        assert connection.recv(timeout=TIMEOUT) == "hello"
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and not [
            record for record in caplog.records if record.name == "wsocket"]:
        time.sleep(0.05)
    warnings = [record.getMessage() for record in caplog.records if record.name == "wsocket"]
    assert len(warnings) == 1, warnings
    assert "/none" in warnings[0] and "500" in warnings[0]
    assert "returned no valid response" in warnings[0]
    assert "websocket=True" not in warnings[0]


def test_a_websocket_route_logs_nothing(werkzeug_serve, caplog):
    server = werkzeug_serve(flask_app())
    caplog.set_level(logging.DEBUG, logger="wsocket")
    with connect("ws://127.0.0.1:%d/ws" % server.port, open_timeout=TIMEOUT) as connection:
        connection.send("hello")
        assert connection.recv(timeout=TIMEOUT) == "hello"
    assert not [record for record in caplog.records
                if record.name == "wsocket" and record.levelno >= logging.WARNING]


def test_eventlet_says_http_1_0_for_every_request_so_its_version_is_not_trusted():
    assert request_http_version({"SERVER_PROTOCOL": "HTTP/1.0"}) == "HTTP/1.0"
    assert request_http_version({"SERVER_PROTOCOL": "HTTP/1.0", "eventlet.input": object()}) \
        == "HTTP/1.1"


def test_gevent_behind_a_middleware_that_wraps_start_response(tmp_path):
    """pywsgi's handler is then out of sight: the socket is found through wsgi.input."""
    server = start_server("gevent", python("-m", "tests.serve", "gevent", "{port}",
                                           "tests.matrix_app:wrapped"), tmp_path / "stderr.txt")
    try:
        sock = recording_socket(server.port)
        with connect(server.ws_url + "/", sock=sock, open_timeout=TIMEOUT) as connection:
            connection.send("through the wrapper")
            assert connection.recv(timeout=TIMEOUT) == "through the wrapper"
            assert_clean_end(connection, sock)
        raw = open_connection("127.0.0.1", server.port, TIMEOUT)
        with raw:
            raw.sendall(upgrade_request("/", host="127.0.0.1:%d" % server.port)
                        + client_frame(TEXT, "early"))
            reader = Reader(raw)
            assert reader.read_response().status == 101
            assert reader.read_frame() == (True, TEXT, b"early")
            raw.sendall(close_frame(1000))
            assert reader.read_frame() == (True, 0x8, b"\x03\xe8")
            assert reader.read_to_eof() == b""
    finally:
        server.stop()
    server.assert_no_errors()


@pytest.mark.parametrize("worker", ["gthread", "gevent"])
def test_gunicorn_timeout_does_not_cut_a_long_websocket(tmp_path, worker):
    """--timeout is the worker's heartbeat with these workers, not a limit on a request.

    --preload imports the app in the master, before the fork: a worker that
    imported it itself could miss its first heartbeat on a busy machine
    (WORKER TIMEOUT right after boot), which is not what this test is about.
    """
    server = start_server("gunicorn", python("-m", "gunicorn", "-k", worker, "--timeout", "1",
                                             "--preload", "-b", "127.0.0.1:{port}",
                                             "tests.matrix_app:app"),
                          tmp_path / "stderr.txt", env={"HOME": str(tmp_path)})
    try:
        sock = recording_socket(server.port)
        with connect(server.ws_url + "/", sock=sock, open_timeout=TIMEOUT) as connection:
            started = time.monotonic()
            while time.monotonic() - started < 3.0:  # three times the timeout
                time.sleep(0.5)
                connection.send("still here")
                assert connection.recv(timeout=TIMEOUT) == "still here"
            assert_clean_end(connection, sock)
    finally:
        server.stop()
    server.assert_no_errors()


@pytest.mark.parametrize("declared, local, same", [
    ("127.0.0.1:8000", ("127.0.0.1", 8000), True),
    ("127.0.0.1:8000", ("127.0.0.1", 8001), False),
    (":8000", ("10.1.2.3", 8000), True),
    ("0.0.0.0:8000", ("10.1.2.3", 8000), True),
    ("localhost:8000", ("127.0.0.1", 8000), True),
    ("10.9.9.9:8000", ("127.0.0.1", 8000), False),
    ("[::1]:8000", ("::1", 8000, 0, 0), True),
    ("/run/app.sock", "/run/app.sock", True),
    ("/run/app.sock", "/run/other.sock", False),
    ("@app", "\0app", True),
    ("/run/app.sock", ("127.0.0.1", 8000), False),
])
def test_uwsgi_socket_addresses_are_matched_to_the_connection(declared, local, same):
    """Which of uWSGI's listening sockets took a connection (its options name them so)."""
    assert _same_address(declared, local) is same
