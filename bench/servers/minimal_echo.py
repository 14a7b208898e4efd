"""The ceiling: a threaded raw-socket WebSocket echo with no checks at all.

It does the handshake (hashlib, base64), unmasks with one big-int XOR and
sends every frame back unmasked, all frames of one recv() in one sendall().
No UTF-8 validation, no fragmentation or close-code rules, no limits, no
extensions: what a thread-per-connection Python server costs at the least.
"""

import base64
import hashlib
import socket
import socketserver
import threading

from bench.servers import announce, arguments, prepare

CLIENTS = set()  # --broadcast: every data frame goes to all of these
CLIENTS_LOCK = threading.Lock()

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
BLOCK = 65536  # big payloads are unmasked a block at a time, with one key per frame


def unmask(data, mask):
    """``data`` XOR the repeated 4-byte ``mask``, with Python's big ints."""
    n = len(data)
    if n <= BLOCK:
        return (int.from_bytes(data, "little")
                ^ int.from_bytes((mask * (n // 4 + 1))[:n], "little")).to_bytes(n, "little")
    key = int.from_bytes(mask * (BLOCK // 4), "little")
    view = memoryview(data)
    parts = [(int.from_bytes(view[i:i + BLOCK], "little") ^ key).to_bytes(BLOCK, "little")
             for i in range(0, n - n % BLOCK, BLOCK)]
    if n % BLOCK:
        parts.append(unmask(view[n - n % BLOCK:], mask))
    return b"".join(parts)


def header(first_byte, n):
    if n < 126:
        return bytes((first_byte, n))
    if n < 65536:
        return bytes((first_byte, 126)) + n.to_bytes(2, "big")
    return bytes((first_byte, 127)) + n.to_bytes(8, "big")


class EchoHandler(socketserver.BaseRequestHandler):
    broadcast = False

    def handle(self):
        if not self.broadcast:
            return self.serve()
        with CLIENTS_LOCK:
            CLIENTS.add(self.request)
        try:
            return self.serve()
        finally:
            with CLIENTS_LOCK:
                CLIENTS.discard(self.request)

    def send_data(self, data):
        """Data frames: back to the sender, or with --broadcast to everyone."""
        if not self.broadcast:
            self.request.sendall(data)
            return
        with CLIENTS_LOCK:
            for client in CLIENTS:
                try:
                    client.sendall(data)
                except OSError:
                    pass

    def serve(self):
        sock = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            data = sock.recv(4096)
            if not data or len(buffer) > 16384:
                return
            buffer += data
        head, _, rest = buffer.partition(b"\r\n\r\n")
        key = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        if key is None:
            sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        buffer = bytearray(rest)
        while True:
            data = sock.recv(65536)
            if not data:
                return
            buffer += data
            out = []
            pos, end = 0, len(buffer)
            while end - pos >= 2:
                b0, b1 = buffer[pos], buffer[pos + 1]
                n = b1 & 127
                start = pos + 2
                if n == 126:
                    n = int.from_bytes(buffer[start:start + 2], "big")
                    start += 2
                elif n == 127:
                    n = int.from_bytes(buffer[start:start + 8], "big")
                    start += 8
                start += 4  # the mask
                if end < start + n:
                    break
                mask = bytes(buffer[start - 4:start])
                if n <= BLOCK:
                    payload = (int.from_bytes(buffer[start:start + n], "little")
                               ^ int.from_bytes((mask * (n // 4 + 1))[:n], "little")
                               ).to_bytes(n, "little")
                else:
                    payload = unmask(bytes(buffer[start:start + n]), mask)
                pos = start + n
                opcode = b0 & 15
                if opcode == 8:
                    out.append(header(0x88, min(n, 2)) + payload[:2])
                    sock.sendall(b"".join(out))
                    return
                if opcode == 9:
                    out.append(header(0x8A, n) + payload)
                elif opcode != 10:
                    out.append(header(b0 & 0x8F, n) + payload)
            if pos:
                del buffer[:pos]
            if out:
                self.send_data(b"".join(out))


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


def main():
    prepare()
    options = arguments()
    EchoHandler.broadcast = options.broadcast
    server = Server(("127.0.0.1", options.port), EchoHandler)
    announce(server.server_address[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
