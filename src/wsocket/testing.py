"""``TestClient``: drive any WSGI app from a test, in the test's own process.

::

    from wsocket.testing import TestClient

    def test_echo():
        client = TestClient(app)
        with client.websocket("/ws?token=good", protocols=["chat"]) as ws:
            ws.send("hello")
            assert ws.receive() == "hello"
        assert client.get("/").status == 200

Each request goes over a real connection, a socket pair, to wsocket's own
server code running in a thread of this process: the request is parsed, the
app runs (wrapped in ``WSocketApp`` unless it is one), and the handshake is
the real one, byte for byte. No server process, no port. A WebSocket the app
refuses raises ``InvalidStatus`` with its ``status``, ``headers`` and
``body``.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Union
from urllib.parse import urlsplit

from .app import WSocketApp
from .errors import HandshakeError, InvalidStatus
from .protocol.connection import CLIENT
from .protocol.handshake import check_response, client_request, make_key
from .server import WebSocketHandler, WSocketServer
from .websocket import WebSocket

if TYPE_CHECKING:
    from ._wsgi_types import WSGIApp

__all__ = ["TestClient", "TestResponse"]

Headers = Union[Mapping[str, str], Iterable[tuple[str, str]], None]

DEFAULT_TIMEOUT = 10.0  # seconds a response may take
MAX_RESPONSE_HEAD = 64 * 1024
_NO_BODY_METHODS = ("HEAD",)


class TestResponse:
    """An HTTP response: ``status`` (int), ``reason``, ``headers`` (pairs), ``body`` (bytes)."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]],
                 body: bytes) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def header(self, name: str, default: str | None = None) -> str | None:
        """The value of header ``name`` (any case); several are joined with ", "."""
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        return ", ".join(values) if values else default

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode("utf-8")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def __repr__(self) -> str:
        return "<TestResponse %d %s>" % (self.status, self.reason)


class TestClient:
    """Sends requests and opens WebSockets to ``app`` without a server process or a port.

    ``options`` (``max_message_size``, ``protocols``... as for ``WSocketApp``)
    wrap an app that is not a ``WSocketApp``. ``host`` is the ``Host`` header
    sent. Use it as a context manager, or call ``close()``, to stop what
    runs in the background (open WebSockets get 1001, as when a server stops).
    """

    __test__ = False

    def __init__(self, app: WSGIApp | WSocketApp, host: str = "testserver",
                 timeout: float = DEFAULT_TIMEOUT, **options: Any) -> None:
        if isinstance(app, WSocketApp) and options:
            raise TypeError("options %s go to WSocketApp(...) itself when you pass one"
                            % ", ".join(sorted(options)))
        if not isinstance(app, WSocketApp):
            app = WSocketApp(app, **options)
        self.app = app
        self.host = host
        self.timeout = timeout
        server = WSocketServer(("127.0.0.1", 0), WebSocketHandler, bind_and_activate=False)
        server.server_name, server.server_port = host.partition(":")[0], 80
        server.setup_environ()
        server.set_app(app)
        self._server = server
        self._closed = False

    # -- plain HTTP ---------------------------------------------------------------------

    def request(self, method: str, path: str = "/", headers: Headers = None,
                body: bytes = b"") -> TestResponse:
        """Send one request (with ``body``, if any) and return the whole response."""
        lines = ["%s %s HTTP/1.1" % (method, _resource(path)), "Host: %s" % self.host]
        extra = _header_pairs(headers)
        names = {name.lower() for name, _ in extra}
        if (body or method in ("POST", "PUT", "PATCH")) \
                and "content-length" not in names and "transfer-encoding" not in names:
            extra.append(("Content-Length", str(len(body))))
        if "connection" not in names:
            extra.append(("Connection", "close"))
        lines.extend("%s: %s" % pair for pair in extra)
        sock = self._connect()
        try:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            deadline = time.monotonic() + self.timeout
            status, reason, response_headers, rest = _read_head(sock, deadline)
            return TestResponse(status, reason, response_headers,
                                _read_body(sock, method, status, response_headers, rest,
                                           deadline))
        finally:
            sock.close()

    def get(self, path: str = "/", headers: Headers = None) -> TestResponse:
        """A ``GET`` request: see ``request()``."""
        return self.request("GET", path, headers)

    def head(self, path: str = "/", headers: Headers = None) -> TestResponse:
        """A ``HEAD`` request: the response's headers, and an empty body."""
        return self.request("HEAD", path, headers)

    def post(self, path: str = "/", body: bytes | str = b"",
             headers: Headers = None) -> TestResponse:
        """A ``POST`` request with ``body`` (a ``str`` goes as UTF-8)."""
        return self.request("POST", path, headers,
                            body.encode("utf-8") if isinstance(body, str) else body)

    # -- WebSockets ----------------------------------------------------------------------

    def websocket(self, path: str = "/", headers: Headers = None,
                  protocols: list[str] | None = None, origin: str | None = None,
                  compression: bool = True, **options: Any) -> WebSocket:
        """Open a WebSocket to ``path`` (with its query): the client side, ready to use.

        ``with client.websocket("/ws") as ws:`` closes it at the end. The
        options are the client WebSocket's (``max_message_size``,
        ``close_timeout``, ...). Raises ``InvalidStatus`` (``status``,
        ``headers``, ``body``) when the app answers without a 101, and
        ``HandshakeError`` when its 101 is wrong.
        """
        key = make_key()
        sock = self._connect()
        try:
            sock.sendall(client_request(self.host, _resource(path), key, protocols, origin,
                                        compression, _header_pairs(headers)))
            deadline = time.monotonic() + self.timeout
            status, reason, response_headers, rest = _read_head(sock, deadline)
            if status != 101:
                body = _read_body(sock, "GET", status, response_headers, rest, deadline)
                raise InvalidStatus(
                    "the app answered the WebSocket request for %s with %d %s instead of "
                    "101 Switching Protocols: %r" % (path, status, reason, body[:200]),
                    status, response_headers, body)
            by_name: dict[str, str] = {}
            for name, value in response_headers:
                lower = name.lower()
                by_name[lower] = by_name[lower] + ", " + value if lower in by_name else value
            subprotocol, deflate = check_response(status, by_name, key, protocols, compression)
        except BaseException:
            sock.close()
            raise
        sock.settimeout(None)
        return WebSocket(sock, {}, side=CLIENT, subprotocol=subprotocol, deflate=deflate,
                         origin=origin, path=urlsplit(path).path or "/", initial_data=rest,
                         **options)

    # -- the connection ------------------------------------------------------------------

    def _connect(self) -> socket.socket:
        if self._closed:
            raise RuntimeError("this TestClient is closed")
        ours, theirs = socket.socketpair()
        ours.settimeout(self.timeout)
        # The server's handler thread takes the other end, as if accepted.
        self._server.process_request(theirs, ("127.0.0.1", 0))
        return ours

    def close(self) -> None:
        """Stop: open WebSockets get 1001, the handlers' threads get a moment to end."""
        if not self._closed:
            self._closed = True
            self._server.stop(timeout=2.0)

    def __enter__(self) -> TestClient:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def _resource(path: str) -> str:
    if not path.startswith("/"):
        raise ValueError("a path starts with '/', not %r" % path)
    return path


def _header_pairs(headers: Headers) -> list[tuple[str, str]]:
    if headers is None:
        return []
    items: Iterable[tuple[Any, Any]] = headers.items() if hasattr(headers, "items") else headers
    return [(str(name), str(value)) for name, value in items]


def _recv(sock: socket.socket, deadline: float) -> bytes:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("the app did not answer within the TestClient's timeout")
    sock.settimeout(remaining)
    try:
        return sock.recv(65536)
    except socket.timeout:
        raise TimeoutError("the app did not answer within the TestClient's timeout") from None


def _read_head(sock: socket.socket, deadline: float,
               ) -> tuple[int, str, list[tuple[str, str]], bytes]:
    """(status, reason, headers as pairs, bytes past the head)."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_RESPONSE_HEAD:
            raise HandshakeError("response head larger than %d bytes" % MAX_RESPONSE_HEAD, 0)
        chunk = _recv(sock, deadline)
        if not chunk:
            raise HandshakeError("the connection ended before a response came: %r"
                                 % data[:200], 0)
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, _, status_text = lines[0].partition(" ")
    code, _, reason = status_text.partition(" ")
    if not version.startswith("HTTP/") or not (code.isdigit() and len(code) == 3):
        raise HandshakeError("not an HTTP response: %r" % lines[0][:100], 0)
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise HandshakeError("malformed header line: %r" % line, 0)
        headers.append((name.strip(), value.strip()))
    return int(code), reason, headers, rest


def _read_body(sock: socket.socket, method: str, status: int, headers: list[tuple[str, str]],
               data: bytes, deadline: float) -> bytes:
    """The body framed as RFC 9112 6.3 says: none, chunked, Content-Length, or to the end."""
    if method in _NO_BODY_METHODS or status < 200 or status in (204, 304):
        return b""
    fields = {name.lower(): value for name, value in headers}
    if "chunked" in fields.get("transfer-encoding", "").lower():
        return _read_chunked(sock, data, deadline)
    length = fields.get("content-length")
    if length is not None:
        wanted = int(length)
        while len(data) < wanted:
            chunk = _recv(sock, deadline)
            if not chunk:
                raise HandshakeError("the body ended after %d of %d bytes"
                                     % (len(data), wanted), status)
            data += chunk
        return data[:wanted]
    while True:
        chunk = _recv(sock, deadline)
        if not chunk:
            return data
        data += chunk


def _read_chunked(sock: socket.socket, data: bytes, deadline: float) -> bytes:
    body = b""
    while True:
        while b"\r\n" not in data:
            data += _more(sock, deadline)
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0].strip(), 16)
        if size == 0:
            return body  # trailers, if any, are not kept
        while len(data) < size + 2:
            data += _more(sock, deadline)
        body += data[:size]
        data = data[size + 2:]


def _more(sock: socket.socket, deadline: float) -> bytes:
    chunk = _recv(sock, deadline)
    if not chunk:
        raise HandshakeError("the chunked body ended early", 0)
    return chunk
