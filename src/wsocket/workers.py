"""Every core: ``run(app, workers=N)`` and ``wsocket app:app --workers N``.

A supervisor process forks N worker processes. Each worker is a whole
wsocket server (threads, the event app's epoll loop, its own hub) with a
listening socket of its own on the same address: ``SO_REUSEPORT`` lets the
kernel spread new connections over the workers. Where ``SO_REUSEPORT`` is
missing the workers share one inherited, non-blocking listening socket.

The supervisor:

- holds the port (a bound socket that never listens, so no connection
  waits on it) and restarts a worker that dies, with a growing delay when
  workers keep dying at once (a crash loop is reported and ends the run);
- passes SIGTERM and Ctrl-C on: each worker stops its server, closing its
  open WebSockets with 1001, and the supervisor waits for them;
- relays broadcasts between the workers' hubs (``HubRelay``): a hub with no
  backend of its own (``memory://``) reaches the clients of every worker.
  A Redis hub already spans the workers, and hosts, through Redis.
"""

from __future__ import annotations

import logging
import os
import selectors
import shutil
import signal
import socket
import struct
import tempfile
import threading
import time
from typing import Any, Callable

__all__ = ["Supervisor", "HubRelay", "WorkersBackend", "default_worker_count",
           "reuse_port_available"]

logger = logging.getLogger("wsocket")

_LENGTH = struct.Struct("!I")  # each relayed broadcast: its length, then the hub's envelope
_MAX_RELAYED = 256 * 1024 * 1024  # an envelope is one message; more is a broken peer
_QUICK_DEATH = 2.0  # a worker dying sooner than this after its start counts as a crash
_RESTART_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)  # after consecutive quick deaths; the last repeats
_CRASH_LOOP = 10  # consecutive quick deaths that end the run
_POLL = 0.2  # seconds between the supervisor's looks at its children


def reuse_port_available() -> bool:
    return hasattr(socket, "SO_REUSEPORT")


def default_worker_count() -> int:
    """``--workers 0``: one worker per core this process may run on."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:
        return max(os.cpu_count() or 1, 1)


def check_worker_count(workers: Any) -> int:
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
        raise ValueError("workers must be a whole number, 0 for one per core, not %r"
                         % (workers,))
    return workers or default_worker_count()


# -- the hub's relay between workers ---------------------------------------------------

def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


class HubRelay:
    """In the supervisor: a Unix socket every worker's hub connects to.

    Each length-prefixed envelope one worker sends goes to every other
    worker, in the order it came. One thread, one selector; a worker that
    ends (or is killed) simply drops out.
    """

    def __init__(self) -> None:
        self._folder = tempfile.mkdtemp(prefix="wsocket-hub-")
        self.address = os.path.join(self._folder, "relay.sock")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.address)
        self._listener.listen(128)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._buffers: dict[socket.socket, bytearray] = {}
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._selector.register(self._wake_reader, selectors.EVENT_READ)
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="wsocket-hub-relay",
                                        daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._closed:
            for key, _ in self._selector.select():
                sock = key.fileobj
                if sock is self._wake_reader:
                    return
                if sock is self._listener:
                    self._accept()
                else:
                    self._read(sock)  # type: ignore[arg-type]

    def _accept(self) -> None:
        try:
            worker, _ = self._listener.accept()
        except OSError:
            return
        self._buffers[worker] = bytearray()
        self._selector.register(worker, selectors.EVENT_READ)

    def _read(self, worker: socket.socket) -> None:
        try:
            data = worker.recv(262144)
        except OSError:
            data = b""
        if not data:
            self._drop(worker)
            return
        buffer = self._buffers[worker]
        buffer += data
        while len(buffer) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(buffer)
            if length > _MAX_RELAYED:
                logger.warning("hub relay: a worker sent a %d-byte broadcast; dropped it",
                               length)
                self._drop(worker)
                return
            end = _LENGTH.size + length
            if len(buffer) < end:
                break
            message = bytes(buffer[:end])
            del buffer[:end]
            for other in list(self._buffers):
                if other is not worker:
                    try:
                        other.sendall(message)  # each worker's hub reads on a thread of its own
                    except OSError:
                        self._drop(other)

    def _drop(self, worker: socket.socket) -> None:
        if self._buffers.pop(worker, None) is not None:
            self._selector.unregister(worker)
        worker.close()

    def close(self) -> None:
        self._closed = True
        try:
            self._wake_writer.send(b"x")
        except OSError:
            pass
        self._thread.join(5)
        for worker in list(self._buffers):
            self._drop(worker)
        self._listener.close()
        self._wake_reader.close()
        self._wake_writer.close()
        shutil.rmtree(self._folder, ignore_errors=True)


class WorkersBackend:
    """In a worker: the hub backend that publishes to, and hears from, the relay.

    The same interface as the Redis backend (``publish``, ``start``,
    ``close``); envelopes heard go to the hub's ``receive_envelope``.
    """

    name = "workers"

    def __init__(self, hub: Any, address: str) -> None:
        self._hub = hub
        self.address = address
        self._sock: socket.socket | None = None
        self._send_lock = threading.Lock()
        self.start()

    def start(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self.address)
        self._sock = sock
        threading.Thread(target=self._listen, args=(sock,), name="wsocket-hub-workers",
                         daemon=True).start()

    def publish(self, envelope: bytes) -> None:
        sock = self._sock
        if sock is None:
            return
        with self._send_lock:  # whole envelopes, in the order they were broadcast
            try:
                sock.sendall(_LENGTH.pack(len(envelope)) + envelope)
            except OSError as error:
                logger.warning("hub: lost the other workers (%s); broadcasts reach this "
                               "worker's clients only", error)
                self._sock = None

    def _listen(self, sock: socket.socket) -> None:
        try:
            while True:
                head = _read_exactly(sock, _LENGTH.size)
                if head is None:
                    return
                envelope = _read_exactly(sock, _LENGTH.unpack(head)[0])
                if envelope is None:
                    return
                self._hub.receive_envelope(envelope)
        except OSError:
            return

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


# -- the supervisor ------------------------------------------------------------------

class _Worker:
    def __init__(self, number: int, pid: int) -> None:
        self.number = number
        self.pid = pid
        self.started = time.monotonic()


class Supervisor:
    """Runs ``workers`` copies of the server made by ``make_server`` (see module doc).

    ``make_server(listening_socket_or_None)`` is called in each worker after
    the fork and returns a ready server; with ``SO_REUSEPORT`` the argument
    is None and each server binds its own socket.
    """

    def __init__(self, make_server: Callable[[socket.socket | None], Any],
                 address: tuple[str, int], workers: int) -> None:
        self._make_server = make_server
        self.workers = workers
        self._address = address
        self._stopping = False
        self._children: dict[int, _Worker] = {}
        self._quick_deaths = 0
        self.port = 0
        self._holder: socket.socket | None = None
        self._shared: socket.socket | None = None
        self.relay: HubRelay | None = None
        self._on_ready: Callable[[], None] | None = None
        self._ready_reader = self._ready_writer = -1

    # -- the port --------------------------------------------------------------------

    def bind(self) -> int:
        """Take the port (0: a free one) before any worker starts; returns it."""
        host, port = self._address[:2]
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPV6_V6ONLY"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if reuse_port_available():
                # Bound, never listening: it keeps the port while workers come
                # and go, and no connection is ever queued on it.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                sock.bind((host, port))
                self._holder = sock
            else:
                sock.bind((host, port))
                sock.listen(1024)
                sock.setblocking(False)  # the worker that loses a race for accept() goes on
                self._shared = sock
        except BaseException:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        return self.port

    # -- running ---------------------------------------------------------------------

    def run(self, on_ready: Callable[[], None] | None = None) -> int:
        """Start the workers and keep them running until SIGTERM or Ctrl-C; returns 0 or 1.

        ``on_ready`` is called once every first worker listens (the banner).
        """
        if self._holder is None and self._shared is None:
            self.bind()
        self._on_ready = on_ready
        self._ready_reader, self._ready_writer = os.pipe()
        os.set_blocking(self._ready_reader, False)
        self.relay = HubRelay()
        previous = {number: signal.signal(number, self._on_signal)
                    for number in (signal.SIGTERM, signal.SIGINT)}
        try:
            for number in range(self.workers):
                self._start(number)
            status = self._watch()
        finally:
            self._stop_all()
            for number, handler in previous.items():
                signal.signal(number, handler)
            self.relay.close()
            os.close(self._ready_reader)
            os.close(self._ready_writer)
            for sock in (self._holder, self._shared):
                if sock is not None:
                    sock.close()
        return status

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stopping = True

    def _start(self, number: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                code = self._serve_in_worker(number)
            except BaseException:  # anything reaching here must not run the supervisor's code
                logger.exception("worker %d failed", number)
            finally:
                os._exit(code)
        self._children[pid] = _Worker(number, pid)

    def _serve_in_worker(self, number: int) -> int:
        servers: list[Any] = []  # the worker's server, once made
        stop_asked = False

        def stop(signum: int, frame: Any) -> None:
            # No exception (see the server's stop_serving()): a flag, and
            # serve_forever() returns. More signals (Ctrl-C in the terminal
            # also reaches us besides the supervisor's SIGTERM) change nothing.
            nonlocal stop_asked
            stop_asked = True
            for server in servers:
                server.stop_serving()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        if self._holder is not None:
            self._holder.close()
        os.close(self._ready_reader)
        server = self._make_server(self._shared)
        servers.append(server)
        if stop_asked:
            server.stop_serving()  # the signal came while the server was being made
        hub = getattr(server.get_app(), "hub", None)
        if hub is not None and self.relay is not None:
            hub.span_workers(self.relay.address)
        os.write(self._ready_writer, b"r")  # listening: the supervisor may announce the port
        os.close(self._ready_writer)
        try:
            server.serve_forever()
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            server.stop()
        return 0

    def _watch(self) -> int:
        restarts: list[tuple[float, int]] = []  # (when, worker number)
        ready = 0
        while not self._stopping:
            if self._on_ready is not None:
                try:
                    ready += len(os.read(self._ready_reader, 4096))
                except BlockingIOError:
                    pass
                if ready >= self.workers:
                    self._on_ready()
                    self._on_ready = None
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid, status = 0, 0
            if pid:
                worker = self._children.pop(pid, None)
                if worker is None or self._stopping:
                    continue
                quick = time.monotonic() - worker.started < _QUICK_DEATH
                self._quick_deaths = self._quick_deaths + 1 if quick else 0
                if self._quick_deaths >= _CRASH_LOOP:
                    logger.error("workers keep dying right after they start (%d in a row); "
                                 "stopping", self._quick_deaths)
                    return 1
                delay = _RESTART_DELAYS[min(self._quick_deaths, len(_RESTART_DELAYS)) - 1] \
                    if self._quick_deaths else 0.0
                logger.warning("worker %d (pid %d) ended (%s); starting another%s",
                               worker.number, pid, _describe(status),
                               " in %.1f s" % delay if delay else "")
                restarts.append((time.monotonic() + delay, worker.number))
                continue
            now = time.monotonic()
            for due in [entry for entry in restarts if entry[0] <= now]:
                restarts.remove(due)
                self._start(due[1])
            time.sleep(_POLL if self._on_ready is None else 0.01)
        return 0

    def _stop_all(self, timeout: float = 15.0) -> None:
        for pid in list(self._children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while self._children and time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                self._children.pop(pid, None)
            else:
                time.sleep(0.05)
        for pid in list(self._children):
            logger.warning("worker pid %d did not stop in %.0f s; killed", pid, timeout)
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        self._children.clear()


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            return "killed by %s" % signal.Signals(number).name
        except ValueError:
            return "killed by signal %d" % number
    return "exit status %d" % os.WEXITSTATUS(status)
