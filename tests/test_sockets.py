"""wsocket._sockets: the wake-up pair and the quiet shutdown the I/O layer shares.

Also ``_transport.is_tcp``, which decides where TCP options apply.
"""

import os
import select
import socket
import subprocess
import sys
import textwrap

import pytest

from tests.netutil import ROOT, TIMEOUT
from tests.serverproc import python, start_server
from wsocket._sockets import READ_SIZE, WakeUpPair, reserve_descriptors, shutdown_quietly
from wsocket._transport import is_tcp, no_delay
from wsocket.server import DESCRIPTORS_BESIDE_CONNECTIONS

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="reads the descriptor table's size in /proc (Linux)")


def readable(fileobj, timeout=0.0):
    return bool(select.select([fileobj], [], [], timeout)[0])


@pytest.fixture
def pair():
    wake_up = WakeUpPair()
    try:
        yield wake_up
    finally:
        wake_up.close()


def test_wake_makes_it_readable_and_drain_quiets_it(pair):
    assert not readable(pair)
    pair.wake()
    assert readable(pair, timeout=10)
    assert readable(pair.fileno())  # the descriptor works as well as the object
    pair.drain()
    assert not readable(pair)


def test_many_wake_ups_never_block_and_one_drain_takes_them_all(pair):
    # more than the socket buffer holds (each byte costs a buffer of its
    # own): the sends past it fail quietly
    for _ in range(20_000):
        pair.wake()
    assert readable(pair, timeout=10)
    pair.drain()
    assert not readable(pair)
    pair.wake()  # and it still works afterwards
    assert readable(pair, timeout=10)


def test_drain_without_a_wake_up_returns_at_once(pair):
    pair.drain()
    assert not readable(pair)


def test_close_releases_both_ends():
    wake_up = WakeUpPair()
    wake_up.close()
    assert wake_up.fileno() == -1
    wake_up.wake()  # after close: ignored, like a full buffer
    wake_up.drain()


@pytest.fixture
def connected():
    left, right = socket.socketpair()
    try:
        yield left, right
    finally:
        left.close()
        right.close()


def test_shutdown_quietly_ends_both_directions(connected):
    left, right = connected
    shutdown_quietly(left)
    right.settimeout(10)
    assert right.recv(READ_SIZE) == b""  # the peer sees the end
    with pytest.raises(OSError):
        left.send(b"x")


def test_shutdown_quietly_can_end_only_our_writing(connected):
    left, right = connected
    shutdown_quietly(left, socket.SHUT_WR)
    right.settimeout(10)
    assert right.recv(READ_SIZE) == b""
    right.sendall(b"still readable")
    left.settimeout(10)
    assert left.recv(READ_SIZE) == b"still readable"


def test_shutdown_quietly_ignores_a_closed_or_unconnected_socket(connected):
    left, _ = connected
    left.close()
    shutdown_quietly(left)  # EBADF: ignored
    unconnected = socket.socket()
    try:
        shutdown_quietly(unconnected)  # ENOTCONN: ignored
    finally:
        unconnected.close()


def test_read_size_is_one_recv_of_64_kib():
    assert READ_SIZE == 65536


def test_is_tcp_knows_tcp_from_other_sockets():
    # Read from _socket's own family (an int), not socket.py's IntEnum.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as ipv4:
        assert is_tcp(ipv4)
        no_delay(ipv4)
        assert ipv4.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    if socket.has_ipv6:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as ipv6:
            assert is_tcp(ipv6)
    if hasattr(socket, "AF_UNIX"):
        left, right = socket.socketpair(socket.AF_UNIX)
        with left, right:
            assert not is_tcp(left)
            no_delay(left)  # no TCP option there: nothing happens, nothing raised

    class GreenLike:  # not a socket.socket: its own family attribute decides
        family = socket.AF_INET

    assert is_tcp(GreenLike())
    assert not is_tcp(object())


# -- reserve_descriptors: the descriptor table grown once, before the connections --------

def proc_number(pid, file, label, column):
    """A number from /proc/PID/FILE: column ``column`` of the line starting with ``label``."""
    with open("/proc/%s/%s" % (pid, file)) as lines:
        for line in lines:
            if line.startswith(label):
                return int(line.split()[column])
    raise AssertionError("no %r in /proc/%s/%s" % (label, pid, file))


def table_size(pid="self"):
    """The size of a process's descriptor table."""
    return proc_number(pid, "status", "FDSize:", 1)


def soft_descriptor_limit(pid):
    return proc_number(pid, "limits", "Max open files", 3)


def run_fresh(code):
    """Run ``code`` in a new interpreter (a descriptor table of its own); its output's last line."""
    done = subprocess.run(python("-c", textwrap.dedent(code)), cwd=str(ROOT), timeout=TIMEOUT * 3,
                          capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout.strip().splitlines()[-1]


FRESH_PROCESS = """
    import os, resource
    from wsocket._sockets import reserve_descriptors
    from tests.test_sockets import table_size
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
"""


@linux_only
def test_reserve_descriptors_grows_the_table_once_for_all():
    line = run_fresh(FRESH_PROCESS + """
    limit = min(hard, 20000)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    asked = min(5000, limit)  # (5,000, unless the hard limit is lower)
    before = table_size()
    open_before = sorted(os.listdir("/proc/self/fd"))
    reserved = reserve_descriptors(asked)
    # it opened nothing that stays open
    assert sorted(os.listdir("/proc/self/fd")) == open_before, os.listdir("/proc/self/fd")
    print(before, asked, reserved, table_size())
    """)
    before, asked, reserved, after = map(int, line.split())
    assert before < asked  # a new process starts with a small table
    assert reserved == asked
    assert after >= asked


@linux_only
def test_reserve_descriptors_stops_at_the_soft_limit():
    line = run_fresh(FRESH_PROCESS + """
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 1024), hard))
    print(reserve_descriptors(100_000), table_size(), min(hard, 1024))
    """)
    reserved, after, soft = map(int, line.split())
    assert reserved == soft
    assert after == soft  # as big as anything may be opened, and no bigger


@linux_only
def test_reserve_descriptors_never_replaces_an_open_descriptor():
    # The descriptor asked for is open already: it stays what it was, and
    # the table is that big anyway.
    line = run_fresh(FRESH_PROCESS + """
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    reader, writer = os.pipe()
    os.dup2(writer, 2999)
    reserved = reserve_descriptors(3000)
    os.write(2999, b"still the pipe")
    print(reserved, os.read(reader, 100).decode().replace(" ", "_"), table_size())
    """)
    reserved, read_back, after = line.split()
    assert read_back == "still_the_pipe"
    assert int(after) >= 3000
    assert int(reserved) in (0, 3000)  # 0: no free descriptor that high (capped limit)


def test_reserve_descriptors_of_nothing_does_nothing():
    assert reserve_descriptors(0) == 0


@linux_only
def test_reserve_descriptors_takes_a_float_limit_and_a_process_out_of_descriptors():
    line = run_fresh(FRESH_PROCESS + """
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 256), hard))
    first = reserve_descriptors(200.0)  # max_connections may be given as a float
    held = []
    try:
        while True:
            held.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass
    print(first, reserve_descriptors(200))  # every descriptor taken: nothing to do, no error
    """)
    assert line.split() == ["200", "0"]


@linux_only
def test_the_server_reserves_a_descriptor_for_each_connection_before_serving(tmp_path):
    with start_server("wsocket", python("-m", "wsocket", "--port", "{port}",
                                        "--max-connections", "3000"),
                      tmp_path / "server.log") as server:
        expected = min(3000 + DESCRIPTORS_BESIDE_CONNECTIONS,
                       soft_descriptor_limit(server.proc.pid))
        assert table_size(server.proc.pid) >= expected
        server.assert_no_errors()
