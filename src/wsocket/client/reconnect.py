"""Keeping a connection up: ``for ws in connect(url, reconnect=True): ...``.

Each turn of the loop gets a connected ``WebSocket``. When the body is done
with it (usually because it closed), the next turn looks at how it ended:
after a drop (1006), a server error (1011), a restart (1012), a "try again
later" (1013) or a bad gateway (1014) it waits, then connects again; after
a normal close (1000, 1001, or any other code) the loop ends. Attempts that
fail for a reason that may pass (network errors, timeouts, a 5xx) are
retried with exponential backoff and jitter; the others (a 4xx, a refused
certificate, a proxy's refusal, a redirect that cannot be followed) are
raised, ending the loop.
"""

from __future__ import annotations

import logging
import random
import ssl
import time
from typing import TYPE_CHECKING, Callable

from ..errors import ConnectError, HandshakeError, InvalidStatus
from ..protocol.codes import CloseCode

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..websocket import WebSocket

__all__ = ["Backoff", "Reconnecting", "RECONNECT_CODES", "is_transient"]

RECONNECT_CODES = frozenset({
    CloseCode.ABNORMAL_CLOSURE, CloseCode.INTERNAL_ERROR, CloseCode.SERVICE_RESTART,
    CloseCode.TRY_AGAIN_LATER, CloseCode.BAD_GATEWAY,
})

logger = logging.getLogger("wsocket")


class Backoff:
    """Delays that grow by ``factor`` from ``initial`` up to ``maximum`` seconds.

    Each delay is taken at random between ``(1 - jitter)`` times the current
    step and the step itself, so that many clients dropped at once do not
    come back at once; ``jitter=0`` gives the steps exactly.
    """

    def __init__(self, initial: float = 1.0, maximum: float = 60.0, factor: float = 2.0,
                 jitter: float = 0.5, rng: Callable[[], float] = random.random) -> None:
        for name, value in (("backoff_initial", initial), ("backoff_max", maximum)):
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError("%s must be a number of seconds >= 0, not %r" % (name, value))
        if not isinstance(factor, (int, float)) or factor < 1:
            raise ValueError("backoff_factor must be a number >= 1, not %r" % (factor,))
        if not isinstance(jitter, (int, float)) or not 0 <= jitter <= 1:
            raise ValueError("backoff_jitter must be a number from 0 to 1, not %r" % (jitter,))
        if maximum < initial:
            raise ValueError("backoff_max (%r) must not be less than backoff_initial (%r)"
                             % (maximum, initial))
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self._rng = rng
        self._step = initial

    def next_delay(self) -> float:
        step = self._step
        self._step = min(step * self.factor, self.maximum)
        return step * (1 - self.jitter * self._rng())

    def reset(self) -> None:
        self._step = self.initial


def is_transient(error: BaseException) -> bool:
    """Whether another attempt may succeed where this one failed."""
    if isinstance(error, InvalidStatus):
        return error.status >= 500  # 4xx: refused; 3xx here: a redirect that cannot be followed
    if isinstance(error, HandshakeError):
        return False  # a 101 that does not fit what was offered: it will not fit next time
    if isinstance(error, ConnectError):
        if isinstance(error.__cause__, ssl.SSLCertVerificationError):
            return False
        return not error.permanent
    return isinstance(error, OSError) and not isinstance(error, ssl.SSLCertVerificationError)


class Reconnecting:
    """The iterator ``connect(url, reconnect=True)`` returns; see the module's docstring.

    ``delays`` lists the waits so far, in seconds, and ``attempts`` counts
    the connection attempts (successful or not).
    """

    def __init__(self, open_connection: Callable[[], WebSocket], backoff: Backoff, url: str,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._open_connection = open_connection
        self._backoff = backoff
        self._url = url
        self._sleep = sleep
        self._current: WebSocket | None = None
        self._finished = False
        self.delays: list[float] = []
        self.attempts = 0

    def __iter__(self) -> Iterator[WebSocket]:
        return self

    def __next__(self) -> WebSocket:
        if self._finished:
            raise StopIteration
        previous = self._current
        self._current = None
        if previous is not None:
            if not previous.closed:
                previous.close()  # the body is done with an open connection: a normal end
            if previous.close_code not in RECONNECT_CODES:
                self._finished = True
                raise StopIteration
            self._wait("connection to %s ended with code %d" % (self._url, previous.close_code))
        while True:
            self.attempts += 1
            try:
                websocket = self._open_connection()
            except Exception as error:
                if not is_transient(error):
                    self._finished = True
                    raise
                self._wait(str(error))
                continue
            self._backoff.reset()
            self._current = websocket
            return websocket

    def _wait(self, why: str) -> None:
        delay = self._backoff.next_delay()
        self.delays.append(delay)
        logger.info("%s; reconnecting in %.2f s", why, delay)
        self._sleep(delay)

