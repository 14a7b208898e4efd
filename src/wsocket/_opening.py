"""``LazyOpening``: a server-side WebSocket's 101, sent when the app first uses it.

One job: the opening handshake's state. Before its 101 a WebSocket has no
socket; the middleware (middleware.py, ``_Upgrade.open``) gives it an opener
that takes the socket from the server, sends the 101 and attaches the socket
(``WebSocket.attach``). The opener runs once, under this part's lock:
explicitly (``accept()``) or on the app's first receive, send, ping or close.
An app that answers with HTTP instead declines (``decline()``), after which
no 101 can go.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Callable, Optional, Union

__all__ = ["LazyOpening", "Opener", "HeadersArg"]

HeadersArg = Union[Mapping[str, str], Sequence[tuple[str, str]], None]
# opener(protocol, headers): takes the socket, sends the 101 (raises when it cannot)
Opener = Callable[[Optional[str], HeadersArg], None]


class LazyOpening:
    """The 101 of one WebSocket: not sent yet, sent once, or declined."""

    __slots__ = ("_opener", "_lock", "_on_accept", "_declined")

    def __init__(self, opener: Opener) -> None:
        self._opener: Opener | None = opener  # None once the 101 went out
        self._lock = threading.Lock()
        self._on_accept: list[Callable[[], object]] = []  # called once accepted
        self._declined: str | None = None  # why accept() may not send a 101 any more

    @property
    def accepted(self) -> bool:
        """Whether the 101 went out."""
        return self._opener is None

    def accept(self, protocol: str | None, headers: HeadersArg) -> bool:
        """Send the 101; False when it went already (another thread was first).

        Raises what the opener raises, and RuntimeError once declined.
        """
        with self._lock:
            if self._opener is None:
                return False
            if self._declined is not None:
                raise RuntimeError(self._declined)
            self._opener(protocol, headers)  # raises when it cannot
            self._opener = None
            callbacks, self._on_accept = self._on_accept, []
            for callback in callbacks:
                callback()
            return True

    def when_accepted(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once the 101 went out: now if it did."""
        if self._opener is not None:
            with self._lock:
                if self._opener is not None:
                    self._on_accept.append(callback)
                    return
        callback()

    def decline(self, reason: str) -> bool:
        """No 101 from now on (the app answers with HTTP); False if it went out already.

        A later ``accept()`` raises RuntimeError with ``reason``.
        """
        with self._lock:
            if self._opener is None:
                return False
            self._declined = reason
            return True
