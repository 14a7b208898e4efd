"""Event connections without a thread each: handlers run in the epoll loop itself.

wsocket's own server gives every connection a thread while it talks HTTP.
The event app (``onconnect``/``onmessage``/``onclose``) needs no thread of
its own per connection: once the handshake is done its socket is watched by
the ``Reactor``, whose loop waits on all such sockets at once with epoll
and, when one is readable, its keepalive ping falls due, or ``wake(sock)``
is called, runs that socket's callback right there, in the loop's thread:
no hand-over to another thread per message, which costs more than most
handlers (the Go runtime's idea, and picows' and uvloop's speed).

A handler may still block (sleep, wait for a lock or a slow peer, call a
database). The ``_LoopMonitor`` notices when the loop has been inside one
callback for more than ``stall`` seconds and hands the loop to another
thread (``Workers``), which goes on with the events already collected (they
wait in a shared ready queue) and with epoll. The blocked thread finishes
its callback, and is then an idle worker, ready to take the loop over the
next time. So a blocked handler holds up only its own connection, and a
server holding 10,000 quiet connections runs a handful of threads.

``watch(sock, callback, due)`` is one-shot: ``callback`` runs once when
``sock`` is readable, when the monotonic time ``due`` comes, or when
``wake(sock)`` is called, and not again until it is watched again: by the
callback returning a float, the next ``due`` (``math.inf``: none), which is
the cheap way for a busy socket (no call, no look-up per message), or by a
call to ``watch``. So the callbacks of one socket never run at the same
time, and they run in order. A callback should read only what has arrived
(without waiting): the registration is level-triggered and stays in epoll
(no system call to arm it again per message), so bytes left unread simply
make the socket come up again at the next turn of the loop.

Only where ``select.epoll`` exists (Linux); elsewhere ``available()`` is
False and the server keeps a thread per connection, as before.
"""

from __future__ import annotations

import collections
import functools
import heapq
import itertools
import math
import select
import threading
import time
from typing import TYPE_CHECKING, Callable, Protocol

from ._sockets import LONGEST_WAIT, WakeUpPair, shutdown_quietly
from .protocol.frames import load_accelerator
from .websocket import logger

if TYPE_CHECKING:
    import socket

__all__ = ["Reactor", "Workers", "available", "Job"]

# What a worker runs: a callable without arguments (its result is ignored).
Job = Callable[[], object]
# A watch's callback: a float it returns watches its socket again with
# that due time (math.inf: none); anything else does not.
Callback = Callable[[], object]

WORKER_IDLE_TIMEOUT = 5.0  # seconds a worker with nothing to do waits before it ends
STALL = 0.005  # seconds inside one callback after which another thread takes the loop
MONITOR_IDLE = 1.0  # seconds of a loop without callbacks after which the monitor ends

_READABLE: int = getattr(select, "EPOLLIN", 1)
# Registered but reported at most once more (a hang-up, which epoll reports
# even for no events at all), until watched again.
_MASKED: int = getattr(select, "EPOLLONESHOT", 0)


def available() -> bool:
    return hasattr(select, "epoll")


class Workers:
    """Threads that run jobs, started when every one is busy, ended when idle.

    No job ever waits for another to finish (a job may block as long as it
    likes), and idle threads do not pile up: each ends after
    ``idle_timeout`` seconds without a job. The reactor's loop is such a
    job, and each thread that gave the loop up is an idle worker again.
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

    __slots__ = ("sock", "fd", "callback", "on_stall", "armed", "again", "masked", "due",
                 "timer", "watched")

    def __init__(self, sock: socket.socket, fd: int, callback: Callback,
                 on_stall: Job | None) -> None:
        self.sock = sock
        self.fd = fd
        self.callback = callback
        self.on_stall = on_stall  # called (by the monitor) when the callback blocks
        self.armed = False  # waiting: the next event runs the callback
        self.again = False  # woken while the callback ran: run it once more
        # Left out of epoll's answers: readable while its callback ran (or
        # was blocked); level-triggered, it would come up at every turn.
        self.masked = False
        self.due = math.inf  # when the callback is due without an event (inf: never)
        # The earliest time this watch has in the timer heap (inf: none): a
        # watch armed again and again (a busy socket) keeps one entry there.
        self.timer = math.inf
        self.watched = True  # False once unwatched: a late re-arm is ignored


class _Turn:
    """One thread's time as the loop: what the monitor reads of it.

    Each thread that runs the loop has its own, so a thread that lost the
    loop while blocked in a callback never writes over its successor's.
    """

    __slots__ = ("callbacks", "running")

    def __init__(self) -> None:
        self.callbacks = 0  # callbacks started: the monitor sees the loop move on
        self.running: _Watch | None = None  # whose callback runs now


def _run_ready_in_python(reactor: Reactor, turn: _Turn, ready: collections.deque[_Watch],
                         finished: list[tuple[_Watch, float]]) -> None:
    """The loop's run of the callbacks that are due (``_speedups.run_ready`` does the same).

    While ``ready`` has a watch and ``turn`` is still the loop's: take the
    first, count it and mark it running in ``turn`` (what the monitor reads),
    call its callback; a float it returns goes to ``finished`` with it, to be
    watched again. A callback's exception propagates (``turn.running``
    cleared): the loop logs it and calls again for the rest.
    """
    while ready:
        if reactor._turn is not turn:
            return  # handed over while a callback blocked: an idle worker now
        try:
            watch = ready.popleft()
        except IndexError:
            return  # taken by the thread that has the loop now
        turn.callbacks += 1
        turn.running = watch
        try:
            due = watch.callback()
        finally:
            turn.running = None
        if type(due) is float:
            finished.append((watch, due))


def _take_armed_in_python(events: list[tuple[int, int]], watches: dict[int, _Watch],
                          ready: collections.deque[_Watch]) -> list[int]:
    """Queue the armed watches epoll reported (``_speedups.take_armed`` does the same).

    Each one armed is disarmed and appended to ``ready``; returns the
    descriptors of the others (the wake-up pipe, a watch whose callback runs,
    one unwatched meanwhile), for ``Reactor._collect`` to deal with.
    """
    others = []
    for fd, _ in events:
        watch = watches.get(fd)
        if watch is not None and watch.armed:
            watch.armed = False
            ready.append(watch)
        else:
            others.append(fd)
    return others


def _rearm_settled_in_python(finished: list[tuple[_Watch, float]]) -> list[tuple[_Watch, float]]:
    """Arm again the usual finished watches (``_speedups.rearm_settled`` does the same).

    The usual one (a busy socket) has nothing to change but its flags: epoll
    has it, and the timer heap has an entry for it at ``due`` or earlier (see
    ``Reactor._collect``). Returns the others, for ``Reactor._arm``.
    """
    others = []
    for watch, due in finished:
        if watch.masked or watch.again or not watch.watched or due < watch.timer:
            others.append((watch, due))
        else:
            watch.armed = True
            watch.due = due
    return others


class _RunReady(Protocol):
    def __call__(self, reactor: Reactor, turn: _Turn, ready: collections.deque[_Watch],
                 finished: list[tuple[_Watch, float]], /) -> None: ...


# Once a message on a busy connection: in C where it was built (no Python frame).
_speedups = load_accelerator()
_run_ready: _RunReady = getattr(_speedups, "run_ready", None) or _run_ready_in_python
_take_armed: Callable[[list[tuple[int, int]], dict[int, _Watch], collections.deque[_Watch]],
                      list[int]] = getattr(_speedups, "take_armed", None) or _take_armed_in_python
_rearm_settled: Callable[[list[tuple[_Watch, float]]], list[tuple[_Watch, float]]] = \
    getattr(_speedups, "rearm_settled", None) or _rearm_settled_in_python


class Reactor:
    """Many sockets, one epoll loop that runs their callbacks; see the module docstring.

    Args:
        workers: The threads that take the loop over when a callback blocks.
        stall: Seconds inside one callback after which another thread takes the loop.
    """

    # ``_turn`` is a slot: the C run of the ready callbacks reads it before each
    # one (_speedups.c's SlotField); everything else is in __dict__ as usual.
    __slots__ = ("_turn", "__dict__", "__weakref__")

    def __init__(self, workers: Workers | None = None, stall: float = STALL) -> None:
        self.workers = workers or Workers(name="wsocket-reactor")
        self.stall = stall
        self._epoll = select.epoll()
        self._watches: dict[int, _Watch] = {}  # descriptor -> _Watch
        self._timers: list[tuple[float, int, _Watch]] = []  # heap of (time, serial, watch)
        self._serial = itertools.count()
        # Watches whose callback is due, in order: filled from epoll, timers
        # and wake(), emptied by whichever thread is the loop now.
        self._ready: collections.deque[_Watch] = collections.deque()
        # Watched ``now``: ready at the loop's next turn, once the callbacks
        # running are done and watched again (one of them may block).
        self._soon: list[_Watch] = []
        self._lock = threading.Lock()
        self._next_wake = math.inf  # when the loop wakes up by itself at the latest
        self._polling = False  # the loop waits in epoll (wake() must write to the pipe)
        self._closing = False
        self.ended = threading.Event()  # set once the loop has stopped for good
        self._wake_up = WakeUpPair()
        self._epoll.register(self._wake_up.fileno(), _READABLE)
        self._turn = _Turn()  # the loop's current thread
        self._monitoring = False  # the monitor thread runs
        self.workers.submit(self._take_loop(self._turn))

    def __len__(self) -> int:
        """The sockets watched now."""
        with self._lock:
            return len(self._watches)

    def watch(self, sock: socket.socket, callback: Callback, due: float | None = None,
              on_stall: Job | None = None, now: bool = False) -> None:
        """Run ``callback()`` in the loop once ``sock`` is readable, ``due`` comes, or ``wake``.

        ``on_stall()`` is called from the monitor's thread when the callback
        blocks and the loop goes to another thread: what it was holding back
        for a moment (its answers to a batch) must not wait for it. With
        ``now``, the callback runs at the loop's next turn without waiting
        (``due`` is not used): for a socket that most likely has its bytes
        already, this spares their trip through epoll (and a timer). It runs
        after the callbacks running now are done and watched again: called
        from one (the server's accept), it must not run first and block with
        that one not watched again (the listening socket, say).
        """
        fd = sock.fileno()
        with self._lock:
            watch = self._watches.get(fd)
            if watch is None or watch.sock is not sock:
                if watch is not None:
                    # The descriptor's last socket was closed without unwatch().
                    watch.armed = False
                    watch.watched = False
                watch = self._watches[fd] = _Watch(sock, fd, callback, on_stall)
                try:
                    self._epoll.register(fd, _READABLE)
                except FileExistsError:
                    self._epoll.modify(fd, _READABLE)
            else:
                watch.callback = callback
                watch.on_stall = on_stall
            if now:
                watch.armed = False
                self._soon.append(watch)
                self._wake_loop()
            else:
                self._arm(watch, math.inf if due is None else due)

    def pending(self) -> bool:
        """Whether callbacks of other sockets wait for the loop now (read without the lock).

        From a callback: whether the loop has more to do once it returns.
        """
        return bool(self._ready)

    def set_on_stall(self, sock: socket.socket, on_stall: Job | None) -> None:
        """Set the stall hook of ``sock``'s watch, without watching it again (it may be running)."""
        with self._lock:
            watch = self._watches.get(sock.fileno())
            if watch is not None and watch.sock is sock:
                watch.on_stall = on_stall

    def wake(self, sock: socket.socket) -> None:
        """Run the callback of ``sock`` now (or once more, if it is running)."""
        with self._lock:
            watch = self._watches.get(sock.fileno())
            if watch is not None and watch.sock is sock:
                if watch.armed:
                    watch.armed = False
                    self._run_soon(watch)
                else:
                    watch.again = True  # it runs now: once more when it is done

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
            watch.watched = False
            try:
                self._epoll.unregister(fd)
            except OSError:
                pass
            if self._closing and not self._watches and self._polling:
                self._wake_up.wake()  # the loop ends now

    def hand_over(self, sock: socket.socket) -> None:
        """From the callback of ``sock``, which is about to block: unwatch it, give the loop away.

        Another thread takes the loop at once, without waiting for the monitor
        to see a stall, and the caller's thread is the connection's own from
        here on: the socket is no longer watched, and the thread becomes an
        idle worker again when the callback returns.
        """
        self.unwatch(sock)
        with self._lock:
            running = self._turn.running
            if running is None or running.sock is not sock:
                return  # the loop has gone on already (the monitor saw a stall)
            turn, self._turn = self._turn, _Turn()
            successor = self._turn
        try:
            self.workers.submit(self._take_loop(successor))
        except RuntimeError as error:  # no thread to be had: the loop stays here meanwhile
            logger.warning("no thread to take the reactor's loop over (%s)", error)
            with self._lock:
                if self._turn is successor:
                    self._turn = turn

    def close(self) -> None:
        """Stop: the sockets still watched are shut down, so their callbacks see them end.

        The loop runs on until the last of them is unwatched.
        """
        with self._lock:
            self._closing = True
            socks = [watch.sock for watch in self._watches.values()]
        for sock in socks:
            shutdown_quietly(sock)
        self._wake_up.wake()

    # -- with the lock held ------------------------------------------------------------

    def _arm(self, watch: _Watch, due: float) -> None:
        """Wait for the next event of ``watch`` (or ``due``): its callback returned, or watch()."""
        if not watch.watched:
            return  # unwatched while its callback ran
        if self._closing:
            shutdown_quietly(watch.sock)  # stopping: the callback sees the connection end
        if watch.masked:
            watch.masked = False
            self._epoll.modify(watch.fd, _READABLE)
        if watch.again:
            # Woken while the callback ran: go round once more.
            watch.again = False
            self._run_soon(watch)
            return
        # Armed in the same breath as epoll, so no event falls in between.
        watch.armed = True
        watch.due = due
        if due < watch.timer:
            watch.timer = due
            heapq.heappush(self._timers, (due, next(self._serial), watch))
            if due < self._next_wake and self._polling:
                self._next_wake = due
                self._wake_up.wake()

    def _arm_all(self, finished: list[tuple[_Watch, float]]) -> None:
        """``_arm`` each of ``finished``: the usual ones (busy sockets) in one call."""
        for watch, due in finished if self._closing else _rearm_settled(finished):
            self._arm(watch, due)

    def _run_soon(self, watch: _Watch) -> None:
        """Queue the callback of ``watch`` for the loop; wake the loop if it waits in epoll."""
        self._ready.append(watch)
        self._wake_loop()

    def _wake_loop(self) -> None:
        """Bring the loop out of epoll, if it waits there, to see what was just queued."""
        if self._polling:
            self._polling = False  # one wake-up is enough
            self._wake_up.wake()

    def _collect(self, events: list[tuple[int, int]]) -> None:
        """Queue the callbacks of what epoll reported and of the timers that fell due."""
        ready = self._ready
        watches = self._watches
        for fd in _take_armed(events, watches, ready):
            watch = watches.get(fd)
            if watch is None:
                if fd == self._wake_up.fileno():
                    self._wake_up.drain()
                continue
            if not watch.masked:
                # Its callback runs (on a thread that lost the loop) or did not
                # watch again yet: the socket is left out until it is watched
                # again, and then, if still readable, comes up at once.
                watch.masked = True
                self._epoll.modify(fd, _MASKED)
        timers = self._timers
        if timers and timers[0][0] <= time.monotonic():
            now = time.monotonic()
            while timers and timers[0][0] <= now:
                when, _, watch = heapq.heappop(timers)
                if watch.timer != when:
                    continue  # an earlier entry of this watch took its place
                watch.timer = math.inf
                if not watch.armed or watch.due == math.inf:
                    continue
                if watch.due <= now:
                    watch.armed = False
                    ready.append(watch)
                else:
                    # Armed again since with a later due time: wait for that.
                    watch.timer = watch.due
                    heapq.heappush(timers, (watch.due, next(self._serial), watch))

    # -- the loop, and handing it over -------------------------------------------------

    def _take_loop(self, turn: _Turn) -> Job:
        return functools.partial(self._loop, turn)

    def _loop(self, turn: _Turn) -> None:
        """Run ready callbacks and wait in epoll, for as long as ``turn`` is the loop's."""
        ready = self._ready
        epoll = self._epoll
        lock = self._lock
        # Callbacks that returned a due time: watched again all at once, under
        # one lock, when the ready ones are done (no watch() call, and no lock,
        # per message). Also when this thread lost the loop meanwhile (a
        # callback blocked): their sockets wait again either way.
        finished: list[tuple[_Watch, float]] = []
        run_ready = _run_ready
        while True:
            try:
                run_ready(self, turn, ready, finished)
            except Exception:
                logger.exception("error in a reactor callback")
                continue  # the rest of the ready ones (that watch is not watched again)
            with lock:
                if finished:
                    self._arm_all(finished)
                    finished.clear()
                if self._soon:
                    ready.extend(self._soon)
                    self._soon.clear()
                if self._turn is not turn:
                    return
                if ready:
                    continue  # queued by a callback (watch again, wake)
                if self._closing and not self._watches:
                    break
                self._next_wake = self._timers[0][0] if self._timers else math.inf
                timeout = -1.0 if self._next_wake == math.inf \
                    else min(max(self._next_wake - time.monotonic(), 0.0), LONGEST_WAIT)
                self._polling = True
            events = epoll.poll(timeout)
            with lock:
                self._polling = False
                self._collect(events)
                start_monitor = bool(ready) and not self._monitoring
                self._monitoring = self._monitoring or start_monitor
            if start_monitor:
                self._start_monitor()
        self._end()

    def _start_monitor(self) -> None:
        try:
            threading.Thread(target=self._monitor, name="wsocket-reactor-monitor",
                             daemon=True).start()
        except RuntimeError as error:  # no thread to be had: the loop goes on without
            logger.warning("the reactor's monitor could not start (%s): a handler that "
                           "blocks holds up the other connections meanwhile", error)
            with self._lock:
                self._monitoring = False  # tried again at the next events

    def _end(self) -> None:
        self.ended.set()
        self._epoll.close()
        self._wake_up.close()

    def _monitor(self) -> None:
        """Hand the loop to another thread when its thread stays in one callback too long.

        It reads only two fields the loop writes for every callback, so the
        loop pays nothing for it; it ticks only while callbacks run, and
        ends once the loop has waited in epoll for ``MONITOR_IDLE`` seconds.
        """
        seen = -1  # the callback count seen inside a callback at the last tick
        quiet = 0.0  # seconds the loop was seen outside any callback
        while True:
            time.sleep(self.stall)
            with self._lock:
                turn = self._turn
                if self.ended.is_set():
                    self._monitoring = False
                    return
                stalled = turn.running
                if stalled is None:
                    seen = -1
                    quiet += self.stall
                    if quiet >= MONITOR_IDLE:
                        self._monitoring = False
                        return
                    continue
                quiet = 0.0
                if turn.callbacks != seen:
                    seen = turn.callbacks
                    continue
                # The same callback for a whole tick: blocked, or long at work.
                seen = -1
                self._turn = successor = _Turn()
            if stalled.on_stall is not None:
                try:
                    stalled.on_stall()
                except Exception:
                    logger.exception("error in a reactor stall hook")
            try:
                self.workers.submit(self._take_loop(successor))
            except RuntimeError as error:
                # No new thread to be had: this one takes the loop over itself
                # (a new monitor starts with the next events).
                logger.warning("no thread to take the reactor's loop over (%s): its "
                               "monitor does", error)
                with self._lock:
                    self._monitoring = False
                self._loop(successor)
                return
