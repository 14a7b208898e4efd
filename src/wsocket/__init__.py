"""wsocket: WebSockets for the WSGI world.

The public names of SPEC.md, and nothing else; each lives in its own module.
"""

from .errors import (
    ConnectionClosed, FrameTooLargeException, HandshakeError, ProtocolError, WebSocketError,
)
from .websocket import WebSocket, logger

__version__ = "0.1.0"

__all__ = [
    "WebSocket", "WebSocketError", "ProtocolError", "FrameTooLargeException",
    "ConnectionClosed", "HandshakeError", "logger",
]
