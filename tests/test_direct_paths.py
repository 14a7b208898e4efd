"""The C fast paths of a connection the reactor's loop serves: ``DirectSend`` and ``DirectReceive``.

A WebSocket that ``runs_in_loop()`` (the event app on wsocket's own server)
sends its usual message and reads its usual turn in one C call each. These
tests hold them to the Python path: the same bytes on the wire, the same
messages and events, and each case they must leave to Python (closed,
closing, a batch held back, frames queued, the lock taken, a frame half
read, a control frame after the messages, a partial write) handled exactly
as before. Over real TCP sockets on 127.0.0.1.
"""

import gc
import select
import socket
import struct
import threading
import time
import weakref

import pytest

from tests.rawws import build_frame, close_payload
from wsocket import ConnectionClosed, WebSocket
from wsocket import websocket as websocket_module
from wsocket._keepalive import Keepalive
from wsocket._sending import HOLD_LIMIT
from wsocket._sockets import DirectReceive, DirectSend

pytestmark = pytest.mark.skipif(DirectSend is None or DirectReceive is None,
                                reason="the C accelerator is not built (or WSOCKET_NO_SPEEDUPS)")


def tcp_pair():
    """A connected (server side, peer) pair of TCP sockets on 127.0.0.1."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        peer = socket.create_connection(listener.getsockname(), timeout=5)
        accepted, _ = listener.accept()
    return accepted, peer


@pytest.fixture
def loop_websocket():
    """A server-side WebSocket as the event app's loop holds it, and its peer's socket."""
    sock, peer = tcp_pair()
    websocket = WebSocket(sock, {}, ping_interval=20)
    websocket.runs_in_loop()
    assert websocket._direct_send is not None and websocket._direct_receive is not None
    yield websocket, peer
    peer.close()
    sock.close()


def read_exactly(peer, count, timeout=5.0):
    peer.settimeout(timeout)
    data = b""
    while len(data) < count:
        chunk = peer.recv(count - len(data))
        assert chunk, "the connection ended after %d of %d bytes" % (len(data), count)
        data += chunk
    return data


def server_frame(opcode, payload):
    return build_frame(opcode, payload, mask=False)


def wait_readable(sock, timeout=5.0):
    sock.settimeout(timeout)
    sock.recv(1, socket.MSG_PEEK)


# -- DirectSend ----------------------------------------------------------------------


@pytest.mark.parametrize("message", ["", "hi", "é" * 62, "x" * 125, "x" * 126, "x" * 65535,
                                     b"", b"\x00\xff" * 40, b"y" * 65535])
def test_direct_send_puts_exactly_the_frame_python_would(loop_websocket, message):
    websocket, peer = loop_websocket
    payload = message.encode() if isinstance(message, str) else message
    expected = server_frame(1 if isinstance(message, str) else 2, payload)
    assert websocket._direct_send(websocket, message) is True
    assert read_exactly(peer, len(expected)) == expected
    websocket.send(message)  # the public call, the same way
    assert read_exactly(peer, len(expected)) == expected
    assert not websocket._sender.lock.locked()


@pytest.mark.parametrize("message", [bytearray(b"ab"), memoryview(b"ab"), "x" * 65536,
                                     b"z" * 70000, "\udc80", 42])
def test_direct_send_leaves_other_messages_to_python(loop_websocket, message):
    websocket, _ = loop_websocket
    assert websocket._direct_send(websocket, message) is False
    assert not websocket._sender.lock.locked()


def test_direct_send_steps_aside_while_anything_stands_in_the_way(loop_websocket):
    websocket, peer = loop_websocket
    sender, direct = websocket._sender, websocket._direct_send

    sender.lock.acquire()  # another thread writes
    try:
        assert direct(websocket, "a") is False
    finally:
        sender.lock.release()

    assert sender.queue.push(server_frame(1, b"queued")) is not None  # a broadcast waits
    assert direct(websocket, "a") is False
    websocket.send("after")  # the Python path: what waits goes first
    expected = server_frame(1, b"queued") + server_frame(1, b"after")
    assert read_exactly(peer, len(expected)) == expected
    assert direct(websocket, "b") is True
    assert read_exactly(peer, 3) == server_frame(1, b"b")


def nothing_arrives(peer, wait=0.2):
    readable, _, _ = select.select([peer], [], [], wait)
    return not readable


def test_direct_send_holds_a_batchs_answers_and_they_leave_together_in_order(loop_websocket):
    websocket, peer = loop_websocket
    sender, direct = websocket._sender, websocket._direct_send
    assert sender.queue.push(server_frame(1, b"queued")) is not None  # a broadcast waits
    sender.holding = True  # the event app answers a batch of messages
    assert direct(websocket, "a") is True  # held after what waits, not stepped aside
    websocket.send(b"b")  # the public call, the same way
    websocket.send(bytearray(b"c"))  # the Python path's hold, in the same queue
    assert not sender.lock.locked()
    assert nothing_arrives(peer)  # held until the batch is done
    expected = (server_frame(1, b"queued") + server_frame(1, b"a") + server_frame(2, b"b")
                + server_frame(2, b"c"))
    assert sender.queue.frames and sender.holding
    websocket.batch_done()
    assert read_exactly(peer, len(expected)) == expected
    assert not sender.holding and not sender.queue.frames


def test_a_batch_held_in_parts_leaves_every_hold_frames_answers_in_order(loop_websocket):
    # No other connection waits for the loop: a pipelining peer gets its
    # answers in parts while the rest are worked out (Sender.hold_frames).
    websocket, peer = loop_websocket
    sender, direct = websocket._sender, websocket._direct_send
    sender.holding, sender.hold_frames = True, 3
    frames = []
    for number in range(7):
        message = "m%d" % number
        if number % 2:
            websocket.send(message.encode())  # the Python path's hold
            frames.append(server_frame(2, message.encode()))
        else:
            assert direct(websocket, message) is True  # the C path's
            frames.append(server_frame(1, message.encode()))
        if number in (2, 5):  # a part is complete: it leaves now, whole
            part = b"".join(frames[number - 2:number + 1])
            assert read_exactly(peer, len(part)) == part
            assert not sender.queue.frames
    assert nothing_arrives(peer)  # the seventh waits for the batch's end
    websocket.batch_done()
    assert read_exactly(peer, len(frames[6])) == frames[6]
    assert not sender.holding and not sender.queue.frames and not sender.lock.locked()


@pytest.fixture
def pushes(monkeypatch):
    """The frames that went through ``OutgoingQueue.push`` (the Python path's hold)."""
    from wsocket._outgoing import OutgoingQueue
    pushed = []
    python_push = OutgoingQueue.push

    def push(queue, frame):
        pushed.append(bytes(frame))
        return python_push(queue, frame)
    monkeypatch.setattr(OutgoingQueue, "push", push)
    return pushed


def test_the_c_path_holds_a_frame_as_push_would_count_it(loop_websocket, pushes):
    """Frames held in C are queued in order, with the queue's byte and frame counts kept."""
    websocket, peer = loop_websocket
    sender, direct, queue = websocket._sender, websocket._direct_send, websocket._sender.queue
    sender.holding = True
    frames = [server_frame(1, b"answer %d" % number) for number in range(20)]
    pushed_before = queue._pushed
    for number in range(20):
        assert direct(websocket, "answer %d" % number) is True
    # Only the first went through push(), which makes the queue's deque;
    # the C path held the other 19 itself.
    assert pushes == frames[:1]
    assert list(queue.frames) == frames
    assert queue.queued_bytes == sum(map(len, frames))
    assert queue._pushed == pushed_before + 20
    assert nothing_arrives(peer)
    websocket.batch_done()
    assert read_exactly(peer, sum(map(len, frames))) == b"".join(frames)
    assert not queue.frames and queue.queued_bytes == 0 and queue._popped == queue._pushed


def test_the_c_path_leaves_the_frame_that_completes_a_part_to_python(loop_websocket, pushes):
    websocket, peer = loop_websocket
    sender, direct = websocket._sender, websocket._direct_send
    sender.holding, sender.hold_frames = True, 4
    frames = [server_frame(1, b"m%d" % number) for number in range(8)]
    for number in range(8):
        assert direct(websocket, "m%d" % number) is True
    # The first of each part makes the deque anew (the part before was
    # written and the queue emptied), the fourth completes it and writes it.
    assert pushes == [frames[0], frames[3], frames[4], frames[7]]
    assert read_exactly(peer, sum(map(len, frames))) == b"".join(frames)


def test_the_c_path_holds_no_more_than_the_queues_own_limit(loop_websocket, pushes):
    websocket, peer = loop_websocket
    sender, direct, queue = websocket._sender, websocket._direct_send, websocket._sender.queue
    queue.max_bytes = 100  # below HOLD_LIMIT: this limit applies
    sender.holding = True
    frames = [server_frame(2, bytes([number]) * 30) for number in range(6)]  # 32 bytes each
    for number, frame in enumerate(frames):
        assert direct(websocket, bytes([number]) * 30) is True
        assert queue.queued_bytes <= 100
    # Three fit (96 bytes); the fourth went to Python, which wrote what
    # waited and itself; then two more were held.
    assert pushes == [frames[0], frames[4]]
    assert read_exactly(peer, 4 * 32) == b"".join(frames[:4])
    websocket.batch_done()
    assert read_exactly(peer, 2 * 32) == b"".join(frames[4:])


def test_a_held_frame_waits_for_the_queue_lock_another_thread_has(loop_websocket):
    """The C path never waits: a busy queue lock sends the frame the Python way, which does."""
    websocket, peer = loop_websocket
    sender, direct, queue = websocket._sender, websocket._direct_send, websocket._sender.queue
    sender.holding = True
    assert direct(websocket, "first") is True
    taken, release = threading.Event(), threading.Event()

    def hold_the_queue_lock():
        with queue._lock:
            taken.set()
            release.wait(5)
    holder = threading.Thread(target=hold_the_queue_lock)
    holder.start()
    assert taken.wait(5)
    threading.Timer(0.2, release.set).start()
    assert direct(websocket, "second") is True  # returns once the lock was given back
    assert release.is_set()
    holder.join(5)
    websocket.batch_done()
    expected = server_frame(1, b"first") + server_frame(1, b"second")
    assert read_exactly(peer, len(expected)) == expected


def test_the_hold_limit_agrees_with_the_python_path():
    from wsocket import _speedups
    assert _speedups.HOLD_LIMIT == HOLD_LIMIT


def test_a_held_batch_past_the_hold_limit_goes_out_whole_and_in_order(loop_websocket):
    websocket, peer = loop_websocket
    sender = websocket._sender
    sender.holding = True
    messages = [bytes([65 + index]) * 65535 for index in range(HOLD_LIMIT // 65535 + 3)]
    expected = b"".join(server_frame(2, message) for message in messages)
    received = bytearray()
    reader = threading.Thread(target=lambda: received.extend(read_exactly(peer, len(expected),
                                                                          timeout=30)))
    reader.start()  # past the limit, hold() writes what waits, and waits for the peer
    for message in messages:
        assert websocket._direct_send(websocket, message) is True
    websocket.batch_done()
    reader.join(30)
    assert bytes(received) == expected


def test_a_held_send_after_the_close_frame_raises(loop_websocket):
    websocket, peer = loop_websocket
    websocket._sender.holding = True
    websocket.start_closing(1001, "going away")
    assert websocket._direct_send(websocket, "late") is False
    with pytest.raises(ConnectionClosed):
        websocket.send("late")
    assert not websocket._sender.lock.locked()


def test_no_message_follows_the_close_frame(loop_websocket):
    websocket, peer = loop_websocket
    websocket.start_closing(1001, "going away")
    assert websocket._direct_send(websocket, "late") is False
    with pytest.raises(ConnectionClosed):
        websocket.send("late")
    expected = server_frame(8, close_payload(1001, b"going away"))
    assert read_exactly(peer, len(expected)) == expected
    peer.settimeout(0.3)
    with pytest.raises(socket.timeout):
        peer.recv(100)  # nothing after the close frame


@pytest.mark.parametrize("in_loop", [True, False], ids=["loop", "thread"])
def test_a_partial_write_finishes_whole_and_in_order(in_loop):
    """The socket takes part of the frame: the rest follows before anything else.

    In the loop's thread (the GIL kept) and in a connection's own (let go).
    """
    sock, peer = tcp_pair()
    websocket = WebSocket(sock, {})
    if in_loop:
        websocket.runs_in_loop()
    assert websocket._direct_send.release_gil == (not in_loop)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    messages = ["%05d" % index + "m" * 60000 for index in range(12)]
    expected = b"".join(server_frame(1, message.encode()) for message in messages)
    received = bytearray()

    def drain():
        time.sleep(0.3)  # let the buffers fill: later sends are partial
        received.extend(read_exactly(peer, len(expected), timeout=30))

    partial_writes = []
    finish = websocket._finish_direct_send

    def finish_and_count(frame, sent):
        partial_writes.append(sent)
        finish(frame, sent)

    websocket._finish_direct_send = finish_and_count
    reader = threading.Thread(target=drain)
    reader.start()
    try:
        for message in messages:
            websocket.send(message)
        reader.join(40)
        assert bytes(received) == expected
        assert partial_writes, "no write was partial: the test did not test it"
        assert not websocket._sender.lock.locked()
    finally:
        reader.join(40)
        peer.close()
        sock.close()


def test_direct_send_refuses_other_call_forms(loop_websocket):
    websocket, _ = loop_websocket
    direct = websocket._direct_send
    for args in [(), (websocket,), (websocket, "a", "b")]:
        with pytest.raises(TypeError, match="two positional arguments: owner, message"):
            direct(*args)
    with pytest.raises(TypeError, match="two positional arguments"):
        direct(websocket, message="a")
    assert not websocket._sender.lock.locked()


def test_direct_send_on_a_closed_socket_steps_aside(loop_websocket):
    """The descriptor is read from the socket object at each call: -1 once it is closed."""
    websocket, peer = loop_websocket
    assert websocket._direct_send(websocket, "open") is True  # its descriptor was read
    assert read_exactly(peer, 6) == server_frame(1, b"open")
    websocket.sock.close()
    # new sockets may take the freed descriptor: nothing must be written to them
    newcomer, newcomers_peer = socket.socketpair()
    try:
        assert websocket._direct_send(websocket, "late") is False
        newcomers_peer.setblocking(False)
        with pytest.raises(BlockingIOError):
            newcomers_peer.recv(100)
    finally:
        newcomer.close()
        newcomers_peer.close()
    assert not websocket._sender.lock.locked()


# -- DirectReceive -------------------------------------------------------------------


def test_direct_receive_gives_the_messages_of_one_read(loop_websocket):
    websocket, peer = loop_websocket
    keepalive = websocket._keepalive
    keepalive._last_received = 0.0
    peer.sendall(build_frame(1, b"one") + build_frame(2, b"\x00two") + build_frame(1, "é".encode()))
    wait_readable(websocket.sock)
    assert websocket.receive_arrived(True) == ["one", b"\x00two", "é"]
    assert websocket._sender.holding  # their answers leave together
    assert keepalive._last_received > 0.0  # keepalive was told
    assert websocket.receive_arrived(True) == []  # nothing more: no wait
    assert not websocket._reader.lock.locked()


@pytest.mark.parametrize("interval", [20, 2.5, None])
def test_a_read_tells_the_keepalive_what_heard_would(loop_websocket, interval):
    websocket, peer = loop_websocket
    keepalive = websocket._keepalive
    keepalive.interval = interval
    keepalive.ping_sent(time.monotonic() - 100)  # a ping out: what is heard next clears it
    before = time.monotonic()
    peer.sendall(build_frame(1, b"hello"))
    wait_readable(websocket.sock)
    assert websocket.receive_arrived(True) == ["hello"]
    after = time.monotonic()
    heard_at = keepalive._last_received
    assert type(heard_at) is float and before <= heard_at <= after
    assert keepalive._ping_sent_at is None
    assert keepalive.next_due == (None if interval is None else heard_at + interval)


def test_a_keepalive_of_another_type_is_told_by_its_own_heard(monkeypatch):
    # The C read sets wsocket's own Keepalive's slots itself; a subclass may do
    # more in heard(), so it is called.
    calls = []

    class Counting(Keepalive):
        __slots__ = ()

        def heard(self, now):
            calls.append(now)
            super().heard(now)

    monkeypatch.setattr(websocket_module, "Keepalive", Counting)
    sock, peer = tcp_pair()
    with sock, peer:
        websocket = WebSocket(sock, {}, ping_interval=20)
        websocket.runs_in_loop()
        peer.sendall(build_frame(1, b"hello"))
        wait_readable(websocket.sock)
        assert websocket.receive_arrived(True) == ["hello"]
        assert len(calls) == 1 and websocket._keepalive._last_received == calls[0]


def test_a_control_frame_after_the_messages_is_handled_next(loop_websocket):
    websocket, peer = loop_websocket
    peer.sendall(build_frame(1, b"first") + build_frame(9, b"ping!") + build_frame(1, b"then"))
    wait_readable(websocket.sock)
    assert websocket.receive_arrived(True) == ["first"]
    assert websocket.batch_done()  # more is waiting from that read
    assert websocket.receive_arrived(False) == ["then"]  # the ping answered on the way
    assert read_exactly(peer, 7) == server_frame(10, b"ping!")


def test_a_frame_split_across_reads_is_put_together(loop_websocket):
    websocket, peer = loop_websocket
    frame = build_frame(1, b"x" * 300)
    peer.sendall(build_frame(1, b"whole") + frame[:100])
    wait_readable(websocket.sock)
    assert websocket.receive_arrived(True) == ["whole"]
    peer.sendall(frame[100:])
    time.sleep(0.05)
    deadline = time.monotonic() + 5
    got = []
    while not got and time.monotonic() < deadline:
        got = websocket.receive_arrived(True)  # the Python path: a frame is half read
    assert got == ["x" * 300]
    peer.sendall(build_frame(1, b"again"))
    wait_readable(websocket.sock)
    assert websocket.receive_arrived(True) == ["again"]  # at rest again: the C path


@pytest.mark.parametrize("frames, code", [
    (build_frame(1, b"\xff\xfe"), 1007),  # not UTF-8
    (build_frame(1, b"x" * 2000), 1009),  # over max_message_size
    (build_frame(1, b"a", mask=False), 1002),  # a client frame must be masked
    (build_frame(1, b"a", rsv=4), 1002),  # a reserved bit, nothing negotiated
])
def test_bad_frames_fail_with_the_same_close_code(frames, code):
    sock, peer = tcp_pair()
    try:
        websocket = WebSocket(sock, {}, max_message_size=1000)
        websocket.runs_in_loop()
        peer.sendall(build_frame(1, b"ok") + frames)
        wait_readable(sock)
        assert websocket.receive_arrived(True) == ["ok"]
        assert websocket.batch_done()
        assert websocket.receive_arrived(False) == []
        assert websocket.closed and websocket.close_code == code
        head = read_exactly(peer, 4)  # our close frame (a reason under 126 bytes)
        assert head[0] == 0x88
        assert struct.unpack("!H", head[2:4])[0] == code
    finally:
        peer.close()
        sock.close()


def test_the_end_of_the_stream_closes_with_1006(loop_websocket):
    websocket, peer = loop_websocket
    peer.shutdown(socket.SHUT_WR)
    wait_readable(websocket.sock)
    assert websocket.receive_arrived(True) == []
    assert websocket.closed and websocket.close_code == 1006


def test_a_close_frame_is_answered_as_ever(loop_websocket):
    websocket, peer = loop_websocket
    peer.sendall(build_frame(1, b"bye") + build_frame(8, close_payload(1000, b"done")))
    wait_readable(websocket.sock)
    assert websocket.receive_arrived(True) == ["bye"]
    assert websocket.batch_done()
    with pytest.raises(ConnectionClosed) as closed:
        websocket.receive_arrived(False)
    assert closed.value.code == 1000
    expected = server_frame(8, close_payload(1000))  # the peer's code, as the Python path answers
    assert read_exactly(peer, len(expected)) == expected


def test_direct_receive_steps_aside_while_another_thread_reads(loop_websocket):
    websocket, peer = loop_websocket
    peer.sendall(build_frame(1, b"held"))
    wait_readable(websocket.sock)
    reader = websocket._reader
    reader.lock.acquire()
    try:
        assert websocket._direct_receive(websocket) is None  # nothing read: the lock is someone's
    finally:
        reader.lock.release()
    assert websocket.receive_arrived(True) == ["held"]


def test_the_c_paths_leave_no_reference_cycle():
    """A loop connection goes as soon as the last reference does, not at the next collection."""
    sock, peer = tcp_pair()
    gc.disable()
    try:
        websocket = WebSocket(sock, {})
        websocket.runs_in_loop()
        # Both C objects, the reader and the sender hold the core: it goes last.
        parts = [weakref.ref(websocket), weakref.ref(websocket._connection)]
        del websocket
        assert [part() for part in parts] == [None] * len(parts)
    finally:
        gc.enable()
        peer.close()
        sock.close()


# -- EventTurn -------------------------------------------------------------------------


@pytest.fixture
def event_turn():
    """An event app's connection as the reactor's loop runs it: (app, turn, websocket, peer)."""
    from wsocket import WSocketApp
    from wsocket.app import _EventSession, _handler_failed

    sock, peer = tcp_pair()
    app = WSocketApp()
    websocket = WebSocket(sock, {}, ping_interval=20)
    websocket.runs_in_loop()
    session = _EventSession(app, websocket)
    turn = websocket.direct_turn(app.__dict__, "_onmessage", session, _handler_failed)
    assert turn is not None
    yield app, turn, websocket, peer
    peer.close()
    sock.close()


def send_and_wait(peer, sock, data):
    peer.sendall(data)
    wait_readable(sock)


def test_the_turn_calls_the_handler_and_returns_the_keepalive_due(event_turn):
    app, turn, websocket, peer = event_turn
    seen = []
    app.onmessage = lambda message, client: seen.append((message, client))
    send_and_wait(peer, websocket.sock, build_frame(1, b"hello"))
    before = time.monotonic()
    due = turn()
    assert seen == [("hello", websocket)]
    assert before + 19 < due <= time.monotonic() + 20  # ping_interval after the message
    assert turn() == due  # nothing came: the Python turn read, and the due time stands


def test_the_turn_takes_no_arguments(event_turn):
    app, turn, websocket, peer = event_turn
    seen = []
    app.onmessage = lambda message, client: seen.append(message)
    send_and_wait(peer, websocket.sock, build_frame(1, b"kept"))
    with pytest.raises(TypeError, match="EventTurn takes no arguments"):
        turn(1)
    with pytest.raises(TypeError, match="EventTurn takes no arguments"):
        turn(now=1)
    assert seen == []  # refused before reading: the message waits for the next turn
    turn()
    assert seen == ["kept"]


def test_a_handler_set_between_turns_handles_the_next_message(event_turn):
    app, turn, websocket, peer = event_turn
    seen = []
    app.onmessage = lambda message, client: seen.append("first " + message)
    send_and_wait(peer, websocket.sock, build_frame(1, b"a"))
    turn()
    app.onmessage = lambda message, client: seen.append("second " + message)
    send_and_wait(peer, websocket.sock, build_frame(1, b"b"))
    turn()
    assert seen == ["first a", "second b"]


def test_several_messages_and_several_handlers_go_the_python_way(event_turn):
    app, turn, websocket, peer = event_turn
    seen = []
    app.onmessage += lambda message, client: seen.append("one " + message)
    app.onmessage += lambda message, client: seen.append("two " + message)
    send_and_wait(peer, websocket.sock, build_frame(1, b"x") + build_frame(1, b"y"))
    assert isinstance(turn(), float)
    assert seen == ["one x", "two x", "one y", "two y"]


def test_a_handler_that_raises_is_logged_and_the_connection_goes_on(event_turn, caplog):
    app, turn, websocket, peer = event_turn

    def broken(message, client):
        raise ValueError("bad handler")

    app.onmessage = broken
    send_and_wait(peer, websocket.sock, build_frame(1, b"boom"))
    with caplog.at_level("DEBUG", logger="wsocket"):
        assert isinstance(turn(), float)
    records = [record for record in caplog.records if "error in event handler" in record.message]
    assert len(records) == 1 and "broken" in records[0].message
    assert records[0].exc_info[0] is ValueError  # logged with what was raised
    assert not websocket.closed


def answering_the_close(peer, code, reason):
    """A started thread that reads the server's close frame (code, reason) and answers it."""
    def answer():
        expected = server_frame(8, close_payload(code, reason))
        assert read_exactly(peer, len(expected)) == expected
        peer.sendall(build_frame(8, close_payload(code)))

    thread = threading.Thread(target=answer)
    thread.start()
    return thread


def test_a_handler_that_closes_ends_the_session(event_turn):
    app, turn, websocket, peer = event_turn
    closed = []
    app.onmessage = lambda message, client: client.close(1000, "done")
    app.onclose = lambda reason, client: closed.append(client.close_code)

    answering = answering_the_close(peer, 1000, b"done")
    send_and_wait(peer, websocket.sock, build_frame(1, b"bye"))
    assert turn() is None
    answering.join(10)
    assert websocket.closed and closed == [1000]


def test_a_close_frame_ends_the_session_with_the_peers_code(event_turn):
    app, turn, websocket, peer = event_turn
    closed = []
    app.onmessage = lambda message, client: None
    app.onclose = lambda reason, client: closed.append((client.close_code, reason))
    send_and_wait(peer, websocket.sock, build_frame(8, close_payload(4000, b"later")))
    assert turn() is None
    assert closed == [(4000, "later")]


def test_a_read_that_raises_ends_the_session_with_1011_and_says_why(event_turn, caplog,
                                                                     monkeypatch):
    # The C turn hands what follows the messages of a read (here a ping) to the
    # core's receive_data, called by name; should that raise, the session ends.
    app, turn, websocket, peer = event_turn
    closed = []
    app.onclose = lambda reason, client: closed.append((client.close_code, reason))
    core_type = type(websocket._connection)  # (its instances have slots: patched on the type)
    receive_data = core_type.receive_data

    def broken(core, data):
        core_type.receive_data = receive_data  # once: the close's answer is read as ever
        raise RuntimeError("the core broke")

    monkeypatch.setattr(core_type, "receive_data", broken)
    answering = answering_the_close(peer, 1011, b"internal error")
    send_and_wait(peer, websocket.sock, build_frame(1, b"first") + build_frame(9, b"ping"))
    with caplog.at_level("DEBUG", logger="wsocket"):
        assert turn() is None  # ended
    answering.join(10)
    assert closed == [(1011, "")]  # (the reason is the peer's answer's)
    records = [record for record in caplog.records if "error running the events" in record.message]
    assert len(records) == 1 and records[0].exc_info[0] is RuntimeError


# -- DirectReceive.receive and DirectSend with a thread per connection -----------------


@pytest.fixture
def thread_websocket():
    """A server-side WebSocket as the WSGI loop holds it (its own thread), and its peer."""
    sock, peer = tcp_pair()
    websocket = WebSocket(sock, {}, ping_interval=20)
    assert websocket._direct_wait is not None and websocket._direct_send is not None
    yield websocket, peer
    peer.close()
    sock.close()


def test_the_read_sizes_agree_with_the_python_path():
    from wsocket import _sockets, _speedups, _transport
    assert _speedups.READ_SIZE == _sockets.READ_SIZE
    assert _speedups.IDLE_READ_SIZE == _transport.IDLE_READ_SIZE


def test_receive_waits_without_the_gil_and_gives_each_message(thread_websocket):
    websocket, peer = thread_websocket
    ticks = []
    waiting = threading.Event()

    def meanwhile():
        waiting.wait(5)
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            ticks.append(1)  # runs only if receive() let the GIL go
            time.sleep(0.001)
        peer.sendall(build_frame(1, b"late") + build_frame(2, b"\x01two"))

    other = threading.Thread(target=meanwhile)
    other.start()
    websocket.receive(0.01)  # the Python path sets the receive timeout first
    waiting.set()
    assert websocket.receive() == "late"
    assert websocket.receive() == b"\x01two"
    other.join(5)
    assert len(ticks) > 50


def test_a_big_message_in_small_reads_then_small_ones(thread_websocket):
    websocket, peer = thread_websocket
    transport = websocket._transport
    websocket.receive(0.01)
    peer.sendall(build_frame(2, b"b" * 5000))
    assert websocket.receive() == b"b" * 5000
    assert transport._read_size == 65536  # a read filled the small buffer: read big now
    peer.sendall(build_frame(1, b"small"))
    assert websocket.receive() == "small"
    assert transport._read_size == 1024  # small reads again: a waiting thread holds 1 KiB


def test_keepalive_runs_while_the_c_path_waits():
    sock, peer = tcp_pair()
    try:
        websocket = WebSocket(sock, {}, ping_interval=0.2, ping_timeout=0.4)
        started = time.monotonic()
        assert websocket.receive() is None  # the peer never answered the ping
        assert time.monotonic() - started < 5
        assert websocket.closed and websocket.close_code == 1006
        ping = server_frame(9, b"keepalive")
        assert read_exactly(peer, len(ping)) == ping  # the keepalive ping went out meanwhile
    finally:
        peer.close()
        sock.close()


def test_a_client_reads_the_c_way_and_sends_the_python_way():
    """A client masks what it sends (Python), and reads unmasked frames (C)."""
    sock, peer = tcp_pair()
    try:
        client = WebSocket(sock, {}, side="client")
        assert client._direct_send is None and client._direct_wait is not None
        peer.sendall(server_frame(1, b"from the server"))
        assert client.receive() == "from the server"
        client.send("hi")
        head = read_exactly(peer, 2)
        assert head == b"\x81\x82"  # masked, 2 bytes
    finally:
        peer.close()
        sock.close()
