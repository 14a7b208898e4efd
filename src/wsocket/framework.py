"""The framework role of ``WSocketApp()``: routes, a forgiving ``start_response``, any body.

``@app.route("/hello/world")`` matches that path exactly; ``@app.route("/static/*")``
matches every path that starts with ``/static/``. Only the path is matched,
never the query; when several routes match, an exact route wins over the
prefixes, and the longest prefix wins among them. No match: ``not_found``.

A route is a WSGI function, ``handler(environ, start_response)``, with two
freedoms a plain WSGI server does not give:

- ``start_response`` takes ``()``, ``(404)``, ``("404")``, ``("404 Not Found")``,
  headers as a list of pairs or a dict, and may be called again to change
  its mind (the last call counts: nothing is sent before the handler returns
  or its generator yields).
- The handler returns anything: ``str``, ``bytes``, a file or file-like object
  (streamed in blocks, closed afterwards), a list, tuple, set or dict of
  mixed values, a generator (streamed as it yields), a ``Response``, ``None``
  (an empty body) or any other value (sent as ``str(value)``).

An exception gives a 500 page and a logged traceback; the page shows the
traceback only with ``debug=True``.
"""

from __future__ import annotations

import html
import io
import mimetypes
import os
import stat
import traceback
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Callable, Protocol, TypeVar, Union

from ._wsgi_types import Environ
from .protocol.http11 import HTTPError, status_phrase
from .websocket import logger

if TYPE_CHECKING:
    from ._wsgi_types import ExcInfo, Headers, StartResponse

__all__ = [
    "Framework", "Response", "normalize_status", "normalize_headers", "request_path",
    "HeaderItems", "RouteStartResponse", "RouteHandler",
]

# Headers as a route may give them: a dict or (name, value) pairs, names str or
# bytes, values anything (``str()`` makes them text).
HeaderItems = Union[Mapping[str, object], Mapping[bytes, object],
                    Iterable[tuple[Union[str, bytes], object]]]


class RouteStartResponse(Protocol):
    """The forgiving ``start_response`` a route gets (see the module docstring)."""

    def __call__(self, status: int | str | bytes = 200, headers: HeaderItems | None = None,
                 exc_info: ExcInfo | None = None) -> Callable[[object], None]: ...


# A route: a WSGI function that may return anything (str, bytes, a file, ...).
RouteHandler = Callable[[Environ, RouteStartResponse], Any]
RouteHandlerT = TypeVar("RouteHandlerT", bound=RouteHandler)

BLOCK_SIZE = 64 * 1024  # bytes (or characters of a text file) read at a time
DEFAULT_CONTENT_TYPE = "text/html; charset=utf-8"

# Materialized in full, sent with a Content-Length; other iterables are streamed.
_CONTAINERS: tuple[type[Iterable[Any]], ...] = (
    list, tuple, set, frozenset, dict, type({}.keys()), type({}.values()), type({}.items()))


class Response:
    """A body together with its status and headers, for a route that returns one thing.

    ``return Response("gone", 410, {"X-Why": "moved"})``. The status and headers
    are normalized as ``start_response`` normalizes them; headers the route
    gave through ``start_response`` are kept unless the ``Response`` sets the
    same name.

    Args:
        body (object): Anything a route may return (``str``, ``bytes``, a file, an
            iterable, ...).
        status (int | str): ``410``, ``"410"`` or ``"410 Gone"``.
        headers (dict | list[tuple[str, str]] | None): The response headers.

    Raises:
        ValueError: The status is not a valid HTTP status, or a header value
            holds a line break.
        TypeError: The status is neither an ``int`` nor a ``str``, or the
            headers are neither a dict nor pairs.
    """

    __slots__ = ("body", "status", "headers")

    def __init__(self, body: object = b"", status: int | str | bytes = 200,
                 headers: HeaderItems | None = None) -> None:
        self.body = body
        self.status = normalize_status(status)
        self.headers = normalize_headers(headers)

    def __repr__(self) -> str:
        return "<Response %s>" % self.status


def normalize_status(status: int | str | bytes = 200) -> str:
    """``200``, ``"200"``, ``"200 OK"``, ``HTTPStatus.OK`` -> ``"200 OK"``.

    A missing phrase is filled in; a given one is kept as it is.
    """
    if isinstance(status, bool):
        raise TypeError("an HTTP status must be an int or a str, not bool")
    phrase: str | None
    if isinstance(status, int):
        code, phrase = int(status), None
    elif isinstance(status, (str, bytes)):
        text = status.decode("latin-1") if isinstance(status, bytes) else status
        code_text, _, phrase = text.strip().partition(" ")
        if len(code_text) != 3 or not code_text.isdigit() or not code_text.isascii():
            raise ValueError("an HTTP status starts with a three-digit code, "
                             "like 404 or '404 Not Found', not %r" % (status,))
        code, phrase = int(code_text), phrase.strip() or None
    else:
        raise TypeError("an HTTP status must be an int or a str, not %s"
                        % type(status).__name__)
    if not 100 <= code <= 999:
        raise ValueError("an HTTP status code has three digits, not %r" % (status,))
    if phrase is not None and ("\r" in phrase or "\n" in phrase):
        raise ValueError("an HTTP status must not contain a line break: %r" % (status,))
    return "%d %s" % (code, phrase or status_phrase(code))


def normalize_headers(headers: HeaderItems | None) -> Headers:
    """A list of ``(str, str)`` from None, a list of pairs, or a dict (any mapping)."""
    if headers is None:
        return []
    # Anything with .items() counts as a dict.
    items: Iterable[Any] = headers.items() if hasattr(headers, "items") else headers
    if isinstance(items, (str, bytes)):
        raise TypeError("headers must be a list of (name, value) pairs or a dict, not %s"
                        % type(headers).__name__)
    result: Headers = []
    for item in items:
        try:
            name, value = item
        except (TypeError, ValueError):
            raise TypeError("a header must be a (name, value) pair, not %r" % (item,)) from None
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        if not isinstance(name, str) or not name or any(
                char in name for char in " \t\r\n:"):
            raise ValueError("invalid header name %r" % (name,))
        value = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        if "\r" in value or "\n" in value:
            raise ValueError("header %s: a value must not contain a line break" % name)
        result.append((name, value))
    return result


def request_path(environ: Environ) -> str:
    """The request path as text (``PATH_INFO`` holds its UTF-8 bytes as latin-1 characters)."""
    path: str = environ.get("PATH_INFO") or "/"
    try:
        return path.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return path


def _to_bytes(value: object) -> bytes:
    """One piece of a body: str as UTF-8, bytes as they are, None as nothing, else str()."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if value is None:
        return b""
    return str(value).encode("utf-8")


def _close(thing: object) -> None:
    close = getattr(thing, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            logger.exception("error closing %r", thing)


# -- bodies: what a route returned, as a WSGI iterable ------------------------------

class _Stream:
    """A generator or other iterator, sent chunk by chunk as it produces them.

    The first item was taken already (to run the route up to its first
    ``yield``, so its ``start_response`` is known before the headers go).
    """

    def __init__(self, first: bytes, iterator: Iterator[object]) -> None:
        self._first: bytes | None = first
        self._iterator = iterator

    def __iter__(self) -> Iterator[bytes]:
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        for item in self._iterator:
            chunk = _to_bytes(item)
            if chunk:
                yield chunk

    def close(self) -> None:
        _close(self._iterator)


class _FileBody:
    """A file or file-like object read ``BLOCK_SIZE`` at a time, closed at the end."""

    def __init__(self, file: Any, block_size: int = BLOCK_SIZE) -> None:
        self._file = file
        self._block_size = block_size

    def __iter__(self) -> Iterator[bytes]:
        read = self._file.read
        while True:
            block = read(self._block_size)
            if not block:
                return
            yield _to_bytes(block)

    def close(self) -> None:
        _close(self._file)


def _is_binary_file(file: object) -> bool:
    if isinstance(file, (io.BufferedIOBase, io.RawIOBase)):
        return True
    if isinstance(file, io.TextIOBase):
        return False
    mode = getattr(file, "mode", None)
    return isinstance(mode, str) and "b" in mode


def _file_length(file: Any) -> int | None:
    """Bytes left in a regular binary file, or None when it cannot be known cheaply."""
    try:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None
        position: int = file.tell()
        return max(info.st_size - position, 0)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


def _file_content_type(file: object, binary: bool) -> str | None:
    name = getattr(file, "name", None)
    guessed = mimetypes.guess_type(name)[0] if isinstance(name, str) else None
    if guessed is None:
        return "application/octet-stream" if binary and isinstance(name, str) else None
    if guessed.startswith("text/") or not binary:
        return guessed + "; charset=utf-8"
    return guessed


class _Reply:
    """Status, headers and body of one route's answer, gathered before anything is sent."""

    def __init__(self) -> None:
        self.status: str | None = None
        self.headers: Headers = []
        self.early: list[bytes] = []  # what the route passed to write() before its body
        # the server's write(), once the response started
        self.server_write: Callable[[bytes], object] | None = None

    def start_response(self, status: int | str | bytes = 200, headers: HeaderItems | None = None,
                       exc_info: ExcInfo | None = None) -> Callable[[object], None]:
        """The forgiving ``start_response`` a route gets; the last call counts."""
        self.status = normalize_status(status)
        self.headers = normalize_headers(headers)
        return self.write

    def write(self, data: object) -> None:
        """WSGI's legacy ``write()``: kept until the response starts, then passed on."""
        if self.server_write is not None:
            self.server_write(_to_bytes(data))
        else:
            self.early.append(_to_bytes(data))

    def has(self, name: str) -> bool:
        lower = name.lower()
        return any(key.lower() == lower for key, _ in self.headers)

    def drop(self, *names: str) -> None:
        lower = {name.lower() for name in names}
        self.headers = [(key, value) for key, value in self.headers
                        if key.lower() not in lower]

    def apply(self, response: Response) -> None:
        """A returned ``Response``: its status, its headers over the route's."""
        self.status = response.status
        names = {name.lower() for name, _ in response.headers}
        self.headers = [(key, value) for key, value in self.headers
                        if key.lower() not in names] + list(response.headers)


# -- the framework ------------------------------------------------------------------

class Framework:
    """Routes and responses; ``WSocketApp`` mixes this in (see the module docstring).

    ``routes`` maps each route string to its handler, per instance.
    """

    debug = False

    def __init__(self, debug: bool = False) -> None:
        self.routes: dict[str, RouteHandler] = {}
        self.debug = bool(debug)

    def route(self, path: str) -> Callable[[RouteHandlerT], RouteHandlerT]:
        """Decorator: ``@app.route("/hello")`` or, for a prefix, ``@app.route("/static/*")``.

        Registering the same route again replaces its handler.
        """
        if not isinstance(path, str):
            raise TypeError("a route is a str like '/hello' or '/static/*', not %s"
                            % type(path).__name__)
        if not (path.startswith("/") or path == "*"):
            raise ValueError("a route starts with '/' (or is '*' for every path), not %r"
                             % path)

        def register(handler: RouteHandlerT) -> RouteHandlerT:
            if not callable(handler):
                raise TypeError("a route handler must be callable, not %s"
                                % type(handler).__name__)
            self.routes[path] = handler
            return handler
        return register

    def find_route(self, path: str) -> RouteHandler | None:
        """The handler for ``path``: its exact route, else its longest matching prefix."""
        routes = self.routes
        if not routes:
            return None  # (the event app's, at each WebSocket opened)
        handler = routes.get(path)
        if handler is not None:
            return handler
        best: RouteHandler | None = None
        best_length = -1
        for route, candidate in list(routes.items()):  # a route may be added meanwhile
            if route.endswith("*"):
                prefix = route[:-1]
                if len(prefix) > best_length and path.startswith(prefix):
                    best, best_length = candidate, len(prefix)
        return best

    def not_found(self, environ: Environ, start_response: RouteStartResponse) -> str:
        """Answers a request no route matched; override it (in a subclass, or per instance).

        Args:
            environ (dict): The request's WSGI environ.
            start_response (Callable): The forgiving ``start_response`` of routes.

        Returns:
            str: A small HTML page saying nothing is at that path, sent with status 404.
        """
        start_response(404, {"Content-Type": DEFAULT_CONTENT_TYPE})
        path = html.escape(request_path(environ))
        return _PAGE % {"title": "404 Not Found",
                        "text": "<p>Nothing here at <code>%s</code>.</p>" % path}

    def error_page(self, environ: Environ, text: str) -> str:
        """The body of a 500: the traceback ``text`` appears only with ``debug``."""
        detail = ""
        if self.debug:
            detail = "\n<pre>%s</pre>" % html.escape(text)
        return _PAGE % {"title": "500 Internal Server Error",
                        "text": "<p>The server met an error while answering this request."
                                "</p>%s" % detail}

    # -- answering a request ----------------------------------------------------

    def respond(self, handler: RouteHandler, environ: Environ,
                start_response: StartResponse) -> Iterable[bytes]:
        """Run ``handler`` for an HTTP request and turn what it returns into WSGI."""
        reply = _Reply()
        result: Any = None
        try:
            result = handler(environ, reply.start_response)
            body, length = self._make_body(result, reply, environ)
        except HTTPError:
            # wsocket's server refused the request body the route read (malformed,
            # late, too large): the client's fault, which the server answers.
            _close(result.body if isinstance(result, Response) else result)
            raise
        except Exception:
            _close(result.body if isinstance(result, Response) else result)
            websocket = environ.get("wsgi.websocket")
            if websocket is not None and websocket.accepted:
                raise  # no page can go after the 101: the middleware closes with 1011
            text = traceback.format_exc()
            logger.error("error in route handler %s for %s %s\n%s", _name(handler),
                         environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"), text)
            reply = _Reply()
            reply.start_response(500, [("Content-Type", DEFAULT_CONTENT_TYPE)])
            body, length = self._make_body(self.error_page(environ, text), reply, environ)
        return self._send(reply, body, length, environ, start_response)

    def _make_body(self, result: Any, reply: _Reply,
                   environ: Environ) -> tuple[Iterable[bytes], int | None]:
        """(WSGI iterable, its length in bytes or None), for any value a route returned."""
        if isinstance(result, Response):
            reply.apply(result)
            result = result.body
        if result is None:
            return [], 0
        if isinstance(result, (str, bytes, bytearray, memoryview)):
            data = _to_bytes(result)
            return [data], len(data)
        if hasattr(result, "read"):
            return self._file_body(result, reply, environ)
        if isinstance(result, _CONTAINERS):
            chunks = [_to_bytes(item) for item in result]
            return chunks, sum(len(chunk) for chunk in chunks)
        if hasattr(result, "__iter__"):  # generators, iterators, other iterables
            return self._stream_body(result), None
        data = _to_bytes(result)
        return [data], len(data)

    def _stream_body(self, result: Iterable[object]) -> Iterable[bytes]:
        iterator = iter(result)
        try:
            # Run the route to its first non-empty chunk: its start_response
            # calls happen on the way, and a failure there still gets a 500.
            for item in iterator:
                first = _to_bytes(item)
                if first:
                    break
            else:
                _close(iterator)
                return []
        except BaseException:
            _close(iterator)
            raise
        return _Stream(first, iterator)

    def _file_body(self, file: Any, reply: _Reply,
                   environ: Environ) -> tuple[Iterable[bytes], int | None]:
        binary = _is_binary_file(file)
        if not reply.has("Content-Type"):
            content_type = _file_content_type(file, binary)
            if content_type:
                reply.headers.append(("Content-Type", content_type))
        length = _file_length(file) if binary else None
        wrapper = environ.get("wsgi.file_wrapper")
        if binary and wrapper is not None:
            return wrapper(file, BLOCK_SIZE), length
        return _FileBody(file), length

    def _send(self, reply: _Reply, body: Iterable[bytes], length: int | None, environ: Environ,
              start_response: StartResponse) -> Iterable[bytes]:
        """Fill in what the route left out, drop what must not go, start the response."""
        if reply.status is None:
            reply.status = "200 OK"
        code = int(reply.status[:3])
        # Framing belongs to the server (PEP 3333: no hop-by-hop headers from apps).
        reply.drop("Transfer-Encoding")
        no_body = code < 200 or code in (204, 304)
        if no_body:
            reply.drop("Content-Length")  # RFC 9110 8.6 and 15.4.5
        else:
            if not reply.has("Content-Type"):
                reply.headers.append(("Content-Type", DEFAULT_CONTENT_TYPE))
            if length is not None and not reply.has("Content-Length"):
                early = sum(len(chunk) for chunk in reply.early)
                reply.headers.append(("Content-Length", str(length + early)))
        if no_body or environ.get("REQUEST_METHOD") == "HEAD":
            _close(body)
            start_response(reply.status, reply.headers)
            # An iterator, not []: a server may take an empty list for a body
            # of length 0 and say so, which a HEAD must not when it is unknown.
            return iter(())
        reply.server_write = start_response(reply.status, reply.headers)
        if reply.early:
            return _Chain(reply.early, body)
        return body


class _Chain:
    """What a route passed to ``write()``, then its body."""

    def __init__(self, early: list[bytes], body: Iterable[bytes]) -> None:
        self._early = early
        self._body = body

    def __iter__(self) -> Iterator[bytes]:
        yield from self._early
        yield from self._body

    def close(self) -> None:
        _close(self._body)


def _name(handler: object) -> str:
    return getattr(handler, "__qualname__", None) or repr(handler)


_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>%(title)s</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:48rem;margin:3rem auto;padding:0 1rem;\
color:#1f2328}h1{font-size:1.5rem}pre{background:#f6f8fa;padding:1rem;overflow:auto;\
border-radius:6px;font-size:.85rem}</style></head>
<body>
<h1>%(title)s</h1>
%(text)s
</body>
</html>
"""
