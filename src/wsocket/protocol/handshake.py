"""The opening handshake (RFC 6455 section 4) as pure functions.

The server side reads the request headers (as a dict of lower-case names,
``headers_from_environ`` makes one from a WSGI environ) and either returns
what the 101 response needs or raises ``HandshakeError`` with the status to
answer. The client side builds a request and checks the server's answer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn, Union

from ..errors import HandshakeError
from .deflate import accept_client_response, client_offer, negotiate_server

if TYPE_CHECKING:
    from .._wsgi_types import Environ, Headers
    from .deflate import DeflateParams

__all__ = [
    "GUID", "SUPPORTED_VERSIONS", "accept_key", "headers_from_environ",
    "is_upgrade_request", "ServerHandshake", "server_handshake",
    "choose_subprotocol", "split_header", "make_key", "client_request",
    "check_response", "check_extra_headers", "HANDSHAKE_HEADERS", "ExtraHeaders",
]

# Headers an application or a client adds: a dict or (name, value) pairs.
ExtraHeaders = Union[Mapping[str, str], Iterable[tuple[str, str]]]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 1.3
SUPPORTED_VERSIONS = (13, 8, 7)
_VERSIONS_HEADER = ("Sec-WebSocket-Version", ", ".join(map(str, SUPPORTED_VERSIONS)))


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key."""
    return _accept_bytes(key).decode("ascii")


def _accept_bytes(key: str) -> bytes:
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    # (binascii directly: base64.b64encode is a Python call around it, once per handshake)
    return binascii.b2a_base64(digest, newline=False)


def make_key() -> str:
    """A fresh Sec-WebSocket-Key: 16 random bytes, base64."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


# environ key -> header name ("" for a key that is not a header), for the
# keys seen most: one dict look-up per key instead of a string test or three.
_header_names: dict[str, str] = {}


def _header_name(key: str) -> str:
    """``x-name`` for ``HTTP_X_NAME``; "" for a key that is not a header's."""
    name = key[5:].replace("_", "-").lower() if key.startswith("HTTP_") else ""
    if len(_header_names) < 1024:
        _header_names[key] = name
    return name


def headers_from_environ(environ: Environ) -> dict[str, str]:
    """The request headers of a WSGI environ as ``{lower-case name: value}``."""
    # Every key named at once, in C (the keys are most often all known): a
    # Python turn per key was a tenth of what opening a WebSocket costs.
    # (None: a key not named yet)
    headers: dict[Any, str] = dict(zip(map(_header_names.get, environ.keys()),
                                       environ.values()))
    if None in headers:  # a key not seen before: each named in turn (and remembered)
        headers = {}
        for key, value in environ.items():
            name = _header_names.get(key)
            headers[_header_name(key) if name is None else name] = value
    headers.pop("", None)  # the keys that are no header's
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    if environ.get("CONTENT_LENGTH"):
        headers["content-length"] = environ["CONTENT_LENGTH"]
    return headers


def split_header(value: str | None) -> list[str]:
    """The comma-separated tokens of a header value, stripped, empty ones dropped."""
    if not value:
        return []
    return [item.strip() for item in value.split(",") if item.strip()]


def _has_token(value: str | None, token: str) -> bool:
    """Whether the comma-separated ``value`` lists ``token`` (lower-case), in any case."""
    if not value:
        return False
    value = value.lower()
    if value == token:  # the usual: the token alone
        return True
    return token in value and any(item.strip() == token for item in value.split(","))


def is_upgrade_request(headers: Mapping[str, str]) -> bool:
    """Whether the request asks for a WebSocket at all (``Upgrade: websocket``).

    Requests that do not are plain HTTP and pass through to the application;
    those that do but get the rest wrong deserve a clear 400.
    """
    value = headers.get("upgrade")
    return value == "websocket" or _has_token(value, "websocket")  # (the usual, at once)


def choose_subprotocol(offered: str | Iterable[str] | None,
                       supported: Iterable[str] | None) -> str | None:
    """The first of the server's ``supported`` protocols that the client offered."""
    offered_list = split_header(offered) if isinstance(offered, str) else list(offered or ())
    for protocol in supported or ():
        if protocol in offered_list:
            return protocol
    return None


# Names the 101 response gets from the handshake itself, never from the app.
HANDSHAKE_HEADERS = frozenset(("upgrade", "connection"))
_HANDSHAKE_PREFIX = "sec-websocket-"
# RFC 9110 5.6.2: a header name is a token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_FORBIDDEN_IN_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def check_extra_headers(headers: ExtraHeaders | None) -> Headers:
    """``headers`` (pairs or a dict) an app adds to the 101, as a list of ``(str, str)``.

    Raises ValueError for a name the handshake owns (Upgrade, Connection,
    Sec-WebSocket-*), a name that is not a token, or a value holding a
    control character (CR and LF would split the response).
    """
    if headers is None:
        return []
    # Anything with .items() counts as a dict (werkzeug's Headers, say).
    items: Iterable[Any] = headers.items() if hasattr(headers, "items") else headers
    if isinstance(items, (str, bytes)):
        raise TypeError("headers are a list of (name, value) pairs or a dict, not %s"
                        % type(headers).__name__)
    checked: Headers = []
    for item in items:
        try:
            name, value = item
        except (TypeError, ValueError):
            raise TypeError("a header is a (name, value) pair, not %r" % (item,)) from None
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("a header name and value are str, not %r" % (item,))
        if not _TOKEN.match(name):
            raise ValueError("invalid header name %r" % name)
        lower = name.lower()
        if lower in HANDSHAKE_HEADERS or lower.startswith(_HANDSHAKE_PREFIX):
            raise ValueError("the handshake sets %s itself; choose a subprotocol with "
                             "accept(protocol=...)" % name)
        if _FORBIDDEN_IN_VALUE.search(value):
            raise ValueError("header %s: the value holds a control character" % name)
        checked.append((name, value))
    return checked


# The 101 up to its accept key, when nothing else is agreed.
_USUAL_RESPONSE_START = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: ")
# A Sec-WebSocket-Key: base64 (the strict alphabet, its padding) of 16 bytes.
_KEY = re.compile(r"[A-Za-z0-9+/]{22}==")


class ServerHandshake:
    """An accepted handshake: what the 101 response carries and what was agreed."""

    __slots__ = ("key", "version", "subprotocol", "deflate", "origin", "offered")

    def __init__(self, key: str, version: int, subprotocol: str | None,
                 deflate: DeflateParams | None, origin: str | None,
                 offered: Iterable[str] = ()) -> None:
        self.key = key
        self.version = version
        self.subprotocol = subprotocol  # the server's choice; accept(protocol=) may change it
        self.deflate = deflate  # DeflateParams, or None
        self.origin = origin
        self.offered = tuple(offered)  # the subprotocols the client offered, in its order

    @property
    def headers(self) -> Headers:
        """The 101 response headers."""
        return self.response_headers(self.subprotocol)

    def response_headers(self, subprotocol: str | None,
                         extra: Iterable[tuple[str, str]] = ()) -> Headers:
        """The 101's headers with ``subprotocol`` chosen and ``extra`` (checked) added."""
        headers = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", accept_key(self.key)),
        ]
        if subprotocol is not None:
            headers.append(("Sec-WebSocket-Protocol", subprotocol))
        if self.deflate is not None:
            headers.append(("Sec-WebSocket-Extensions", self.deflate.header_value()))
        headers.extend(extra)
        return headers

    def response(self, subprotocol: str | None,
                 extra: Iterable[tuple[str, str]] = ()) -> bytes:
        """The bytes of the 101 response."""
        if subprotocol is None and self.deflate is None and not extra:
            # The most 101s: nothing to list but the accept key.
            return b"".join((_USUAL_RESPONSE_START, _accept_bytes(self.key), b"\r\n\r\n"))
        lines = ["HTTP/1.1 101 Switching Protocols"]
        for name, value in self.response_headers(subprotocol, extra):
            lines.append("%s: %s" % (name, value))
        lines.append("\r\n")
        return "\r\n".join(lines).encode("latin-1")


def server_handshake(headers: Mapping[str, str], method: str = "GET",
                     http_version: str = "HTTP/1.1", protocols: Iterable[str] | None = None,
                     allowed_origins: Iterable[str | None] | None = None,
                     compression: bool = True) -> ServerHandshake:
    """Check an upgrade request; returns a ``ServerHandshake``.

    Raises ``HandshakeError`` with status 400 (malformed), 426 (missing or
    unsupported version, with the versions we speak) or 403 (origin not
    allowed). ``allowed_origins`` None allows every origin.
    """
    if method != "GET":
        raise HandshakeError("WebSocket upgrade requires GET, not %s" % method, 400)
    if http_version != "HTTP/1.1" and http_version.upper() != "HTTP/1.1":
        raise HandshakeError("WebSocket upgrade requires HTTP/1.1, not %s" % http_version, 400)
    if not is_upgrade_request(headers):
        raise HandshakeError("missing header: Upgrade: websocket", 400)
    connection = headers.get("connection")
    if connection != "Upgrade" and not _has_token(connection, "upgrade"):
        raise HandshakeError("missing header: Connection: Upgrade", 400)
    if has_body(headers):
        # Its bytes would be read as WebSocket frames after the 101.
        raise HandshakeError("a WebSocket upgrade request has no body (it has %s)" % (
            "Transfer-Encoding" if "transfer-encoding" in headers else "Content-Length"), 400)

    version_header = headers.get("sec-websocket-version")
    if version_header is None:
        raise HandshakeError("missing header: Sec-WebSocket-Version", 426, [_VERSIONS_HEADER])
    version = version_header.strip()
    # isascii(): str.isdigit() also accepts digits int() refuses, such as "\xb2".
    if version != "13" and (not (version.isascii() and version.isdigit())
                            or int(version) not in SUPPORTED_VERSIONS):
        raise HandshakeError("unsupported Sec-WebSocket-Version: %s" % version_header, 426,
                             [_VERSIONS_HEADER])

    key_header = headers.get("sec-websocket-key")
    if key_header is None:
        raise HandshakeError("missing header: Sec-WebSocket-Key", 400)
    key = key_header.strip()
    if _KEY.fullmatch(key) is None:
        raise HandshakeError("invalid Sec-WebSocket-Key: not base64 of 16 bytes", 400)

    # Versions 7 and 8 (drafts of the RFC) named the header Sec-WebSocket-Origin.
    origin = headers.get("origin", headers.get("sec-websocket-origin"))
    if allowed_origins is not None and origin not in allowed_origins:
        raise HandshakeError("origin not allowed: %s" % origin, 403)

    offered = split_header(headers.get("sec-websocket-protocol"))
    subprotocol = choose_subprotocol(offered, protocols) if offered and protocols else None
    deflate = None
    if compression and headers.get("sec-websocket-extensions"):
        deflate = negotiate_server(headers["sec-websocket-extensions"])
    return ServerHandshake(key, int(version), subprotocol, deflate, origin, offered)


def has_body(headers: Mapping[str, str]) -> bool:
    """Whether a request announces a body: any Transfer-Encoding, or a Content-Length but 0."""
    if "transfer-encoding" in headers:
        return True
    length = headers.get("content-length", "").strip()
    return bool(length) and length.strip("0") != ""


# -- client side ------------------------------------------------------------------

def client_request(host: str, resource: str, key: str,
                   protocols: Iterable[str] | None = None, origin: str | None = None,
                   compression: bool = True,
                   extra_headers: Iterable[tuple[str, str]] = ()) -> bytes:
    """The bytes of a client's upgrade request."""
    lines = [
        "GET %s HTTP/1.1" % resource,
        "Host: %s" % host,
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: %s" % key,
        "Sec-WebSocket-Version: 13",
    ]
    if origin is not None:
        lines.append("Origin: %s" % origin)
    if protocols:
        lines.append("Sec-WebSocket-Protocol: %s" % ", ".join(protocols))
    if compression:
        lines.append("Sec-WebSocket-Extensions: %s" % client_offer())
    for name, value in extra_headers:
        lines.append("%s: %s" % (name, value))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def check_response(status: int, headers: Mapping[str, str], key: str,
                   protocols: Iterable[str] | None = None,
                   compression: bool = True) -> tuple[str | None, DeflateParams | None]:
    """Check a server's answer to ``client_request``.

    ``headers`` maps lower-case names to values. Returns
    ``(subprotocol, deflate_params)``; raises ``HandshakeError`` carrying
    the server's status and headers when the answer is not a valid 101.
    """
    header_list = list(headers.items())
    if status != 101:
        raise HandshakeError("server answered %d instead of 101 Switching Protocols" % status,
                             status, header_list)

    def refuse(message: str) -> NoReturn:
        raise HandshakeError(message, status, header_list)

    if not _has_token(headers.get("upgrade"), "websocket"):
        refuse("server's 101 lacks Upgrade: websocket")
    if not _has_token(headers.get("connection"), "upgrade"):
        refuse("server's 101 lacks Connection: Upgrade")
    if headers.get("sec-websocket-accept", "").strip() != accept_key(key):
        refuse("server sent a wrong Sec-WebSocket-Accept")
    subprotocol = headers.get("sec-websocket-protocol")
    if subprotocol is not None:
        subprotocol = subprotocol.strip()
        if subprotocol not in (protocols or ()):
            refuse("server chose a subprotocol that was not offered: %s" % subprotocol)
    extensions = headers.get("sec-websocket-extensions")
    if extensions and not compression:
        refuse("server accepted an extension that was not offered: %s" % extensions)
    try:
        deflate = accept_client_response(extensions)
    except HandshakeError as error:
        refuse(str(error))
    return subprotocol, deflate
