"""``Sender``: every write on one connection's socket, under one lock, in order.

One job: getting frames out. Messages and control frames (``WebSocket.send``,
``ping``, the pongs and close frames) go through ``sendall`` with ``lock``
held; broadcasts through ``deliver``, which never blocks: a frame the socket
does not take at once waits in the ``OutgoingQueue`` and the writer thread
sends it later (see _outgoing.py). Frames queued before a message go out
before it, so the order of frames is the order they were handed over.

A write that fails, or a queue that overflows, ends the connection: the
sender fails the core and shuts the socket down, and tells its owner (the
``WebSocket``, passed to each call that may end it, never kept) to mark
itself closed.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Callable, Protocol

from ._outgoing import OutgoingQueue, writer
from ._sockets import DirectSend, new_lock, send_nowait, send_nowait_in_loop
from ._transport import SocketTransport, WriteMode
from .errors import ConnectionClosed, ProtocolError
from .protocol.codes import CloseCode

if TYPE_CHECKING:
    import logging
    import socket

    from . import _speedups
    from .protocol.connection import Connection
    from .protocol.frames import Buffer

__all__ = ["Sender", "SenderOwner", "OVERFLOW_CODE", "OVERFLOW_REASON"]

# Bytes of answers held back at most while the event app handles a batch of messages.
HOLD_LIMIT = 65536
# Answers held back at most (``Sender.hold_frames``): the whole batch, or, when
# no other connection waits for the loop, parts of HOLD_PART (see hold()).
HOLD_ALL = sys.maxsize
HOLD_PART = 32
OVERFLOW_CODE = CloseCode.TRY_AGAIN_LATER  # the client did not keep up
OVERFLOW_REASON = "too slow: outgoing queue full"
_ABNORMAL = CloseCode.ABNORMAL_CLOSURE


class SenderOwner(Protocol):
    """What the sender needs of the connection it writes for (a ``WebSocket``)."""

    logger: logging.Logger
    closed: bool

    def mark_closed(self, code: int, reason: str) -> None:
        """The connection ended with ``code`` and ``reason`` (the socket is shut already)."""

    def write_queued(self) -> bool:
        """The writer thread's turn (see ``Sender.write_queued``)."""


class Sender:
    """The writing side of one connection.

    Attributes:
        lock (threading.Lock): Held for every write on the socket (``new_lock()``). Whoever
            builds a frame with the core holds it from building to sending,
            so that frames leave in the order the core made them.
        queue (OutgoingQueue): Frames waiting for the socket.
        transport (SocketTransport): The socket (set by ``attach``).
        stall (float | None): A peer that takes no byte for this long is dead (ping_timeout).
    """

    __slots__ = ("lock", "queue", "transport", "stall", "_connection", "_in_writer",
                 "send_dontwait", "sock", "holding", "hold_frames")

    def __init__(self, connection: Connection, max_queue: int | None,
                 stall: float | None) -> None:
        self.lock = new_lock()
        self.queue = OutgoingQueue(max_queue)
        self.transport: SocketTransport  # set by attach()
        self.stall = stall
        self._connection = connection
        self._in_writer = False  # the writer thread watches our socket
        # send_nowait(sock, frame) on a plain socket (else None), for the usual
        # case: the whole frame at once when nothing is queued; 0: none of it
        # now. (The shared function and the socket apart, not a partial: one
        # object less for each connection to keep, and the collector to walk.)
        self.send_dontwait: Callable[[socket.socket, Buffer], int] | None = None
        self.sock: socket.socket  # set by attach()
        # The event app handles several messages that came together: their
        # answers wait in the queue and leave in one write (see hold()), or
        # in writes of hold_frames each.
        self.holding = False
        self.hold_frames = HOLD_ALL

    def attach(self, transport: SocketTransport) -> None:
        self.transport = transport
        self.sock = transport.sock
        if transport.mode is WriteMode.DONTWAIT:
            self.send_dontwait = send_nowait

    def in_loop(self) -> None:
        """From now on the reactor's loop thread writes (see ``_sockets.send_nowait_in_loop``)."""
        if self.send_dontwait is not None:
            self.send_dontwait = send_nowait_in_loop

    def direct_send(self) -> _speedups.DirectSend | None:
        """``WebSocket.send``'s usual case in one C call; None: not here.

        A plain socket and uncompressed, unmasked frames only. With a thread
        per connection it lets the GIL go while the kernel works, as
        ``_sockets.send_nowait`` does; set its ``release_gil`` to False for
        the loop's thread, which keeps it as the loop's other calls do. It
        refers to this sender but is not kept here (no reference cycle to collect).
        """
        if DirectSend is None or self.send_dontwait is None \
                or not self._connection.sends_plain_frames:
            return None
        return DirectSend(self.transport.sock, self._connection, self, self.queue, self.lock,
                          True)

    @property
    def waiting(self) -> bool:
        """Whether frames wait in the queue.

        The hot paths (every send) test ``self.queue.frames`` inline instead:
        it is empty (``()`` or an empty deque) exactly when nothing waits, and
        reading it skips a property call per message.
        """
        return bool(self.queue.frames)

    @property
    def writes_without_blocking(self) -> bool:
        return self.transport.mode is not WriteMode.BLOCKING

    # -- with the lock held -------------------------------------------------------------

    def sendall(self, owner: SenderOwner, frame: bytes) -> None:
        """Send ``frame`` after what is queued; the lock is held.

        A peer that takes none of our bytes for ``stall`` seconds is as dead
        as one that leaves a ping unanswered: the send fails (1006) rather
        than hold this thread, and the lock, for ever.

        Raises:
            ConnectionClosed: The socket failed (the connection is closed, 1006).
        """
        transport = self.transport
        try:
            rest: Buffer = frame
            if self.queue.frames:  # (waiting, inline) what deliver() queued goes first
                self.queue.drain(transport, None, stall=self.stall)
            elif self.send_dontwait is not None:
                # The usual case: the socket takes the whole frame at once.
                sent = self.send_dontwait(self.sock, frame)
                if sent == len(frame):
                    return
                rest = memoryview(frame)[sent:]
            transport.send_bounded(rest, self.stall)
        except OSError as error:
            self.lost(owner, error)
            raise ConnectionClosed(_ABNORMAL, str(error)) from error

    def send_rest(self, owner: SenderOwner, frame: bytes, sent: int) -> None:
        """``sendall`` of what is left of ``frame`` after ``sent`` bytes went (the lock is held).

        For ``WebSocket.send``, which tries ``send_dontwait`` itself first
        (once a message, a call less): a write that took part of the frame,
        none of it, or failed (then ``sent`` is 0 and the same error comes again).
        """
        try:
            self.transport.send_bounded(memoryview(frame)[sent:], self.stall)
        except OSError as error:
            self.lost(owner, error)
            raise ConnectionClosed(_ABNORMAL, str(error)) from error

    def hold(self, owner: SenderOwner, frame: bytes) -> None:
        """While ``holding``: ``frame`` waits in the queue for ``release`` (the lock is held).

        Several answers then leave in one system call instead of one each.
        More than ``HOLD_LIMIT`` bytes (or the queue's limit) are not held:
        what waits and ``frame`` go as ``sendall`` sends them. Once
        ``hold_frames`` answers wait, they go at once (as far as the socket
        takes them): a peer that pipelines gets the first part of its
        answers, and sends on, while the rest are worked out.

        ``DirectSend`` (C) does the usual case itself, the same way
        (``hold_in_queue``: a frame that is neither the first, nor over the
        limit, nor the one that completes a part), and calls this for the rest.

        Raises:
            ConnectionClosed: The socket failed, or the connection is closing.
        """
        queue = self.queue
        limit = HOLD_LIMIT if queue.max_bytes is None else min(HOLD_LIMIT, queue.max_bytes)
        if queue.queued_bytes + len(frame) > limit:
            self.sendall(owner, frame)
        elif queue.push(frame) is None:
            raise ConnectionClosed(_ABNORMAL, "the connection is closing")
        elif len(queue.frames) >= self.hold_frames:
            try:
                queue.flush(self.transport)
            except OSError as error:
                self.lost(owner, error)
                raise ConnectionClosed(_ABNORMAL, str(error)) from error

    def hold_batch(self, in_parts: bool) -> None:
        """Start ``holding`` a batch's answers: all of them, or ``in_parts`` of ``HOLD_PART``."""
        self.holding = True
        self.hold_frames = HOLD_PART if in_parts else HOLD_ALL

    def release(self, owner: SenderOwner) -> None:
        """Stop ``holding``: what waits goes now, as far as the socket takes it.

        The writer thread sends the rest (call it without the lock).
        """
        self.holding = False
        if self.queue.frames:
            with self.lock:
                try:
                    self.queue.flush(self.transport)
                except OSError as error:
                    self.lost(owner, error)
            self.wake_writer_if_queued(owner)

    def release_soon(self, owner: SenderOwner) -> None:
        """Stop ``holding`` from another thread: the writer thread sends what waits.

        For the reactor's monitor, when the handler of a batch blocks: its
        answers so far must not wait for it. Never takes the lock (the
        blocked thread may hold it, stuck in a send).
        """
        self.holding = False
        self.wake_writer_if_queued(owner)

    def send_last(self, frame: bytes, deadline: float | None, stall: float | None) -> None:
        """Send our close frame after the frames queued so far (within ``deadline``).

        Nothing more is queued afterwards. The lock is held. Raises OSError
        (TimeoutError too) when the frames cannot go out.
        """
        self.queue.drain(self.transport, deadline, seal=True)
        self.transport.send_bounded(frame, stall)

    def send_close(self, owner: SenderOwner, code: int, message: str,
                   timeout: float | None) -> bool:
        """Send our close frame after what is queued, within ``timeout`` s (None: no limit).

        False if closing had begun already, or if the frame could not go out
        in time (a send that the peer does not take holds the lock): the
        connection is then dropped (1006).
        """
        deadline = deadline_after(timeout)
        if not self.lock.acquire(timeout=-1 if timeout is None else timeout):
            owner.mark_closed(_ABNORMAL, "")
            self.transport.shutdown()  # the stuck writer fails at once
            return False
        try:
            if owner.closed or not self._connection.can_send:
                return False
            frame = self._connection.send_close(code, message)
            try:
                # Frames queued before the close go first (within the timeout).
                self.send_last(frame, deadline, None if deadline is None
                               else max(deadline - time.monotonic(), 0))
            except OSError:
                owner.mark_closed(_ABNORMAL, "")
                self.transport.shutdown()
                return False
        finally:
            self.lock.release()
        return True

    def answer_close(self, code: int, timeout: float | None) -> None:
        """Answer the peer's close frame (code ``code``) unless ours went already."""
        with self.lock:
            if self._connection.close_sent is None:
                # Echo the peer's code (RFC 6455 5.5.1); a close without a
                # code is answered by a close without one.
                frame = self._connection.send_close(
                    None if code == CloseCode.NO_STATUS_RCVD else code)
                try:
                    # Frames queued before the close go first (within the timeout).
                    self.send_last(frame, deadline_after(timeout), timeout)
                except OSError:
                    pass

    def keepalive_ping(self, owner: SenderOwner) -> None:
        """A keepalive ping; never blocks on a socket that can be written without blocking.

        A peer that stopped reading must not keep the reading thread from
        noticing that the ping goes unanswered.
        """
        connection = self._connection
        if self.writes_without_blocking:
            if connection.can_send and not owner.closed:
                try:
                    self.deliver(owner, connection.send_ping(b"keepalive"))
                except ProtocolError:
                    pass  # a close frame went out meanwhile
            return
        with self.lock:
            if owner.closed or not connection.can_send:
                return
            try:
                self.sendall(owner, connection.send_ping(b"keepalive"))
            except ConnectionClosed:
                return
        self.wake_writer_if_queued(owner)

    def lost(self, owner: SenderOwner, error: OSError) -> None:
        """The socket failed while sending: the connection ends (1006). The lock is held."""
        owner.logger.debug("%r: socket error while sending: %s", owner, error)
        self._connection.fail(_ABNORMAL)
        owner.mark_closed(_ABNORMAL, "")
        self.transport.shutdown()

    def fail(self, code: int, reason: str, timeout: float | None) -> None:
        """Drop what is queued and send the core's close frame for a failure, if one may go."""
        with self.lock:
            started = self.queue.drop()  # a frame partly sent: no close frame can follow
            frame = self._connection.fail(code, reason)
            if frame and not started:
                try:
                    self.transport.send_bounded(frame, timeout)
                except OSError:
                    pass

    def send_opening(self, owner: SenderOwner, response: bytes,
                     admit: Callable[[], object]) -> bool:
        """Send the 101 first; ``admit()`` runs just before, with the lock held (see WebSocket)."""
        sent = True
        with self.lock:
            admit()
            try:
                self.transport.send_bounded(response, None)  # (TLS: under its lock)
            except OSError as error:
                owner.logger.debug("client left during the handshake: %s", error)
                owner.mark_closed(_ABNORMAL, "")
                sent = False
        self.wake_writer_if_queued(owner)  # a broadcast came meanwhile
        return sent

    # -- delivering without blocking (broadcasts) -----------------------------------------

    def deliver(self, owner: SenderOwner, frame: bytes) -> bool:
        """Send one whole, ready frame without blocking; False if the connection is closed."""
        transport = self.transport
        if transport.mode is WriteMode.BLOCKING:
            return self._deliver_blocking(owner, frame)
        if owner.closed:
            return False
        if not self.lock.acquire(blocking=False):
            return self._queue_for_writer(owner, frame)  # someone is writing
        try:
            if owner.closed or not self._connection.can_send:
                return False
            try:
                if self.waiting or self.holding:
                    overflow = self.queue.push(frame)
                    if overflow is False and not self.holding:
                        self.queue.flush(transport)
                else:
                    sent = transport.send_nowait([frame])
                    overflow = False if sent == len(frame) else \
                        self.queue.push_rest(frame, sent, transport.mode)
                if overflow is None:
                    return False  # closing meanwhile
            except OSError as error:
                self.lost(owner, error)
                return False
            if overflow:
                self._overflow(owner, have_lock=True)
                return False
        finally:
            self.lock.release()
        # Even when our frame went whole: another thread may have queued one
        # while we held the lock, and the writer thread, finding the lock
        # taken, left it to us (see write_queued). Without this check that
        # frame would wait until the next write on this connection.
        # (While holding, release() sends them.)
        if not self.holding:
            self.wake_writer_if_queued(owner)
        return True

    def _queue_for_writer(self, owner: SenderOwner, frame: bytes) -> bool:
        """``deliver`` without the lock: the frame waits, the writer sends it later."""
        overflow = self.queue.push(frame)
        if overflow is None:
            return False
        if overflow:
            self._overflow(owner, have_lock=False)
            return False
        self.wake_writer(owner)
        return True

    def _deliver_blocking(self, owner: SenderOwner, frame: bytes) -> bool:
        """For sockets that cannot send without blocking here (gevent, eventlet)."""
        with self.lock:
            if owner.closed or not self._connection.can_send:
                return False
            try:
                self.sendall(owner, frame)
            except ConnectionClosed:
                return False
        return True

    def write_queued(self, owner: SenderOwner) -> bool:
        """The writer thread's turn; True when the writer has nothing more to do here."""
        if not self.lock.acquire(blocking=False):
            return True  # whoever holds it wakes the writer again if frames are left
        try:
            if owner.closed:
                return True
            try:
                return self.queue.flush(self.transport)
            except OSError as error:
                self.lost(owner, error)
                return True
        finally:
            self.lock.release()

    def wake_writer_if_queued(self, owner: SenderOwner) -> None:
        """Have the writer thread send what waits (call it after releasing the lock)."""
        if self.queue.frames:  # (waiting, inline: once a send)
            self.wake_writer(owner)

    def wake_writer(self, owner: SenderOwner) -> None:
        """Have the writer thread send what waits."""
        self._in_writer = True
        writer.want(owner, self.transport.sock)

    def _overflow(self, owner: SenderOwner, have_lock: bool) -> None:
        """More than max_queue bytes wait: close with 1013 and shut the socket."""
        started = self.queue.drop(unless_sealed=True)
        if started is None:
            return  # closing already
        owner.logger.warning("%r: closing with %d: more than %d bytes wait to be sent, the "
                             "client does not read fast enough", owner, OVERFLOW_CODE,
                             self.queue.max_bytes)
        if have_lock or self.lock.acquire(blocking=False):
            try:
                frame = self._connection.fail(OVERFLOW_CODE, OVERFLOW_REASON)
                if frame and not started:
                    try:
                        self.transport.send_nowait([frame])  # best effort: its buffer is full
                    except OSError:
                        pass
            finally:
                if not have_lock:
                    self.lock.release()
        owner.mark_closed(OVERFLOW_CODE, OVERFLOW_REASON)
        self.transport.shutdown()  # wakes the connection's thread

    def stop(self, owner: SenderOwner) -> None:
        """The connection is closed: drop the queue, and the writer forgets the socket."""
        self.queue.drop()
        if self._in_writer:
            self._in_writer = False
            writer.forget(owner, self.transport.sock)


def deadline_after(timeout: float | None) -> float | None:
    """``time.monotonic()`` in ``timeout`` seconds; None: never."""
    return None if timeout is None else time.monotonic() + timeout

