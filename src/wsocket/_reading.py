"""``Reader``: the reading side of a connection, socket to core to events.

One job: waiting for bytes and turning them into events. ``read()`` reads
once from the socket (``SocketTransport``) into the core (``Connection``),
whose events (messages, pings, pongs, the peer's close, a failure) wait in
``events`` for ``WebSocket.receive()`` to act on; while it waits it runs the
keepalive (``Keepalive``): a ping after a silence, a dead peer given up.
What ends the connection is told to its owner, the ``WebSocket``, passed to
each call (never kept).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable, Protocol

from ._sockets import LONGEST_WAIT, READ_SIZE, DirectReceive, new_lock, recv_nowait_in_loop
from ._transport import WriteMode
from .protocol.codes import CloseCode
from .protocol.connection import CloseReceived, Failure, Message

if TYPE_CHECKING:
    import logging
    import socket

    from . import _speedups
    from ._keepalive import Keepalive
    from ._transport import SocketTransport
    from .protocol.connection import Connection, Event

__all__ = ["Reader", "ReaderOwner"]

_ABNORMAL = CloseCode.ABNORMAL_CLOSURE


class ReaderOwner(Protocol):
    """What the reader needs of the connection it reads for (a ``WebSocket``)."""

    logger: logging.Logger
    closed: bool

    def mark_closed(self, code: int, reason: str) -> None:
        """The connection ended (see ``WebSocket.mark_closed``)."""

    def fail_connection(self, code: int, reason: str, close_code: int | None = None) -> None:
        """Fail the connection with a close frame carrying ``code`` if one may go."""

    def send_keepalive_ping(self) -> None:
        """Send a keepalive ping, without blocking for long."""


class Reader:
    """Reads one connection.

    Attributes:
        lock (threading.Lock): Held by the one thread that reads (``receive()``,
            or ``close()`` waiting for the peer's answer).
        events (list): The core's events not acted on yet, the next one last
            (taken with ``pop()``): an empty list costs next to nothing, where a
            deque keeps 600 bytes for each quiet connection.
    """

    __slots__ = ("lock", "events", "_connection", "_keepalive", "_transport", "_recv_dontwait")

    def __init__(self, connection: Connection, keepalive: Keepalive) -> None:
        self.lock = new_lock()
        self.events: list[Event] = []
        self._connection = connection
        self._keepalive = keepalive
        self._transport: SocketTransport  # set by attach()
        # A plain socket's one call per read (read_messages_nowait: the reactor's
        # loop): recv_nowait_in_loop(sock, size), shared, not a partial of it.
        self._recv_dontwait: Callable[[socket.socket, int], bytes | None] | None = None

    def attach(self, transport: SocketTransport, initial_data: bytes = b"") -> None:
        """Read ``transport`` from now on; ``initial_data`` came past the handshake."""
        self._transport = transport
        if transport.mode is WriteMode.DONTWAIT:
            self._recv_dontwait = recv_nowait_in_loop
        if initial_data:
            self._add(self._connection.receive_data(initial_data))

    def direct_receive(self) -> _speedups.DirectReceive | None:
        """The usual read in one C call; None: not here.

        Called itself by the event app's turn in the loop's thread; its
        ``receive`` method by ``WebSocket.receive()`` in a connection's own
        thread, where the transport waits in ``recv`` itself. A plain socket
        and uncompressed messages only. It refers to this reader's parts,
        never to the reader (no reference cycle to collect).
        """
        connection = self._connection
        if DirectReceive is None or self._recv_dontwait is None \
                or not connection.receives_plain_frames:
            return None
        return DirectReceive(self._transport.sock, connection,
                             self.events, self._transport, self._keepalive, self.lock,
                             connection.expects_masked)

    def _add(self, new: list[Event]) -> None:
        """Queue the core's ``new`` events after those still waiting (next one last).

        ``events`` is changed in place, never replaced: read_until_close()
        holds it across reads.
        """
        if len(new) == 1:
            # The usual read brings one message: no reversed copy to make.
            self.events.insert(0, new[0])
        elif new:
            self.events[:0] = new[::-1]

    def read(self, owner: ReaderOwner, deadline: float | None) -> bool:
        """Read once from the socket into the core (the lock is held).

        Returns False when nothing can come any more (connection lost,
        keepalive timeout: the owner is then closed) or ``deadline`` passed.
        Sends keepalive pings while waiting.
        """
        transport, keepalive = self._transport, self._keepalive
        if transport.corked:
            transport.cork(False)  # whatever was sent meanwhile goes out now
        while True:
            # How long to wait: until the deadline, a ping or a ping's timeout
            # (inline rather than a method: this runs once per message).
            due = keepalive.next_due
            if deadline is not None and (due is None or deadline < due):
                due = deadline
            try:
                data = transport.recv(
                    None if due is None else min(due - time.monotonic(), LONGEST_WAIT))
            except OSError as error:
                owner.logger.debug("%r: socket error while reading: %s", owner, error)
                self._lost(owner)
                return False
            if data is None:  # nothing came in time: is something due?
                now = time.monotonic()
                if not self._keep_alive(owner, now):
                    return False
                if deadline is not None and now >= deadline:
                    return False
                continue
            if not data:
                self._lost(owner)
                return False
            keepalive.heard(time.monotonic())
            self._add(self._connection.receive_data(data))
            return True

    def read_nowait(self, owner: ReaderOwner) -> bool:
        """Read once what has arrived, without waiting (the lock is held); True if bytes came.

        For the event app, whose reactor calls when the socket is readable
        or keepalive is due: with nothing there, the keepalive runs. False
        too when the connection ended (the owner is then closed).
        """
        transport = self._transport
        if transport.corked:
            transport.cork(False)  # whatever was sent meanwhile goes out now
        try:
            data = transport.recv_nowait()
        except OSError as error:
            owner.logger.debug("%r: socket error while reading: %s", owner, error)
            self._lost(owner)
            return False
        if data is None:
            self._keep_alive(owner, time.monotonic())
            return False
        if not data:
            self._lost(owner)
            return False
        self._keepalive.heard(time.monotonic())
        self._add(self._connection.receive_data(data))
        return True

    def read_messages_nowait(self, owner: ReaderOwner) -> list[str | bytes]:
        """``read_nowait`` for the event app: the messages that read brought, as they are.

        The event app's usual turn: one read, one message or a few, handled
        at once, so no ``Message`` event is made for each and none waits in
        ``events``. Whatever came after them (a control frame, a failure, the
        start of the next message) waits in ``events``. ``[]`` when nothing
        came, or the connection ended (the owner is then closed). Only when
        ``events`` is empty (the lock is held).
        """
        recv = self._recv_dontwait
        if recv is None or self._transport.corked:
            # TLS or a green socket, or whatever was sent meanwhile must go out first.
            if not self.read_nowait(owner):
                return []
            return self._take_messages()
        try:
            data = recv(self._transport.sock, READ_SIZE)
        except OSError as error:
            owner.logger.debug("%r: socket error while reading: %s", owner, error)
            self._lost(owner)
            return []
        if data is None:
            self._keep_alive(owner, time.monotonic())  # nothing there: woken for keepalive
            return []
        if not data:
            self._lost(owner)
            return []
        self._keepalive.heard(time.monotonic())
        rest: list[Event] = []
        messages = self._connection.receive_messages(data, rest)
        if rest:
            self._add(rest)
        return messages

    def _take_messages(self) -> list[str | bytes]:
        """The messages at the end of ``events`` (the next one last), taken out, in order."""
        events = self.events
        messages: list[str | bytes] = []
        while events and type(events[-1]) is Message:
            messages.append(events.pop().data)  # type: ignore[attr-defined]
        return messages

    def _keep_alive(self, owner: ReaderOwner, now: float) -> bool:
        """A ping if one is due; False (the connection failed) if the last went unanswered."""
        keepalive = self._keepalive
        if keepalive.timed_out(now):
            owner.logger.info("%r: no answer to a ping for %.1f s, closing",
                              owner, keepalive.timeout)
            owner.fail_connection(CloseCode.INTERNAL_ERROR, "keepalive ping timeout",
                                  close_code=_ABNORMAL)
            return False
        if keepalive.ping_due(now):
            keepalive.ping_sent(now)
            owner.send_keepalive_ping()
        return True

    def _lost(self, owner: ReaderOwner) -> None:
        self._connection.fail(_ABNORMAL)
        owner.mark_closed(_ABNORMAL, "")

    def read_until_close(self, owner: ReaderOwner, deadline: float | None) -> None:
        """Discard what arrives until the peer's close frame (RFC 6455 1.4); the lock is held."""
        events = self.events
        while not owner.closed:
            while events:
                event = events.pop()
                if type(event) is CloseReceived:
                    owner.mark_closed(event.code, event.reason)
                    return
                if type(event) is Failure:
                    owner.fail_connection(event.code, event.reason)
                    return
            if not self.read(owner, deadline) and deadline is not None \
                    and time.monotonic() >= deadline:
                return
