"""The exceptions a user of wsocket can meet.

Every error of the protocol knows the close code it maps to, so the layer
that talks to the socket never has to guess which code to send.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .protocol.codes import CloseCode

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "WebSocketError",
    "ProtocolError",
    "FrameTooLargeException",
    "InvalidUTF8",
    "ConnectionClosed",
    "HandshakeError",
    "InvalidStatus",
    "ConnectError",
]


class WebSocketError(OSError):
    """Base class of every WebSocket error (an ``OSError``, like socket errors)."""


class ProtocolError(WebSocketError):
    """The peer broke RFC 6455 or RFC 7692; the connection fails with ``code``."""

    code: int = CloseCode.PROTOCOL_ERROR

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class FrameTooLargeException(ProtocolError):
    """A message grew past the size limit (close code 1009)."""

    code = CloseCode.MESSAGE_TOO_BIG


class InvalidUTF8(ProtocolError):
    """A text message or a close reason is not valid UTF-8 (close code 1007)."""

    code = CloseCode.INVALID_DATA


class ConnectionClosed(WebSocketError):
    """The connection is closed; ``code`` and ``reason`` tell how it ended.

    ``code`` is 1005 when the peer closed without a status code and 1006 when
    the connection dropped without any close frame.
    """

    def __init__(self, code: int = CloseCode.ABNORMAL_CLOSURE, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        text = "WebSocket connection closed (code %d)" % code
        if reason:
            text += ": " + reason
        super().__init__(text)

    def __str__(self) -> str:
        return str(self.args[0])


class HandshakeError(WebSocketError):
    """An opening handshake was refused.

    On the server, ``status`` is the HTTP status to answer with (400, 403,
    426) and ``headers`` the extra response headers. On the client, it is
    the status the server answered with and its headers.
    """

    def __init__(self, message: str, status: int = 400,
                 headers: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.headers = list(headers)

    def __str__(self) -> str:
        return str(self.args[0])


class InvalidStatus(HandshakeError):
    """The server answered the upgrade with another status than 101 (client side).

    ``status``, ``headers`` (a list of pairs) and ``body`` (at most 64 KiB)
    tell what it said instead.
    """

    def __init__(self, message: str, status: int, headers: Iterable[tuple[str, str]] = (),
                 body: bytes = b"") -> None:
        super().__init__(message, status, headers)
        self.body = body


class ConnectError(WebSocketError):
    """A client could not reach the server: refused, unreachable, timed out, TLS failed."""
