"""Broadcast and rooms (SPEC "Beyond the original"), the in-memory backend.

The outgoing queue is tested on a socket pair (exact frames, exact order);
the hub on wsocket's real server, in-process where a test must see the
server's side (which client closed with which code) and as ``python -m
wsocket`` for the 1,000 clients; the peers are the websockets library and
raw sockets. The Redis backend has tests of its own (test_hub_redis.py).
"""

import base64
import contextlib
import json
import logging
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

import pytest
from websockets.sync.client import connect

from tests.hub_apps import make_app, raise_open_file_limit
from tests.netutil import (
    BINARY, CLOSE, TEXT, TIMEOUT, Reader, client_frame, upgrade,
    upgrade_request, ws_url, wait_for, wsocket_records,
)
from wsocket import ConnectionClosed, Hub, HubError, WebSocket, WSocketApp
from wsocket.hub import _pack, _unpack
from wsocket.protocol.frames import OP_BINARY, OP_TEXT, serialize_frame


@pytest.fixture
def wsocket_warnings():
    """WARNING records (and above) of the ``wsocket`` logger."""
    with wsocket_records(logging.WARNING) as records:
        yield records




def parse_frames(data):
    """Complete server frames at the start of ``data``: ([(opcode, payload)], the rest)."""
    frames, position = [], 0
    while position + 2 <= len(data):
        first, second = data[position], data[position + 1]
        assert not second & 0x80 and first & 0x80, "masked or fragmented frame"
        length, head = second & 0x7F, 2
        if length == 126:
            if position + 4 > len(data):
                break
            (length,) = struct.unpack_from("!H", data, position + 2)
            head = 4
        elif length == 127:
            if position + 10 > len(data):
                break
            (length,) = struct.unpack_from("!Q", data, position + 2)
            head = 10
        if position + head + length > len(data):
            break
        frames.append((first & 0x0F, data[position + head:position + head + length]))
        position += head + length
    return frames, data[position:]


def read_until_eof(sock, timeout=TIMEOUT):
    sock.settimeout(timeout)
    data = bytearray()
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except (ConnectionResetError, ssl.SSLError):
            break  # a TLS stream cut between records ends like this
        if not chunk:
            break
        data += chunk
    return bytes(data)


# -- the outgoing queue of one WebSocket, on a socket pair ---------------------------------

def small_socket_pair():
    """(server side, peer) with small buffers, so a few frames fill them."""
    ours, peer = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return ours, peer


def numbered_frames(count, size=1000):
    return [serialize_frame(OP_BINARY, bytes([index % 256]) * size) for index in range(count)]


def test_deliver_never_blocks_and_the_writer_sends_the_queue_in_order():
    ours, peer = small_socket_pair()
    websocket = WebSocket(ours, max_queue=None)
    frames = numbered_frames(300)
    try:
        for frame in frames:
            assert websocket.deliver(frame) is True  # returns although nobody reads
        assert websocket._sender.queue.queued_bytes > 100_000  # the socket took a few frames only
        # Nobody but the writer thread sends now; reading lets it go on.
        data = bytearray()
        peer.settimeout(TIMEOUT)
        while len(data) < sum(map(len, frames)):
            data += peer.recv(65536)
        assert bytes(data) == b"".join(frames)
        wait_for(lambda: websocket._sender.queue.queued_bytes == 0, what="the queue to empty")
    finally:
        ours.close()
        peer.close()


def test_send_sends_the_queue_first():
    ours, peer = small_socket_pair()
    websocket = WebSocket(ours, max_queue=None)
    frames = numbered_frames(200)
    try:
        for frame in frames:
            websocket.deliver(frame)
        assert websocket._sender.queue.queued_bytes > 0
        sender = threading.Thread(target=websocket.send, args=("sent with send()",))
        sender.start()  # blocks until the queue and its frame are out
        expected = b"".join(frames) + serialize_frame(OP_TEXT, b"sent with send()")
        data = bytearray()
        peer.settimeout(TIMEOUT)
        while len(data) < len(expected):
            data += peer.recv(65536)
        sender.join(TIMEOUT)
        assert not sender.is_alive()
        assert bytes(data) == expected
    finally:
        ours.close()
        peer.close()


def test_overflow_closes_with_1013_and_frees_the_queue(wsocket_warnings):
    ours, peer = small_socket_pair()
    websocket = WebSocket(ours, max_queue=50_000)
    frames = numbered_frames(200)
    try:
        accepted = 0
        for frame in frames:
            if not websocket.deliver(frame):
                break
            accepted += 1
        assert 40 < accepted < 200
        assert websocket.closed
        assert (websocket.close_code, websocket.close_reason) == (
            1013, "too slow: outgoing queue full")
        assert websocket._sender.queue.queued_bytes == 0 and not websocket._sender.queue
        assert websocket.deliver(frames[0]) is False
        with pytest.raises(ConnectionClosed) as closed:
            websocket.send("more")
        assert closed.value.code == 1013
        messages = [record.getMessage() for record in wsocket_warnings]
        assert messages == ["%r: closing with 1013: more than 50000 bytes wait to be sent, "
                            "the client does not read fast enough" % websocket]
        # The peer gets what went out, in order, then the end of the stream.
        received, rest = parse_frames(read_until_eof(peer))
        assert received == [(OP_BINARY, frame[4:]) for frame in frames[:len(received)]]
        assert len(received) < accepted
        assert len(rest) < len(frames[0])  # at most the start of one more frame
    finally:
        ours.close()
        peer.close()


def test_close_sends_the_queue_before_the_close_frame():
    ours, peer = small_socket_pair()
    websocket = WebSocket(ours, max_queue=None, close_timeout=TIMEOUT)
    frames = numbered_frames(100)
    try:
        for frame in frames:
            websocket.deliver(frame)
        closer = threading.Thread(target=websocket.close, args=(1000, "bye"))
        closer.start()
        expected = b"".join(frames) + serialize_frame(0x8, b"\x03\xe8bye")
        data = bytearray()
        peer.settimeout(TIMEOUT)
        while len(data) < len(expected):
            data += peer.recv(65536)
        assert bytes(data) == expected
        peer.sendall(client_frame(CLOSE, b"\x03\xe8"))
        closer.join(TIMEOUT)
        assert websocket.closed and websocket.close_code == 1000
    finally:
        ours.close()
        peer.close()


def test_a_frame_queued_while_deliver_holds_the_lock_is_sent_after_it():
    """Issue #14: a broadcast stuck in the queue of a client that had just had one.

    Thread A delivers a frame; the socket takes it whole, but A still holds
    the send lock. Meanwhile a second frame is delivered: the lock is busy,
    so it waits in the queue and the writer thread is woken, which cannot
    take the lock either and leaves it to the lock's holder. A must send it
    (or wake the writer again) once it lets go of the lock. The pause inside
    A's write is what a busy machine's scheduler does now and then.
    """
    ours, peer = socket.socketpair()
    websocket = WebSocket(ours, max_queue=None)
    transport = websocket._sender.transport
    first, second = serialize_frame(OP_TEXT, b"first"), serialize_frame(OP_TEXT, b"second")
    first_written, go_on, writer_tried = threading.Event(), threading.Event(), threading.Event()
    real_write_queued = websocket.write_queued

    class PausingTransport(type(transport)):
        """The same socket transport, pausing after its first write (slots: no new state)."""

        __slots__ = ()

        def send_nowait(self, buffers):
            sent = super().send_nowait(buffers)
            if not first_written.is_set():  # A's own write: hold the lock a while after it
                first_written.set()
                go_on.wait(TIMEOUT)
            return sent

    def write_queued_noting_the_attempt():
        done = real_write_queued()
        writer_tried.set()
        return done

    transport.__class__ = PausingTransport
    websocket.write_queued = write_queued_noting_the_attempt
    delivering = threading.Thread(target=websocket.deliver, args=(first,))
    try:
        delivering.start()
        assert first_written.wait(TIMEOUT)
        assert websocket.deliver(second) is True  # queued: A holds the lock
        assert writer_tried.wait(TIMEOUT)  # the writer found the lock taken and gave up
        go_on.set()
        delivering.join(TIMEOUT)
        assert not delivering.is_alive()
        expected = first + second
        data = bytearray()
        peer.settimeout(TIMEOUT)
        while len(data) < len(expected):
            data += peer.recv(65536)
        assert bytes(data) == expected
    finally:
        go_on.set()
        ours.close()
        peer.close()


# -- the hub's bookkeeping --------------------------------------------------------------------

def test_hub_refuses_what_it_cannot_use(monkeypatch):
    monkeypatch.delenv("WSOCKET_HUB", raising=False)
    hub = Hub()
    assert hub.backend == "memory" and hub.url == "memory://"
    with pytest.raises(HubError) as error:
        Hub("mqtt://127.0.0.1/")
    assert str(error.value) == ("unknown hub backend 'mqtt://127.0.0.1/': use memory:// or a "
                                "Redis URL such as redis://127.0.0.1:6379/0")
    with pytest.raises(TypeError):
        hub.join(object(), "room")
    ours, peer = socket.socketpair()
    try:
        websocket = WebSocket(ours)
        with pytest.raises(TypeError):
            hub.join(websocket, 42)
        with pytest.raises(TypeError):
            hub.broadcast(42)
        with pytest.raises(ValueError):
            hub.token(websocket)
        assert hub.join(websocket, "a") is True
        assert hub.join(websocket, b"\x00b") is True
        assert hub.rooms(websocket) == {"a", b"\x00b"}
        assert hub.clients("a") == [websocket] and hub.clients() == [websocket]
        hub.leave(websocket, "a")
        assert hub.rooms(websocket) == {b"\x00b"} and hub.clients("a") == []
        hub.leave(websocket)
        assert hub.rooms(websocket) == set() and hub.clients() == [websocket]
        hub.join(websocket, "a")
        websocket.mark_closed(1000, "")
        assert hub.rooms(websocket) == set() and hub.clients("a") == []
        assert hub.join(closed_websocket(), "a") is False
    finally:
        ours.close()
        peer.close()


def closed_websocket():
    ours, peer = socket.socketpair()
    websocket = WebSocket(ours)
    websocket.mark_closed(1000, "")
    ours.close()
    peer.close()
    return websocket


def test_hub_url_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("WSOCKET_HUB", "memory://")
    assert WSocketApp().hub.url == "memory://"
    monkeypatch.setenv("WSOCKET_HUB", "nats://x")
    with pytest.raises(HubError):
        WSocketApp()
    shared = Hub("memory://")
    assert WSocketApp(hub=shared).hub is shared


@pytest.mark.parametrize("room", [None, "", "chat", "sn\u2603w \x00 \udcff", b"",
                                  bytes(range(256))])
def test_the_redis_envelope_keeps_every_byte(room):
    payload = bytes(range(256)) * 3
    tokens = ["0123456789ab:7", "ffffffffffff:123456"]
    for opcode in (OP_TEXT, OP_BINARY):
        envelope = _pack("0123456789ab", opcode, payload, room, tokens)
        assert _unpack(envelope) == ("0123456789ab", opcode, payload, room, tokens)
    with pytest.raises(ValueError):
        _unpack(envelope[:20] if room else envelope[:10])
    with pytest.raises(ValueError):
        _unpack(b"not a hub message at all")


# -- rooms on a real server -----------------------------------------------------------------

def command(websocket, **request):
    websocket.send(json.dumps(request))


def reply(websocket):
    return json.loads(websocket.recv(timeout=TIMEOUT))


def join(websocket, room):
    command(websocket, join=room)
    assert reply(websocket) == {"joined": room}


def b64(data):
    return base64.b64encode(data).decode("ascii")


def assert_next_is_only(clients, sender):
    """Nothing else is on its way to ``clients``: a broadcast to all comes next."""
    marker = "marker %f" % time.monotonic()
    command(sender, say=marker)
    for client in clients:
        assert client.recv(timeout=TIMEOUT) == marker


@pytest.fixture
def clients():
    """``clients(url, **options)`` -> ``new(path="/")``, a websockets client closed at teardown."""
    with contextlib.ExitStack() as stack:
        def make(url, **options):
            options = dict(open_timeout=TIMEOUT, close_timeout=TIMEOUT, **options)

            def new(path="/"):
                return stack.enter_context(connect(url.rstrip("/") + path, **options))
            return new
        yield make


def test_rooms_isolate_and_every_kind_of_message_arrives_exactly(serve, clients):
    app = make_app()
    server = serve(app)
    new = clients(ws_url(server))
    red1, red2, blue, nowhere = new(), new(), new(), new()
    join(red1, "red")
    join(red2, "red")
    join(blue, "blue")
    command(red1, rooms=True)
    assert reply(red1) == {"rooms": ["red"]}
    # A client in no room (it has no set of its own until it joins one).
    command(nowhere, rooms=True)
    assert reply(nowhere) == {"rooms": []}
    command(nowhere, leave=None)
    assert reply(nowhere) == {"left": None}

    command(red1, say="to the red room \u2603", room="red")
    assert red1.recv(timeout=TIMEOUT) == "to the red room \u2603"
    assert red2.recv(timeout=TIMEOUT) == "to the red room \u2603"
    assert_next_is_only([red1, red2, blue, nowhere], nowhere)

    command(nowhere, say="everyone")
    for client in (red1, red2, blue, nowhere):
        assert client.recv(timeout=TIMEOUT) == "everyone"

    # Bytes stay bytes, text stays text, each exactly; bytes room names too.
    join(blue, {"b64": b64(b"\x00\xff room\r\n")})
    every_byte = bytes(range(256))
    command(red1, say_b64=b64(every_byte), room={"b64": b64(b"\x00\xff room\r\n")})
    assert blue.recv(timeout=TIMEOUT) == every_byte
    command(red1, say_b64=b64("caf\u00e9".encode()), binary=False, room="blue")
    assert blue.recv(timeout=TIMEOUT) == "caf\u00e9"
    command(red1, say="as bytes", binary=True, room="blue")
    assert blue.recv(timeout=TIMEOUT) == b"as bytes"
    command(red1, say="\x00 nul and newline\n", room="blue")
    assert blue.recv(timeout=TIMEOUT) == "\x00 nul and newline\n"
    assert_next_is_only([red1, red2, blue, nowhere], nowhere)

    # Excluding the sender, by itself or by its token.
    command(red1, say="not to me", room="red", exclude_me=True)
    assert red2.recv(timeout=TIMEOUT) == "not to me"
    command(red2, token=True)
    token = reply(red2)["token"]
    command(red1, say="not to red2", exclude=[token])
    for client in (red1, blue, nowhere):
        assert client.recv(timeout=TIMEOUT) == "not to red2"
    assert_next_is_only([red1, red2, blue, nowhere], nowhere)

    # Leaving one room, then all.
    command(red2, leave="red")
    assert reply(red2) == {"left": "red"}
    command(blue, leave=None)
    assert reply(blue) == {"left": None}
    command(red1, say="red again", room="red")
    assert red1.recv(timeout=TIMEOUT) == "red again"
    command(red1, say="blue again", room="blue")
    assert_next_is_only([red1, red2, blue, nowhere], nowhere)
    assert [len(app.hub.clients(room)) for room in ("red", "blue", None)] == [1, 0, 4]


def test_order_from_one_sender_is_kept(serve, clients):
    app = make_app()
    server = serve(app)
    new = clients(ws_url(server))
    receivers = [new() for _ in range(5)]
    for client in receivers:
        join(client, "room")
    messages = ["message %d" % index for index in range(500)]
    for message in messages:
        app.hub.broadcast(message, room="room")
    for client in receivers:
        assert [client.recv(timeout=TIMEOUT) for _ in messages] == messages


def test_a_client_leaves_every_room_when_its_connection_ends(serve):
    app = make_app()
    closed = []
    app.onclose += lambda reason, client: closed.append(
        (client.close_code, app.hub.rooms(client), client in app.hub.clients()))
    server = serve(app)
    host, port = server.server_address[:2]

    def joined_raw_client():
        sock, reader, _ = upgrade(host, port)
        for room in ("one", "two"):
            sock.sendall(client_frame(TEXT, json.dumps({"join": room})))
            assert reader.read_message() == (TEXT, json.dumps({"joined": room}).encode())
        return sock, reader

    # The TCP connection just drops.
    sock, _ = joined_raw_client()
    assert len(app.hub.clients("one")) == 1
    sock.close()
    wait_for(lambda: len(closed) == 1, what="onclose")
    # A closing handshake.
    sock, reader = joined_raw_client()
    sock.sendall(client_frame(CLOSE, b"\x03\xe8"))
    assert reader.read_frame()[1] == CLOSE
    wait_for(lambda: len(closed) == 2, what="onclose")
    sock.close()
    # A protocol error (an unmasked frame).
    sock, reader = joined_raw_client()
    sock.sendall(b"\x81\x02hi")
    assert reader.read_frame()[1] == CLOSE
    wait_for(lambda: len(closed) == 3, what="onclose")
    sock.close()
    # The server stopping.
    sock, reader = joined_raw_client()
    stopper = threading.Thread(target=server.stop, kwargs={"timeout": 5})
    stopper.start()
    assert reader.read_frame() == (True, CLOSE, b"\x03\xe9server shutting down")
    sock.sendall(client_frame(CLOSE, b"\x03\xe9"))
    wait_for(lambda: len(closed) == 4, what="onclose")
    stopper.join(TIMEOUT)
    sock.close()
    assert closed == [(1006, set(), False), (1000, set(), False), (1002, set(), False),
                      (1001, set(), False)]
    assert app.hub.clients() == [] and app.hub.clients("one") == []
    assert app.hub._rooms == {} and app.hub._members == {}


def test_routes_and_wrapped_apps_reach_the_hub_too(serve, clients):
    app = WSocketApp()

    @app.route("/room/*")
    def room(environ, start_response):
        websocket = environ["wsgi.websocket"]
        hub = environ["wsocket.hub"]
        name = environ["PATH_INFO"][len("/room/"):]
        hub.join(websocket, name)
        websocket.send("in " + name)
        for message in websocket:
            hub.broadcast(message, room=name)

    server = serve(app)
    new = clients(ws_url(server))
    first, second, other = new("/room/a"), new("/room/a"), new("/room/b")
    for client, name in ((first, "a"), (second, "a"), (other, "b")):
        assert client.recv(timeout=TIMEOUT) == "in " + name
    first.send("hello a")
    assert second.recv(timeout=TIMEOUT) == "hello a"
    assert first.recv(timeout=TIMEOUT) == "hello a"
    other.send("hello b")
    assert other.recv(timeout=TIMEOUT) == "hello b"
    with pytest.raises(TimeoutError):
        first.recv(timeout=0.3)
    first.close()
    wait_for(lambda: len(app.hub.clients("a")) == 1, what="the route's client to leave")

    # A WSocketApp inside an app that an outer WSocketApp serves: the inner hub has it,
    # from its 101 on.
    inner = WSocketApp(lambda environ, start_response: [
        environ["wsgi.websocket"].accept(),
        environ["wsocket.hub"].broadcast("inner hub: %d" % len(inner.hub.clients())),
        environ["wsgi.websocket"].receive()][:0])
    outer = serve(WSocketApp(inner))
    with connect(ws_url(outer), open_timeout=TIMEOUT, close_timeout=TIMEOUT) as websocket:
        assert websocket.recv(timeout=TIMEOUT) == "inner hub: 1"
    wait_for(lambda: inner.hub.clients() == [], what="the inner hub to let go")


# -- many clients, and one that does not read -------------------------------------------------

def test_1000_clients_one_broadcast_reaches_all(wsocket_process):
    assert raise_open_file_limit() >= 2100, "the open-file limit is too low for this test"
    server = wsocket_process("tests.hub_apps:app_without_keepalive", "--port", "0")
    connections = []
    try:
        for _ in range(1000):
            sock, reader, _ = upgrade(server.host, server.port)
            connections.append((sock, reader))
        sock, reader = connections[0]
        sock.sendall(client_frame(TEXT, json.dumps({"count": None})))
        assert reader.read_message() == (TEXT, b'{"count": 1000}')
        sock.sendall(client_frame(TEXT, json.dumps({"say": "one message for 1000"})))
        for sock, reader in connections:
            assert reader.read_frame() == (True, TEXT, b"one message for 1000")
        # The same bytes to everyone, binary too.
        sock, reader = connections[-1]
        sock.sendall(client_frame(TEXT, json.dumps({"say_b64": b64(b"\x00\x01\xfe\xff")})))
        for sock, reader in connections:
            assert reader.read_frame() == (True, BINARY, b"\x00\x01\xfe\xff")
    finally:
        for sock, _ in connections:
            sock.close()


def slow_raw_client(host, port, context=None):
    """A client that joins "feed", then never reads again: its receive window stays full."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(TIMEOUT)
    sock.connect((host, port))
    if context is not None:
        sock = context.wrap_socket(sock, server_hostname=host)
    sock.sendall(upgrade_request("/", host="%s:%d" % (host, port)))
    reader = Reader(sock)
    assert reader.read_response().status == 101
    sock.sendall(client_frame(TEXT, json.dumps({"join": "feed"})))
    assert reader.read_message() == (TEXT, b'{"joined": "feed"}')
    return sock, reader


MESSAGES = 300
MESSAGE_SIZE = 64 * 1024


def feed_message(index):
    return struct.pack("!I", index) + bytes([index % 251]) * (MESSAGE_SIZE - 4)


@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_a_client_that_stops_reading_holds_up_nobody_and_is_closed(
        scheme, serve, clients, certificate, wsocket_warnings):
    app = make_app(max_queue=1024 * 1024)
    ends = []
    app.onclose += lambda reason, client: ends.append((client, client.close_code, reason))
    options = ({"certfile": certificate["certfile"], "keyfile": certificate["keyfile"]}
               if scheme == "wss" else {})
    server = serve(app, **options)
    host, port = server.server_address[:2]
    url = "%s://%s:%d/" % (scheme, host, port)
    context = certificate["context"] if scheme == "wss" else None
    slow, slow_reader = slow_raw_client(host, port, context)
    new = clients(url, **({"ssl": certificate["threaded_peer_context"]} if context else {}),
                  max_size=None)
    fast = [new() for _ in range(3)]
    for client in fast:
        join(client, "feed")
    slow_server_side = [client for client in app.hub.clients("feed")
                        if client.environ.get("HTTP_USER_AGENT") is None]
    assert len(slow_server_side) == 1

    progress = [0] * len(fast)
    failures = []
    condition = threading.Condition()

    def read_all(position, client):
        try:
            for index in range(MESSAGES):
                message = client.recv(timeout=TIMEOUT)
                if message != feed_message(index):
                    raise AssertionError("message %d of client %d differs" % (index, position))
                with condition:
                    progress[position] = index + 1
                    condition.notify_all()
        except BaseException as error:
            failures.append(error)
            with condition:
                condition.notify_all()

    readers = [threading.Thread(target=read_all, args=(position, client))
               for position, client in enumerate(fast)]
    for thread in readers:
        thread.start()
    for index in range(MESSAGES):
        # Keep at most 16 messages ahead of the fast readers: only the one
        # that does not read may fill its queue.
        with condition:
            assert condition.wait_for(lambda: failures or min(progress) >= index - 16,
                                      TIMEOUT), "the fast clients fell behind"
        assert not failures, failures
        app.hub.broadcast(feed_message(index), room="feed")
    for thread in readers:
        thread.join(TIMEOUT * 3)
    assert not failures, failures
    assert progress == [MESSAGES] * len(fast)

    # The one that did not read: closed with 1013, logged, out of the room.
    wait_for(lambda: ends, what="the slow client's end")
    assert ends == [(slow_server_side[0], 1013, "too slow: outgoing queue full")]
    assert ["closing with 1013" in record.getMessage() for record in wsocket_warnings] == [True]
    assert len(app.hub.clients("feed")) == 3
    # What it had been sent arrives whole and in order; then the stream ends.
    frames, rest = parse_frames(slow_reader.buffer + read_until_eof(slow))
    slow.close()
    assert 0 < len(frames) < MESSAGES
    for index, (opcode, payload) in enumerate(frames):
        if opcode == CLOSE:  # if there was room for it, the close frame says why
            assert index == len(frames) - 1
            assert payload == b"\x03\xf5too slow: outgoing queue full"
        else:
            assert (opcode, payload) == (BINARY, feed_message(index))
    assert len(rest) < MESSAGE_SIZE


def test_a_client_is_in_the_hub_from_its_101_on(serve):
    """So a broadcast made right after a client's handshake reaches it (and follows the 101)."""
    app = make_app()
    server = serve(app)
    host, port = server.server_address[:2]
    connections = []
    try:
        for count in range(1, 21):
            connections.append(upgrade(host, port)[:2])
            assert len(app.hub.clients()) == count
        assert app.hub.broadcast("to all 20") == 20
        for _, reader in connections:
            assert reader.read_frame() == (True, TEXT, b"to all 20")
    finally:
        for sock, _ in connections:
            sock.close()


FORK_SCRIPT = """
import os, sys
from wsocket import Hub
hub = Hub()
parent_node = hub.node
child = os.fork()
if child == 0:
    hub.broadcast("to nobody")  # the first use in the child finds it forked
    print(parent_node != hub.node, hub._pid == os.getpid(), flush=True)
    os._exit(0)
os.waitpid(child, 0)
hub.broadcast("to nobody")
print(hub.node == parent_node, hub._pid == os.getpid(), flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_forked_child_gets_a_node_of_its_own():
    """gunicorn --preload makes the hub before the fork: each worker must be a node apart."""
    result = subprocess.run([sys.executable, "-c", FORK_SCRIPT], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "True", "True"]
