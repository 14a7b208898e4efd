"""``WebSocketOptions``: the settings of a connection, checked once and never changed.

Made once, from ``WSocketApp(...)``'s keyword arguments (and so from
``run()`` and the command line, which pass theirs there) or from
``connect()``'s, then handed down whole: the middleware gives the same object
to every ``WebSocket`` it makes (``WebSocket(..., options=...)``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .protocol.connection import DEFAULT_MAX_MESSAGE_SIZE
from .protocol.deflate import DEFAULT_COMPRESSION_LEVEL, check_compression_level

__all__ = ["WebSocketOptions", "MiddlewareOptions", "DEFAULT_PING_INTERVAL", "DEFAULT_PING_TIMEOUT",
           "DEFAULT_CLOSE_TIMEOUT", "DEFAULT_MAX_QUEUE"]

DEFAULT_PING_INTERVAL = 20.0
DEFAULT_PING_TIMEOUT = 20.0
DEFAULT_CLOSE_TIMEOUT = 10.0
DEFAULT_MAX_QUEUE = 4 * 1024 * 1024  # bytes waiting for a slow client before it is closed


@dataclasses.dataclass(frozen=True)
class WebSocketOptions:
    """What one connection may do, on either side; invalid values raise at construction.

    Attributes:
        max_message_size (int | None): Bytes per message received; None: no limit.
        max_fragments (int | None): Frames in one message; None: one per 64 bytes
            of ``max_message_size``, at least 1,024.
        compression_level (int): zlib's, 1 (fastest) to 9 (smallest).
        ping_interval (float | None): Seconds of silence before a keepalive ping.
        ping_timeout (float | None): Seconds a ping may go unanswered.
        close_timeout (float | None): Seconds ``close()`` waits for the peer's close frame.
        max_queue (int | None): Bytes a slow peer may have waiting; None: no limit.
    """

    max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE
    max_fragments: int | None = None
    compression_level: int = DEFAULT_COMPRESSION_LEVEL
    ping_interval: float | None = DEFAULT_PING_INTERVAL
    ping_timeout: float | None = DEFAULT_PING_TIMEOUT
    close_timeout: float | None = DEFAULT_CLOSE_TIMEOUT
    max_queue: int | None = DEFAULT_MAX_QUEUE

    def __post_init__(self) -> None:
        check_timeout("ping_interval", self.ping_interval)
        check_max_queue(self.max_queue)
        check_timeout("ping_timeout", self.ping_timeout)
        check_timeout("close_timeout", self.close_timeout)
        check_compression_level(self.compression_level)
        if self.max_message_size is not None and self.max_message_size < 0:
            raise ValueError("max_message_size must be None or a size in bytes")
        if self.max_fragments is not None and self.max_fragments < 1:
            raise ValueError("max_fragments must be None or at least 1")

    def replace(self, **changes: Any) -> WebSocketOptions:
        """A copy with ``changes`` (checked too); TypeError for an unknown name."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def names(cls) -> frozenset[str]:
        """The option names."""
        return frozenset(field.name for field in dataclasses.fields(cls))


@dataclasses.dataclass(frozen=True)
class MiddlewareOptions:
    """The options of ``WSocketApp`` and the middleware: how upgrades are checked, and
    the ``WebSocketOptions`` every WebSocket made here gets.

    Attributes:
        allowed_origins (frozenset[str] | None): None: any origin; else the exact
            ``Origin`` values accepted.
        compression (bool): Negotiate permessage-deflate when the client offers it.
        websocket_class (type | None): None: the middleware's class attribute
            ``websocket_class``.
        hub (Hub | str | None): A ``Hub``, a backend URL, or None: ``WSOCKET_HUB``,
            else in memory.
        websocket (WebSocketOptions): Handed whole to each WebSocket.
    """

    allowed_origins: frozenset[str] | None = None
    compression: bool = True
    websocket_class: type | None = None
    hub: Any = None
    websocket: WebSocketOptions = dataclasses.field(default_factory=WebSocketOptions)

    def __post_init__(self) -> None:
        origins: object = self.allowed_origins  # any iterable of str, as given
        if origins is not None:
            if isinstance(origins, str):
                raise TypeError("allowed_origins must be a list of origins, not a string")
            # a list given to the constructor becomes a frozenset, as frozen as the rest
            object.__setattr__(self, "allowed_origins", frozenset(self.allowed_origins or ()))

    @classmethod
    def names(cls) -> frozenset[str]:
        """Every option name ``from_keywords`` takes."""
        own = {field.name for field in dataclasses.fields(cls)} - {"websocket"}
        return frozenset(own) | WebSocketOptions.names()

    @classmethod
    def from_keywords(cls, **options: Any) -> MiddlewareOptions:
        """``WSocketApp(**options)``'s options, checked: TypeError for an unknown name."""
        check_option_names(options)
        websocket = {name: options.pop(name) for name in list(options)
                     if name in WebSocketOptions.names()}
        return cls(websocket=WebSocketOptions(**websocket), **options)


def check_option_names(options: Any) -> None:
    """Raise TypeError for option names the middleware does not know."""
    known = MiddlewareOptions.names()
    unknown = set(options) - known
    if unknown:
        raise TypeError("unknown option(s) %s; known: %s" % (
            ", ".join(sorted(unknown)), ", ".join(sorted(known))))


def check_timeout(name: str, value: object) -> None:
    """ValueError unless ``value`` is None or a number of seconds >= 0 (the option ``name``).

    Also for a WebSocket's ``ping_interval``, ``ping_timeout`` and ``close_timeout`` set later.
    """
    # (``not value >= 0`` also refuses NaN, which no comparison admits)
    if value is not None and (not isinstance(value, (int, float)) or not value >= 0):
        raise ValueError("%s must be None or a number of seconds >= 0, not %r" % (name, value))


def check_max_queue(value: object) -> None:
    """ValueError unless ``value`` is None or a whole number of bytes >= 0."""
    if value is not None and (not isinstance(value, int) or value < 0):
        raise ValueError("max_queue must be None or a number of bytes >= 0, not %r" % (value,))


DEFAULTS = WebSocketOptions()
"""The defaults: ``WebSocketOptions()``."""
