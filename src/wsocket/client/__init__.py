"""A blocking client: ``wsocket.connect(url)`` returns a client-side ``WebSocket``.

Same object, same methods as on the server, over the same sans-I/O core;
the client masks what it sends and checks the server's 101 against what it
offered. It goes through HTTP CONNECT and SOCKS5 proxies (``proxy.py``),
follows redirects, and with ``reconnect=True`` keeps a connection up
(``reconnect.py``). ``python -m wsocket.client URL`` (or ``wsocket connect
URL``, see ``__main__.py``) is a small terminal client.
"""

from __future__ import annotations

import base64
import re
import socket
import ssl
import time
from typing import TYPE_CHECKING, Literal, overload
from urllib.parse import unquote, urljoin, urlsplit

from ..errors import ConnectError, HandshakeError, InvalidStatus
from ..options import DEFAULT_MAX_QUEUE, WebSocketOptions
from ..protocol.connection import CLIENT, DEFAULT_MAX_MESSAGE_SIZE
from ..protocol.deflate import DEFAULT_COMPRESSION_LEVEL
from ..protocol.handshake import check_response, client_request, make_key
from ..websocket import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_PING_INTERVAL,
    DEFAULT_PING_TIMEOUT,
    WebSocket,
)
from .httphead import ResponseHead, read_response_head
from .proxy import Proxy, proxy_from_environment
from .reconnect import RECONNECT_CODES, Backoff, Reconnecting

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["connect", "Reconnecting", "RECONNECT_CODES", "REDIRECT_STATUSES", "MAX_REDIRECTS"]

MAX_ERROR_BODY = 64 * 1024
MAX_REDIRECTS = 10
REDIRECT_STATUSES = frozenset({301, 302, 307, 308})
# Headers that carry the user's credentials for one origin: not sent to another.
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")  # RFC 9110 token: a header name
_FORBIDDEN_IN_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # CR, LF, NUL and friends


class _Target:
    """What a ws:// or wss:// URL says: where to connect and what to ask for."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss"):
            raise ValueError("not a WebSocket URL (ws:// or wss://): %r" % url)
        if not parts.hostname:
            raise ValueError("no host in URL %r" % url)
        self.secure = parts.scheme == "wss"
        self.host = parts.hostname
        try:
            self.port = parts.port or (443 if self.secure else 80)
        except ValueError:
            raise ValueError("invalid port in URL %r" % url) from None
        self.resource = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        self.path = parts.path or "/"
        host = "[%s]" % self.host if ":" in self.host else self.host
        default_port = 443 if self.secure else 80
        self.host_header = host if self.port == default_port else "%s:%d" % (host, self.port)
        self.authorization: str | None = None
        if parts.username is not None:
            credentials = "%s:%s" % (unquote(parts.username), unquote(parts.password or ""))
            self.authorization = "Basic " + base64.b64encode(credentials.encode()).decode()
        self.url = url
        # The URL without its userinfo: what messages show.
        netloc = parts.netloc.rpartition("@")[2]
        self.display = "%s://%s%s" % (parts.scheme, netloc, self.resource)
        self.origin = (self.secure, self.host.lower(), self.port)


@overload
def connect(url: str, protocols: Iterable[str] | None = None,
            headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
            origin: str | None = None, compression: bool = True,
            max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE, open_timeout: float = 10,
            ping_interval: float | None = DEFAULT_PING_INTERVAL,
            ping_timeout: float | None = DEFAULT_PING_TIMEOUT,
            close_timeout: float | None = DEFAULT_CLOSE_TIMEOUT,
            ssl_context: ssl.SSLContext | None = None,
            websocket_class: type[WebSocket] = WebSocket, *,
            proxy: str | bool | None = True, max_redirects: int = MAX_REDIRECTS,
            reconnect: Literal[False] = False,
            backoff_initial: float = 1.0, backoff_max: float = 60.0,
            backoff_factor: float = 2.0, backoff_jitter: float = 0.5,
            max_queue: int | None = DEFAULT_MAX_QUEUE, max_fragments: int | None = None,
            compression_level: int = DEFAULT_COMPRESSION_LEVEL) -> WebSocket: ...


@overload
def connect(url: str, protocols: Iterable[str] | None = None,
            headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
            origin: str | None = None, compression: bool = True,
            max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE, open_timeout: float = 10,
            ping_interval: float | None = DEFAULT_PING_INTERVAL,
            ping_timeout: float | None = DEFAULT_PING_TIMEOUT,
            close_timeout: float | None = DEFAULT_CLOSE_TIMEOUT,
            ssl_context: ssl.SSLContext | None = None,
            websocket_class: type[WebSocket] = WebSocket, *,
            proxy: str | bool | None = True, max_redirects: int = MAX_REDIRECTS,
            reconnect: Literal[True],
            backoff_initial: float = 1.0, backoff_max: float = 60.0,
            backoff_factor: float = 2.0, backoff_jitter: float = 0.5,
            max_queue: int | None = DEFAULT_MAX_QUEUE, max_fragments: int | None = None,
            compression_level: int = DEFAULT_COMPRESSION_LEVEL) -> Reconnecting: ...


@overload
def connect(url: str, protocols: Iterable[str] | None = None,
            headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
            origin: str | None = None, compression: bool = True,
            max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE, open_timeout: float = 10,
            ping_interval: float | None = DEFAULT_PING_INTERVAL,
            ping_timeout: float | None = DEFAULT_PING_TIMEOUT,
            close_timeout: float | None = DEFAULT_CLOSE_TIMEOUT,
            ssl_context: ssl.SSLContext | None = None,
            websocket_class: type[WebSocket] = WebSocket, *,
            proxy: str | bool | None = True, max_redirects: int = MAX_REDIRECTS,
            reconnect: bool = False,
            backoff_initial: float = 1.0, backoff_max: float = 60.0,
            backoff_factor: float = 2.0, backoff_jitter: float = 0.5,
            max_queue: int | None = DEFAULT_MAX_QUEUE, max_fragments: int | None = None,
            compression_level: int = DEFAULT_COMPRESSION_LEVEL,
            ) -> WebSocket | Reconnecting: ...


def connect(url: str, protocols: Iterable[str] | None = None,
            headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
            origin: str | None = None, compression: bool = True,
            max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE, open_timeout: float = 10,
            ping_interval: float | None = DEFAULT_PING_INTERVAL,
            ping_timeout: float | None = DEFAULT_PING_TIMEOUT,
            close_timeout: float | None = DEFAULT_CLOSE_TIMEOUT,
            ssl_context: ssl.SSLContext | None = None,
            websocket_class: type[WebSocket] = WebSocket, *,
            proxy: str | bool | None = True, max_redirects: int = MAX_REDIRECTS,
            reconnect: bool = False,
            backoff_initial: float = 1.0, backoff_max: float = 60.0,
            backoff_factor: float = 2.0, backoff_jitter: float = 0.5,
            max_queue: int | None = DEFAULT_MAX_QUEUE, max_fragments: int | None = None,
            compression_level: int = DEFAULT_COMPRESSION_LEVEL,
            ) -> WebSocket | Reconnecting:
    """Open a WebSocket connection to ``url`` and return the connected ``WebSocket``.

    ``protocols`` are offered in order; ``headers`` (a dict or pairs) go
    into the request. ``wss://`` verifies the server against the system's
    trust store unless ``ssl_context`` says otherwise.

    ``proxy``: True (the default) takes the proxy from the environment
    (``wss_proxy``/``ws_proxy``, ``socks_proxy``, ``https_proxy``,
    ``http_proxy`` for ws:// only, ``all_proxy``, minus ``no_proxy``), a URL
    (``http://``, ``socks5://``, ``socks5h://``, credentials in its
    userinfo) names one, None or False connects directly.

    Redirects (301, 302, 307, 308) are followed up to ``max_redirects``
    times; Authorization, Cookie and Proxy-Authorization headers are not
    sent to another origin, and wss:// is never redirected to ws://.

    Raises ``ConnectError`` when the server or the proxy cannot be reached
    or refuses, within ``open_timeout`` seconds (for the whole opening,
    redirects included), ``InvalidStatus`` when the server answers without
    a 101 (or with a redirect that cannot be followed), and
    ``HandshakeError`` when its 101 does not fit what was offered.

    With ``reconnect=True`` it returns instead an iterator of connections
    (``for ws in connect(url, reconnect=True): ...``) that connects again,
    after a delay from ``backoff_initial`` seconds growing by
    ``backoff_factor`` up to ``backoff_max``, each delay shortened at
    random by up to ``backoff_jitter`` of itself, when a connection drops
    (codes ``RECONNECT_CODES``) or an attempt fails for a reason that may
    pass (see ``wsocket.client.reconnect``).

    Args:
        url (str): ``ws://host[:port]/path?query`` or ``wss://...``; a
            ``user:password@`` in it becomes an ``Authorization: Basic`` header.
        protocols (list[str] | None): Subprotocols to offer, in order.
        headers (dict | list[tuple[str, str]] | None): Extra request headers.
        origin (str | None): The ``Origin`` header to send.
        compression (bool): Offer permessage-deflate.
        max_message_size (int | None): Bytes per message received; None: no limit.
        open_timeout (float): Seconds for the whole opening: connecting, the
            proxy, TLS, redirects and the handshake.
        ping_interval (float | None): As on the server.
        ping_timeout (float | None): As on the server.
        close_timeout (float): As on the server.
        ssl_context (ssl.SSLContext | None): For ``wss://``: None verifies
            against the system's trust store.
        websocket_class (type[WebSocket]): The class of the returned WebSocket.
        proxy (str | bool | None): True: from the environment; a URL; None: direct.
        max_redirects (int): Redirects followed at most.
        reconnect (bool): Return an iterator of connections that reconnects.
        backoff_initial (float): First delay before reconnecting, in seconds.
        backoff_max (float): Longest delay.
        backoff_factor (float): Growth of the delay after each failed attempt.
        backoff_jitter (float): Fraction of each delay taken off at random.
        max_queue (int | None): As on the server: bytes that may wait for the
            server to read (frames handed over without blocking); None: no limit.
        max_fragments (int | None): As on the server: frames in one message received.
        compression_level (int): zlib's level for what is sent compressed, 1 to 9.

    Returns:
        WebSocket: The open connection (client side: ``with`` closes it), or
        with ``reconnect=True`` a ``Reconnecting`` iterator of connections.

    Raises:
        ValueError: ``url`` is not a ``ws://`` or ``wss://`` URL with a host,
            or an option is out of range.
        ConnectError: The server or the proxy cannot be reached, or the proxy refuses.
        InvalidStatus: The server answered without a 101, or with a redirect
            that cannot be followed.
        HandshakeError: The 101 does not fit what was offered.
    """
    options = WebSocketOptions(
        max_message_size=max_message_size, ping_interval=ping_interval,
        ping_timeout=ping_timeout, close_timeout=close_timeout, max_queue=max_queue,
        max_fragments=max_fragments, compression_level=compression_level)
    opener = _Opener(url, protocols, headers, origin, compression, open_timeout, ssl_context,
                     proxy, max_redirects, options, websocket_class)
    if reconnect:
        backoff = Backoff(backoff_initial, backoff_max, backoff_factor, backoff_jitter)
        return Reconnecting(opener.open, backoff, opener.target.display)
    return opener.open()


class _Opener:
    """One opening: the settings of a ``connect()`` call, checked; ``open()`` runs it."""

    def __init__(self, url: str, protocols: Iterable[str] | None,
                 headers: Mapping[str, str] | Iterable[tuple[str, str]] | None,
                 origin: str | None, compression: bool, open_timeout: float,
                 ssl_context: ssl.SSLContext | None, proxy: str | bool | None,
                 max_redirects: int, websocket_options: WebSocketOptions,
                 websocket_class: type[WebSocket]) -> None:
        self.target = _Target(url)
        self.protocols = list(protocols) if protocols else None
        self.headers = _checked_headers(headers)
        self.origin = origin
        self.compression = compression
        if not isinstance(open_timeout, (int, float)) or open_timeout <= 0:
            raise ValueError("open_timeout must be a number of seconds > 0, not %r"
                             % (open_timeout,))
        self.open_timeout = open_timeout
        self.ssl_context = ssl_context
        self.proxy: Proxy | Literal[True] | None  # True: from the environment, for each target
        if proxy is True:
            self.proxy = True
        elif proxy is None or proxy is False:
            self.proxy = None
        elif isinstance(proxy, str):
            self.proxy = Proxy(proxy)
        else:
            raise ValueError("proxy must be a proxy URL, True (from the environment) or None, "
                             "not %r" % (proxy,))
        if not isinstance(max_redirects, int) or max_redirects < 0:
            raise ValueError("max_redirects must be an int >= 0, not %r" % (max_redirects,))
        self.max_redirects = max_redirects
        self.websocket_options = websocket_options
        self.websocket_class = websocket_class

    def open(self) -> WebSocket:
        """Connect, following redirects; returns the WebSocket."""
        deadline = time.monotonic() + self.open_timeout
        target = self.target
        headers = list(self.headers)
        if target.authorization and not _has(headers, "authorization"):
            headers.append(("Authorization", target.authorization))
        redirects = 0
        while True:
            sock = self._open_socket(target, deadline)
            try:
                key = make_key()
                sock.sendall(client_request(target.host_header, target.resource, key,
                                            self.protocols, self.origin, self.compression,
                                            headers))
                head = read_response_head(sock, deadline, target.display,
                                          malformed=lambda message: HandshakeError(message, 0))
                if head.status == 101:
                    subprotocol, deflate = check_response(
                        head.status, head.headers, key, self.protocols, self.compression)
                    break
                if head.status not in REDIRECT_STATUSES or self.max_redirects == 0:
                    raise self._refusal(sock, head, deadline, "server at %s answered %d "
                                        "instead of 101 Switching Protocols"
                                        % (target.display, head.status))
                location = head.headers.get("location")
                if location is None:
                    raise self._refusal(sock, head, deadline, "server at %s answered %d without "
                                        "a Location header" % (target.display, head.status))
                new_target = _redirect_target(target.url, location)
                if new_target is None:
                    raise self._refusal(sock, head, deadline, "server at %s redirected to %r, "
                                        "which is not a ws://, wss://, http:// or https:// URL"
                                        % (target.display, location[:200]))
                if target.secure and not new_target.secure:
                    raise self._refusal(sock, head, deadline, "refused to follow the redirect "
                                        "from %s to %s: it would drop TLS"
                                        % (target.display, new_target.display))
                redirects += 1
                if redirects > self.max_redirects:
                    raise self._refusal(sock, head, deadline, "too many redirects (more than "
                                        "%d), the last from %s to %s"
                                        % (self.max_redirects, target.display,
                                           new_target.display))
            except BaseException:
                sock.close()
                raise
            sock.close()
            headers = _headers_for_redirect(headers, target, new_target)
            target = new_target
        sock.settimeout(None)  # the WebSocket waits with poll, never with socket timeouts
        return self.websocket_class(
            sock, {}, side=CLIENT, subprotocol=subprotocol, deflate=deflate, origin=self.origin,
            path=target.path, initial_data=head.leftover, options=self.websocket_options)

    def _open_socket(self, target: _Target, deadline: float) -> socket.socket:
        """TCP to the server, directly or through the proxy; then TLS for wss://."""
        proxy = self.proxy
        if proxy is True:
            url = proxy_from_environment(target.host, target.port, target.secure)
            proxy = Proxy(url) if url else None
        if proxy is None:
            sock = _direct_connection(target, deadline, self.open_timeout)
        else:
            sock = proxy.open_tunnel(target.host, target.port, deadline)
        if not target.secure:
            return sock
        # Through a proxy too, TLS runs with the origin: its name for SNI and
        # for the certificate check.
        context = self.ssl_context or ssl.create_default_context()
        try:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            return context.wrap_socket(sock, server_hostname=target.host)
        except socket.timeout:
            sock.close()
            raise ConnectError("timed out after %g s in the TLS handshake with %s"
                               % (self.open_timeout, target.display)) from None
        except (ssl.SSLError, OSError) as error:
            sock.close()
            raise ConnectError("TLS handshake with %s failed: %s"
                               % (target.display, error)) from error

    def _refusal(self, sock: socket.socket, head: ResponseHead, deadline: float,
                 message: str) -> InvalidStatus:
        body = _read_error_body(sock, head, deadline)
        return InvalidStatus(message, head.status, head.header_list, body)


def _direct_connection(target: _Target, deadline: float, open_timeout: float) -> socket.socket:
    try:
        sock = socket.create_connection((target.host, target.port),
                                        timeout=max(deadline - time.monotonic(), 0.001))
    except socket.timeout:
        raise ConnectError("timed out after %g s connecting to %s"
                           % (open_timeout, target.display)) from None
    except OSError as error:
        raise ConnectError("cannot connect to %s: %s" % (target.display, error)) from error
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _checked_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]] | None,
                     ) -> list[tuple[str, str]]:
    """The extra request headers as pairs; ValueError for what could split the request."""
    pairs = list(headers.items() if isinstance(headers, dict) else headers or ())
    checked: list[tuple[str, str]] = []
    for pair in pairs:
        try:
            name, value = pair
        except (TypeError, ValueError):
            raise ValueError("headers must be a dict or (name, value) pairs, not %r"
                             % (pair,)) from None
        name, value = str(name), str(value)
        if not _TOKEN.match(name):
            raise ValueError("invalid header name %r" % name)
        if _FORBIDDEN_IN_VALUE.search(value):
            raise ValueError("invalid character (CR, LF or another control) in the value of "
                             "header %r" % name)
        checked.append((name, value))
    return checked


def _has(headers: list[tuple[str, str]], name: str) -> bool:
    return any(existing.lower() == name for existing, _ in headers)


def _redirect_target(current_url: str, location: str) -> _Target | None:
    """The ``_Target`` a Location leads to (relative ones resolved), or None if not ws/http."""
    url = urljoin(current_url, location.strip())
    scheme, sep, rest = url.partition("://")
    scheme = {"http": "ws", "https": "wss"}.get(scheme.lower(), scheme.lower())
    if not sep or scheme not in ("ws", "wss"):
        return None
    try:
        return _Target(scheme + "://" + rest)
    except ValueError:
        return None


def _headers_for_redirect(headers: list[tuple[str, str]], old: _Target,
                          new: _Target) -> list[tuple[str, str]]:
    """The request headers for ``new``: credentials stay with their origin."""
    if new.origin != old.origin:
        headers = [(name, value) for name, value in headers
                   if name.lower() not in _CREDENTIAL_HEADERS]
    if new.authorization:  # credentials in the new URL itself replace the old
        headers = [(name, value) for name, value in headers if name.lower() != "authorization"]
        headers.append(("Authorization", new.authorization))
    return headers


def _read_error_body(sock: socket.socket, head: ResponseHead, deadline: float) -> bytes:
    """Up to 64 KiB of a refusal's body, for the exception (best effort)."""
    body = head.leftover
    length = head.headers.get("content-length", "")
    wanted = min(int(length), MAX_ERROR_BODY) if length.isdigit() else 0
    try:
        while len(body) < wanted:
            remaining = min(deadline, time.monotonic() + 2) - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    except OSError:
        pass
    return body[:MAX_ERROR_BODY]
