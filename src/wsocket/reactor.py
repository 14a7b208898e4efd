"""Idle connections without a thread: one epoll loop, and workers when there is work.

wsocket's own server gives every connection a thread while it talks HTTP.
The event app (``onconnect``/``onmessage``/``onclose``) needs no thread
while a WebSocket has nothing to say, so once a connection has no message
waiting it is handed to the ``Reactor``: one thread waits on all such
sockets at once with epoll, and a socket that becomes readable, or whose
keepalive ping falls due, is handed to a worker thread, which handles
what arrived and hands the socket back. Workers are started as needed and
end after a few idle seconds, so a server holding 10,000 quiet connections
runs a handful of threads.

``watch(sock, callback, due)`` is one-shot: ``callback`` runs once, in a
worker, when ``sock`` is readable, when the monotonic time ``due`` comes,
or when ``wake(sock)`` is called, and the socket is not watched again until
the callback calls ``watch`` again. So the callbacks of one socket never
run at the same time, and they run in order.

Only where ``select.epoll`` exists (Linux); elsewhere ``available()`` is
False and the server keeps a thread per connection, as before.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import math
import select
import threading
import time
from typing import TYPE_CHECKING, Callable

from ._sockets import WakeUpPair, shutdown_quietly
from .websocket import logger

if TYPE_CHECKING:
    import socket

__all__ = ["Reactor", "Workers", "available", "Job"]

# What a worker runs: a callable without arguments (its result is ignored).
Job = Callable[[], object]

WORKER_IDLE_TIMEOUT = 5.0  # seconds a worker with nothing to do waits before it ends
LINGER = 0.5  # seconds a worker stays with a connection that just had a message
MAX_LINGERING = 256  # connections that may linger so at once


def available() -> bool:
    return hasattr(select, "epoll")


class Workers:
    """Threads that run jobs, started when every one is busy, ended when idle.

    No job ever waits for another to finish (a handler may block as long as
    it likes, like it would with a thread per connection), and idle threads
    do not pile up: each ends after ``idle_timeout`` seconds without a job.
    """

    def __init__(self, name: str = "wsocket-worker",
                 idle_timeout: float = WORKER_IDLE_TIMEOUT) -> None:
        self.name = name
        self.idle_timeout = idle_timeout
        self._jobs: collections.deque[Job] = collections.deque()
        self._condition = threading.Condition(threading.Lock())
        self._idle = 0  # workers waiting for a job; never fewer than len(_jobs)
        self._started = itertools.count(1)

    def submit(self, job: Job) -> None:
        """Run ``job()`` in a worker thread, at once."""
        with self._condition:
            if self._idle > len(self._jobs):
                self._jobs.append(job)
                self._condition.notify()
                return
        thread = threading.Thread(target=self._work, args=(job,), daemon=True,
                                  name="%s-%d" % (self.name, next(self._started)))
        thread.start()

    def _work(self, job: Job | None) -> None:
        while job is not None:  # always: the loop ends by return
            try:
                job()
            except Exception:
                logger.exception("error in %s", self.name)
            job = None  # nothing of the last job stays alive while waiting
            with self._condition:
                self._idle += 1
                deadline = time.monotonic() + self.idle_timeout
                while not self._jobs:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        self._idle -= 1
                        return
                    self._condition.wait(remaining)
                job = self._jobs.popleft()
                self._idle -= 1


class _Watch:
    """One socket known to the reactor."""

    __slots__ = ("sock", "callback", "armed", "again", "due", "timer")

    def __init__(self, sock: socket.socket, callback: Job) -> None:
        self.sock = sock
        self.callback = callback
        self.armed = False  # waiting: the next event runs the callback
        self.again = False  # an event came while the callback ran: run it once more
        self.due: float | None = None  # when the callback is due without an event
        # The earliest time this watch has in the timer heap, or None: a
        # watch armed again and again (a busy socket) keeps one entry there.
        self.timer: float | None = None


class Reactor:
    """One thread waiting on many sockets at once; see the module docstring.

    ``linger`` and ``lingering`` are for the reactor's users: a callback may
    wait up to ``linger`` seconds for its socket itself before it watches it
    again, when it gets a place from the ``lingering`` semaphore (see
    ``app._EventSession``).
    """

    linger = LINGER

    def __init__(self, workers: Workers | None = None,
                 max_lingering: int = MAX_LINGERING) -> None:
        self.workers = workers or Workers()
        self.lingering = threading.BoundedSemaphore(max_lingering)
        self._epoll = select.epoll()
        self._watches: dict[int, _Watch] = {}  # descriptor -> _Watch
        self._timers: list[tuple[float, int, _Watch]] = []  # heap of (time, serial, watch)
        self._serial = itertools.count()
        self._lock = threading.Lock()
        self._next_wake = math.inf  # when the loop wakes up by itself at the latest
        self._closing = False
        self._wake_up = WakeUpPair()
        self._epoll.register(self._wake_up.fileno(), select.EPOLLIN)
        self._thread = threading.Thread(target=self._run, name="wsocket-reactor", daemon=True)
        self._thread.start()

    def __len__(self) -> int:
        """The sockets watched now."""
        with self._lock:
            return len(self._watches)

    def watch(self, sock: socket.socket, callback: Job, due: float | None = None) -> None:
        """Run ``callback()`` in a worker once ``sock`` is readable, ``due`` comes, or ``wake``."""
        fd = sock.fileno()
        wake_loop = run_now = False
        with self._lock:
            if self._closing:
                shutdown_quietly(sock)  # stopping: the callback sees the connection end
            watch = self._watches.get(fd)
            if watch is None or watch.sock is not sock:
                if watch is not None:
                    # The descriptor's last socket was closed without unwatch().
                    watch.armed = False
                watch = self._watches[fd] = _Watch(sock, callback)
                try:
                    self._epoll.register(fd, select.EPOLLIN | select.EPOLLONESHOT)
                except FileExistsError:
                    self._epoll.modify(fd, select.EPOLLIN | select.EPOLLONESHOT)
            else:
                watch.callback = callback
                # Something happened while the callback ran: go round once more.
                run_now, watch.again = watch.again, False
                if not run_now:
                    self._epoll.modify(fd, select.EPOLLIN | select.EPOLLONESHOT)
            if not run_now:
                # Armed in the same breath as epoll, so no event falls in between.
                watch.armed = True
                watch.due = due
                if due is not None and (watch.timer is None or due < watch.timer):
                    watch.timer = due
                    heapq.heappush(self._timers, (due, next(self._serial), watch))
                    if due < self._next_wake:
                        self._next_wake = due
                        wake_loop = True
        if run_now:
            self.workers.submit(callback)
        elif wake_loop:
            self._wake()

    def wake(self, sock: socket.socket) -> None:
        """Run the callback of ``sock`` now (or once more, if it is running)."""
        with self._lock:
            watch = self._watches.get(sock.fileno())
            if watch is None or watch.sock is not sock:
                return
            callback = self._fire(watch)
        if callback is not None:
            self.workers.submit(callback)

    def unwatch(self, sock: socket.socket) -> None:
        """Forget ``sock``; call it before closing the socket."""
        try:
            fd = sock.fileno()
        except OSError:
            return
        with self._lock:
            watch = self._watches.get(fd)
            if watch is None or watch.sock is not sock:
                return
            del self._watches[fd]
            watch.armed = False
            try:
                self._epoll.unregister(fd)
            except OSError:
                pass
            last = self._closing and not self._watches
        if last:
            self._wake()  # the loop ends now

    def close(self) -> None:
        """Stop: the sockets still watched are shut down, so their callbacks see them end.

        The loop runs on until the last of them is unwatched.
        """
        with self._lock:
            self._closing = True
            socks = [watch.sock for watch in self._watches.values()]
        for sock in socks:
            shutdown_quietly(sock)
        self._wake()

    def _fire(self, watch: _Watch) -> Job | None:
        """The callback to run for an event on ``watch`` (lock held), or None."""
        if watch.armed:
            watch.armed = False
            return watch.callback
        watch.again = True
        return None

    def _wake(self) -> None:
        self._wake_up.wake()

    def _run(self) -> None:
        wake_fd = self._wake_up.fileno()
        while True:
            with self._lock:
                if self._closing and not self._watches:
                    break
                self._next_wake = self._timers[0][0] if self._timers else math.inf
                timeout = self._next_wake - time.monotonic()
            events = self._epoll.poll(-1 if timeout == math.inf else max(timeout, 0))
            ready = []
            with self._lock:
                for fd, _ in events:
                    if fd == wake_fd:
                        continue
                    watch = self._watches.get(fd)
                    if watch is not None:
                        ready.append(self._fire(watch))
                now = time.monotonic()
                timers = self._timers
                while timers and timers[0][0] <= now:
                    when, _, watch = heapq.heappop(timers)
                    if watch.timer != when:
                        continue  # an earlier entry of this watch took its place
                    watch.timer = None
                    if not watch.armed or watch.due is None:
                        continue
                    if watch.due <= now:
                        ready.append(self._fire(watch))
                    else:
                        # Armed again since with a later due time: wait for that.
                        watch.timer = watch.due
                        heapq.heappush(timers, (watch.due, next(self._serial), watch))
            if any(fd == wake_fd for fd, _ in events):
                self._wake_up.drain()
            for callback in ready:
                if callback is not None:
                    self.workers.submit(callback)
        self._epoll.close()
        self._wake_up.close()
