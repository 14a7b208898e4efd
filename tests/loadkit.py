"""Load and fault machinery for tests/test_reliability.py and bench/reliability.py.

Everything here is standard library and raw sockets (no wsocket code on the
client side): a wsocket server subprocess with a raised open-files limit,
its thread count and memory read from ``/proc``, and many WebSocket clients
driven by one selector in one thread (handshake, a masked echo, the closing
handshake), so that thousands of connections cost the test no threads.
Linux only (``/proc``); binds and connects to 127.0.0.1 only.
"""

import base64
import hashlib
import os
import re
import resource
import select
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.netutil import Reader, close_frame, new_key
from tests.netutil import client_frame as masked_frame  # a client frame: masked

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA
START_TIMEOUT = 30.0

_BANNER = re.compile(r"^wsocket serving on http://127\.0\.0\.1:(\d+)/ \(Ctrl-C to stop\)$")

# Runs ``python -m wsocket ARGS`` with RLIMIT_NOFILE raised to argv[1] first.
_LAUNCHER = """\
import resource, runpy, sys
wanted = int(sys.argv.pop(1))
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < wanted:
    if hard != resource.RLIM_INFINITY and hard < wanted:
        sys.exit("cannot raise RLIMIT_NOFILE to %d: the hard limit is %d" % (wanted, hard))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
runpy.run_module("wsocket", run_name="__main__", alter_sys=True)
"""


def raise_nofile(wanted):
    """Raise the soft RLIMIT_NOFILE of this process to at least ``wanted``; returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    if hard != resource.RLIM_INFINITY and hard < wanted:
        raise RuntimeError("cannot raise RLIMIT_NOFILE to %d: the hard limit is %d"
                           % (wanted, hard))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return wanted


def proc_status(pid):
    """``(threads, rss_kib)`` of process ``pid``, from /proc/PID/status."""
    text = Path("/proc/%d/status" % pid).read_text()
    threads = int(re.search(r"^Threads:\s+(\d+)", text, re.M).group(1))
    rss = int(re.search(r"^VmRSS:\s+(\d+) kB", text, re.M).group(1))
    return threads, rss


def wait_for(predicate, timeout, interval=0.01):
    """Poll ``predicate`` until it returns something true; that value, or None after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


class ServerProcess:
    """``python -m wsocket APP ARGS --port 0`` in its own process group."""

    def __init__(self, app, *args, nofile=4096, log_path=None, env=None):
        self.log_path = Path(log_path) if log_path else None
        log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _LAUNCHER, str(nofile), app, "--host", HOST,
                 "--port", "0", *args],
                cwd=str(ROOT), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})),
                start_new_session=True)  # a process group of its own, killed as one
        finally:
            if self.log_path:
                log.close()
        self.pid = self.proc.pid
        self.stdout_rest = b""
        try:
            self.port = self._read_banner()
        except BaseException:
            self.kill()
            raise

    def _read_banner(self):
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + START_TIMEOUT
        data = b""
        while b"\n" not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no banner within %.0f s: %r %s"
                                   % (START_TIMEOUT, data, self.log()))
            selector = selectors.DefaultSelector()
            selector.register(fd, selectors.EVENT_READ)
            ready = selector.select(remaining)
            selector.close()
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise RuntimeError("the server exited (%r) before its banner: %r %s"
                                       % (self.proc.wait(5), data, self.log()))
                data += chunk
        line, _, self.stdout_rest = data.partition(b"\n")
        match = _BANNER.match(line.decode())
        if not match:
            raise RuntimeError("unexpected banner %r" % line)
        return int(match.group(1))

    def status(self):
        """``(threads, rss_kib)`` of the server process now."""
        return proc_status(self.pid)

    def threads(self):
        return self.status()[0]

    def alive(self):
        return self.proc.poll() is None

    def log(self):
        """What the server wrote on stderr so far."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def output(self):
        """Everything on stdout after the banner (read once the process ended)."""
        if self.proc.stdout is not None and self.proc.poll() is not None:
            self.stdout_rest += self.proc.stdout.read()
            self.proc.stdout.close()
            self.proc.stdout = None
        return self.stdout_rest.decode(errors="replace")

    def settle_threads(self, target, timeout):
        """Wait until the server runs at most ``target`` threads; the count seen last."""
        seen = [None]

        def done():
            seen[0] = self.threads()
            return seen[0] <= target

        wait_for(done, timeout, 0.02)
        return seen[0]

    def terminate(self, timeout=15.0):
        """SIGTERM; returns ``(exit status, seconds to exit)``; kills the group if it hangs."""
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        elapsed = time.monotonic() - started
        self.kill()
        return self.proc.returncode, elapsed

    def kill(self):
        """SIGKILL the whole process group (whatever it started too), and reap."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        if self.proc.returncode is not None:
            self.output()  # collects the rest of stdout, closes the pipe

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.kill()


# -- the wire, written out by hand ----------------------------------------------------------

def accept_value(key):
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + GUID).digest()).decode("ascii")


def upgrade_request(port, key, path="/", headers=()):
    lines = ["GET %s HTTP/1.1" % path, "Host: %s:%d" % (HOST, port), "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: %s" % key, "Sec-WebSocket-Version: 13"]
    lines += ["%s: %s" % header for header in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_frame(buffer):
    """``(fin, rsv, opcode, payload, size)`` of the server frame at the start of ``buffer``.

    None while it is incomplete; ValueError for a masked server frame.
    """
    if len(buffer) < 2:
        return None
    first, second = buffer[0], buffer[1]
    if second & 0x80:
        raise ValueError("server frame is masked")
    length, offset = second & 0x7F, 2
    if length == 126:
        if len(buffer) < 4:
            return None
        (length,), offset = struct.unpack_from("!H", buffer, 2), 4
    elif length == 127:
        if len(buffer) < 10:
            return None
        (length,), offset = struct.unpack_from("!Q", buffer, 2), 10
    if len(buffer) < offset + length:
        return None
    payload = bytes(buffer[offset:offset + length])
    return bool(first & 0x80), (first >> 4) & 7, first & 0x0F, payload, offset + length


def close_code(payload):
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None


class BlockingClient(Reader):
    """One raw WebSocket client on a blocking socket, for the few-connection tests."""

    def __init__(self, port, path="/", headers=(), timeout=10.0):
        super().__init__(socket.create_connection((HOST, port), timeout=timeout))
        key = new_key()
        self.sock.sendall(upgrade_request(port, key, path, headers))
        head = self.read_until(b"\r\n\r\n")
        self.status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        self.head = head.decode("latin-1")
        if self.status_line.startswith("HTTP/1.1 101"):
            assert ("\r\nSec-WebSocket-Accept: %s\r\n" % accept_value(key)) in self.head, \
                self.head

    def send(self, opcode, payload=b""):
        self.sock.sendall(masked_frame(opcode, payload))

    def read_frame(self):
        """``(opcode, payload)`` of the next frame (pings included)."""
        while True:
            frame = parse_frame(self.buffer)
            if frame is not None:
                fin, rsv, opcode, payload, size = frame
                assert fin and not rsv, "unexpected frame header %r" % bytes(self.buffer[:2])
                del self.buffer[:size]
                return opcode, payload
            self._recv()

    def read_data(self):
        """The next data or close frame, pings answered and pongs skipped."""
        while True:
            opcode, payload = self.read_frame()
            if opcode == PING:
                self.send(PONG, payload)
            elif opcode != PONG:
                return opcode, payload

    def echo(self, text):
        self.send(TEXT, text)
        return self.read_data()

    def close(self, code=1000):
        """Closing handshake: our close, the server's close code, then its FIN."""
        self.send(CLOSE, struct.pack("!H", code))
        opcode, payload = self.read_data()
        assert opcode == CLOSE, (opcode, payload)
        self.sock.settimeout(10)
        self.read_to_eof()
        self.sock.close()
        return close_code(payload)

    def answer_close(self, payload):
        """After the server's close frame: answer it; returns what came until the server's FIN."""
        self.send(CLOSE, payload[:2])
        self.sock.settimeout(10)
        rest = self.read_to_eof()
        self.sock.close()
        return rest

    def abort(self):
        self.sock.close()


# -- many clients, one selector ---------------------------------------------------------------

class _Conn:
    __slots__ = ("index", "sock", "state", "key", "out", "inbuf", "payload", "result")

    def __init__(self, index):
        self.index = index
        self.sock = None
        self.state = "connect"
        self.key = new_key()
        self.out = b""
        self.inbuf = bytearray()
        self.payload = ("connection %d says %s" % (index, os.urandom(6).hex())).encode()
        self.result = None


class Crowd:
    """``count`` WebSocket connections to 127.0.0.1:``port``, all driven by one selector.

    ``open()`` connects them (at most ``concurrency`` handshakes in flight),
    and on each does the handshake (checking the 101 and the accept key) and
    one masked text message that must come back exactly; those that pass
    are held open. ``close()`` runs the closing handshake on every held one.
    ``lost`` and ``wrong`` list ``(index, what)`` for connections that
    failed (closed, refused, reset, timed out) or answered something else.
    """

    def __init__(self, port, count, path="/", concurrency=200):
        self.port = port
        self.count = count
        self.path = path
        self.concurrency = concurrency
        self.held = []
        self.lost = []
        self.wrong = []
        self.closed_cleanly = 0

    def open(self, timeout=120.0):
        """Open them all; returns the seconds it took."""
        started = time.monotonic()
        deadline = started + timeout
        selector = selectors.DefaultSelector()
        waiting = list(range(self.count - 1, -1, -1))
        active = 0
        try:
            while waiting or active:
                while waiting and active < self.concurrency:
                    conn = _Conn(waiting.pop())
                    if self._start(selector, conn):
                        active += 1
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    for key in list(selector.get_map().values()):
                        self._fail(selector, key.data, self.lost, "timed out in " + key.data.state)
                    break
                for key, events in selector.select(min(remaining, 1.0)):
                    conn = key.data
                    try:
                        finished = self._step(selector, conn, events)
                    except (OSError, EOFError) as error:
                        self._fail(selector, conn, self.lost, "%s in %s" % (error, conn.state))
                        finished = True
                    except ValueError as error:
                        self._fail(selector, conn, self.wrong, str(error))
                        finished = True
                    if finished:
                        active -= 1
        finally:
            selector.close()
        return time.monotonic() - started

    def _start(self, selector, conn):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        conn.sock = sock
        error = sock.connect_ex((HOST, self.port))
        if error not in (0, 115):  # 115: EINPROGRESS
            sock.close()
            self.lost.append((conn.index, "connect: %s" % os.strerror(error)))
            return False
        conn.out = upgrade_request(self.port, conn.key, self.path)
        selector.register(sock, selectors.EVENT_WRITE, conn)
        return True

    def _fail(self, selector, conn, into, what):
        try:
            selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()
        into.append((conn.index, what))

    def _flush(self, selector, conn):
        """Send what is pending; True once all of it went out."""
        sent = conn.sock.send(conn.out)
        conn.out = conn.out[sent:]
        if conn.out:
            selector.modify(conn.sock, selectors.EVENT_WRITE, conn)
            return False
        selector.modify(conn.sock, selectors.EVENT_READ, conn)
        return True

    def _recv(self, conn):
        data = conn.sock.recv(65536)
        if not data:
            raise EOFError("closed by the server")
        conn.inbuf += data

    def _step(self, selector, conn, events):
        """Advance one connection; True once it is done (held or failed)."""
        if conn.state == "connect":
            error = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                raise ConnectionError(os.strerror(error))
            conn.state = "request"
        if events & selectors.EVENT_WRITE:
            self._flush(selector, conn)
            return False
        self._recv(conn)
        if conn.state == "request":
            end = conn.inbuf.find(b"\r\n\r\n")
            if end < 0:
                return False
            head = bytes(conn.inbuf[:end]).decode("latin-1")
            del conn.inbuf[:end + 4]
            if not head.startswith("HTTP/1.1 101 Switching Protocols\r\n"):
                raise ValueError("no 101: %r" % head[:100])
            if "\r\nSec-WebSocket-Accept: %s" % accept_value(conn.key) not in head:
                raise ValueError("wrong Sec-WebSocket-Accept: %r" % head)
            conn.state = "echo"
            conn.out = masked_frame(TEXT, conn.payload)
            self._flush(selector, conn)
            if not conn.inbuf:
                return False
        if conn.state == "echo":
            frame = parse_frame(conn.inbuf)
            if frame is None:
                return False
            fin, rsv, opcode, payload, size = frame
            del conn.inbuf[:size]
            if (fin, rsv, opcode, payload) != (True, 0, TEXT, conn.payload) or conn.inbuf:
                raise ValueError("echo %r instead of %r" % ((fin, rsv, opcode, payload[:60]),
                                                          conn.payload))
            selector.unregister(conn.sock)
            conn.state = "held"
            self.held.append(conn)
            return True
        return False

    def close(self, timeout=60.0, concurrency=500):
        """Closing handshake on each held connection; returns the seconds it took.

        Each sends a close frame, reads frames until the server's close
        (1000 expected; a keepalive ping on the way is skipped), then
        closes its socket. ``closed_cleanly`` counts those that got 1000.
        """
        started = time.monotonic()
        deadline = started + timeout
        selector = selectors.DefaultSelector()
        pending = list(self.held)
        self.held = []
        active = 0
        try:
            while pending or active:
                while pending and active < concurrency:
                    conn = pending.pop()
                    conn.state = "closing"
                    conn.out = close_frame(1000)
                    try:
                        selector.register(conn.sock, selectors.EVENT_READ, conn)
                        self._flush(selector, conn)
                        active += 1
                    except OSError as error:
                        self._fail(selector, conn, self.lost, "%s sending close" % error)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    for key in list(selector.get_map().values()):
                        self._fail(selector, key.data, self.lost, "no close reply in time")
                    break
                for key, events in selector.select(min(remaining, 1.0)):
                    conn = key.data
                    try:
                        if events & selectors.EVENT_WRITE:
                            self._flush(selector, conn)
                            continue
                        self._recv(conn)
                        while True:
                            frame = parse_frame(conn.inbuf)
                            if frame is None:
                                break
                            fin, rsv, opcode, payload, size = frame
                            del conn.inbuf[:size]
                            if opcode == CLOSE:
                                selector.unregister(conn.sock)
                                conn.sock.close()
                                active -= 1
                                if close_code(payload) == 1000:
                                    self.closed_cleanly += 1
                                else:
                                    self.wrong.append((conn.index, "close %r" % payload))
                                break
                            if opcode != PING:
                                raise ValueError("frame %d %r before the close"
                                                 % (opcode, payload[:60]))
                    except (OSError, EOFError) as error:
                        self._fail(selector, conn, self.lost, "%s while closing" % error)
                        active -= 1
                    except ValueError as error:
                        self._fail(selector, conn, self.wrong, str(error))
                        active -= 1
        finally:
            selector.close()
        return time.monotonic() - started

    def abort(self):
        """Close every held socket at once (no closing handshake)."""
        for conn in self.held:
            conn.sock.close()
        self.held = []


# -- connect/disconnect cycles ------------------------------------------------------------------

def cycle_once(port, payload=b"cycle"):
    """Connect, handshake, one echo, closing handshake, close; raises on anything unexpected."""
    sock = socket.create_connection((HOST, port), timeout=10)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = new_key()
        sock.sendall(upgrade_request(port, key))
        buffer = bytearray()
        while b"\r\n\r\n" not in buffer:
            data = sock.recv(4096)
            if not data:
                raise EOFError("closed during the handshake")
            buffer += data
        end = buffer.index(b"\r\n\r\n")
        head = bytes(buffer[:end]).decode("latin-1")
        del buffer[:end + 4]
        if not head.startswith("HTTP/1.1 101 ") or accept_value(key) not in head:
            raise ValueError("bad handshake answer %r" % head[:200])
        sock.sendall(masked_frame(TEXT, payload) + close_frame(1000))
        frames = []
        while not frames or frames[-1][0] != CLOSE:
            frame = parse_frame(buffer)
            if frame is None:
                data = sock.recv(4096)
                if not data:
                    raise EOFError("closed before the close frame")
                buffer += data
                continue
            fin, rsv, opcode, data, size = frame
            del buffer[:size]
            frames.append((opcode, data))
        if frames != [(TEXT, payload), (CLOSE, struct.pack("!H", 1000))]:
            raise ValueError("unexpected frames %r" % frames)
    finally:
        sock.close()


def run_cycles(port, count, workers=8, timeout=300.0):
    """``count`` connect/echo/close cycles on ``workers`` threads; returns (seconds, errors)."""
    lock = threading.Lock()
    next_index = [0]
    errors = []
    deadline = time.monotonic() + timeout

    def work():
        while time.monotonic() < deadline:
            with lock:
                index = next_index[0]
                if index >= count:
                    return
                next_index[0] += 1
            try:
                cycle_once(port, b"cycle %d" % index)
            except (OSError, EOFError, ValueError) as error:
                with lock:
                    errors.append((index, repr(error)))

    started = time.monotonic()
    threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0) + 5)
    done = next_index[0]
    if done < count:
        errors.append((done, "only %d of %d cycles ran within %.0f s" % (done, count, timeout)))
    return time.monotonic() - started, errors


# -- slow clients ----------------------------------------------------------------------------

SLOW_HEAD = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"s" * 4096  # never ends


class Slowloris:
    """``count`` connections that each send one byte of a request head per second.

    ``tick()`` sends the next byte on every connection the server has not
    answered; ``pump(seconds)`` ticks once a second and collects what the
    server sends (``answers``) and when it ended each connection (``ended``,
    seconds after that connection was opened).
    """

    def __init__(self, port, count):
        self.socks = []
        self.opened = []
        self.answers = [b""] * count
        self.ended = [None] * count
        self.sent = 0
        self.selector = selectors.DefaultSelector()
        for index in range(count):
            sock = socket.create_connection((HOST, port), timeout=10)
            sock.setblocking(False)
            self.socks.append(sock)
            self.opened.append(time.monotonic())
            self.selector.register(sock, selectors.EVENT_READ, index)
        self.tick()

    def tick(self):
        for index, sock in enumerate(self.socks):
            if self.ended[index] is None and not self.answers[index]:
                try:
                    sock.send(SLOW_HEAD[self.sent:self.sent + 1])
                except OSError:
                    pass  # the server ended it: the read says how
        self.sent += 1

    def pump(self, seconds):
        """Tick every second for ``seconds``, reading what the server sends meanwhile."""
        deadline = time.monotonic() + seconds
        next_tick = time.monotonic() + 1.0
        while True:
            now = time.monotonic()
            if now >= deadline:
                return
            if now >= next_tick:
                self.tick()
                next_tick += 1.0
            for key, _ in self.selector.select(max(min(next_tick, deadline) - now, 0)):
                index = key.data
                try:
                    data = self.socks[index].recv(65536)
                except OSError:
                    data = b""
                if data:
                    self.answers[index] += data
                else:
                    self.ended[index] = time.monotonic() - self.opened[index]
                    self.selector.unregister(self.socks[index])

    def still_open(self):
        return sum(1 for ended in self.ended if ended is None)

    def close(self):
        self.selector.close()
        for sock in self.socks:
            sock.close()


# -- scenarios, shared by the tests and ``python -m bench.reliability`` ----------------------

def hold_connections(count, log_path=None, app="tests.apps:echo", idle_threads=1,
                     held_threads_settle=None, close_concurrency=500, close_timeout=60.0):
    """``count`` simultaneous echoing WebSockets on ``app``; the figures as a dict.

    ``idle_threads``: the server's threads with nothing to do (the event app
    has its reactor's too). ``held_threads_settle``: a thread count to wait
    for (up to 30 s) before counting the threads of the held connections, so
    that handshakes a busy machine has not finished yet do not count.
    ``close_concurrency``: closing handshakes started at a time (``count``:
    every client sends its close frame at once); ``close_timeout``: seconds
    the clients wait, in all, for the server's close frames.
    """
    nofile = count + 1024
    raise_nofile(nofile)
    result = {"count": count}
    with ServerProcess(app, nofile=nofile, log_path=log_path) as server:
        BlockingClient(server.port).close()  # warm-up: imports and first allocations done
        result["base_threads"] = server.settle_threads(idle_threads, 10)
        time.sleep(0.2)
        result["base_rss_kib"] = server.status()[1]
        crowd = Crowd(server.port, count)
        try:
            result["open_seconds"] = crowd.open()
            result["held"] = len(crowd.held)
            result["lost"] = list(crowd.lost)
            result["wrong"] = list(crowd.wrong)
            if held_threads_settle is not None:
                server.settle_threads(held_threads_settle, 30)
            result["held_threads"], result["held_rss_kib"] = server.status()
            result["kib_per_connection"] = (
                (result["held_rss_kib"] - result["base_rss_kib"]) / max(len(crowd.held), 1))
            result["close_seconds"] = crowd.close(close_timeout, close_concurrency)
            result["closed_cleanly"] = crowd.closed_cleanly
            result["close_lost"] = crowd.lost[len(result["lost"]):]
            result["close_wrong"] = crowd.wrong[len(result["wrong"]):]
            started = time.monotonic()
            result["threads_after"] = server.settle_threads(result["base_threads"], 20)
            result["settle_seconds"] = time.monotonic() - started
            result["alive"] = server.alive()
        finally:
            crowd.abort()
    return result


def connect_cycles(count, workers=8, warmup=1000, log_path=None):
    """``count`` connect/echo/close cycles after ``warmup`` ones; threads and memory around them."""
    result = {"count": count, "workers": workers, "warmup": warmup}
    with ServerProcess("tests.apps:echo", log_path=log_path) as server:
        seconds, errors = run_cycles(server.port, warmup, workers)
        result["warmup_errors"] = errors
        result["base_threads"] = server.settle_threads(1, 10)
        time.sleep(0.2)
        result["base_rss_kib"] = server.status()[1]
        result["seconds"], result["errors"] = run_cycles(server.port, count, workers)
        result["threads_after"] = server.settle_threads(result["base_threads"], 10)
        time.sleep(0.2)
        result["rss_after_kib"] = server.status()[1]
        result["rss_growth_kib"] = result["rss_after_kib"] - result["base_rss_kib"]
        result["alive"] = server.alive()
    return result


_KILLED_CLIENT = """\
import sys, time
sys.path.insert(0, sys.argv[2])
from tests.loadkit import TEXT, BlockingClient
client = BlockingClient(int(sys.argv[1]))
assert client.echo("from a process") == (TEXT, b"from a process")
print("ready", flush=True)
time.sleep(60)
"""


def dead_peer_killed(server, base):
    """A client process killed with SIGKILL: seconds until its server thread is gone."""
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_CLIENT, str(server.port), str(ROOT)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            start_new_session=True)
    try:
        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ)
        ready = selector.select(30)
        selector.close()
        line = proc.stdout.readline() if ready else b""
        if line != b"ready\n":
            raise RuntimeError("the client process did not connect: %r" % line)
        if server.threads() != base + 1:
            raise RuntimeError("expected %d server threads, not %d" % (base + 1, server.threads()))
        started = time.monotonic()
        os.killpg(proc.pid, signal.SIGKILL)
        threads = server.settle_threads(base, 10)
        return threads, time.monotonic() - started
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)
        proc.stdout.close()


def dead_peer_reset(server, base):
    """A client that resets TCP (SO_LINGER 0, then close): seconds until its thread is gone."""
    client = BlockingClient(server.port)
    assert client.echo("then a reset") == (TEXT, b"then a reset")
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    started = time.monotonic()
    client.abort()
    threads = server.settle_threads(base, 10)
    return threads, time.monotonic() - started


def dead_peer_silent(server, base):
    """A peer that stops reading and answering, its socket open.

    Returns (threads at the end, seconds until the server gave up on it
    (its FIN), seconds until its thread was gone, the frames it had sent).
    """
    client = BlockingClient(server.port)
    try:
        assert client.echo("then silence") == (TEXT, b"then silence")
        started = time.monotonic()
        poller = select.poll()
        poller.register(client.sock, select.POLLRDHUP)  # the server's FIN, nothing read
        poller.poll(30000)
        detected = time.monotonic() - started
        threads = server.settle_threads(base, 10)
        freed = time.monotonic() - started
        frames = []
        client.sock.settimeout(5)
        while True:
            try:
                frames.append(client.read_frame())
            except (EOFError, OSError):
                break
        return threads, detected, freed, frames
    finally:
        client.abort()


def flood_until_stuck(sock, limit=10.0):
    """Send 64 KiB binary messages on ``sock``, never reading, until nothing more goes out.

    The server echoes them until the peer's buffers are full, then its send
    blocks and it stops reading too. Returns (bytes sent, when the sending
    stopped: a ``time.monotonic()``); the socket is left non-blocking.
    """
    sock.setblocking(False)
    frame = masked_frame(BINARY, b"x" * 65536)
    offset = sent = 0
    blocked_since = None
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            count = sock.send(frame[offset:])
        except BlockingIOError:
            count = 0
        except OSError:
            break  # the server gave up on us already
        sent += count
        offset = (offset + count) % len(frame)
        if count:
            blocked_since = None
        elif blocked_since is None:
            blocked_since = time.monotonic()
        elif time.monotonic() - blocked_since > 0.2:
            break  # neither side takes anything any more
        else:
            time.sleep(0.01)
    return sent, blocked_since or time.monotonic()


def dead_peer_not_reading(server, base, limit=10.0):
    """A peer that keeps sending but stops reading, while the server echoes to it.

    Returns (threads at the end, seconds from the peer's buffers filling up
    until its server thread was gone, bytes the peer sent).
    """
    client = BlockingClient(server.port)
    try:
        assert client.echo("then no reading") == (TEXT, b"then no reading")
        sent, started = flood_until_stuck(client.sock, limit)
        threads = server.settle_threads(base, limit)
        return threads, time.monotonic() - started, sent
    finally:
        client.abort()
