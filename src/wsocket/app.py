"""``WSocketApp``: middleware, framework and event app behind one name.

- ``WSocketApp(app)`` wraps a WSGI app (see ``middleware``): only upgrade
  requests are touched, everything else reaches ``app`` as it came.
- ``WSocketApp()`` is an app of its own, in three layers tried in order:

  1. routes (``@app.route(...)``, see ``framework``), for HTTP and WebSocket
     requests alike: a route sees ``environ["wsgi.websocket"]`` on upgrades;
  2. events, for WebSocket requests that no route matched: ``onrequest(client)``
     first, before the 101, which may refuse the request with an HTTP response
     or accept it (``client.accept(...)``); then, for an accepted one only,
     ``onconnect(client)``, ``onmessage(message, client)`` for each message,
     ``onclose(reason, client)`` exactly once at the end; HTTP requests that
     no route matched get ``not_found`` (404);
  3. with nothing attached at all (no route, no handler), the demo: a page
     at ``/`` that talks to an echo ("you said: ...") WebSocket, or, in its
     chat mode (``/?chat``), to everyone else in the chat.

``app.hub`` (see ``hub``) broadcasts to the clients of all three, and to
rooms they join; each WebSocket leaves every room when its connection ends.

A WebSocket request to a path no route matches, on an app that has routes
but no event handlers, is answered 404 instead of a 101.
"""

from __future__ import annotations

import functools
import json
import math
import os
import secrets
import threading
import traceback
from typing import TYPE_CHECKING, Any, Callable, overload
from urllib.parse import parse_qs

from .errors import ConnectionClosed, WebSocketError
from .framework import Framework, Response, request_path
from .middleware import WebSocketMiddleware
from .protocol.codes import CloseCode
from .protocol.handshake import is_upgrade_request
from .websocket import WebSocket, logger

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from .middleware import StartResponse, WSGIApp
    from .websocket import Environ

Handler = Callable[..., object]
# onrequest(client): None or True accepts; False, a status or a Response refuses
RequestHook = Callable[["WebSocket"], object]

__all__ = ["WSocketApp", "Event"]

_STATIC = os.path.join(os.path.dirname(__file__), "static")
DEMO_PATHS = ("/", "/index.html")
CHAT_ROOM = "chat"  # the room of the demo's chat mode


class Event:
    """Handlers called in order with the same arguments; one's exception is logged, not raised.

    ``event += handler`` or ``event + handler`` adds (both change the event
    in place), ``event -= handler`` or ``event - handler`` removes,
    ``clear()`` empties it. On ``WSocketApp``, ``app.onmessage = handler``
    replaces the event by one holding only that handler. ``len(event)``,
    ``handler in event`` and ``for handler in event`` work too.

    Calling the event (``event(*args)``) calls each handler with ``args``
    and returns None; an exception of a handler is logged with its
    traceback and the next handler runs.

    Args:
        *handlers (Callable): The first handlers.

    Attributes:
        handlers (list[Callable]): The handlers, in the order they run.

    Raises:
        TypeError: A handler is not callable (also from ``+=`` and ``+``).
        ValueError: ``-=`` or ``-`` of a handler the event does not hold.
    """

    # ``handlers`` is a slot: the event app's C turn reads it at every message
    # (_speedups.c's SlotField); anything else set on an event goes to __dict__.
    __slots__ = ("handlers", "__dict__", "__weakref__")

    def __init__(self, *handlers: Handler) -> None:
        for handler in handlers:
            _check_callable(handler)
        self.handlers = list(handlers)

    def __iadd__(self, handler: Handler) -> Event:
        _check_callable(handler)
        self.handlers.append(handler)
        return self

    __add__ = __iadd__

    def __isub__(self, handler: Handler) -> Event:
        try:
            self.handlers.remove(handler)
        except ValueError:
            raise ValueError("%r is not a handler of this event" % (handler,)) from None
        return self

    __sub__ = __isub__

    def clear(self) -> None:
        """Remove every handler."""
        self.handlers.clear()

    def __len__(self) -> int:
        return len(self.handlers)

    def __bool__(self) -> bool:
        return bool(self.handlers)

    def __iter__(self) -> Iterator[Handler]:
        return iter(list(self.handlers))

    def __contains__(self, handler: object) -> bool:
        return handler in self.handlers

    def __repr__(self) -> str:
        return "<Event %s>" % ", ".join(_name(handler) for handler in self.handlers)

    def __call__(self, *args: Any) -> None:
        handlers = self.handlers
        # A copy, so that a handler may add or remove handlers meanwhile
        # (one handler, the usual case, is called without copying).
        for handler in (handlers[0],) if len(handlers) == 1 else list(handlers):
            _call_guarded(handler, *args)


def _call_guarded(handler: Handler, *args: Any) -> None:
    """``handler(*args)``; its exception is logged, not raised (see ``Event``)."""
    try:
        handler(*args)
    except Exception as error:
        _handler_failed(handler, error)


def _handler_failed(handler: Handler, error: Exception) -> None:
    """Log what ``handler`` raised (the C turn calls it too, outside any ``except``)."""
    if isinstance(error, ConnectionClosed):
        # Sending to a client that just left: the usual end, not a bug.
        logger.debug("event handler %s: %s", _name(handler), error)
    else:
        logger.error("error in event handler %s", _name(handler), exc_info=error)


def _check_callable(handler: object) -> None:
    if not callable(handler):
        raise TypeError("an event handler must be callable, not %s" % type(handler).__name__)


def _name(handler: object) -> str:
    name = getattr(handler, "__qualname__", None)
    return name if isinstance(name, str) and name else repr(handler)


class _EventSlot:
    """Keeps each of an app's events an ``Event``: ``app.onmessage = f`` replaces it.

    Assigning an ``Event`` uses it; a function gives a new ``Event`` holding
    only that function; ``None`` gives an empty one.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = "_" + name

    @overload
    def __get__(self, instance: None, owner: type) -> _EventSlot: ...
    @overload
    def __get__(self, instance: object, owner: type) -> Event: ...

    def __get__(self, instance: object, owner: type) -> _EventSlot | Event:
        if instance is None:
            return self
        event: Event = instance.__dict__[self.name]
        return event

    def __set__(self, instance: object, value: Event | Handler | None) -> None:
        if value is None:
            value = Event()
        elif not isinstance(value, Event):
            value = Event(value)
        instance.__dict__[self.name] = value


class _RequestHookSlot:
    """``app.onrequest``: one function, set by assignment or as a decorator.

    ``app.onrequest = check`` and ``@app.onrequest`` both make ``check`` the
    hook (``None`` removes it); reading ``app.onrequest`` gives the decorator,
    with the hook as its ``handler`` attribute.
    """

    @overload
    def __get__(self, instance: None, owner: type) -> _RequestHookSlot: ...
    @overload
    def __get__(self, instance: object, owner: type) -> _RequestHookDecorator: ...

    def __get__(self, instance: object, owner: type) -> _RequestHookSlot | _RequestHookDecorator:
        if instance is None:
            return self
        return _RequestHookDecorator(self, instance)

    def __set__(self, instance: object, handler: RequestHook | None) -> None:
        if handler is not None:
            _check_callable(handler)
        instance.__dict__["_onrequest"] = handler

    @staticmethod
    def hook_of(instance: object) -> RequestHook | None:
        """The hook set on ``instance``, or None (without making the decorator)."""
        hook: RequestHook | None = instance.__dict__.get("_onrequest")
        return hook


class _RequestHookDecorator:
    """``app.onrequest`` as read: a decorator that sets the hook, with the hook as ``handler``."""

    def __init__(self, slot: _RequestHookSlot, instance: object) -> None:
        self._slot = slot
        self._instance = instance
        self.handler: RequestHook | None = _RequestHookSlot.hook_of(instance)

    def __call__(self, handler: RequestHook) -> RequestHook:
        self._slot.__set__(self._instance, handler)
        return handler


class WSocketApp(WebSocketMiddleware, Framework):
    """Middleware around ``app``; without one, an app of routes, events and the demo.

    ``WSocketApp(app)`` wraps a WSGI app: upgrade requests get
    ``environ["wsgi.websocket"]``, others reach ``app`` untouched.
    ``WSocketApp()`` is an app of its own: routes first, then events, and
    the demo when nothing is attached. Either way it is a WSGI application.

    Args:
        app (Callable | None): The WSGI application to wrap; None for routes,
            events or the demo.
        protocols (list[str] | None): The subprotocols the app speaks, in its
            order of preference.
        debug (bool): Show tracebacks in the 500 pages of routes (development only).
        **options (Any): The middleware's options: ``allowed_origins``,
            ``max_message_size``, ``compression``, ``compression_level``,
            ``ping_interval``, ``ping_timeout``, ``close_timeout``,
            ``websocket_class``, ``max_fragments``, ``max_queue``, ``hub``
            (``DEFAULT_OPTIONS`` in ``wsocket.middleware``).

    Attributes:
        hub (Hub): Broadcast and rooms; every WebSocket served here is a client
            of it while its connection lives.
        websocket_class (type[WebSocket]): The class of the WebSockets made here.
        routes (dict): Each route string and its handler.

    Raises:
        TypeError: An unknown option, or ``allowed_origins`` given as a string.
        ValueError: An option out of its range (``compression_level``,
            ``ping_interval``, ...).
        HubError: The ``hub`` backend cannot be used (unknown URL, missing
            ``redis`` package, Redis unreachable).
    """

    onconnect = _EventSlot()
    """Event: ``handler(client)`` once the handshake is done (a ``WebSocket``)."""
    onmessage = _EventSlot()
    """Event: ``handler(message, client)`` for each message, ``str`` or ``bytes``."""
    onclose = _EventSlot()
    """Event: ``handler(reason, client)`` exactly once per connection, whatever ended it."""
    onrequest = _RequestHookSlot()
    """Hook: ``handler(client)`` before the 101; returns None to accept, or a refusal.

    A refusal is a ``Response``, a status (``401``) or ``False`` (403). Set it
    with ``app.onrequest = check`` or ``@app.onrequest``.
    """

    def __init__(self, app: WSGIApp | None = None, protocols: Iterable[str] | None = None,
                 debug: bool = False, **options: Any) -> None:
        self.onconnect = Event()
        self.onmessage = Event()
        self.onclose = Event()
        self.onrequest = None
        self.wrapped_app = app
        self._clients: set[WebSocket] = set()
        self._clients_lock = threading.Lock()
        self._presence: _Presence | None = None
        self._presence_lock = threading.Lock()
        self._chat_names: set[str] = set()
        Framework.__init__(self, debug)
        WebSocketMiddleware.__init__(self, app if app is not None else self._own_app,
                                     protocols, **options)

    # -- what is attached ---------------------------------------------------------

    def route(self, path: str) -> Callable[[Any], Any]:
        """Decorator: ``@app.route("/hello")``, or ``@app.route("/static/*")`` for a prefix.

        The handler is a WSGI function, ``handler(environ, start_response)``,
        for HTTP and WebSocket requests to that path. Registering the same
        route again replaces its handler.

        Args:
            path (str): A path starting with ``/``, ending with ``*`` for a
                prefix; ``"*"`` alone matches every path.

        Returns:
            Callable: The decorator, which registers the handler and returns it
                unchanged.

        Raises:
            TypeError: ``path`` is not a ``str``, the handler is not callable,
                or this ``WSocketApp`` wraps an app (route inside that app).
            ValueError: ``path`` starts with neither ``/`` nor ``*``.
        """
        if self.wrapped_app is not None:
            raise TypeError("this WSocketApp wraps %s: add the route to that app (it gets "
                            "environ['wsgi.websocket']), or use WSocketApp() without an app"
                            % _name(self.wrapped_app))
        decorator: Callable[[Any], Any] = Framework.route(self, path)
        return decorator

    @property
    def has_handlers(self) -> bool:
        # The Events where their slots keep them: this runs for every WebSocket
        # opened, and each read through a slot is a Python call.
        events = self.__dict__
        return bool(events["_onconnect"].handlers or events["_onmessage"].handlers
                    or events["_onclose"].handlers)

    @property
    def is_demo(self) -> bool:
        """Nothing attached: no route and no event handler."""
        return not self.routes and not self.has_handlers

    @property
    def clients(self) -> list[WebSocket]:
        """The connections the events are running for now (a snapshot, a list of ``WebSocket``)."""
        with self._clients_lock:
            return list(self._clients)

    # -- requests -------------------------------------------------------------------

    def _events_take_websockets(self) -> bool:
        """Whether a WebSocket no route takes goes to the events (or the demo)."""
        return not self.routes or self.has_handlers

    @property
    def handshakes_in_loop(self) -> bool:
        """Whether some requests can be answered in the server's loop (``runs_in_loop``).

        True for ``WSocketApp()`` with its own event session; a wrapped WSGI
        app may block on any request, so its connections get threads as before.
        """
        return (self.wrapped_app is None
                and type(self).handle_websocket is WSocketApp.handle_websocket)

    def runs_in_loop(self, environ: Environ) -> bool:
        """Whether this request is answered without blocking, in wsocket's server's loop.

        A WebSocket upgrade for the events (or the demo): the handshake, then
        ``onrequest`` and ``onconnect``, which, like ``onmessage``, get a
        thread to themselves should they block. A route (any WSGI function)
        or a plain HTTP request gets a thread of its own first.
        """
        if not self.handshakes_in_loop \
                or not is_upgrade_request({"upgrade": environ.get("HTTP_UPGRADE", "")}):
            return False
        return self.find_route(request_path(environ)) is None and self._events_take_websockets()

    def _own_app(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = request_path(environ)
        handler = self.find_route(path)
        websocket = environ.get("wsgi.websocket")
        if websocket is not None:
            if handler is None and not self._events_take_websockets():
                return self._respond(self.not_found, environ, start_response)
            if handler is not None:
                # A route answers as for HTTP: it may refuse with a status of
                # its own before using the WebSocket; once it used it, the
                # middleware drops whatever it returns.
                return self._respond(handler, environ, start_response)
            hook = _RequestHookSlot.hook_of(self)
            if hook is not None and not websocket.accepted:
                refusal = self._ask(hook, websocket, environ)
                if refusal is not None:
                    return self._respond(lambda environ, start_response: refusal, environ,
                                         start_response)
            self.handle_websocket(websocket)
            return []
        if handler is None:
            handler = self.demo_page if self.is_demo and path in DEMO_PATHS else self.not_found
        return self._respond(handler, environ, start_response)

    def _respond(self, handler: Callable[..., Any], environ: Environ,
                 start_response: StartResponse) -> Iterable[bytes]:
        body: Iterable[bytes] = self.respond(handler, environ, start_response)
        return body

    # -- the event app ----------------------------------------------------------------

    def _ask(self, hook: RequestHook, client: WebSocket, environ: Environ) -> Response | None:
        """Run ``onrequest``; returns the ``Response`` that refuses, or None to accept.

        The hook returns None or True (accept), False (403), a status (an
        int or str such as 401), or a ``Response`` (status, headers, body).
        An exception in it is a 500, with the traceback in the log.
        """
        try:
            verdict = hook(client)
        except Exception:
            if client.accepted:
                raise
            text = traceback.format_exc()
            logger.error("error in onrequest %s for %s\n%s", _name(hook), client.path, text)
            return Response(self.error_page(environ, text), 500)
        if verdict is None or verdict is True:
            return None
        if client.accepted:
            # Too late for an HTTP answer: the 101 went out.
            logger.warning("onrequest for %s refused the WebSocket after accepting it; it "
                           "stays accepted", client.path)
            return None
        if verdict is False:
            verdict = 403
        if isinstance(verdict, Response):
            return verdict
        if isinstance(verdict, (int, str)) and not isinstance(verdict, bool):
            response = Response(b"", verdict, {"Content-Type": "text/plain; charset=utf-8"})
            response.body = response.status + "\n"
            return response
        raise TypeError("onrequest returns None or True (accept), False, a status or a "
                        "Response (refuse), not %s" % type(verdict).__name__)

    def handle_websocket(self, client: WebSocket) -> None:
        """Run the events of one connection, one at a time, in message order.

        ``onclose`` fires exactly once, whatever ended the connection, with
        ``client.close_code`` and ``close_reason`` set. On wsocket's own
        server this returns as soon as no message is waiting, and the
        connection waits without a thread (see ``reactor``); elsewhere it
        returns when the connection has ended.
        """
        _EventSession(self, client).run()

    def handle_message(self, message: str | bytes, client: WebSocket,
                       chat_name: str | None = None) -> None:
        """One message: ``onmessage``, or the demo's chat or echo."""
        _call_guarded(self.message_handler(chat_name), message, client)

    def message_handler(self, chat_name: str | None = None) -> Handler:
        """What handles each message now: ``handler(message, client)``.

        The ``onmessage`` event, or its one handler itself (the usual app:
        one call per message, not two), or the demo's. The caller guards the
        call as the event does (``_call_guarded``). Asked again for each batch
        of messages, so a handler added meanwhile sees the next batch.
        """
        onmessage = self.onmessage
        handlers = onmessage.handlers
        if len(handlers) == 1:
            return handlers[0]
        if handlers:
            return onmessage
        return functools.partial(self._demo_message, chat_name)

    def _demo_message(self, chat_name: str | None, message: str | bytes,
                      client: WebSocket) -> None:
        """The demo's chat or echo, or nothing for an app without ``onmessage``."""
        if chat_name is not None:
            # Everyone in the chat gets it, the sender too (its page
            # shows a message once the server has sent it out).
            self.hub.broadcast("%s: %s" % (chat_name, message)
                               if isinstance(message, str) else message, room=CHAT_ROOM)
        elif self.is_demo:
            client.send("you said: %s" % message if isinstance(message, str) else message)

    # -- the demo ----------------------------------------------------------------------

    def demo_page(self, environ: Environ, start_response: StartResponse) -> bytes:
        """The page at ``/`` of an app with nothing attached."""
        start_response(200, [("Content-Type", "text/html; charset=utf-8"),
                             ("Cache-Control", "no-cache")])
        return _demo_html()

    def join_chat(self, client: WebSocket) -> str:
        """The demo's chat mode: a name, the room, and the others told."""
        with self._clients_lock:
            name = "guest-" + secrets.token_hex(2)
            while name in self._chat_names:
                name = "guest-" + secrets.token_hex(2)
            self._chat_names.add(name)
        client.send(json.dumps({"name": name}))
        self.hub.broadcast(json.dumps({"joined": name}), room=CHAT_ROOM)
        self.hub.join(client, CHAT_ROOM)
        return name

    def leave_chat(self, name: str) -> None:
        with self._clients_lock:
            self._chat_names.discard(name)
        self.hub.broadcast(json.dumps({"left": name}), room=CHAT_ROOM)

    # -- what each connection's event session tells the app (internal) ---------------

    def add_client(self, client: WebSocket) -> None:
        """A connection's events start: it is in ``clients`` until ``remove_client``."""
        with self._clients_lock:
            self._clients.add(client)
        self.clients_changed()

    def remove_client(self, client: WebSocket) -> None:
        """A connection's events end (call ``clients_changed()`` once it left everything)."""
        with self._clients_lock:
            self._clients.discard(client)

    def clients_changed(self) -> None:
        """The demo's pages are told the new client count (on a thread of their own)."""
        if not self.is_demo:
            return
        with self._presence_lock:
            if self._presence is None:
                self._presence = _Presence(self)
        self._presence.changed()


class _EventSession:
    """The events of one WebSocket: ``onconnect``, ``onmessage`` each, ``onclose`` once.

    ``run()`` starts in the request's thread. Where the server can hold the
    connection without a thread (``environ["wsocket.detach"]``, wsocket's
    own server on Linux), the session handles the messages that are there,
    then hands the socket to the server's reactor and returns; the reactor
    calls ``resume()`` in its loop when more arrives, a keepalive ping falls
    due, or the connection is closed from elsewhere (see ``reactor``: a
    handler that blocks there gets the loop's thread to itself, and another
    thread goes on with the loop). Its callbacks never overlap, so the
    handlers of one connection still run one at a time, in order.
    """

    def __init__(self, app: WSocketApp, client: WebSocket) -> None:
        self.app = app
        self.client = client
        self.chat_name: str | None = None
        self.reactor: Any = None
        # hands the connection back to the server at the end
        self.release: Callable[[], None] | None = None

    def run(self) -> None:
        app, client = self.app, self.client
        if not client.accepted:
            client.accept()  # onconnect, app.clients and the hub see accepted clients only
        app.add_client(client)
        try:
            if app.is_demo and wants_chat(client):
                self.chat_name = app.join_chat(client)
            app.onconnect(client)
        except ConnectionClosed:
            self._end()
            return
        except Exception:
            self.ended_by_error()
            return
        detach = client.environ.get("wsocket.detach")
        if detach is None or not client.writes_without_blocking:
            self.handle_messages(None)  # this thread until the end
            return
        self.reactor, self.release = detach()
        client.runs_in_loop(self.reactor)
        client.set_close_callback(self._wake)
        # The usual turn in one C call where it can be had (see _speedups.EventTurn).
        turn = client.direct_turn(self.app.__dict__, "_onmessage", self,
                                  _handler_failed) or self.resume
        if client.has_arrived():
            # On wsocket's server this runs in the loop's thread, as a callback
            # of this very socket (the loop read the request): should a handler
            # of the messages that came with the upgrade block, what they sent
            # before leaves all the same (as in every later turn).
            self.reactor.set_on_stall(client.sock, client.release_held)
            due = turn()
        else:
            # Nothing came with the upgrade (the usual): the socket is only
            # watched. Bytes that arrive meanwhile bring it up at once (epoll is
            # level-triggered), and a read now would most often find none.
            keepalive_due = client.keepalive_due()
            due = math.inf if keepalive_due is None else keepalive_due
        if due is not None:
            self.reactor.watch(client.sock, turn, due, on_stall=client.release_held)

    def resume(self, taken: list[str | bytes] | None = None) -> float | None:
        """The reactor's callback: handle what arrived; when to call again, or None: ended.

        Reads the socket once and never waits for it: the reactor calls
        again while it is readable, so a busy connection does not keep the
        loop from the others. The float returned (the keepalive's next due
        time, ``math.inf`` for none) has the reactor watch the socket again,
        cheaper than a ``watch()`` call per message. ``taken``: the messages
        the C turn read already, handled first (it read, so this reads no more).
        """
        client = self.client
        try:
            messages = client.receive_arrived(True, taken)
            if messages:
                handler = self.app.message_handler(self.chat_name)
                while True:
                    for message in messages:
                        try:
                            handler(message, client)
                        except Exception as error:  # (_call_guarded, inline: once a message)
                            _handler_failed(handler, error)
                    if not client.batch_done():
                        break
                    messages = client.receive_arrived(False)  # what that one read brought
                    if not messages:
                        break
            if not client.closed:  # nothing more for now
                due = client.keepalive_due()
                return math.inf if due is None else due
        except ConnectionClosed:
            pass
        except Exception:
            self.ended_by_error()
            return None
        self._end()
        return None

    def _wake(self) -> None:
        self.reactor.wake(self.client.sock)

    def handle_messages(self, timeout: float | None) -> bool:
        """Handle messages until none comes within ``timeout``; True once the session ended."""
        client = self.client
        try:
            while True:
                message = client.receive(timeout)
                if message is None:
                    if not client.closed:
                        return False  # nothing more for now
                    break  # the connection failed; close_code says how
                self.app.handle_message(message, client, self.chat_name)
        except ConnectionClosed:
            pass
        except Exception:
            self.ended_by_error()
            return True
        self._end()
        return True

    def ended_by_error(self, error: BaseException | None = None) -> None:
        """The session failed (1011); ``error`` is what was raised, else the one being handled."""
        logger.error("error running the events of %r", self.client,
                     exc_info=error if error is not None else True)
        _close_quietly(self.client, CloseCode.INTERNAL_ERROR, "internal error")
        self._end()

    def _end(self) -> None:
        app, client = self.app, self.client
        try:
            if not client.closed:
                _close_quietly(client, CloseCode.NORMAL_CLOSURE, "")
            app.remove_client(client)
            app.hub.discard(client)  # out of every room before onclose, like app.clients
            if self.chat_name is not None:
                app.leave_chat(self.chat_name)
            app.clients_changed()
            app.onclose(client.close_reason or "", client)
        finally:
            if self.reactor is not None:
                client.set_close_callback(None)
                self.reactor.unwatch(client.sock)  # before the socket is closed
                if self.release is not None:
                    self.release()


def _close_quietly(client: WebSocket, code: int, reason: str) -> None:
    try:
        client.close(code, reason)
    except (WebSocketError, OSError):
        pass


_demo_cache: list[bytes] = []


def _demo_html() -> bytes:
    if not _demo_cache:
        with open(os.path.join(_STATIC, "demo.html"), "rb") as page:
            _demo_cache.append(page.read())
    return _demo_cache[0]


def wants_client_count(client: WebSocket) -> bool:
    """A demo WebSocket opened with ``?clients`` in its URL gets ``{"clients": N}`` messages."""
    query = client.environ.get("QUERY_STRING", "")
    return "clients" in parse_qs(query, keep_blank_values=True)


def wants_chat(client: WebSocket) -> bool:
    """A demo WebSocket opened with ``?chat`` in its URL is in the chat room, not the echo."""
    query = client.environ.get("QUERY_STRING", "")
    return "chat" in parse_qs(query, keep_blank_values=True)


class _Presence:
    """Tells the demo pages how many clients are connected, on a thread of its own.

    Updates are coalesced (only the latest count matters), and a slow page
    delays only these updates, never a connection's own thread.
    """

    def __init__(self, app: WSocketApp) -> None:
        self._app = app
        self._condition = threading.Condition()
        self._dirty = False
        self._thread = threading.Thread(target=self._run, name="wsocket-demo-clients",
                                         daemon=True)
        self._thread.start()

    def changed(self) -> None:
        with self._condition:
            self._dirty = True
            self._condition.notify()

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._dirty:
                    self._condition.wait()
                self._dirty = False
            clients = self._app.clients
            in_chat = [client for client in clients if wants_chat(client)]
            # A page in the chat counts the chat, a page in the echo everyone.
            everyone = json.dumps({"clients": len(clients)})
            chat = json.dumps({"clients": len(in_chat)})
            for client in clients:
                if wants_client_count(client) and not client.closed:
                    try:
                        client.send(chat if wants_chat(client) else everyone)
                    except (WebSocketError, OSError) as error:
                        logger.debug("client count not sent to %r: %s", client, error)
