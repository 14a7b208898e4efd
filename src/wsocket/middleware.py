"""The WSGI middleware: upgrade requests become ``environ["wsgi.websocket"]``.

Every request without ``Upgrade: websocket`` goes to the wrapped app as it
came. An upgrade request is checked (400/403/426 when it is wrong, and the
connection closed after), then the app runs with a WebSocket in its environ
that has not answered yet: the 101 goes out when the app first uses it
(``receive``, ``send``, ``ping``, ``close``, iteration, or ``accept()``),
and only then is the socket taken from the server (see ``adapters``). An app
that answers with an HTTP response instead, without touching the WebSocket
(a 401, a router's 404), has that response sent as it is, by the server,
and the connection closed after it. Once the app returns from a WebSocket,
the connection is closed properly and the socket released.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from .adapters import (
    UnsupportedServer,
    find_adapter,
    request_http_version,
    start_response_taken_over,
    unsupported_server,
)
from .errors import ConnectionClosed, HandshakeError
from .hub import Hub
from .options import DEFAULTS, MiddlewareOptions, check_option_names
from .protocol.codes import CloseCode
from .protocol.handshake import (
    check_extra_headers,
    choose_subprotocol,
    headers_from_environ,
    is_upgrade_request,
    server_handshake,
)
from .protocol.http11 import status_phrase
from .websocket import WebSocket, logger

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from ._opening import HeadersArg
    from .websocket import Environ, WebSocketOpener

StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[dict[str, Any], StartResponse], "Iterable[bytes]"]

__all__ = ["WebSocketMiddleware", "DEFAULT_OPTIONS", "check_options"]

# Every option and its default, for reference (the options are checked and
# held by ``MiddlewareOptions``, wsocket.options).
DEFAULT_OPTIONS = {
    "allowed_origins": None,  # None: any origin; else a list of exact Origin values
    "max_message_size": DEFAULTS.max_message_size,
    "compression": True,
    "compression_level": DEFAULTS.compression_level,  # zlib's, 1 (fastest) to 9 (smallest)
    "ping_interval": DEFAULTS.ping_interval,
    "ping_timeout": DEFAULTS.ping_timeout,
    "close_timeout": DEFAULTS.close_timeout,
    "websocket_class": None,  # None: the class attribute websocket_class
    # frames in one message; None: one per 64 bytes of max_message_size, at least 1,024
    "max_fragments": DEFAULTS.max_fragments,
    "max_queue": DEFAULTS.max_queue,  # bytes a slow client may have waiting; None: no limit
    "hub": None,  # a Hub, a backend URL, or None: WSOCKET_HUB, else in memory
}


def check_options(options: Mapping[str, object]) -> None:
    """Raise TypeError for options the middleware does not know."""
    check_option_names(options)


class WebSocketMiddleware:
    """Wraps a WSGI ``app`` and gives it WebSockets.

    ``protocols`` lists the subprotocols the app speaks, in order of
    preference. Options: see ``DEFAULT_OPTIONS``; they are checked once into
    ``self.options`` (a ``MiddlewareOptions``).
    """

    websocket_class: type[WebSocket] = WebSocket

    def __init__(self, app: WSGIApp, protocols: Iterable[str] | None = None,
                 **options: Any) -> None:
        self.app = app
        self.protocols = list(protocols) if protocols else []
        self.options = MiddlewareOptions.from_keywords(**options)
        if self.options.websocket_class is not None:
            self.websocket_class = self.options.websocket_class
        hub = self.options.hub
        # Broadcast and rooms: every WebSocket served here is a client of it.
        self.hub = hub if isinstance(hub, Hub) else Hub(hub)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        headers = headers_from_environ(environ)
        if not is_upgrade_request(headers):
            return self.app(environ, start_response)
        if "wsgi.websocket" in environ:
            # A middleware further out took the connection already (a Flask
            # app with WSocketApp inside, run by wsocket's server, which
            # wraps it once more): the app runs as it is, and the WebSocket
            # is a client of this middleware's hub too while it does.
            return self._inner(environ, start_response)
        adapter = find_adapter(environ, start_response)
        try:
            handshake = server_handshake(
                headers, environ.get("REQUEST_METHOD", "GET"),
                request_http_version(environ), self.protocols,
                self.options.allowed_origins, self.options.compression)
        except HandshakeError as error:
            # The reason may quote the request's headers (its Origin, say):
            # nothing of those is logged at the default level.
            logger.info("refused WebSocket upgrade of %s: %d", environ.get("PATH_INFO"),
                        error.status)
            logger.debug("refused WebSocket upgrade of %s: %s", environ.get("PATH_INFO"), error)
            response_headers = list(error.headers)
            if adapter is not None:
                response_headers = adapter.close_after_response(response_headers)
            return _AfterResponse(
                _plain_response(start_response, error.status, str(error), response_headers),
                adapter)
        return _Upgrade(self, environ, start_response, handshake, adapter).run()

    def make_websocket(self, environ: Environ, handshake: Any,
                       opener: WebSocketOpener) -> WebSocket:
        """The app's WebSocket for an upgrade request, before its 101 (``opener`` sends it)."""
        return self.websocket_class(
            None, environ, options=self.options.websocket, subprotocol=handshake.subprotocol,
            deflate=handshake.deflate, version=handshake.version, origin=handshake.origin,
            opener=opener)

    def _inner(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        websocket = environ["wsgi.websocket"]
        hub = self.hub
        if environ.get("wsocket.hub") is hub:
            return self.app(environ, start_response)
        environ["wsocket.hub"] = hub  # the innermost hub: the one this app knows
        upgrade = environ.get("wsocket.upgrade")
        if upgrade is not None and not websocket.accepted:
            # Not accepted yet: this middleware's own checks still hold (the
            # outer one, wsocket's server's say, knows nothing of them).
            allowed = self.options.allowed_origins
            if allowed is not None and websocket.origin not in allowed:
                logger.info("refused WebSocket upgrade of %s: 403", environ.get("PATH_INFO"))
                return _plain_response(start_response, 403,
                                       "origin not allowed: %s" % websocket.origin)
            if self.protocols:
                chosen = choose_subprotocol(upgrade.handshake.offered, self.protocols)
                upgrade.handshake.subprotocol = websocket.protocol = chosen
            # It joins this hub with its 101, if it gets one, and leaves it
            # with the outer middleware's at the end.
            upgrade.add_hub(hub)
            return self.app(environ, start_response)
        hub.add(websocket)
        try:
            result = self.app(environ, start_response)
        except BaseException:
            hub.discard(websocket)
            raise
        return _ThenDiscard(result, hub, websocket)


class _Upgrade:
    """One upgrade request that passed the handshake checks, from the app's start to its end.

    The app gets a WebSocket without a socket. If it accepts (uses it),
    ``_open`` takes the connection from the server, sends the 101 and runs
    the app's WebSocket to its end; the app's HTTP response, if it makes
    one, is dropped. If it answers with an HTTP response first, that goes
    to the server as it is, with the connection closed after it, and the
    WebSocket can no longer be accepted.
    """

    # What changes in the course of some upgrades only: until set on the
    # instance, these class values stand (fewer attributes to set per
    # connection opened, and to keep while it is open).
    # Hubs of middlewares further in (see _inner), joined too; None: none.
    inner_hubs: list[Hub] | None = None
    transport: Any = None  # the adapter, once it took the connection over
    server: Any = None  # wsocket's server, told of the WebSocket once open
    # set when the app accepted on a server that cannot hand its socket over
    unsupported: UnsupportedServer | None = None
    status: Any = None  # the app's start_response
    headers: Any = None
    response_started = False  # the HTTP answer is going out: too late to accept
    server_write: Callable[[bytes], object] | None = None
    detached = False
    # The server's detach (wsocket's server), until called, and what it
    # gave to call at the end (see detach).
    detach_from_server: Callable[[], tuple[Any, Callable[[], None]]] | None = None
    give_back: Callable[[], None] | None = None

    def __init__(self, middleware: WebSocketMiddleware, environ: Environ,
                 start_response: StartResponse, handshake: Any, adapter: Any) -> None:
        self.middleware = middleware
        self.environ = environ
        self.server_start_response = start_response
        self.handshake = handshake
        self.adapter = adapter
        self.websocket: WebSocket  # made by run()

    @property
    def accepted(self) -> bool:
        return self.transport is not None

    @property
    def hubs(self) -> list[Hub]:
        """The hubs the WebSocket joins with its 101: this middleware's, then those further in."""
        return [self.middleware.hub, *(self.inner_hubs or ())]

    def add_hub(self, hub: Hub) -> None:
        """The WebSocket joins ``hub`` too (a middleware further in, with a hub of its own)."""
        if self.inner_hubs is None:
            self.inner_hubs = []
        self.inner_hubs.append(hub)

    # -- the app's run ----------------------------------------------------------------

    def run(self) -> Iterable[bytes]:
        websocket = self._make_websocket()
        result: Iterable[bytes] | None = None
        first: bytes | None = None
        chunks: Iterator[bytes] = iter(())
        try:
            result = self.middleware.app(self.environ, self.start_response)
            chunks = iter(result) if result is not None else iter(())
            if not self.accepted:
                first = self._accept_or_answer(chunks)
            if self.accepted:
                for _ in chunks:  # the rest of the app's work, when it is a generator
                    pass
        except ConnectionClosed as closed:
            if not self.accepted:
                _close_result(result)
                raise
            # The usual end of an app that sends after the peer left.
            logger.debug("WebSocket application for %s ended: %s", websocket.path, closed)
        except Exception:
            if not self.accepted:
                _close_result(result)
                if self.unsupported is not None and not self.response_started:
                    return _plain_response(self.server_start_response, 501,
                                           str(self.unsupported))
                raise  # the server's 500, as for any request
            logger.exception("error in WebSocket application for %s", websocket.path)
            if not websocket.closed:
                try:
                    websocket.close(CloseCode.INTERNAL_ERROR, "internal error")
                except OSError:
                    pass
        except BaseException:
            # The greenlet or the process ends (GreenletExit, SystemExit): the
            # connection is released all the same.
            if self.accepted and not self.detached:
                _close_result(result)
                self._end()
            raise
        if not self.accepted:
            return self._http_answer(first, chunks, result)
        _close_result(result)
        self._warn_about_dropped_response()
        if not self.detached:
            self._end()
        response: Iterable[bytes] = self.transport.response()
        return response

    def _make_websocket(self) -> WebSocket:
        """The app's WebSocket, before its 101, in the environ with the rest the app may use."""
        environ = self.environ
        websocket = self.websocket = self.middleware.make_websocket(
            environ, self.handshake, self._open)
        environ["wsgi.websocket"] = websocket
        environ["wsocket.hub"] = self.middleware.hub
        environ["wsgi.websocket_version"] = self.handshake.version
        environ["wsocket.upgrade"] = self
        self._offer_detach()
        return websocket

    def _accept_or_answer(self, chunks: Iterator[bytes]) -> bytes | None:
        """The app returned without accepting: accept, or start its HTTP answer.

        The app may accept on its way to the first chunk (a generator),
        which is returned (None: none).
        """
        first = self._first_chunk(chunks)
        if not self.accepted and self.status is None and first is None:
            # No HTTP answer either: the app is done with the WebSocket
            # without a word, which ends as it always did, 101 then 1000.
            self.websocket.accept()
        if not self.accepted:
            self._start_http_answer()  # False: another thread accepted just now
        return first

    @staticmethod
    def _first_chunk(chunks: Iterator[bytes]) -> bytes | None:
        """Run the app's body to its first non-empty chunk (or its end); it may accept meanwhile."""
        for chunk in chunks:
            if chunk:
                return chunk
        return None

    def start_response(self, status: Any, headers: Any,
                       exc_info: Any = None) -> Callable[[bytes], object]:
        """The app's ``start_response``: kept until the app's answer is known."""
        if exc_info is not None and self.response_started:
            # Too late to change the answer: the server re-raises.
            return self.server_start_response(status, headers, exc_info)
        self.status = status
        self.headers = headers
        return self.write

    def write(self, data: bytes) -> None:
        """The app's legacy ``write()``: starts the HTTP answer, unless the app accepted."""
        if self.accepted:
            return
        if not self.response_started and not self._start_http_answer():
            return  # accepted meanwhile, by another thread
        self._send_status()
        server_write = self.server_write
        assert server_write is not None  # _send_status() set it
        server_write(data)

    # -- answering with HTTP ------------------------------------------------------------

    def _start_http_answer(self) -> bool:
        """From now on the WebSocket cannot be accepted; False if it was meanwhile."""
        if not self.websocket.decline(
                "too late to accept the WebSocket for %s: the app answered the request with "
                "an HTTP response (%s)" % (self.websocket.path, self.status)):
            return False
        self.response_started = True
        return True

    def _send_status(self) -> None:
        if self.server_write is not None:
            return
        if self.status is None:
            raise AssertionError("the WSGI app wrote a body before start_response()")
        self._log_answer()
        headers = list(self.headers or ())
        if self.adapter is not None:
            headers = self.adapter.close_after_response(headers)
        self.server_write = self.server_start_response(self.status, headers)

    def _http_answer(self, first: bytes | None, chunks: Iterator[bytes],
                     result: Iterable[bytes] | None) -> Iterable[bytes]:
        if self.unsupported is not None:
            _close_result(result)
            return _plain_response(self.server_start_response, 501, str(self.unsupported))
        self._send_status()
        if isinstance(result, (list, tuple)) and (
                self.adapter is None or not self.adapter.acts_after_response):
            return result  # as it came (a server may give a one-piece body its length)
        return _AfterResponse(_Body(first, chunks, result), self.adapter)

    def _log_answer(self) -> None:
        status = str(self.status)
        path = self.websocket.path
        if status[:3] == "400" and _route_takes_no_websocket(self.middleware.app,
                                                             self.environ):
            logger.warning("the WebSocket request for %s was answered %s: its route does not "
                           "take WebSockets (with Flask or werkzeug routing, give the route "
                           "websocket=True)", path, status)
        elif status[:1] == "5":
            logger.warning("the WebSocket request for %s was answered %s by the app, which did "
                           "not accept it", path, status)
        else:
            logger.info("the WebSocket request for %s was answered %s by the app, which did "
                        "not accept it", path, status)

    # -- accepting --------------------------------------------------------------------

    def _open(self, websocket: WebSocket, protocol: str | None, headers: HeadersArg) -> None:
        """``websocket.accept()``: take the connection over and send the 101 (accept lock held)."""
        handshake = self.handshake
        if protocol is not None and protocol not in handshake.offered:
            raise ValueError("subprotocol %r was not offered by the client (it offered: %s)"
                             % (protocol, ", ".join(handshake.offered) or "none"))
        extra = check_extra_headers(headers)
        if self.adapter is None:
            self.unsupported = unsupported_server(self.environ, self.server_start_response)
            logger.error("%s", self.unsupported)
            raise self.unsupported
        try:
            transport = self.adapter.take_over()
        except UnsupportedServer as error:
            self.unsupported = error
            logger.error("%s", error)
            raise
        subprotocol = protocol if protocol is not None else handshake.subprotocol
        websocket.protocol = subprotocol
        websocket.attach(transport.sock, transport.initial_data)
        self.transport = transport
        # Accepted: no HTTP answer from here on (see start_response_taken_over).
        self.server_start_response = start_response_taken_over
        response = handshake.response(subprotocol, extra)
        self.handshake = None  # spent (and one thing less to keep while the WebSocket is open)
        websocket.send_opening(response, self._admit)
        server = self.environ.get("wsocket.server")
        if server is not None and not websocket.closed:
            self.server = server
            server.websocket_opened(websocket)

    def _admit(self) -> None:
        # A client that has its 101 is a client of the hub: it joins just
        # before the 101 goes, so that a broadcast made meanwhile waits in
        # its queue and follows the 101.
        for hub in self.hubs:
            hub.admit(self.websocket)

    def _offer_detach(self) -> None:
        """Put ``detach`` in the environ, in place of the server's, where the server offers one."""
        self.detach_from_server = self.environ.get("wsocket.detach")
        if self.detach_from_server is not None:
            self.environ["wsocket.detach"] = self.detach

    # (Bound methods rather than closures: fewer objects for each connection
    # to keep, and for the garbage collector to walk, while it is open.)

    def detach(self) -> tuple[Any, Callable[[], None]]:
        """The app goes on after it returns: returns ``(reactor, end)``.

        The app waits for the socket with ``reactor`` and calls ``end()``
        once the WebSocket has ended (see ``app``).
        """
        detach_from_server = self.detach_from_server
        if detach_from_server is None:
            raise RuntimeError("environ['wsocket.detach'] was called already")
        self.detach_from_server = None
        if self.environ.get("wsocket.detach") == self.detach:
            # The server's own goes back in its place, which, once called,
            # it leaves to a spent stand-in (not this method, kept for as
            # long as the environ).
            self.environ["wsocket.detach"] = detach_from_server
        reactor, self.give_back = detach_from_server()
        self.detached = True
        return reactor, self._end_detached

    def _end_detached(self) -> None:
        try:
            self._end()
        finally:
            if self.give_back is not None:
                self.give_back()

    def _end(self) -> None:
        websocket = self.websocket
        if not websocket.closed:
            try:
                websocket.close(CloseCode.NORMAL_CLOSURE)
            except OSError:
                pass
        for hub in self.hubs:
            hub.discard(websocket)  # it leaves every room, whatever ended it
        if self.server is not None:
            self.server.websocket_closed(websocket)
        self.transport.release()

    def _warn_about_dropped_response(self) -> None:
        status = str(self.status or "")
        if status[:1] in ("4", "5"):
            # Its 101 went out, so this answer could not: most often a framework's
            # error page for a view that failed, or returned nothing, at the end.
            logger.warning("the app answered %s for the WebSocket of %s after accepting it; "
                           "that response was not sent. A framework's error page here means "
                           "the view raised or returned no valid response (a Flask view "
                           "must return one, \"\" will do); see the app's own log",
                           status, self.websocket.path)


def _route_takes_no_websocket(app: object, environ: Environ) -> bool:
    """Whether ``app`` routes with werkzeug (Flask does) and its route lacks websocket=True.

    ``app`` is the wrapped WSGI callable: a Flask app, or its ``wsgi_app``
    method; its ``url_map`` tells, matched again for this request.
    """
    owner = getattr(app, "__self__", app)
    url_map = getattr(owner, "url_map", None)
    bind = getattr(url_map, "bind_to_environ", None)
    if bind is None:
        return False
    try:
        bind(environ).match()
    except Exception as error:
        return type(error).__name__ == "WebsocketMismatch"
    return False


def _close_result(result: object) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            logger.exception("error closing the WebSocket app's response")


class _Body:
    """The app's body: its first chunk (taken already), then the rest."""

    def __init__(self, first: bytes | None, chunks: Iterator[bytes], result: object) -> None:
        self._first = first
        self._chunks = chunks
        self._result = result

    def __iter__(self) -> Iterator[bytes]:
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        yield from self._chunks

    def close(self) -> None:
        close = getattr(self._result, "close", None)
        if close is not None:
            close()


class _AfterResponse:
    """An HTTP answer to an upgrade request; once it is out, the adapter ends the connection."""

    def __init__(self, body: Iterable[bytes], adapter: Any) -> None:
        self._body = body
        self._adapter = adapter

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            if self._adapter is not None:
                self._adapter.after_response()


class _ThenDiscard:
    """An app's result; closing it takes the WebSocket out of a hub."""

    def __init__(self, result: Iterable[bytes] | None, hub: Hub, websocket: WebSocket) -> None:
        self._result = result
        self._hub = hub
        self._websocket = websocket

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._result or ())

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            self._hub.discard(self._websocket)


def _plain_response(start_response: StartResponse, status: int, message: str,
                    headers: Iterable[tuple[str, str]] = ()) -> list[bytes]:
    body = (message + "\n").encode("utf-8")
    start_response("%d %s" % (status, status_phrase(status)), [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        *headers,
    ])
    return [body]
