"""Taking the socket over from the WSGI server the app runs on.

WSGI has no standard way to leave HTTP, so each server gets a small
adapter that knows its environ keys. ``take_over(environ)`` returns a
``Transport``: the raw socket, the bytes the server had already read past
the request, what to give back to the server, and how to release it.
"""

from .websocket import close_socket

__all__ = ["Transport", "UnsupportedServer", "take_over"]


class UnsupportedServer(Exception):
    """The WSGI server cannot hand over its socket (answered with 501)."""


class Transport:
    """A socket taken over from a server for one WebSocket."""

    def __init__(self, sock, initial_data=b"", response=(), release=None):
        self.sock = sock
        self.initial_data = initial_data
        self.response = list(response)  # what the WSGI callable returns to the server
        self._release = release

    def release(self):
        """Close the socket (or give it back), once the WebSocket has ended."""
        if self._release is not None:
            self._release()
        else:
            close_socket(self.sock)


def _wsocket_server(environ):
    sock, leftover = environ["wsocket.takeover"]()
    return Transport(sock, leftover)


# Tried in order: (environ key that identifies the server, adapter).
ADAPTERS = [
    ("wsocket.takeover", _wsocket_server),
]


def take_over(environ):
    for key, adapter in ADAPTERS:
        if key in environ:
            return adapter(environ)
    server = environ.get("SERVER_SOFTWARE", "this WSGI server")
    raise UnsupportedServer(
        "WebSocket upgrade refused: %s cannot hand its socket over to a WebSocket. "
        "Run the app with wsocket's own server (wsocket module:app), gunicorn "
        "(-k gthread or -k gevent), werkzeug, gevent or eventlet." % server)
