"""The load generator in pure Python: used when no C compiler is present.

Same command line and the same one-line JSON result as ``loadgen.c`` (see
its header comment), with ``"generator": "python"``. It is much slower than
the C one: the generator check that ``python -m bench`` prints says whether
it, rather than the server, set the pace.
"""

import argparse
import base64
import errno
import hashlib
import json
import os
import resource
import selectors
import socket
import sys
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MASK = b"\x37\xfa\x21\x3d"


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def make_payload(size, kind):
    if kind == "binary":
        x, out = 2463534242, bytearray(size)
        for i in range(size if size < 65536 else 65536):
            x ^= (x << 13) & 0xFFFFFFFF
            x ^= x >> 17
            x ^= (x << 5) & 0xFFFFFFFF
            out[i] = x & 255
        if size > 65536:  # repeat the first 64 KiB: the content does not matter
            block = bytes(out[:65536])
            out = (block * (size // 65536 + 1))[:size]
        return bytes(out)
    if kind == "json":
        item = b'{"id": 12345, "user": "alice", "text": "hello world", "tags": ["a", "b"]}, '
    else:
        item = bytes(range(ord("a"), ord("z") + 1))
    return (item * (size // len(item) + 1))[:size]


def frame(first_byte, payload, mask=MASK):
    n = len(payload)
    if n < 126:
        head = bytes([first_byte, 0x80 | n])
    elif n < 65536:
        head = bytes([first_byte, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([first_byte, 0x80 | 127]) + n.to_bytes(8, "big")
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "little")
    masked = (int.from_bytes(payload, "little") ^ key).to_bytes(n, "little")
    return head + mask + masked


def percentile(sorted_values, p):
    if not sorted_values:
        return -1
    rank = min(len(sorted_values) - 1, int(p / 100.0 * len(sorted_values)))
    return sorted_values[rank]


class Connection:
    def __init__(self, gen, index):
        self.gen = gen
        self.index = index
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.state = "connecting"
        self.key = base64.b64encode(os.urandom(16)).decode()
        self.inbuf = bytearray()
        self.out = b""
        self.to_send = 0
        self.sent_at = []  # send times of the messages in flight, oldest first
        self.deflate = False
        self.writing = False

    # -- I/O --------------------------------------------------------------------
    def start(self):
        err = self.sock.connect_ex((self.gen.args.host, self.gen.args.port))
        if err not in (0, errno.EINPROGRESS):
            self.fail(os.strerror(err))
            return
        self.gen.selector.register(self.sock, selectors.EVENT_WRITE, self)
        self.writing = True

    def want_write(self, on):
        if on != self.writing and self.state != "done":
            self.gen.selector.modify(self.sock, selectors.EVENT_READ
                                     | (selectors.EVENT_WRITE if on else 0), self)
            self.writing = on

    def fail(self, message):
        self.gen.note_error(self, message)
        self.close()

    def close(self):
        if self.state == "done":
            return
        if self.state in ("connecting", "handshake"):
            self.gen.in_handshake -= 1
        elif self.state in ("open", "closing"):
            self.gen.open_count -= 1
        self.state = "done"
        self.gen.done_count += 1
        try:
            self.gen.selector.unregister(self.sock)
        except (KeyError, ValueError):
            pass
        self.sock.close()

    def on_event(self, mask, now):
        if self.state == "connecting":
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.fail(os.strerror(err))
                return
            args = self.gen.args
            extension = ("Sec-WebSocket-Extensions: permessage-deflate; "
                         "client_no_context_takeover\r\n" if args.deflate else "")
            self.out = memoryview(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                        "Sec-WebSocket-Version: 13\r\n%s\r\n"
                        % (args.path, args.host, args.port, self.key, extension)).encode())
            self.state = "handshake"
            self.want_write(True)
        if mask & selectors.EVENT_WRITE:
            self.flush(now)
        if mask & selectors.EVENT_READ and self.state != "done":
            self.readable(now)

    def flush(self, now):
        while True:
            if not self.out:
                if self.state != "open" or not self.to_send or not self.gen.sending:
                    break
                count = min(self.to_send, self.gen.args.depth)
                self.to_send -= count
                self.out = memoryview((self.gen.batch_deflate if self.deflate else self.gen.batch)[count])
                self.sent_at.extend([now] * count)
            try:
                written = self.sock.send(self.out)
            except BlockingIOError:
                self.want_write(True)
                return
            except OSError as error:
                self.fail(str(error))
                return
            self.out = self.out[written:]
        self.want_write(False)

    def readable(self, now):
        try:
            data = self.sock.recv(262144)
        except BlockingIOError:
            return
        except OSError as error:
            if self.gen.sending:
                self.gen.note_error(self, str(error))
            self.close()
            return
        if not data:
            if self.gen.sending and self.state in ("open", "handshake"):
                self.gen.note_error(self, "server closed the connection")
            self.close()
            return
        self.inbuf += data
        if self.state == "handshake":
            end = self.inbuf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.inbuf[:end]).decode("latin-1")
            del self.inbuf[:end + 4]
            accept = base64.b64encode(hashlib.sha1(self.key.encode() + GUID).digest()).decode()
            if not head.startswith("HTTP/1.1 101") or accept not in head:
                self.fail("handshake refused: %s" % head.split("\r\n", 1)[0][:60])
                return
            lower = head.lower()
            self.deflate = bool(self.gen.args.deflate) and "permessage-deflate" in lower
            self.gen.deflate_ok += self.deflate
            self.state = "open"
            self.gen.in_handshake -= 1
            self.gen.open_count += 1
            if self.gen.go and not self.gen.args.idle:
                self.to_send = self.gen.args.depth
                self.flush(now)
        self.parse(now)

    def parse(self, now):
        buf = self.inbuf
        pos, end = 0, len(buf)
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 127
            head = 2
            if length == 126:
                head = 4
                if end - pos < head:
                    break
                length = int.from_bytes(buf[pos + 2:pos + 4], "big")
            elif length == 127:
                head = 10
                if end - pos < head:
                    break
                length = int.from_bytes(buf[pos + 2:pos + 10], "big")
            if b1 & 0x80:
                head += 4
            if end - pos < head + length:
                break
            opcode = b0 & 15
            if opcode < 8:
                if b0 & 0x80:
                    self.on_message(now)
            elif opcode == 9:
                self.send_control(0xA, bytes(buf[pos + head:pos + head + length]))
            elif opcode == 8:
                if self.state == "open":
                    self.send_control(0x8, b"\x03\xe8")
                    if self.gen.sending:
                        self.gen.note_error(self, "server closed the connection")
                del buf[:pos]
                self.close()
                return
            pos += head + length
        del buf[:pos]

    def on_message(self, now):
        if not self.sent_at:
            self.gen.unexpected += 1
            return
        sent = self.sent_at.pop(0)
        gen = self.gen
        if gen.measuring and now <= gen.t_end:
            gen.messages += 1
            gen.latencies.append(now - sent)
        if gen.sending and not gen.args.idle:
            self.to_send += 1

    def send_control(self, opcode, payload):
        if self.out:
            return
        try:
            self.sock.send(frame(0x80 | opcode, payload))
        except OSError:
            pass


class Generator:
    def __init__(self, args):
        self.args = args
        self.selector = selectors.DefaultSelector()
        self.sending = True
        self.measuring = False
        self.go = False
        self.t_end = float("inf")
        self.messages = self.errors = self.unexpected = self.deflate_ok = 0
        self.open_count = self.done_count = self.started = self.in_handshake = 0
        self.latencies = []
        self.last_error = ""
        payload = make_payload(args.size, args.kind)
        opcode = 0x82 if args.kind == "binary" else 0x81
        one = frame(opcode, payload)
        self.batch = {k: one * k for k in range(1, args.depth + 1)}
        self.batch_deflate = self.batch
        if args.deflate:
            with open(args.deflate, "rb") as f:
                compressed = frame(opcode | 0x40, f.read())
            self.batch_deflate = {k: compressed * k for k in range(1, args.depth + 1)}
        self.conns = [Connection(self, i) for i in range(args.connections)]
        self.stdin_key = None

    def note_error(self, conn, message):
        self.errors += 1
        if not self.last_error:
            self.last_error = "connection %d: %s" % (conn.index, message)

    def loop_until(self, done, deadline):
        while True:
            now = time.monotonic()
            if done() or now >= deadline:
                return
            while self.started < self.args.connections and self.in_handshake < self.args.concurrency:
                conn = self.conns[self.started]
                self.started += 1
                self.in_handshake += 1
                conn.start()
            events = self.selector.select(min(0.02, max(0.0, deadline - now)))
            now = time.monotonic()
            for key, mask in events:
                conn = key.data
                if conn is None:  # a line on stdin: go
                    os.read(0, 64)
                    self.selector.unregister(key.fileobj)
                    self.go = True
                    continue
                if conn.state != "done":
                    conn.on_event(mask, now)
                    if conn.state == "open" and conn.to_send and not conn.out:
                        conn.flush(now)

    def settled(self):
        return self.started == self.args.connections and self.in_handshake == 0

    def close_all(self):
        self.sending = False
        for conn in self.conns:
            if conn.state == "open" and conn.out:
                conn.close()
            elif conn.state == "open":
                conn.send_control(0x8, b"\x03\xe8")
                conn.state = "closing"
            elif conn.state in ("connecting", "handshake"):
                conn.close()
        self.loop_until(lambda: self.done_count == self.args.connections, time.monotonic() + 2)
        for conn in self.conns:
            conn.close()

    def result(self, seconds, cpu, handshake_s, connected):
        lat = sorted(self.latencies)
        rate = self.messages / seconds if seconds > 0 else 0
        args = self.args
        return {
            "generator": "python", "connections": args.connections, "connected": connected,
            "depth": args.depth, "size": args.size, "messages": self.messages,
            "seconds": round(seconds, 4), "msg_per_s": round(rate, 1),
            "mb_per_s": round(rate * args.size / 1e6, 3),
            "p50_us": round(percentile(lat, 50) * 1e6, 1) if lat else -1,
            "p99_us": round(percentile(lat, 99) * 1e6, 1) if lat else -1,
            "errors": self.errors, "unexpected": self.unexpected,
            "deflate": bool(args.deflate) and connected > 0 and self.deflate_ok == connected,
            "handshake_s": round(handshake_s, 3), "cpu_s": round(cpu, 3),
            "cpu_util": round(cpu / seconds, 3) if seconds > 0 else 0,
            "error": self.last_error,
        }

    def run(self):
        args = self.args
        t0 = time.monotonic()
        self.loop_until(self.settled, t0 + args.timeout)
        handshake_s = time.monotonic() - t0
        connected = self.open_count
        if args.idle:
            # cpu_s: this generator's CPU time for the opening (so far, all of it).
            print(json.dumps({"event": "connected", "connected": connected,
                              "seconds": round(handshake_s, 3),
                              "cpu_s": round(cpu_seconds(), 3)}), flush=True)
            self.selector.register(sys.stdin.fileno(), selectors.EVENT_READ, None)
            self.loop_until(lambda: self.go, time.monotonic() + args.timeout)
            self.measuring = True
            start = time.monotonic()
            cpu0 = cpu_seconds()
            for conn in self.conns:
                if conn.state == "open":
                    conn.to_send = 1
                    conn.flush(start)
            self.t_end = start + args.reply_timeout
            self.loop_until(lambda: all(not c.sent_at and not c.to_send for c in self.conns
                                        if c.state == "open"), self.t_end)
            seconds = time.monotonic() - start
            cpu = cpu_seconds() - cpu0
        else:
            self.go = True
            now = time.monotonic()
            t_measure = now + args.warmup
            self.t_end = t_measure + args.duration
            for conn in self.conns:
                if conn.state == "open":
                    conn.to_send = args.depth
                    conn.flush(now)
            self.loop_until(lambda: False, t_measure)
            self.measuring = True
            print(json.dumps({"event": "measuring"}), flush=True)
            cpu0 = cpu_seconds()
            self.loop_until(lambda: False, self.t_end)
            cpu = cpu_seconds() - cpu0
            print(json.dumps({"event": "measured"}), flush=True)
            seconds = args.duration
        self.close_all()
        print(json.dumps(self.result(seconds, cpu, handshake_s, connected)), flush=True)


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen",
                                     description="WebSocket echo load generator (pure Python)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--depth", type=int, default=1)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--kind", choices=["text", "binary", "json"], default="text")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--reply-timeout", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--deflate", metavar="FILE")
    parser.add_argument("--idle", action="store_true")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.connections < 1 or args.depth < 1:
        sys.exit("loadgen: --connections and --depth must be at least 1")
    raise_nofile()
    Generator(args).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
