"""Taking the connection over from the WSGI server the app runs on.

WSGI has no standard way to leave HTTP, so each server gets one small
adapter class that knows where that server keeps the socket, the bytes it
read past the request, and how to tell it that the request is over.
``find_adapter(environ, start_response)`` picks the adapter from the
environ before the app runs; nothing is taken yet, since the app may answer
the request with an HTTP response instead (a 401, say), which the server
then sends as usual, and ``close_after_response(headers)`` makes the server
end the connection after it. Only when the app accepts the WebSocket does
the middleware call the adapter's ``take_over()``: then ``sock`` and
``initial_data`` are the WebSocket's, ``release()`` is called once the
WebSocket ended, and ``response()`` is what the WSGI callable then returns
to the server. (``take_over(environ, start_response)`` does both steps.)

The rule every adapter keeps: once the WebSocket has ended, not one more
byte goes out on that connection. The WebSocket shuts the write side down
when it closes (its FIN follows the close frame), and ``release()`` waits
for the client's FIN, then shuts the read side too, but leaves the socket
open for its server to close. A server that still tries to write its own
response then gets EPIPE, which every server takes for a client that went
away (nothing on the wire, nothing in the error log), and a server that
tries to read a next request on the connection sees its end.

No server is imported here: an adapter looks at what the running server
already put in the environ (or ``sys.modules``).
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import sys
import threading
from typing import TYPE_CHECKING, Any, Callable

from .websocket import close_socket, finish_connection, logger

if TYPE_CHECKING:
    from ._wsgi_types import Environ, ExcInfo, Headers, StartResponse, Write

__all__ = ["ServerAdapter", "UnsupportedServer", "take_over", "find_adapter",
           "unsupported_server", "request_http_version", "start_response_taken_over",
           "ADAPTERS", "REFUSALS"]

LINGER = 1.0  # seconds release() waits for the client's FIN

USE_INSTEAD = (
    "Run the app on wsocket's own server (wsocket module:app), gunicorn (-k gthread "
    "--threads 100, or -k gevent), werkzeug's threaded server (flask run), gevent's "
    "pywsgi, eventlet's wsgi, or uWSGI (--http-socket with --threads or --gevent).")


class UnsupportedServer(Exception):
    """The WSGI server cannot hand its socket over (answered with 501)."""


class ServerAdapter:
    """Takes one connection over from one kind of WSGI server.

    A subclass says how to recognise its server (``detect``), where the
    socket and the bytes read past the request are (``take_over``), and how
    the request ends (``release`` and ``response``).
    """

    def __init__(self, environ: Environ, start_response: StartResponse) -> None:
        self.environ = environ
        self.start_response = start_response
        # The connection once taken over (under gevent or eventlet a green
        # socket, which quacks like socket.socket), and the bytes read past the request.
        self.sock: socket.socket | None = None
        self.initial_data = b""

    @classmethod
    def detect(cls, environ: Environ, start_response: StartResponse) -> bool:
        raise NotImplementedError

    def take_over(self) -> ServerAdapter:
        """Set ``sock`` (blocking, no timeout) and ``initial_data``; returns self."""
        raise NotImplementedError

    def close_after_response(self, headers: Headers) -> Headers:
        """The headers of an HTTP response to an upgrade request that was not accepted.

        That connection must end after the response (a proxy may be
        tunnelling already, and bytes the client sent on may be frames):
        returns ``headers`` with what makes this server close it.
        """
        if not any(name.lower() == "connection" for name, _ in headers):
            headers = [*headers, ("Connection", "close")]
        return headers

    acts_after_response = False  # whether after_response() does something

    def after_response(self) -> None:
        """That HTTP response is out (its body closed): a server may need a nudge to close."""

    def release(self) -> None:
        """The WebSocket has ended: end the connection, leave closing it to the server."""
        end_connection(self.sock)

    def response(self) -> list[bytes]:
        """What the WSGI callable returns once the WebSocket ended.

        A 101 status gives the server's access log the right line; writing
        it fails with EPIPE on the shut-down socket, quietly.
        """
        self.start_response("101 Switching Protocols", [])
        return []


def start_response_taken_over(status: str, headers: Headers,
                              exc_info: ExcInfo | None = None) -> Write:
    """Stands for the server's ``start_response`` once a WebSocket has the connection.

    Holding the server's own one would keep the request's objects alive for
    as long as the WebSocket is open (for the garbage collector to walk).
    """
    raise RuntimeError("the connection is a WebSocket's now: no HTTP response can go on it")


def end_connection(sock: socket.socket | None, linger: float = LINGER) -> None:
    """FIN to the client, wait (at most ``linger`` s) for its FIN, then shut reading.

    After this the server's writes fail with EPIPE and its reads see the end
    of the connection; the socket object stays open for the server to close.
    """
    if sock is None:
        return
    finish_connection(sock, linger)
    try:
        sock.settimeout(None)
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass


def buffered_bytes(rfile: object, sock: socket.socket) -> bytes:
    """The bytes ``rfile`` (a server's buffered reader) holds past the request.

    Reads what is buffered without ever waiting for more: the socket is
    non-blocking meanwhile, so an empty buffer gives at most what already
    arrived on the socket.
    """
    read1 = getattr(rfile, "read1", None)
    if read1 is None:
        return b""
    sock.setblocking(False)
    try:
        buffered: bytes | None = read1(-1)  # all of the buffer, or one read of the socket
        return buffered or b""
    except (OSError, ValueError):
        return b""
    finally:
        sock.settimeout(None)


# -- servers that hand the socket over ------------------------------------------------

class WSocketAdapter(ServerAdapter):
    """wsocket's own server: ``environ["wsocket.takeover"]()``."""

    @classmethod
    def detect(cls, environ: Environ, start_response: StartResponse) -> bool:
        return "wsocket.takeover" in environ

    def take_over(self) -> ServerAdapter:
        self.sock, self.initial_data = self.environ["wsocket.takeover"]()
        # No response goes on the connection now (response() is empty): the
        # server's start_response, which holds the request's objects, may go.
        self.start_response = start_response_taken_over
        return self

    def release(self) -> None:
        if self.sock is not None:
            close_socket(self.sock)  # the server writes nothing after a takeover

    def response(self) -> list[bytes]:
        return []


class WerkzeugAdapter(ServerAdapter):
    """werkzeug's development server (``flask run``): ``environ["werkzeug.socket"]``.

    Its reader is ``wsgi.input``; after the WebSocket, werkzeug's own write
    of the 101 meets EPIPE, which it treats as a dropped connection.
    """

    @classmethod
    def detect(cls, environ: Environ, start_response: StartResponse) -> bool:
        return "werkzeug.socket" in environ

    def take_over(self) -> ServerAdapter:
        if not self.environ.get("wsgi.multithread") and not self.environ.get("wsgi.multiprocess"):
            raise UnsupportedServer(
                "WebSocket upgrade refused: werkzeug's development server runs without "
                "threads here, so one WebSocket would stop it from serving anything else; "
                "run it threaded (flask run does; app.run(threaded=True), "
                "run_simple(..., threaded=True)). " + USE_INSTEAD)
        sock: socket.socket = self.environ["werkzeug.socket"]
        sock.settimeout(None)
        self.sock = sock
        self.initial_data = buffered_bytes(self.environ.get("wsgi.input"), sock)
        return self

    def close_after_response(self, headers: Headers) -> Headers:
        return headers  # werkzeug closes every connection after its response, and says so


class _ForwardTo(logging.Handler):
    """Hands every record to another logger, whose handlers format and write it."""

    def __init__(self, target: logging.Logger) -> None:
        super().__init__()
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        self.target.handle(record)


_host_log_lock = threading.Lock()
_host_log_checked = threading.Event()  # set once use_host_error_log() decided


def use_host_error_log(host_logger_name: str) -> None:
    """Send the ``wsocket`` logger's records to the host server's error log, once.

    Only when nobody configured logging (neither the ``wsocket`` logger nor
    the root logger has a handler), which would otherwise leave Python's
    last resort to print wsocket's warnings bare, with no time or level.
    The host's logger then decides the format, the file and the level
    (gunicorn's --error-logfile and --log-level).
    """
    if _host_log_checked.is_set():
        return
    with _host_log_lock:
        if _host_log_checked.is_set():
            return
        _host_log_checked.set()
        host = logging.getLogger(host_logger_name)
        if logger.handlers or logging.getLogger().handlers or not host.handlers:
            return
        logger.addHandler(_ForwardTo(host))
        if logger.level == logging.NOTSET:
            logger.setLevel(host.getEffectiveLevel())
        logger.propagate = False


class GunicornAdapter(ServerAdapter):
    """gunicorn's gthread and gevent workers: ``environ["gunicorn.socket"]``.

    (Also the eventlet worker of the gunicorn releases that had one; untested.)
    The bytes read past the request wait in the request parser's buffer,
    reached through ``wsgi.input``. After the WebSocket, gunicorn's write of
    the 101 meets EPIPE, which it logs at debug level and then closes.
    """

    @classmethod
    def detect(cls, environ: Environ, start_response: StartResponse) -> bool:
        return "gunicorn.socket" in environ

    def take_over(self) -> ServerAdapter:
        use_host_error_log("gunicorn.error")
        if not self.environ.get("wsgi.multithread"):
            # Only the sync worker leaves wsgi.multithread False: it serves one
            # request per process and kills a worker busy longer than --timeout.
            raise UnsupportedServer(
                "WebSocket upgrade refused: gunicorn's sync worker cannot hand its socket "
                "over to a WebSocket that lives longer than --timeout (it kills the worker "
                "and the connection with it), and it serves one connection per process. "
                "Run gunicorn -k gthread --threads 100 (a thread per connection) or "
                "-k gevent.")
        sock: socket.socket = self.environ["gunicorn.socket"]
        sock.settimeout(None)
        self.sock = sock
        unreader = getattr(getattr(self.environ.get("wsgi.input"), "reader", None),
                           "unreader", None)
        if unreader is not None:
            buffered = getattr(unreader, "buf", None)
            if buffered is not None:
                self.initial_data = buffered.getvalue()
                buffered.seek(0)
                buffered.truncate()
        return self

    def close_after_response(self, headers: Headers) -> Headers:
        # gunicorn drops an app's Connection header (hop-by-hop); its
        # response object, behind start_response, can be told to close.
        force_close = getattr(getattr(self.start_response, "__self__", None), "force_close",
                              None)
        if force_close is not None:
            force_close()
        return headers


class EventletAdapter(ServerAdapter):
    """eventlet's ``eventlet.wsgi``: ``environ["eventlet.input"]``.

    eventlet is told the request is handled (``WSGI_LOCAL.already_handled``),
    so it writes nothing and closes the connection; the connection is marked
    idle so that stopping the server does not wait for the WebSocket.
    """

    @classmethod
    def detect(cls, environ: Environ, start_response: StartResponse) -> bool:
        return "eventlet.input" in environ

    def take_over(self) -> ServerAdapter:
        request_input = self.environ["eventlet.input"]
        sock: socket.socket = request_input.get_socket()
        sock.settimeout(None)
        self.sock = sock
        self.initial_data = buffered_bytes(getattr(request_input, "rfile", None), sock)
        set_idle = self.environ.get("eventlet.set_idle")
        if set_idle is not None:
            set_idle()
        return self

    def close_after_response(self, headers: Headers) -> Headers:
        # eventlet sends the app's Connection: close but keeps the connection:
        # see after_response().
        return super().close_after_response(headers)

    acts_after_response = True

    def after_response(self) -> None:
        # The read side is shut: eventlet finds no next request, and closes.
        try:
            self.environ["eventlet.input"].get_socket().shutdown(socket.SHUT_RD)
        except OSError:
            pass

    def response(self) -> list[bytes]:
        self.start_response("101 Switching Protocols", [])  # for the access log only
        wsgi = sys.modules.get("eventlet.wsgi")
        if wsgi is not None:
            wsgi.WSGI_LOCAL.already_handled = True
        return []


class GeventAdapter(ServerAdapter):
    """gevent's ``pywsgi.WSGIServer`` (also gunicorn's gevent_pywsgi worker).

    pywsgi puts no socket in the environ. Its handler is the object behind
    ``start_response``; when a middleware wrapped that, the reader pywsgi
    gives an upgrade request as ``wsgi.input`` leads to the socket. All of
    it runs in the request's own greenlet, and the WebSocket waits through
    gevent, so the other greenlets go on meanwhile.
    """

    @classmethod
    def _handler(cls, start_response: StartResponse) -> Any:
        """pywsgi's handler of the request, if ``start_response`` is its method; else None."""
        pywsgi = sys.modules.get("gevent.pywsgi")
        handler = getattr(start_response, "__self__", None)
        if pywsgi is not None and isinstance(handler, pywsgi.WSGIHandler):
            return handler
        return None

    @classmethod
    def detect(cls, environ: Environ, start_response: StartResponse) -> bool:
        software: str = environ.get("SERVER_SOFTWARE", "")
        return cls._handler(start_response) is not None or software.startswith("gevent/")

    def take_over(self) -> ServerAdapter:
        handler = self._handler(self.start_response)
        sock: socket.socket | None
        if handler is not None:
            sock, rfile = handler.socket, handler.rfile
        else:
            rfile = self.environ.get("wsgi.input")
            sock = getattr(getattr(rfile, "raw", None), "_sock", None)
            if sock is None:
                raise UnsupportedServer(
                    "WebSocket upgrade refused: cannot find the socket of gevent's pywsgi "
                    "behind the middleware wrapped around wsocket; put WSocketApp outermost.")
        sock.settimeout(None)
        self.sock = sock
        self.initial_data = buffered_bytes(rfile, sock)
        return self


class UwsgiAdapter(ServerAdapter):
    """uWSGI: the connection is ``uwsgi.connection_fd()``.

    wsocket's own protocol runs over a duplicate of that descriptor (a
    gevent socket under ``--gevent``); uWSGI's websocket API is never used.
    uWSGI writes a response only for a request whose ``start_response`` was
    called, and ``response()`` does not call it: once the app returns, uWSGI
    closes its descriptor and has written nothing. The bytes uWSGI read past
    the request head stay in its parser, out of reach: a conforming client
    sends no frame before it has the 101 (RFC 6455, 4.1), so there are none.

    The descriptor leads to the client with ``--http-socket``, to nginx with
    ``--socket`` (``uwsgi_pass`` passes the 101 and then the bytes of both
    ways, as ``proxy_pass`` does), or to uWSGI's ``--http`` router, which
    passes them only with ``--http-websockets``. Refused: the router without
    it, ``--https-socket`` and FastCGI sockets (uWSGI wraps what goes over
    them), ``--async`` without gevent, and a uWSGI that serves one request
    at a time.
    """

    INSTEAD = ("Run uwsgi --http-socket 127.0.0.1:8000 --threads 100 (or --gevent 1000), "
               "behind nginx with proxy_pass or uwsgi_pass (see docs/deploying.md).")
    # Listening-socket options whose connections carry something else than
    # the client's bytes as they are: TLS that uWSGI ends, or FastCGI records.
    WRAPPED_SOCKET_OPTIONS: dict[str, str] = {
        "https-socket": "uWSGI's --https-socket ends TLS itself, inside uWSGI",
        "fastcgi-socket": "FastCGI wraps every byte of the connection in its records",
        "fastcgi-nph-socket": "FastCGI wraps every byte of the connection in its records",
    }
    SOCKET_OPTIONS: tuple[str, ...] = (
        "http-socket", "http11-socket", "socket", "uwsgi-socket", "suwsgi-socket",
        "scgi-socket", "scgi-nph-socket", "raw-socket", "shared-socket",
        *WRAPPED_SOCKET_OPTIONS)

    def __init__(self, environ: Environ, start_response: StartResponse) -> None:
        super().__init__(environ, start_response)
        # uWSGI finds the request by the thread (or greenlet) that asks: the
        # descriptor is read here, in the request's own thread, for a
        # take_over() that may come later.
        self.uwsgi = sys.modules.get("uwsgi")  # the module uWSGI gives its apps
        self.fd = -1  # none
        if self.uwsgi is not None:
            try:
                self.fd = self.uwsgi.connection_fd()
            except Exception:
                pass

    @classmethod
    def detect(cls, environ: Environ, start_response: StartResponse) -> bool:
        return "uwsgi.version" in environ and "uwsgi" in sys.modules

    def take_over(self) -> ServerAdapter:
        self._check_setup()
        duplicate = os.dup(self.fd)
        try:
            sock = self._socket_class()(fileno=duplicate)
        except BaseException:
            os.close(duplicate)
            raise
        sock.settimeout(None)
        self.sock = sock
        return self

    def release(self) -> None:
        """FIN, the client's FIN, then our descriptor closes; uWSGI closes its own."""
        if self.sock is not None:
            end_connection(self.sock)
            self.sock.close()

    def response(self) -> list[bytes]:
        # No start_response: uWSGI has no headers to write, and writes nothing.
        # (Its request log shows such a request as a 500 of 0 bytes.)
        return []

    def _socket_class(self) -> type[socket.socket]:
        if self._option("gevent") is not None or getattr(self.uwsgi, "loop", None) in (
                b"gevent", "gevent"):
            # uWSGI's gevent loop runs each request in a greenlet without
            # patching the standard library: the socket must be gevent's.
            green_socket = importlib.import_module("gevent.socket")
            green_class: type[socket.socket] = green_socket.socket  # quacks like one
            return green_class
        return socket.socket

    def _option(self, name: str) -> Any:
        """uWSGI's option ``name``: its value (a list when given more than once), or None."""
        options = getattr(self.uwsgi, "opt", None) or {}
        return options.get(name)

    def _check_setup(self) -> None:
        """Raise UnsupportedServer when this request's connection cannot carry a WebSocket."""
        if self.fd is None or self.fd < 0:
            raise UnsupportedServer(
                "WebSocket upgrade refused: uWSGI gave no connection for this request "
                "(uwsgi.connection_fd() failed). " + self.INSTEAD)
        router = self.environ.get("UWSGI_ROUTER")
        if router is not None and not (router == "http" and self._option("http-websockets")):
            raise UnsupportedServer(
                "WebSocket upgrade refused: uWSGI's --%s router sits between the client and "
                "this worker and, without --http-websockets, passes nothing the client sends "
                "after the request on to the app. Add --http-websockets, or better: %s"
                % (router, self.INSTEAD))
        wrapped = self._listener_option()
        if wrapped in self.WRAPPED_SOCKET_OPTIONS:
            raise UnsupportedServer(
                "WebSocket upgrade refused: this request came over uWSGI's --%s, and %s: "
                "the connection cannot be handed over. %s"
                % (wrapped, self.WRAPPED_SOCKET_OPTIONS[wrapped], self.INSTEAD))
        if self._option("async") is not None and self._socket_class() is socket.socket:
            raise UnsupportedServer(
                "WebSocket upgrade refused: uWSGI's --async mode switches between requests "
                "only inside uWSGI's own calls, so one WebSocket would stop every other "
                "request of its process. Use --gevent N (or --threads N) instead.")
        cores = getattr(self.uwsgi, "cores", 1) or 1
        processes = getattr(self.uwsgi, "numproc", 1) or 1
        if cores == 1 and processes == 1:
            raise UnsupportedServer(
                "WebSocket upgrade refused: uWSGI runs one process with one thread here, so "
                "one WebSocket would stop it from serving anything else. Run it with "
                "--threads 100 (a thread per connection), --gevent 1000, or --processes N.")

    def _listener_option(self) -> str | None:
        """The option that declared the listening socket of this connection, if found."""
        declared: list[tuple[str, str]] = []
        for name in self.SOCKET_OPTIONS:
            values = self._option(name)
            for value in values if isinstance(values, list) else [values]:
                if value is not None and value is not True:
                    if isinstance(value, bytes):
                        value = value.decode("utf-8", "replace")
                    declared.append((name, str(value)))
        kinds = {name for name, _ in declared}
        if len(kinds) == 1:
            return kinds.pop()
        try:
            duplicate = os.dup(self.fd)
        except OSError:
            return None
        try:
            connection = socket.socket(fileno=duplicate)
        except (OSError, ValueError):
            os.close(duplicate)
            return None
        with connection:
            try:
                local = connection.getsockname()
            except OSError:
                return None
        for name, address in declared:
            if _same_address(address, local):
                return name
        return None


def _same_address(declared: str, local: tuple[Any, ...] | str | bytes) -> bool:
    """Whether uWSGI's socket address ``declared`` ("host:port", ":port", a path) is ``local``."""
    if isinstance(local, tuple):  # TCP: the port, and the host when one is named
        host, colon, port = declared.rpartition(":")
        if not colon or not port.isdigit() or int(port) != local[1]:
            return False
        host = host.strip("[]")
        return host in ("", "0.0.0.0", "::", "*") or _resolves_to(host, local[0])
    if isinstance(local, bytes):
        local = local.decode("utf-8", "replace")
    if declared.startswith("@"):  # an abstract unix socket
        declared = "\0" + declared[1:]
    return declared == local


def _resolves_to(host: str, address: str) -> bool:
    try:
        return any(info[4][0] == address for info in socket.getaddrinfo(host, None))
    except (OSError, UnicodeError):
        return False


# -- servers that cannot ----------------------------------------------------------------

def _server_of(start_response: StartResponse) -> str:
    """The module of the object ``start_response`` is a method of ("" if none)."""
    handler: object = getattr(start_response, "__self__", None)
    return type(handler).__module__ if handler is not None else ""


# (test on environ and start_response, what the server is, what to do instead)
Refusal = tuple[Callable[["Environ", "StartResponse"], bool], str, str]

REFUSALS: list[Refusal] = [
    (lambda environ, start_response: _server_of(start_response).startswith("django."),
     "Django's runserver",
     "In development run wsocket mysite.wsgi:application (or gunicorn -k gthread "
     "--threads 100 mysite.wsgi) instead of manage.py runserver."),
    (lambda environ, start_response: environ.get("SERVER_SOFTWARE", "").startswith("waitress"),
     "waitress",
     "waitress runs the app apart from the connection and buffers its responses. "
     + USE_INSTEAD),
    (lambda environ, start_response: _server_of(start_response).startswith("wsgiref.")
     or environ.get("SERVER_SOFTWARE", "").startswith("WSGIServer/"),
     "wsgiref",
     "Use wsocket's server instead: wsocket.make_server() or wsocket module:app. "
     + USE_INSTEAD),
]

# Tried in order: the first whose detect() is true takes the connection over.
ADAPTERS: list[type[ServerAdapter]] = [
    WSocketAdapter, WerkzeugAdapter, EventletAdapter, GeventAdapter, GunicornAdapter,
    UwsgiAdapter]


def request_http_version(environ: Environ) -> str:
    """The request's HTTP version, as the server would say it if it could.

    eventlet.wsgi puts "HTTP/1.0" in SERVER_PROTOCOL whatever the request
    said; its upgrade requests are taken for what they claim to be.
    """
    if "eventlet.input" in environ:
        return "HTTP/1.1"
    version: str = environ.get("SERVER_PROTOCOL", "HTTP/1.1")
    return version


def find_adapter(environ: Environ, start_response: StartResponse) -> ServerAdapter | None:
    """The adapter for the server behind ``environ`` (nothing taken yet), or None.

    None: the server cannot hand its socket over (``unsupported_server``
    says why); it can still send an HTTP response to the upgrade request.
    """
    for adapter in ADAPTERS:
        if adapter.detect(environ, start_response):
            return adapter(environ, start_response)
    return None


def take_over(environ: Environ, start_response: StartResponse) -> ServerAdapter:
    """The adapter for the server behind ``environ``, the connection already taken.

    Raises ``UnsupportedServer`` (its message names the server and what to
    use instead) when the server cannot hand its socket over.
    """
    adapter = find_adapter(environ, start_response)
    if adapter is None:
        raise unsupported_server(environ, start_response)
    return adapter.take_over()


def unsupported_server(environ: Environ, start_response: StartResponse) -> UnsupportedServer:
    """The ``UnsupportedServer`` error for a server no adapter knows, naming what to use."""
    server: str = environ.get("SERVER_SOFTWARE") or "this WSGI server"
    instead = USE_INSTEAD
    for refuses, refused_server, refused_instead in REFUSALS:
        if refuses(environ, start_response):
            server, instead = refused_server, refused_instead
            break
    return UnsupportedServer("WebSocket upgrade refused: %s cannot hand its socket over to a "
                             "WebSocket. %s" % (server, instead))
