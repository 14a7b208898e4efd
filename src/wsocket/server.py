"""A threaded HTTP/1.1 WSGI server that hands sockets over to WebSockets.

One thread per connection. ``FixedHandler`` reads requests off the socket
(keep-alive, chunked or sized bodies) and ``FixedServerHandler`` runs the
WSGI application for one of them. ``WebSocketHandler`` adds the one thing a
WebSocket needs from a server: ``environ["wsocket.takeover"]``, which hands
the raw socket and the bytes already read past the request to the
middleware, after which the server writes nothing more on it.
"""

from __future__ import annotations

import functools
import logging
import math
import operator
import os
import selectors
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
import traceback
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import unquote_to_bytes

from ._sockets import READ_SIZE, WakeUpPair, recv_nowait_in_loop, reserve_descriptors
from ._transport import green_library, no_delay
from .protocol.codes import CloseCode
from .protocol.frames import load_accelerator
from .protocol.http11 import (
    BodyTooLarge,
    ChunkedDecoder,
    HTTPError,
    InvalidResponse,
    RequestHead,
    check_response_header,
    check_response_status,
    find_head_end,
    parse_head,
    status_phrase,
)
from .reactor import Reactor
from .reactor import available as reactor_available
from .websocket import logger

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from types import FrameType

    from ._wsgi_types import Environ, ExcInfo, Headers, StartResponse, Write, WSGIApp
    from .app import WSocketApp
    from .websocket import WebSocket

__all__ = [
    "ThreadingWSGIServer", "WSocketServer", "FixedHandler", "FixedServerHandler",
    "WebSocketHandler", "WSocketHandler", "make_server", "run",
]

SERVER_SOFTWARE = "wsocket/0.1"
MAX_REQUEST_HEAD = 64 * 1024  # the default of max_request_head
# Descriptors a server holds beside one per connection (its listening socket,
# epoll, wake-ups, log files, an app's own): the room kept for them.
DESCRIPTORS_BESIDE_CONNECTIONS = 64
# Limits of the server, each an option of make_server(), run() and the command line.
SERVER_OPTIONS: dict[str, float | None] = {
    "max_connections": 10000,  # open connections at once; past it new ones get a 503
    "request_timeout": 10.0,  # seconds to send a whole request head (slowloris guard)
    "keep_alive_timeout": 15.0,  # seconds an idle keep-alive connection is kept
    "max_request_head": MAX_REQUEST_HEAD,  # bytes of request line and headers; past it a 431
    "body_timeout": 10.0,  # seconds to wait for more of a request body; past it a 408
    "max_body_size": 64 * 1024 * 1024,  # bytes of a request body; past it a 413 (None: any)
}
# Options that may be None (no limit).
_OPTIONAL_OPTIONS = {"max_body_size"}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class BadRequest(HTTPError):
    """A request we cannot parse; answered with ``status`` and the connection closed."""


class BodyTimeout(HTTPError):
    """The rest of a request body did not come within ``body_timeout``."""

    status = 408


class IncompleteBody(HTTPError):
    """The client closed the connection before the end of the body it announced."""


_ServerSelector = getattr(selectors, "PollSelector", selectors.SelectSelector)
# How a client's connection ends under the handler: logged at debug, not an error.
_CONNECTION_ENDED = (ssl.SSLError, ConnectionError, socket.timeout)


class _HeadNotYet(Exception):
    """Raised by a read of what has arrived (the reactor's): the request head is not all here.

    ``deadline``: the monotonic time by which it must be, or the connection ends.
    """

    def __init__(self, deadline: float) -> None:
        super().__init__(deadline)
        self.deadline = deadline


class _DateHeader:
    """The Date header's value, formatted once a second rather than once a response."""

    def __init__(self) -> None:
        self._second: int | None = None
        self._value = ""

    def __call__(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._value = formatdate(second, usegmt=True)
            self._second = second
        return self._value


_date = _DateHeader()


# -- reading requests -------------------------------------------------------------

_environ_keys: dict[str, str] = {}  # header name -> environ key, for the names seen most


def _environ_key(name: str) -> str:
    """``HTTP_X_NAME`` for ``X-Name``; "" for a name to drop."""
    if "_" in name:
        key = ""  # X_Forwarded could pose as X-Forwarded: dropped, as gunicorn does
    else:
        key = name.upper().replace("-", "_")  # ASCII: a name is a token
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
    if len(_environ_keys) < 1024:
        _environ_keys[name] = key
    return key


_header_name_of = operator.itemgetter(0)
_header_value_of = operator.itemgetter(1)


def _add_headers_one_by_one(environ: Environ, headers: list[tuple[str, str]]) -> None:
    """The request's headers into ``environ``: names made keys (remembered), repeats joined."""
    for name, value in headers:
        key = _environ_keys.get(name)
        if key is None:
            key = _environ_key(name)
        if not key:
            continue
        if key in environ:
            environ[key] += ("; " if key == "HTTP_COOKIE" else ",") + value
        else:
            environ[key] = value


def add_request(environ: Environ, request: RequestHead) -> None:
    """A parsed request into ``environ``: its line's keys and its headers (not the body)."""
    environ["REQUEST_METHOD"] = request.method
    environ["SCRIPT_NAME"] = ""
    path = request.path
    # Percent-decoded; a path without "%" (most) is its own decoding.
    environ["PATH_INFO"] = (unquote_to_bytes(path).decode("latin-1")
                            if "%" in path or not path.isascii() else path)
    environ["QUERY_STRING"] = request.query
    environ["RAW_URI"] = environ["REQUEST_URI"] = request.target
    environ["SERVER_PROTOCOL"] = request.version
    headers = request.headers
    keys: list[Any] = list(map(_environ_keys.get, map(_header_name_of, headers)))
    if None in keys or "" in keys or len(set(keys)) < len(keys):
        _add_headers_one_by_one(environ, headers)
    else:
        # Every name known, none to drop, none twice: all of them in one C call.
        environ.update(zip(keys, map(_header_value_of, headers)))
    if request.content_length is not None:
        environ["CONTENT_LENGTH"] = str(request.content_length)
    if request.host is not None:
        environ["HTTP_HOST"] = request.host  # absolute-form: its authority wins


# The usual request head (HTTP/1.1, no body, every header name in _environ_keys and
# once) into an environ in one C call: what add_request and parse_head would make of
# it, and whether the connection stays open; None for any other head. A Python turn
# per step was about a tenth of what opening a WebSocket costs.
request_environ: Callable[[bytes, Environ, dict[str, str]], bool | None] | None = getattr(
    load_accelerator(), "request_environ", None)

if TYPE_CHECKING:
    from . import _speedups

    _check_request_environ: Callable[[bytes, Environ, dict[str, str]], bool | None] = \
        _speedups.request_environ


class RequestBody:
    """``wsgi.input``: the request body, sized by Content-Length or chunked.

    Reads from the connection's buffer first, then the socket; never past
    the end of this request, so the next keep-alive request stays intact.
    A malformed, late (``body_timeout``), cut or too large body raises an
    ``HTTPError``, which the server answers (400, 408, 413) before closing.
    """

    def __init__(self, handler: FixedHandler | None, length: int | None = None,
                 chunked: bool = False, expect_continue: bool = False) -> None:
        self._pending = bytearray()  # decoded, not yet read by the app
        self._remaining = length or 0  # of a Content-Length body
        self._decoder = ChunkedDecoder(handler.max_request_head) \
            if chunked and handler is not None else None
        self._done = not self._decoder and not length
        # A request without a body reads nothing off the connection: its body
        # does not keep the connection's handler (see NO_BODY).
        self._handler = None if self._done else handler
        self._received = 0
        self._expect_continue = expect_continue
        self.failed = False  # an HTTPError was raised: the connection's framing is lost

    @property
    def awaits_continue(self) -> bool:
        """The client asked for ``100 Continue`` and has not had it."""
        return self._expect_continue

    @property
    def complete(self) -> bool:
        """The whole body was read off the connection (what the app left is buffered)."""
        return self._done

    def _more(self) -> bool:
        """Append some more of the body to ``_pending``; False at its end."""
        handler = self._handler
        if self._done or handler is None:
            return False
        if self._expect_continue:
            self._expect_continue = False
            handler.send_continue()
        try:
            while True:
                if self._decoder is not None:
                    data = self._decoder.decode(handler.buffer, READ_SIZE)
                    if data is None:
                        handler.fill_body_buffer()
                        continue
                    if self._decoder.done:
                        self._done = True
                        if not data:
                            return False
                else:
                    if not handler.buffer:
                        handler.fill_body_buffer()
                    buffer = handler.buffer
                    count = min(self._remaining, len(buffer))
                    data = bytes(buffer[:count])
                    del buffer[:count]
                    self._remaining -= count
                    if self._remaining == 0:
                        self._done = True
                self._received += len(data)
                limit = handler.server.max_body_size
                if limit is not None and self._received > limit:
                    raise BodyTooLarge("request body larger than %d bytes" % limit)
                self._pending += data
                return True
        except HTTPError:
            self.failed = True
            self._done = True
            raise

    def _take(self, count: int) -> bytes:
        data = bytes(self._pending[:count])
        del self._pending[:count]
        return data

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            while self._more():
                pass
            return self._take(len(self._pending))
        while len(self._pending) < size and self._more():
            pass
        return self._take(size)

    def readline(self, size: int | None = -1) -> bytes:
        start = 0
        while True:
            end = self._pending.find(b"\n", start)
            if end >= 0:
                count = end + 1
                break
            if size is not None and 0 <= size <= len(self._pending):
                count = size
                break
            start = len(self._pending)
            if not self._more():
                count = len(self._pending)
                break
        if size is not None and size >= 0:
            count = min(count, size)
        return self._take(count)

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(self)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    def drain(self, limit: int) -> bool:
        """Read the rest of the body; False if more than ``limit`` bytes remain."""
        self._pending.clear()
        while self._more():
            limit -= len(self._pending)
            self._pending.clear()
            if limit < 0:
                return False
        return True


NO_BODY = RequestBody(None)
"""``wsgi.input`` of every request without a body: empty, and never changed by reading it.

One for all, rather than one each: a WebSocket keeps its environ for as long
as it is open, and each object kept is one more for the garbage collector to
walk (with thousands of connections, a good part of what opening one costs).
"""


class FixedHandler(socketserver.BaseRequestHandler):
    """An HTTP/1.1 connection: reads requests and runs the app for each.

    "Fixed" against ``wsgiref``: HTTP/1.1 with keep-alive and chunked
    bodies, no reverse DNS lookups, an access log through ``wsocket.logger``.
    ``socketserver`` makes one per connection, in that connection's thread;
    a malformed request gets a plain-text 4xx and the connection is closed,
    and no client input raises out of it. Subclass ``WebSocketHandler``
    rather than this class, so that WebSockets keep working.
    What the bytes mean is ``wsocket.protocol.http11``'s business; this
    class only reads them off the socket.
    """

    server: ThreadingWSGIServer
    server_software = SERVER_SOFTWARE
    idle = False  # waiting for a next request: the server may end the connection to stop
    keep_alive = True  # what the last request asked for (set by make_environ)

    def __init__(self, request: Any, client_address: Any, server: ThreadingWSGIServer,
                 in_loop: bool = False) -> None:
        """Serve the connection to its end in this thread; with ``in_loop``, only set it up.

        A handler made ``in_loop`` is driven by the server's reactor (see
        ``WebSocketHandler.serve_arrived``) and returns at once.
        """
        if not in_loop:
            super().__init__(request, client_address, server)  # setup, handle, finish
            return
        self.request = request
        self.client_address = client_address
        self.server = server
        self.setup()
        self.start_next_request(first=True)
        server.connection_idle(self)  # waiting for its request: stop() may end it

    def setup(self) -> None:
        self.buffer = bytearray()
        self.taken_over = False
        self.response_started = False  # a response head is on the wire: no 100 Continue
        self.client_address = self.client_address or ("", 0)
        self.connected_at = time.monotonic()
        self.max_request_head = self.server.max_request_head
        self.no_delay = False  # TCP_NODELAY set (before the first response: see send())
        context = getattr(self.server, "ssl_context", None)
        if context is not None:
            self.request.settimeout(self.server.request_timeout)
            self.request = context.wrap_socket(self.request, server_side=True)
        self.connection: socket.socket = self.request
        # A plain socket still in blocking mode can be read without waiting
        # (MSG_DONTWAIT): the request is most often there already, and that
        # read spares the poll() a socket timeout costs first (see receive()).
        # Not TLS (no flags there) nor green sockets (they would wait anyway).
        self.reads_without_waiting = (
            context is None and isinstance(self.connection, socket.socket)
            and hasattr(socket, "MSG_DONTWAIT") and green_library(self.connection) is None
            and self.connection.gettimeout() is None)
        self.server.connection_opened(self)

    def finish(self) -> None:
        self.server.connection_closed(self)

    def handle(self, first: bool = True) -> None:
        try:
            while not self.taken_over:
                if not self.server.connection_idle(self):
                    return  # the server is stopping: no next request
                try:
                    environ = self.read_request(first)
                    first = False
                except HTTPError as error:
                    self.send_error(error.status, str(error))
                    return
                finally:
                    self.idle = False
                if environ is None:
                    return
                runner = FixedServerHandler(self, environ)
                if not runner.run(self.server.get_app()):
                    return
        except _CONNECTION_ENDED as error:
            logger.debug("connection from %s ended: %s", self.client_address[0], error)

    # -- low-level reading, shared with RequestBody ------------------------------

    def fill_body_buffer(self) -> None:
        """More bytes of a body, within ``body_timeout``."""
        try:
            data = self.receive(self.server.body_timeout)
        except socket.timeout:
            raise BodyTimeout("request body not received within %g s"
                              % self.server.body_timeout) from None
        if not data:
            raise IncompleteBody("connection closed in the middle of the request body")
        self.buffer += data

    def send_continue(self) -> None:
        """``100 Continue``: the app reads the body the client waits to send."""
        if not self.response_started:
            self.send(_CONTINUE)

    def send(self, data: bytes) -> None:
        """Send ``data`` whole; the connection's first send sets TCP_NODELAY first.

        With it a response goes out when written, not when the client's
        delayed ACK of the previous one comes (the 40 ms stall). Set here
        rather than on accepting: a WebSocket's socket is the transport's,
        which sets it itself, and spares the system call.
        """
        if not self.no_delay:
            self.no_delay = True
            no_delay(self.connection)
        self.connection.sendall(data)

    def receive(self, timeout: float) -> bytes:
        """Some bytes from the socket, waiting ``timeout`` seconds at most (socket.timeout)."""
        sock = self.connection
        if self.reads_without_waiting:
            # Until a timeout was set the socket blocks; a read that would
            # wait gives BlockingIOError, and from then on the timeout waits.
            try:
                return sock.recv(READ_SIZE, socket.MSG_DONTWAIT)
            except BlockingIOError:
                self.reads_without_waiting = False
        sock.settimeout(timeout)
        return sock.recv(READ_SIZE)

    def start_next_request(self, first: bool) -> None:
        """Start the clocks of the next request head (see ``read_request``)."""
        self.head_started: float | None = self.connected_at if first else None
        self.idle_since = time.monotonic()

    def head_deadline(self) -> float:
        """When the request head being read must be complete, or the idle connection ends."""
        if self.head_started is None:
            if not self.buffer:
                return self.idle_since + self.server.keep_alive_timeout
            self.head_started = time.monotonic()  # its first bytes are here
        return self.head_started + self.server.request_timeout

    def read_request(self, first: bool = False) -> Environ | None:
        """Parse the next request head into a WSGI environ; None at a clean end.

        A request head must arrive within ``request_timeout`` seconds, counted
        from the connection's start for its first request (a client that
        connects and sends nothing, or a byte a second, is dropped) and from
        its first byte for the next ones; between requests a connection may
        idle ``keep_alive_timeout`` seconds.
        """
        self.start_next_request(first)
        return self.read_head(wait=True)

    def read_head(self, wait: bool) -> Environ | None:
        """``read_request`` once its clocks run; ``wait=False`` reads only what has arrived.

        Raises:
            _HeadNotYet: (``wait=False``) the head is not all here yet.
        """
        limit = self.max_request_head
        while True:
            while self.buffer[:2] == b"\r\n":
                del self.buffer[:2]  # RFC 9112 2.2: empty lines before a request
            end = find_head_end(self.buffer, limit)
            if end >= 0:
                break
            deadline = self.head_deadline()
            try:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    raise socket.timeout
                # (Not waiting: the reactor's loop reads, on a plain socket.)
                data = (self.receive(timeout) if wait
                        else recv_nowait_in_loop(self.connection, READ_SIZE))
                if data is None:
                    raise _HeadNotYet(deadline)
            except socket.timeout:
                if self.buffer:
                    raise BadRequest("request head not complete within %g s"
                                     % self.server.request_timeout, 408) from None
                return None
            if not data:
                if self.buffer.strip():
                    raise BadRequest("connection closed in the middle of the request head")
                return None
            self.buffer += data
        head = bytes(self.buffer[:end])
        del self.buffer[:end + 4]
        return self.make_environ(head)

    def make_environ(self, head: bytes) -> Environ:
        environ = self.server.base_environ.copy()
        keep_alive = None if request_environ is None \
            else request_environ(head, environ, _environ_keys)
        if keep_alive is None:  # not the usual head: parsed here, every refusal named
            environ = self.server.base_environ.copy()  # (the C call may have begun it)
            keep_alive = self._add_parsed_request(environ, head)
        else:
            environ["wsgi.input"] = NO_BODY  # (the most requests, and every WebSocket upgrade)
        self.keep_alive = keep_alive
        client_address = self.client_address
        environ["REMOTE_ADDR"] = client_address[0]
        environ["REMOTE_PORT"] = str(client_address[1])
        environ["wsgi.errors"] = sys.stderr
        return environ

    def _add_parsed_request(self, environ: Environ, head: bytes) -> bool:
        """The request of ``head`` into ``environ``, body included; whether to keep alive."""
        request = parse_head(head)
        limit = self.server.max_body_size
        if request.content_length is not None and limit is not None \
                and request.content_length > limit:
            raise BodyTooLarge("request body of %d bytes, more than %d"
                               % (request.content_length, limit))
        add_request(environ, request)
        if request.content_length or request.chunked or request.expect_continue:
            environ["wsgi.input"] = RequestBody(self, request.content_length, request.chunked,
                                                request.expect_continue)
        else:
            environ["wsgi.input"] = NO_BODY
        return request.keep_alive

    def send_error(self, status: int, message: str) -> None:
        """A plain-text error for a request the app never saw; closes the connection."""
        phrase = status_phrase(status)
        body = ("%d %s: %s\n" % (status, phrase, message)).encode("utf-8")
        head = ("HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                "Content-Length: %d\r\nConnection: close\r\n\r\n" % (status, phrase, len(body)))
        try:
            self.send(head.encode("latin-1") + body)
        except OSError:
            pass
        logger.info('%s - refused: %d %s', self.client_address[0], status, message)

    def log_request(self, request_line: str, status: int | str, size: int | None) -> None:
        logger.info('%s - "%s" %s %s', self.client_address[0], request_line, status,
                    size if size is not None else "-")


class FixedServerHandler:
    """Runs the WSGI application for one request and writes its response.

    Uses Content-Length when the app gives it or the body is one piece,
    chunked encoding otherwise (HTTP/1.1), and closing the connection as a
    last resort (HTTP/1.0). ``run(app)`` returns whether the connection may
    be reused (False once a WebSocket took it over). An app that raises
    gets a bare 500 and its traceback is logged.

    Args:
        handler (FixedHandler): The connection the request came on.
        environ (dict): The request's WSGI environ.
    """

    def __init__(self, handler: FixedHandler, environ: Environ) -> None:
        self.handler = handler
        self.environ = environ
        self.method: str = environ["REQUEST_METHOD"]
        self.status: str | None = None
        self.headers: Headers = []
        self.headers_sent = False
        self.chunked = False
        self.length: int | None = None  # Content-Length the app promised
        self.bytes_sent = 0
        self.keep_alive = handler.keep_alive
        # ours, even if an app puts another in environ
        self.body: RequestBody = environ["wsgi.input"]
        handler.response_started = False
        self.http11 = environ["SERVER_PROTOCOL"] == "HTTP/1.1"

    def start_response(self, status: str, headers: Headers,
                       exc_info: ExcInfo | None = None) -> Write:
        """The strict WSGI ``start_response`` of PEP 3333 (routes get a forgiving one).

        Returns:
            Callable: The ``write(data)`` function of PEP 3333.

        Raises:
            ValueError: ``status`` is not a string like ``"200 OK"``.
            TypeError: A header is not a ``(str, str)`` tuple.
            AssertionError: Called twice without ``exc_info``.
        """
        if exc_info:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response() called twice without exc_info")
        # Checked here for every app: a CR, LF or NUL would split the response.
        check_response_status(status)
        for header in headers:
            if not (isinstance(header, tuple) and len(header) == 2
                    and isinstance(header[0], str) and isinstance(header[1], str)):
                raise TypeError("WSGI headers must be (str, str) tuples, not %r" % (header,))
            check_response_header(*header)
        self.status = status
        self.headers = list(headers)
        return self.write

    def run(self, app: WSGIApp) -> bool:
        """Answer the request with ``app``; whether the connection may serve another."""
        result: Iterable[bytes] | None = None
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
            if self._taken_over():  # the app's iterable may take the socket over too
                return False
            if self.status is None:
                raise AssertionError("WSGI application returned without start_response()")
            self._finish_body()
        except HTTPError as error:
            # The body the app was reading is malformed, late or too large: the client's fault.
            logger.info("%s: request body refused for %s %s: %s", self.handler.client_address[0],
                        self.method, self.environ.get("PATH_INFO"), error)
            self.keep_alive = False
            if self.headers_sent:
                return False
            self.status = None
            self._replace_response(error.status, str(error))
        except (ConnectionError, socket.timeout, ssl.SSLError) as error:
            if self.handler.taken_over:
                raise
            # The client left (or stopped reading) while the response was written.
            logger.debug("connection from %s ended during the response: %s",
                         self.handler.client_address[0], error)
            return False
        except Exception as error:
            if self.handler.taken_over:
                raise
            if self.headers_sent:
                logger.error("error in WSGI application for %s %s\n%s", self.method,
                             self.environ.get("PATH_INFO"), traceback.format_exc())
                return False  # the response is broken: the client sees the connection end
            if isinstance(error, InvalidResponse):
                # A header that would split the response: named, and never sent.
                logger.error("WSGI application for %s %s: %s; answered 500 instead",
                             self.method, self.environ.get("PATH_INFO"), error)
            else:
                logger.error("error in WSGI application for %s %s\n%s", self.method,
                             self.environ.get("PATH_INFO"), traceback.format_exc())
            self.status = None
            self._replace_response(500, "Internal Server Error")
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    logger.error("error closing the WSGI response of %s %s\n%s", self.method,
                                 self.environ.get("PATH_INFO"), traceback.format_exc())
        self._log(self._code())
        body = self.body
        if body.failed or not self.keep_alive:
            return False
        # The next request starts where this body ends; skip what the app left.
        try:
            return body.drain(self.handler.max_request_head)
        except HTTPError as error:
            logger.info("%s: request body refused while skipping it: %s",
                        self.handler.client_address[0], error)
            return False

    def _taken_over(self) -> bool:
        """Whether a WebSocket took the connection over (a call: it changes as the app runs)."""
        return self.handler.taken_over

    def _replace_response(self, status: int, message: str) -> None:
        """Answer with a plain-text error instead of what the app did not finish."""
        self.status = "%d %s" % (status, status_phrase(status))
        self.headers = [("Content-Type", "text/plain; charset=utf-8")]
        self.keep_alive = False
        body = (message + "\n").encode("utf-8")
        self._set_length(len(body))
        self.write(body)

    def _code(self) -> int:
        """The status code of the response started (``start_response`` was called)."""
        assert self.status is not None
        return int(self.status[:3])

    def _set_length(self, length: int) -> None:
        code = self._code()
        if code < 200 or code in (204, 304):
            return  # RFC 9110 8.6: no Content-Length on 1xx and 204; on 304 it is the GET's
        if not any(name.lower() == "content-length" for name, _ in self.headers):
            self.headers.append(("Content-Length", str(length)))

    def _body_allowed(self) -> bool:
        code = self._code()
        return not (code < 200 or code in (204, 304) or self.method == "HEAD")

    def _send_headers(self) -> bytes:
        code = self._code()
        names = set()
        for name, value in self.headers:
            lower = name.lower()
            names.add(lower)
            if lower == "content-length":
                self.length = int(value)
            elif lower == "connection" and "close" in value.lower():
                self.keep_alive = False
        body = self.body
        if body.awaits_continue and not body.complete:
            self.keep_alive = False  # the client may wait for a 100 Continue, or send the body
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
            lines.append("Date: %s" % _date())
        if "server" not in names:
            lines.append("Server: %s" % self.handler.server_software)
        lines.extend("%s: %s" % header for header in self.headers)
        if not self.keep_alive and "connection" not in names:
            lines.append("Connection: close")
        elif self.keep_alive and not self.http11 and "connection" not in names:
            lines.append("Connection: keep-alive")
        self.headers_sent = True
        self.handler.response_started = True
        # Not sent yet: it goes out with the first piece of body, in one send.
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def write(self, data: bytes) -> None:
        """The WSGI ``write`` callable, also used for the returned iterable."""
        if self.status is None:
            raise AssertionError("write() before start_response()")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("WSGI body chunks must be bytes, not %s" % type(data).__name__)
        head = b"" if self.headers_sent else self._send_headers()
        if not data or not self._body_allowed():
            if head:
                self._send(head)
            return
        if self.chunked:
            self._send(b"%s%x\r\n%s\r\n" % (head, len(data), data))
        elif head:
            self._send(head + data)
        else:
            self._send(data)
        self.bytes_sent += len(data)

    def _finish_body(self) -> None:
        head = b""
        if not self.headers_sent:
            if self._body_allowed():
                self._set_length(0)
            head = self._send_headers()
        if self.chunked:
            self._send(head + b"0\r\n\r\n")
            return
        if head:
            self._send(head)
        if self.length is not None and self.bytes_sent < self.length \
                and self._body_allowed():
            logger.error("WSGI application sent %d of the %d bytes its Content-Length "
                         "promised", self.bytes_sent, self.length)
            self.keep_alive = False

    def _send(self, data: bytes) -> None:
        self.handler.send(data)

    def _log(self, status: int) -> None:
        if not logger.isEnabledFor(logging.INFO) \
                and type(self.handler).log_request is FixedHandler.log_request:
            return  # the access log is off (and not overridden): no line to format
        line = "%s %s %s" % (self.method, self.environ.get("REQUEST_URI", ""),
                             self.environ["SERVER_PROTOCOL"])
        self.handler.log_request(line, status, self.bytes_sent)


class WebSocketHandler(FixedHandler):
    """``FixedHandler`` that lets the middleware take the socket over.

    It puts ``environ["wsocket.takeover"]`` (its ``take_over``) and
    ``environ["wsocket.server"]`` into every request's environ; the default
    ``handler_class`` of ``make_server()``. Also named ``WSocketHandler``.
    """

    detached = False  # the app goes on with the socket after the request returned
    serves_in_loop = True
    """True: the server's reactor may read this connection's requests (``serve_arrived``).

    Only while ``__init__`` and ``handle`` are this class's own: a subclass
    that overrides either gets a thread per connection, and its ``handle``
    runs as before.
    """

    def serve_arrived(self) -> float | None:
        """The reactor's callback for a connection waiting for its request (made ``in_loop``).

        Reads what has arrived, without waiting. A complete request that the
        app answers without blocking (``app.runs_in_loop(environ)``: the event
        app's WebSocket upgrades) is answered right here, in the loop's
        thread: no thread per connection, no hand-over. Anything else (a
        route, an HTTP request, a wrapped WSGI app) may block, so the
        connection leaves the loop first (``Reactor.hand_over``) and this
        thread serves it to its end, as a connection thread does. Returns
        when to be called again at the latest (the head's deadline), or None.
        """
        server = self.server
        try:
            while server.connection_idle(self):
                try:
                    environ = self.read_head(wait=False)
                except _HeadNotYet as not_yet:
                    return not_yet.deadline  # idle still: stop() ends it meanwhile
                except HTTPError as error:
                    self.idle = False
                    self.send_error(error.status, str(error))
                    break
                self.idle = False
                if environ is None:
                    break
                app = server.get_app()
                runs_in_loop = getattr(app, "runs_in_loop", None)
                if runs_in_loop is None or not runs_in_loop(environ):
                    server.reactor.hand_over(self.connection)
                    self._serve_in_this_thread(app, environ)
                    return None
                if not FixedServerHandler(self, environ).run(app):
                    break
                self.start_next_request(first=False)
        except _CONNECTION_ENDED as error:
            logger.debug("connection from %s ended: %s", self.client_address[0], error)
        except Exception:
            server.handle_error(self.request, self.client_address)
        self._end_connection()
        return None

    def _serve_in_this_thread(self, app: WSGIApp, environ: Environ) -> None:
        """Out of the loop: answer ``environ``, then the next requests, as a connection thread."""
        try:
            if FixedServerHandler(self, environ).run(app):
                self.handle(first=False)
        except _CONNECTION_ENDED as error:
            logger.debug("connection from %s ended: %s", self.client_address[0], error)
        except Exception:
            self.server.handle_error(self.request, self.client_address)
        finally:
            self._end_connection()

    def _end_connection(self) -> None:
        """The end of a connection served from the loop (unless the app took it with it)."""
        self.finish()
        if not self.detached:
            self.server.reactor.unwatch(self.connection)  # (nothing, once handed over)
            self.server.shutdown_request(self.request)

    def make_environ(self, head: bytes) -> Environ:
        environ = super().make_environ(head)
        environ["wsocket.takeover"] = _HandlerCall(self, "take_over", environ)
        environ["wsocket.server"] = self.server
        if self.server.parks_idle_websockets:
            environ["wsocket.detach"] = _HandlerCall(self, "detach", environ)
        return environ

    def detach(self) -> tuple[Reactor, Callable[[], None]]:
        """Let the taken-over connection outlive this thread; returns ``(reactor, give_back)``.

        The app (the event app) waits for the socket with the server's
        ``reactor``, closes the socket when the WebSocket ends, then calls
        ``give_back()``, which frees the connection's place (max_connections).
        """
        self.detached = True
        return self.server.reactor, _GiveBack(self.server, self.request)

    def take_over(self) -> tuple[socket.socket, bytes]:
        """Hand the raw socket over; returns ``(socket, bytes read past the request)``.

        The connection leaves HTTP: the handler writes nothing more on it,
        and the one who took it closes it.
        """
        self.taken_over = True
        sock = self.connection
        if sock.gettimeout() is not None:
            sock.settimeout(None)  # the WebSocket waits with poll, never with socket timeouts
        leftover = bytes(self.buffer)
        self.buffer.clear()
        return sock, leftover


WSocketHandler = WebSocketHandler
"""The same class as ``WebSocketHandler`` (the original WSocket's name)."""


class _GiveBack:
    """What ``detach`` returns to call at the end: frees the connection's place.

    (One small object for each detached connection to keep, not a partial of
    a bound method: see ``_HandlerCall``.)
    """

    __slots__ = ("_server", "_request")

    def __init__(self, server: ThreadingWSGIServer, request: socket.socket) -> None:
        self._server = server
        self._request = request

    def __call__(self) -> None:
        self._server.shutdown_request(self._request)


class _HandlerCall:
    """``environ["wsocket.takeover"]`` or ``["wsocket.detach"]``: a handler's method, once.

    The environ outlives its request: a WebSocket keeps it (``environ``) for
    as long as it is open. A bound method there would keep the connection's
    handler alive all that time, and with it the request's objects, which
    the garbage collector would then walk at every full collection (with
    thousands of connections, a good part of what opening one costs). This
    lets the handler go once called, and leaves the environ's place to a
    shared spent one (``_SPENT``), which only says so: neither method means
    anything twice, and an open connection keeps one object less.
    """

    __slots__ = ("handler", "_name", "_environ")

    def __init__(self, handler: WebSocketHandler | None, name: str,
                 environ: Environ | None = None) -> None:
        self.handler: WebSocketHandler | None = handler  # None once called
        self._name = name
        self._environ = environ  # where it sits, until called

    def __call__(self) -> Any:
        key = _HANDLER_CALL_KEYS[self._name]
        handler = self.handler
        if handler is None:
            raise RuntimeError("environ['%s'] was called already: the connection is not "
                               "the server's any more" % key)
        self.handler = None
        environ, self._environ = self._environ, None
        if environ is not None and environ.get(key) is self:
            environ[key] = _SPENT[self._name]
        return getattr(handler, self._name)()


# Where each method sits in the environ.
_HANDLER_CALL_KEYS = {"take_over": "wsocket.takeover", "detach": "wsocket.detach"}
# The spent stand-ins, one for each method, shared by every environ.
_SPENT = {name: _HandlerCall(None, name) for name in _HANDLER_CALL_KEYS}


# -- the GIL with thousands of threads ----------------------------------------------

# prctl(2) options of Linux 6.16 and later (linux/prctl.h)
_PR_FUTEX_HASH = 78
_PR_FUTEX_HASH_SET_SLOTS = 1


def use_global_futex_hash() -> bool:
    """Have the kernel keep this process's futex waiters in its big shared table; True if it did.

    Every thread that waits for the GIL, a lock or a condition sleeps in a
    futex, and the kernel finds the sleepers of a futex by walking one chain
    of its hash table, under that chain's spinlock. Since Linux 6.16 a
    threaded process gets a table of its own, sized for its CPUs, not its
    threads: 16 chains on a 2-CPU machine, whatever the thread count. With
    10,000 threads asleep, each chain holds hundreds to thousands of them,
    and when two busy futexes (the GIL's mutex and condition, say) share a
    chain, every GIL handover walks thousands of sleepers: perf shows the
    CPUs in ``futex_wake``, and ten thousand closing handshakes went
    unanswered for more than 10 s in one run out of four or so (which
    futexes share a chain depends on where they are in memory, a new draw
    in each process). The shared table (slots 0) is what every kernel before
    6.16 used: 256 chains per CPU, with the process's futexes spread over
    them. Older kernels and other systems have nothing to change (False).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes  # here: only Linux servers with hundreds of threads need it

        libc = ctypes.CDLL(None, use_errno=True)
        # prctl() is variadic, its arguments unsigned longs: pass them as such
        return bool(libc.prctl(_PR_FUTEX_HASH, ctypes.c_ulong(_PR_FUTEX_HASH_SET_SLOTS),
                               ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)) == 0)
    except (ImportError, OSError, AttributeError):
        return False  # no ctypes, or no prctl


class _GILPacing:
    """Lengthens the GIL's switch interval with the number of threads, and back.

    Each thread waiting for the GIL wakes up once per switch interval (5 ms
    by default) to ask for it. With thousands of connection threads woken
    at once (10,000 clients closing their WebSockets together), those
    wake-ups alone, two million a second, take every CPU the machine has
    (perf shows the time in futex calls and context switches): closing
    handshakes then waited tens of seconds for an answer. Paced, the
    waiters wake about ``1 / PER_THREAD`` times a second in all: the
    interval is ``PER_THREAD`` seconds a thread (0.5 s with 10,000
    threads, about 0.09 s with 2,000), never less than the interval the process
    had, and it changes in steps of ``STEP`` threads (below 256 threads
    nothing changes). The price: with that many threads, one that computes
    without blocking keeps the GIL that much longer before the others get
    a turn. (10 us a thread, 0.1 s with 10,000, still let one run in five
    leave closing handshakes unanswered for more than 10 s.)

    One for the process (the interval is the process's); connection threads
    call ``pace()`` when they start and end. The count is
    ``threading.active_count()``; this class's lock is taken only when the
    count crosses a multiple of ``STEP``.

    The first time the threads reach ``STEP``, it also gives the process
    the kernel's shared futex hash table back (``use_global_futex_hash``).
    """

    PER_THREAD = 50e-6  # seconds of switch interval per thread
    STEP = 256  # the interval changes only when the thread count crosses a multiple of it

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._level = 0  # the thread count // STEP the interval was set for
        self._base: float | None = None  # the process's own interval, while we changed it
        self._futex_hash_set = False

    def pace(self) -> None:
        if threading.active_count() // self.STEP == self._level:
            return
        with self._lock:
            level = threading.active_count() // self.STEP
            if level == self._level:
                return
            self._level = level
            if level and not self._futex_hash_set:
                self._futex_hash_set = True
                use_global_futex_hash()
            wanted = level * self.STEP * self.PER_THREAD
            if self._base is None:
                base = sys.getswitchinterval()
                if wanted > base:
                    self._base = base
                    sys.setswitchinterval(wanted)
            elif wanted > self._base:
                sys.setswitchinterval(wanted)
            else:
                sys.setswitchinterval(self._base)  # few threads again: the process's own
                self._base = None


_gil_pacing = _GILPacing()


# -- the servers ------------------------------------------------------------------

class ThreadingWSGIServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """A thread-per-connection WSGI server (IPv4 or IPv6, optionally TLS).

    ``stop()`` shuts it down gracefully: no new connections, open
    WebSockets get close code 1001, their threads get a bounded time to end.
    It serves the app it is given as it is; ``WSocketServer`` wraps it for
    WebSockets. ``make_server()`` builds either.

    Args:
        server_address (tuple): ``(host, port)``; a host with ``:`` is IPv6,
            port 0 picks a free port.
        RequestHandlerClass (type): The connection handler, ``WebSocketHandler``
            by default.
        bind_and_activate (bool): Bind and listen at once.
        ssl_context (ssl.SSLContext | None): Serve TLS (``https://``, ``wss://``).
        **limits (float): ``max_connections``, ``request_timeout``,
            ``keep_alive_timeout``, ``max_request_head`` (see ``SERVER_OPTIONS``).

    Raises:
        TypeError: An unknown limit.
        ValueError: A limit that is not a positive number.
        OSError: The address cannot be bound (in use, not local).
    """

    daemon_threads = True
    # The event app's idle WebSockets wait in one epoll loop (``reactor``)
    # instead of each holding a thread; False keeps a thread per connection.
    parks_idle_websockets = reactor_available()
    """True (on Linux): the event app's idle connections wait in one epoll loop, not a thread."""
    allow_reuse_address = True
    # The listen backlog (the kernel caps it at net.core.somaxconn): a burst of
    # clients connecting at once waits there rather than having its SYNs
    # dropped, which the client would retry only after a second or more.
    request_queue_size = 4096
    accept_batch = 64
    """Connections accepted, at most, each time the accept loop wakes up."""
    block_on_close = False
    shutdown_timeout = 5.0
    """Seconds ``stop()`` waits at most, by default, for connections to end."""
    paces_gil = True
    """True: from 256 connection threads on, the GIL's switch interval grows with them.

    50 µs a thread (0.5 s with 10,000), so that the threads waiting for the
    GIL do not spend every CPU waking up (see ``_GILPacing``); back to the
    process's own interval when the threads end. On Linux 6.16 and later the
    process also goes back to the kernel's shared futex hash table then
    (see ``use_global_futex_hash``). False leaves both alone.
    """
    RequestHandlerClass: Callable[[Any, Any, ThreadingWSGIServer], socketserver.BaseRequestHandler]
    # The limits of SERVER_OPTIONS, set by __init__.
    max_connections: int
    request_timeout: float
    keep_alive_timeout: float
    max_request_head: int
    body_timeout: float
    max_body_size: int | None

    def __init__(self, server_address: tuple[str, int],
                 RequestHandlerClass: Callable[..., socketserver.BaseRequestHandler]
                 = WebSocketHandler,
                 bind_and_activate: bool = True, ssl_context: ssl.SSLContext | None = None,
                 reuse_port: bool = False, listening_socket: socket.socket | None = None,
                 **limits: float | None) -> None:
        unknown = set(limits) - set(SERVER_OPTIONS)
        if unknown:
            raise TypeError("unknown server option(s) %s; known: %s" % (
                ", ".join(sorted(unknown)), ", ".join(sorted(SERVER_OPTIONS))))
        for name, default in SERVER_OPTIONS.items():
            value = limits.get(name, default)
            if value is None and name in _OPTIONAL_OPTIONS:
                setattr(self, name, None)
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError("%s must be a positive number, not %r" % (name, value))
            setattr(self, name, value)
        if ":" in server_address[0]:
            self.address_family = socket.AF_INET6
        self.ssl_context = ssl_context
        self._active = 0  # connections accepted and not yet shut down
        self.application: WSGIApp | None = None
        self.base_environ: Environ = {}
        self._connections: set[FixedHandler] = set()
        self._websockets: set[WebSocket] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._reactor: Reactor | None = None
        self.accepts_in_loop = False
        """True while ``serve_forever()`` accepts in the reactor's loop (the event app)."""
        self._stop_accepting = threading.Event()  # shutdown() asks serve_forever() to end
        self._stop_signalled = False  # stop_serving() asks it: a plain flag, no lock
        self._serving_wake_up: WakeUpPair | None = None  # what serve_forever() waits on
        self._serving_ended = threading.Event()
        # run(workers=N): each worker binds the same port (SO_REUSEPORT), or
        # all of them accept on one socket the supervisor made.
        self.reuse_port = reuse_port
        if listening_socket is not None:
            self.address_family = listening_socket.family
            super().__init__(server_address, RequestHandlerClass, bind_and_activate=False)
            self.socket.close()
            self.socket = listening_socket
            self.server_address = listening_socket.getsockname()
            self._named()
        else:
            super().__init__(server_address, RequestHandlerClass, bind_and_activate)

    @property
    def reactor(self) -> Reactor:
        """The epoll loop where the event app's idle connections wait, started on first use."""
        reactor = self._reactor
        if reactor is not None:
            return reactor  # (made once: read several times per connection opened)
        with self._lock:
            if self._reactor is None:
                self._reactor = Reactor()
            return self._reactor

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6 and hasattr(socket, "IPV6_V6ONLY"):
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if self.reuse_port:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()
        self._named()

    def _named(self) -> None:
        host, port = self.server_address[:2]
        self.server_name = str(host)  # no reverse DNS lookup, unlike http.server
        self.server_port = int(port)
        self.setup_environ()

    def setup_environ(self) -> None:
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

    def get_app(self) -> WSGIApp:
        return self.application or _no_application

    def set_app(self, application: WSGIApp) -> None:
        self.application = application

    @property
    def url(self) -> str:
        """The address to reach the server at, e.g. ``http://127.0.0.1:8080/``.

        ``https://`` with TLS.
        """
        host = self.server_name
        if ":" in host:
            host = "[%s]" % host
        scheme = "https" if self.ssl_context is not None else "http"
        return "%s://%s:%d/" % (scheme, host, self.server_port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ssl.SSLError, ConnectionError, socket.timeout)):
            # A client that failed the TLS handshake (in the handler's setup), or left.
            logger.debug("connection from %s ended: %s", client_address[0], error)
            return
        logger.error("error on the connection from %s\n%s", client_address[0],
                     traceback.format_exc())

    # -- accepting, within max_connections --------------------------------------

    def server_activate(self) -> None:
        super().server_activate()
        # Non-blocking: the accept loop takes every connection that waits,
        # and stops at the first accept() that would block (see below).
        self.socket.setblocking(False)

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Accept connections until ``shutdown()`` or ``stop_serving()``.

        When the app answers its WebSockets' handshakes in the loop
        (``_serves_in_loop``), the reactor's loop accepts: one thread accepts,
        reads the request and answers it, which spares a hand-over between
        two threads (and their wait for the GIL) per connection; this thread
        then only waits to be stopped. Otherwise this thread accepts, as
        socketserver's does. Either way it waits in poll() beside a wake-up
        socket, so a stop is seen at once, not at the next ``poll_interval``.
        """
        self._serving_ended.clear()
        # Room for every connection in the descriptor table before the first
        # one comes, rather than a stall each time it grows (see there).
        reserve_descriptors(self.max_connections + DESCRIPTORS_BESIDE_CONNECTIONS)
        in_loop = self._serves_in_loop(self.socket)
        wake_up = WakeUpPair()
        self._serving_wake_up = wake_up
        try:
            if in_loop:
                self.accepts_in_loop = True
                self.reactor.watch(self.socket, self._accept_in_loop)
            with _ServerSelector() as selector:
                selector.register(wake_up, selectors.EVENT_READ)
                if not in_loop:
                    selector.register(self, selectors.EVENT_READ)
                while not self._asked_to_stop():
                    ready = selector.select(poll_interval)
                    if self._asked_to_stop():
                        break
                    for key, _ in ready:
                        if key.fileobj is self:
                            self._handle_request_noblock()
                        else:
                            wake_up.drain()
                    self.service_actions()
        finally:
            if in_loop:
                self.accepts_in_loop = False
                self.reactor.unwatch(self.socket)
            self._serving_wake_up = None
            wake_up.close()
            self._stop_accepting.clear()
            self._stop_signalled = False
            self._serving_ended.set()

    def _asked_to_stop(self) -> bool:
        return self._stop_signalled or self._stop_accepting.is_set()

    def _accept_in_loop(self) -> float | None:
        """The reactor's callback for the listening socket: take the connections waiting."""
        if self._asked_to_stop():
            return None
        self._handle_request_noblock()
        return math.inf

    def shutdown(self) -> None:
        """Stop ``serve_forever()`` (from another thread) and wait until it has returned."""
        self._stop_accepting.set()
        self._wake_serving()
        self._serving_ended.wait()

    def stop_serving(self) -> None:
        """Make ``serve_forever()`` return soon; safe in a signal handler.

        Unlike ``shutdown()`` it neither waits nor takes a lock: a handler
        runs in the main thread between two bytecodes, maybe while that
        thread holds the very lock, or is the thread serving. ``run()``'s
        SIGTERM and Ctrl-C call it, so no exception is raised at a random
        point of the accept loop (one raised after a connection's thread
        started would close that connection under it).
        """
        self._stop_signalled = True
        self._wake_serving()

    def _wake_serving(self) -> None:
        wake_up = self._serving_wake_up
        if wake_up is not None:
            wake_up.wake()  # (closed meanwhile: serving has ended anyway)

    def get_request(self) -> tuple[socket.socket, Any]:
        """socketserver's ``accept()``, without its two IntEnum conversions per connection.

        (``socket.accept`` reads the listening socket's ``family`` and
        ``type``, each made an IntEnum anew: a couple of microseconds of the
        few dozen that opening a WebSocket costs here.)
        """
        listener = self.socket
        accept_descriptor = getattr(listener, "_accept", None)
        if type(listener) is not socket.socket or accept_descriptor is None:
            return listener.accept()  # a green socket, a subclass: theirs
        descriptor, address = accept_descriptor()
        family, kind = self._listener_kind
        sock = socket.socket(family, kind, listener.proto, fileno=descriptor)
        if socket.getdefaulttimeout() is None and listener.gettimeout():
            sock.setblocking(True)  # as socket.accept() does: no timeout inherited
        return sock, address

    @functools.cached_property
    def _listener_kind(self) -> tuple[int, int]:
        return int(self.socket.family), int(self.socket.type)

    def _handle_request_noblock(self) -> None:
        """socketserver's, for every connection waiting (up to ``accept_batch``), not one.

        socketserver accepts one connection each time select() wakes it up:
        a burst of N clients cost N trips through select(). A listening
        socket given blocking (``listening_socket``) still gets one at a time.
        """
        batch = self.accept_batch if self.socket.gettimeout() == 0.0 else 1
        for _ in range(batch):
            try:
                request, client_address = self.get_request()
            except OSError:  # none left (BlockingIOError), or the socket is closed
                return
            if self.verify_request(request, client_address):
                try:
                    self.process_request(request, client_address)
                except Exception:
                    self.handle_error(request, client_address)
                    self.shutdown_request(request)
                except BaseException:
                    self.shutdown_request(request)
                    raise
            else:
                self.shutdown_request(request)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            full = self._active >= self.max_connections
            if not full:
                self._active += 1
        if full:
            self._refuse(request, client_address)
            return
        # If this fails, the accept loop calls shutdown_request(), which
        # gives the place back. (Accepted by the reactor: serve_forever asked
        # _serves_in_loop already, and serve_arrived asks the app about each
        # request.)
        if self.accepts_in_loop or self._serves_in_loop(request):
            # (a WebSocketHandler: serves_in_loop said so)
            handler_class: type[WebSocketHandler] = self.RequestHandlerClass  # type: ignore[assignment]
            handler = handler_class(request, client_address, self, in_loop=True)
            # Accepted by the reactor, the connection most often has its
            # request already (the client sent it right after connecting): it
            # is read at the loop's next turn, without a wait in epoll for it.
            # (Otherwise serve_arrived returns the head's deadline, and waits.)
            self.reactor.watch(request, handler.serve_arrived, handler.head_deadline(),
                               now=self.accepts_in_loop)
            return
        super().process_request(request, client_address)  # a thread of its own

    def _serves_in_loop(self, request: Any) -> bool:
        """Whether the reactor reads this connection's requests (no thread until one blocks).

        Where an app says which of its requests it answers without blocking
        (``WSocketApp.handshakes_in_loop``: the event app), on a plain socket.
        """
        handler_class = self.RequestHandlerClass
        return (self.parks_idle_websockets and self.ssl_context is None
                and getattr(handler_class, "serves_in_loop", False)
                and getattr(handler_class, "handle", None) is FixedHandler.handle
                and getattr(handler_class, "__init__", None) is FixedHandler.__init__
                and getattr(self.get_app(), "handshakes_in_loop", False)
                and green_library(request) is None)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        # socketserver's, but a detached connection is not closed here: the
        # app that took it closes it, and gives its place back, when it ends.
        detached = False
        self.pace_gil()
        try:
            handler = self.RequestHandlerClass(request, client_address, self)
            detached = getattr(handler, "detached", False)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            if not detached:
                self.shutdown_request(request)
            self.pace_gil()

    def pace_gil(self) -> None:
        """The thread count may have changed: the GIL's switch interval follows (``paces_gil``)."""
        if self.paces_gil:
            _gil_pacing.pace()

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._active -= 1
        if request.fileno() < 0:
            return  # closed already (by the WebSocket's owner): no shutdown to send
        super().shutdown_request(request)

    def _refuse(self, request: socket.socket, client_address: Any) -> None:
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

    def connection_opened(self, handler: FixedHandler) -> None:
        with self._lock:
            self._connections.add(handler)

    def connection_idle(self, handler: FixedHandler) -> bool:
        """A handler is about to wait for a request; False when the server is stopping."""
        with self._lock:
            handler.idle = not self._stopping
            return handler.idle

    def connection_closed(self, handler: FixedHandler) -> None:
        with self._lock:
            self._connections.discard(handler)

    def websocket_opened(self, websocket: WebSocket) -> None:
        with self._lock:
            if self._stopping:
                websocket.start_closing(CloseCode.GOING_AWAY, "server shutting down")
            self._websockets.add(websocket)

    def websocket_closed(self, websocket: WebSocket) -> None:
        with self._lock:
            self._websockets.discard(websocket)

    # -- running and stopping -----------------------------------------------------

    def start(self) -> ThreadingWSGIServer:
        """Serve in a background thread (for tests and embedding).

        Returns:
            ThreadingWSGIServer: This server, serving.
        """
        self._thread = threading.Thread(target=self.serve_forever, name="wsocket-server",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, close open WebSockets with 1001, wait for their threads.

        Idle keep-alive connections are ended at once; a request in progress
        gets to finish its response (within ``timeout``), then its connection ends.
        Connections still open after ``timeout`` are dropped.

        Args:
            timeout (float | None): Seconds to wait at most; None:
                ``shutdown_timeout`` (5 s).
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
            websocket.start_closing(CloseCode.GOING_AWAY, "server shutting down",
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

    def __enter__(self) -> ThreadingWSGIServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class WSocketServer(ThreadingWSGIServer):
    """``ThreadingWSGIServer`` whose ``set_app`` wraps the app for WebSockets.

    ``websocket_options`` (max_message_size, ping_interval, ...) go to the
    middleware. An app that already is a ``WSocketApp`` is used as it is.
    The default ``server_class`` of ``make_server()`` and ``run()``.
    """

    websocket_options: dict[str, Any] = {}

    def set_app(self, application: WSGIApp | WSocketApp) -> None:
        """Serve ``application``, wrapped in ``WSocketApp(application, **websocket_options)``.

        Args:
            application (Callable): A WSGI application, or a ``WSocketApp``
                (used as it is).
        """
        from .app import WSocketApp
        if not isinstance(application, WSocketApp):
            application = WSocketApp(application, **self.websocket_options)
        super().set_app(application)


def _no_application(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """What a server without ``set_app()`` runs: each request gets a 500, logged."""
    raise RuntimeError("the server has no application: call set_app() first")


def _ssl_context(certfile: str | None, keyfile: str | None) -> ssl.SSLContext | None:
    if certfile is None:
        if keyfile is not None:
            raise ValueError("keyfile given without certfile")
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    return context


def make_server(host: str = "127.0.0.1", port: int = 8080, app: WSGIApp | None = None,
                server_class: type[ThreadingWSGIServer] | None = None,
                handler_class: type[FixedHandler] | None = None,
                certfile: str | None = None, keyfile: str | None = None,
                ssl_context: ssl.SSLContext | None = None, reuse_port: bool = False,
                listening_socket: socket.socket | None = None, bind_and_activate: bool = True,
                **options: Any) -> ThreadingWSGIServer:
    """A ready server bound to ``host``:``port`` (0 picks a free port) serving ``app``.

    No ``app`` serves the demo. The options of ``SERVER_OPTIONS`` (limits)
    go to the server, all others to ``WSocketApp``. Nothing is served until
    ``serve_forever()`` or ``start()``.

    Args:
        host (str): The address to bind: ``"127.0.0.1"``, ``"0.0.0.0"``,
            ``"::1"``, ...
        port (int): The port; 0 picks a free one (``server.url`` tells which).
        app (Callable | None): A WSGI application, a ``WSocketApp``, or None for
            the demo.
        server_class (type | None): Default ``WSocketServer``.
        handler_class (type | None): Default ``WebSocketHandler``.
        certfile (str | None): A PEM certificate (and key, unless ``keyfile``):
            serves ``https://`` and ``wss://``.
        keyfile (str | None): The certificate's private key.
        ssl_context (ssl.SSLContext | None): A ready TLS context instead of
            ``certfile`` and ``keyfile``.
        **options (Any): The server's limits (``max_connections``,
            ``request_timeout``, ``keep_alive_timeout``, ``max_request_head``)
            and the middleware's options (``max_message_size``, ...).

    Returns:
        ThreadingWSGIServer: The bound server (a ``WSocketServer`` by default).

    Raises:
        TypeError: An unknown option, or middleware options given with an
            app that is already a ``WSocketApp``.
        ValueError: An option out of its range, or ``keyfile`` without ``certfile``.
        OSError: The address cannot be bound, or the certificate cannot be
            read (``ssl.SSLError`` when it is not a valid one).
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
    server = server_class((host, port), handler_class, ssl_context=ssl_context,
                          bind_and_activate=bind_and_activate, reuse_port=reuse_port,
                          listening_socket=listening_socket, **limits)
    server.set_app(app)
    return server


class ServerStartedOnImport(RuntimeError):
    """``run()`` called while the command line imports the app's module.

    ``wsocket mymodule:app`` serves the app itself; a module-level ``run()``
    would start a second server before it (two banners, one Ctrl-C each).
    """


# The "module:app" the command line is importing, while it imports it (see
# __main__.load_app); None the rest of the time.
_command_line_importing: str | None = None


def run(app: WSGIApp | None = None, host: str = "127.0.0.1", port: int = 8080,
        workers: int | None = None, **options: Any) -> ThreadingWSGIServer | None:
    """Serve ``app`` (the demo when None) until Ctrl-C or SIGTERM.

    Prints the address it serves on (useful with ``port=0``). Stopping closes
    open WebSockets with 1001 and returns after a bounded wait. Sets up
    logging when nothing else did (level from ``WSOCKET_LOG_LEVEL``).

    Args:
        app (Callable | None): A WSGI application, a ``WSocketApp``, or None
            for the demo.
        host (str): The address to bind.
        port (int): The port; 0 picks a free one.
        workers (int | None): Processes serving the port under a supervisor
            (0: one per core); None or 1: this process alone.
        **options (Any): As ``make_server()``: TLS (``certfile``, ``keyfile``,
            ``ssl_context``), ``server_class``, ``handler_class``, the
            server's limits and the middleware's options.

    Returns:
        ThreadingWSGIServer | None: The server, stopped (None with workers).

    Raises:
        TypeError: An unknown option.
        ValueError: An option out of its range, or a bad ``workers`` count.
        OSError: The address cannot be bound, or the certificate cannot be read.
    """
    if _command_line_importing is not None:
        raise ServerStartedOnImport(_command_line_importing)
    _configure_logging()
    if workers is not None:
        from .workers import check_worker_count
        count = check_worker_count(workers)
        if count > 1:
            _run_workers(app, host, port, count, options)
            return None
    server = make_server(host, port, app, **options)

    def terminate(signum: int, frame: FrameType | None) -> None:
        server.stop_serving()  # no exception: serve_forever() returns, stop() follows

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, terminate)
        # Ctrl-C, unless SIGINT is ignored (a job started with & in a script).
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, terminate)
    try:
        # Announced only once SIGTERM is ours: whoever read the banner may stop us.
        print("wsocket serving on %s (Ctrl-C to stop)" % server.url, flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass  # Ctrl-C where the handler is not ours (run() outside the main thread)
    finally:
        server.stop()
        for number, handler in previous.items():
            signal.signal(number, handler)
    return server


def _run_workers(app: WSGIApp | None, host: str, port: int, workers: int,
                 options: dict[str, Any]) -> None:
    from .workers import Supervisor, reuse_port_available

    def make_worker_server(shared_socket: socket.socket | None) -> ThreadingWSGIServer:
        if shared_socket is not None:
            return make_server(host, port, app, listening_socket=shared_socket, **options)
        return make_server(host, supervisor.port, app, reuse_port=True, **options)

    # Made once here, never bound: wrong options, app or certificate fail
    # now, in one process, not in every worker.
    checked = make_server(host, port, app, bind_and_activate=False, **options)
    supervisor = Supervisor(make_worker_server, (host, port), workers)
    supervisor.bind()
    host_text = "[%s]" % host if ":" in host else host
    scheme = "https" if checked.ssl_context is not None else "http"
    checked.server_close()

    def announce() -> None:
        print("wsocket serving on %s://%s:%d/ (Ctrl-C to stop)"
              % (scheme, host_text, supervisor.port), flush=True)
        logger.info("%d worker processes, %s", workers,
                    "one listening socket each (SO_REUSEPORT)" if reuse_port_available()
                    else "sharing one listening socket")

    status = supervisor.run(on_ready=announce)
    if status:
        raise SystemExit(status)
    return None


def _configure_logging() -> None:
    """Give the access log a place to go when nobody configured logging."""
    if not logging.getLogger().handlers and not logger.handlers:
        level = os.environ.get("WSOCKET_LOG_LEVEL", "INFO").upper()
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s")
