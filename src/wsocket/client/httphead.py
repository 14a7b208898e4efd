"""Reading an HTTP response head from a socket, for the handshake and for CONNECT proxies."""

from __future__ import annotations

import socket
import time
from typing import Callable

from ..errors import ConnectError, WebSocketError

__all__ = ["ResponseHead", "read_response_head", "MAX_RESPONSE_HEAD"]

MAX_RESPONSE_HEAD = 64 * 1024


class ResponseHead:
    """Status line and headers; ``headers`` maps lower-case names to values (repeats joined)."""

    def __init__(self, status: int, reason: str, header_list: list[tuple[str, str]],
                 leftover: bytes) -> None:
        self.status = status
        self.reason = reason
        self.header_list = header_list  # (lower-case name, value) in the order received
        self.headers: dict[str, str] = {}
        for name, value in header_list:
            self.headers[name] = self.headers[name] + ", " + value \
                if name in self.headers else value
        self.leftover = leftover  # bytes past the head (a body, or the first frames)


def read_response_head(sock: socket.socket, deadline: float, peer: str,
                       what: str = "handshake response",
                       malformed: Callable[[str], Exception] = ConnectError) -> ResponseHead:
    """Read until the blank line that ends a response head, within ``deadline``.

    ``peer`` and ``what`` name who answers and to what in the messages: a
    timeout or a lost or closed connection raises ``ConnectError``, a head
    that is not HTTP raises ``malformed(message)``.
    """
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            if len(data) > MAX_RESPONSE_HEAD:
                raise malformed("response head from %s is larger than %d bytes"
                                % (peer, MAX_RESPONSE_HEAD))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout
            sock.settimeout(remaining)
            chunk = sock.recv(65536)
            if not chunk:
                # Like a reset: a server going down or restarting (worth a retry).
                raise ConnectError("%s closed the connection before its %s" % (peer, what))
            data += chunk
    except socket.timeout:
        raise ConnectError("timed out waiting for the %s of %s" % (what, peer)) from None
    except WebSocketError:  # an OSError too: ours, already worded
        raise
    except OSError as error:
        raise ConnectError("connection to %s lost while waiting for its %s: %s"
                           % (peer, what, error)) from error
    head, _, leftover = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit() \
            or len(parts[1]) != 3:
        raise malformed("%s did not answer with HTTP: %r" % (peer, lines[0][:100]))
    reason = _printable(parts[2] if len(parts) > 2 else "")
    header_list: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise malformed("malformed header line from %s: %r" % (peer, line[:100]))
        header_list.append((name.strip().lower(), value.strip()))
    return ResponseHead(int(parts[1]), reason, header_list, leftover)


def _printable(text: str, limit: int = 100) -> str:
    """A peer's reason phrase, safe to put in a message: no control characters, bounded."""
    return "".join(c if c.isprintable() else "?" for c in text.strip())[:limit]
