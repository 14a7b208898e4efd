"""The outgoing queue of one WebSocket, and the writer thread that empties the queues.

Delivering without blocking (broadcasts, see hub.py): ``WebSocket.deliver``
writes a frame at once when nothing is queued and no other thread is
writing; otherwise it appends the frame to the connection's
``OutgoingQueue``, and the ``Writer`` thread (one per process) sends it as
the socket becomes writable. Every write on the socket happens under the
WebSocket's send lock, and ``send()`` sends what is queued before its own
frame, so the order of frames is the order they were handed over.

This module holds the queue's bookkeeping (its own lock, its byte count,
whether its first frame is partly on the wire) and the writer thread; the
WebSocket decides what an overflow or a socket error means.
"""

from __future__ import annotations

import collections
import itertools
import selectors
import threading
import time
from typing import TYPE_CHECKING, Protocol

from ._sockets import WakeUpPair, new_lock, this_process
from ._transport import WriteMode

if TYPE_CHECKING:
    import socket

    from ._transport import SocketTransport
    from .protocol.frames import Buffer

__all__ = ["OutgoingQueue", "Writer", "QueueOwner", "writer", "IOV_MAX"]

IOV_MAX = 64  # frames handed to one sendmsg()


class OutgoingQueue:
    """Frames that could not be written at once, in order, sent before anything else.

    The caller holds the WebSocket's send lock for every write (``flush``,
    ``drain``); the queue's own lock guards its fields, so that frames may
    be added (``push``) while another thread writes.

    Attributes:
        max_bytes (int | None): More bytes waiting than this is an overflow; None: no limit.
        frames (collections.deque | tuple): The frames waiting, to be read only
            (changed under the queue's lock): truthy when any wait, checked on
            every send. An empty tuple while none wait: a deque costs 600 bytes,
            and most connections never queue a frame, or not for long.
    """

    __slots__ = ("max_bytes", "frames", "_bytes", "_lock", "_sealed", "_head_started",
                 "_generation", "_pushed", "_popped")

    def __init__(self, max_bytes: int | None) -> None:
        self.max_bytes = max_bytes
        self.frames: collections.deque[Buffer] | tuple[()] = ()
        self._bytes = 0  # in frames
        # Guards every field. (new_lock: the accelerator's, where built, is no
        # object for the garbage collector to walk, as threading's is.)
        self._lock = new_lock()
        self._sealed = False  # closing or closed: nothing more is queued
        self._head_started = False  # frames[0] must go next as it is (partly on the wire)
        self._generation = 0  # counts drop() calls
        self._pushed = 0  # frames ever queued, and ever sent from the queue:
        self._popped = 0  # a drain waits only for the frames queued before it

    def _deque(self) -> collections.deque[Buffer]:
        """The frames as a deque, made when the first frame is queued (the lock is held)."""
        frames = self.frames
        if isinstance(frames, tuple):
            frames = self.frames = collections.deque()
        return frames

    def __len__(self) -> int:
        """The number of frames waiting."""
        return len(self.frames)

    @property
    def queued_bytes(self) -> int:
        """The bytes waiting."""
        return self._bytes

    def push(self, frame: Buffer) -> bool | None:
        """Queue ``frame``; None if sealed (closing), else whether it is now over max_bytes."""
        with self._lock:
            if self._sealed:
                return None
            self._pushed += 1
            self._deque().append(frame)
            self._bytes += len(frame)
            return self.max_bytes is not None and self._bytes > self.max_bytes

    def push_rest(self, frame: Buffer, sent: int, mode: WriteMode) -> bool | None:
        """Queue what is left of ``frame`` after ``sent`` bytes went, to go first; as ``push``.

        The send lock is held and the queue was found empty.
        """
        with self._lock:
            if self._sealed:
                return None
            self._pushed += 1
            rest = memoryview(frame)[sent:] if sent else frame
            self._deque().appendleft(rest)
            self._bytes += len(rest)
            # A TLS write that would block must be repeated with the
            # same bytes: that frame is started too.
            self._head_started = bool(sent) or mode is WriteMode.TOGGLE
            return self.max_bytes is not None and self._bytes > self.max_bytes

    def drop(self, unless_sealed: bool = False) -> bool | None:
        """Drop every frame and seal the queue; returns whether a frame was partly sent.

        A partly sent frame means no close frame can follow. With
        ``unless_sealed``, a queue sealed already is left alone and None returned.
        """
        with self._lock:
            if unless_sealed and self._sealed:
                return None
            started = self._head_started
            self._sealed = True
            self.frames = ()
            self._bytes = 0
            self._popped = self._pushed
            self._head_started = False
            self._generation += 1
            return started

    def flush(self, transport: SocketTransport, until: int | None = None) -> bool:
        """Send queued frames while the socket takes them; the send lock is held.

        Returns True once the queue is empty (or the frames numbered below
        ``until`` are all out), False when the socket is full. Raises
        OSError when the socket fails.
        """
        dontwait = transport.mode is WriteMode.DONTWAIT
        while True:
            with self._lock:
                frames = self.frames
                if not frames or (until is not None and self._popped >= until):
                    return True
                generation = self._generation
                if dontwait and len(frames) > 1:
                    batch = list(itertools.islice(frames, IOV_MAX))
                else:
                    batch = [frames[0]]
            sent = transport.send_nowait(batch)
            size = sum(map(len, batch))
            with self._lock:
                if generation != self._generation:
                    return True  # the queue was dropped meanwhile (closed)
                if sent:
                    self._consume(sent)
                elif transport.mode is WriteMode.TOGGLE:
                    self._head_started = True
            if sent < size:
                return False

    def _consume(self, sent: int) -> None:
        """Take ``sent`` written bytes off the front of the queue (its lock held)."""
        frames = self._deque()
        self._bytes -= sent
        while sent:
            size = len(frames[0])
            if sent < size:
                frames[0] = memoryview(frames[0])[sent:]
                self._head_started = True
                return
            frames.popleft()
            self._popped += 1
            self._head_started = False
            sent -= size
        if not frames:
            self.frames = ()  # all sent: the deque's memory goes back

    def drain(self, transport: SocketTransport, deadline: float | None, seal: bool = False,
              stall: float | None = None) -> None:
        """Send the frames queued so far, waiting for the socket; the send lock is held.

        ``seal``: nothing more may be queued (a close frame follows). Raises
        TimeoutError once ``deadline`` passes (or, without a deadline, once
        the socket took nothing for ``stall`` seconds), OSError when the
        socket fails.
        """
        with self._lock:
            target = self._pushed
            if seal:
                self._sealed = True
        while not self.flush(transport, target):
            timeout = stall
            if deadline is not None:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    raise TimeoutError("the peer did not take the queued frames in time")
            if not transport.wait_writable(timeout) and deadline is None:
                # (waiting without a timeout never ends False: stall is a number here)
                raise TimeoutError("the peer took no data for %.1f s" % (stall or 0.0))


class QueueOwner(Protocol):
    """What the writer thread needs of a connection with frames queued (a ``WebSocket``)."""

    def write_queued(self) -> bool:
        """Send what the socket takes now; True when the writer has nothing more to do here."""


class Writer:
    """The thread that sends what ``WebSocket.deliver`` could not send at once.

    One per process, started on first use (and again in a forked child). It
    waits with a selector for the sockets that have frames queued to become
    writable, and sends without blocking; it never waits for a lock either,
    so one peer that does not read holds up nobody.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._commands: collections.deque[tuple[QueueOwner, socket.socket, bool]]
        self._commands = collections.deque()  # (owner, its socket, wanted), in order
        self._pid: int | None = None
        self._woken = False
        self._wake_up: WakeUpPair | None = None

    def want(self, owner: QueueOwner, sock: socket.socket) -> None:
        """``owner`` has frames queued: send them as ``sock`` takes them."""
        self._command(owner, sock, True)

    def forget(self, owner: QueueOwner, sock: socket.socket) -> None:
        """``owner`` closed: stop watching ``sock`` (before its owner closes it)."""
        self._command(owner, sock, False)

    def _command(self, owner: QueueOwner, sock: socket.socket, wanted: bool) -> None:
        with self._lock:
            if self._pid != this_process.pid:
                self._start()
            self._commands.append((owner, sock, wanted))
            if self._woken:
                return
            self._woken = True
            wake_up = self._wake_up
        assert wake_up is not None  # made by _start()
        wake_up.wake()

    def _start(self) -> None:
        self._pid = this_process.pid
        self._commands.clear()
        self._woken = False
        self._wake_up = wake_up = WakeUpPair()
        selector = selectors.DefaultSelector()
        selector.register(wake_up.fileno(), selectors.EVENT_READ, None)
        threading.Thread(target=self._run, args=(selector, wake_up),
                         name="wsocket-writer", daemon=True).start()

    def _run(self, selector: selectors.BaseSelector, wake_up: WakeUpPair) -> None:
        registered: dict[QueueOwner, socket.socket] = {}
        while True:
            for key, _ in selector.select():
                owner = key.data
                if owner is None:
                    wake_up.drain()
                elif owner.write_queued():
                    _unregister(selector, registered, owner)
            with self._lock:
                commands = list(self._commands)
                self._commands.clear()
                self._woken = False
            for owner, sock, wanted in commands:
                if not wanted:
                    _unregister(selector, registered, owner)
                elif owner not in registered and not owner.write_queued():
                    _register(selector, registered, owner, sock)


def _register(selector: selectors.BaseSelector, registered: dict[QueueOwner, socket.socket],
              owner: QueueOwner, sock: socket.socket) -> None:
    try:
        selector.register(sock, selectors.EVENT_WRITE, owner)
    except KeyError:
        # Its descriptor number still belongs to a socket closed since
        # (the kernel forgot it already): drop that entry.
        stale = selector.get_key(sock)
        selector.unregister(stale.fileobj)
        registered.pop(stale.data, None)
        try:
            selector.register(sock, selectors.EVENT_WRITE, owner)
        except (KeyError, ValueError, OSError):
            return
    except (ValueError, OSError):
        return  # closed already
    registered[owner] = sock


def _unregister(selector: selectors.BaseSelector, registered: dict[QueueOwner, socket.socket],
                owner: QueueOwner) -> None:
    sock = registered.pop(owner, None)
    if sock is not None:
        try:
            selector.unregister(sock)
        except (KeyError, ValueError, OSError):
            pass


writer = Writer()
"""The process's writer thread (started on first use)."""
