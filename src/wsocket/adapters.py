"""Taking the connection over from the WSGI server the app runs on.

WSGI has no standard way to leave HTTP, so each server gets one small
adapter class that knows where that server keeps the socket, the bytes it
read past the request, and how to tell it that the request is over.
``take_over(environ, start_response)`` picks the adapter from the environ
and returns it ready: ``sock`` and ``initial_data`` for the WebSocket,
``release()`` once the WebSocket ended, and ``response()``, what the WSGI
callable then returns to the server.

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

import logging
import socket
import sys
import threading

from .websocket import close_socket, finish_connection, logger

__all__ = ["ServerAdapter", "UnsupportedServer", "take_over", "request_http_version",
           "ADAPTERS", "REFUSALS"]

LINGER = 1.0  # seconds release() waits for the client's FIN

USE_INSTEAD = (
    "Run the app on wsocket's own server (wsocket module:app), gunicorn (-k gthread "
    "--threads 100, or -k gevent), werkzeug's threaded server (flask run), gevent's "
    "pywsgi or eventlet's wsgi.")


class UnsupportedServer(Exception):
    """The WSGI server cannot hand its socket over (answered with 501)."""


class ServerAdapter:
    """Takes one connection over from one kind of WSGI server.

    A subclass says how to recognise its server (``detect``), where the
    socket and the bytes read past the request are (``take_over``), and how
    the request ends (``release`` and ``response``).
    """

    def __init__(self, environ, start_response):
        self.environ = environ
        self.start_response = start_response
        self.sock = None
        self.initial_data = b""

    @classmethod
    def detect(cls, environ, start_response):
        raise NotImplementedError

    def take_over(self):
        """Set ``sock`` (blocking, no timeout) and ``initial_data``; returns self."""
        raise NotImplementedError

    def release(self):
        """The WebSocket has ended: end the connection, leave closing it to the server."""
        end_connection(self.sock)

    def response(self):
        """What the WSGI callable returns once the WebSocket ended.

        A 101 status gives the server's access log the right line; writing
        it fails with EPIPE on the shut-down socket, quietly.
        """
        self.start_response("101 Switching Protocols", [])
        return []


def end_connection(sock, linger=LINGER):
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


def buffered_bytes(rfile, sock):
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
        return read1(-1) or b""  # all of the buffer, or one read of the socket
    except (OSError, ValueError):
        return b""
    finally:
        sock.settimeout(None)


# -- servers that hand the socket over ------------------------------------------------

class WSocketAdapter(ServerAdapter):
    """wsocket's own server: ``environ["wsocket.takeover"]()``."""

    @classmethod
    def detect(cls, environ, start_response):
        return "wsocket.takeover" in environ

    def take_over(self):
        self.sock, self.initial_data = self.environ["wsocket.takeover"]()
        return self

    def release(self):
        close_socket(self.sock)  # the server writes nothing after a takeover

    def response(self):
        return []


class WerkzeugAdapter(ServerAdapter):
    """werkzeug's development server (``flask run``): ``environ["werkzeug.socket"]``.

    Its reader is ``wsgi.input``; after the WebSocket, werkzeug's own write
    of the 101 meets EPIPE, which it treats as a dropped connection.
    """

    @classmethod
    def detect(cls, environ, start_response):
        return "werkzeug.socket" in environ

    def take_over(self):
        if not self.environ.get("wsgi.multithread") and not self.environ.get("wsgi.multiprocess"):
            raise UnsupportedServer(
                "WebSocket upgrade refused: werkzeug's development server runs without "
                "threads here, so one WebSocket would stop it from serving anything else; "
                "run it threaded (flask run does; app.run(threaded=True), "
                "run_simple(..., threaded=True)). " + USE_INSTEAD)
        self.sock = self.environ["werkzeug.socket"]
        self.sock.settimeout(None)
        self.initial_data = buffered_bytes(self.environ.get("wsgi.input"), self.sock)
        return self


class _ForwardTo(logging.Handler):
    """Hands every record to another logger, whose handlers format and write it."""

    def __init__(self, target):
        super().__init__()
        self.target = target

    def emit(self, record):
        self.target.handle(record)


_host_log_lock = threading.Lock()
_host_log_checked = False


def use_host_error_log(host_logger_name):
    """Send the ``wsocket`` logger's records to the host server's error log, once.

    Only when nobody configured logging (neither the ``wsocket`` logger nor
    the root logger has a handler), which would otherwise leave Python's
    last resort to print wsocket's warnings bare, with no time or level.
    The host's logger then decides the format, the file and the level
    (gunicorn's --error-logfile and --log-level).
    """
    global _host_log_checked
    if _host_log_checked:
        return
    with _host_log_lock:
        if _host_log_checked:
            return
        _host_log_checked = True
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
    def detect(cls, environ, start_response):
        return "gunicorn.socket" in environ

    def take_over(self):
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
        self.sock = self.environ["gunicorn.socket"]
        self.sock.settimeout(None)
        unreader = getattr(getattr(self.environ.get("wsgi.input"), "reader", None),
                           "unreader", None)
        if unreader is not None:
            buffered = getattr(unreader, "buf", None)
            if buffered is not None:
                self.initial_data = buffered.getvalue()
                buffered.seek(0)
                buffered.truncate()
        return self


class EventletAdapter(ServerAdapter):
    """eventlet's ``eventlet.wsgi``: ``environ["eventlet.input"]``.

    eventlet is told the request is handled (``WSGI_LOCAL.already_handled``),
    so it writes nothing and closes the connection; the connection is marked
    idle so that stopping the server does not wait for the WebSocket.
    """

    @classmethod
    def detect(cls, environ, start_response):
        return "eventlet.input" in environ

    def take_over(self):
        request_input = self.environ["eventlet.input"]
        self.sock = request_input.get_socket()
        self.sock.settimeout(None)
        self.initial_data = buffered_bytes(getattr(request_input, "rfile", None), self.sock)
        set_idle = self.environ.get("eventlet.set_idle")
        if set_idle is not None:
            set_idle()
        return self

    def response(self):
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
    def _handler(cls, start_response):
        pywsgi = sys.modules.get("gevent.pywsgi")
        handler = getattr(start_response, "__self__", None)
        if pywsgi is not None and isinstance(handler, pywsgi.WSGIHandler):
            return handler
        return None

    @classmethod
    def detect(cls, environ, start_response):
        return cls._handler(start_response) is not None \
            or environ.get("SERVER_SOFTWARE", "").startswith("gevent/")

    def take_over(self):
        handler = self._handler(self.start_response)
        if handler is not None:
            self.sock, rfile = handler.socket, handler.rfile
        else:
            rfile = self.environ.get("wsgi.input")
            self.sock = getattr(getattr(rfile, "raw", None), "_sock", None)
            if self.sock is None:
                raise UnsupportedServer(
                    "WebSocket upgrade refused: cannot find the socket of gevent's pywsgi "
                    "behind the middleware wrapped around wsocket; put WSocketApp outermost.")
        self.sock.settimeout(None)
        self.initial_data = buffered_bytes(rfile, self.sock)
        return self


# -- servers that cannot ----------------------------------------------------------------

def _server_of(start_response):
    handler = getattr(start_response, "__self__", None)
    return type(handler).__module__ if handler is not None else ""


REFUSALS = [
    # (test on environ and start_response, what the server is, what to do instead)
    (lambda environ, start_response: "uwsgi.version" in environ,
     "uWSGI",
     "Its websocket API cannot send a close code or reason, answers pings with empty "
     "pongs, negotiates no compression and returns text and binary alike, and the raw "
     "connection loses the bytes uWSGI read past the request. " + USE_INSTEAD),
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
ADAPTERS = [WSocketAdapter, WerkzeugAdapter, EventletAdapter, GeventAdapter, GunicornAdapter]


def request_http_version(environ):
    """The request's HTTP version, as the server would say it if it could.

    eventlet.wsgi puts "HTTP/1.0" in SERVER_PROTOCOL whatever the request
    said; its upgrade requests are taken for what they claim to be.
    """
    if "eventlet.input" in environ:
        return "HTTP/1.1"
    return environ.get("SERVER_PROTOCOL", "HTTP/1.1")


def take_over(environ, start_response):
    """The adapter for the server behind ``environ``, the connection already taken.

    Raises ``UnsupportedServer`` (its message names the server and what to
    use instead) when the server cannot hand its socket over.
    """
    for adapter in ADAPTERS:
        if adapter.detect(environ, start_response):
            return adapter(environ, start_response).take_over()
    for refuses, server, instead in REFUSALS:
        if refuses(environ, start_response):
            break
    else:
        server = environ.get("SERVER_SOFTWARE") or "this WSGI server"
        instead = USE_INSTEAD
    raise UnsupportedServer("WebSocket upgrade refused: %s cannot hand its socket over to a "
                            "WebSocket. %s" % (server, instead))
