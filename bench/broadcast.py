"""``python -m bench.broadcast``: how long one broadcast takes to reach every client.

    python -m bench.broadcast                         # N = 100, 1000, 5000; every server
    python -m bench.broadcast --clients 1000 --servers wsocket-events,websockets-asyncio
    python -m bench.broadcast --servers wsocket-redis --rounds 50

For each server and N: N raw WebSocket clients connect; then, round after
round, client 0 sends a 64-byte binary message, the server sends it to
everyone, and the time from the send to the moment the last of the N clients
has the whole frame is measured. The servers are bench/servers' launchers
with ``--broadcast``, each broadcasting the way its users would: wsocket
through its hub (``app.hub.broadcast``, event app and WSGI loop),
websockets asyncio with ``broadcast()``, the threaded ones, picows and the
C ceiling (``c-epoll-echo``, loadgen.c's server) with a loop over the
connections. ``wsocket-redis`` is wsocket's hub through Redis: half the
clients on each of two ``python -m wsocket "bench.broadcast:make_app()"``
processes sharing a ``redis-server`` started here on a free port. The clients run in this one process on one epoll loop, so the
figure includes their own reading (a few microseconds per client).

Prints a Markdown table (median, 10th and 90th percentile, min, max over
the rounds) on stdout and progress on stderr. A benchmark, not a test:
nothing passes or fails on timing. Everything binds 127.0.0.1, every wait
has a deadline, and every process started here is stopped on the way out.
"""

import argparse
import os
import resource
import select
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from wsocket import WSocketApp

ROOT = Path(__file__).resolve().parent.parent
PAYLOAD_SIZE = 64
START_TIMEOUT = 30.0
ROUND_TIMEOUT = 30.0
REDIS_SERVER = "/usr/bin/redis-server"


def raise_open_file_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# -- the server side: python -m wsocket "bench.broadcast:make_app()" ---------------------------

def make_app():
    """Every binary message is broadcast to every client (of every process)."""
    raise_open_file_limit()  # thousands of connections in the server process too
    app = WSocketApp(ping_interval=None)

    def on_message(message, client):
        if isinstance(message, bytes):
            app.hub.broadcast(message)

    app.onmessage = on_message
    return app


# -- processes ----------------------------------------------------------------------

def progress(text):
    print(text, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Processes:
    """Everything started here, stopped in reverse order at the end."""

    def __init__(self):
        self.started = []

    def start_server(self, hub_url=None):
        environment = dict(os.environ, PYTHONUNBUFFERED="1",
                           PYTHONPATH=os.pathsep.join(filter(None, [
                               str(ROOT), os.environ.get("PYTHONPATH")])))
        environment.pop("WSOCKET_HUB", None)
        command = [sys.executable, "-m", "wsocket", "bench.broadcast:make_app()", "--port", "0",
                   "--log-level", "warning"]
        if hub_url:
            command += ["--hub", hub_url]
        proc = subprocess.Popen(command, cwd=str(ROOT), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                env=environment, start_new_session=True)
        self.started.append(proc)
        line = _read_line(proc, START_TIMEOUT)
        prefix = "wsocket serving on http://127.0.0.1:"
        if not line.startswith(prefix):
            raise RuntimeError("unexpected banner %r" % line)
        return int(line[len(prefix):].split("/")[0])

    def start_redis(self):
        port = free_port()
        proc = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1",
                                 "--save", "", "--appendonly", "no"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        self.started.append(proc)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16) == b"+PONG\r\n":
                        return "redis://127.0.0.1:%d/0" % port
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def stop_all(self):
        for proc in reversed(self.started):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.started):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
            if proc.stdout is not None:
                proc.stdout.close()
        self.started.clear()


def _read_line(proc, timeout):
    deadline = time.monotonic() + timeout
    data = b""
    fd = proc.stdout.fileno()
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no banner within %.0f s" % timeout)
        if select.select([fd], [], [], remaining)[0]:
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError("the server exited (%s) before its banner" % proc.wait(5))
            data += chunk
    return data.split(b"\n", 1)[0].decode()


# -- the clients: raw sockets on one epoll loop ----------------------------------------

UPGRADE = ("GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n")


def open_clients(ports, count):
    """``count`` upgraded sockets, spread evenly over the servers at ``ports``."""
    clients = []
    for index in range(count):
        port = ports[index % len(ports)]
        sock = socket.create_connection(("127.0.0.1", port), timeout=START_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall((UPGRADE % port).encode("ascii"))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                raise RuntimeError("the server closed a connection during the handshake")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101 "):
            raise RuntimeError("handshake refused: %r" % head[:100])
        if head.index(b"\r\n\r\n") + 4 != len(head):
            raise RuntimeError("unexpected bytes after the 101")
        sock.setblocking(False)
        clients.append(sock)
    return clients


def masked_binary_frame(payload):
    key = os.urandom(4)
    masked = bytes(byte ^ key[index % 4] for index, byte in enumerate(payload))
    return bytes([0x82, 0x80 | len(payload)]) + key + masked


def one_round(clients, poller, sequence):
    """Seconds from client 0's send until all clients hold the broadcast frame."""
    payload = sequence.to_bytes(8, "big") * (PAYLOAD_SIZE // 8)
    expected = bytes([0x82, PAYLOAD_SIZE]) + payload
    received = {sock.fileno(): b"" for sock in clients}
    by_fd = {sock.fileno(): sock for sock in clients}
    waiting = len(clients)
    frame = masked_binary_frame(payload)
    start = time.perf_counter()
    clients[0].send(frame)
    deadline = time.monotonic() + ROUND_TIMEOUT
    last = start
    while waiting:
        if time.monotonic() > deadline:
            missing = [index for index, sock in enumerate(clients)
                       if len(received[sock.fileno()]) < len(expected)]
            raise TimeoutError("%d of %d clients (%s) did not get round %d within %.0f s"
                               % (waiting, len(clients), ", ".join(map(str, missing[:10])),
                                  sequence, ROUND_TIMEOUT))
        for fd, _ in poller.poll(1.0):
            data = received[fd]
            if len(data) >= len(expected):
                by_fd[fd].recv(65536)
                continue
            data += by_fd[fd].recv(65536)
            received[fd] = data
            if len(data) >= len(expected):
                last = time.perf_counter()
                waiting -= 1
    wrong = sum(1 for data in received.values() if data != expected)
    if wrong:
        raise RuntimeError("%d clients got something else than the broadcast" % wrong)
    return last - start


def measure(ports, count, rounds, warmup):
    clients = open_clients(ports, count)
    # A server may answer the handshake before its handler has added the
    # connection to the set it broadcasts to (flask-sock does): let it catch up.
    time.sleep(0.5 + count / 2000)
    poller = select.epoll()
    try:
        for sock in clients:
            poller.register(sock.fileno(), select.EPOLLIN)
        times = []
        for sequence in range(warmup + rounds):
            elapsed = one_round(clients, poller, sequence)
            if sequence >= warmup:
                times.append(elapsed)
            time.sleep(0.05)
        return times
    finally:
        poller.close()
        for sock in clients:
            sock.close()


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def start_launcher(processes, name):
    """bench/servers' launcher ``name`` with --broadcast; returns its port."""
    from bench.servers import SERVERS
    command = [sys.executable, "-m", "bench.servers." + SERVERS[name][0], "--port", "0",
               "--broadcast"]
    proc = subprocess.Popen(command, cwd=str(ROOT), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), start_new_session=True)
    processes.started.append(proc)
    line = _read_line(proc, START_TIMEOUT)
    if not line.startswith("READY "):
        raise RuntimeError("%s said %r instead of READY" % (name, line))
    return int(line.split()[1])


def main(argv=None):
    from bench.servers import SERVERS, missing
    choices = list(SERVERS) + ["wsocket-redis"]
    parser = argparse.ArgumentParser(prog="python -m bench.broadcast",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="100,1000,5000",
                        help="comma-separated client counts (default 100,1000,5000)")
    parser.add_argument("--servers", default=",".join(choices),
                        help="comma-separated, from %s (default all)" % ", ".join(choices))
    parser.add_argument("--rounds", type=int, default=30, help="measured rounds (default 30)")
    parser.add_argument("--warmup", type=int, default=5, help="rounds not measured (default 5)")
    args = parser.parse_args(argv)
    counts = [int(text) for text in args.clients.split(",")]
    servers = [name.strip() for name in args.servers.split(",") if name.strip()]
    unknown = [name for name in servers if name not in choices]
    if unknown:
        parser.error("unknown server(s) %s (known: %s)" % (", ".join(unknown), ", ".join(choices)))
    limit = raise_open_file_limit()
    if max(counts) + 100 > limit:
        parser.error("%d clients need more open files than the limit of %d"
                     % (max(counts), limit))
    rows = []
    load_at_start = os.getloadavg()[0]
    for count in counts:
        for name in servers:
            if name == "wsocket-redis" and not os.path.exists(REDIS_SERVER):
                progress("skipped wsocket-redis: %s is not installed" % REDIS_SERVER)
                continue
            if name != "wsocket-redis" and missing(name):
                progress("skipped %s: not installed (%s)" % (name, ", ".join(missing(name))))
                continue
            processes = Processes()
            try:
                if name == "wsocket-redis":
                    url = processes.start_redis()
                    ports = [processes.start_server(url), processes.start_server(url)]
                else:
                    ports = [start_launcher(processes, name)]
                progress("%s, %d clients..." % (name, count))
                result = measure(ports, count, args.rounds, args.warmup)
            except (OSError, RuntimeError) as error:  # TimeoutError is an OSError
                result = "failed: %s" % error
            finally:
                processes.stop_all()
            rows.append((name, len(ports) if name == "wsocket-redis" else 1, count, result))
    print("| clients | server | processes | median ms | p10 ms | p90 ms | min ms | max ms "
          "| peer ÷ wsocket-events (median) |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    reference = {count: statistics.median(times) for name, _, count, times in rows
                 if name == "wsocket-events" and not isinstance(times, str)}
    for name, processes_count, count, times in rows:
        if isinstance(times, str):
            print("| %d | %s | %d | %s | | | | | |" % (count, name, processes_count,
                                                     times[:100].replace("|", "/")))
            continue
        median = statistics.median(times)
        versus = ("%.2f" % (median / reference[count])
                  if count in reference and name != "wsocket-events" else "")
        print("| %d | %s | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %s |" % (
            count, name, processes_count, median * 1000,
            percentile(times, 0.1) * 1000, percentile(times, 0.9) * 1000,
            min(times) * 1000, max(times) * 1000, versus))
    print("\n%d rounds each after %d unmeasured; %d-byte binary message; Python %s; "
          "%d CPUs, load average %.1f at the start and %.1f at the end"
          % (args.rounds, args.warmup, PAYLOAD_SIZE, sys.version.split()[0],
             os.cpu_count(), load_at_start, os.getloadavg()[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
