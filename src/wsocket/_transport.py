"""``SocketTransport``: a WebSocket's socket, read and written without blocking for ever.

One job: moving bytes. It knows how this kind of socket can be written
without blocking (``WriteMode``), how a read waits (inside ``recv`` with
SO_RCVTIMEO, or with poll first), and TCP_CORK. It knows nothing of frames
or the connection's state: ``WebSocket`` (websocket.py) holds the send lock
around every write, the read lock around every read, and decides what a
failure means.

TLS sockets get one lock of their own here. OpenSSL does not allow two
threads in one SSL object at once, and the ssl module releases the GIL
around SSL_read and SSL_write without any lock of its own; yet a WebSocket
is read by one thread (its own, or the reactor's loop) while others write
(``send()`` from any thread, broadcasts, the writer thread). Concurrent
calls fail now and then under load (``[SSL] internal error``, ``EOF occurred
in violation of protocol``) and drop the connection. So every call into a
TLS socket (recv, send, pending, shutdown, close) happens under
``SocketTransport._tls_lock``, and none of them may block while holding it:
the socket is non-blocking for the WebSocket's whole life, a thread waits
for readiness with poll outside the lock, then makes one non-blocking call
under it. Plain sockets take no such lock (a kernel socket may be read and
written by two threads at once).
"""

from __future__ import annotations

import _socket
import enum
import errno
import importlib
import select
import socket
import ssl
import struct
import sys
import threading
import time
from typing import TYPE_CHECKING, Callable

from ._sockets import MSG_DONTWAIT, READ_SIZE, shutdown_quietly

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .protocol.frames import Buffer

__all__ = ["WriteMode", "SocketTransport", "green_library", "no_delay", "finish_connection",
           "close_socket"]

IDLE_READ_SIZE = 1024  # bytes asked of a waiting recv() after small reads (see SocketTransport)
# Errors of a send or recv that would block: the socket is fine, try again later.
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
_GREEN_LIBRARIES = ("gevent", "eventlet")


class WriteMode(enum.Enum):
    """How a socket is written without blocking."""

    DONTWAIT = "dontwait"  # MSG_DONTWAIT on each call (plain sockets)
    # TLS sockets take no flags: non-blocking for good, under the transport's
    # TLS lock (see the module's docstring); other sockets: for the call only
    TOGGLE = "toggle"
    BLOCKING = "blocking"  # green sockets (gevent, eventlet): written the blocking way


def green_library(sock: object) -> str | None:
    """``"gevent"`` or ``"eventlet"`` when ``sock`` is one of theirs, else None."""
    if type(sock) is socket.socket:
        return None  # the usual, asked several times per connection opened
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


# socket.socket's ``family`` makes an IntEnum at each read (about a
# microsecond on CPython 3.11), several times for each connection opened;
# _socket's own descriptor gives the int.
_raw_family = _socket.socket.family.__get__
_TCP_FAMILIES = (int(socket.AF_INET), int(getattr(socket, "AF_INET6", -1)))


def is_tcp(sock: object) -> bool:
    """Whether ``sock`` is a TCP socket (IPv4 or IPv6), where TCP options apply."""
    if isinstance(sock, _socket.socket):
        return _raw_family(sock) in _TCP_FAMILIES
    return getattr(sock, "family", None) in _TCP_FAMILIES  # a green socket, say


def no_delay(sock: socket.socket) -> None:
    """TCP_NODELAY: a frame goes out when it is sent, not when the previous one is acknowledged.

    With Nagle's algorithm a small frame that follows another waits for its
    ACK, which a delayed-ACK peer holds back for up to 40 ms or more.
    (While a pipelined batch is answered, TCP_CORK groups frames instead.)
    """
    try:
        if is_tcp(sock):
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


def _readable_waiter(sock: socket.socket) -> Callable[[float | None], bool]:
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
        return lambda timeout: bool(poller.poll(None if timeout is None else timeout * 1000))
    return lambda timeout: bool(select.select([sock], [], [], timeout)[0])


def _closed_meanwhile(error: ValueError) -> OSError:
    """The OSError for a TLS socket that another thread shut down or closed meanwhile.

    The ssl module raises ValueError when its SSL object is gone (``shutdown``
    and ``close`` drop it), and any other thread may end the connection.
    """
    return OSError(errno.EBADF, "the TLS socket was shut down meanwhile (%s)" % error)


class SocketTransport:
    """The socket of one connection after its handshake.

    Attributes:
        sock (socket.socket): The socket (its owner, the server, the
            middleware or the client, closes it).
        mode (WriteMode): How it is written without blocking.
        can_cork (bool): TCP_CORK may be used (plain TCP on Linux).
        corked (bool): TCP_CORK is on now.
        decrypts (bool): TLS: bytes may wait decrypted already, where no poll
            sees them (``buffered()``); False: ``buffered()`` is always False.
    """

    __slots__ = ("sock", "mode", "_timed_recv", "can_cork", "corked", "_receive_timeout", "_poller",
                 "_read_size", "_pending", "_tls_lock", "_send_wants_read", "decrypts")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.mode = write_mode(sock)
        no_delay(sock)
        # How recv() waits: in recv() itself with SO_RCVTIMEO, or with poll.
        self._timed_recv = self.mode is WriteMode.DONTWAIT and sys.platform.startswith("linux")
        self.can_cork = self._timed_recv and hasattr(socket, "TCP_CORK") and is_tcp(sock)
        self.corked = False
        self._receive_timeout = 0.0  # the SO_RCVTIMEO set, in seconds; 0: none
        # Bytes asked of the next recv() that waits: small after small reads, so
        # that a quiet connection's thread does not hold a 64 KiB buffer while it
        # waits (that costs about 3 KiB of memory each), big once a read fills it.
        self._read_size = IDLE_READ_SIZE
        self._poller: Callable[[float | None], bool] | None = None
        # TLS: bytes decrypted already, which poll and epoll cannot see
        self._pending: Callable[[], int] | None = getattr(sock, "pending", None)
        self.decrypts = self._pending is not None
        # TLS (see the module's docstring): every call into the SSL object
        # under this lock, the socket non-blocking from now on, so that no
        # thread ever waits inside such a call, and never while holding it.
        self._tls_lock: threading.Lock | None = None
        self._send_wants_read = False  # the last TLS write would block until the peer sends
        if self.mode is WriteMode.TOGGLE and isinstance(sock, ssl.SSLSocket):
            self._tls_lock = threading.Lock()
            sock.settimeout(0.0)

    @property
    def waits_in_recv(self) -> bool:
        """Whether a read waits inside ``recv`` itself (SO_RCVTIMEO): a plain socket on Linux."""
        return self._timed_recv

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
                    # setsockopt() per message. (_speedups.c's
                    # receive_timeout_fits keeps the same rule: change both.)
                    self._set_receive_timeout(wait)
                size = self._read_size
                data = sock.recv(size)  # holds a buffer of ``size`` bytes while it waits
                if len(data) >= size:
                    self._read_size = READ_SIZE  # more may be waiting: read big from now on
                elif len(data) < IDLE_READ_SIZE:
                    self._read_size = IDLE_READ_SIZE  # small messages, or quiet: read small
                return data
            except (BlockingIOError, InterruptedError):
                return None
        if self._tls_lock is not None:
            return self._recv_tls(wait)
        if not self._wait_readable(wait if wait is None or wait > 0 else 0):
            return None
        try:
            return self.sock.recv(READ_SIZE)
        except _WOULD_BLOCK:
            # A socket that a writer thread makes non-blocking for a moment
            # (WriteMode.TOGGLE, see send_nowait): no data after all, for now.
            self._wait_readable(0.05)
            return None

    def _recv_tls(self, wait: float | None) -> bytes | None:
        """``recv`` of a TLS socket: poll outside the TLS lock, read without blocking under it.

        A read that would block is waited for and tried again until
        ``wait`` passes: a TLS record may arrive in pieces, and TLS may
        have to send before it can read on (then the wait is for writability).
        """
        sock, lock = self.sock, self._tls_lock
        assert lock is not None  # a TLS socket
        deadline = None if wait is None else time.monotonic() + wait
        # Try at once when only what arrived is wanted, or when TLS holds
        # decrypted bytes already; else wait for the socket first.
        wait_for: str | None = "read"
        if (wait is not None and wait <= 0) or self.buffered():
            wait_for = None
        while True:
            if wait_for is not None:
                timeout = None if deadline is None else deadline - time.monotonic()
                if timeout is not None and timeout <= 0:
                    return None
                if wait_for == "write":
                    ready = wait_writable(sock, timeout)
                else:
                    ready = self._poll_readable(timeout)
                if not ready:
                    return None
            with lock:
                try:
                    return sock.recv(READ_SIZE)
                except ssl.SSLWantWriteError:
                    wait_for = "write"  # TLS must send something first (renegotiation)
                except (ssl.SSLWantReadError, BlockingIOError, InterruptedError):
                    wait_for = "read"  # not a whole TLS record yet
                except ValueError as error:
                    raise _closed_meanwhile(error) from None
            if deadline is not None and deadline <= time.monotonic():
                return None

    def recv_nowait(self) -> bytes | None:
        """What has arrived (b"" at the end), or None when nothing has; never waits.

        Raises OSError when the socket fails.
        """
        if self._timed_recv:
            try:
                return self.sock.recv(READ_SIZE, MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return None
        return self.recv(0)

    def buffered(self) -> bool:
        """Whether bytes wait that no poll can see (decrypted already by TLS)."""
        pending = self._pending
        if pending is None:
            return False
        if self._tls_lock is None:
            return pending() > 0  # (a green TLS socket: one thread at a time anyway)
        with self._tls_lock:  # SSL_pending looks into the SSL object too
            try:
                return pending() > 0
            except ValueError:
                return False  # shut down meanwhile: the next read says so

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
        if self.buffered():
            return True  # TLS already decrypted bytes that poll cannot see
        return self._poll_readable(timeout)

    def _poll_readable(self, timeout: float | None) -> bool:
        """Poll for readability, with the poller kept for the reading thread.

        Only the reading thread uses it: a ``select.poll`` object refuses two
        threads at once, so a writer that must wait for a read makes its own.
        """
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
        TLS sockets are non-blocking for good: the first buffer is written
        under the TLS lock (a write that would block must be repeated with
        the same bytes: the outgoing queue knows). Other sockets without
        that flag are non-blocking for the duration of the call only (the
        send lock is held; the reading thread treats the would-block it may
        meet meanwhile as "no data yet").
        """
        sock = self.sock
        if self.mode is WriteMode.DONTWAIT:
            try:
                if len(buffers) == 1:
                    return sock.send(buffers[0], MSG_DONTWAIT)
                return sock.sendmsg(buffers, (), MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return 0
        if self._tls_lock is not None:
            with self._tls_lock:
                try:
                    return sock.send(buffers[0])
                except ssl.SSLWantReadError:
                    self._send_wants_read = True  # TLS must read something first
                    return 0
                except (ssl.SSLWantWriteError, BlockingIOError, InterruptedError):
                    self._send_wants_read = False
                    return 0
                except ValueError as error:
                    raise _closed_meanwhile(error) from None
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
        if self.mode is WriteMode.BLOCKING or (stall is None and self._tls_lock is None):
            self.sock.sendall(data)  # (a TLS socket never blocks inside a call: see recv)
            return
        sent = self.send_nowait([data])
        if sent == len(data):
            return
        view = memoryview(data)[sent:]
        while True:
            if not sent and not self.wait_writable(stall):
                raise TimeoutError("the peer took no data for %.1f s" % (stall or 0.0))
            sent = self.send_nowait([view])
            if sent == len(view):
                return
            view = view[sent:]

    def wait_writable(self, timeout: float | None) -> bool:
        """Wait until the socket takes data (or failed); False when ``timeout`` passed first."""
        if self._send_wants_read:
            # The last TLS write needs a record from the peer first (a
            # renegotiation): wait for readability, but briefly, since the
            # reading thread may take that record before we do; then try again.
            self._send_wants_read = False
            readable = _readable_waiter(self.sock)
            readable(0.05 if timeout is None else min(max(timeout, 0), 0.05))
            return True
        return wait_writable(self.sock, timeout)

    def shutdown(self, how: int = socket.SHUT_RDWR) -> None:
        """Shut the socket down, ignoring errors: wakes a thread blocked on it.

        A TLS socket drops its SSL object here (later calls use the bare
        socket): under the TLS lock, so that no other thread is inside it.
        """
        if self._tls_lock is None:
            shutdown_quietly(self.sock, how)
            return
        with self._tls_lock:
            shutdown_quietly(self.sock, how)

    def close(self, linger: float | None) -> None:
        """Close the socket: after the peer's FIN (``linger`` seconds at most), or None: at once.

        Waiting for the peer's FIN is for a clean closing handshake (RFC 6455
        7.1.1); dropping at once wakes any thread blocked on the socket.
        """
        if self._tls_lock is not None:
            self._close_tls(linger)
        elif linger is not None:
            close_socket(self.sock, linger)
        else:
            shutdown_quietly(self.sock, socket.SHUT_RDWR)
            self.sock.close()

    def _close_tls(self, linger: float | None) -> None:
        """``close`` of a TLS socket: other threads may still be sending (they fail, quietly).

        Like ``finish_connection``, but the socket stays non-blocking and
        each call is made under the TLS lock, so that no thread that still
        holds this transport ever waits inside a call (see the module's docstring).
        """
        sock, lock = self.sock, self._tls_lock
        assert lock is not None  # a TLS socket
        self.shutdown(socket.SHUT_WR if linger is not None else socket.SHUT_RDWR)
        # From here on the socket is a bare one: what is read is discarded.
        deadline = None if linger is None else time.monotonic() + linger
        try:
            readable = _readable_waiter(sock)
            while deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not readable(remaining):
                    break
                with lock:
                    try:
                        if not sock.recv(READ_SIZE):
                            break  # the peer's FIN
                    except _WOULD_BLOCK:
                        pass
        except OSError:
            pass
        finally:
            with lock:
                sock.close()


def finish_connection(sock: socket.socket, linger: float | None = 1.0) -> None:
    """Send our FIN, then read until the peer's FIN (at most ``linger`` seconds; None: no limit).

    Closing a socket that still has unread bytes makes the kernel send a
    reset, which can destroy the close frame before the peer reads it;
    draining first avoids that.

    For sockets no WebSocket uses any more (the adapters, once it ended).
    A TLS socket is safe here even if a late thread still writes: the
    WebSocket's end shut it down under its transport's TLS lock, which
    dropped the SSL object, and this reads the bare socket. A WebSocket's
    own client socket closes through ``SocketTransport.close`` instead.
    """
    if MSG_DONTWAIT and not isinstance(sock, ssl.SSLSocket) and green_library(sock) is None:
        # Most often the peer's FIN is here already (a client closes when it
        # has our close frame): one read says so, and the close then sends our
        # FIN (if the WebSocket has not already), without the shutdown, the
        # timeout and the poll, each a system call that gives up the GIL,
        # which ten thousand threads closing at once wait for.
        try:
            if not sock.recv(READ_SIZE, MSG_DONTWAIT):
                return
        except (BlockingIOError, InterruptedError):
            pass  # nothing yet: wait for it below
        except OSError:
            return  # reset, or closed: nothing to wait for
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
