"""Raw-socket helpers for the server and middleware tests.

Requests and frames are written by hand here, and responses and frames are
parsed by hand, so the tests see exactly the bytes the server puts on the
wire and never use wsocket's own code to check wsocket.
"""

import base64
import contextlib
import logging
import os
import socket
import struct
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the project: tests.apps imports from here
TIMEOUT = 10.0  # seconds any single socket operation may take in a test

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA


def new_key():
    return base64.b64encode(os.urandom(16)).decode("ascii")


def upgrade_request(path="/", host="127.0.0.1", key=None, version="13", method="GET",
                    http_version="HTTP/1.1", connection="Upgrade", headers=(), omit=()):
    """The bytes of a WebSocket upgrade request; ``omit`` drops headers by lower-case name."""
    lines = [
        ("Host", host),
        ("Upgrade", "websocket"),
        ("Connection", connection),
        ("Sec-WebSocket-Key", key if key is not None else new_key()),
        ("Sec-WebSocket-Version", version),
    ]
    lines = [(name, value) for name, value in lines if name.lower() not in omit]
    lines.extend(headers)
    head = "%s %s %s\r\n" % (method, path, http_version)
    head += "".join("%s: %s\r\n" % line for line in lines)
    return (head + "\r\n").encode("latin-1")


def request(method="GET", path="/", headers=(), body=b"", http_version="HTTP/1.1",
            host="127.0.0.1"):
    head = "%s %s %s\r\nHost: %s\r\n" % (method, path, http_version, host)
    head += "".join("%s: %s\r\n" % line for line in headers)
    return (head + "\r\n").encode("latin-1") + body


def mask(data, key):
    """RFC 6455 5.3 masking, written out independently of the library."""
    if not data:
        return b""
    repeated = (key * (len(data) // 4 + 1))[:len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(data), "big")


def client_frame(opcode, payload=b"", fin=True, key=None):
    """A masked frame as a client sends it."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    key = key if key is not None else os.urandom(4)
    first = (0x80 if fin else 0) | opcode
    length = len(payload)
    if length <= 125:
        head = struct.pack("!BB", first, 0x80 | length)
    elif length <= 0xFFFF:
        head = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, length)
    return head + key + mask(payload, key)


def close_frame(code=1000, reason=b""):
    return client_frame(CLOSE, struct.pack("!H", code) + reason)


def open_connection(host, port, timeout=TIMEOUT):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.connect((host, port))
    return sock


class Response:
    def __init__(self, status_line, headers, body):
        self.status_line = status_line
        self.status = int(status_line.split(" ")[1])
        self.headers = headers  # list of (name, value), as sent
        self.body = body

    def header(self, name):
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        assert len(values) <= 1, "header %s sent %d times" % (name, len(values))
        return values[0] if values else None

    def __repr__(self):
        return "<Response %r %r %r>" % (self.status_line, self.headers, self.body[:200])


class Reader:
    """Reads exactly what the server sends, with a timeout on every recv."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = bytearray()
        self.eof = False

    def _recv(self):
        data = self.sock.recv(65536)
        if not data:
            self.eof = True
            raise EOFError("connection closed by the server; got %r" % bytes(self.buffer[:200]))
        self.buffer += data

    def read_exact(self, count):
        while len(self.buffer) < count:
            self._recv()
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    def read_until(self, marker, limit=1 << 20):
        while True:
            end = self.buffer.find(marker)
            if end >= 0:
                data = bytes(self.buffer[:end + len(marker)])
                del self.buffer[:end + len(marker)]
                return data
            assert len(self.buffer) < limit, "no %r in %d bytes" % (marker, len(self.buffer))
            self._recv()

    def read_to_eof(self):
        """Everything until the server's FIN (the socket timeout bounds the wait)."""
        while True:
            try:
                self._recv()
            except EOFError:
                break
        data = bytes(self.buffer)
        self.buffer.clear()
        return data

    def read_head(self):
        head = self.read_until(b"\r\n\r\n").decode("latin-1")
        lines = head[:-4].split("\r\n")
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            assert sep, "malformed header line %r" % line
            headers.append((name, value.strip()))
        return lines[0], headers

    def read_response(self, method="GET"):
        """One response, its body read as its headers say (length, chunked or EOF)."""
        status_line, headers = self.read_head()
        response = Response(status_line, headers, b"")
        if method == "HEAD" or response.status in (101, 204, 304) or response.status < 200:
            return response
        encoding = response.header("Transfer-Encoding")
        length = response.header("Content-Length")
        if encoding is not None:
            assert encoding.lower() == "chunked" and length is None, headers
            response.body = self.read_chunked()
        elif length is not None:
            response.body = self.read_exact(int(length))
        else:
            response.body = self.read_to_eof()
        return response

    def read_chunked(self):
        chunks = []
        while True:
            size = int(self.read_until(b"\r\n")[:-2].split(b";")[0], 16)
            if size == 0:
                assert self.read_until(b"\r\n") == b"\r\n", "trailers were not expected"
                return b"".join(chunks)
            chunks.append(self.read_exact(size))
            assert self.read_exact(2) == b"\r\n", "chunk not followed by CRLF"

    def read_frame(self, allow_rsv1=False):
        """One server frame: (fin, opcode, payload); servers never mask.

        With ``allow_rsv1`` (permessage-deflate negotiated) returns
        (fin, rsv1, opcode, payload) instead.
        """
        first, second = self.read_exact(2)
        assert not second & 0x80, "server frame is masked"
        assert not first & (0x30 if allow_rsv1 else 0x70), "reserved bits set: %#x" % first
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self.read_exact(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self.read_exact(8))
        payload = self.read_exact(length)
        if allow_rsv1:
            return bool(first & 0x80), bool(first & 0x40), first & 0x0F, payload
        return bool(first & 0x80), first & 0x0F, payload

    def read_message(self):
        """A whole unfragmented-or-fragmented data message: (opcode, payload)."""
        fin, opcode, payload = self.read_frame()
        parts = [payload]
        while not fin:
            fin, continuation, payload = self.read_frame()
            assert continuation == 0, "expected a continuation frame"
            parts.append(payload)
        return opcode, b"".join(parts)


def upgrade(host, port, path="/", headers=(), extra=b"", timeout=TIMEOUT):
    """Open a raw WebSocket (no extensions); returns (sock, reader, response)."""
    sock = open_connection(host, port, timeout)
    sock.sendall(upgrade_request(path, host="%s:%d" % (host, port), headers=headers) + extra)
    reader = Reader(sock)
    response = reader.read_response()
    assert response.status_line == "HTTP/1.1 101 Switching Protocols", response
    return sock, reader, response


def wait_for_eof(reader, timeout):
    """Seconds until the server's FIN arrives, and the bytes that came before it."""
    start = time.monotonic()
    reader.sock.settimeout(timeout)
    data = reader.read_to_eof()
    return time.monotonic() - start, data


def ws_url(server, path="/"):
    """The ws:// URL of an in-process server (``server.url`` is http://host:port/)."""
    return server.url.replace("http", "ws", 1).rstrip("/") + path


def wait_for(predicate, timeout=TIMEOUT, what="condition", interval=0.01):
    """Poll ``predicate`` until it gives a true value (returned); fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(interval)


@contextlib.contextmanager
def wsocket_records(level):
    """The ``wsocket`` logger's records at ``level`` and above, whether it propagates or not."""
    records = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Collect(level)
    logger = logging.getLogger("wsocket")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
