"""Load and faults against a real ``python -m wsocket`` subprocess, on 127.0.0.1 only.

Thousands of connections, clients that vanish without a close, a slowloris
handshake attack, misbehaving apps, and what the log holds at the default
level. Every test is bounded in time and count; every server process runs
in a process group of its own, killed at the end whatever happens. The
client side is raw sockets (``tests.loadkit``), many of them on one
selector: no wsocket code checks wsocket here. ``python -m bench.reliability``
prints the same figures for the README.
"""

import ctypes
import struct
import sys
import threading
import time

import pytest

from tests import loadkit
from tests.apps import echo
from tests.loadkit import (
    CLOSE, PING, TEXT, BlockingClient, ServerProcess, Slowloris, close_code,
)
from tests.netutil import Reader, open_connection, request, upgrade_request
from wsocket import make_server


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


# -- many connections ------------------------------------------------------------------------

def test_2000_simultaneous_websockets_each_echo_and_are_closed_at_once(tmp_path):
    # Every client sends its close frame at the same moment: 2,000 threads
    # wake together, and every closing handshake must still be answered
    # (they once waited tens of seconds for the GIL, see server._GILPacing).
    result = loadkit.hold_connections(2000, log_path=tmp_path / "server.log",
                                      close_concurrency=2000, close_timeout=60)
    print("\n2,000 connections: opened in %.1f s, %.1f KiB of server memory each"
          % (result["open_seconds"], result["kib_per_connection"]))
    assert result["lost"] == [] and result["wrong"] == []
    assert result["held"] == 2000
    assert result["base_threads"] == 1  # the server serves in its main thread
    assert result["held_threads"] == 1 + 2000  # one thread per connection, no more
    assert result["closed_cleanly"] == 2000
    assert result["close_lost"] == [] and result["close_wrong"] == []
    assert result["threads_after"] == 1
    assert result["alive"]
    assert 0 < result["kib_per_connection"] < 256


def futex_hash_slots():
    """This process's futex hash: its slots, 0 for the kernel's shared one; None: no such prctl."""
    libc = ctypes.CDLL(None, use_errno=True)
    slots = libc.prctl(78, ctypes.c_ulong(2), ctypes.c_ulong(0), ctypes.c_ulong(0),
                       ctypes.c_ulong(0))  # PR_FUTEX_HASH, PR_FUTEX_HASH_GET_SLOTS
    return None if slots < 0 else slots


def test_hundreds_of_connection_threads_put_the_process_on_the_shared_futex_hash():
    # Linux 6.16 gives a threaded process a futex hash of its own sized for
    # its CPUs (16 chains on 2 CPUs): with 10,000 threads asleep, a GIL
    # handover walked thousands of them, and one run in four of closing
    # 10,000 at once left closing handshakes unanswered for more than 10 s
    # (server.use_global_futex_hash). The server this process runs must
    # have put it back on the kernel's shared table once its threads
    # passed 256 (the count is the process's: this test's own threads too).
    if not sys.platform.startswith("linux") or futex_hash_slots() is None:
        pytest.skip("no per-process futex hash (Linux 6.16 and later)")
    loadkit.raise_nofile(2048)
    server = make_server("127.0.0.1", 0, echo).start()
    crowd = loadkit.Crowd(server.server_port, 300)
    try:
        crowd.open(timeout=60)
        assert crowd.lost == [] and crowd.wrong == []
        assert threading.active_count() > 256
        assert futex_hash_slots() == 0
        crowd.close(timeout=60, concurrency=300)
        assert crowd.closed_cleanly == 300
    finally:
        crowd.abort()
        server.stop(timeout=10)


def test_2000_idle_event_app_connections_hold_no_thread_each(tmp_path):
    # The loop, its monitor and a few more, not one per connection; a busy
    # machine gets time to finish its handshakes before the threads are counted.
    bound = 2 + 64
    result = loadkit.hold_connections(2000, log_path=tmp_path / "server.log",
                                      app="tests.apps:events_echo", idle_threads=2,
                                      held_threads_settle=bound, close_concurrency=2000,
                                      close_timeout=60)
    print("\n2,000 event app connections: %d threads, %.1f KiB of server memory each"
          % (result["held_threads"], result["kib_per_connection"]))
    assert result["lost"] == [] and result["wrong"] == []
    assert result["held"] == 2000
    assert result["base_threads"] == 2  # the main thread and the reactor's
    assert result["held_threads"] <= bound
    assert result["closed_cleanly"] == 2000
    assert result["close_lost"] == [] and result["close_wrong"] == []
    assert result["threads_after"] == 2  # idle workers end
    assert result["alive"]


def test_10000_connect_disconnect_cycles_leak_nothing(tmp_path):
    result = loadkit.connect_cycles(10000, workers=8, warmup=1000,
                                    log_path=tmp_path / "server.log")
    print("\n10,000 cycles in %.1f s; server memory %+d KiB" % (result["seconds"],
                                                               result["rss_growth_kib"]))
    assert result["warmup_errors"] == []
    assert result["errors"] == []
    assert result["base_threads"] == 1
    assert result["threads_after"] == 1
    assert result["rss_growth_kib"] < 8 * 1024
    assert result["alive"]


# -- clients that vanish ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def keepalive_server(tmp_path_factory):
    """``tests.apps:echo`` with a keepalive ping after 0.5 s of silence, and 0.5 s to answer."""
    log = tmp_path_factory.mktemp("keepalive") / "server.log"
    server = ServerProcess("tests.apps:echo", "--ping-interval", "0.5", "--ping-timeout", "0.5",
                           log_path=log)
    try:
        BlockingClient(server.port).close()
        assert server.settle_threads(1, 10) == 1
        yield server
    finally:
        server.kill()


def test_killed_client_process_frees_its_thread(keepalive_server):
    threads, seconds = loadkit.dead_peer_killed(keepalive_server, 1)
    print("\nkilled client: thread freed in %.3f s" % seconds)
    assert threads == 1
    assert seconds < 3  # the kernel's FIN, no keepalive needed


def test_tcp_reset_frees_its_thread(keepalive_server):
    threads, seconds = loadkit.dead_peer_reset(keepalive_server, 1)
    print("\nreset: thread freed in %.3f s" % seconds)
    assert threads == 1
    assert seconds < 3


def test_silent_peer_is_found_dead_by_keepalive(keepalive_server):
    threads, detected, freed, frames = loadkit.dead_peer_silent(keepalive_server, 1)
    print("\nsilent peer: given up after %.2f s, thread freed after %.2f s" % (detected, freed))
    assert threads == 1
    # A ping after 0.5 s of silence, then after 0.5 s without a pong the
    # connection fails: a close frame, the FIN; the thread goes after the
    # socket's linger (1 s at most, waiting for a FIN that never comes).
    assert frames == [(PING, b"keepalive"), (CLOSE, close_payload(1011, b"keepalive ping timeout"))]
    assert 0.9 < detected < 4
    assert detected < freed < detected + 3
    assert "no answer to a ping for 0.5 s, closing" in keepalive_server.log()


def test_peer_that_stops_reading_while_the_server_sends_is_dropped(keepalive_server):
    # The echo's send blocks once the peer's buffers are full; a send that
    # moves no byte for ping_timeout fails, as an unanswered ping would.
    threads, seconds, sent = loadkit.dead_peer_not_reading(keepalive_server, 1)
    print("\npeer not reading, %d bytes sent: thread freed %.2f s after its buffers filled"
          % (sent, seconds))
    assert sent > 65536
    assert threads == 1
    assert seconds < 5


# -- slowloris -------------------------------------------------------------------------------

def echo_timed(port, text="normal client"):
    """Connect, one echo, close; returns the seconds it took."""
    started = time.monotonic()
    client = BlockingClient(port, timeout=10)
    assert client.status_line == "HTTP/1.1 101 Switching Protocols"
    assert client.echo(text) == (TEXT, text.encode())
    assert client.close() == 1000
    return time.monotonic() - started


def threads_reach(server, count, timeout=10):
    """Wait until the server runs ``count`` threads (it may still be accepting); the last count."""
    seen = []
    loadkit.wait_for(lambda: seen.append(server.threads()) or seen[-1] == count, timeout)
    return seen[-1]


def in_thread(function, *args):
    """Run ``function(*args)`` in a thread; returns a ``join()`` that gives its result."""
    outcome = {}

    def run():
        try:
            outcome["value"] = function(*args)
        except BaseException as error:  # handed to the test's thread
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def join(timeout=30):
        thread.join(timeout)
        assert not thread.is_alive(), "%s did not finish in %s s" % (function.__name__, timeout)
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    return join


def test_slowloris_is_dropped_at_the_request_timeout_and_others_connect(tmp_path):
    loadkit.raise_nofile(2048)
    with ServerProcess("tests.apps:echo", "--request-timeout", "2",
                       log_path=tmp_path / "server.log") as server:
        echo_timed(server.port, "warm-up")
        assert server.settle_threads(1, 10) == 1
        slow = Slowloris(server.port, 500)
        try:
            normal = in_thread(echo_timed, server.port)
            slow.pump(0.5)
            seconds = normal(10)
            print("\nnormal client during 500 slowloris connections: %.3f s" % seconds)
            assert seconds < 2
            slow.pump(5.5)  # each is answered 2 s after its connection was accepted
            assert slow.still_open() == 0
            expected = (b"HTTP/1.1 408 Request Timeout\r\n", b"408 Request Timeout: request "
                        b"head not complete within 2 s\n")
            wrong = [index for index, answer in enumerate(slow.answers)
                     if not (answer.startswith(expected[0]) and answer.endswith(expected[1]))]
            assert wrong == []
            assert min(slow.ended) > 1.9
            assert max(slow.ended) < 6
        finally:
            slow.close()
        assert server.settle_threads(1, 10) == 1
        assert echo_timed(server.port) < 2


def test_slowloris_with_default_limits_does_not_keep_a_normal_client_out(tmp_path):
    loadkit.raise_nofile(2048)
    with ServerProcess("tests.apps:echo", log_path=tmp_path / "server.log") as server:
        echo_timed(server.port, "warm-up")
        assert server.settle_threads(1, 10) == 1
        slow = Slowloris(server.port, 500)
        try:
            slow.pump(1.0)
            assert threads_reach(server, 1 + 500) == 1 + 500
            normal = in_thread(echo_timed, server.port)
            slow.pump(1.5)
            seconds = normal(10)
            print("\nnormal client during 500 slowloris connections (defaults): %.3f s"
                  % seconds)
            assert seconds < 2
            assert slow.still_open() == 500  # request_timeout is 10 s: still waiting
            assert slow.answers == [b""] * 500
        finally:
            slow.close()
        assert server.settle_threads(1, 10) == 1


# -- misbehaving apps ---------------------------------------------------------------------------

def test_apps_that_raise_never_read_or_block_do_not_stop_the_server(tmp_path):
    with ServerProcess("tests.fault_apps:faults", log_path=tmp_path / "server.log") as server:
        echo_timed(server.port, "warm-up")
        assert server.settle_threads(1, 10) == 1
        held = BlockingClient(server.port, "/echo")
        assert held.echo("before") == (TEXT, b"before")

        # Raises right after the upgrade: 1011, the closing handshake, the FIN.
        client = BlockingClient(server.port, "/raise")
        assert client.read_data() == (CLOSE, close_payload(1011, b"internal error"))
        assert client.answer_close(close_payload(1011)) == b""
        assert loadkit.wait_for(lambda: "RuntimeError: the app broke right after the upgrade"
                                in server.log(), 10)
        assert held.echo("after a raise") == (TEXT, b"after a raise")

        # Never reads: our messages pile up unread, the ticks keep coming; our
        # close frame is never answered (nobody reads it), so we drop the
        # connection, and the app's next send ends its thread.
        client = BlockingClient(server.port, "/never-read")
        assert client.read_data() == (TEXT, b"tick 1")
        for index in range(200):
            client.send(TEXT, "unread %d" % index)
        client.send(CLOSE, close_payload(1000))
        frames = []
        deadline = time.monotonic() + 1.2  # ticks keep coming, the close reply never does
        while time.monotonic() < deadline:
            client.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                frames.append(client.read_frame())
            except TimeoutError:
                break
        assert len(frames) >= 2 and all(opcode == TEXT and payload.startswith(b"tick ")
                              for opcode, payload in frames)
        assert held.echo("beside a reader that never reads") == \
            (TEXT, b"beside a reader that never reads")
        client.abort()
        assert server.settle_threads(1 + 1, 5) == 2  # only the held echo's thread is left
        assert echo_timed(server.port) < 2

        # Blocks for ever: its thread stays (only the app could end it); the
        # client leaving changes nothing; the others are served.
        client = BlockingClient(server.port, "/block")
        client.send(TEXT, "nobody listens")
        client.abort()
        stuck = BlockingClient(server.port, "/block")
        never_reads = BlockingClient(server.port, "/never-read")
        assert never_reads.read_data() == (TEXT, b"tick 1")
        assert threads_reach(server, 1 + 4) == 1 + 4  # held, two blocked, one never reading
        assert echo_timed(server.port) < 2
        assert held.echo("still here") == (TEXT, b"still here")

        # SIGTERM: every open WebSocket gets 1001; the blocked threads get the
        # server's bounded wait (5 s), then the process exits anyway.
        status, seconds = server.terminate(timeout=20)
        print("\nstopped with two blocked apps in %.1f s" % seconds)
        assert status == 0
        assert seconds < 10
        going_away = (CLOSE, close_payload(1001, b"server shutting down"))
        assert held.read_data() == going_away
        assert stuck.read_data() == going_away
        while True:
            frame = never_reads.read_data()
            if frame[0] != TEXT:
                break
        assert frame == going_away
        assert server.log().count("Traceback") == 1  # the one of /raise


def test_sigterm_stops_the_server_while_a_send_to_a_peer_that_does_not_read_is_stuck(tmp_path):
    # Without keepalive nothing ends that send: the server's stop must not
    # wait for it (nor for the send lock it holds) longer than its timeout.
    with ServerProcess("tests.apps:echo", "--ping-interval", "none", "--ping-timeout", "none",
                       log_path=tmp_path / "server.log") as server:
        client = BlockingClient(server.port)
        held = BlockingClient(server.port)
        try:
            assert client.echo("then no reading") == (TEXT, b"then no reading")
            sent, _ = loadkit.flood_until_stuck(client.sock)
            assert sent > 65536
            assert threads_reach(server, 1 + 2) == 1 + 2
            assert held.echo("beside a stuck send") == (TEXT, b"beside a stuck send")
            status, seconds = server.terminate(timeout=20)
            print("\nstopped with a stuck send in %.1f s" % seconds)
            assert status == 0
            assert seconds < 10
            assert held.read_data() == (CLOSE, close_payload(1001, b"server shutting down"))
        finally:
            client.abort()
            held.abort()


# -- the log at the default level -------------------------------------------------------------

SECRET_HEADER = "SECRET-HEADER-VALUE"
SECRET_PAYLOAD = "SECRET-PAYLOAD"


def refused(port, raw):
    sock = open_connection("127.0.0.1", port)
    with sock:
        sock.sendall(raw)
        return Reader(sock).read_response()


def exchange_secrets(port):
    """Requests carrying the secrets, accepted and refused; returns the status lines."""
    statuses = []
    secret = [("X-Secret", SECRET_HEADER), ("Cookie", "session=" + SECRET_HEADER)]
    # Plain HTTP with a body.
    statuses.append(refused(port, request("POST", "/form", secret + [
        ("Content-Length", str(len(SECRET_PAYLOAD)))], SECRET_PAYLOAD.encode())).status)
    # An accepted WebSocket: the payload goes both ways.
    client = BlockingClient(port, headers=secret + [("Origin", "http://good.example")])
    assert client.echo(SECRET_PAYLOAD) == (TEXT, SECRET_PAYLOAD.encode())
    assert client.close() == 1000
    statuses.append(101)
    # Refused upgrades: another origin, a bad key, a bad version.
    origin = [("Origin", "http://%s.example" % SECRET_HEADER)]
    statuses.append(refused(port, upgrade_request(headers=secret + origin)).status)
    statuses.append(refused(port, upgrade_request(key=SECRET_HEADER, headers=secret)).status)
    statuses.append(refused(port, upgrade_request(version=SECRET_HEADER, headers=secret)).status)
    # Protocol errors after the upgrade: an unmasked frame, invalid UTF-8.
    good = secret + [("Origin", "http://good.example")]
    for frame, code in [
            (b"\x81" + bytes([len(SECRET_PAYLOAD)]) + SECRET_PAYLOAD.encode(), 1002),
            (loadkit.masked_frame(TEXT, SECRET_PAYLOAD.encode() + b"\xff"), 1007)]:
        client = BlockingClient(port, headers=good)
        client.sock.sendall(frame)
        opcode, payload = client.read_data()
        assert opcode == CLOSE and close_code(payload) == code
        client.abort()
        statuses.append(code)
    # Malformed HTTP: a header line without a colon, an unknown transfer coding.
    statuses.append(refused(port, b"GET / HTTP/1.1\r\nHost: x\r\n" + SECRET_HEADER.encode()
                            + b"\r\n\r\n").status)
    statuses.append(refused(port, request("POST", "/", [("Transfer-Encoding", SECRET_HEADER)]))
                    .status)
    return statuses


EXPECTED_STATUSES = [200, 101, 403, 400, 426, 1002, 1007, 400, 501]


def test_nothing_of_headers_or_payloads_is_logged_at_the_default_level(tmp_path):
    server = ServerProcess("tests.fault_apps:origin_checked", log_path=tmp_path / "server.log")
    try:
        assert exchange_secrets(server.port) == EXPECTED_STATUSES
        assert server.terminate()[0] == 0
    finally:
        server.kill()
    log = server.log() + server.output()
    assert "SECRET" not in log
    # The log is there all the same: access lines and the refusals, without the why.
    assert ' INFO 127.0.0.1 - "POST /form HTTP/1.1" 200 ' in log
    assert " INFO refused WebSocket upgrade of /: 403\n" in log
    assert " INFO refused WebSocket upgrade of /: 426\n" in log


def test_the_reasons_with_header_values_are_logged_at_debug_level(tmp_path):
    # The same requests at debug level: the test above would see a leak.
    server = ServerProcess("tests.fault_apps:origin_checked", "--log-level", "debug",
                           log_path=tmp_path / "server.log")
    try:
        assert exchange_secrets(server.port) == EXPECTED_STATUSES
    finally:
        server.kill()
    log = server.log()
    assert (" DEBUG refused WebSocket upgrade of /: origin not allowed: "
            "http://SECRET-HEADER-VALUE.example\n") in log
    assert " DEBUG refused WebSocket upgrade of /: unsupported Sec-WebSocket-Version: " \
           "SECRET-HEADER-VALUE\n" in log
