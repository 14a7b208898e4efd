"""``WebSocket``: the connection object, blocking I/O over a socket.

This is the thin layer over the sans-I/O core (``wsocket.protocol``): it
reads from the socket, feeds the core, acts on its events and writes the
frames the core makes. It owns no thread: pings are answered and keepalive
is run inside ``receive()``, by the thread that waits for messages anyway.
"""

import collections
import importlib
import logging
import select
import socket
import threading
import time

from .errors import ConnectionClosed, WebSocketError
from .protocol.connection import (
    DEFAULT_MAX_MESSAGE_SIZE, SERVER, CloseReceived, Connection, Failure,
    Message, Ping, Pong,
)

__all__ = ["WebSocket", "logger", "DEFAULT_PING_INTERVAL", "DEFAULT_PING_TIMEOUT",
           "DEFAULT_CLOSE_TIMEOUT", "close_socket"]

logger = logging.getLogger("wsocket")

DEFAULT_PING_INTERVAL = 20.0
DEFAULT_PING_TIMEOUT = 20.0
DEFAULT_CLOSE_TIMEOUT = 10.0
_READ_SIZE = 65536


class WebSocket:
    """One WebSocket connection: ``environ["wsgi.websocket"]``, or ``client`` in events.

    The server or middleware that made the handshake builds it; users get
    it ready to use. ``receive()`` returns whole messages, ``send()`` may be
    called from any thread, ``close()`` runs the closing handshake.
    """

    logger = logger

    def __init__(self, sock, environ=None, *, side=SERVER, subprotocol=None, deflate=None,
                 version=13, origin=None, path=None,
                 max_message_size=DEFAULT_MAX_MESSAGE_SIZE,
                 ping_interval=DEFAULT_PING_INTERVAL, ping_timeout=DEFAULT_PING_TIMEOUT,
                 close_timeout=DEFAULT_CLOSE_TIMEOUT, initial_data=b""):
        _check_timeout("ping_interval", ping_interval)
        _check_timeout("ping_timeout", ping_timeout)
        _check_timeout("close_timeout", close_timeout)
        self.sock = sock
        self.environ = environ if environ is not None else {}
        self.protocol = subprotocol
        self.version = version
        self.origin = origin if origin is not None else self.environ.get(
            "HTTP_ORIGIN", self.environ.get("HTTP_SEC_WEBSOCKET_ORIGIN"))
        if path is None:
            path = self.environ.get("SCRIPT_NAME", "") + self.environ.get("PATH_INFO", "")
        self.path = path or "/"
        self.do_compress = deflate is not None
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout

        self.closed = False
        self.close_code = None
        self.close_reason = None

        self._connection = Connection(side, deflate, max_message_size)
        self._events = collections.deque()
        self._send_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._closed_event = threading.Event()
        self._poller = None
        self._failure_reported = False
        self._last_received = time.monotonic()
        self._ping_sent_at = None
        if initial_data:
            self._events.extend(self._connection.receive_data(initial_data))

    @property
    def side(self):
        return self._connection.side

    @property
    def max_message_size(self):
        return self._connection.max_message_size

    def __repr__(self):
        state = "closed" if self.closed else "open"
        return "<%s %s %s %s>" % (type(self).__name__, self.side, self.path, state)

    # -- receiving ----------------------------------------------------------

    def receive(self, timeout=None):
        """Wait for the next message: ``str`` for text, ``bytes`` for binary.

        Raises ``ConnectionClosed`` (a ``WebSocketError``) when the peer
        closed the connection, or when it was already closed. Returns None
        when the connection fails (protocol error, invalid UTF-8, message
        too big, socket error, dead peer); the next call then raises. Also
        returns None when ``timeout`` seconds pass without a message, with
        the connection still open (``closed`` tells the two apart).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._read_lock:
            while True:
                if not self._events:
                    if self.closed or self._connection.failed:
                        raise self._closed_error()
                    if not self._read(deadline):
                        if self.closed:
                            return self._report_failure()
                        return None  # receive timeout, still open
                    continue
                event = self._events.popleft()
                if type(event) is Message:
                    return event.data
                if type(event) is Ping:
                    self.handle_ping(event.payload)
                elif type(event) is Pong:
                    self.handle_pong(event.payload)
                elif type(event) is CloseReceived:
                    self.handle_close(event.payload)
                    raise ConnectionClosed(event.code, event.reason)
                elif type(event) is Failure:
                    self._fail(event.code, event.reason)
                    return self._report_failure()

    def __iter__(self):
        """Iterate over messages; ends when the connection closes or fails."""
        while True:
            try:
                message = self.receive()
            except ConnectionClosed:
                return
            if message is None:
                return
            yield message

    def _closed_error(self):
        return ConnectionClosed(self.close_code or 1006, self.close_reason or "")

    def _report_failure(self):
        self._failure_reported = True
        return None

    def _read(self, deadline):
        """Read once from the socket into the core.

        Returns False when nothing can come any more (connection lost,
        keepalive timeout: ``closed`` is then set) or ``deadline`` passed.
        Sends keepalive pings while waiting.
        """
        while True:
            wait = self._time_to_wait(deadline)
            if wait is not None and wait <= 0 or not self._wait_readable(wait):
                now = time.monotonic()
                if self._ping_sent_at is not None and self.ping_timeout is not None \
                        and now >= self._ping_sent_at + self.ping_timeout:
                    self.logger.info("%r: no answer to a ping for %.1f s, closing",
                                     self, self.ping_timeout)
                    self._fail(1011, "keepalive ping timeout", close_code=1006)
                    return False
                if self.ping_interval is not None and self._ping_sent_at is None \
                        and now >= self._last_received + self.ping_interval:
                    self._send_keepalive_ping(now)
                if deadline is not None and now >= deadline:
                    return False
                continue
            try:
                data = self.sock.recv(_READ_SIZE)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as error:
                self.logger.debug("%r: socket error while reading: %s", self, error)
                self._connection_lost()
                return False
            if not data:
                self._connection_lost()
                return False
            self._last_received = time.monotonic()
            self._ping_sent_at = None
            self._events.extend(self._connection.receive_data(data))
            return True

    def _time_to_wait(self, deadline):
        """Seconds until something is due: the deadline, a ping, a ping's timeout."""
        times = []
        if deadline is not None:
            times.append(deadline)
        if self._ping_sent_at is not None:
            if self.ping_timeout is not None:
                times.append(self._ping_sent_at + self.ping_timeout)
        elif self.ping_interval is not None:
            times.append(self._last_received + self.ping_interval)
        if not times:
            return None
        return min(times) - time.monotonic()

    def _wait_readable(self, timeout):
        """Wait until the socket has data; None waits in ``recv`` itself."""
        if timeout is None:
            return True
        pending = getattr(self.sock, "pending", None)
        if pending is not None and pending():
            return True  # TLS already decrypted bytes that poll cannot see
        if self._poller is None:
            self._poller = _readable_waiter(self.sock)
        return self._poller(timeout)

    def _send_keepalive_ping(self, now):
        self._ping_sent_at = now
        try:
            self._send_control(self._connection.send_ping, b"keepalive")
        except WebSocketError:
            pass

    # -- hooks a subclass may override ----------------------------------------

    def handle_ping(self, payload):
        """Answer a ping with a pong carrying the same payload."""
        try:
            self._send_control(self._connection.send_pong, payload)
        except WebSocketError:
            pass  # closing already: no pong is due

    def handle_pong(self, payload):
        """Called for every pong; keepalive needs nothing here."""

    def handle_close(self, payload):
        """Answer the peer's close frame (already validated) and mark the connection closed."""
        code, reason = self._connection.close_received
        with self._send_lock:
            if self._connection.close_sent is None:
                # Echo the peer's code (RFC 6455 5.5.1); a close without a
                # code is answered by a close without one.
                frame = self._connection.send_close(None if code == 1005 else code)
                try:
                    self.sock.sendall(frame)
                except OSError:
                    pass
        self._mark_closed(code, reason)

    # -- sending ------------------------------------------------------------

    def send(self, message, binary=None, do_compress=True):
        """Send one message: ``str`` as text, bytes-like as binary.

        ``binary`` forces the frame type; ``do_compress=False`` sends this
        message uncompressed even when permessage-deflate was negotiated.
        Safe to call from any thread. Raises ``ConnectionClosed`` once the
        connection is closed.
        """
        if not isinstance(message, (str, bytes, bytearray, memoryview)):
            raise TypeError("send() takes str or a bytes-like object, not %s"
                            % type(message).__name__)
        with self._send_lock:
            if self.closed or not self._connection.can_send:
                raise self._closed_error()
            frame = self._connection.send_message(message, binary, do_compress)
            self._sendall(frame)

    def ping(self, payload=b""):
        """Send a ping (at most 125 bytes of payload)."""
        self._send_control(self._connection.send_ping, payload)

    def _send_control(self, build_frame, payload):
        with self._send_lock:
            if self.closed or not self._connection.can_send:
                raise self._closed_error()
            self._sendall(build_frame(payload))

    def _sendall(self, frame):
        # Called with the send lock held: frames of two messages never interleave.
        try:
            self.sock.sendall(frame)
        except OSError as error:
            self.logger.debug("%r: socket error while sending: %s", self, error)
            self._connection.fail(1006)
            self._mark_closed(1006, "")
            raise ConnectionClosed(1006, str(error)) from error

    # -- closing ------------------------------------------------------------

    def close(self, code=1000, message=""):
        """Start the closing handshake and wait for the peer's answer.

        Sends a close frame with ``code`` and ``message`` (the reason, at
        most 123 UTF-8 bytes), waits up to ``close_timeout`` for the peer's
        close frame, then marks the connection closed. Closing twice is
        harmless. The socket itself belongs to the server or middleware.
        """
        if self._start_closing(code, message):
            self._await_close_reply(code, message)

    def _start_closing(self, code, message):
        """Send our close frame without waiting; False if closing had begun already."""
        with self._send_lock:
            if self.closed or self._connection.close_sent is not None or self._connection.failed:
                return False
            frame = self._connection.send_close(code, message)
            try:
                self.sock.sendall(frame)
            except OSError:
                self._mark_closed(1006, "")
                return False
        return True

    def _await_close_reply(self, code, message):
        deadline = time.monotonic() + self.close_timeout
        if self._read_lock.acquire(blocking=False):
            try:
                self._read_until_close(deadline)
            finally:
                self._read_lock.release()
        else:
            # Another thread is in receive(); it will see the answer.
            self._closed_event.wait(self.close_timeout)
        if not self.closed:
            self._mark_closed(code, message)

    def _read_until_close(self, deadline):
        """Discard what arrives until the peer's close frame (RFC 6455 1.4)."""
        while not self.closed:
            while self._events:
                event = self._events.popleft()
                if type(event) is CloseReceived:
                    self._mark_closed(event.code, event.reason)
                    return
                if type(event) is Failure:
                    self._fail(event.code, event.reason)
                    return
            if not self._read(deadline) and time.monotonic() >= deadline:
                return

    def _fail(self, code, reason, close_code=None):
        """Fail the connection: close frame with ``code`` if possible, then drop TCP."""
        self.logger.debug("%r: failing the connection with %d: %s", self, code, reason)
        with self._send_lock:
            frame = self._connection.fail(code, reason)
            if frame:
                try:
                    self.sock.sendall(frame)
                except OSError:
                    pass
        self._mark_closed(close_code or code, reason)

    def _connection_lost(self):
        self._connection.fail(1006)
        self._mark_closed(1006, "")

    def _mark_closed(self, code, reason):
        first_time = not self.closed
        if first_time:
            self.closed = True
            self.close_code = code
            self.close_reason = reason
        if self.side == SERVER:
            # RFC 6455 7.1.1: the server ends TCP first. Half-closing now
            # sends the FIN promptly even if the application goes on for a
            # while; the socket object stays with its owner, who closes it.
            _shutdown(self.sock, socket.SHUT_WR)
        elif first_time:
            # A client owns its socket. After a clean closing handshake it
            # waits for the server's FIN (RFC 6455 7.1.1); otherwise it drops
            # the connection at once, waking any thread blocked on it.
            connection = self._connection
            if connection.close_sent is not None and connection.close_received is not None \
                    and not connection.failed:
                close_socket(self.sock, linger=self.close_timeout)
            else:
                _shutdown(self.sock, socket.SHUT_RDWR)
                self.sock.close()
        self._closed_event.set()

    # -- with ... as ws ---------------------------------------------------------

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def _readable_waiter(sock):
    """A ``wait(timeout) -> bool`` that returns True once ``sock`` is readable.

    A green socket (gevent, eventlet) is waited on through its own library's
    ``select``, which lets the other greenlets run meanwhile, monkey-patched
    or not. Any other socket uses ``select.poll`` (no limit on descriptor
    numbers), or ``select.select`` where ``poll`` is missing (Windows, and
    eventlet's monkey-patching removes it).
    """
    library = type(sock).__module__.partition(".")[0]
    if library in ("gevent", "eventlet"):
        green_select = importlib.import_module(
            "gevent.select" if library == "gevent" else "eventlet.green.select")
        return lambda timeout: bool(green_select.select([sock], [], [], timeout)[0])
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return lambda timeout: bool(poller.poll(timeout * 1000))
    return lambda timeout: bool(select.select([sock], [], [], timeout)[0])


def _check_timeout(name, value):
    if value is not None and (not isinstance(value, (int, float)) or value < 0):
        raise ValueError("%s must be None or a number of seconds >= 0, not %r" % (name, value))


def _shutdown(sock, how):
    try:
        sock.shutdown(how)
    except OSError:
        pass


def close_socket(sock, linger=1.0):
    """Close a socket after its WebSocket ended, without losing the last frames.

    Closing a socket that still has unread bytes makes the kernel send a
    reset, which can destroy the close frame before the peer reads it. So
    send our FIN, read until the peer's FIN (at most ``linger`` seconds),
    then close.
    """
    _shutdown(sock, socket.SHUT_WR)
    deadline = time.monotonic() + linger
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            if not sock.recv(_READ_SIZE):
                break
    except OSError:
        pass
    finally:
        sock.close()

