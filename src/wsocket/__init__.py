"""wsocket: WebSockets for the WSGI world.

The public names of SPEC.md, and nothing else; each lives in its own module.
"""

from .app import Event, WSocketApp
from .client import connect
from .errors import (
    ConnectError,
    ConnectionClosed,
    FrameTooLargeException,
    HandshakeError,
    InvalidStatus,
    ProtocolError,
    WebSocketError,
)
from .framework import Response
from .hub import Hub, HubError
from .protocol.codes import CloseCode
from .server import (
    FixedHandler,
    FixedServerHandler,
    ThreadingWSGIServer,
    WebSocketHandler,
    WSocketHandler,
    WSocketServer,
    make_server,
    run,
)
from .websocket import WebSocket, logger

__version__ = "0.1.0"

__all__ = [
    "WebSocket", "WSocketApp", "Event", "Response", "Hub", "HubError",
    "WebSocketError", "ProtocolError", "FrameTooLargeException", "ConnectionClosed",
    "HandshakeError", "InvalidStatus", "ConnectError", "CloseCode", "logger", "connect",
    "run", "make_server", "ThreadingWSGIServer", "WSocketServer", "FixedHandler",
    "FixedServerHandler", "WebSocketHandler", "WSocketHandler",
]
