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
- ``Sender`` (_sending.py): every write, under one lock; with its
  ``OutgoingQueue`` and the ``Writer`` thread (_outgoing.py) for frames handed
  over without blocking (broadcasts) that the socket did not take at once;
- ``LazyOpening`` (_opening.py): the 101 of a server-side WebSocket, sent on
  first use.

The WebSocket holds the locks (one for sending, one for reading), runs the
closing handshake, and decides what a failure means.
"""

from __future__ import annotations

import functools
import logging
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from . import _transport
from ._keepalive import Keepalive
from ._opening import HeadersArg, LazyOpening
from ._reading import Reader
from ._sending import Sender
from ._sockets import EventTurn
from ._transport import SocketTransport
from .errors import ConnectionClosed, ProtocolError, WebSocketError
from .options import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_MAX_QUEUE,
    DEFAULT_PING_INTERVAL,
    DEFAULT_PING_TIMEOUT,
    DEFAULTS,
    WebSocketOptions,
    check_max_queue,
    check_timeout,
)
from .protocol.codes import CloseCode
from .protocol.connection import (
    SERVER,
    CloseReceived,
    Connection,
    Failure,
    Message,
    Ping,
    Pong,
    Side,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from . import _speedups
    from .protocol.connection import Event
    from .protocol.deflate import DeflateParams
    from .reactor import Reactor

__all__ = ["WebSocket", "logger", "DEFAULT_PING_INTERVAL", "DEFAULT_PING_TIMEOUT",
           "DEFAULT_CLOSE_TIMEOUT", "DEFAULT_MAX_QUEUE", "close_socket"]

logger = logging.getLogger("wsocket")
"""The ``wsocket`` logger: access lines, refused upgrades, errors in apps and handlers.

Importing wsocket configures no logging; ``run()`` and the command line set
up a handler when nothing else did (level from ``WSOCKET_LOG_LEVEL``).
"""

_ABNORMAL = CloseCode.ABNORMAL_CLOSURE  # dropped without a close frame
_closed_event_lock = threading.Lock()  # makes a WebSocket's _closed_event once (rarely used)

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
        close_timeout (float | None): Seconds ``close()`` waits for the peer's close frame.
        data (dict): Whatever the app keeps with this connection (an ``onrequest``
            check's user, say); empty at first.
    """

    # ``closed`` is a slot: the C paths read it at every message (_speedups.c's
    # SlotField); everything else lives in the instance's __dict__ as usual.
    __slots__ = ("closed", "__dict__", "__weakref__")

    logger = logger

    # Attributes most connections never change: until one is set on the
    # instance, the class's value stands (fewer to set per connection opened,
    # and to keep while it is open).
    # Made only when close() waits for another thread's receive() to see
    # the peer's answer (rare): an Event costs about 1 KiB a connection.
    _closed_event: threading.Event | None = None
    _closed_callback: Callable[[], object] | None = None
    # The usual send and read, each in one C call where it can be had (see attach()).
    _direct_send: _speedups.DirectSend | None = None
    _direct_receive: _speedups.DirectReceive | None = None
    _direct_wait: Callable[[WebSocket], str | bytes | None] | None = None
    _loop: Reactor | None = None  # the reactor whose loop runs it (runs_in_loop)
    # Before its 101 (see accept()), a server-side WebSocket has no socket
    # yet: the opening sends the 101 on first use. None once open.
    _opening: LazyOpening | None = None

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
        self._close_timeout = options.close_timeout
        self.closed = False
        self.close_code: int | None = None
        self.close_reason: str | None = None
        # Whatever the app wants to keep with this connection (the event
        # app's onrequest hook puts the user here, say, for the handlers).
        self.data: dict[Any, Any] = {}

        self._connection = Connection(side, deflate, options.max_message_size,
                                      options.max_fragments, options.compression_level)
        self._keepalive = Keepalive(options.ping_interval, options.ping_timeout)
        self._sender = Sender(self._connection, options.max_queue, options.ping_timeout)
        self._reader = Reader(self._connection, self._keepalive)
        self._transport: SocketTransport  # set by attach()
        if opener is not None:
            self._opening = LazyOpening(functools.partial(opener, self))
        elif sock is None:
            raise TypeError("WebSocket() needs a socket")
        else:
            self.attach(sock, initial_data)

    @property
    def ping_interval(self) -> float | None:
        return self._keepalive.interval

    @ping_interval.setter
    def ping_interval(self, seconds: float | None) -> None:
        check_timeout("ping_interval", seconds)  # (before anything changes)
        self._keepalive.interval = seconds

    @property
    def ping_timeout(self) -> float | None:
        return self._keepalive.timeout

    @ping_timeout.setter
    def ping_timeout(self, seconds: float | None) -> None:
        check_timeout("ping_timeout", seconds)
        # also how long a send may make no progress before the peer is taken for dead
        self._keepalive.timeout = self._sender.stall = seconds

    @property
    def close_timeout(self) -> float | None:
        return self._close_timeout

    @close_timeout.setter
    def close_timeout(self, seconds: float | None) -> None:
        check_timeout("close_timeout", seconds)
        self._close_timeout = seconds

    @property
    def max_queue(self) -> int | None:
        return self._sender.queue.max_bytes

    @max_queue.setter
    def max_queue(self, size: int | None) -> None:
        check_max_queue(size)
        self._sender.queue.max_bytes = size

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
        if timeout is None and self._direct_wait is not None:
            message = self._direct_wait(self)  # the usual wait and read, in one C call
            if message is not None:
                return message
        deadline = None if timeout is None else time.monotonic() + timeout
        reader = self._reader
        events = reader.events
        with reader.lock:
            while True:
                if not events:
                    if self.closed or self._connection.failed:
                        raise self._closed_error()
                    if not reader.read(self, deadline):
                        return None  # failed (``closed`` is set), or the timeout passed
                    continue
                event = events.pop()  # the next one is last
                if type(event) is Message:
                    transport = self._transport
                    if events and transport.can_cork and not transport.corked:
                        # More came with it: what the app sends meanwhile leaves in one go.
                        transport.cork(True)
                    return event.data
                if not self._act_on(event):
                    return None  # the connection failed

    def receive_arrived(self, read: bool,
                        taken: list[str | bytes] | None = None) -> list[str | bytes]:
        """Internal (the event app): the messages that have arrived, in order; never waits.

        From the events read already; when none is left and ``read`` is
        true, from one read of what the socket holds now. The event app
        reads once per turn of the reactor: its epoll registration is
        level-triggered, so whatever is left in the socket brings it back.
        Bytes that TLS decrypted already are read regardless (epoll cannot
        see them). Control frames are acted on as ``receive()`` does; the
        messages before one are returned first. ``[]`` when nothing came,
        or when the connection failed (``closed`` is then set). ``taken``:
        messages the C turn read already, returned first (no read then).

        Raises:
            ConnectionClosed: The peer closed the connection, or it was closed already.
        """
        if self._opening is not None:
            self._accept_on_first_use()
        reader = self._reader
        events = reader.events
        direct = self._direct_receive
        if taken is None and read and direct is not None:
            taken = direct(self)  # the usual turn: one read in one C call
        if taken is not None:
            if not events:
                if len(taken) > 1:
                    self._hold_answers()
                return taken
            read = False  # a control frame or more came with them: the whole way
        with reader.lock:
            if taken is not None:
                messages = taken
            elif read and not events and not self.closed and not self._connection.failed:
                # The usual turn: one read, whole messages only, none waiting from before.
                messages = reader.read_messages_nowait(self)
                if not events:
                    if len(messages) > 1:
                        self._hold_answers()
                    return messages
                read = False  # a control frame or more came with them: the whole way
            else:
                messages = []
            while True:
                if not events:
                    if messages:
                        break
                    if self.closed or self._connection.failed:
                        raise self._closed_error()
                    if not (read or self._transport.buffered()) or not reader.read_nowait(self):
                        break
                    read = False
                    continue
                event = events[-1]  # the next one is last
                if type(event) is Message:
                    events.pop()
                    messages.append(event.data)
                    continue
                if messages:
                    break  # the messages before a control frame are handled first
                events.pop()
                if not self._act_on(event):
                    break  # the connection failed
            if len(messages) > 1:
                self._hold_answers()
        return messages

    def has_arrived(self) -> bool:
        """Internal (the event app): something waits for a turn before the socket says so.

        Events read already (bytes that came with the upgrade), bytes that
        TLS decrypted already, or the connection closed meanwhile.
        """
        return self.closed or self._read_already()

    def batch_done(self) -> bool:
        """Internal (the event app): the messages ``receive_arrived`` gave are handled.

        What was sent for them, held back to leave together (see
        ``Sender.hold``), goes out now. True when ``receive_arrived(False)``
        has more to give: events read already (a control frame stopped the
        last batch), or bytes that TLS decrypted already, which epoll cannot
        see. (One call for both: it runs once per message on a quiet connection.)
        """
        if self._sender.holding:
            self._sender.release(self)
        return self._read_already()

    def _read_already(self) -> bool:
        """Whether events were read already, or TLS decrypted bytes that epoll cannot see."""
        transport = self._transport
        return bool(self._reader.events) or (transport.decrypts and transport.buffered())

    def runs_in_loop(self, loop: Reactor | None = None) -> None:
        """Internal (the event app): from now on the reactor's loop thread reads and writes.

        No other thread waits for the GIL there: the usual read and write keep it.
        ``loop``: that reactor, asked how to send a batch's answers (``_hold_answers``).
        """
        self._loop = loop
        self._sender.in_loop()
        if self._direct_send is not None:
            self._direct_send.release_gil = False  # as the loop's other calls keep it
        self._direct_wait = None  # no thread waits in recv here (one object less to keep)

    def _hold_answers(self) -> None:
        """Several messages came at once: their answers leave together (``Sender.hold``).

        All together when other connections wait for the loop (fewer system
        calls for the same work); in parts of ``HOLD_PART`` when none does,
        so that a peer that pipelines gets its first answers, and sends on,
        while the rest are worked out, instead of both sides taking turns
        to wait.
        """
        loop = self._loop
        self._sender.hold_batch(in_parts=loop is not None and not loop.pending())

    def release_held(self) -> None:
        """Internal (the reactor's monitor): the handler of a batch blocks; send what it sent.

        Called from another thread; the rest of the batch is sent as it comes.
        """
        self._sender.release_soon(self)

    def _act_on(self, event: Event) -> bool:
        """A control event: the hooks, the peer's close (raises), a failure (False)."""
        if type(event) is Ping:
            self.handle_ping(event.payload)
        elif type(event) is Pong:
            self.handle_pong(event.payload)
        elif type(event) is CloseReceived:
            self.handle_close(event.payload)
            raise ConnectionClosed(event.code, event.reason)
        elif type(event) is Failure:
            self.fail_connection(event.code, event.reason)
            return False
        return True

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

    def send_keepalive_ping(self) -> None:
        """Internal (the reader calls it): a keepalive ping, sent without blocking if it can."""
        self._sender.keepalive_ping(self)

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
        self._sender.answer_close(code, self.close_timeout)
        self.mark_closed(code, reason)

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
        direct = self._direct_send
        if direct is not None and binary is None and direct(self, message):
            return  # the usual message, sent (or held with its batch's: hold()) in one C call
        sender = self._sender
        with sender.lock:
            if self.closed:
                raise self._closed_error()
            try:
                frame = self._connection.send_message(message, binary, do_compress)
            except ProtocolError:
                raise self._closed_error() from None  # a close frame went out already
            send_now = sender.send_dontwait
            if sender.holding:
                sender.hold(self, frame)  # the event app's batch: leaves with the others
            elif send_now is None or sender.queue.frames:
                sender.sendall(self, frame)
            else:
                # sendall()'s usual case, inline (once a message, a call less).
                try:
                    sent = send_now(sender.sock, frame)
                except OSError:
                    sent = 0  # failed: send_rest meets the same error and says so
                if sent != len(frame):
                    sender.send_rest(self, frame, sent)
        if sender.queue.frames and not sender.holding:  # (sender.waiting, inline: once a message)
            sender.wake_writer(self)  # frames queued while we held the lock

    def _finish_direct_send(self, frame: bytes, sent: int) -> None:
        """``DirectSend``'s partial write: the rest of ``frame`` goes; lock held, let go here."""
        sender = self._sender
        try:
            sender.send_rest(self, frame, sent)
        finally:
            sender.lock.release()
        if sender.queue.frames and not sender.holding:
            sender.wake_writer(self)  # frames queued while the rest went

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
        sender = self._sender
        with sender.lock:
            if self.closed or not self._connection.can_send:
                raise self._closed_error()
            sender.sendall(self, build_frame(payload))
        sender.wake_writer_if_queued(self)

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
        reader = self._reader
        if reader.lock.acquire(blocking=False):
            try:
                reader.read_until_close(self, deadline)
            finally:
                reader.lock.release()
        else:
            # Another thread is in receive(); it will see the answer.
            closed_event = self._closed_waiter()
            if not self.closed:  # checked after the event exists: mark_closed sets it
                closed_event.wait(timeout)
        if not self.closed:
            self.mark_closed(code, message)

    def _closed_waiter(self) -> threading.Event:
        """The event ``mark_closed`` sets, made on first use.

        Whoever waits on it checks ``closed`` after getting it; ``mark_closed``
        sets ``closed`` before it looks for the event: one of the two sees the other.
        """
        with _closed_event_lock:
            if self._closed_event is None:
                self._closed_event = threading.Event()
            return self._closed_event

    def fail_connection(self, code: int, reason: str, close_code: int | None = None) -> None:
        """Fail the connection: close frame with ``code`` if possible, then drop TCP.

        Internal (the reader calls it too). ``close_code``: the code the
        connection is marked closed with, when not ``code``.
        """
        self.logger.debug("%r: failing the connection with %d: %s", self, code, reason)
        self._sender.fail(code, reason, self.close_timeout)
        self.mark_closed(close_code or code, reason)

    def mark_closed(self, code: int, reason: str) -> None:
        """The connection ended with ``code`` and ``reason``: closed, and its socket ended.

        Internal (the sending side calls it when the socket fails); closing
        again keeps the first code and reason.
        """
        first_time = not self.closed
        if first_time:
            self.closed = True
            self.close_code = code
            self.close_reason = reason
        self._sender.stop(self)
        if self.side == SERVER:
            # RFC 6455 7.1.1: the server ends TCP first. Half-closing now
            # sends the FIN promptly even if the application goes on for a
            # while; the socket object stays with its owner, who closes it.
            self._transport.shutdown(socket.SHUT_WR)
        elif first_time:
            # A client owns its socket. After a clean closing handshake it
            # waits for the server's FIN (RFC 6455 7.1.1); otherwise it drops
            # the connection at once, waking any thread blocked on it.
            connection = self._connection
            clean = connection.close_sent is not None \
                and connection.close_received is not None and not connection.failed
            self._transport.close(linger=self.close_timeout if clean else None)
        closed_event = self._closed_event  # read after ``closed`` was set (see _closed_waiter)
        if closed_event is not None:
            closed_event.set()
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
        self._transport = transport = SocketTransport(sock)
        self._sender.attach(transport)
        self._reader.attach(transport, initial_data)
        self._direct_send = self._sender.direct_send()
        self._direct_receive = direct = self._reader.direct_receive()
        if direct is not None and transport.waits_in_recv:
            self._direct_wait = direct.receive

    def send_opening(self, response: bytes, admit: Callable[[], object]) -> bool:
        """The middleware's opener: send the 101 (``response``) as the first bytes on the socket.

        ``admit()`` runs just before, with the send lock held, so that a
        frame delivered meanwhile (a hub's broadcast) waits in the queue and
        follows the 101. Returns False when the client left meanwhile (the
        WebSocket is then closed, 1006).
        """
        return self._sender.send_opening(self, response, admit)

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
        return self._sender.send_close(
            self, code, message, self.close_timeout if timeout is None else timeout)

    @property
    def writes_without_blocking(self) -> bool:
        """False for green sockets (gevent, eventlet): no reactor, no writer thread for them."""
        return self._sender.writes_without_blocking

    def direct_turn(self, app_dict: dict[str, Any], onmessage_key: str, session: Any,
                    handler_failed: Callable[[Any, Exception], None],
                    ) -> Callable[[], float | None] | None:
        """The event app's usual turn in one C call (``_speedups.EventTurn``), or None: not here.

        Only where ``attach()`` gave this connection its C read (a plain
        socket, no compression). Anything else goes to ``session.resume()``
        (the Python turn); ``session.ended_by_error(error)`` ends the session
        when the read raises; ``handler_failed(handler, error)`` logs a handler's error.
        """
        if EventTurn is None or self._direct_receive is None:
            return None
        return EventTurn(self._direct_receive, self, self._keepalive, app_dict, onmessage_key,
                         session, handler_failed)

    def keepalive_due(self) -> float | None:
        """When keepalive has something to do (``time.monotonic()``), or None: never."""
        return self._keepalive.next_due  # (due(), inline: the event app asks once a turn)

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
        return self._sender.deliver(self, frame)

    def write_queued(self) -> bool:
        """The writer thread's turn; True when the writer has nothing more to do here."""
        return self._sender.write_queued(self)


# Closing a socket without losing the last frames: the adapters use them too.
finish_connection = _transport.finish_connection
close_socket = _transport.close_socket
