"""Socket helpers the I/O layer shares (the reactor, the WebSocket's writer thread).

Standard library only, like the rest of the core.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import TYPE_CHECKING, Callable, cast

from .protocol.frames import SPEEDUPS, Buffer

if TYPE_CHECKING:
    from . import _speedups

__all__ = ["READ_SIZE", "MSG_DONTWAIT", "shutdown_quietly", "WakeUpPair", "send_nowait",
           "send_nowait_in_loop", "recv_nowait_in_loop", "DirectSend", "DirectReceive", "EventTurn",
           "new_lock", "reserve_descriptors"]

READ_SIZE = 65536  # bytes asked of one recv() on a connection
MSG_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)  # 0 where there is none
# The longest a connection's read or the reactor waits at once, in seconds.
# poll() and epoll take at most about 24.8 days (2**31 - 1 ms), and a keepalive
# interval may be longer: waking up early costs one turn (nothing is due yet,
# the wait starts again).
LONGEST_WAIT = 3600.0


class _ProcessId:
    """This process's id (``pid``), read once and again only in a forked child.

    glibc no longer caches getpid(): the hub and the writer thread ask at every
    admit, broadcast and queued send whether they were forked (gunicorn --preload).
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        if hasattr(os, "register_at_fork"):  # (POSIX; where there is no fork, it never changes)
            os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self.pid = os.getpid()


this_process = _ProcessId()


def _send_nowait_python(sock: socket.socket, data: Buffer) -> int:
    try:
        return sock.send(data, MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return 0


def _recv_nowait_python(sock: socket.socket, size: int) -> bytes | None:
    try:
        return sock.recv(size, MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return None


# One send() or recv() with MSG_DONTWAIT on a plain socket (where MSG_DONTWAIT
# exists): the bytes written (0: none now), or the bytes read (b"": the end,
# None: nothing yet); OSError when the socket fails.
#
# send_nowait is the socket's method, which lets the GIL go while the kernel
# works (a loopback send does the receiving side's work too): with a thread
# per connection, another thread runs meanwhile instead of waking up only to
# wait for the GIL. The "in_loop" ones are for the reactor's loop thread,
# which no other thread waits for: the C accelerator's keep the GIL (the call
# never waits), sparing a hand-over and a take-back of it per call.
send_nowait: Callable[[socket.socket, Buffer], int] = _send_nowait_python
send_nowait_in_loop: Callable[[socket.socket, Buffer], int] = _send_nowait_python
recv_nowait_in_loop: Callable[[socket.socket, int], bytes | None] = _recv_nowait_python
# WebSocket.send's usual case, the event app's usual read and its whole usual turn in C
# (see Sender.direct_send, Reader.direct_receive, WebSocket.direct_turn), or None: the
# Python path only.
DirectSend: type[_speedups.DirectSend] | None = None
DirectReceive: type[_speedups.DirectReceive] | None = None
EventTurn: type[_speedups.EventTurn] | None = None
# A connection's send and read locks (Sender.lock, Reader.lock): the accelerator's
# Lock where it is built, which its C paths take and release without a Python call
# (the C paths take nothing else); threading.Lock otherwise. Same interface.
new_lock: Callable[[], threading.Lock] = threading.Lock
if SPEEDUPS:
    from . import _speedups

    send_nowait_in_loop = getattr(_speedups, "send_nowait", _send_nowait_python)
    recv_nowait_in_loop = getattr(_speedups, "recv_nowait", _recv_nowait_python)
    DirectSend = getattr(_speedups, "DirectSend", None)
    DirectReceive = getattr(_speedups, "DirectReceive", None)
    EventTurn = getattr(_speedups, "EventTurn", None)
    new_lock = cast("Callable[[], threading.Lock]", getattr(_speedups, "Lock", threading.Lock))


def reserve_descriptors(count: float) -> int:
    """Have this process's descriptor table hold ``count`` descriptors from now on.

    The kernel grows the table as descriptors are opened, doubling it each
    time it is full, and Linux, in a process with threads, waits for an RCU
    grace period at each growth (about 10 ms, in which the thread that opens,
    here the one that accepts, stands still). A server that opens its
    connections one by one would pay that at 64, 128, ... 8,192 connections,
    each time stalling its accept loop (and, in the event app, seen as a
    blocked handler: another thread takes the loop over). Grown once, before
    the first connection, the table stays that size (it never shrinks).

    ``fcntl(F_DUPFD)`` gives the lowest free descriptor at or above the one
    asked for, growing the table to fit, and never replaces one open already
    (``dup2`` would). Capped at the soft ``RLIMIT_NOFILE``, past which no
    descriptor can be opened anyway. Returns the table size now asked for
    (0: nothing done, where there is no ``fcntl``, as on Windows).
    """
    try:
        import fcntl
        import resource
    except ImportError:
        return 0
    count = int(count)  # (a limit may come as a float)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY:
        count = min(count, soft)
    if count <= 0:
        return 0
    try:
        template = os.open(os.devnull, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return 0  # no descriptor to be had at all: nothing to grow for
    try:
        os.close(fcntl.fcntl(template, getattr(fcntl, "F_DUPFD_CLOEXEC", fcntl.F_DUPFD),
                             count - 1))
    except OSError:
        return 0  # none free that high (every one open): the table is that big already
    finally:
        os.close(template)
    return count


def shutdown_quietly(sock: socket.socket, how: int = socket.SHUT_RDWR) -> None:
    """``sock.shutdown(how)``, ignoring the error of a socket already closed or reset.

    Shutting a socket down (unlike closing it) wakes a thread blocked
    reading it, which then sees the connection end.
    """
    try:
        sock.shutdown(how)
    except OSError:
        pass


class WakeUpPair:
    """Wakes a thread that waits in select() or epoll: ``wake()`` makes ``fileno()`` readable.

    The waiting thread registers this object (or its ``fileno()``) with its
    selector and calls ``drain()`` when it comes up readable. Both ends are
    non-blocking: a wake-up while the pipe is full is not needed anyway.
    """

    def __init__(self) -> None:
        self._receiver, self._sender = socket.socketpair()
        self._receiver.setblocking(False)
        self._sender.setblocking(False)

    def fileno(self) -> int:
        """The end to wait on."""
        return self._receiver.fileno()

    def wake(self) -> None:
        try:
            self._sender.send(b"\0")
        except OSError:
            pass  # full: the waiting thread wakes up anyway

    def drain(self) -> None:
        """Read the wake-ups that arrived, so the next wait blocks again."""
        try:
            while self._receiver.recv(4096):
                pass
        except OSError:
            pass  # nothing left (BlockingIOError), or closed

    def close(self) -> None:
        self._receiver.close()
        self._sender.close()
