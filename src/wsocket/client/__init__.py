"""A blocking client: ``wsocket.connect(url)`` returns a client-side ``WebSocket``.

Same object, same methods as on the server, over the same sans-I/O core;
the client masks what it sends and checks the server's 101 against what it
offered. ``python -m wsocket.client URL`` (or ``wsocket connect URL``, see
``__main__.py``) is a small terminal client.
"""

import base64
import socket
import ssl
import time
from urllib.parse import unquote, urlsplit

from ..errors import ConnectError, HandshakeError, InvalidStatus
from ..protocol.connection import CLIENT, DEFAULT_MAX_MESSAGE_SIZE
from ..protocol.handshake import check_response, client_request, make_key
from ..websocket import (
    DEFAULT_CLOSE_TIMEOUT, DEFAULT_PING_INTERVAL, DEFAULT_PING_TIMEOUT, WebSocket,
)

__all__ = ["connect"]

MAX_RESPONSE_HEAD = 64 * 1024
MAX_ERROR_BODY = 64 * 1024


class _Target:
    """What a ws:// or wss:// URL says: where to connect and what to ask for."""

    def __init__(self, url):
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
        self.authorization = None
        if parts.username is not None:
            credentials = "%s:%s" % (unquote(parts.username), unquote(parts.password or ""))
            self.authorization = "Basic " + base64.b64encode(credentials.encode()).decode()
        self.url = url


def connect(url, protocols=None, headers=None, origin=None, compression=True,
            max_message_size=DEFAULT_MAX_MESSAGE_SIZE, open_timeout=10,
            ping_interval=DEFAULT_PING_INTERVAL, ping_timeout=DEFAULT_PING_TIMEOUT,
            close_timeout=DEFAULT_CLOSE_TIMEOUT, ssl_context=None, websocket_class=WebSocket):
    """Open a WebSocket connection to ``url`` and return the connected ``WebSocket``.

    ``protocols`` are offered in order; ``headers`` (a dict or pairs) go
    into the request. ``wss://`` verifies the server against the system's
    trust store unless ``ssl_context`` says otherwise. Raises
    ``ConnectError`` when the server cannot be reached within
    ``open_timeout`` seconds, ``InvalidStatus`` when it answers without a
    101, and ``HandshakeError`` when its 101 does not fit what was offered.

    Args:
        url (str): ``ws://host[:port]/path?query`` or ``wss://...``; a
            ``user:password@`` in it becomes an ``Authorization: Basic`` header.
        protocols (list[str] | None): Subprotocols to offer, in order.
        headers (dict | list[tuple[str, str]] | None): Extra request headers.
        origin (str | None): The ``Origin`` header to send.
        compression (bool): Offer permessage-deflate.
        max_message_size (int | None): Bytes per message received; None: no limit.
        open_timeout (float): Seconds for connecting, TLS and the handshake.
        ping_interval (float | None): As on the server.
        ping_timeout (float | None): As on the server.
        close_timeout (float): As on the server.
        ssl_context (ssl.SSLContext | None): For ``wss://``: None verifies
            against the system's trust store.
        websocket_class (type[WebSocket]): The class of the returned WebSocket.

    Returns:
        WebSocket: The open connection (client side: ``with`` closes it).

    Raises:
        ValueError: ``url`` is not a ``ws://`` or ``wss://`` URL with a host.
        ConnectError: The server cannot be reached within ``open_timeout``.
        InvalidStatus: The server answered without a 101.
        HandshakeError: The 101 does not fit what was offered.
    """
    target = _Target(url)
    extra = list(headers.items() if isinstance(headers, dict) else headers or ())
    if target.authorization and not any(name.lower() == "authorization" for name, _ in extra):
        extra.append(("Authorization", target.authorization))
    deadline = time.monotonic() + open_timeout
    sock = _open_socket(target, open_timeout, ssl_context)
    try:
        key = make_key()
        sock.sendall(client_request(target.host_header, target.resource, key, protocols,
                                    origin, compression, extra))
        status, response_headers, leftover = _read_response(sock, target, deadline)
        if status != 101:
            body = _read_error_body(sock, response_headers, leftover, deadline)
            raise InvalidStatus(
                "server at %s answered %d instead of 101 Switching Protocols"
                % (target.url, status), status, list(response_headers.items()), body)
        subprotocol, deflate = check_response(status, response_headers, key, protocols,
                                              compression)
    except BaseException:
        sock.close()
        raise
    sock.settimeout(None)  # the WebSocket waits with poll, never with socket timeouts
    return websocket_class(
        sock, {}, side=CLIENT, subprotocol=subprotocol, deflate=deflate, origin=origin,
        path=target.path, max_message_size=max_message_size, ping_interval=ping_interval,
        ping_timeout=ping_timeout, close_timeout=close_timeout, initial_data=leftover)


def _open_socket(target, timeout, ssl_context):
    try:
        sock = socket.create_connection((target.host, target.port), timeout=timeout)
    except socket.timeout:
        raise ConnectError("timed out after %g s connecting to %s" % (timeout, target.url))
    except OSError as error:
        raise ConnectError("cannot connect to %s: %s" % (target.url, error)) from error
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if not target.secure:
        return sock
    context = ssl_context or ssl.create_default_context()
    try:
        return context.wrap_socket(sock, server_hostname=target.host)
    except socket.timeout:
        sock.close()
        raise ConnectError("timed out after %g s in the TLS handshake with %s"
                           % (timeout, target.url))
    except (ssl.SSLError, OSError) as error:
        sock.close()
        raise ConnectError("TLS handshake with %s failed: %s" % (target.url, error)) from error


def _recv(sock, deadline):
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise socket.timeout
    sock.settimeout(remaining)
    return sock.recv(65536)


def _read_response(sock, target, deadline):
    """Read the status line and headers; returns (status, headers, bytes past them)."""
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            if len(data) > MAX_RESPONSE_HEAD:
                raise HandshakeError("response head from %s is larger than %d bytes"
                                     % (target.url, MAX_RESPONSE_HEAD), 0)
            chunk = _recv(sock, deadline)
            if not chunk:
                raise HandshakeError("%s closed the connection during the handshake"
                                     % target.url, 0)
            data += chunk
    except socket.timeout:
        raise ConnectError("timed out waiting for the handshake response of %s" % target.url)
    except OSError as error:
        raise ConnectError("connection to %s lost during the handshake: %s"
                           % (target.url, error)) from error
    head, _, leftover = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise HandshakeError("%s did not answer with HTTP: %r" % (target.url, lines[0][:100]), 0)
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise HandshakeError("malformed header line from %s: %r" % (target.url, line), 0)
        name = name.strip().lower()
        value = value.strip()
        headers[name] = headers[name] + ", " + value if name in headers else value
    return int(parts[1]), headers, leftover


def _read_error_body(sock, headers, body, deadline):
    """Up to 64 KiB of a refusal's body, for the exception (best effort)."""
    length = headers.get("content-length", "")
    wanted = min(int(length), MAX_ERROR_BODY) if length.isdigit() else 0
    try:
        while len(body) < wanted:
            chunk = _recv(sock, min(deadline, time.monotonic() + 2))
            if not chunk:
                break
            body += chunk
    except OSError:
        pass
    return body[:MAX_ERROR_BODY]
