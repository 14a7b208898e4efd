"""``--workers N``: several processes on one port, a supervisor, broadcasts across them.

Every test runs the real command line (``python -m wsocket ... --workers N``)
and talks to it with ``websockets``' client.
"""

import os
import signal
import subprocess
import sys
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.netutil import ROOT, wait_for
from tests.serverproc import stop_process
from tests.test_hub_redis import redis_server  # noqa: F401 (a fixture)

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="workers need fork()")

APP = "tests.workers_app:app"
CLIENTS = 24  # enough that SO_REUSEPORT's hashing reaches both workers (all on one: 2**-23)


def children(pid):
    """The live child processes of ``pid`` (Linux's /proc)."""
    path = "/proc/%d/task/%d/children" % (pid, pid)
    with open(path) as file:
        return {int(child) for child in file.read().split()}


def open_clients(server, count=CLIENTS):
    clients = []
    for _ in range(count):
        client = connect(server.ws_url, open_timeout=20, close_timeout=5)
        clients.append(client.__enter__())  # closed by close_all()
    pids = []
    for client in clients:
        client.send("pid")
        pids.append(int(client.recv(timeout=20)))
    return clients, pids


def close_all(clients):
    for client in clients:
        client.close()


@pytest.fixture
def two_workers(wsocket_process):
    return wsocket_process(APP, "--port", "0", "--workers", "2")


def test_every_worker_serves_the_one_port(two_workers):
    wait_for(lambda: len(children(two_workers.proc.pid)) == 2, timeout=30,
             what="two workers")
    clients, pids = open_clients(two_workers)
    try:
        assert set(pids) == children(two_workers.proc.pid)
        assert two_workers.proc.pid not in pids  # the supervisor serves nothing itself
    finally:
        close_all(clients)


def test_a_broadcast_reaches_the_clients_of_every_worker(two_workers):
    clients, pids = open_clients(two_workers)
    try:
        assert len(set(pids)) == 2
        clients[0].send("say:hello everyone")
        for client in clients:
            assert client.recv(timeout=20) == "hello everyone"
        # and from a client of the other worker too
        other = next(client for client, pid in zip(clients, pids) if pid != pids[0])
        other.send("say:and back")
        for client in clients:
            assert client.recv(timeout=20) == "and back"
    finally:
        close_all(clients)
    assert "Traceback" not in two_workers.stderr()


def test_a_worker_that_dies_is_replaced(two_workers):
    clients, pids = open_clients(two_workers)
    try:
        victim = pids[0]
        survivors = [client for client, pid in zip(clients, pids) if pid != victim]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(children(two_workers.proc.pid) - {victim}) == 2, timeout=30,
                 what="a new worker")
        wait_for(lambda: "(pid %d) ended (killed by SIGKILL); starting another" % victim
                 in two_workers.stderr(),
                 timeout=10, what="the supervisor's log line")
        new_clients, new_pids = open_clients(two_workers)
        try:
            assert victim not in new_pids
            assert set(new_pids) == children(two_workers.proc.pid)
            # The new worker joined the relay: a survivor's broadcast reaches its clients.
            survivors[0].send("say:still here")
            for client in survivors + new_clients:
                assert client.recv(timeout=20) == "still here"
        finally:
            close_all(new_clients)
    finally:
        close_all(clients)


def test_sigterm_closes_every_worker_s_websockets_with_1001(two_workers):
    supervisor = two_workers.proc.pid
    clients, pids = open_clients(two_workers)
    workers = children(supervisor)
    assert len(set(pids)) == 2
    two_workers.proc.send_signal(signal.SIGTERM)
    for client in clients:
        with pytest.raises(ConnectionClosed) as closed:
            client.recv(timeout=30)
        assert closed.value.rcvd.code == 1001
    assert two_workers.proc.wait(30) == 0
    for pid in workers:
        assert not os.path.exists("/proc/%d" % pid) or _is_zombie_of_nobody(pid)


def _is_zombie_of_nobody(pid):
    try:
        with open("/proc/%d/stat" % pid) as file:
            return file.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_workers_zero_means_one_per_core(wsocket_process):
    server = wsocket_process(APP, "--port", "0", "--workers", "0")
    expected = len(os.sched_getaffinity(0))
    wait_for(lambda: len(children(server.proc.pid)) == expected, timeout=30,
             what="%d workers" % expected)
    wait_for(lambda: "%d worker processes" % expected in server.stderr(), timeout=10,
             what="the supervisor's log line")


def test_run_with_workers_from_python(tmp_path):
    code = ("from wsocket import run\n"
            "from tests.workers_app import app\n"
            "run(app, port=0, workers=2)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=str(ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        banner = proc.stdout.readline().decode()
        assert banner.startswith("wsocket serving on http://127.0.0.1:")
        port = int(banner.split(":")[2].split("/")[0])
        with connect("ws://127.0.0.1:%d/" % port, open_timeout=20) as client:
            client.send("hi")
            assert client.recv(timeout=20) == "hi"
        wait_for(lambda: len(children(proc.pid)) == 2, timeout=30, what="two workers")
    finally:
        assert stop_process(proc) == 0
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.parametrize("value, message", [
    ("-1", "argument --workers: must be 0 (one per core) or more"),
    ("two", "argument --workers: expected a whole number, not 'two'"),
])
def test_a_bad_workers_count_is_one_clear_line(value, message):
    result = subprocess.run([sys.executable, "-m", "wsocket", APP, "--workers", value],
                            cwd=str(ROOT), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == "wsocket: error: %s (see wsocket --help)\n" % message


@pytest.mark.parametrize("workers", [-1, 1.5, "2", True])
def test_run_refuses_a_bad_workers_value(workers):
    from wsocket import run
    with pytest.raises(ValueError, match="workers must be a whole number, 0 for one per "
                                         "core, not %s" % repr(workers).replace(".", r"\.")):
        run(None, port=0, workers=workers)


def test_one_worker_is_the_plain_server(wsocket_process):
    server = wsocket_process(APP, "--port", "0", "--workers", "1")
    with connect(server.ws_url, open_timeout=20) as client:
        client.send("pid")
        assert int(client.recv(timeout=20)) == server.proc.pid
    time.sleep(0)  # nothing forked
    assert children(server.proc.pid) == set()


def test_without_so_reuseport_the_workers_share_one_socket(tmp_path):
    """Where the platform has no SO_REUSEPORT, every worker accepts on one inherited socket."""
    code = ("import socket\n"
            "del socket.SO_REUSEPORT\n"
            "from wsocket import run\n"
            "from tests.workers_app import app\n"
            "run(app, port=0, workers=2)\n")
    stderr_path = tmp_path / "stderr.txt"
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=str(ROOT),
                                stdout=subprocess.PIPE, stderr=stderr,
                                env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        banner = proc.stdout.readline().decode()
        port = int(banner.split(":")[2].split("/")[0])

        class Address:
            ws_url = "ws://127.0.0.1:%d/" % port
        clients, pids = open_clients(Address)
        try:
            assert set(pids) <= children(proc.pid)
            clients[-1].send("say:shared")
            for client in clients:
                assert client.recv(timeout=20) == "shared"
        finally:
            close_all(clients)
    finally:
        assert stop_process(proc) == 0
        proc.stdout.close()
    text = stderr_path.read_text()
    assert "2 worker processes, sharing one listening socket" in text
    assert "Traceback" not in text


def test_two_supervisors_share_broadcasts_through_redis(redis_server, wsocket_process):  # noqa: F811
    """A Redis hub spans every worker of every supervisor (of every host)."""
    first = wsocket_process(APP, "--port", "0", "--workers", "2", "--hub", redis_server.url)
    second = wsocket_process(APP, "--port", "0", "--workers", "2", "--hub", redis_server.url)
    clients, pids = open_clients(first, 12)
    more, more_pids = open_clients(second, 12)
    try:
        assert len(set(pids)) == 2 and len(set(more_pids)) == 2
        deadline = time.monotonic() + 30
        while True:  # each worker subscribes to Redis when its first client arrives
            more[0].send("say:ready?")
            if all(client.recv(timeout=20) == "ready?" for client in more):
                try:
                    if clients[0].recv(timeout=0.5) == "ready?":
                        break
                except TimeoutError:
                    pass
            assert time.monotonic() < deadline, "broadcasts never crossed Redis"
        for client in clients[1:]:  # drain the probes
            while client.recv(timeout=20) != "ready?":
                pass
        time.sleep(0.5)
        clients[3].send("say:to all four workers")
        for client in clients + more:
            message = client.recv(timeout=20)
            while message == "ready?":
                message = client.recv(timeout=20)
            assert message == "to all four workers"
    finally:
        close_all(clients + more)
