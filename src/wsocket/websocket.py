"""``WebSocket``: the connection object, blocking I/O over a socket.

This is the thin layer over the sans-I/O core (``wsocket.protocol``): it
reads from the socket, feeds the core, acts on its events and writes the
frames the core makes. It owns no thread: pings are answered and keepalive
is run inside ``receive()``, by the thread that waits for messages anyway.

``WebSocket`` composes parts that each do one job:

- ``Connection`` (protocol/connection.py): frames and messages, no I/O;
- ``SocketTransport`` (_transport.py): the socket, read and written without
  blocking for ever, TCP_CORK;
- ``Keepalive`` (_keepalive.py): when to ping a quiet peer, when to give it up;
- ``OutgoingQueue`` and the ``Writer`` thread (_outgoing.py): frames handed
  over without blocking (broadcasts) that the socket did not take at once;
- ``LazyOpening`` (_opening.py): the 101 of a server-side WebSocket, sent on
  first use.

The WebSocket holds the locks (one for sending, one for reading), runs the
closing handshake, and decides what a failure means.
"""

from __future__ import annotations

import collections
import functools
import logging
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from ._keepalive import Keepalive
from ._opening import HeadersArg, LazyOpening
from ._outgoing import OutgoingQueue, writer
from ._sockets import READ_SIZE, shutdown_quietly
from ._transport import SocketTransport, WriteMode
from .errors import ConnectionClosed, ProtocolError, WebSocketError
from .options import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_MAX_QUEUE,
    DEFAULT_PING_INTERVAL,
    DEFAULT_PING_TIMEOUT,
    DEFAULTS,
    WebSocketOptions,
)
from .protocol.codes import CloseCode
from .protocol.connection import (
    SERVER,
    CloseReceived,
    Connection,
    Event,
    Failure,
    Message,
    Ping,
    Pong,
    Side,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .protocol.deflate import DeflateParams

__all__ = ["WebSocket", "logger", "DEFAULT_PING_INTERVAL", "DEFAULT_PING_TIMEOUT",
           "DEFAULT_CLOSE_TIMEOUT", "DEFAULT_MAX_QUEUE", "close_socket"]

logger = logging.getLogger("wsocket")
"""The ``wsocket`` logger: access lines, refused upgrades, errors in apps and handlers.

Importing wsocket configures no logging; ``run()`` and the command line set
up a handler when nothing else did (level from ``WSOCKET_LOG_LEVEL``).
"""

OVERFLOW_CODE = CloseCode.TRY_AGAIN_LATER  # the client did not keep up
OVERFLOW_REASON = "too slow: outgoing queue full"
_ABNORMAL = CloseCode.ABNORMAL_CLOSURE  # dropped without a close frame

Environ = dict[str, Any]
Data = Union[str, bytes, bytearray, memoryview]
# opener(websocket, protocol, headers): the middleware's, sends the 101 (see accept())
WebSocketOpener = Callable[["WebSocket", Optional[str], HeadersArg], None]


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
    """

    logger = logger

    def __init__(self, sock: socket.socket | None, environ: Environ | None = None, *,
                 options: WebSocketOptions | None = None, side: Side | str = SERVER,
                 subprotocol: str | None = None, deflate: DeflateParams | None = None,
                 version: int = 13, origin: str | None = None, path: str | None = None,
                 initial_data: bytes = b"", opener: WebSocketOpener | None = None,
                 **option_values: Any) -> None:
        # The options come whole (``options``), or as keywords: WebSocket(sock, max_queue=...).
        options = (options or DEFAULTS).replace(**option_values) if option_values \
            else options or DEFAULTS
        self.options = options
        self.sock = sock  # None until accepted (see accept())
        self.environ: Environ = environ if environ is not None else {}
        self.protocol = subprotocol
        self.version = version
        self.origin = origin if origin is not None else self.environ.get(
            "HTTP_ORIGIN", self.environ.get("HTTP_SEC_WEBSOCKET_ORIGIN"))
        if path is None:
            path = self.environ.get("SCRIPT_NAME", "") + self.environ.get("PATH_INFO", "")
        self.path: str = path or "/"
        self.do_compress = deflate is not None
        self.close_timeout = options.close_timeout
        self.max_queue = options.max_queue
        self.closed = False
        self.close_code: int | None = None
        self.close_reason: str | None = None
        # Whatever the app wants to keep with this connection (the event
        # app's onrequest hook puts the user here, say, for the handlers).
        self.data: dict[Any, Any] = {}

        self._connection = Connection(side, deflate, options.max_message_size,
                                      options.max_fragments, options.compression_level)
        self._keepalive = Keepalive(options.ping_interval, options.ping_timeout)
        self._outgoing = OutgoingQueue(options.max_queue)
        self._transport: SocketTransport  # set by attach()
        self._events: collections.deque[Event] = collections.deque()
        self._send_lock = threading.Lock()  # every write on the socket
        self._read_lock = threading.Lock()
        self._closed_event = threading.Event()
        self._in_writer = False  # the writer thread watches our socket
        self._closed_callback: Callable[[], object] | None = None
        # Before its 101 (see accept()), a server-side WebSocket has no socket
        # yet: the opening sends the 101 on first use. None once open.
        self._opening: LazyOpening | None = None
        if opener is not None:
            self._opening = LazyOpening(functools.partial(opener, self))
        elif sock is None:
            raise TypeError("WebSocket() needs a socket")
        else:
            self.attach(sock, initial_data)

    @property
    def ping_interval(self) -> float | None:
        return self._keepalive.interval

    @property
    def ping_timeout(self) -> float | None:
        return self._keepalive.timeout

    @property
    def side(self) -> Side:
        return self._connection.side

    @property
    def max_message_size(self) -> int | None:
        return self._connection.max_message_size

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return "<%s %s %s %s>" % (type(self).__name__, self.side, self.path, state)

    # -- the opening handshake ------------------------------------------------------

    @property
    def accepted(self) -> bool:
        """Whether the 101 went out (always true for a WebSocket made with a socket)."""
        opening = self._opening
        return opening is None or opening.accepted

    def accept(self, protocol: str | None = None, headers: HeadersArg = None) -> None:
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
        opening = self._opening
        if opening is None or opening.accepted:
            raise RuntimeError("%r: accept() called on a WebSocket that is %s already"
                               % (self, "closed" if self.closed else "open"))
        if not opening.accept(protocol, headers):
            raise RuntimeError("%r: accept() called twice" % (self,))
        self._opening = None

    def _accept_on_first_use(self) -> None:
        opening = self._opening
        if opening is not None:
            opening.accept(None, None)  # False: another thread accepted meanwhile
            self._opening = None

    # -- receiving ----------------------------------------------------------

    def receive(self, timeout: float | None = None) -> str | bytes | None:
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
        if self._opening is not None:
            self._accept_on_first_use()
        deadline = None if timeout is None else time.monotonic() + timeout
        events = self._events
        with self._read_lock:
            while True:
                if not events:
                    if self.closed or self._connection.failed:
                        raise self._closed_error()
                    if not self._read(deadline):
                        return None  # failed (``closed`` is set), or the timeout passed
                    continue
                event = events.popleft()
                if type(event) is Message:
                    transport = self._transport
                    if events and transport.can_cork and not transport.corked:
                        # More messages arrived with this one: what the app
                        # sends while it works through them leaves in one go.
                        transport.cork(True)
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
                    return None

    def __iter__(self) -> Iterator[str | bytes]:
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

    def _closed_error(self) -> ConnectionClosed:
        return ConnectionClosed(self.close_code or _ABNORMAL, self.close_reason or "")

    def _read(self, deadline: float | None) -> bool:
        """Read once from the socket into the core.

        Returns False when nothing can come any more (connection lost,
        keepalive timeout: ``closed`` is then set) or ``deadline`` passed.
        Sends keepalive pings while waiting.
        """
        transport, keepalive = self._transport, self._keepalive
        if transport.corked:
            transport.cork(False)  # whatever was sent meanwhile goes out now
        while True:
            try:
                data = transport.recv(self._time_to_wait(deadline))
            except OSError as error:
                self.logger.debug("%r: socket error while reading: %s", self, error)
                self._connection_lost()
                return False
            if data is None:  # nothing came in time: is something due?
                now = time.monotonic()
                if keepalive.timed_out(now):
                    self.logger.info("%r: no answer to a ping for %.1f s, closing",
                                     self, keepalive.timeout)
                    self._fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout",
                               close_code=_ABNORMAL)
                    return False
                if keepalive.ping_due(now):
                    self._send_keepalive_ping(now)
                if deadline is not None and now >= deadline:
                    return False
                continue
            if not data:
                self._connection_lost()
                return False
            keepalive.heard(time.monotonic())
            self._events.extend(self._connection.receive_data(data))
            return True

    def _time_to_wait(self, deadline: float | None) -> float | None:
        """Seconds until something is due: the deadline, a ping, a ping's timeout."""
        due = self._keepalive.due()
        if deadline is not None and (due is None or deadline < due):
            due = deadline
        return None if due is None else due - time.monotonic()

    def _send_keepalive_ping(self, now: float) -> None:
        self._keepalive.ping_sent(now)
        if self._transport.mode is not WriteMode.BLOCKING:
            # Never blocks: a peer that stopped reading must not keep this
            # thread from noticing that the ping goes unanswered.
            if self._connection.can_send and not self.closed:
                try:
                    self.deliver(self._connection.send_ping(b"keepalive"))
                except ProtocolError:
                    pass  # a close frame went out meanwhile
            return
        try:
            self._send_control(self._connection.send_ping, b"keepalive")
        except WebSocketError:
            pass

    # -- hooks a subclass may override ----------------------------------------

    def handle_ping(self, payload: bytes) -> None:
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

    def handle_pong(self, payload: bytes) -> None:
        """Hook: called inside ``receive()`` for every pong; does nothing by default.

        Pongs answering wsocket's keepalive pings carry ``b"keepalive"``.

        Args:
            payload (bytes): The pong's payload (at most 125 bytes).
        """

    def handle_close(self, payload: bytes) -> None:
        """Hook: called inside ``receive()`` for the peer's close frame (already validated).

        By default answers with a close frame carrying the peer's code, then
        marks the connection closed; ``receive()`` raises ``ConnectionClosed``
        right after.

        Args:
            payload (bytes): The close frame's payload: a 2-byte code and the reason.
        """
        assert self._connection.close_received is not None  # the core parsed it
        code, reason = self._connection.close_received
        with self._send_lock:
            if self._connection.close_sent is None:
                # Echo the peer's code (RFC 6455 5.5.1); a close without a
                # code is answered by a close without one.
                frame = self._connection.send_close(
                    None if code == CloseCode.NO_STATUS_RCVD else code)
                try:
                    # Frames queued before the close go first (within close_timeout).
                    self._outgoing.drain(self._transport, _deadline(self.close_timeout),
                                         seal=True)
                    self._transport.send_bounded(frame, self.close_timeout)
                except OSError:
                    pass
        self._mark_closed(code, reason)

    # -- sending ------------------------------------------------------------

    def send(self, message: Data, binary: bool | None = None,
             do_compress: bool = True) -> None:
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
        if self._opening is not None:
            self._accept_on_first_use()
        with self._send_lock:
            if self.closed:
                raise self._closed_error()
            try:
                frame = self._connection.send_message(message, binary, do_compress)
            except ProtocolError:
                raise self._closed_error() from None  # a close frame went out already
            self._sendall(frame)
        if self._outgoing:
            self._wake_writer()  # frames queued while we held the lock

    def ping(self, payload: bytes = b"") -> None:
        """Send a ping; the peer's pong goes to ``handle_pong(payload)``.

        Args:
            payload (bytes): At most 125 bytes.

        Raises:
            ConnectionClosed: The connection is closed or closing.
            ValueError: ``payload`` is longer than 125 bytes.
        """
        if self._opening is not None:
            self._accept_on_first_use()
        self._send_control(self._connection.send_ping, payload)

    def _send_control(self, build_frame: Callable[[bytes], bytes], payload: bytes) -> None:
        with self._send_lock:
            if self.closed or not self._connection.can_send:
                raise self._closed_error()
            self._sendall(build_frame(payload))
        if self._outgoing:
            self._wake_writer()

    def _sendall(self, frame: bytes) -> None:
        # Called with the send lock held: frames of two messages never interleave.
        # A peer that takes none of our bytes for ping_timeout seconds is as
        # dead as one that leaves a ping unanswered: the send fails (1006)
        # rather than hold this thread, and the send lock, for ever.
        transport = self._transport
        try:
            rest: bytes | bytearray | memoryview | None = frame
            if self._outgoing:  # what deliver() queued goes first
                self._outgoing.drain(transport, None, stall=self._keepalive.timeout)
            else:  # the usual case: the socket takes the whole frame at once
                rest = transport.send_at_once(frame)
            if rest is not None:
                transport.send_bounded(rest, self._keepalive.timeout)
        except OSError as error:
            self._lost_while_sending(error)
            raise ConnectionClosed(_ABNORMAL, str(error)) from error

    def _lost_while_sending(self, error: OSError) -> None:
        # The send lock is held.
        self.logger.debug("%r: socket error while sending: %s", self, error)
        self._connection.fail(_ABNORMAL)
        self._mark_closed(_ABNORMAL, "")
        self._transport.shutdown()

    # -- closing ------------------------------------------------------------

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, message: str = "") -> None:
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
        if self._opening is not None:
            self._accept_on_first_use()
        if self.start_closing(code, message):
            self._await_close_reply(code, message)

    def _await_close_reply(self, code: int, message: str) -> None:
        timeout = self.close_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._read_lock.acquire(blocking=False):
            try:
                self._read_until_close(deadline)
            finally:
                self._read_lock.release()
        else:
            # Another thread is in receive(); it will see the answer.
            self._closed_event.wait(timeout)
        if not self.closed:
            self._mark_closed(code, message)

    def _read_until_close(self, deadline: float | None) -> None:
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
            if not self._read(deadline) and deadline is not None \
                    and time.monotonic() >= deadline:
                return

    def _fail(self, code: int, reason: str, close_code: int | None = None) -> None:
        """Fail the connection: close frame with ``code`` if possible, then drop TCP."""
        self.logger.debug("%r: failing the connection with %d: %s", self, code, reason)
        with self._send_lock:
            started = self._outgoing.drop()  # a frame partly sent: no close frame can follow
            frame = self._connection.fail(code, reason)
            if frame and not started:
                try:
                    self._transport.send_bounded(frame, self.close_timeout)
                except OSError:
                    pass
        self._mark_closed(close_code or code, reason)

    def _connection_lost(self) -> None:
        self._connection.fail(_ABNORMAL)
        self._mark_closed(_ABNORMAL, "")

    def _mark_closed(self, code: int, reason: str) -> None:
        first_time = not self.closed
        if first_time:
            self.closed = True
            self.close_code = code
            self.close_reason = reason
        self._outgoing.drop()
        sock = self._transport.sock
        if self._in_writer:
            self._in_writer = False
            writer.forget(self, sock)
        if self.side == SERVER:
            # RFC 6455 7.1.1: the server ends TCP first. Half-closing now
            # sends the FIN promptly even if the application goes on for a
            # while; the socket object stays with its owner, who closes it.
            shutdown_quietly(sock, socket.SHUT_WR)
        elif first_time:
            # A client owns its socket. After a clean closing handshake it
            # waits for the server's FIN (RFC 6455 7.1.1); otherwise it drops
            # the connection at once, waking any thread blocked on it.
            connection = self._connection
            if connection.close_sent is not None and connection.close_received is not None \
                    and not connection.failed:
                close_socket(sock, linger=self.close_timeout)
            else:
                shutdown_quietly(sock, socket.SHUT_RDWR)
                sock.close()
        self._closed_event.set()
        if self._closed_callback is not None:
            self._closed_callback()

    # -- with ... as ws ---------------------------------------------------------

    def __enter__(self) -> WebSocket:
        """``with websocket:`` (or ``with wsocket.connect(url) as websocket:``).

        Returns:
            WebSocket: This WebSocket.
        """
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the connection (code 1000) at the end of the ``with`` block."""
        self.close()

    # -- the seams: what the middleware, the hub, the server, the event app use -----
    #
    # Internal interface (not for applications): each method names one thing
    # another module of wsocket needs of a connection.

    def attach(self, sock: socket.socket, initial_data: bytes = b"") -> None:
        """Start using ``sock``, the connection after the handshake, and the bytes read past it.

        Called by the constructor, or by the middleware's opener before the 101.
        """
        self.sock = sock
        self._transport = SocketTransport(sock)
        if initial_data:
            self._events.extend(self._connection.receive_data(initial_data))

    def send_opening(self, response: bytes, admit: Callable[[], object]) -> bool:
        """The middleware's opener: send the 101 (``response``) as the first bytes on the socket.

        ``admit()`` runs just before, with the send lock held, so that a
        frame delivered meanwhile (a hub's broadcast) waits in the queue and
        follows the 101. Returns False when the client left meanwhile (the
        WebSocket is then closed, 1006).
        """
        sent = True
        with self._send_lock:
            admit()
            try:
                self._transport.sock.sendall(response)
            except OSError as error:
                self.logger.debug("client left during the handshake: %s", error)
                self._mark_closed(_ABNORMAL, "")
                sent = False
        if self._outgoing:
            self._wake_writer()  # a broadcast came meanwhile
        return sent

    def when_accepted(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once the 101 went out: now if it did (a hub joins that way)."""
        opening = self._opening
        if opening is None:
            callback()
        else:
            opening.when_accepted(callback)

    def decline(self, reason: str) -> bool:
        """The app answers with HTTP: no 101 from now on; False if it went out already.

        A later ``accept()`` (or first use) raises RuntimeError with ``reason``.
        """
        opening = self._opening
        return opening is not None and opening.decline(reason)

    def start_closing(self, code: int, message: str, timeout: float | None = None) -> bool:
        """Send our close frame without waiting for the answer (the server's stop()).

        False if closing had begun already, or if the frame could not go out
        within ``timeout`` seconds (default: ``close_timeout``; a send that
        the peer does not take holds the send lock): the connection is then
        dropped. The server's stop() gives each a share of its own timeout.
        """
        timeout = self.close_timeout if timeout is None else timeout
        deadline = _deadline(timeout)
        if not self._send_lock.acquire(timeout=-1 if timeout is None else timeout):
            self._mark_closed(_ABNORMAL, "")
            self._transport.shutdown()  # the stuck writer fails at once
            return False
        try:
            if self.closed or not self._connection.can_send:
                return False
            frame = self._connection.send_close(code, message)
            try:
                # Frames queued before the close go first (within the timeout).
                self._outgoing.drain(self._transport, deadline, seal=True)
                self._transport.send_bounded(frame, None if deadline is None
                                             else max(deadline - time.monotonic(), 0))
            except OSError:
                self._mark_closed(_ABNORMAL, "")
                self._transport.shutdown()
                return False
        finally:
            self._send_lock.release()
        return True

    @property
    def writes_without_blocking(self) -> bool:
        """False for green sockets (gevent, eventlet): no reactor, no writer thread for them."""
        return self._transport.mode is not WriteMode.BLOCKING

    def keepalive_due(self) -> float | None:
        """When keepalive has something to do (``time.monotonic()``), or None: never."""
        return self._keepalive.due()

    def set_close_callback(self, callback: Callable[[], object] | None) -> None:
        """Have ``callback()`` called (from any thread) each time the connection is marked closed.

        The event app hears that way of a close while no thread reads; None removes it.
        """
        self._closed_callback = callback

    def deliver(self, frame: bytes) -> bool:
        """Send one whole, ready frame without blocking; False if the connection is closed.

        The hub's broadcasts go this way. The frame goes at once when the
        socket takes it and no other thread writes; otherwise it waits in
        the outgoing queue, which the writer thread empties as the socket
        takes it. More than ``max_queue`` bytes waiting means the peer does
        not read: the connection is closed with 1013 and its socket shut
        down, so that its own thread wakes up and the application sees the end.
        """
        transport = self._transport
        if transport.mode is WriteMode.BLOCKING:
            return self._deliver_blocking(frame)
        if self.closed:
            return False
        if not self._send_lock.acquire(blocking=False):
            return self._queue_for_writer(frame)  # someone is writing
        try:
            if self.closed or not self._connection.can_send:
                return False
            try:
                if self._outgoing:
                    overflow = self._outgoing.push(frame)
                    if overflow is False:
                        self._outgoing.flush(transport)
                else:
                    sent = transport.send_nowait([frame])
                    if sent == len(frame):
                        return True
                    overflow = self._outgoing.push_rest(frame, sent, transport.mode)
                if overflow is None:
                    return False  # closing meanwhile
            except OSError as error:
                self._lost_while_sending(error)
                return False
            if overflow:
                self._overflow(have_lock=True)
                return False
        finally:
            self._send_lock.release()
        if self._outgoing:
            self._wake_writer()
        return True

    def _queue_for_writer(self, frame: bytes) -> bool:
        """``deliver`` without the send lock: the frame waits, the writer sends it later."""
        overflow = self._outgoing.push(frame)
        if overflow is None:
            return False
        if overflow:
            self._overflow(have_lock=False)
            return False
        self._wake_writer()
        return True

    def _deliver_blocking(self, frame: bytes) -> bool:
        """For sockets that cannot send without blocking here (gevent, eventlet)."""
        with self._send_lock:
            if self.closed or not self._connection.can_send:
                return False
            try:
                self._sendall(frame)
            except ConnectionClosed:
                return False
        return True

    def write_queued(self) -> bool:
        """The writer thread's turn; True when the writer has nothing more to do here."""
        if not self._send_lock.acquire(blocking=False):
            return True  # whoever holds it wakes the writer again if frames are left
        try:
            if self.closed:
                return True
            try:
                return self._outgoing.flush(self._transport)
            except OSError as error:
                self._lost_while_sending(error)
                return True
        finally:
            self._send_lock.release()

    def _wake_writer(self) -> None:
        self._in_writer = True
        writer.want(self, self._transport.sock)

    def _overflow(self, have_lock: bool) -> None:
        """More than max_queue bytes wait: close with 1013 and shut the socket."""
        started = self._outgoing.drop(unless_sealed=True)
        if started is None:
            return  # closing already
        self.logger.warning("%r: closing with %d: more than %d bytes wait to be sent, the "
                            "client does not read fast enough", self, OVERFLOW_CODE,
                            self.max_queue)
        if have_lock or self._send_lock.acquire(blocking=False):
            try:
                frame = self._connection.fail(OVERFLOW_CODE, OVERFLOW_REASON)
                if frame and not started:
                    try:
                        self._transport.send_nowait([frame])  # best effort: its buffer is full
                    except OSError:
                        pass
            finally:
                if not have_lock:
                    self._send_lock.release()
        self._mark_closed(OVERFLOW_CODE, OVERFLOW_REASON)
        self._transport.shutdown()  # wakes the connection's thread


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def finish_connection(sock: socket.socket, linger: float | None = 1.0) -> None:
    """Send our FIN, then read until the peer's FIN (at most ``linger`` seconds; None: no limit).

    Closing a socket that still has unread bytes makes the kernel send a
    reset, which can destroy the close frame before the peer reads it;
    draining first avoids that.
    """
    shutdown_quietly(sock, socket.SHUT_WR)
    deadline = _deadline(linger)
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
