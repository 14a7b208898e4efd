"""``WSocketApp``: the middleware, and with no app of its own, the event app.

``WSocketApp(app)`` wraps a WSGI app (see ``middleware``). ``WSocketApp()``
runs its own: every WebSocket connection fires ``onconnect(client)``,
``onmessage(message, client)`` for each message and ``onclose(reason,
client)`` once at the end. With no handlers at all it is the demo: it
echoes ("you said: ...") and serves a page at ``/`` that talks to itself.
"""

import os

from .errors import ConnectionClosed
from .middleware import WebSocketMiddleware
from .websocket import logger

__all__ = ["WSocketApp", "Event"]

_STATIC = os.path.join(os.path.dirname(__file__), "static")


class Event:
    """A list of handlers called in order; one handler's exception is logged, not raised.

    ``event += handler`` (or ``event + handler``) adds, ``-=`` (or ``-``)
    removes, ``clear()`` empties it.
    """

    def __init__(self, *handlers):
        for handler in handlers:
            _check_callable(handler)
        self.handlers = list(handlers)

    def __iadd__(self, handler):
        _check_callable(handler)
        self.handlers.append(handler)
        return self

    __add__ = __iadd__

    def __isub__(self, handler):
        try:
            self.handlers.remove(handler)
        except ValueError:
            raise ValueError("%r is not a handler of this event" % (handler,)) from None
        return self

    __sub__ = __isub__

    def clear(self):
        self.handlers.clear()

    def __len__(self):
        return len(self.handlers)

    def __bool__(self):
        return bool(self.handlers)

    def __call__(self, *args):
        for handler in list(self.handlers):
            try:
                handler(*args)
            except Exception:
                logger.exception("error in event handler %s",
                                 getattr(handler, "__qualname__", handler))


def _check_callable(handler):
    if not callable(handler):
        raise TypeError("an event handler must be callable, not %s" % type(handler).__name__)


class _EventSlot:
    """Class attribute that keeps each event an ``Event``; ``app.onmessage = f`` replaces it."""

    def __set_name__(self, owner, name):
        self.name = "_" + name

    def __get__(self, instance, owner):
        if instance is None:
            return self
        return instance.__dict__[self.name]

    def __set__(self, instance, value):
        if not isinstance(value, Event):
            value = Event(value)
        instance.__dict__[self.name] = value


class WSocketApp(WebSocketMiddleware):
    """Middleware around ``app``, or, without one, an event-driven WebSocket app."""

    onconnect = _EventSlot()
    onmessage = _EventSlot()
    onclose = _EventSlot()

    def __init__(self, app=None, protocols=None, **options):
        self.onconnect = Event()
        self.onmessage = Event()
        self.onclose = Event()
        super().__init__(app if app is not None else self._own_app, protocols, **options)

    def _own_app(self, environ, start_response):
        websocket = environ.get("wsgi.websocket")
        if websocket is not None:
            self.handle_websocket(websocket)
            return []
        if environ.get("PATH_INFO", "/") in ("/", "/index.html"):
            with open(os.path.join(_STATIC, "demo.html"), "rb") as page:
                body = page.read()
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                      ("Content-Length", str(len(body)))])
            return [body] if environ["REQUEST_METHOD"] != "HEAD" else []
        body = b"404 Not Found\n"
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8"),
                                         ("Content-Length", str(len(body)))])
        return [body]

    def handle_websocket(self, client):
        """Run the events of one connection, in its own thread, in message order."""
        reason = ""
        self.onconnect(client)
        try:
            while True:
                message = client.receive()
                if message is None:
                    break
                if self.onmessage:
                    self.onmessage(message, client)
                else:
                    client.send("you said: %s" % (message,) if isinstance(message, str)
                                else message)
        except ConnectionClosed as closed:
            reason = closed.reason
        finally:
            self.onclose(reason or client.close_reason or "", client)
