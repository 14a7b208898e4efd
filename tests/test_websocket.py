"""The WebSocket object over real sockets, with the `websockets` library as the peer."""

import contextlib
import queue
import threading
import time

import pytest
from websockets.exceptions import ConnectionClosed as PeerClosed
from websockets.sync.client import connect

import wsocket
from wsocket import ConnectionClosed, WebSocket, make_server
from tests.rawws import RawClient, build_frame, close_payload

MiB = 1024 * 1024


@contextlib.contextmanager
def serving(handler, **options):
    """Serve ``handler(websocket)`` on a free port; yields (ws:// url, results queue)."""
    results = queue.Queue()

    def app(environ, start_response):
        websocket = environ["wsgi.websocket"]
        try:
            results.put(handler(websocket))
        except BaseException as error:  # handed to the test, which asserts on it
            results.put(error)
        return []

    server = make_server("127.0.0.1", 0, app, **options).start()
    try:
        yield server.url.replace("http://", "ws://"), results
    finally:
        server.stop(timeout=2)


def echo(websocket):
    for message in websocket:
        websocket.send(message)
    return websocket.close_code


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_echo_every_size_text_and_binary(compression):
    sizes = [0, 1, 125, 126, 127, 128, 65535, 65536, MiB, 16 * MiB]
    with serving(echo, max_message_size=None) as (url, results):
        with connect(url, compression=compression, max_size=None) as peer:
            for size in sizes:
                text = ("é" * (size // 2 + 1))[: size // 2] if size else ""
                peer.send(text)
                assert peer.recv(timeout=30) == text
                data = bytes(range(256)) * (size // 256) + bytes(size % 256)
                peer.send(data)
                assert peer.recv(timeout=30) == data
        assert results.get(timeout=5) == 1000


def test_compression_negotiated_or_not():
    with serving(echo) as (url, _):
        with connect(url, compression="deflate") as peer:
            assert "permessage-deflate" in peer.response.headers["Sec-WebSocket-Extensions"]
            peer.send("a" * 10000)
            assert peer.recv(timeout=5) == "a" * 10000
        with connect(url, compression=None) as peer:
            assert "Sec-WebSocket-Extensions" not in peer.response.headers
    with serving(echo, compression=False) as (url, _):
        with connect(url, compression="deflate") as peer:
            assert "Sec-WebSocket-Extensions" not in peer.response.headers
            peer.send("x")
            assert peer.recv(timeout=5) == "x"


def test_fragmented_messages_from_the_peer():
    with serving(echo) as (url, _):
        with connect(url) as peer:
            peer.send(["fr", "ag", "mé", "nted"])
            assert peer.recv(timeout=5) == "fragménted"
            peer.send([b"\x00\x01", b"", b"\x02"])
            assert peer.recv(timeout=5) == b"\x00\x01\x02"


def test_attributes_of_the_websocket():
    def describe(websocket):
        return (websocket.path, websocket.version, websocket.origin, websocket.protocol,
                websocket.do_compress, websocket.environ["QUERY_STRING"], websocket.closed,
                websocket.logger is wsocket.logger)

    with serving(describe) as (url, results):
        with connect(url + "hello/world?user=x", origin="http://example.test",
                     compression=None):
            pass
        assert results.get(timeout=5) == (
            "/hello/world", 13, "http://example.test", None, False, "user=x", False, True)


def test_send_from_many_threads_while_receiving():
    """Frames of concurrent sends never interleave; receive() goes on meanwhile."""
    def handler(websocket):
        def sender(number):
            for index in range(200):
                websocket.send("%d:%d:%s" % (number, index, "x" * (index * 50)))

        threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        received = websocket.receive()
        for thread in threads:
            thread.join()
        websocket.send("done")
        return received

    with serving(handler) as (url, results):
        with connect(url, max_size=None) as peer:
            peer.send("meanwhile")
            seen = {n: [] for n in range(4)}
            while True:
                message = peer.recv(timeout=10)
                if message == "done":
                    break
                number, index, padding = message.split(":")
                assert padding == "x" * (int(index) * 50)
                seen[int(number)].append(int(index))
        assert all(indexes == list(range(200)) for indexes in seen.values())
        assert results.get(timeout=5) == "meanwhile"


def test_close_from_the_peer_with_code_and_reason():
    def handler(websocket):
        try:
            websocket.receive()
        except ConnectionClosed as closed:
            return closed.code, closed.reason, websocket.closed, websocket.close_code
        return "no exception"

    with serving(handler) as (url, results):
        with connect(url) as peer:
            peer.close(4001, "bye now")
        assert results.get(timeout=5) == (4001, "bye now", True, 4001)
        assert peer.close_code == 4001  # the server echoed the code


def test_close_from_the_server_with_code_and_reason():
    def handler(websocket):
        websocket.close(3001, "done here")
        return websocket.closed, websocket.close_code

    with serving(handler) as (url, results):
        with connect(url) as peer:
            with pytest.raises(PeerClosed):
                peer.recv(timeout=5)
            assert peer.close_code == 3001 and peer.close_reason == "done here"
        assert results.get(timeout=5) == (True, 3001)


def test_receive_after_close_raises_and_send_after_close_raises():
    def handler(websocket):
        websocket.close()
        outcomes = []
        for action in (websocket.receive, lambda: websocket.send("late")):
            try:
                action()
            except ConnectionClosed as closed:
                outcomes.append(closed.code)
        websocket.close()  # closing twice is harmless
        return outcomes

    with serving(handler) as (url, results):
        with connect(url) as peer:
            with pytest.raises(PeerClosed):
                peer.recv(timeout=5)
        assert results.get(timeout=5) == [1000, 1000]


def test_bad_arguments_give_clear_errors():
    def handler(websocket):
        errors = []
        for call in (lambda: websocket.send(123), lambda: websocket.close(1005),
                     lambda: websocket.close(1000, "x" * 124), lambda: websocket.ping(b"x" * 126)):
            try:
                call()
            except (TypeError, ValueError) as error:
                errors.append("%s: %s" % (type(error).__name__, error))
        websocket.close()
        return errors

    with serving(handler) as (url, results):
        with connect(url) as peer:
            with pytest.raises(PeerClosed):
                peer.recv(timeout=5)
        assert results.get(timeout=5) == [
            "TypeError: send() takes str or a bytes-like object, not int",
            "ValueError: invalid close code 1005: use 1000-1003, 1007-1014 or 3000-4999",
            "ValueError: close reason is 124 bytes long; at most 123 fit in a close frame",
            "ValueError: control frame payload of 126 bytes (at most 125)",
        ]


def test_receive_timeout_returns_none_and_keeps_the_connection():
    def handler(websocket):
        first = websocket.receive(timeout=0.2)
        still_open = not websocket.closed
        second = websocket.receive(timeout=5)
        return first, still_open, second

    with serving(handler) as (url, results):
        with connect(url) as peer:
            time.sleep(0.5)
            peer.send("late but fine")
            assert results.get(timeout=5) == (None, True, "late but fine")


def test_failure_returns_none_then_raises():
    def handler(websocket):
        first = websocket.receive()
        try:
            websocket.receive()
        except ConnectionClosed as closed:
            return first, websocket.close_code, closed.code

    with serving(handler) as (url, results):
        client = RawClient("127.0.0.1", int(url.rsplit(":", 1)[1].strip("/")))
        assert client.handshake().startswith("HTTP/1.1 101")
        client.send(build_frame(0x1, b"ok\xff"))
        assert client.read_close() == (1007, "invalid UTF-8 in text message: invalid start byte")
        assert results.get(timeout=5) == (None, 1007, 1007)
        assert client.read_to_eof() == b""  # nothing after the close frame, then FIN
        client.close()


def test_keepalive_detects_a_peer_that_stops_answering():
    def handler(websocket):
        started = time.monotonic()
        message = websocket.receive()
        return message, websocket.closed, websocket.close_code, time.monotonic() - started

    with serving(handler, ping_interval=0.2, ping_timeout=0.3) as (url, results):
        client = RawClient("127.0.0.1", int(url.rsplit(":", 1)[1].strip("/")))
        client.handshake()
        fin, rsv, opcode, payload = client.read_frame()
        assert opcode == 0x9  # the server pings; this peer never answers
        message, closed, code, elapsed = results.get(timeout=5)
        assert (message, closed, code) == (None, True, 1006)
        assert 0.4 <= elapsed < 3
        client.close()


def test_keepalive_keeps_an_answering_peer():
    pongs = []

    class CountingPongs(WebSocket):
        def handle_pong(self, payload):
            pongs.append(payload)

    def handler(websocket):
        return websocket.receive(timeout=1.5)

    with serving(handler, ping_interval=0.2, ping_timeout=0.5,
                 websocket_class=CountingPongs) as (url, results):
        with connect(url, ping_interval=None):
            assert results.get(timeout=5) is None  # timed out, never failed
    assert len(pongs) >= 3 and set(pongs) == {b"keepalive"}


def test_pings_are_answered_and_ping_sends_one():
    def handler(websocket):
        websocket.ping(b"from server")
        return websocket.receive()

    with serving(handler) as (url, results):
        client = RawClient("127.0.0.1", int(url.rsplit(":", 1)[1].strip("/")))
        client.handshake()
        assert client.read_frame() == (True, 0, 0x9, b"from server")
        client.send(build_frame(0x9, b"hello?"))
        assert client.read_frame() == (True, 0, 0xA, b"hello?")
        client.send(build_frame(0x1, b"msg"))
        assert results.get(timeout=5) == "msg"
        client.close()


def test_iteration_ends_cleanly_at_close():
    def handler(websocket):
        return list(websocket)

    with serving(handler) as (url, results):
        with connect(url) as peer:
            peer.send("a")
            peer.send(b"b")
        assert results.get(timeout=5) == ["a", b"b"]


def test_message_over_the_limit_closes_with_1009():
    def handler(websocket):
        return websocket.receive(), websocket.close_code

    with serving(handler, max_message_size=1000) as (url, results):
        with connect(url, compression=None) as peer:
            peer.send(b"x" * 1001)
            with pytest.raises(PeerClosed):
                peer.recv(timeout=5)
            assert peer.close_code == 1009
        assert results.get(timeout=5) == (None, 1009)


def test_compressed_bomb_closes_with_1009():
    def handler(websocket):
        return websocket.receive(), websocket.close_code

    with serving(handler, max_message_size=MiB) as (url, results):
        with connect(url, compression="deflate", max_size=None) as peer:
            peer.send(b"\x00" * (50 * MiB))  # compresses to about 50 KB
            with pytest.raises(PeerClosed):
                peer.recv(timeout=10)
            assert peer.close_code == 1009
        assert results.get(timeout=5) == (None, 1009)


def test_server_closes_tcp_promptly_after_close_handshake():
    with serving(echo) as (url, results):
        client = RawClient("127.0.0.1", int(url.rsplit(":", 1)[1].strip("/")))
        client.handshake()
        client.send(build_frame(0x1, b"hi"))
        assert client.read_frame() == (True, 0, 0x1, b"hi")
        client.send(build_frame(0x8, close_payload(1000, b"bye")))
        assert client.read_close() == (1000, "")
        client.sock.settimeout(2)
        assert client.read_to_eof() == b""  # the server's FIN, without us closing first
        client.close()
        assert results.get(timeout=5) == 1000


# -- limits set on an open WebSocket -----------------------------------------------------

@pytest.fixture
def unopened_pair():
    """A server-side WebSocket on one end of a socket pair (no I/O needed)."""
    import socket
    ours, theirs = socket.socketpair()
    yield WebSocket(ours, ping_interval=20, ping_timeout=20, close_timeout=10, max_queue=1000)
    ours.close()
    theirs.close()


@pytest.mark.parametrize("name", ["ping_interval", "ping_timeout", "close_timeout"])
@pytest.mark.parametrize("value", [-1, float("nan"), "20", [5]])
def test_a_bad_timeout_set_later_is_refused_and_changes_nothing(unopened_pair, name, value):
    websocket = unopened_pair
    before = getattr(websocket, name)
    with pytest.raises(ValueError) as error:
        setattr(websocket, name, value)
    assert str(error.value) == "%s must be None or a number of seconds >= 0, not %r" % (
        name, value)
    assert getattr(websocket, name) == before
    assert websocket.keepalive_due() is not None  # the keepalive still works out its time


@pytest.mark.parametrize("value", [-1, 1.5, "1000"])
def test_a_bad_max_queue_set_later_is_refused_and_changes_nothing(unopened_pair, value):
    websocket = unopened_pair
    with pytest.raises(ValueError) as error:
        websocket.max_queue = value
    assert str(error.value) == "max_queue must be None or a number of bytes >= 0, not %r" % (
        value,)
    assert websocket.max_queue == 1000


def test_limits_set_later_take_effect(unopened_pair):
    websocket = unopened_pair
    websocket.ping_interval = None
    assert websocket.keepalive_due() is None  # no ping, ever
    websocket.ping_interval, websocket.ping_timeout = 0.5, 2
    due = websocket.keepalive_due()
    assert due is not None and due <= time.monotonic() + 0.5
    websocket.close_timeout, websocket.max_queue = 0, None
    assert (websocket.ping_interval, websocket.ping_timeout) == (0.5, 2)
    assert (websocket.close_timeout, websocket.max_queue) == (0, None)
    assert websocket._sender.stall == 2  # a send that makes no progress: ping_timeout too
