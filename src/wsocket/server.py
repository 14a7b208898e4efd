"""A threaded HTTP/1.1 WSGI server that hands sockets over to WebSockets.

One thread per connection. ``FixedHandler`` reads requests off the socket
(keep-alive, chunked or sized bodies) and ``FixedServerHandler`` runs the
WSGI application for one of them. ``WebSocketHandler`` adds the one thing a
WebSocket needs from a server: ``environ["wsocket.takeover"]``, which hands
the raw socket and the bytes already read past the request to the
middleware, after which the server writes nothing more on it.
"""

import functools
import logging
import os
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
import traceback
from email.utils import formatdate
from http import HTTPStatus
from urllib.parse import unquote_to_bytes

from .reactor import Reactor, available as reactor_available
from .websocket import logger

__all__ = [
    "ThreadingWSGIServer", "WSocketServer", "FixedHandler", "FixedServerHandler",
    "WebSocketHandler", "WSocketHandler", "make_server", "run",
]

SERVER_SOFTWARE = "wsocket/0.1"
# Limits of the server, each an option of make_server(), run() and the command line.
SERVER_OPTIONS = {
    "max_connections": 10000,  # open connections at once; past it new ones get a 503
    "request_timeout": 10.0,  # seconds to send a whole request head (slowloris guard)
    "keep_alive_timeout": 15.0,  # seconds an idle keep-alive connection is kept
    "max_request_head": 64 * 1024,  # bytes of request line and headers; past it a 431
}
MAX_REQUEST_HEAD = SERVER_OPTIONS["max_request_head"]
_READ_SIZE = 65536


class BadRequest(Exception):
    """A request we cannot parse; answered with ``status`` and the connection closed."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def _reason(status):
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


# -- reading requests -------------------------------------------------------------

class RequestBody:
    """``wsgi.input``: the request body, sized by Content-Length or chunked.

    Reads from the connection's buffer first, then the socket; never past
    the end of this request, so the next keep-alive request stays intact.
    """

    def __init__(self, handler, length=None, chunked=False):
        self._handler = handler
        self._remaining = length or 0  # of the body, or of the current chunk
        self._chunked = chunked
        self._done = not chunked and not length

    def _fill(self):
        """Make sure some of the body is buffered; False at its end."""
        if self._done:
            return False
        if self._chunked and self._remaining == 0:
            line = self._handler.read_line()
            size_text = line.split(b";", 1)[0].strip()
            try:
                self._remaining = int(size_text, 16)
            except ValueError:
                raise BadRequest("invalid chunk size")
            if self._remaining == 0:
                while self._handler.read_line():  # trailers end with an empty line
                    pass
                self._done = True
                return False
        if not self._handler.buffer:
            self._handler.fill_buffer()
        return True

    def _take(self, limit):
        buffer = self._handler.buffer
        count = min(limit, self._remaining, len(buffer))
        data = bytes(buffer[:count])
        del buffer[:count]
        self._remaining -= count
        if self._remaining == 0:
            if self._chunked:
                self._handler.read_line()  # the CRLF after a chunk
            else:
                self._done = True
        return data

    def read(self, size=-1):
        if size is None or size < 0:
            parts = []
            while self._fill():
                parts.append(self._take(1 << 62))
            return b"".join(parts)
        parts, wanted = [], size
        while wanted > 0 and self._fill():
            data = self._take(wanted)
            parts.append(data)
            wanted -= len(data)
        return b"".join(parts)

    def readline(self, size=-1):
        parts, total = [], 0
        while (size is None or size < 0 or total < size) and self._fill():
            buffer = self._handler.buffer
            end = buffer.find(b"\n", 0, self._remaining)
            limit = end + 1 if end >= 0 else len(buffer)
            if size is not None and size >= 0:
                limit = min(limit, size - total)
            data = self._take(limit)
            parts.append(data)
            total += len(data)
            if data.endswith(b"\n"):
                break
        return b"".join(parts)

    def readlines(self, hint=-1):
        return list(self)

    def __iter__(self):
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    def drain(self, limit):
        """Read the rest of the body; False if more than ``limit`` bytes remain."""
        while self._fill():
            if limit <= 0:
                return False
            limit -= len(self._take(limit))
        return True


class FixedHandler(socketserver.BaseRequestHandler):
    """An HTTP/1.1 connection: reads requests and runs the app for each.

    "Fixed" against ``wsgiref``: HTTP/1.1 with keep-alive and chunked
    bodies, no reverse DNS lookups, an access log through ``wsocket.logger``.
    """

    server_software = SERVER_SOFTWARE
    idle = False  # waiting for a next request: the server may end the connection to stop

    def setup(self):
        self.buffer = bytearray()
        self.taken_over = False
        self.client_address = self.client_address or ("", 0)
        self.connected_at = time.monotonic()
        self.max_request_head = self.server.max_request_head
        context = getattr(self.server, "ssl_context", None)
        if context is not None:
            self.request.settimeout(self.server.request_timeout)
            self.request = context.wrap_socket(self.request, server_side=True)
        self.connection = self.request
        self.server.connection_opened(self)

    def finish(self):
        self.server.connection_closed(self)

    def handle(self):
        first = True
        try:
            while not self.taken_over:
                if not self.server.connection_idle(self):
                    return  # the server is stopping: no next request
                try:
                    environ = self.read_request(first)
                    first = False
                except BadRequest as error:
                    self.send_error(error.status, str(error))
                    return
                finally:
                    self.idle = False
                if environ is None:
                    return
                runner = FixedServerHandler(self, environ)
                if not runner.run(self.server.get_app()):
                    return
        except (ssl.SSLError, ConnectionError, socket.timeout) as error:
            logger.debug("connection from %s ended: %s", self.client_address[0], error)

    # -- low-level reading, shared with RequestBody ------------------------------

    def fill_buffer(self):
        data = self.connection.recv(_READ_SIZE)
        if not data:
            raise ConnectionResetError("connection closed in the middle of a request")
        self.buffer += data

    def read_line(self, limit=MAX_REQUEST_HEAD):
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line = bytes(self.buffer[:end + 1])
                del self.buffer[:end + 1]
                return line.rstrip(b"\r\n")
            if len(self.buffer) > limit:
                raise BadRequest("line too long", 431)
            self.fill_buffer()

    def read_request(self, first=False):
        """Parse the next request head into a WSGI environ; None at a clean end.

        A request head must arrive within ``request_timeout`` seconds, counted
        from the connection's start for its first request (a client that
        connects and sends nothing, or a byte a second, is dropped) and from
        its first byte for the next ones; between requests a connection may
        idle ``keep_alive_timeout`` seconds.
        """
        started = self.connected_at if first else None
        while True:
            blank = len(self.buffer) - len(self.buffer.lstrip(b"\r\n"))
            if blank:
                del self.buffer[:blank]  # RFC 9112 2.2, also when a request follows at once
            end = self.buffer.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self.buffer) > self.max_request_head:
                raise BadRequest("request head larger than %d bytes" % self.max_request_head,
                                 431)
            now = time.monotonic()
            if started is None and self.buffer:
                started = now
            if started is None:
                timeout = self.server.keep_alive_timeout
            else:
                timeout = started + self.server.request_timeout - now
            try:
                if timeout <= 0:
                    raise socket.timeout
                self.connection.settimeout(timeout)
                data = self.connection.recv(_READ_SIZE)
            except socket.timeout:
                if self.buffer:
                    raise BadRequest("request head not complete within %g s"
                                     % self.server.request_timeout, 408)
                return None
            if not data:
                if self.buffer.strip():
                    raise BadRequest("connection closed in the middle of the request head")
                return None
            self.buffer += data
            if not self.buffer.strip():
                self.buffer.clear()  # RFC 9112 2.2: ignore empty lines before a request
        if end > self.max_request_head:
            raise BadRequest("request head larger than %d bytes" % self.max_request_head, 431)
        head = bytes(self.buffer[:end]).lstrip(b"\r\n")
        del self.buffer[:end + 4]
        return self.make_environ(head)

    def make_environ(self, head):
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            raise BadRequest("malformed request line")
        method, target, version = parts
        if version not in ("HTTP/1.0", "HTTP/1.1"):
            raise BadRequest("unsupported HTTP version %s" % version, 505)
        environ = dict(self.server.base_environ)
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip() or line[0] in " \t":
                raise BadRequest("malformed header line")
            key = name.upper().replace("-", "_")
            if "_" in name:
                continue  # X_Forwarded could pose as X-Forwarded: drop it, as gunicorn does
            value = value.strip(" \t")
            if key in headers:
                headers[key] += ("; " if key == "COOKIE" else ",") + value
            else:
                headers[key] = value
        path, _, query = target.partition("?")
        if "://" in path:  # absolute-form request target
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        environ.update({
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query,
            "RAW_URI": target,
            "REQUEST_URI": target,
            "SERVER_PROTOCOL": version,
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_PORT": str(self.client_address[1]),
            "wsgi.errors": sys.stderr,
        })
        for key, value in headers.items():
            if key == "CONTENT_TYPE" or key == "CONTENT_LENGTH":
                environ[key] = value
            else:
                environ["HTTP_" + key] = value
        environ["wsgi.input"] = self.make_body(headers)
        return environ

    def make_body(self, headers):
        encoding = headers.get("TRANSFER_ENCODING", "").lower()
        if encoding:
            if "CONTENT_LENGTH" in headers:
                raise BadRequest("both Transfer-Encoding and Content-Length")
            if encoding != "chunked":
                raise BadRequest("unsupported Transfer-Encoding: %s" % encoding, 501)
            return RequestBody(self, chunked=True)
        length = headers.get("CONTENT_LENGTH")
        if length is None:
            return RequestBody(self)
        if not length.isdigit():
            raise BadRequest("invalid Content-Length")
        return RequestBody(self, int(length))

    def send_error(self, status, message):
        """A plain-text error for a request the app never saw; closes the connection."""
        body = ("%d %s: %s\n" % (status, _reason(status), message)).encode("utf-8")
        head = ("HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                "Content-Length: %d\r\nConnection: close\r\n\r\n" % (status, _reason(status),
                                                                     len(body)))
        try:
            self.connection.sendall(head.encode("latin-1") + body)
        except OSError:
            pass
        self.log_request("-", status, len(body))

    def log_request(self, request_line, status, size):
        logger.info('%s - "%s" %s %s', self.client_address[0], request_line, status,
                    size if size is not None else "-")


class FixedServerHandler:
    """Runs the WSGI application for one request and writes its response.

    Uses Content-Length when the app gives it or the body is one piece,
    chunked encoding otherwise (HTTP/1.1), and closing the connection as a
    last resort (HTTP/1.0). Returns whether the connection may be reused.
    """

    def __init__(self, handler, environ):
        self.handler = handler
        self.environ = environ
        self.method = environ["REQUEST_METHOD"]
        self.status = None
        self.headers = None
        self.headers_sent = False
        self.chunked = False
        self.length = None  # Content-Length the app promised
        self.bytes_sent = 0
        connection = environ.get("HTTP_CONNECTION", "").lower()
        if environ["SERVER_PROTOCOL"] == "HTTP/1.1":
            self.keep_alive = "close" not in connection
        else:
            self.keep_alive = "keep-alive" in connection
        self.http11 = environ["SERVER_PROTOCOL"] == "HTTP/1.1"

    def start_response(self, status, headers, exc_info=None):
        if exc_info:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response() called twice without exc_info")
        if not isinstance(status, str) or len(status) < 4 or not status[:3].isdigit() \
                or status[3] != " ":
            raise ValueError("WSGI status must be a string like '200 OK', not %r" % (status,))
        for header in headers:
            if not (isinstance(header, tuple) and len(header) == 2
                    and isinstance(header[0], str) and isinstance(header[1], str)):
                raise TypeError("WSGI headers must be (str, str) tuples, not %r" % (header,))
        self.status = status
        self.headers = list(headers)
        return self.write

    def run(self, app):
        result = None
        try:
            result = app(self.environ, self.start_response)
            if self.handler.taken_over:
                self._log(101)
                return False
            # A one-piece body gets a Content-Length (not for HEAD: an app
            # that returns no body there does not mean the length is 0).
            if self.status is not None and isinstance(result, (list, tuple)) \
                    and len(result) <= 1 and not self.headers_sent and self.method != "HEAD":
                self._set_length(sum(len(chunk) for chunk in result))
            # PEP 3333 lets a generator call start_response when first iterated.
            for chunk in result:
                if chunk:
                    self.write(chunk)
            if self.handler.taken_over:
                return False
            if self.status is None:
                raise AssertionError("WSGI application returned without start_response()")
            self._finish_body()
        except BadRequest as error:
            # The body the app was reading is malformed: the client's fault.
            logger.info("bad request body for %s %s: %s", self.method,
                        self.environ.get("PATH_INFO"), error)
            if self.headers_sent:
                return False
            self._replace_response(error.status, str(error))
        except Exception:
            if self.handler.taken_over:
                raise
            logger.error("error in WSGI application for %s %s\n%s", self.method,
                         self.environ.get("PATH_INFO"), traceback.format_exc())
            if self.headers_sent:
                return False  # the response is broken: the client sees the connection end
            self._replace_response(500, "Internal Server Error")
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        self._log(int(self.status[:3]))
        if not self.keep_alive:
            return False
        # The next request starts where this body ends; skip what the app left.
        return self.environ["wsgi.input"].drain(self.handler.max_request_head)

    def _replace_response(self, status, message):
        """Answer with a plain-text error instead of what the app did not finish."""
        self.status = "%d %s" % (status, _reason(status))
        self.headers = [("Content-Type", "text/plain; charset=utf-8")]
        self.keep_alive = False
        body = (message + "\n").encode("utf-8")
        self._set_length(len(body))
        self.write(body)

    def _set_length(self, length):
        code = int(self.status[:3])
        if code < 200 or code in (204, 304):
            return  # RFC 9110 8.6: no Content-Length on 1xx and 204; on 304 it is the GET's
        if not any(name.lower() == "content-length" for name, _ in self.headers):
            self.headers.append(("Content-Length", str(length)))

    def _body_allowed(self):
        code = int(self.status[:3])
        return not (code < 200 or code in (204, 304) or self.method == "HEAD")

    def _send_headers(self):
        code = int(self.status[:3])
        names = set()
        for name, value in self.headers:
            lower = name.lower()
            names.add(lower)
            if lower == "content-length":
                self.length = int(value)
            elif lower == "connection" and "close" in value.lower():
                self.keep_alive = False
        if "content-length" not in names and code >= 200 and code not in (204, 304):
            if self.method == "HEAD":
                pass  # no body: the length is unknown, and that is allowed
            elif self.http11:
                self.chunked = True
                self.headers.append(("Transfer-Encoding", "chunked"))
            else:
                self.keep_alive = False
        lines = ["HTTP/1.1 %s" % self.status]
        if "date" not in names:
            lines.append("Date: %s" % formatdate(usegmt=True))
        if "server" not in names:
            lines.append("Server: %s" % self.handler.server_software)
        lines.extend("%s: %s" % header for header in self.headers)
        if not self.keep_alive and "connection" not in names:
            lines.append("Connection: close")
        elif self.keep_alive and not self.http11 and "connection" not in names:
            lines.append("Connection: keep-alive")
        self.headers_sent = True
        self._send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def write(self, data):
        """The WSGI ``write`` callable, also used for the returned iterable."""
        if self.status is None:
            raise AssertionError("write() before start_response()")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("WSGI body chunks must be bytes, not %s" % type(data).__name__)
        if not self.headers_sent:
            self._send_headers()
        if not data or not self._body_allowed():
            return
        if self.chunked:
            self._send(b"%x\r\n" % len(data) + bytes(data) + b"\r\n")
        else:
            self._send(data)
        self.bytes_sent += len(data)

    def _finish_body(self):
        if not self.headers_sent:
            self._set_length(0) if self._body_allowed() else None
            self._send_headers()
        if self.chunked:
            self._send(b"0\r\n\r\n")
        elif self.length is not None and self.bytes_sent < self.length \
                and self._body_allowed():
            logger.error("WSGI application sent %d of the %d bytes its Content-Length "
                         "promised", self.bytes_sent, self.length)
            self.keep_alive = False

    def _send(self, data):
        self.handler.connection.sendall(data)

    def _log(self, status):
        line = "%s %s %s" % (self.method, self.environ.get("REQUEST_URI", ""),
                             self.environ["SERVER_PROTOCOL"])
        self.handler.log_request(line, status, self.bytes_sent)


class WebSocketHandler(FixedHandler):
    """``FixedHandler`` that lets the middleware take the socket over."""

    detached = False  # the app goes on with the socket after the request returned

    def make_environ(self, head):
        environ = super().make_environ(head)
        environ["wsocket.takeover"] = self.take_over
        environ["wsocket.server"] = self.server
        if self.server.parks_idle_websockets:
            environ["wsocket.detach"] = self.detach
        return environ

    def detach(self):
        """Let the taken-over connection outlive this thread; returns ``(reactor, give_back)``.

        The app (the event app) waits for the socket with the server's
        ``reactor``, closes the socket when the WebSocket ends, then calls
        ``give_back()``, which frees the connection's place (max_connections).
        """
        self.detached = True
        return self.server.reactor, functools.partial(self.server.shutdown_request, self.request)

    def take_over(self):
        """Hand the raw socket over; returns ``(socket, bytes read past the request)``.

        The connection leaves HTTP: the handler writes nothing more on it,
        and the one who took it closes it.
        """
        self.taken_over = True
        sock = self.connection
        sock.settimeout(None)  # the WebSocket waits with poll, never with socket timeouts
        leftover = bytes(self.buffer)
        self.buffer.clear()
        return sock, leftover


WSocketHandler = WebSocketHandler


# -- the servers ------------------------------------------------------------------

class ThreadingWSGIServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """A thread-per-connection WSGI server (IPv4 or IPv6, optionally TLS).

    ``stop()`` shuts it down gracefully: no new connections, open
    WebSockets get close code 1001, their threads get a bounded time to end.
    """

    daemon_threads = True
    # The event app's idle WebSockets wait in one epoll loop (``reactor``)
    # instead of each holding a thread; False keeps a thread per connection.
    parks_idle_websockets = reactor_available()
    allow_reuse_address = True
    request_queue_size = 1024
    block_on_close = False
    shutdown_timeout = 5.0

    def __init__(self, server_address, RequestHandlerClass=WebSocketHandler,
                 bind_and_activate=True, ssl_context=None, **limits):
        unknown = set(limits) - set(SERVER_OPTIONS)
        if unknown:
            raise TypeError("unknown server option(s) %s; known: %s" % (
                ", ".join(sorted(unknown)), ", ".join(sorted(SERVER_OPTIONS))))
        for name, default in SERVER_OPTIONS.items():
            value = limits.get(name, default)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError("%s must be a positive number, not %r" % (name, value))
            setattr(self, name, value)
        if ":" in server_address[0]:
            self.address_family = socket.AF_INET6
        self.ssl_context = ssl_context
        self._active = 0  # connections accepted and not yet shut down
        self.application = None
        self.base_environ = {}
        self._connections = set()
        self._websockets = set()
        self._lock = threading.Lock()
        self._thread = None
        self._stopping = False
        self._reactor = None
        super().__init__(server_address, RequestHandlerClass, bind_and_activate)

    @property
    def reactor(self):
        """The epoll loop where the event app's idle connections wait, started on first use."""
        with self._lock:
            if self._reactor is None:
                self._reactor = Reactor()
            return self._reactor

    def server_bind(self):
        if self.address_family == socket.AF_INET6 and hasattr(socket, "IPV6_V6ONLY"):
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()
        host, port = self.server_address[:2]
        self.server_name = host  # no reverse DNS lookup, unlike http.server
        self.server_port = port
        self.setup_environ()

    def setup_environ(self):
        self.base_environ = {
            "SERVER_NAME": self.server_name,
            "SERVER_PORT": str(self.server_port),
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_SOFTWARE": SERVER_SOFTWARE,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https" if self.ssl_context is not None else "http",
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
        }

    def get_app(self):
        return self.application

    def set_app(self, application):
        self.application = application

    @property
    def url(self):
        """The address to reach the server at, e.g. ``http://127.0.0.1:8080/``."""
        host = self.server_name
        if ":" in host:
            host = "[%s]" % host
        scheme = "https" if self.ssl_context is not None else "http"
        return "%s://%s:%d/" % (scheme, host, self.server_port)

    def handle_error(self, request, client_address):
        error = sys.exc_info()[1]
        if isinstance(error, (ssl.SSLError, ConnectionError, socket.timeout)):
            # A client that failed the TLS handshake (in the handler's setup), or left.
            logger.debug("connection from %s ended: %s", client_address[0], error)
            return
        logger.error("error on the connection from %s\n%s", client_address[0],
                     traceback.format_exc())

    # -- accepting, within max_connections --------------------------------------

    def process_request(self, request, client_address):
        with self._lock:
            full = self._active >= self.max_connections
            if not full:
                self._active += 1
        if full:
            self._refuse(request, client_address)
            return
        # If starting the thread fails, socketserver calls shutdown_request(),
        # which gives the place back.
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        # socketserver's, but a detached connection is not closed here: the
        # app that took it closes it, and gives its place back, when it ends.
        detached = False
        try:
            handler = self.RequestHandlerClass(request, client_address, self)
            detached = getattr(handler, "detached", False)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            if not detached:
                self.shutdown_request(request)

    def shutdown_request(self, request):
        with self._lock:
            self._active -= 1
        super().shutdown_request(request)

    def _refuse(self, request, client_address):
        """Past max_connections: a 503 at once, from the accepting thread, never blocking."""
        logger.warning("refused a connection from %s: %d connections open (max_connections)",
                       client_address[0], self.max_connections)
        if self.ssl_context is None:
            body = b"503 Service Unavailable: too many connections\n"
            try:
                request.setblocking(False)
                request.send(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
                             b"Content-Type: text/plain; charset=utf-8\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                             % (len(body), body))
            except OSError:
                pass
        socketserver.TCPServer.shutdown_request(self, request)

    # -- what the handlers and the middleware report ----------------------------

    def connection_opened(self, handler):
        with self._lock:
            self._connections.add(handler)

    def connection_idle(self, handler):
        """A handler is about to wait for a request; False when the server is stopping."""
        with self._lock:
            handler.idle = not self._stopping
            return handler.idle

    def connection_closed(self, handler):
        with self._lock:
            self._connections.discard(handler)

    def websocket_opened(self, websocket):
        with self._lock:
            if self._stopping:
                websocket._start_closing(1001, "server shutting down")
            self._websockets.add(websocket)

    def websocket_closed(self, websocket):
        with self._lock:
            self._websockets.discard(websocket)

    # -- running and stopping -----------------------------------------------------

    def start(self):
        """Serve in a background thread (for tests and embedding); returns self."""
        self._thread = threading.Thread(target=self.serve_forever, name="wsocket-server",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout=None):
        """Stop accepting, close open WebSockets with 1001, wait for their threads.

        Idle keep-alive connections are ended at once; a request in progress
        gets to finish its response (within ``timeout``), then its connection ends.
        """
        timeout = self.shutdown_timeout if timeout is None else timeout
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()
        with self._lock:
            self._stopping = True
            websockets = list(self._websockets)
            idle = [handler for handler in self._connections
                    if handler.idle and not handler.taken_over]
        deadline = time.monotonic() + timeout
        for websocket in websockets:
            # Within the one timeout in all: a client that does not read (its
            # send lock held by a blocked send) is dropped, not waited for.
            websocket._start_closing(1001, "server shutting down",
                                     max(deadline - time.monotonic(), 0))
        for handler in idle:
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        while time.monotonic() < deadline:
            with self._lock:
                if not self._websockets and not self._connections:
                    break
            time.sleep(0.02)
        with self._lock:
            reactor, self._reactor = self._reactor, None
        if reactor is not None:
            reactor.close()  # connections still there end now (1006)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


class WSocketServer(ThreadingWSGIServer):
    """``ThreadingWSGIServer`` whose ``set_app`` wraps the app for WebSockets.

    ``websocket_options`` (max_message_size, ping_interval, ...) go to the
    middleware. An app that already is a ``WSocketApp`` is used as it is.
    """

    websocket_options = {}

    def set_app(self, application):
        from .app import WSocketApp
        if not isinstance(application, WSocketApp):
            application = WSocketApp(application, **self.websocket_options)
        super().set_app(application)


def _ssl_context(certfile, keyfile):
    if certfile is None:
        if keyfile is not None:
            raise ValueError("keyfile given without certfile")
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    return context


def make_server(host="127.0.0.1", port=8080, app=None, server_class=None, handler_class=None,
                certfile=None, keyfile=None, ssl_context=None, **options):
    """A ready server bound to ``host``:``port`` (0 picks a free port) serving ``app``.

    No ``app`` serves the demo. The options of ``SERVER_OPTIONS`` (limits)
    go to the server, all others to ``WSocketApp``.
    """
    from .app import WSocketApp
    from .middleware import check_options
    limits = {name: options.pop(name) for name in list(options) if name in SERVER_OPTIONS}
    websocket_options = options
    server_class = server_class or WSocketServer
    handler_class = handler_class or WebSocketHandler
    if ssl_context is None:
        ssl_context = _ssl_context(certfile, keyfile)
    if app is None:
        app = WSocketApp(**websocket_options)
    elif websocket_options:
        if isinstance(app, WSocketApp):
            raise TypeError("options %s go to WSocketApp(...) itself when you pass one"
                            % ", ".join(sorted(websocket_options)))
        if not issubclass(server_class, WSocketServer):
            raise TypeError("%s does not wrap the app: pass WSocketApp(app, ...) instead"
                            % server_class.__name__)
        check_options(websocket_options)  # reject unknown options now, not at the first request
        server_class = type(server_class.__name__, (server_class,),
                            {"websocket_options": websocket_options})
    server = server_class((host, port), handler_class, ssl_context=ssl_context, **limits)
    server.set_app(app)
    return server


class ServerStartedOnImport(RuntimeError):
    """``run()`` called while the command line imports the app's module.

    ``wsocket mymodule:app`` serves the app itself; a module-level ``run()``
    would start a second server before it (two banners, one Ctrl-C each).
    """


# The "module:app" the command line is importing, while it imports it (see
# __main__.load_app); None the rest of the time.
_command_line_importing = None


def run(app=None, host="127.0.0.1", port=8080, **options):
    """Serve ``app`` (the demo when None) until Ctrl-C or SIGTERM.

    Prints the address it serves on (useful with ``port=0``). Stopping closes
    open WebSockets with 1001 and returns after a bounded wait.
    """
    if _command_line_importing is not None:
        raise ServerStartedOnImport(_command_line_importing)
    _configure_logging()
    server = make_server(host, port, app, **options)
    print("wsocket serving on %s (Ctrl-C to stop)" % server.url, flush=True)

    def terminate(signum, frame):
        raise KeyboardInterrupt

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, terminate)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return server


def _configure_logging():
    """Give the access log a place to go when nobody configured logging."""
    if not logging.getLogger().handlers and not logger.handlers:
        level = os.environ.get("WSOCKET_LOG_LEVEL", "INFO").upper()
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s")
