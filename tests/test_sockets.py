"""wsocket._sockets: the wake-up pair and the quiet shutdown the I/O layer shares.

Also ``_transport.is_tcp``, which decides where TCP options apply.
"""

import select
import socket

import pytest

from wsocket._sockets import READ_SIZE, WakeUpPair, shutdown_quietly
from wsocket._transport import is_tcp, no_delay


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
