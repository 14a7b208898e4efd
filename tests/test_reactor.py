"""The event app's idle connections hold no thread: they wait in the server's epoll loop.

First the two parts on their own (``Workers``, ``Reactor``, over socket
pairs), then the event app on wsocket's own server: thread counts, keepalive,
closing from elsewhere, stopping, TLS, and the server's connection limit.
"""

import contextlib
import math
import socket
import struct
import threading
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.netutil import (
    CLOSE, PING, PONG, TEXT, TIMEOUT, Reader, client_frame, close_frame, upgrade, wait_for, ws_url,
)
from tests.tlspeers import talk_over_tls
from wsocket import Hub, WSocketApp
from wsocket.reactor import Reactor, Workers, available

pytestmark = pytest.mark.skipif(not available(), reason="no select.epoll here")


# -- Workers ----------------------------------------------------------------------------------

def test_a_blocked_job_does_not_hold_up_the_next():
    workers = Workers(idle_timeout=0.5)
    release = threading.Event()
    done = threading.Event()
    workers.submit(release.wait)
    workers.submit(done.set)
    assert done.wait(TIMEOUT)
    release.set()


def test_idle_workers_end_and_busy_ones_are_reused():
    workers = Workers(name="test-worker", idle_timeout=0.3)

    def names():
        return [t.name for t in threading.enumerate() if t.name.startswith("test-worker")]

    ran = []
    for number in range(20):
        finished = threading.Event()
        workers.submit(lambda: (ran.append(threading.current_thread().name), finished.set()))
        assert finished.wait(TIMEOUT)
        time.sleep(0.01)  # the worker is idle again before the next job
    assert len(ran) == 20
    assert len(set(ran)) == 1, "sequential jobs should reuse the idle worker: %s" % set(ran)
    wait_for(lambda: not names(), what="idle workers to end")


def test_an_exception_in_a_job_is_logged_and_the_worker_goes_on(caplog):
    workers = Workers(name="test-worker", idle_timeout=0.3)
    done = threading.Event()

    def broken():
        raise RuntimeError("job failed")

    workers.submit(broken)
    wait_for(lambda: any("job failed" in str(r.exc_info[1]) for r in caplog.records
                         if r.exc_info), what="the logged error")
    workers.submit(done.set)
    assert done.wait(TIMEOUT)


# -- Reactor ----------------------------------------------------------------------------------

@pytest.fixture
def reactor():
    reactor = Reactor(Workers(idle_timeout=0.5))
    yield reactor
    reactor.close()


def _calls():
    """A callback that counts its calls, and a way to wait for the n-th."""
    count = []
    condition = threading.Condition()

    def callback():
        with condition:
            count.append(threading.current_thread().name)
            condition.notify_all()

    def wait_calls(number):
        with condition:
            assert condition.wait_for(lambda: len(count) >= number, TIMEOUT), count
        return len(count)

    return callback, wait_calls, count


def test_callback_runs_once_per_watch_when_readable(reactor):
    ours, theirs = socket.socketpair()
    callback, wait_calls, count = _calls()
    reactor.watch(ours, callback)
    time.sleep(0.1)
    assert count == []  # nothing to read yet
    theirs.send(b"x")
    wait_calls(1)
    time.sleep(0.1)
    assert len(count) == 1  # one-shot: still readable, but not watched again yet
    reactor.watch(ours, callback)
    wait_calls(2)  # the byte is still unread: at once
    ours.recv(1)
    reactor.watch(ours, callback)
    time.sleep(0.1)
    assert len(count) == 2
    reactor.unwatch(ours)
    theirs.send(b"y")
    time.sleep(0.1)
    assert len(count) == 2  # forgotten
    assert len(reactor) == 0
    ours.close()
    theirs.close()


def test_due_time_runs_the_callback_without_data(reactor):
    ours, theirs = socket.socketpair()
    callback, wait_calls, count = _calls()
    started = time.monotonic()
    reactor.watch(ours, callback, due=time.monotonic() + 0.2)
    wait_calls(1)
    assert time.monotonic() - started >= 0.19
    # Armed again and again with later times, a watch keeps one timer entry.
    for _ in range(1000):
        reactor.watch(ours, callback, due=time.monotonic() + 30)
        reactor.wake(ours)
        reactor.watch(ours, callback, due=time.monotonic() + 30)
    assert len(reactor._timers) <= 2
    ours.close()
    theirs.close()



@pytest.mark.parametrize("later", [30 * 86400.0, 1e18])
def test_a_due_time_beyond_what_epoll_can_wait_does_not_stop_the_loop(reactor, later):
    """epoll waits at most about 24.8 days: a longer keepalive interval waits in steps."""
    far, far_peer = socket.socketpair()
    ours, theirs = socket.socketpair()
    callback, wait_calls, count = _calls()
    reactor.watch(far, lambda: None, due=time.monotonic() + later)
    time.sleep(0.1)  # the loop waits for that due time now
    reactor.watch(ours, callback)
    theirs.send(b"x")
    wait_calls(1)
    assert not reactor.ended.is_set()
    for sock in (far, far_peer, ours, theirs):
        sock.close()


def test_watch_now_runs_the_callback_without_data_then_waits_as_watched(reactor):
    ours, theirs = socket.socketpair()
    callback, wait_calls, count = _calls()
    due = time.monotonic() + 30
    reactor.watch(ours, callback, due=due, now=True)
    wait_calls(1)  # nothing to read: it ran all the same
    time.sleep(0.1)
    assert len(count) == 1  # once, and not watched again until asked
    assert all(entry[0] != due for entry in reactor._timers)  # no timer for a due not used
    reactor.watch(ours, callback)
    time.sleep(0.1)
    assert len(count) == 1  # watched as usual now: waits for data
    theirs.send(b"x")
    wait_calls(2)
    reactor.unwatch(ours)
    ours.close()
    theirs.close()


def test_watch_now_from_a_callback_runs_after_that_one_is_watched_again(reactor):
    """A socket watched ``now`` by a callback (the server's accept) may block in its own
    callback: the first socket is watched again before, and goes on meanwhile."""
    first, first_peer = socket.socketpair()
    second, second_peer = socket.socketpair()
    release = threading.Event()
    blocking = threading.Event()
    first_calls = []

    def first_callback():
        first_calls.append(first.recv(1))
        if len(first_calls) == 1:
            reactor.watch(second, second_callback, now=True)
        return math.inf  # watched again when this returns

    def second_callback():
        blocking.set()
        release.wait(TIMEOUT * 3)  # longer than the wait below: only this one ends it

    reactor.watch(first, first_callback)
    try:
        first_peer.send(b"a")
        assert blocking.wait(TIMEOUT)  # the second one's callback blocks now
        first_peer.send(b"b")  # the first socket is watched again: the loop (another
        wait_for(lambda: len(first_calls) == 2, what="the first socket's next call")  # thread)
    finally:
        release.set()
    for sock in (first, first_peer, second, second_peer):
        reactor.unwatch(sock)
        sock.close()


def test_wake_while_the_callback_runs_runs_it_once_more(reactor):
    ours, theirs = socket.socketpair()
    inside = threading.Event()
    go_on = threading.Event()
    calls = []

    def callback():
        calls.append(time.monotonic())
        if len(calls) == 1:
            inside.set()
            go_on.wait(TIMEOUT)
        reactor.watch(ours, callback)

    reactor.watch(ours, callback)
    reactor.wake(ours)
    assert inside.wait(TIMEOUT)
    reactor.wake(ours)  # the first call is still running: remembered
    reactor.wake(ours)  # remembered once
    go_on.set()
    wait_for(lambda: len(calls) == 2, what="the second call")
    time.sleep(0.1)
    assert len(calls) == 2
    reactor.unwatch(ours)
    ours.close()
    theirs.close()


def test_a_returned_float_watches_the_socket_again(reactor):
    """A callback returning its next due time (math.inf: none) is watched again, without watch()."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    inside = threading.Event()
    go_on = threading.Event()
    read = []
    answers = {"next": math.inf}  # what the callback returns; None: not watched again

    def callback():
        try:
            read.append(ours.recv(100))
        except BlockingIOError:
            read.append(None)  # the due time, or wake()
        if read[-1] == b"block":
            inside.set()
            go_on.wait(TIMEOUT)
        answer = answers["next"]
        if answer is not None and answer != math.inf:
            answers["next"] = math.inf  # a due time is returned once, then none again
        return answer

    reactor.watch(ours, callback)
    for number, data in enumerate([b"a", b"b", b"c"], 1):
        theirs.send(data)
        wait_for(lambda: len(read) == number, what="call %d" % number)
    assert read == [b"a", b"b", b"c"]
    # A wake() while the callback runs brings it once more after it returns.
    theirs.send(b"block")
    assert inside.wait(TIMEOUT)
    reactor.wake(ours)
    reactor.wake(ours)
    go_on.set()
    wait_for(lambda: len(read) == 5, what="the call after the wake")
    time.sleep(0.1)
    assert read[3:] == [b"block", None]
    # A returned due time brings it without data.
    answers["next"] = time.monotonic() + 0.1
    reactor.wake(ours)
    wait_for(lambda: len(read) == 7, what="the call at the due time")
    answers["next"] = None  # not watched again
    theirs.send(b"d")
    wait_for(lambda: len(read) == 8, what="the last call")
    theirs.send(b"e")
    time.sleep(0.2)
    assert read[7:] == [b"d"]
    reactor.unwatch(ours)
    ours.close()
    theirs.close()


def test_close_shuts_down_the_sockets_still_watched(reactor):
    ours, theirs = socket.socketpair()
    callback, wait_calls, count = _calls()
    reactor.watch(ours, callback)
    reactor.close()
    wait_calls(1)
    assert ours.recv(1) == b""  # shut down: the callback sees the end
    reactor.unwatch(ours)
    wait_for(reactor.ended.is_set, what="the reactor loop to end")
    ours.close()
    theirs.close()


# -- the event app on wsocket's own server ------------------------------------------------------

def _parked(server):
    """The connections the server's reactor watches (the listening socket, watched too, aside)."""
    return len(server.reactor) - server.accepts_in_loop


def _server_threads():
    """Threads that serve connections: handlers, workers (not the accept loop or the reactor)."""
    return [t for t in threading.enumerate()
            if "process_request" in t.name or t.name.startswith("wsocket-worker")]


def _echo_app(**options):
    app = WSocketApp(**options)
    opened = []
    closed = []
    app.onconnect += opened.append
    app.onmessage += lambda message, client: client.send("echo: %s" % message)
    app.onclose += lambda reason, client: closed.append((client.close_code, reason))
    return app, opened, closed


def _parked_clients(stack, server, count):
    """``count`` websockets clients (closed with ``stack``), once all are parked."""
    clients = [stack.enter_context(connect(ws_url(server), open_timeout=TIMEOUT,
                                           close_timeout=TIMEOUT))
               for _ in range(count)]
    wait_for(lambda: _parked(server) == count, what="%d connections parked" % count)
    return clients


def test_200_idle_connections_hold_no_thread_and_all_answer(serve):
    app, opened, closed = _echo_app()
    server = serve(app)
    before = len(_server_threads())
    with contextlib.ExitStack() as stack:
        clients = _parked_clients(stack, server, 200)
        # The threads that did the handshakes end; the workers end when idle.
        wait_for(lambda: len(_server_threads()) <= before + 4, timeout=15,
                 what="the server's threads to end (%d)" % len(_server_threads()))
        for number, client in enumerate(clients):
            client.send("hello %d" % number)
        for number, client in enumerate(clients):
            assert client.recv(timeout=TIMEOUT) == "echo: hello %d" % number
        assert len(app.clients) == 200
    wait_for(lambda: len(closed) == 200, what="200 onclose calls")
    assert set(closed) == {(1000, "")}
    wait_for(lambda: _parked(server) == 0, what="the reactor to forget them")
    wait_for(lambda: server._active == 0, what="every place given back")


def test_a_parked_connection_is_pinged_and_a_dead_peer_detected(serve):
    app, opened, closed = _echo_app(ping_interval=0.2, ping_timeout=0.3)
    server = serve(app)
    sock, reader, _ = upgrade("127.0.0.1", server.server_port)
    with sock:
        sock.settimeout(TIMEOUT)
        # No thread waits for this client, yet the keepalive ping comes...
        assert reader.read_frame() == (True, PING, b"keepalive")
        # ...and left unanswered, the connection is failed: a 1011 close
        # frame, then the end of TCP without waiting for an answer (1006).
        started = time.monotonic()
        assert reader.read_frame() == (True, CLOSE,
                                       struct.pack("!H", 1011) + b"keepalive ping timeout")
        assert reader.read_to_eof() == b""
        assert 0.2 <= time.monotonic() - started < 5
    wait_for(lambda: closed == [(1006, "keepalive ping timeout")], what="onclose with 1006")


def test_a_parked_connection_that_answers_pings_stays_open(serve):
    app, opened, closed = _echo_app(ping_interval=0.1, ping_timeout=0.5)
    server = serve(app)
    with connect(ws_url(server), open_timeout=TIMEOUT, close_timeout=TIMEOUT) as client:
        time.sleep(1.5)  # many pings, each answered by the websockets library
        client.send("still here")
        assert client.recv(timeout=TIMEOUT) == "echo: still here"
    wait_for(lambda: closed == [(1000, "")], what="onclose")


def test_closing_a_parked_connection_from_another_thread(serve):
    app, opened, closed = _echo_app()
    server = serve(app)
    with connect(ws_url(server), open_timeout=TIMEOUT, close_timeout=TIMEOUT) as client:
        wait_for(lambda: _parked(server) == 1, what="the connection parked")
        opened[0].close(4001, "bye from the test")
        with pytest.raises(ConnectionClosed) as info:
            client.recv(timeout=TIMEOUT)
        assert info.value.rcvd.code == 4001
        assert info.value.rcvd.reason == "bye from the test"
    wait_for(lambda: closed == [(4001, "bye from the test")], what="onclose once")
    wait_for(lambda: _parked(server) == 0, what="the reactor to forget it")


def test_a_raw_close_frame_to_a_parked_connection(serve):
    app, opened, closed = _echo_app()
    server = serve(app)
    sock, reader, _ = upgrade("127.0.0.1", server.server_port)
    with sock:
        wait_for(lambda: _parked(server) == 1, what="the connection parked")
        sock.sendall(client_frame(TEXT, b"one") + close_frame(1000, b"done"))
        assert reader.read_frame() == (True, TEXT, b"echo: one")
        assert reader.read_frame() == (True, CLOSE, struct.pack("!H", 1000))
        assert reader.read_to_eof() == b""
    wait_for(lambda: closed == [(1000, "done")], what="onclose")


def test_broadcast_reaches_parked_connections(serve):
    app, opened, closed = _echo_app()
    server = serve(app)
    with contextlib.ExitStack() as stack:
        clients = _parked_clients(stack, server, 20)
        assert isinstance(app.hub, Hub)
        assert app.hub.broadcast("to everyone") == 20
        for client in clients:
            assert client.recv(timeout=TIMEOUT) == "to everyone"


def test_stopping_the_server_closes_parked_connections_with_1001(serve):
    app, opened, closed = _echo_app()
    server = serve(app)
    with contextlib.ExitStack() as stack:
        clients = _parked_clients(stack, server, 5)
        stopper = threading.Thread(target=server.stop, args=(TIMEOUT,))
        stopper.start()
        for client in clients:
            with pytest.raises(ConnectionClosed) as info:
                client.recv(timeout=TIMEOUT)
            assert info.value.rcvd.code == 1001
    stopper.join(TIMEOUT)
    assert not stopper.is_alive()
    wait_for(lambda: len(closed) == 5, what="onclose for each")
    assert {code for code, _ in closed} == {1001}



def test_a_keepalive_interval_beyond_what_epoll_can_wait(serve):
    """40 days of silence before a ping: the loop waits in steps, and goes on serving."""
    app, opened, closed = _echo_app(ping_interval=40 * 86400)
    server = serve(app, request_timeout=0.3)
    with contextlib.ExitStack() as stack:
        first, = _parked_clients(stack, server, 1)
        # Once its request head's deadline has passed, the loop waits for its ping time.
        time.sleep(0.6)
        second = stack.enter_context(connect(ws_url(server), open_timeout=TIMEOUT))
        for client in (second, first):
            client.send("still here")
            assert client.recv(timeout=TIMEOUT) == "echo: still here"
    wait_for(lambda: len(closed) == 2, what="2 onclose calls")
    assert not server.reactor.ended.is_set()


def test_a_parked_connection_gives_its_place_back(serve):
    app, opened, closed = _echo_app()
    server = serve(app, max_connections=2)
    first = connect(ws_url(server), open_timeout=TIMEOUT, close_timeout=TIMEOUT, legacy=True)
    second = connect(ws_url(server), open_timeout=TIMEOUT, close_timeout=TIMEOUT, legacy=True)
    wait_for(lambda: _parked(server) == 2, what="2 connections parked")
    sock = socket.create_connection(("127.0.0.1", server.server_port), timeout=TIMEOUT)
    with sock:
        assert Reader(sock).read_response().status == 503  # both places taken
    first.close()
    wait_for(lambda: server._active == 1, what="the first place given back")
    with connect(ws_url(server), open_timeout=TIMEOUT, close_timeout=TIMEOUT) as third:
        third.send("in")
        assert third.recv(timeout=TIMEOUT) == "echo: in"
    second.close()


def test_tls_connections_park_too(serve, certificate):
    app, opened, closed = _echo_app()
    server = serve(app, certfile=certificate["certfile"], keyfile=certificate["keyfile"])
    url = ws_url(server).replace("ws://", "wss://")

    def parked():
        wait_for(lambda: _parked(server) == 1, what="the connection parked")
        time.sleep(0.05)

    # The last message is of many TLS records: decrypted bytes that poll cannot see.
    messages = ["secret %d" % number for number in range(3)] + ["x" * 200000]
    assert talk_over_tls(url, certificate["context"], messages, before_each=parked) == [
        "echo: " + message for message in messages]
    wait_for(lambda: closed == [(1000, "")], what="onclose")


# -- callbacks run in the loop; one that blocks hands the loop over ------------------------------

def test_a_blocked_callback_holds_up_only_its_own_socket(reactor):
    blocked_ours, blocked_theirs = socket.socketpair()
    blocked_ours.setblocking(False)
    release = threading.Event()
    inside = threading.Event()
    seen = []  # what the blocked socket's callback read, call after call

    def blocked_callback():
        data = blocked_ours.recv(100)
        seen.append(data)
        if data == b"block":
            inside.set()
            release.wait(TIMEOUT)
        reactor.watch(blocked_ours, blocked_callback)

    reactor.watch(blocked_ours, blocked_callback)
    blocked_theirs.send(b"block")
    assert inside.wait(TIMEOUT)
    blocked_theirs.send(b"later")  # while its callback blocks: no second call yet
    others = [socket.socketpair() for _ in range(20)]
    echoed = threading.Semaphore(0)

    def echo(sock):
        def callback():
            sock.send(sock.recv(100))
            echoed.release()
            reactor.watch(sock, callback)
        return callback

    for ours, _ in others:
        ours.setblocking(False)
        reactor.watch(ours, echo(ours))
    for round_trip in range(5):
        for _, theirs in others:
            theirs.send(b"%d" % round_trip)
        for _, theirs in others:
            theirs.settimeout(TIMEOUT)
            assert theirs.recv(100) == b"%d" % round_trip
    assert seen == [b"block"]  # still inside its first call
    release.set()
    wait_for(lambda: seen == [b"block", b"later"], what="the blocked socket's next call")
    for sock in [blocked_ours, blocked_theirs, *(s for pair in others for s in pair)]:
        reactor.unwatch(sock)
        sock.close()


def test_wake_and_timers_work_while_a_callback_blocks(reactor):
    blocked, blocked_peer = socket.socketpair()
    woken, woken_peer = socket.socketpair()
    release = threading.Event()
    inside = threading.Event()
    calls = []

    def block():
        inside.set()
        release.wait(TIMEOUT)

    reactor.watch(blocked, block)
    reactor.wake(blocked)
    assert inside.wait(TIMEOUT)
    reactor.watch(woken, lambda: calls.append("woken"))
    reactor.wake(woken)  # from this thread, while the loop's first thread is blocked
    wait_for(lambda: calls == ["woken"], what="the woken callback")
    reactor.watch(woken, lambda: calls.append("due"), due=time.monotonic() + 0.05)
    wait_for(lambda: calls == ["woken", "due"], what="the timer's callback")
    release.set()
    for sock in (blocked, blocked_peer, woken, woken_peer):
        reactor.unwatch(sock)
        sock.close()


def _blocking_app(block, **options):
    """An echo app whose handler calls ``block(client)`` for the message "block"."""
    app = WSocketApp(**options)
    closed = []

    def onmessage(message, client):
        if message == "block":
            block(client)
            client.send("unblocked")
        else:
            client.send("echo: %s" % message)

    app.onmessage = onmessage
    app.onclose = lambda reason, client: closed.append(client.close_code)
    return app, closed


def _handler_blocking_until_released():
    """``(block, blocking, release)``: ``block(client)`` sets ``blocking``, then waits for ``release``."""
    release = threading.Event()
    blocking = threading.Event()

    def block(client):
        blocking.set()
        release.wait(TIMEOUT * 3)

    return block, blocking, release


def _raw_clients(server, count):
    clients = []
    for _ in range(count):
        sock, reader, _ = upgrade("127.0.0.1", server.server_port)
        sock.settimeout(TIMEOUT)
        clients.append((sock, reader))
    return clients


def _round_trips(clients, rounds):
    """Each client sends ``rounds`` messages, one at a time, and checks each echo."""
    for number in range(rounds):
        for sock, _ in clients:
            sock.sendall(client_frame(TEXT, "%d" % number))
        for _, reader in clients:
            assert reader.read_frame() == (True, TEXT, b"echo: %d" % number)


def _goodbye(clients):
    for sock, _ in clients:
        sock.sendall(close_frame(1000))
        sock.close()


@pytest.mark.parametrize("how", ["sleep", "lock"])
def test_a_handler_that_sleeps_or_waits_for_a_lock_holds_up_only_its_connection(serve, how):
    release = threading.Event()
    lock = threading.Lock()
    blocking = threading.Event()

    def block(client):
        blocking.set()
        if how == "sleep":
            while not release.is_set():  # asleep until the test has seen the others through
                time.sleep(0.01)
        else:
            with lock:
                pass

    app, closed = _blocking_app(block)
    server = serve(app)
    sleeper_sock, sleeper = _raw_clients(server, 1)[0]
    others = _raw_clients(server, 100)
    wait_for(lambda: _parked(server) == 101, what="101 connections parked")
    lock.acquire()
    # The sleeper's next messages come in the same breath: they wait for it, in order.
    sleeper_sock.sendall(client_frame(TEXT, "block") + client_frame(TEXT, "one")
                         + client_frame(TEXT, "two"))
    assert blocking.wait(TIMEOUT)
    _round_trips(others, 5)  # 500 echoes while the sleeper's handler still blocks
    sleeper_sock.settimeout(0.0)
    with pytest.raises(BlockingIOError):
        sleeper_sock.recv(1)  # nothing for the sleeper yet
    sleeper_sock.settimeout(TIMEOUT)
    release.set()
    lock.release()
    assert sleeper.read_frame() == (True, TEXT, b"unblocked")
    assert sleeper.read_frame() == (True, TEXT, b"echo: one")
    assert sleeper.read_frame() == (True, TEXT, b"echo: two")
    _round_trips([*others, (sleeper_sock, sleeper)], 2)  # and everyone goes on
    _goodbye([*others, (sleeper_sock, sleeper)])
    wait_for(lambda: len(closed) == 101, what="101 onclose calls")


def test_a_send_to_a_peer_that_does_not_read_holds_up_only_its_connection(serve):
    big = "x" * (4 << 20)  # more than the socket buffers hold

    def block(client):
        client.send(big)  # the peer reads nothing for now: this send waits

    app, closed = _blocking_app(block)
    server = serve(app)
    slow_sock, slow = _raw_clients(server, 1)[0]
    others = _raw_clients(server, 20)
    wait_for(lambda: _parked(server) == 21, what="21 connections parked")
    slow_sock.sendall(client_frame(TEXT, "block") + client_frame(TEXT, "after"))
    time.sleep(0.2)  # the send is under way, and stuck
    _round_trips(others, 5)
    assert slow.read_frame() == (True, TEXT, big.encode())  # now it reads
    assert slow.read_frame() == (True, TEXT, b"unblocked")
    assert slow.read_frame() == (True, TEXT, b"echo: after")
    _goodbye([*others, (slow_sock, slow)])
    wait_for(lambda: len(closed) == 21, what="21 onclose calls")


def test_answers_to_a_batch_leave_before_its_handler_blocks(serve):
    """Messages read together have their answers held back to leave in one write;
    a handler that blocks in the middle must not keep back those sent before."""
    release = threading.Event()

    def block(client):
        client.send("blocked")
        release.wait(TIMEOUT * 3)

    app, closed = _blocking_app(block)
    server = serve(app)
    sock, reader = _raw_clients(server, 1)[0]
    wait_for(lambda: _parked(server) == 1, what="the connection parked")
    sock.sendall(client_frame(TEXT, "one") + client_frame(TEXT, "block")
                 + client_frame(TEXT, "two"))
    try:
        # While the handler still blocks: the reactor's monitor let them go.
        assert reader.read_frame() == (True, TEXT, b"echo: one")
        assert reader.read_frame() == (True, TEXT, b"blocked")
    finally:
        release.set()
    assert reader.read_frame() == (True, TEXT, b"unblocked")
    assert reader.read_frame() == (True, TEXT, b"echo: two")
    _goodbye([(sock, reader)])
    wait_for(lambda: len(closed) == 1, what="onclose")


def test_answers_to_a_batch_and_broadcasts_keep_the_order_they_were_made_in(serve):
    app = WSocketApp()

    def onmessage(message, client):
        client.send("own %s" % message)
        app.hub.broadcast("all %s" % message)

    app.onmessage = onmessage
    server = serve(app)
    sock, reader = _raw_clients(server, 1)[0]
    wait_for(lambda: _parked(server) == 1, what="the connection parked")
    sock.sendall(b"".join(client_frame(TEXT, "%d" % number) for number in range(20)))
    for number in range(20):
        assert reader.read_frame() == (True, TEXT, b"own %d" % number)
        assert reader.read_frame() == (True, TEXT, b"all %d" % number)
    _goodbye([(sock, reader)])


def test_broadcast_and_close_from_elsewhere_reach_others_while_a_handler_blocks(serve):
    block, blocking, release = _handler_blocking_until_released()
    app, closed = _blocking_app(block)
    server = serve(app)
    blocked_sock, blocked = _raw_clients(server, 1)[0]
    others = _raw_clients(server, 3)
    wait_for(lambda: _parked(server) == 4, what="4 connections parked")
    blocked_sock.sendall(client_frame(TEXT, "block"))
    assert blocking.wait(TIMEOUT)
    # A broadcast from this thread reaches the others at once...
    assert app.hub.broadcast("to all") == 4
    for _, reader in others:
        assert reader.read_frame() == (True, TEXT, b"to all")
    # ...and a close from this thread goes out, and its onclose runs.
    victim_sock, victim_reader = others[0]
    victim = next(client for client in app.clients
                  if client.sock.getpeername() == victim_sock.getsockname())
    victim.close(4000, "from elsewhere")
    assert victim_reader.read_frame() == (True, CLOSE,
                                          struct.pack("!H", 4000) + b"from elsewhere")
    victim_sock.close()
    wait_for(lambda: closed == [4000], what="onclose of the closed one")
    _round_trips(others[1:], 2)
    release.set()
    # The broadcast did not wait for the blocked handler: the socket took it at once.
    assert blocked.read_frame() == (True, TEXT, b"to all")
    assert blocked.read_frame() == (True, TEXT, b"unblocked")
    _goodbye([*others[1:], (blocked_sock, blocked)])


def test_keepalive_pings_reach_idle_connections_while_a_handler_blocks(serve):
    block, blocking, release = _handler_blocking_until_released()
    app, _ = _blocking_app(block, ping_interval=0.2)
    server = serve(app)
    blocked_sock, blocked = _raw_clients(server, 1)[0]
    blocked_sock.sendall(client_frame(TEXT, "block"))
    assert blocking.wait(TIMEOUT)
    idle_sock, idle = _raw_clients(server, 1)[0]
    assert idle.read_frame() == (True, PING, b"keepalive")
    idle_sock.sendall(client_frame(PONG, b"keepalive"))
    assert idle.read_frame() == (True, PING, b"keepalive")  # again after the next silence
    release.set()
    assert blocked.read_frame() == (True, TEXT, b"unblocked")
    _goodbye([(idle_sock, idle), (blocked_sock, blocked)])


def test_a_batch_is_answered_in_parts_only_when_no_other_socket_waits_for_the_loop():
    """``WebSocket._hold_answers``: whole batches while others wait for the loop, else parts."""
    from wsocket import WebSocket
    from wsocket._sending import HOLD_ALL, HOLD_PART

    reactor = Reactor(Workers(idle_timeout=0.5), stall=60.0)  # no hand-over in this test
    pairs = [socket.socketpair() for _ in range(2)]
    websockets = [WebSocket(server_side, {}) for server_side, _ in pairs]
    seen = []
    ran = threading.Event()
    blocking = threading.Event()
    go = threading.Event()
    blocker, blocker_peer = socket.socketpair()
    try:
        for websocket in websockets:
            websocket.runs_in_loop(reactor)

        def hold(websocket):
            def callback():
                seen.append(reactor.pending())
                websocket._hold_answers()
                seen.append(websocket._sender.hold_frames)
                if len(seen) == 4:
                    ran.set()
            return callback

        # The loop waits in a callback while both sockets become readable
        # and watched: its next look at epoll finds the two at once.
        def block():
            blocking.set()
            go.wait(TIMEOUT)

        blocker_peer.send(b"x")
        reactor.watch(blocker, block)
        assert blocking.wait(TIMEOUT)
        for (server_side, peer), websocket in zip(pairs, websockets):
            peer.send(b"x")
            reactor.watch(server_side, hold(websocket))
        go.set()
        assert ran.wait(TIMEOUT)
        # The first saw the second waiting: its answers all together; the
        # second had the loop to itself: in parts.
        assert seen == [True, HOLD_ALL, False, HOLD_PART]
        assert not reactor.pending()
    finally:
        go.set()
        for server_side, peer in pairs:
            reactor.unwatch(server_side)
            server_side.close()
            peer.close()
        reactor.unwatch(blocker)
        blocker.close()
        blocker_peer.close()
        reactor.close()
