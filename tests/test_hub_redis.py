"""Broadcast and rooms across processes: the Redis backend, with a real Redis.

Each test starts Debian's ``redis-server`` on a free port of 127.0.0.1 (no
persistence) and two ``python -m wsocket tests.hub_apps:app`` processes
sharing it, one configured with ``--hub``, the other with ``WSOCKET_HUB``;
clients of both are the websockets library. Redis is restarted in the
middle, as happens in production, and broadcasts must flow again.
"""

import base64
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.netutil import ROOT, TIMEOUT, Reader, wait_for
from tests.test_hub import b64, clients, command, join, reply  # noqa: F401 (a fixture)
from wsocket import Hub, HubError, WebSocket

REDIS_SERVER = "/usr/bin/redis-server"
START_TIMEOUT = 15.0
# A broadcast crosses two processes and Redis: on a busy 2-core machine that
# can take more than netutil's TIMEOUT. Only a failing test waits this long.
DELIVERY_TIMEOUT = 30.0


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """``redis-server`` on 127.0.0.1:``port``, without persistence; restartable."""

    def __init__(self, folder):
        self.folder = folder
        self.port = free_port()
        self.url = "redis://127.0.0.1:%d/0" % self.port
        self.proc = None
        self.starts = 0

    def start(self):
        assert os.path.exists(REDIS_SERVER), "redis-server is missing: .ci/run installs it"
        self.starts += 1
        log = open(self.folder / ("redis-%d.log" % self.starts), "wb")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not start on %d" % self.port)
            time.sleep(0.05)

    def answers(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16) == b"+PONG\r\n"
        except OSError:
            return False

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()




def next_messages(receivers):
    return [receiver.recv(timeout=DELIVERY_TIMEOUT) for receiver in receivers]


def assert_nothing_else_came(everyone, sender):
    """A broadcast to all from ``sender`` is the next message of each client."""
    marker = "marker %f" % time.monotonic()
    command(sender, say=marker)
    assert next_messages(everyone) == [marker] * len(everyone)


def check_broadcasts(a1, a2, b1, b2):
    """a1 and b1 are in "red", a2 in "blue", b2 in a room with a bytes name."""
    everyone = [a1, a2, b1, b2]
    command(a1, say="hello everyone \u2603")
    assert next_messages(everyone) == ["hello everyone \u2603"] * 4
    command(b2, say="and back")
    assert next_messages(everyone) == ["and back"] * 4

    command(b1, say="red only", room="red")
    assert next_messages([a1, b1]) == ["red only"] * 2
    assert_nothing_else_came(everyone, b2)

    every_byte = bytes(range(256)) * 4
    command(a2, say_b64=b64(every_byte), room={"b64": b64(b"\x00\xffroom\r\n")})
    assert b2.recv(timeout=DELIVERY_TIMEOUT) == every_byte
    command(a2, say_b64=b64("caf\u00e9 \x00".encode()), binary=False, room="red")
    assert next_messages([a1, b1]) == ["caf\u00e9 \x00"] * 2
    command(b1, say="text as binary", binary=True, room="blue")
    assert a2.recv(timeout=DELIVERY_TIMEOUT) == b"text as binary"
    assert_nothing_else_came(everyone, a2)

    command(a1, say="not to the sender", room="red", exclude_me=True)
    assert b1.recv(timeout=DELIVERY_TIMEOUT) == "not to the sender"
    command(b1, token=True)
    token = reply(b1)["token"]
    command(a1, say="not to b1", exclude=[token])
    assert next_messages([a1, a2, b2]) == ["not to b1"] * 3
    assert_nothing_else_came(everyone, b2)


def wait_until_broadcasts_flow(sender, receivers, attempts=60):
    """Probe until one broadcast of ``sender`` reaches every receiver.

    Broadcasts made while a process is not connected to Redis are lost (pub/sub
    keeps no history), so after a restart probes go out until one arrives
    everywhere; earlier probes arrive before it or not at all.
    """
    for attempt in range(attempts):
        probe = "probe %d" % attempt
        command(sender, say=probe)
        if all([receive_until(receiver, probe, 1.0) for receiver in receivers]):
            return attempt
    raise AssertionError("broadcasts did not flow again after %d probes" % attempts)


def receive_until(client, wanted, timeout):
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        try:
            message = client.recv(timeout=remaining)
        except TimeoutError:
            return False
        if message == wanted:
            return True
        assert message.startswith("probe "), message


def test_broadcasts_reach_every_process_and_flow_again_after_redis_restarts(
        redis_server, wsocket_process, clients, monkeypatch):
    server_a = wsocket_process("tests.hub_apps:app", "--port", "0", "--hub", redis_server.url)
    monkeypatch.setenv("WSOCKET_HUB", redis_server.url)
    server_b = wsocket_process("tests.hub_apps:app", "--port", "0")
    monkeypatch.delenv("WSOCKET_HUB")
    new_a, new_b = clients(server_a.ws_url), clients(server_b.ws_url)
    a1, a2, b1, b2 = new_a(), new_a(), new_b(), new_b()
    join(a1, "red")
    join(b1, "red")
    join(a2, "blue")
    join(b2, {"b64": base64.b64encode(b"\x00\xffroom\r\n").decode()})
    for client, count in ((a1, 2), (b2, 2)):
        command(client, count=None)  # each process counts its own clients
        assert reply(client) == {"count": count}
    check_broadcasts(a1, a2, b1, b2)

    redis_server.stop()
    for server in (server_a, server_b):
        wait_for(lambda: "hub: lost the subscription to Redis at %s" % redis_server.url
                 in server.stderr(), what="the servers to notice")
    # Meanwhile each process still reaches its own clients.
    command(a1, say="local only")
    assert next_messages([a1, a2]) == ["local only"] * 2
    redis_server.start()
    wait_until_broadcasts_flow(a1, [a1, a2, b1, b2])
    wait_until_broadcasts_flow(b1, [a1, a2, b1, b2])
    check_broadcasts(a1, a2, b1, b2)

    url = redis_server.url
    for server in (server_a, server_b):
        log = server.stderr()
        assert "ERROR hub: lost the subscription to Redis at %s (" % url in log
        assert "WARNING hub: subscribed again to Redis at %s after " % url in log
        assert "Traceback" not in log
    # Only A broadcast while Redis was down ("local only"): it says so, and what was lost.
    log = server_a.stderr()
    assert "ERROR hub: lost the connection to Redis at %s (" % url in log
    assert re.search(r"WARNING hub: Redis at %s is back after [0-9.]+ s; [1-9][0-9]* "
                     r"broadcasts made here meanwhile were lost for the other processes"
                     % re.escape(url), log), log[-3000:]


def run_wsocket(*args, env=None):
    done = subprocess.run([sys.executable, "-m", "wsocket", *args], cwd=str(ROOT),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=30, env=dict(os.environ, **(env or {})))
    return done.returncode, done.stdout, done.stderr


def test_a_redis_that_is_down_at_start_is_a_clear_error():
    port = free_port()
    url = "redis://127.0.0.1:%d/0" % port
    expected = ("wsocket: error: cannot reach Redis at %s: Error 111 connecting to "
                "127.0.0.1:%d. Connection refused.\n" % (url, port))
    assert run_wsocket("tests.hub_apps:app", "--port", "0", "--hub", url) == (2, "", expected)
    assert run_wsocket("--port", "0", env={"WSOCKET_HUB": url}) == (2, "", expected)
    # A password in the URL stays out of the message.
    status, stdout, stderr = run_wsocket(
        "--port", "0", "--hub", "redis://:hunter2@127.0.0.1:%d/0" % port)
    assert status == 2 and stdout == ""
    assert stderr.startswith("wsocket: error: cannot reach Redis at "
                             "redis://:***@127.0.0.1:%d/0: " % port)
    assert "hunter2" not in stderr
    with pytest.raises(HubError) as error:
        Hub(url)
    assert str(error.value) == expected[len("wsocket: error: "):-1]


def test_without_the_redis_package_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "redis", None)  # import redis now raises ImportError
    with pytest.raises(HubError) as error:
        Hub("redis://127.0.0.1:6379/0")
    assert str(error.value) == ("the Redis hub (redis://127.0.0.1:6379/0) needs the redis "
                                "package: pip install 'wsocket[redis]'")


def test_two_hubs_of_one_process_share_through_redis(redis_server):
    """Each hub is a node of its own: rooms, exclusion by token and bytes travel between them."""
    first, second = Hub(redis_server.url), Hub(redis_server.url)
    pairs = [socket.socketpair() for _ in range(3)]
    try:
        assert first.backend == second.backend == "redis" and first.node != second.node
        x, y, z = (WebSocket(ours) for ours, _ in pairs)
        peers = [Reader(peer) for _, peer in pairs]
        for _, peer in pairs:
            peer.settimeout(TIMEOUT)
        first.join(x, "r")
        second.join(y, "r")
        second.join(z, b"\x00")
        assert first.broadcast("hi r", room="r") == 1  # handed to x here; y gets it via Redis
        assert [peers[0].read_frame(), peers[1].read_frame()] == [(True, 1, b"hi r")] * 2
        assert second.broadcast(b"\xff\x00", room=b"\x00", exclude=first.token(x)) == 1
        assert peers[2].read_frame() == (True, 2, b"\xff\x00")
        first.broadcast("not to y", exclude=[second.token(y)])
        first.broadcast("to all")
        assert [peer.read_frame() for peer in peers] == [
            (True, 1, b"not to y"), (True, 1, b"to all"), (True, 1, b"not to y")]
        assert peers[2].read_frame() == (True, 1, b"to all")
    finally:
        first.close()
        second.close()
        for ours, peer in pairs:
            ours.close()
            peer.close()
