"""The WSGI middleware: upgrade requests become ``environ["wsgi.websocket"]``.

Every request without ``Upgrade: websocket`` goes to the wrapped app as it
came. An upgrade request is checked (400/403/426 when it is wrong), the
socket is taken from the server (see ``adapters``), the 101 is written, and
the wrapped app runs with the WebSocket in its environ. When the app
returns, the connection is closed properly and the socket released.
"""

from .adapters import UnsupportedServer, request_http_version, take_over
from .errors import ConnectionClosed, HandshakeError
from .protocol.connection import DEFAULT_MAX_MESSAGE_SIZE
from .protocol.deflate import DEFAULT_COMPRESSION_LEVEL, check_compression_level
from .protocol.handshake import headers_from_environ, is_upgrade_request, server_handshake
from .hub import Hub
from .websocket import (
    DEFAULT_CLOSE_TIMEOUT, DEFAULT_MAX_QUEUE, DEFAULT_PING_INTERVAL, DEFAULT_PING_TIMEOUT,
    WebSocket, logger,
)

__all__ = ["WebSocketMiddleware", "DEFAULT_OPTIONS", "check_options"]

DEFAULT_OPTIONS = {
    "allowed_origins": None,  # None: any origin; else a list of exact Origin values
    "max_message_size": DEFAULT_MAX_MESSAGE_SIZE,
    "compression": True,
    "compression_level": DEFAULT_COMPRESSION_LEVEL,  # zlib's, 1 (fastest) to 9 (smallest)
    "ping_interval": DEFAULT_PING_INTERVAL,
    "ping_timeout": DEFAULT_PING_TIMEOUT,
    "close_timeout": DEFAULT_CLOSE_TIMEOUT,
    "websocket_class": None,  # None: the class attribute websocket_class
    # frames in one message; None: one per 64 bytes of max_message_size, at least 1,024
    "max_fragments": None,
    "max_queue": DEFAULT_MAX_QUEUE,  # bytes a slow client may have waiting; None: no limit
    "hub": None,  # a Hub, a backend URL, or None: WSOCKET_HUB, else in memory
}


def check_options(options):
    """Raise TypeError for options the middleware does not know."""
    unknown = set(options) - set(DEFAULT_OPTIONS)
    if unknown:
        raise TypeError("unknown option(s) %s; known: %s" % (
            ", ".join(sorted(unknown)), ", ".join(sorted(DEFAULT_OPTIONS))))


class WebSocketMiddleware:
    """Wraps a WSGI ``app`` and gives it WebSockets.

    ``protocols`` lists the subprotocols the app speaks, in order of
    preference. Options: see ``DEFAULT_OPTIONS``.
    """

    websocket_class = WebSocket

    def __init__(self, app, protocols=None, **options):
        check_options(options)
        self.app = app
        self.protocols = list(protocols) if protocols else []
        settings = dict(DEFAULT_OPTIONS, **options)
        if settings["allowed_origins"] is not None:
            if isinstance(settings["allowed_origins"], str):
                raise TypeError("allowed_origins must be a list of origins, not a string")
            settings["allowed_origins"] = frozenset(settings["allowed_origins"])
        if settings["websocket_class"] is not None:
            self.websocket_class = settings["websocket_class"]
        self.allowed_origins = settings["allowed_origins"]
        self.max_message_size = settings["max_message_size"]
        self.compression = settings["compression"]
        check_compression_level(settings["compression_level"])
        self.compression_level = settings["compression_level"]
        self.ping_interval = settings["ping_interval"]
        self.ping_timeout = settings["ping_timeout"]
        self.close_timeout = settings["close_timeout"]
        self.max_queue = settings["max_queue"]
        self.max_fragments = settings["max_fragments"]
        hub = settings["hub"]
        # Broadcast and rooms: every WebSocket served here is a client of it.
        self.hub = hub if isinstance(hub, Hub) else Hub(hub)

    def __call__(self, environ, start_response):
        headers = headers_from_environ(environ)
        if not is_upgrade_request(headers):
            return self.app(environ, start_response)
        if "wsgi.websocket" in environ:
            # A middleware further out took the connection already (a Flask
            # app with WSocketApp inside, run by wsocket's server, which
            # wraps it once more): the app runs as it is, and the WebSocket
            # is a client of this middleware's hub too while it does.
            return self._inner(environ, start_response)
        try:
            handshake = server_handshake(
                headers, environ.get("REQUEST_METHOD", "GET"),
                request_http_version(environ), self.protocols,
                self.allowed_origins, self.compression)
        except HandshakeError as error:
            # The reason may quote the request's headers (its Origin, say):
            # nothing of those is logged at the default level.
            logger.info("refused WebSocket upgrade of %s: %d", environ.get("PATH_INFO"),
                        error.status)
            logger.debug("refused WebSocket upgrade of %s: %s", environ.get("PATH_INFO"), error)
            return _plain_response(start_response, error.status, str(error), error.headers)
        try:
            transport = take_over(environ, start_response)
        except UnsupportedServer as error:
            logger.error("%s", error)
            return _plain_response(start_response, 501, str(error))
        return self._serve(environ, handshake, transport)

    def _serve(self, environ, handshake, transport):
        """Run the app over the connection ``transport`` (an adapter) took over.

        Returns what the server gets back once the WebSocket ended; by then
        the connection is released and the server writes nothing more on it.
        """
        sock = transport.sock
        response = ["HTTP/1.1 101 Switching Protocols"]
        response.extend("%s: %s" % header for header in handshake.headers)
        websocket = self.websocket_class(
            sock, environ, subprotocol=handshake.subprotocol, deflate=handshake.deflate,
            version=handshake.version, origin=handshake.origin,
            max_message_size=self.max_message_size, ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout, close_timeout=self.close_timeout,
            initial_data=transport.initial_data, max_queue=self.max_queue,
            max_fragments=self.max_fragments, compression_level=self.compression_level)
        # A client that has its 101 is a client of the hub: it joins before
        # the 101 goes, with the send lock held, so that a broadcast made
        # meanwhile waits in its queue and follows the 101.
        with websocket._send_lock:
            self.hub.add(websocket)
            try:
                sock.sendall(("\r\n".join(response) + "\r\n\r\n").encode("latin-1"))
            except OSError as error:
                logger.debug("client left during the handshake: %s", error)
                websocket._mark_closed(1006, "")
                sent = False
            else:
                sent = True
        if websocket._queue:
            websocket._wake_writer()  # a broadcast came meanwhile
        if not sent:
            self.hub.discard(websocket)
            transport.release()
            return transport.response()
        environ["wsgi.websocket"] = websocket
        environ["wsocket.hub"] = self.hub
        environ["wsgi.websocket_version"] = handshake.version
        server = environ.get("wsocket.server")
        if server is not None:
            server.websocket_opened(websocket)

        def end():
            if not websocket.closed:
                try:
                    websocket.close(1000)
                except OSError:
                    pass
            self.hub.discard(websocket)  # it leaves every room, whatever ended it
            if server is not None:
                server.websocket_closed(websocket)
            transport.release()

        detached = []
        detach_from_server = environ.get("wsocket.detach")
        if detach_from_server is not None:
            def detach():
                """The app goes on after it returns: returns ``(reactor, end)``.

                The app waits for the socket with ``reactor`` and calls
                ``end()`` once the WebSocket has ended (see ``app``).
                """
                reactor, give_back = detach_from_server()
                detached.append(True)

                def end_detached():
                    try:
                        end()
                    finally:
                        give_back()
                return reactor, end_detached
            environ["wsocket.detach"] = detach
        try:
            self._run_app(environ, websocket)
        finally:
            if not detached:
                end()
        return transport.response()

    def _inner(self, environ, start_response):
        websocket = environ["wsgi.websocket"]
        hub = self.hub
        if environ.get("wsocket.hub") is hub:
            return self.app(environ, start_response)
        environ["wsocket.hub"] = hub  # the innermost hub: the one this app knows
        hub.add(websocket)
        try:
            result = self.app(environ, start_response)
        except BaseException:
            hub.discard(websocket)
            raise
        return _ThenDiscard(result, hub, websocket)

    def _run_app(self, environ, websocket):
        result = None
        answer = []

        def start_response(status, headers, exc_info=None):
            answer[:] = [status]
            return _discard

        try:
            # The app owns the connection until it returns; whatever HTTP
            # response it makes is discarded, since the 101 went out already.
            result = self.app(environ, start_response)
            for _ in result or ():
                pass
        except ConnectionClosed as closed:
            # The usual end of an app that sends after the peer left.
            logger.debug("WebSocket application for %s ended: %s", websocket.path, closed)
        except Exception:
            logger.exception("error in WebSocket application for %s", websocket.path)
            if not websocket.closed:
                try:
                    websocket.close(1011, "internal error")
                except OSError:
                    pass
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    logger.exception("error closing the WebSocket app's response")
        status = str(answer[0]) if answer else ""
        if status[:1] in ("4", "5"):
            # The app (its router, mostly) refused the request without using
            # the WebSocket: say so, or the client just sees it closed.
            logger.warning("the app answered the WebSocket request for %s with %s instead of "
                           "using environ['wsgi.websocket'] (with Flask or werkzeug routing, "
                           "give the route websocket=True)", websocket.path, status)


def _discard(data):
    pass


class _ThenDiscard:
    """An app's result; closing it takes the WebSocket out of a hub."""

    def __init__(self, result, hub, websocket):
        self._result = result
        self._hub = hub
        self._websocket = websocket

    def __iter__(self):
        return iter(self._result or ())

    def close(self):
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            self._hub.discard(self._websocket)


def _plain_response(start_response, status, message, headers=()):
    from http import HTTPStatus
    body = (message + "\n").encode("utf-8")
    start_response("%d %s" % (status, HTTPStatus(status).phrase), [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
    ] + list(headers))
    return [body]
