"""connect(url, reconnect=True): which endings bring a new connection, and the backoff between.

The server that restarts is wsocket's own as a subprocess, killed (the
client sees 1006) and started again on the same port. The others are the
websockets library's server following a plan: each new connection takes the
next step (refuse with a status, accept and close with a code, or accept and
echo). Timing is checked only as a lower bound (the machine is busy): the
loop slept at least the delays it reports, and the delays themselves are
checked against the backoff's steps.
"""

import json
import logging
import os
import signal
import socket
import ssl
import threading
import time

import pytest
from websockets.sync.server import serve as websockets_serve

from wsocket import ConnectError, ConnectionClosed, InvalidStatus, connect
from wsocket.client import RECONNECT_CODES, Reconnecting
from wsocket.client.reconnect import Backoff, is_transient
from tests.serverproc import free_port, python, start_server


class PlannedServer:
    """Each connection takes the next step of ``plan``: a status (refused),
    ("close", code) (accepted, then closed with code), or "echo" (accepted:
    sends ``{"connection": n}``, then echoes).
    """

    def __init__(self, plan):
        self.plan = list(plan)
        self.connections = 0

    def process_request(self, connection, request):
        self.connections += 1
        step = self.plan.pop(0) if self.plan else "echo"
        if isinstance(step, int):
            return connection.respond(step, "planned refusal")
        connection.planned_step = step
        return None

    def handler(self, connection):
        step = connection.planned_step
        if step != "echo":
            connection.close(step[1], "planned")
            return
        connection.send(json.dumps({"connection": self.connections}))
        for message in connection:
            connection.send(message)


@pytest.fixture
def planned():
    """Factory: ``planned(plan)`` -> (PlannedServer, ws:// URL); shut down at teardown."""
    running = []

    def start(plan):
        state = PlannedServer(plan)
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        server = websockets_serve(state.handler, sock=listener,
                                  process_request=state.process_request)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        running.append((server, thread))
        return state, "ws://127.0.0.1:%d/" % port

    yield start
    for server, thread in running:
        server.shutdown()
        thread.join(5)


FAST = dict(reconnect=True, backoff_initial=0.05, backoff_factor=2.0, backoff_max=1.0,
            backoff_jitter=0.0)


def greeting(websocket):
    return json.loads(websocket.receive(timeout=10))["connection"]


@pytest.mark.parametrize("code", sorted(RECONNECT_CODES - {1006, 1014}) + [1014])
def test_reconnects_after_a_server_error_restart_or_try_again_later(planned, code):
    server, url = planned([("close", code), "echo"])
    connections = connect(url, **FAST)
    first = next(connections)
    with pytest.raises(ConnectionClosed) as raised:
        first.receive(timeout=10)
    assert raised.value.code == code
    second = next(connections)
    assert greeting(second) == 2
    assert connections.delays == [0.05]
    assert connections.attempts == 2
    second.close()
    with pytest.raises(StopIteration):
        next(connections)
    with pytest.raises(StopIteration):  # and it stays ended
        next(connections)


@pytest.mark.parametrize("code", [1000, 1001, 1008, 4000])
def test_a_normal_or_final_close_ends_the_loop(planned, code):
    server, url = planned([("close", code), "echo"])
    connections = connect(url, **FAST)
    first = next(connections)
    with pytest.raises(ConnectionClosed):
        first.receive(timeout=10)
    assert first.close_code == code
    with pytest.raises(StopIteration):
        next(connections)
    assert (server.connections, connections.delays) == (1, [])


def test_the_for_loop(planned):
    server, url = planned([("close", 1012), ("close", 1013), "echo"])
    seen = []
    for ws in connect(url, **FAST):
        for message in ws:
            seen.append(json.loads(message)["connection"])
            ws.close()
    assert seen == [3]
    assert server.connections == 3


def test_a_connection_left_open_by_the_body_is_closed_and_ends_the_loop(planned):
    server, url = planned(["echo"])
    connections = connect(url, **FAST)
    first = next(connections)
    assert greeting(first) == 1
    with pytest.raises(StopIteration):
        next(connections)
    assert (first.closed, first.close_code) == (True, 1000)
    assert server.connections == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429])
def test_a_4xx_is_raised_and_not_retried(planned, status):
    server, url = planned([status])
    connections = connect(url, **FAST)
    with pytest.raises(InvalidStatus) as raised:
        next(connections)
    assert type(raised.value) is InvalidStatus
    assert str(raised.value) == ("server at %s answered %d instead of 101 Switching Protocols"
                                 % (url, status))
    assert (connections.attempts, connections.delays) == (1, [])
    with pytest.raises(StopIteration):
        next(connections)


def test_a_4xx_after_a_drop_ends_the_loop(planned):
    server, url = planned([("close", 1011), 403])
    connections = connect(url, **FAST)
    first = next(connections)
    with pytest.raises(ConnectionClosed):
        first.receive(timeout=10)
    with pytest.raises(InvalidStatus) as raised:
        next(connections)
    assert raised.value.status == 403
    assert connections.delays == [0.05]


def test_5xx_answers_are_retried_with_growing_delays(planned):
    server, url = planned([503, 502, 500, "echo"])
    connections = connect(url, **FAST)
    started = time.monotonic()
    ws = next(connections)
    elapsed = time.monotonic() - started
    assert greeting(ws) == 4
    assert connections.delays == [0.05, 0.1, 0.2]
    assert connections.attempts == 4
    assert elapsed >= sum(connections.delays)
    ws.close()


def test_a_refused_certificate_is_not_retried(serve, certificate):
    server = serve(lambda environ, start_response: [], certfile=certificate["certfile"],
                   keyfile=certificate["keyfile"])
    connections = connect("wss://127.0.0.1:%d/" % server.server_address[1], **FAST)
    with pytest.raises(ConnectError) as raised:
        next(connections)  # the system's trust store does not know the test CA
    assert type(raised.value) is ConnectError
    assert str(raised.value).startswith("TLS handshake with wss://127.0.0.1:%d/ failed: [SSL: "
                                        "CERTIFICATE_VERIFY_FAILED]" % server.server_address[1])
    assert (connections.attempts, connections.delays) == (1, [])


def test_each_wait_is_logged(planned, caplog):
    server, url = planned([503, "echo"])
    caplog.set_level(logging.INFO, logger="wsocket")
    ws = next(connect(url, **FAST))
    ws.close()
    assert [record.getMessage() for record in caplog.records if record.name == "wsocket"] == [
        "server at %s answered 503 instead of 101 Switching Protocols; reconnecting in 0.05 s"
        % url]


def test_reconnects_with_backoff_after_the_server_is_killed_and_restarted(tmp_path):
    """The server dies (1006 for the client); attempts fail until it is back on its port."""
    port = free_port()
    command = python("-m", "wsocket", "tests.apps:echo", "--port", "{port}")
    servers = [start_server("wsocket", command, tmp_path / "first.log", port=port)]
    restarter = None
    try:
        connections = connect("ws://127.0.0.1:%d/" % port, reconnect=True, backoff_initial=0.1,
                              backoff_factor=2.0, backoff_max=0.8, backoff_jitter=0.5)
        first = next(connections)
        first.send("before")
        assert first.receive(timeout=10) == "before"

        os.killpg(servers[0].proc.pid, signal.SIGKILL)
        servers[0].proc.wait(10)
        assert first.receive(timeout=10) is None
        assert first.close_code == 1006

        def restart():
            # Back once the client has failed a few times (or after 30 s whatever happens).
            deadline = time.monotonic() + 30
            while connections.attempts < 4 and time.monotonic() < deadline:
                time.sleep(0.01)
            servers.append(start_server("wsocket", command, tmp_path / "second.log", port=port))

        restarter = threading.Thread(target=restart, daemon=True)
        restarter.start()
        dropped = time.monotonic()
        second = next(connections)
        elapsed = time.monotonic() - dropped
        second.send("after")
        assert second.receive(timeout=10) == "after"

        delays = connections.delays
        # One after the drop, one after each failed attempt: the server came back
        # once the fourth attempt had started.
        assert len(delays) >= 3
        assert connections.attempts == len(delays) + 1
        steps = [min(0.1 * 2 ** i, 0.8) for i in range(len(delays))]
        for delay, step in zip(delays, steps):
            assert step * 0.5 <= delay <= step  # the jitter takes at most half of a step
        assert elapsed >= sum(delays)  # it did wait that long (lower bound only)
        second.close()
        with pytest.raises(StopIteration):
            next(connections)
    finally:
        if restarter is not None:
            restarter.join(60)
        for server in servers:
            server.stop()


# -- the backoff itself ---------------------------------------------------------------

def test_backoff_steps_and_jitter():
    backoff = Backoff(initial=0.5, maximum=3.0, factor=2.0, jitter=0.0)
    assert [backoff.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5
    # jitter shortens each step by up to that fraction of it
    high = Backoff(initial=1.0, maximum=8.0, factor=3.0, jitter=0.25, rng=lambda: 0.0)
    low = Backoff(initial=1.0, maximum=8.0, factor=3.0, jitter=0.25, rng=lambda: 1.0)
    assert [high.next_delay() for _ in range(3)] == [1.0, 3.0, 8.0]
    assert [low.next_delay() for _ in range(3)] == [0.75, 2.25, 6.0]


def test_backoff_defaults():
    connections = connect("ws://127.0.0.1:1/", reconnect=True)
    assert isinstance(connections, Reconnecting)
    backoff = connections._backoff
    assert (backoff.initial, backoff.maximum, backoff.factor, backoff.jitter) == (
        1.0, 60.0, 2.0, 0.5)


@pytest.mark.parametrize("options, message", [
    ({"backoff_initial": -1}, "backoff_initial must be a number of seconds >= 0, not -1"),
    ({"backoff_max": "9"}, "backoff_max must be a number of seconds >= 0, not '9'"),
    ({"backoff_factor": 0.5}, "backoff_factor must be a number >= 1, not 0.5"),
    ({"backoff_jitter": 1.5}, "backoff_jitter must be a number from 0 to 1, not 1.5"),
    ({"backoff_initial": 5, "backoff_max": 2},
     "backoff_max (2) must not be less than backoff_initial (5)"),
])
def test_bad_backoff_options(options, message):
    with pytest.raises(ValueError) as raised:
        connect("ws://127.0.0.1:1/", reconnect=True, **options)
    assert type(raised.value) is ValueError
    assert str(raised.value) == message


def test_bad_urls_are_raised_at_once_not_retried():
    with pytest.raises(ValueError) as raised:
        connect("http://127.0.0.1/", reconnect=True)
    assert str(raised.value) == "not a WebSocket URL (ws:// or wss://): 'http://127.0.0.1/'"


@pytest.mark.parametrize("error, transient", [
    (ConnectError("cannot connect"), True),
    (InvalidStatus("x", 503), True),
    (InvalidStatus("x", 404), False),
    (InvalidStatus("x", 302), False),
    (ConnectionResetError(), True),
    (ValueError("bad"), False),
    (ssl.SSLCertVerificationError("bad certificate"), False),
])
def test_which_errors_are_transient(error, transient):
    assert is_transient(error) is transient
