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
    """Base class of every WebSocket error (an ``OSError``, like socket errors).

    ``except WebSocketError`` catches every error below; ``except OSError``
    catches them together with the socket's own errors.
    """


class ProtocolError(WebSocketError):
    """The peer broke RFC 6455 or RFC 7692; the connection fails with ``code``.

    ``WebSocket.receive()`` does not raise it: it closes the connection with
    ``code`` and returns None. It is raised by the sans-I/O core
    (``wsocket.protocol``) to the layer that talks to the socket.

    Attributes:
        code (int): The close code the failure maps to: 1002, or 1007 for
            invalid UTF-8, 1009 for a message too big.
    """

    code: int = CloseCode.PROTOCOL_ERROR

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class FrameTooLargeException(ProtocolError):
    """A message grew past ``max_message_size`` or ``max_fragments`` (close code 1009).

    Attributes:
        code (int): 1009.
    """

    code = CloseCode.MESSAGE_TOO_BIG


class InvalidUTF8(ProtocolError):
    """A text message or a close reason is not valid UTF-8 (close code 1007)."""

    code = CloseCode.INVALID_DATA


class ConnectionClosed(WebSocketError):
    """The connection is closed; ``code`` and ``reason`` tell how it ended.

    Raised by ``WebSocket.receive()`` when the peer closes, and by
    ``receive()``, ``send()`` and ``ping()`` once the connection is closed.

    Attributes:
        code (int): The close code: the peer's when it closed first, 1005 when
            it closed without a status code, 1006 when the connection dropped
            without any close frame.
        reason (str): The close reason, ``""`` when there was none.
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

    On the client, ``wsocket.connect()`` raises it when the server's 101
    does not match what was offered (accept key, subprotocol, extension
    parameters). On the server the middleware turns it into an HTTP answer.

    Attributes:
        status (int): On the server, the HTTP status to answer with (400, 403,
            426); on the client, the status the server answered with.
        headers (list[tuple[str, str]]): The extra response headers (server), or
            the server's response headers (client).
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

    Attributes:
        status (int): The status it answered with (401, 403, 404, ...).
        headers (list[tuple[str, str]]): Its response headers.
        body (bytes): Its response body, at most 64 KiB.
    """

    def __init__(self, message: str, status: int, headers: Iterable[tuple[str, str]] = (),
                 body: bytes = b"") -> None:
        super().__init__(message, status, headers)
        self.body = body


class ConnectError(WebSocketError):
    """A client could not reach the server: refused, unreachable, timed out, TLS failed.

    Raised by ``wsocket.connect()`` before any HTTP was exchanged; the
    message says what failed and where.
    """

    # True when another attempt would meet the same refusal (a proxy's
    # policy, say): ``connect(reconnect=True)`` then gives up.
    permanent: bool = False
