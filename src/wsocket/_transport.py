"""``SocketTransport``: a WebSocket's socket, read and written without blocking for ever.

One job: moving bytes. It knows how this kind of socket can be written
without blocking (``WriteMode``), how a read waits (inside ``recv`` with
SO_RCVTIMEO, or with poll first), and TCP_CORK. It knows nothing of frames,
locks or the connection's state: ``WebSocket`` (websocket.py) holds the send
lock around every write and decides what a failure means.
"""

from __future__ import annotations

import enum
import importlib
import select
import socket
import ssl
import struct
import sys
import time
from typing import TYPE_CHECKING, Callable, Union

from ._sockets import READ_SIZE, shutdown_quietly

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["WriteMode", "SocketTransport", "green_library", "no_delay", "finish_connection",
           "close_socket"]

Buffer = Union[bytes, bytearray, memoryview]

MSG_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
# Errors of a send or recv that would block: the socket is fine, try again later.
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
_GREEN_LIBRARIES = ("gevent", "eventlet")


class WriteMode(enum.Enum):
    """How a socket is written without blocking."""

    DONTWAIT = "dontwait"  # MSG_DONTWAIT on each call (plain sockets)
    TOGGLE = "toggle"  # made non-blocking for the call: TLS sockets take no flags
    BLOCKING = "blocking"  # green sockets (gevent, eventlet): written the blocking way


def green_library(sock: object) -> str | None:
    """``"gevent"`` or ``"eventlet"`` when ``sock`` is one of theirs, else None."""
    library = type(sock).__module__.partition(".")[0]
    return library if library in _GREEN_LIBRARIES else None


def write_mode(sock: object) -> WriteMode:
    """How ``sock`` can be written without blocking."""
    if green_library(sock) is not None or not isinstance(sock, socket.socket):
        return WriteMode.BLOCKING
    if isinstance(sock, ssl.SSLSocket) or not hasattr(socket, "MSG_DONTWAIT") \
            or sock.gettimeout() is not None:  # with a timeout, send() would wait first
        return WriteMode.TOGGLE
    return WriteMode.DONTWAIT


def no_delay(sock: socket.socket) -> None:
    """TCP_NODELAY: a frame goes out when it is sent, not when the previous one is acknowledged.

    With Nagle's algorithm a small frame that follows another waits for its
    ACK, which a delayed-ACK peer holds back for up to 40 ms or more.
    (While a pipelined batch is answered, TCP_CORK groups frames instead.)
    """
    try:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass


def wait_writable(sock: socket.socket, timeout: float | None) -> bool:
    """Wait until ``sock`` is writable (or failed); False when ``timeout`` passed first."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLOUT)
        return bool(poller.poll(None if timeout is None else max(timeout * 1000, 0)))
    return bool(any(select.select([], [sock], [sock], timeout)))


def _readable_waiter(sock: socket.socket) -> Callable[[float], bool]:
    """A ``wait(timeout) -> bool`` that returns True once ``sock`` is readable.

    A green socket (gevent, eventlet) is waited on through its own library's
    ``select``, which lets the other greenlets run meanwhile, monkey-patched
    or not. Any other socket uses ``select.poll`` (no limit on descriptor
    numbers), or ``select.select`` where ``poll`` is missing (Windows, and
    eventlet's monkey-patching removes it).
    """
    library = green_library(sock)
    if library is not None:
        green_select = importlib.import_module(
            "gevent.select" if library == "gevent" else "eventlet.green.select")
        return lambda timeout: bool(green_select.select([sock], [], [], timeout)[0])
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return lambda timeout: bool(poller.poll(timeout * 1000))
    return lambda timeout: bool(select.select([sock], [], [], timeout)[0])


class SocketTransport:
    """The socket of one connection after its handshake.

    Attributes:
        sock (socket.socket): The socket (its owner, the server, the
            middleware or the client, closes it).
        mode (WriteMode): How it is written without blocking.
        can_cork (bool): TCP_CORK may be used (plain TCP on Linux).
        corked (bool): TCP_CORK is on now.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.mode = write_mode(sock)
        no_delay(sock)
        # How recv() waits: in recv() itself with SO_RCVTIMEO, or with poll.
        self._timed_recv = self.mode is WriteMode.DONTWAIT and sys.platform.startswith("linux")
        self.can_cork = self._timed_recv and hasattr(socket, "TCP_CORK") \
            and sock.family in (socket.AF_INET, socket.AF_INET6)
        self.corked = False
        self._receive_timeout = 0.0  # the SO_RCVTIMEO set, in seconds; 0: none
        self._poller: Callable[[float], bool] | None = None

    # -- reading ----------------------------------------------------------------------

    def recv(self, wait: float | None) -> bytes | None:
        """One read: bytes (b"" at the end), or None when ``wait`` seconds passed first.

        ``wait`` None waits as long as it takes; 0 or less only takes what
        has arrived. A plain socket on Linux waits inside ``recv`` itself,
        bounded by the kernel's SO_RCVTIMEO: one system call per read,
        where waiting with poll first takes two. Other sockets (TLS, green,
        elsewhere) wait with poll, then read. Raises OSError when the socket fails.
        """
        if self._timed_recv:
            sock = self.sock
            try:
                if wait is not None and wait <= 0:
                    return sock.recv(READ_SIZE, MSG_DONTWAIT)
                if wait is None:
                    if self._receive_timeout:
                        self._set_receive_timeout(0)
                elif not self._receive_timeout \
                        or self._receive_timeout > wait + max(0.01, wait / 100) \
                        or self._receive_timeout < wait / 2:
                    # Set again only when it is off by much: a busy connection
                    # keeps the same one (the ping interval) for ever. Waking
                    # up to 1% late is close enough (0.2 s for a 20 s ping
                    # interval): a thread that waited 10 ms for the GIL between
                    # two reads, common with many connections, must not cost a
                    # setsockopt() per message.
                    self._set_receive_timeout(wait)
                return sock.recv(READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return None
        if not self._wait_readable(wait if wait is None or wait > 0 else 0):
            return None
        try:
            return self.sock.recv(READ_SIZE)
        except _WOULD_BLOCK:
            # A TLS socket is non-blocking for the moment a writer thread
            # uses it (see send_nowait): no data after all, for now.
            self._wait_readable(0.05)
            return None

    def _set_receive_timeout(self, seconds: float) -> None:
        """SO_RCVTIMEO: a blocking recv() gives up (EAGAIN) after ``seconds``; 0: never."""
        microseconds = max(int(seconds * 1e6), 1) if seconds else 0
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack(
            "@ll", microseconds // 1000000, microseconds % 1000000))
        self._receive_timeout = seconds

    def _wait_readable(self, timeout: float | None) -> bool:
        """Wait until the socket has data; None waits in ``recv`` itself."""
        if timeout is None:
            return True
        pending = getattr(self.sock, "pending", None)
        if pending is not None and pending():
            return True  # TLS already decrypted bytes that poll cannot see
        if self._poller is None:
            self._poller = _readable_waiter(self.sock)
        return self._poller(timeout)

    def cork(self, on: bool) -> None:
        """TCP_CORK: the kernel holds what is sent until uncorked (at most 200 ms).

        Corked while the app works through messages that arrived together
        (pipelined), so its answers take one transmission instead of one
        each; uncorked as soon as receive() has to wait for the socket.
        """
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1 if on else 0)
        except OSError:
            self.can_cork = False  # not TCP after all, or closed: never again
            on = False
        self.corked = on

    # -- writing (the caller holds the WebSocket's send lock) -----------------------------

    def send_nowait(self, buffers: Sequence[Buffer]) -> int:
        """Write what the socket takes now of ``buffers``; returns the bytes written.

        Plain sockets get MSG_DONTWAIT, several frames in one sendmsg().
        TLS sockets cannot take that flag: they are non-blocking for the
        duration of the call only (the send lock is held; the reading thread
        treats the would-block it may meet meanwhile as "no data yet").
        """
        sock = self.sock
        if self.mode is WriteMode.DONTWAIT:
            try:
                if len(buffers) == 1:
                    return sock.send(buffers[0], MSG_DONTWAIT)
                return sock.sendmsg(buffers, (), MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return 0
        timeout = sock.gettimeout()
        sock.settimeout(0.0)
        try:
            return sock.send(buffers[0])
        except _WOULD_BLOCK:
            return 0
        finally:
            sock.settimeout(timeout)

    def send_bounded(self, data: Buffer, stall: float | None) -> None:
        """Send all of ``data``; TimeoutError once ``stall`` s pass with no progress.

        ``stall`` None waits as long as it takes. Raises OSError when the socket fails.
        """
        if stall is None or self.mode is WriteMode.BLOCKING:
            self.sock.sendall(data)
            return
        sent = self.send_nowait([data])
        if sent == len(data):
            return
        view = memoryview(data)[sent:]
        while True:
            if not sent and not wait_writable(self.sock, stall):
                raise TimeoutError("the peer took no data for %.1f s" % stall)
            sent = self.send_nowait([view])
            if sent == len(view):
                return
            view = view[sent:]

    def wait_writable(self, timeout: float | None) -> bool:
        """Wait until the socket takes data (or failed); False when ``timeout`` passed first."""
        return wait_writable(self.sock, timeout)

    def shutdown(self, how: int = socket.SHUT_RDWR) -> None:
        """Shut the socket down, ignoring errors: wakes a thread blocked on it."""
        shutdown_quietly(self.sock, how)

    def close(self, linger: float | None) -> None:
        """Close the socket: after the peer's FIN (``linger`` seconds at most), or None: at once.

        Waiting for the peer's FIN is for a clean closing handshake (RFC 6455
        7.1.1); dropping at once wakes any thread blocked on the socket.
        """
        if linger is not None:
            close_socket(self.sock, linger)
        else:
            shutdown_quietly(self.sock, socket.SHUT_RDWR)
            self.sock.close()


def finish_connection(sock: socket.socket, linger: float | None = 1.0) -> None:
    """Send our FIN, then read until the peer's FIN (at most ``linger`` seconds; None: no limit).

    Closing a socket that still has unread bytes makes the kernel send a
    reset, which can destroy the close frame before the peer reads it;
    draining first avoids that.
    """
    shutdown_quietly(sock, socket.SHUT_WR)
    deadline = None if linger is None else time.monotonic() + linger
    try:
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            sock.settimeout(remaining)
            if not sock.recv(READ_SIZE):
                break
    except OSError:
        pass


def close_socket(sock: socket.socket, linger: float | None = 1.0) -> None:
    """Close a socket after its WebSocket ended, without losing the last frames."""
    try:
        finish_connection(sock, linger)
    finally:
        sock.close()
