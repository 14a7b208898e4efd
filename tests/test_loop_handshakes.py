"""The event app's connections from their first byte in the server's epoll loop.

``WSocketApp()`` with events (or the demo) on wsocket's own server: the
reactor's loop accepts, reads each request head as it arrives and answers
WebSocket upgrades itself (handshake, ``onrequest``, ``onconnect``), with no
thread per connection. What may block gets a thread first: a route, a plain
HTTP request, a wrapped WSGI app. And what blocks anyway (a slow
``onconnect``) holds up only its own connection. The limits of the request
head (time, size, idle keep-alive) hold there as in a connection's thread.
"""

import gc
import logging
import threading
import time
import weakref

import pytest
from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import connect

from tests import apps
from tests.netutil import (
    TEXT, TIMEOUT, Reader, client_frame, close_frame, open_connection, request, upgrade,
    upgrade_request, wait_for, wait_for_eof,
)
from wsocket import WSocketApp
from wsocket.reactor import available

pytestmark = pytest.mark.skipif(not available(), reason="no select.epoll here")


def _echo_app(**options):
    app = WSocketApp(**options)
    app.onmessage += lambda message, client: client.send("echo: %s" % message)
    return app


def _worker_threads():
    return [thread for thread in threading.enumerate() if thread.name.startswith("wsocket-worker")]


def _open(server, count, path="/"):
    clients = []
    for _ in range(count):
        sock, reader, _ = upgrade("127.0.0.1", server.server_port, path)
        clients.append((sock, reader))
    return clients


def _echo_round(clients, text):
    for sock, _ in clients:
        sock.sendall(client_frame(TEXT, text))
    for _, reader in clients:
        assert reader.read_frame() == (True, TEXT, b"echo: " + text.encode())


def _goodbye(clients):
    for sock, reader in clients:
        sock.sendall(close_frame(1000))
        assert reader.read_frame()[1] == 0x8
        sock.close()


def test_the_loop_accepts_and_answers_the_event_apps_handshakes(serve):
    server = serve(_echo_app())
    wait_for(lambda: server.accepts_in_loop, what="the loop to accept")
    before = len(_worker_threads())
    clients = _open(server, 60)
    # One thread (the loop's) took all 60: no thread was started per connection.
    assert len(_worker_threads()) <= before + 2
    _echo_round(clients, "hello")
    _goodbye(clients)


def test_a_wrapped_wsgi_app_keeps_a_thread_per_connection(serve):
    server = serve(WSocketApp(apps.echo))
    clients = _open(server, 3)
    assert server.accepts_in_loop is False
    for sock, reader in clients:
        sock.sendall(client_frame(TEXT, "hi"))
        assert reader.read_frame() == (True, TEXT, b"hi")
    _goodbye(clients)


@pytest.mark.parametrize("hook", ["onrequest", "onconnect"])
def test_a_hook_that_blocks_holds_up_only_its_own_handshake(serve, hook):
    release = threading.Event()
    blocking = threading.Event()
    returned = threading.Event()
    app = _echo_app()

    def slow(client):
        if client.path == "/slow":
            blocking.set()
            release.wait(TIMEOUT * 3)
            returned.set()

    if hook == "onrequest":
        app.onrequest = slow
    else:
        app.onconnect += slow
    server = serve(app)
    slow_sock = open_connection("127.0.0.1", server.server_port)
    slow_sock.sendall(upgrade_request("/slow"))
    assert blocking.wait(TIMEOUT)
    others = _open(server, 20)  # handshakes, then echoes, while the slow hook still blocks
    _echo_round(others, "meanwhile")
    assert not returned.is_set()
    release.set()
    slow_reader = Reader(slow_sock)
    assert slow_reader.read_response().status_line == "HTTP/1.1 101 Switching Protocols"
    _echo_round([(slow_sock, slow_reader), *others], "after")
    _goodbye([(slow_sock, slow_reader), *others])


def test_messages_that_come_with_the_upgrade_are_answered_before_a_handler_blocks(serve):
    release = threading.Event()
    app = WSocketApp()

    def onmessage(message, client):
        if message == "block":
            client.send("blocked")
            release.wait(TIMEOUT * 3)
        client.send("echo: %s" % message)

    app.onmessage = onmessage
    server = serve(app)
    # One write: the request and three messages, handled in the handshake's own turn.
    frames = client_frame(TEXT, "one") + client_frame(TEXT, "block") + client_frame(TEXT, "two")
    sock, reader, _ = upgrade("127.0.0.1", server.server_port, extra=frames)
    try:
        assert reader.read_frame() == (True, TEXT, b"echo: one")
        assert reader.read_frame() == (True, TEXT, b"blocked")  # while the handler blocks
        others = _open(server, 5)
        _echo_round(others, "meanwhile")
    finally:
        release.set()
    assert reader.read_frame() == (True, TEXT, b"echo: block")
    assert reader.read_frame() == (True, TEXT, b"echo: two")
    _goodbye([(sock, reader), *others])


def test_a_route_gets_a_thread_and_the_loop_goes_on(serve):
    app = _echo_app()
    entered = threading.Event()

    @app.route("/loop")
    def wsgi_loop(environ, start_response):
        websocket = environ["wsgi.websocket"]
        entered.set()
        while True:
            message = websocket.receive()
            if message is None:
                return []
            websocket.send("route: %s" % message)

    @app.route("/page")
    def page(environ, start_response):
        return "page %s" % environ["QUERY_STRING"]

    server = serve(app)
    route_sock, route_reader, _ = upgrade("127.0.0.1", server.server_port, "/loop")
    assert entered.wait(TIMEOUT)
    others = _open(server, 10)  # the route's loop blocks its thread, not the server's
    _echo_round(others, "events")
    route_sock.sendall(client_frame(TEXT, "x"))
    assert route_reader.read_frame() == (True, TEXT, b"route: x")
    # Plain HTTP, two requests on one connection (keep-alive, in the thread it got).
    sock = open_connection("127.0.0.1", server.server_port)
    with sock:
        reader = Reader(sock)
        for number in (1, 2):
            sock.sendall(request("GET", "/page?%d" % number))
            assert reader.read_response().body == b"page %d" % number
    _goodbye([(route_sock, route_reader), *others])


def test_a_handler_class_with_its_own_handle_keeps_a_thread_per_connection(serve):
    from wsocket.server import WebSocketHandler

    handled = []

    class CountingHandler(WebSocketHandler):
        def handle(self, first=True):
            handled.append(threading.current_thread().name)
            super().handle(first)

    server = serve(_echo_app(), handler_class=CountingHandler)
    clients = _open(server, 3)
    _echo_round(clients, "counted")
    assert server.accepts_in_loop is False
    assert len(handled) == 3
    _goodbye(clients)


def test_an_open_websocket_keeps_nothing_of_its_request_handler(serve):
    # A WebSocket keeps its environ while it is open. Anything of the
    # request's handler reached from there would stay alive as long, and be
    # walked by every full garbage collection: with thousands of connections
    # a good part of what opening each costs. It must go with the handshake,
    # by reference counting alone (the collector is off meanwhile).
    from wsocket.server import WebSocketHandler

    handlers = []

    class TrackedHandler(WebSocketHandler):
        def make_environ(self, head):
            handlers.append(weakref.ref(self))
            return super().make_environ(head)

    opened = []
    app = _echo_app()
    app.onconnect += opened.append
    collecting = gc.isenabled()
    gc.disable()
    try:
        server = serve(app, handler_class=TrackedHandler)
        clients = _open(server, 3)
        _echo_round(clients, "open")
        assert server.accepts_in_loop
        assert len(handlers) == 3
        wait_for(lambda: all(handler() is None for handler in handlers),
                 what="the request handlers to be freed")
        # What the environ still has of the server is spent, and says so.
        environ = opened[0].environ
        for key in ("wsocket.takeover", "wsocket.detach"):
            with pytest.raises(RuntimeError, match="called already"):
                environ[key]()
        assert environ["wsgi.input"].read() == b""
        _echo_round(clients, "still open")
        _goodbye(clients)
    finally:
        if collecting:
            gc.enable()


def test_a_refused_upgrade_is_answered_from_the_loop_and_the_connection_closed(serve):
    app = _echo_app()
    app.onrequest = lambda client: 401 if client.path == "/private" else None
    server = serve(app)
    sock = open_connection("127.0.0.1", server.server_port)
    with sock:
        reader = Reader(sock)
        sock.sendall(upgrade_request("/private"))
        refused = reader.read_response()
        assert refused.status_line == "HTTP/1.1 401 Unauthorized"
        assert refused.header("Connection") == "close"
        assert refused.body == b"401 Unauthorized\n"
        _, rest = wait_for_eof(reader, TIMEOUT)
        assert rest == b""
    clients = _open(server, 2)
    _echo_round(clients, "still")
    _goodbye(clients)


def test_a_request_head_in_pieces_is_put_together_by_the_loop(serve):
    server = serve(_echo_app())
    sock = open_connection("127.0.0.1", server.server_port)
    head = upgrade_request("/")
    with sock:
        for start in range(0, len(head), 40):
            sock.sendall(head[start:start + 40])
            time.sleep(0.05)
        reader = Reader(sock)
        assert reader.read_response().status_line == "HTTP/1.1 101 Switching Protocols"
        _echo_round([(sock, reader)], "whole")
        _goodbye([(sock, reader)])


def test_a_client_that_sends_nothing_is_dropped_by_the_loop(serve):
    server = serve(_echo_app(), request_timeout=0.5)
    sock = open_connection("127.0.0.1", server.server_port)
    with sock:
        elapsed, rest = wait_for_eof(Reader(sock), TIMEOUT)
    assert rest == b""
    assert 0.4 < elapsed


def test_a_slow_request_head_gets_408_from_the_loop(serve):
    server = serve(_echo_app(), request_timeout=1.0)
    sock = open_connection("127.0.0.1", server.server_port)
    started = time.monotonic()
    with sock:
        for byte in b"GET":  # a byte every 0.3 s: the loop reads each, the head never completes
            sock.sendall(bytes([byte]))
            time.sleep(0.3)
        elapsed, rest = wait_for_eof(Reader(sock), TIMEOUT)
    assert rest.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert rest.endswith(b"408 Request Timeout: request head not complete within 1 s\n")
    assert time.monotonic() - started > 0.9


def test_a_malformed_request_gets_400_from_the_loop_and_no_traceback(serve, caplog):
    server = serve(_echo_app())
    sock = open_connection("127.0.0.1", server.server_port)
    with caplog.at_level(logging.DEBUG, logger="wsocket"), sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n")
        reader = Reader(sock)
        response = reader.read_response()
        assert response.status_line == "HTTP/1.1 400 Bad Request"
        assert response.body == (b"400 Bad Request: malformed header line: the name 'Bad Header' is "
                                 b"not a token\n")
        elapsed, rest = wait_for_eof(reader, TIMEOUT)
    assert rest == b""
    assert not [record for record in caplog.records if record.exc_info]


def test_an_oversized_request_head_gets_431_from_the_loop(serve):
    server = serve(_echo_app(), max_request_head=1024)
    sock = open_connection("127.0.0.1", server.server_port)
    with sock:
        sock.sendall(upgrade_request("/", headers=[("X-Padding", "x" * 2000)]))
        response = Reader(sock).read_response()
    assert response.status_line == "HTTP/1.1 431 Request Header Fields Too Large"


def test_stopping_ends_connections_waiting_for_their_request(serve):
    server = serve(_echo_app())
    wait_for(lambda: server.accepts_in_loop, what="the loop to accept")
    silent = open_connection("127.0.0.1", server.server_port)
    partial = open_connection("127.0.0.1", server.server_port)
    partial.sendall(upgrade_request("/")[:30])
    # An independent client, which answers the closing handshake by itself;
    # once it is open, the loop has taken the two before it.
    client = connect("ws://127.0.0.1:%d/" % server.server_port, open_timeout=TIMEOUT)
    started = time.monotonic()
    server.stop(timeout=5)
    assert time.monotonic() - started < 4  # neither waited for (request_timeout: 10 s)
    for sock in (silent, partial):
        with sock:
            _, rest = wait_for_eof(Reader(sock), TIMEOUT)
            assert rest == b""
    with client, pytest.raises(ConnectionClosedOK):
        client.recv(timeout=TIMEOUT)
    assert (client.close_code, client.close_reason) == (1001, "server shutting down")
