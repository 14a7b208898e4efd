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
    """

    __slots__ = ("interval", "timeout", "_last_received", "_ping_sent_at")

    def __init__(self, interval: float | None, timeout: float | None) -> None:
        self.interval = interval
        self.timeout = timeout
        self._last_received = time.monotonic()
        self._ping_sent_at: float | None = None

    def heard(self, now: float) -> None:
        """Bytes came from the peer at ``now``: it lives, the clock starts again."""
        self._last_received = now
        self._ping_sent_at = None

    def due(self) -> float | None:
        """When there is something to do (``time.monotonic()``), or None: never."""
        if self._ping_sent_at is not None:
            if self.timeout is not None:
                return self._ping_sent_at + self.timeout
            return None
        if self.interval is not None:
            return self._last_received + self.interval
        return None

    def timed_out(self, now: float) -> bool:
        """Whether our ping went unanswered for ``timeout`` seconds by ``now``."""
        return self._ping_sent_at is not None and self.timeout is not None \
            and now >= self._ping_sent_at + self.timeout

    def ping_due(self, now: float) -> bool:
        """Whether the peer was silent ``interval`` seconds by ``now``, with no ping out."""
        return self.interval is not None and self._ping_sent_at is None \
            and now >= self._last_received + self.interval

    def ping_sent(self, now: float) -> None:
        """A keepalive ping went at ``now``: its answer is due within ``timeout``."""
        self._ping_sent_at = now
