"""``WebSocket``: the connection object, blocking I/O over a socket.

This is the thin layer over the sans-I/O core (``wsocket.protocol``): it
reads from the socket, feeds the core, acts on its events and writes the
frames the core makes. It owns no thread: pings are answered and keepalive
is run inside ``receive()``, by the thread that waits for messages anyway.
"""

import collections
import importlib
import itertools
import logging
import os
import select
import selectors
import socket
import ssl
import struct
import sys
import threading
import time

from .errors import ConnectionClosed, ProtocolError, WebSocketError
from .protocol.connection import (
    DEFAULT_MAX_MESSAGE_SIZE, SERVER, CloseReceived, Connection, Failure,
    Message, Ping, Pong,
)
from .protocol.deflate import DEFAULT_COMPRESSION_LEVEL

__all__ = ["WebSocket", "logger", "DEFAULT_PING_INTERVAL", "DEFAULT_PING_TIMEOUT",
           "DEFAULT_CLOSE_TIMEOUT", "DEFAULT_MAX_QUEUE", "close_socket"]

logger = logging.getLogger("wsocket")
"""The ``wsocket`` logger: access lines, refused upgrades, errors in apps and handlers.

Importing wsocket configures no logging; ``run()`` and the command line set
up a handler when nothing else did (level from ``WSOCKET_LOG_LEVEL``).
"""

DEFAULT_PING_INTERVAL = 20.0
DEFAULT_PING_TIMEOUT = 20.0
DEFAULT_CLOSE_TIMEOUT = 10.0
DEFAULT_MAX_QUEUE = 4 * 1024 * 1024  # bytes waiting for a slow client before it is closed
OVERFLOW_CODE = 1013  # "try again later": the client did not keep up
OVERFLOW_REASON = "too slow: outgoing queue full"
_READ_SIZE = 65536
_IOV_MAX = 64  # frames handed to one sendmsg()
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
# Errors of a send or recv that would block: the socket is fine, try again later.
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class WebSocket:
    """One WebSocket connection: ``environ["wsgi.websocket"]``, or ``client`` in events.

    The server or middleware that made the handshake builds it; users get
    it ready to use. ``receive()`` returns whole messages, ``send()`` may be
    called from any thread, ``close()`` runs the closing handshake.
    ``wsocket.connect()`` returns one too, on the client side.

    Attributes:
        path (str): The request path without the query: ``ws://h/hello/world?user=x``
            gives ``/hello/world``.
        origin (str | None): The ``Origin`` header, or None when the client sent none.
        protocol (str | None): The negotiated subprotocol, or None.
        version (int): The WebSocket version the client speaks: 13, 8 or 7.
        do_compress (bool): True when permessage-deflate was negotiated.
        environ (dict): The WSGI environ of the upgrade request (``{}`` on the client side).
        closed (bool): True once the connection is closed or failed.
        close_code (int | None): The close code it ended with (1006: dropped without a
            close frame), None while open.
        close_reason (str | None): The close reason it ended with, None while open.
        logger (logging.Logger): The ``wsocket`` logger.
        ping_interval (float | None): Seconds of silence before a keepalive ping.
        ping_timeout (float | None): Seconds a ping may go unanswered before the peer is
            taken for dead.
        close_timeout (float): Seconds ``close()`` waits for the peer's close frame.
        data (dict): Whatever the app keeps with this connection (an ``onrequest``
            check's user, say); empty at first.
    """

    logger = logger

    def __init__(self, sock, environ=None, *, side=SERVER, subprotocol=None, deflate=None,
                 version=13, origin=None, path=None,
                 max_message_size=DEFAULT_MAX_MESSAGE_SIZE,
                 ping_interval=DEFAULT_PING_INTERVAL, ping_timeout=DEFAULT_PING_TIMEOUT,
                 close_timeout=DEFAULT_CLOSE_TIMEOUT, initial_data=b"",
                 max_queue=DEFAULT_MAX_QUEUE, max_fragments=None,
                 compression_level=DEFAULT_COMPRESSION_LEVEL, opener=None):
        _check_timeout("ping_interval", ping_interval)
        if max_queue is not None and (not isinstance(max_queue, int) or max_queue < 0):
            raise ValueError("max_queue must be None or a number of bytes >= 0, not %r"
                             % (max_queue,))
        _check_timeout("ping_timeout", ping_timeout)
        _check_timeout("close_timeout", close_timeout)
        self.sock = sock  # None until accepted (see accept())
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
        self.max_queue = max_queue

        self.closed = False
        self.close_code = None
        self.close_reason = None

        self._connection = Connection(side, deflate, max_message_size, max_fragments,
                                      compression_level)
        self._events = collections.deque()
        self._send_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._closed_event = threading.Event()
        self._poller = None
        self._failure_reported = False
        self._last_received = time.monotonic()
        self._ping_sent_at = None
        # The outgoing queue (see "delivering without blocking" below): frames
        # that _deliver() could not write at once, in order, sent before
        # anything else goes out on the socket.
        self._queue = collections.deque()
        self._queued = 0  # bytes in _queue
        self._queue_lock = threading.Lock()  # guards the four fields above and below
        self._queue_sealed = False  # closing or closed: nothing more is queued
        self._head_started = False  # _queue[0] must go next as it is (partly on the wire)
        self._generation = 0  # counts _drop_queue() calls
        self._pushed = 0  # frames ever queued, and ever sent from the queue:
        self._popped = 0  # send() waits only for the frames queued before it
        self._in_writer = False
        self._receive_timeout = 0  # the SO_RCVTIMEO set, in seconds; 0: none
        self._corked = False
        # Called (from any thread) each time the connection is marked closed:
        # the event app uses it to hear of a close while no thread reads.
        self._closed_callback = None
        # Whatever the app wants to keep with this connection (the event
        # app's onrequest hook puts the user here, say, for the handlers).
        self.data = {}
        # Before its 101 (see accept()), a server-side WebSocket has no socket
        # yet: ``opener(websocket, protocol, headers)`` takes it from the
        # server, sends the 101 and calls _attach(). None once open.
        self._opener = opener
        self._accept_lock = threading.Lock() if opener is not None else None
        self._on_accept = []  # called once accepted
        if opener is None:
            if sock is None:
                raise TypeError("WebSocket() needs a socket")
            self._attach(sock, initial_data)

    def _attach(self, sock, initial_data=b""):
        """Start using ``sock``, the connection after the handshake, and the bytes read past it."""
        self.sock = sock
        self._nowait = _nowait_style(sock)
        _no_delay(sock)
        # How _recv() waits: in recv() itself with SO_RCVTIMEO, or with poll.
        self._timed_recv = self._nowait == "dontwait" and sys.platform.startswith("linux")
        self._can_cork = self._timed_recv and hasattr(socket, "TCP_CORK") \
            and sock.family in (socket.AF_INET, socket.AF_INET6)
        if initial_data:
            self._events.extend(self._connection.receive_data(initial_data))

    @property
    def accepted(self):
        """Whether the 101 went out (always true for a WebSocket made with a socket)."""
        return self._opener is None

    def accept(self, protocol=None, headers=None):
        """Send the 101 now: the request becomes a WebSocket.

        Needed only to choose what the 101 says; without it, the first
        receive(), send(), ping(), close() or iteration accepts. An app that
        answers the request with an HTTP response instead (a 401, say)
        never calls it.

        Args:
            protocol (str | None): Any subprotocol the client offered,
                overriding the server's order of preference; None keeps
                the server's choice.
            headers (dict | list | None): Headers added to the 101, a
                Set-Cookie say: a dict or (name, value) pairs.

        Raises:
            ValueError: A header the handshake owns (Upgrade, Connection,
                Sec-WebSocket-*), one that is malformed, or a subprotocol
                the client did not offer.
            RuntimeError: Too late: accepted already, closed, or the app's
                HTTP response has started.
            UnsupportedServer: The server cannot hand its socket over (the
                client then gets 501).
        """
        if self._opener is None:
            raise RuntimeError("%r: accept() called on a WebSocket that is %s already"
                               % (self, "closed" if self.closed else "open"))
        with self._accept_lock:
            if self._opener is None:
                raise RuntimeError("%r: accept() called twice" % (self,))
            self._open(protocol, headers)

    def _open(self, protocol, headers):
        # The accept lock is held.
        self._opener(self, protocol, headers)  # raises when it cannot
        self._opener = None
        callbacks, self._on_accept = self._on_accept, []
        for callback in callbacks:
            callback()

    def _when_accepted(self, callback):
        """Call ``callback()`` once the 101 went out: now if it did (a hub joins that way)."""
        if self._opener is not None:
            with self._accept_lock:
                if self._opener is not None:
                    self._on_accept.append(callback)
                    return
        callback()

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

        Pings are answered, pongs and the peer's close frame handled, and
        keepalive pings sent, inside this call.

        Args:
            timeout (float | None): Seconds to wait at most; None waits as long as
                the connection lives.

        Returns:
            str | bytes | None: The message, ``str`` for text and ``bytes`` for
                binary. None when the connection fails (protocol error: close
                1002, invalid UTF-8: 1007, message too big: 1009, socket error
                or dead peer: 1006), after which the next call raises; None too
                when ``timeout`` seconds pass without a message, with the
                connection still open (``closed`` tells the two apart).

        Raises:
            ConnectionClosed: The peer closed the connection (its code and
                reason in ``.code`` and ``.reason``), or it was closed already.
        """
        if self._opener is not None:
            self._accept_on_first_use()
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
                    if self._events and self._can_cork and not self._corked:
                        # More messages arrived with this one: what the app
                        # sends while it works through them leaves in one go.
                        self._cork(True)
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
        """Iterate over messages: ``for message in websocket:``.

        Yields:
            str | bytes: Each message, as ``receive()`` returns it. The loop
                ends, without an exception, when the connection closes or fails.
        """
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
        if self._corked:
            self._cork(False)  # whatever was sent meanwhile goes out now
        while True:
            try:
                data = self._recv(self._time_to_wait(deadline))
            except OSError as error:
                self.logger.debug("%r: socket error while reading: %s", self, error)
                self._connection_lost()
                return False
            if data is None:  # nothing came in time: is something due?
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
            if not data:
                self._connection_lost()
                return False
            self._last_received = time.monotonic()
            self._ping_sent_at = None
            self._events.extend(self._connection.receive_data(data))
            return True

    def _recv(self, wait):
        """One read: bytes (b"" at the end), or None when ``wait`` seconds passed first.

        ``wait`` None waits as long as it takes; 0 or less only takes what
        has arrived. A plain socket on Linux waits inside ``recv`` itself,
        bounded by the kernel's SO_RCVTIMEO: one system call per read,
        where waiting with poll first takes two. Other sockets (TLS, green,
        elsewhere) wait with poll, then read.
        """
        if self._timed_recv:
            sock = self.sock
            try:
                if wait is not None and wait <= 0:
                    return sock.recv(_READ_SIZE, _DONTWAIT)
                if wait is None:
                    if self._receive_timeout:
                        self._set_receive_timeout(0)
                elif not self._receive_timeout or self._receive_timeout > wait + 0.01 \
                        or self._receive_timeout < wait / 2:
                    # Set again only when it is off by much: a busy connection
                    # keeps the same one (the ping interval) for ever.
                    self._set_receive_timeout(wait)
                return sock.recv(_READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return None
        if not self._wait_readable(wait if wait is None or wait > 0 else 0):
            return None
        try:
            return self.sock.recv(_READ_SIZE)
        except _WOULD_BLOCK:
            # A TLS socket is non-blocking for the moment a writer thread
            # uses it (see _send_nowait): no data after all, for now.
            self._wait_readable(0.05)
            return None

    def _cork(self, on):
        """TCP_CORK: the kernel holds what is sent until uncorked (at most 200 ms).

        Corked while the app works through messages that arrived together
        (pipelined), so its answers take one transmission instead of one
        each; uncorked as soon as receive() has to wait for the socket.
        """
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1 if on else 0)
        except OSError:
            self._can_cork = False  # not TCP after all, or closed: never again
            on = False
        self._corked = on

    def _set_receive_timeout(self, seconds):
        """SO_RCVTIMEO: a blocking recv() gives up (EAGAIN) after ``seconds``; 0: never."""
        microseconds = max(int(seconds * 1e6), 1) if seconds else 0
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack(
            "@ll", microseconds // 1000000, microseconds % 1000000))
        self._receive_timeout = seconds

    def _time_to_wait(self, deadline):
        """Seconds until something is due: the deadline, a ping, a ping's timeout."""
        due = self._keepalive_due()
        if deadline is not None and (due is None or deadline < due):
            due = deadline
        return None if due is None else due - time.monotonic()

    def _keepalive_due(self):
        """When keepalive has something to do (``time.monotonic()``), or None: never."""
        if self._ping_sent_at is not None:
            if self.ping_timeout is not None:
                return self._ping_sent_at + self.ping_timeout
            return None
        if self.ping_interval is not None:
            return self._last_received + self.ping_interval
        return None

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
        if self._nowait is not None:
            # Never blocks: a peer that stopped reading must not keep this
            # thread from noticing that the ping goes unanswered.
            if self._connection.can_send and not self.closed:
                try:
                    self._deliver(self._connection.send_ping(b"keepalive"))
                except ProtocolError:
                    pass  # a close frame went out meanwhile
            return
        try:
            self._send_control(self._connection.send_ping, b"keepalive")
        except WebSocketError:
            pass

    # -- hooks a subclass may override ----------------------------------------

    def handle_ping(self, payload):
        """Hook: called inside ``receive()`` for each ping; answers with a pong.

        Override it in a subclass to do more; call ``super().handle_ping(payload)``
        to keep the pong, which the protocol requires.

        Args:
            payload (bytes): The ping's payload (at most 125 bytes).
        """
        try:
            self._send_control(self._connection.send_pong, payload)
        except WebSocketError:
            pass  # closing already: no pong is due

    def handle_pong(self, payload):
        """Hook: called inside ``receive()`` for every pong; does nothing by default.

        Pongs answering wsocket's keepalive pings carry ``b"keepalive"``.

        Args:
            payload (bytes): The pong's payload (at most 125 bytes).
        """

    def handle_close(self, payload):
        """Hook: called inside ``receive()`` for the peer's close frame (already validated).

        By default answers with a close frame carrying the peer's code, then
        marks the connection closed; ``receive()`` raises ``ConnectionClosed``
        right after.

        Args:
            payload (bytes): The close frame's payload: a 2-byte code and the reason.
        """
        code, reason = self._connection.close_received
        with self._send_lock:
            if self._connection.close_sent is None:
                # Echo the peer's code (RFC 6455 5.5.1); a close without a
                # code is answered by a close without one.
                frame = self._connection.send_close(None if code == 1005 else code)
                try:
                    # Frames queued before the close go first (within close_timeout).
                    self._drain_queue(_deadline(self.close_timeout), seal=True)
                    self._send_bounded(frame, self.close_timeout)
                except OSError:
                    pass
        self._mark_closed(code, reason)

    # -- sending ------------------------------------------------------------

    def send(self, message, binary=None, do_compress=True):
        """Send one message: ``str`` as text, bytes-like as binary.

        Safe to call from any thread, also while another thread waits in
        ``receive()``. Broadcasts queued for this client go out first.

        Args:
            message (str | bytes | bytearray | memoryview): The message.
            binary (bool | None): True sends a binary frame, False a text frame
                (bytes are then sent as they are: make them UTF-8), None chooses
                by the type of ``message``.
            do_compress (bool): False sends this message uncompressed even when
                permessage-deflate was negotiated.

        Raises:
            ConnectionClosed: The connection is closed.
            TypeError: ``message`` is neither ``str`` nor bytes-like.
        """
        if type(message) is not str and not isinstance(message, (bytes, bytearray, memoryview)):
            raise TypeError("send() takes str or a bytes-like object, not %s"
                            % type(message).__name__)
        if self._opener is not None:
            self._accept_on_first_use()
        with self._send_lock:
            if self.closed:
                raise self._closed_error()
            try:
                frame = self._connection.send_message(message, binary, do_compress)
            except ProtocolError:
                raise self._closed_error() from None  # a close frame went out already
            self._sendall(frame)
        if self._queue:
            self._wake_writer()  # frames queued while we held the lock

    def ping(self, payload=b""):
        """Send a ping; the peer's pong goes to ``handle_pong(payload)``.

        Args:
            payload (bytes): At most 125 bytes.

        Raises:
            ConnectionClosed: The connection is closed or closing.
            ValueError: ``payload`` is longer than 125 bytes.
        """
        if self._opener is not None:
            self._accept_on_first_use()
        self._send_control(self._connection.send_ping, payload)

    def _send_control(self, build_frame, payload):
        with self._send_lock:
            if self.closed or not self._connection.can_send:
                raise self._closed_error()
            self._sendall(build_frame(payload))
        if self._queue:
            self._wake_writer()

    def _sendall(self, frame):
        # Called with the send lock held: frames of two messages never interleave.
        # A peer that takes none of our bytes for ping_timeout seconds is as
        # dead as one that leaves a ping unanswered: the send fails (1006)
        # rather than hold this thread, and the send lock, for ever.
        try:
            if self._queue:
                # What _deliver() queued goes first.
                self._drain_queue(None, stall=self.ping_timeout)
            elif self._nowait == "dontwait":
                # The usual case: the socket takes the whole frame at once.
                try:
                    sent = self.sock.send(frame, _DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                if sent == len(frame):
                    return
                frame = memoryview(frame)[sent:]
            self._send_bounded(frame, self.ping_timeout)
        except OSError as error:
            self._lost_while_sending(error)
            raise ConnectionClosed(1006, str(error)) from error

    def _send_bounded(self, data, stall):
        """Send all of ``data`` (send lock held); TimeoutError once ``stall`` s pass with no progress.

        ``stall`` None waits as long as it takes. Raises OSError when the socket fails.
        """
        if stall is None or self._nowait is None:
            self.sock.sendall(data)
            return
        sent = self._send_nowait([data])
        if sent == len(data):
            return
        view = memoryview(data)[sent:]
        while True:
            if not sent and not _wait_writable(self.sock, stall):
                raise TimeoutError("the peer took no data for %.1f s" % stall)
            sent = self._send_nowait([view])
            if sent == len(view):
                return
            view = view[sent:]

    # -- delivering without blocking (broadcasts) -------------------------------
    #
    # _deliver(frame) never blocks: it writes the frame at once when nothing
    # is queued and no other thread is writing, else it appends the frame to
    # the outgoing queue, which the writer thread (one per process, see
    # _Writer) sends as the socket becomes writable. Every write on the
    # socket happens under the send lock, and send() sends what is queued
    # before its own frame, so the order of frames is the order they were
    # handed over. More than max_queue bytes waiting means the peer does not
    # read: the connection is closed with 1013 and its socket shut down, so
    # that its own thread wakes up and the application sees the end.

    def _deliver(self, frame):
        """Send one whole, ready frame without blocking; False if the connection is closed."""
        if self._nowait is None:
            return self._deliver_blocking(frame)
        if self.closed:
            return False
        if not self._send_lock.acquire(blocking=False):
            # Someone is writing: queue, and have the writer send it later.
            overflow = self._enqueue(frame)
            if overflow is None:
                return False
            if overflow:
                self._overflow(have_lock=False)
                return False
            self._wake_writer()
            return True
        try:
            if self.closed or not self._connection.can_send:
                return False
            try:
                if self._queue:
                    overflow = self._enqueue(frame)
                    if overflow is None:
                        return False
                    if not overflow:
                        self._flush_nowait()
                else:
                    sent = self._send_nowait([frame])
                    if sent == len(frame):
                        return True
                    overflow = self._enqueue(frame, sent)
                    if overflow is None:
                        return False
            except OSError as error:
                self._lost_while_sending(error)
                return False
            if overflow:
                self._overflow(have_lock=True)
                return False
        finally:
            self._send_lock.release()
        if self._queue:
            self._wake_writer()
        return True

    def _deliver_blocking(self, frame):
        """For sockets that cannot send without blocking here (gevent, eventlet)."""
        with self._send_lock:
            if self.closed or not self._connection.can_send:
                return False
            try:
                self._sendall(frame)
            except ConnectionClosed:
                return False
        return True

    def _enqueue(self, frame, sent=None):
        """Queue ``frame``; None if closing, else whether the queue is now over max_queue.

        ``sent`` (with the send lock held and the queue found empty): that
        many bytes of the frame went out already, and the rest goes first.
        """
        with self._queue_lock:
            if self._queue_sealed:
                return None
            self._pushed += 1
            if sent is None:
                self._queue.append(frame)
                self._queued += len(frame)
            else:
                rest = memoryview(frame)[sent:] if sent else frame
                self._queue.appendleft(rest)
                self._queued += len(rest)
                # A TLS write that would block must be repeated with the
                # same bytes: that frame is started too.
                self._head_started = bool(sent) or self._nowait == "toggle"
            return self.max_queue is not None and self._queued > self.max_queue

    def _send_nowait(self, buffers):
        """Write what the socket takes now of ``buffers``; returns the bytes written.

        Plain sockets get MSG_DONTWAIT, several frames in one sendmsg().
        TLS sockets cannot take that flag: they are non-blocking for the
        duration of the call only (the send lock is held; the reading thread
        treats the would-block it may meet meanwhile as "no data yet").
        """
        sock = self.sock
        if self._nowait == "dontwait":
            try:
                if len(buffers) == 1:
                    return sock.send(buffers[0], socket.MSG_DONTWAIT)
                return sock.sendmsg(buffers, (), socket.MSG_DONTWAIT)
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

    def _flush_nowait(self, until=None):
        """Send queued frames while the socket takes them; the send lock is held.

        Returns True once the queue is empty (or the frames numbered below
        ``until`` are all out), False when the socket is full. Raises
        OSError when the socket fails.
        """
        while True:
            with self._queue_lock:
                queue = self._queue
                if not queue or (until is not None and self._popped >= until):
                    return True
                generation = self._generation
                if self._nowait == "dontwait" and len(queue) > 1:
                    batch = list(itertools.islice(queue, _IOV_MAX))
                else:
                    batch = [queue[0]]
            sent = self._send_nowait(batch)
            size = sum(map(len, batch))
            with self._queue_lock:
                if generation != self._generation:
                    return True  # the queue was dropped meanwhile (closed)
                if sent:
                    self._consume(sent)
                elif self._nowait == "toggle":
                    self._head_started = True
            if sent < size:
                return False

    def _consume(self, sent):
        """Take ``sent`` written bytes off the front of the queue (queue lock held)."""
        queue = self._queue
        self._queued -= sent
        while sent:
            size = len(queue[0])
            if sent < size:
                queue[0] = memoryview(queue[0])[sent:]
                self._head_started = True
                return
            queue.popleft()
            self._popped += 1
            self._head_started = False
            sent -= size

    def _drain_queue(self, deadline, seal=False, stall=None):
        """Send the frames queued so far, waiting for the socket; the send lock is held.

        ``seal``: nothing more may be queued (a close frame follows). Raises
        TimeoutError once ``deadline`` passes (or, without a deadline, once
        the socket took nothing for ``stall`` seconds), OSError when the
        socket fails.
        """
        with self._queue_lock:
            target = self._pushed
            if seal:
                self._queue_sealed = True
        while not self._flush_nowait(target):
            timeout = stall
            if deadline is not None:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    raise TimeoutError("the peer did not take the queued frames in time")
            if not _wait_writable(self.sock, timeout) and deadline is None:
                raise TimeoutError("the peer took no data for %.1f s" % stall)

    def _write_queued(self):
        """The writer thread's turn; True when the writer has nothing more to do here."""
        if not self._send_lock.acquire(blocking=False):
            return True  # whoever holds it wakes the writer again if frames are left
        try:
            if self.closed:
                return True
            try:
                return self._flush_nowait()
            except OSError as error:
                self._lost_while_sending(error)
                return True
        finally:
            self._send_lock.release()

    def _wake_writer(self):
        self._in_writer = True
        _writer.want(self)

    def _overflow(self, have_lock):
        """More than max_queue bytes wait: close with 1013 and shut the socket."""
        with self._queue_lock:
            if self._queue_sealed:
                return
            started = self._head_started
            self._drop_queue()
        self.logger.warning("%r: closing with %d: more than %d bytes wait to be sent, the "
                            "client does not read fast enough", self, OVERFLOW_CODE,
                            self.max_queue)
        if have_lock or self._send_lock.acquire(blocking=False):
            try:
                frame = self._connection.fail(OVERFLOW_CODE, OVERFLOW_REASON)
                if frame and not started:
                    try:
                        self._send_nowait([frame])  # best effort: its buffer is full
                    except OSError:
                        pass
            finally:
                if not have_lock:
                    self._send_lock.release()
        self._mark_closed(OVERFLOW_CODE, OVERFLOW_REASON)
        _shutdown(self.sock, socket.SHUT_RDWR)  # wakes the connection's thread

    def _lost_while_sending(self, error):
        # The send lock is held.
        self.logger.debug("%r: socket error while sending: %s", self, error)
        self._connection.fail(1006)
        self._mark_closed(1006, "")
        _shutdown(self.sock, socket.SHUT_RDWR)

    def _drop_queue(self):
        # The queue lock is held.
        self._queue_sealed = True
        self._queue.clear()
        self._queued = 0
        self._popped = self._pushed
        self._head_started = False
        self._generation += 1

    # -- closing ------------------------------------------------------------

    def close(self, code=1000, message=""):
        """Start the closing handshake and wait for the peer's answer.

        Sends a close frame with ``code`` and ``message``, waits up to
        ``close_timeout`` for the peer's close frame, then marks the
        connection closed. Closing twice is harmless. The socket itself
        belongs to the server or middleware, which closes it.

        Args:
            code (int): A close code that may be sent: 1000 to 1003, 1007 to 1014,
                or 3000 to 4999.
            message (str): The reason, at most 123 UTF-8 bytes.

        Raises:
            ValueError: ``code`` may not be sent, or ``message`` is longer than
                123 bytes in UTF-8.
        """
        if self._opener is not None:
            self._accept_on_first_use()
        if self._start_closing(code, message):
            self._await_close_reply(code, message)

    def _accept_on_first_use(self):
        with self._accept_lock:
            if self._opener is None:
                return  # another thread accepted meanwhile
            self._open(None, None)

    def _start_closing(self, code, message, timeout=None):
        """Send our close frame without waiting for the answer.

        False if closing had begun already, or if the frame could not go out
        within ``timeout`` seconds (default: ``close_timeout``; a send that
        the peer does not take holds the send lock): the connection is then
        dropped. The server's stop() gives each a share of its own timeout.
        """
        timeout = self.close_timeout if timeout is None else timeout
        deadline = _deadline(timeout)
        if not self._send_lock.acquire(timeout=-1 if timeout is None else timeout):
            self._mark_closed(1006, "")
            _shutdown(self.sock, socket.SHUT_RDWR)  # the stuck writer fails at once
            return False
        try:
            if self.closed or self._connection.close_sent is not None or self._connection.failed:
                return False
            frame = self._connection.send_close(code, message)
            try:
                # Frames queued before the close go first (within the timeout).
                self._drain_queue(deadline, seal=True)
                self._send_bounded(frame, None if deadline is None
                                   else max(deadline - time.monotonic(), 0))
            except OSError:
                self._mark_closed(1006, "")
                _shutdown(self.sock, socket.SHUT_RDWR)
                return False
        finally:
            self._send_lock.release()
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
            with self._queue_lock:
                started = self._head_started  # then a close frame cannot follow
                self._drop_queue()
            frame = self._connection.fail(code, reason)
            if frame and not started:
                try:
                    self._send_bounded(frame, self.close_timeout)
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
        with self._queue_lock:
            self._drop_queue()
        if self._in_writer:
            self._in_writer = False
            _writer.forget(self)
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
        if self._closed_callback is not None:
            self._closed_callback()

    # -- with ... as ws ---------------------------------------------------------

    def __enter__(self):
        """``with websocket:`` (or ``with wsocket.connect(url) as websocket:``).

        Returns:
            WebSocket: This WebSocket.
        """
        return self

    def __exit__(self, *exc_info):
        """Close the connection (code 1000) at the end of the ``with`` block."""
        self.close()


class _Writer:
    """The thread that sends what ``WebSocket._deliver`` could not send at once.

    One per process, started on first use (and again in a forked child). It
    waits with a selector for the sockets that have frames queued to become
    writable, and sends without blocking; it never waits for a lock either,
    so one peer that does not read holds up nobody.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._commands = collections.deque()  # (websocket, wanted), in order
        self._pid = None
        self._woken = False

    def want(self, websocket):
        """``websocket`` has frames queued: send them as its socket takes them."""
        self._command(websocket, True)

    def forget(self, websocket):
        """``websocket`` closed: stop watching its socket (before its owner closes it)."""
        self._command(websocket, False)

    def _command(self, websocket, wanted):
        with self._lock:
            if self._pid != os.getpid():
                self._start()
            self._commands.append((websocket, wanted))
            if self._woken:
                return
            self._woken = True
            wake = self._wake_send
        try:
            wake.send(b"\0")
        except OSError:
            pass  # its buffer is full: the thread is awake anyway

    def _start(self):
        self._pid = os.getpid()
        self._commands.clear()
        self._woken = False
        wake_receive, self._wake_send = socket.socketpair()
        wake_receive.setblocking(False)
        self._wake_send.setblocking(False)
        selector = selectors.DefaultSelector()
        selector.register(wake_receive, selectors.EVENT_READ, None)
        threading.Thread(target=self._run, args=(selector, wake_receive),
                         name="wsocket-writer", daemon=True).start()

    def _run(self, selector, wake_receive):
        registered = set()
        while True:
            for key, _ in selector.select():
                websocket = key.data
                if websocket is None:
                    try:
                        while wake_receive.recv(4096):
                            pass
                    except OSError:
                        pass
                elif websocket._write_queued():
                    self._unregister(selector, registered, websocket)
            with self._lock:
                commands = list(self._commands)
                self._commands.clear()
                self._woken = False
            for websocket, wanted in commands:
                if not wanted:
                    self._unregister(selector, registered, websocket)
                elif websocket not in registered and not websocket._write_queued():
                    self._register(selector, registered, websocket)

    @staticmethod
    def _register(selector, registered, websocket):
        try:
            selector.register(websocket.sock, selectors.EVENT_WRITE, websocket)
        except KeyError:
            # Its descriptor number still belongs to a socket closed since
            # (the kernel forgot it already): drop that entry.
            stale = selector.get_key(websocket.sock)
            selector.unregister(stale.fileobj)
            registered.discard(stale.data)
            try:
                selector.register(websocket.sock, selectors.EVENT_WRITE, websocket)
            except (KeyError, ValueError, OSError):
                return
        except (ValueError, OSError):
            return  # closed already
        registered.add(websocket)

    @staticmethod
    def _unregister(selector, registered, websocket):
        if websocket in registered:
            registered.discard(websocket)
            try:
                selector.unregister(websocket.sock)
            except (KeyError, ValueError, OSError):
                pass


_writer = _Writer()


def _nowait_style(sock):
    """How ``_deliver`` writes to ``sock`` without blocking.

    "dontwait": MSG_DONTWAIT on each call; "toggle": the socket is made
    non-blocking for the call (TLS sockets take no flags); None: green
    sockets (gevent, eventlet), which are written the blocking way.
    """
    library = type(sock).__module__.partition(".")[0]
    if library in ("gevent", "eventlet") or not isinstance(sock, socket.socket):
        return None
    if isinstance(sock, ssl.SSLSocket) or not hasattr(socket, "MSG_DONTWAIT") \
            or sock.gettimeout() is not None:  # with a timeout, send() would wait first
        return "toggle"
    return "dontwait"


def _no_delay(sock):
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


def _wait_writable(sock, timeout):
    """Wait until ``sock`` is writable (or failed); False when ``timeout`` passed first."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLOUT)
        return bool(poller.poll(None if timeout is None else max(timeout * 1000, 0)))
    return bool(any(select.select([], [sock], [sock], timeout)))


def _deadline(timeout):
    return None if timeout is None else time.monotonic() + timeout


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


def finish_connection(sock, linger=1.0):
    """Send our FIN, then read until the peer's FIN (at most ``linger`` seconds).

    Closing a socket that still has unread bytes makes the kernel send a
    reset, which can destroy the close frame before the peer reads it;
    draining first avoids that.
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


def close_socket(sock, linger=1.0):
    """Close a socket after its WebSocket ended, without losing the last frames."""
    try:
        finish_connection(sock, linger)
    finally:
        sock.close()

