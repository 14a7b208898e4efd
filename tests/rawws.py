"""A raw WebSocket client for tests that need exact bytes on the wire.

Frames are built by hand here (not with wsocket's own code), so a test
that uses this checks wsocket against an independent reading of RFC 6455.
"""

import base64
import hashlib
import os
import socket
import struct

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def build_frame(opcode, payload=b"", fin=True, rsv=0, mask=True, length=None):
    """A client frame; ``length`` overrides the declared payload length."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    size = len(payload) if length is None else length
    mask_bit = 0x80 if mask else 0
    if size < 126:
        header = struct.pack("!BB", first, mask_bit | size)
    elif size < 65536:
        header = struct.pack("!BBH", first, mask_bit | 126, size)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, size)
    if not mask:
        return header + payload
    key = os.urandom(4)
    masked = bytes(byte ^ key[index % 4] for index, byte in enumerate(payload))
    return header + key + masked


class RawClient:
    def __init__(self, host, port, path="/", headers=(), timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buffer = b""
        key = base64.b64encode(os.urandom(16)).decode()
        lines = ["GET %s HTTP/1.1" % path, "Host: %s:%d" % (host, port),
                 "Upgrade: websocket", "Connection: Upgrade",
                 "Sec-WebSocket-Key: %s" % key, "Sec-WebSocket-Version: 13"]
        lines += ["%s: %s" % header for header in headers]
        self.request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.key = key

    def handshake(self, extra=b""):
        """Send the upgrade request (plus ``extra`` bytes in the same write); return the status line."""
        self.sock.sendall(self.request + extra)
        while b"\r\n\r\n" not in self.buffer:
            data = self.sock.recv(4096)
            if not data:
                raise ConnectionError("closed during handshake: %r" % self.buffer)
            self.buffer += data
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.response_headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:])}
        expected = base64.b64encode(hashlib.sha1(self.key.encode() + GUID).digest()).decode()
        if lines[0].startswith("HTTP/1.1 101"):
            assert self.response_headers["sec-websocket-accept"] == expected
        return lines[0]

    def send(self, data):
        self.sock.sendall(data)

    def _read_exactly(self, count):
        while len(self.buffer) < count:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("connection closed with %d bytes buffered" % len(self.buffer))
            self.buffer += data
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def read_frame(self):
        """(fin, rsv, opcode, payload) of the next server frame; server frames are never masked."""
        first, second = self._read_exactly(2)
        assert not second & 0x80, "server frame is masked"
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._read_exactly(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._read_exactly(8))[0]
        return bool(first & 0x80), (first >> 4) & 7, first & 0x0F, self._read_exactly(length)

    def read_close(self):
        """The close frame's (code, reason); skips nothing: the next frame must be the close."""
        fin, rsv, opcode, payload = self.read_frame()
        assert opcode == 0x8, "expected a close frame, got opcode %#x %r" % (opcode, payload)
        if not payload:
            return None, ""
        return struct.unpack("!H", payload[:2])[0], payload[2:].decode()

    def read_to_eof(self):
        """Everything the server sends until it closes TCP."""
        data, self.buffer = self.buffer, b""
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return data
            data += chunk

    def close(self):
        self.sock.close()


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason
