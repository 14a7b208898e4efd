"""``Keepalive``: when a connection pings a quiet peer, and when it gives the peer up.

One job: the timing. ``WebSocket.receive()`` (websocket.py) asks it how long
it may wait for the socket, tells it when bytes came, and sends the ping or
fails the connection when it says so; the event app's reactor asks it when to
wake a parked connection (``WebSocket.keepalive_due()``).
"""

from __future__ import annotations

import time

__all__ = ["Keepalive"]


class Keepalive:
    """Pings after ``interval`` seconds of silence; the peer is dead ``timeout`` s after one.

    Attributes:
        interval (float | None): Seconds of silence before a keepalive ping; None: never.
        timeout (float | None): Seconds a ping may go unanswered; None: for ever.
        next_due (float | None): What ``due()`` returns, kept up to date: the
            reader looks at it on every read, an attribute being cheaper than a call.
    """

    __slots__ = ("_interval", "_timeout", "_last_received", "_ping_sent_at", "next_due")

    def __init__(self, interval: float | None, timeout: float | None) -> None:
        self._interval = interval
        self._timeout = timeout
        self._last_received = time.monotonic()
        self._ping_sent_at: float | None = None
        self.next_due: float | None = None
        self._update()

    @property
    def interval(self) -> float | None:
        return self._interval

    @interval.setter
    def interval(self, seconds: float | None) -> None:
        self._interval = seconds
        self._update()

    @property
    def timeout(self) -> float | None:
        return self._timeout

    @timeout.setter
    def timeout(self, seconds: float | None) -> None:
        self._timeout = seconds
        self._update()

    def _update(self) -> None:
        """Work ``next_due`` out again after a change."""
        if self._ping_sent_at is not None:
            timeout = self._timeout
            self.next_due = None if timeout is None else self._ping_sent_at + timeout
        else:
            interval = self._interval
            self.next_due = None if interval is None else self._last_received + interval

    def heard(self, now: float) -> None:
        """Bytes came from the peer at ``now``: it lives, the clock starts again.

        The C read (``keepalive_heard`` in _speedups.c) does the same to this
        class's slots without calling it: change both together.
        """
        self._last_received = now
        self._ping_sent_at = None
        interval = self._interval
        self.next_due = None if interval is None else now + interval

    def due(self) -> float | None:
        """When there is something to do (``time.monotonic()``), or None: never."""
        return self.next_due

    def timed_out(self, now: float) -> bool:
        """Whether our ping went unanswered for ``timeout`` seconds by ``now``."""
        return self._ping_sent_at is not None and self._timeout is not None \
            and now >= self._ping_sent_at + self._timeout

    def ping_due(self, now: float) -> bool:
        """Whether the peer was silent ``interval`` seconds by ``now``, with no ping out."""
        return self._interval is not None and self._ping_sent_at is None \
            and now >= self._last_received + self._interval

    def ping_sent(self, now: float) -> None:
        """A keepalive ping went at ``now``: its answer is due within ``timeout``."""
        self._ping_sent_at = now
        self._update()
