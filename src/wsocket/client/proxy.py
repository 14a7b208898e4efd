"""Proxies for the client: HTTP CONNECT and SOCKS5, given or taken from the environment.

Both open a plain TCP tunnel to the origin; ``wss://`` then runs TLS to the
origin inside it, so the proxy never sees the WebSocket traffic. Everything
here is standard library: SOCKS5's client side (RFC 1928, with RFC 1929's
username and password) is a few bytes each way.
"""

from __future__ import annotations

import base64
import ipaddress
import socket
import struct
import time
import urllib.request
from urllib.parse import unquote, urlsplit

from ..errors import ConnectError
from .httphead import read_response_head

__all__ = ["Proxy", "proxy_from_environment", "PROXY_SCHEMES"]

PROXY_SCHEMES = ("http", "socks5", "socks5h")
_DEFAULT_PORTS = {"http": 80, "socks5": 1080, "socks5h": 1080}

# RFC 1928 section 6: what a SOCKS5 server's REP field means.
SOCKS5_REPLIES = {
    1: "general SOCKS server failure",
    2: "connection not allowed by ruleset",
    3: "network unreachable",
    4: "host unreachable",
    5: "connection refused",
    6: "TTL expired",
    7: "command not supported",
    8: "address type not supported",
}
# Replies that say something about the origin right now, which may change:
# worth another try when reconnecting. The others are the proxy's policy.
_TRANSIENT_SOCKS5_REPLIES = {1, 3, 4, 5, 6}

_NO_AUTHENTICATION, _USERNAME_PASSWORD, _NO_ACCEPTABLE_METHOD = 0x00, 0x02, 0xFF


def permanent(error: ConnectError) -> ConnectError:
    """Mark ``error`` as one that another attempt would meet again (no reconnecting)."""
    error.permanent = True
    return error


class Proxy:
    """A proxy URL, checked: ``http://``, ``socks5://`` (local DNS) or ``socks5h://`` (remote DNS).

    Credentials come from the URL's userinfo (``http://user:password@host:port``).
    ``str(proxy)`` and every error message show the proxy without them.
    """

    def __init__(self, url: str) -> None:
        if "://" not in url:
            url = "http://" + url  # "host:port", as proxy variables are often written
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        shown = "%s://%s" % (scheme, parts.netloc.rpartition("@")[2])
        if scheme not in PROXY_SCHEMES:
            raise ValueError("unsupported proxy %s: the scheme must be one of %s"
                             % (shown, ", ".join(s + "://" for s in PROXY_SCHEMES)))
        if not parts.hostname:
            raise ValueError("no host in proxy URL %s" % shown)
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("proxy URL %s has a path, query or fragment: a proxy URL is "
                             "scheme://[user:password@]host:port" % shown)
        try:
            port = parts.port
        except ValueError:
            raise ValueError("invalid port in proxy URL %s" % shown) from None
        self.scheme = scheme
        self.host = parts.hostname
        self.port = port or _DEFAULT_PORTS[scheme]
        # (username, password) when the URL has a userinfo
        self._credentials: tuple[str, str] | None = None
        if parts.username is not None:
            self._credentials = (unquote(parts.username), unquote(parts.password or ""))
        self.username = None if self._credentials is None else self._credentials[0]
        self.password = None if self._credentials is None else self._credentials[1]
        host = "[%s]" % self.host if ":" in self.host else self.host
        self.display = "%s://%s:%d" % (scheme, host, self.port)
        if scheme != "http" and self._credentials is not None:
            # RFC 1929: each is one length byte and at most 255 bytes.
            for name, value in zip(("username", "password"), self._credentials):
                if not 0 < len(value.encode()) <= 255:
                    raise ValueError("SOCKS5 %s must be 1 to 255 bytes (proxy %s)"
                                     % (name, self.display))

    def __str__(self) -> str:
        return self.display

    def __repr__(self) -> str:
        return "<Proxy %s>" % self.display

    @property
    def kind(self) -> str:
        return "HTTP proxy" if self.scheme == "http" else "SOCKS5 proxy"

    def open_tunnel(self, host: str, port: int, deadline: float) -> socket.socket:
        """A TCP connection to ``host``:``port`` through this proxy, ready for the origin's bytes.

        Raises ``ConnectError`` naming the proxy when it cannot be reached or
        refuses, and with its status (HTTP) or reply (SOCKS5).
        """
        sock = self._connect_to_proxy(deadline)
        try:
            if self.scheme == "http":
                self._http_connect(sock, host, port, deadline)
            else:
                self._socks5_connect(sock, host, port, deadline)
        except socket.timeout:
            sock.close()
            raise ConnectError("timed out waiting for %s %s"
                               % (self.kind, self.display)) from None
        except ConnectError:
            sock.close()
            raise
        except OSError as error:
            sock.close()
            raise ConnectError("connection to %s %s lost: %s"
                               % (self.kind, self.display, error)) from error
        sock.settimeout(None)
        return sock

    def _connect_to_proxy(self, deadline: float) -> socket.socket:
        timeout = max(deadline - time.monotonic(), 0.001)
        try:
            sock = socket.create_connection((self.host, self.port), timeout=timeout)
        except socket.timeout:
            raise ConnectError("timed out connecting to %s %s"
                               % (self.kind, self.display)) from None
        except OSError as error:
            raise ConnectError("cannot connect to %s %s: %s"
                               % (self.kind, self.display, error)) from error
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    # -- HTTP CONNECT (RFC 9110 section 9.3.6) ---------------------------------------

    def _http_connect(self, sock: socket.socket, host: str, port: int, deadline: float) -> None:
        authority = _authority(host, port)
        lines = ["CONNECT %s HTTP/1.1" % authority, "Host: %s" % authority]
        if self.username is not None:
            credentials = ("%s:%s" % (self.username, self.password)).encode()
            lines.append("Proxy-Authorization: Basic " + base64.b64encode(credentials).decode())
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        head = read_response_head(sock, deadline, "%s %s" % (self.kind, self.display))
        if not 200 <= head.status < 300:
            error = ConnectError("%s %s refused to open a tunnel to %s: %d %s"
                                 % (self.kind, self.display, authority, head.status,
                                    head.reason))
            # A 5xx says the origin could not be reached now; a 4xx is the proxy's policy.
            raise error if head.status >= 500 else permanent(error)
        if head.leftover:
            # Nothing may come before the client speaks: the origin has not
            # heard from us yet (a 2xx to CONNECT has no body).
            raise ConnectError("%s %s sent %d bytes after its %d response, before the tunnel "
                               "was used" % (self.kind, self.display, len(head.leftover),
                                             head.status))

    # -- SOCKS5 (RFC 1928, RFC 1929) --------------------------------------------------

    def _socks5_connect(self, sock: socket.socket, host: str, port: int,
                        deadline: float) -> None:
        address = self._socks5_address(host, port)
        methods = bytes([_NO_AUTHENTICATION]) if self.username is None \
            else bytes([_NO_AUTHENTICATION, _USERNAME_PASSWORD])
        sock.sendall(b"\x05" + bytes([len(methods)]) + methods)
        version, method = self._receive(sock, 2, deadline, "its greeting")
        if version != 5:
            raise permanent(ConnectError("%s %s did not answer as a SOCKS5 proxy"
                                         % (self.kind, self.display)))
        if method == _USERNAME_PASSWORD and self._credentials is not None:
            username, password = (part.encode() for part in self._credentials)
            sock.sendall(b"\x01" + bytes([len(username)]) + username
                         + bytes([len(password)]) + password)
            _, status = self._receive(sock, 2, deadline, "authentication")
            if status != 0:
                raise permanent(ConnectError("%s %s rejected the username and password"
                                             % (self.kind, self.display)))
        elif method != _NO_AUTHENTICATION:
            if self.username is None:
                message = ("%s %s requires authentication: give user:password in the proxy URL"
                           % (self.kind, self.display))
            else:
                message = ("%s %s accepts none of the offered authentication methods"
                           % (self.kind, self.display))
            raise permanent(ConnectError(message))

        sock.sendall(b"\x05\x01\x00" + address)  # CONNECT
        version, reply, _, address_type = self._receive(sock, 4, deadline, "its reply")
        if version != 5:
            raise permanent(ConnectError("%s %s did not answer as a SOCKS5 proxy"
                                         % (self.kind, self.display)))
        if reply != 0:
            name = SOCKS5_REPLIES.get(reply, "unknown reply")
            error = ConnectError("%s %s could not connect to %s: %s (reply %d)"
                                 % (self.kind, self.display, _authority(host, port), name,
                                    reply))
            raise error if reply in _TRANSIENT_SOCKS5_REPLIES else permanent(error)
        # The bound address that ends the reply: read it, exactly, and ignore it.
        if address_type == 1:
            length = 4
        elif address_type == 4:
            length = 16
        elif address_type == 3:
            length = self._receive(sock, 1, deadline, "its reply")[0]
        else:
            raise permanent(ConnectError("%s %s sent an unknown address type %d"
                                         % (self.kind, self.display, address_type)))
        self._receive(sock, length + 2, deadline, "its reply")

    def _socks5_address(self, host: str, port: int) -> bytes:
        """DST.ADDR and DST.PORT: the name itself for socks5h://, an address resolved here else."""
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is None and self.scheme == "socks5":
            try:
                info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as error:
                raise ConnectError("cannot resolve %s (to connect through %s %s): %s"
                                   % (host, self.kind, self.display, error)) from error
            literal = ipaddress.ip_address(info[0][4][0])
        if literal is not None:
            kind = b"\x01" if literal.version == 4 else b"\x04"
            return kind + literal.packed + struct.pack("!H", port)
        name = host.encode("idna")
        if len(name) > 255:
            raise permanent(ConnectError("host name too long for SOCKS5: %s" % host))
        return b"\x03" + bytes([len(name)]) + name + struct.pack("!H", port)

    def _receive(self, sock: socket.socket, count: int, deadline: float, what: str) -> bytes:
        data = b""
        while len(data) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout
            sock.settimeout(remaining)
            chunk = sock.recv(count - len(data))
            if not chunk:
                raise ConnectError("%s %s closed the connection instead of %s"
                                   % (self.kind, self.display, what))
            data += chunk
        return data


def _authority(host: str, port: int) -> str:
    return "%s:%d" % ("[%s]" % host if ":" in host else host, port)


def proxy_from_environment(host: str, port: int, secure: bool) -> str | None:
    """The proxy the environment asks for to reach ``host``:``port``, or None.

    As websockets does (since 15.0): none when ``no_proxy`` lists the host;
    else ``wss_proxy`` / ``ws_proxy``, then ``socks_proxy``, then
    ``https_proxy``, then (ws:// only) ``http_proxy``; wsocket adds
    ``all_proxy`` last. Names in either case, lower case winning, read by
    ``urllib.request`` (which also reads the system's settings on macOS and
    Windows).
    """
    if urllib.request.proxy_bypass("%s:%d" % (host, port)):
        return None
    proxies = urllib.request.getproxies()
    names = ["wss", "socks", "https", "all"] if secure else ["ws", "socks", "https", "http", "all"]
    for name in names:
        proxy = proxies.get(name)
        if proxy:
            if name == "socks" and proxy.startswith("http://"):
                # How urllib reports a system SOCKS proxy (macOS, Windows).
                proxy = "socks5h://" + proxy[len("http://"):]
            elif name == "socks" and "://" not in proxy:
                proxy = "socks5h://" + proxy
            return proxy
    return None
