"""The accelerator's Lock does what threading.Lock does: each test runs on both.

The connections' send and read locks are the accelerator's (``_sockets.new_lock``)
where it is built, so that its C paths take them without a Python call; the
rest of the library uses them as threading.Lock objects.
"""

import signal
import threading
import time

import pytest

from wsocket._sockets import new_lock
from wsocket.protocol.frames import SPEEDUPS

KINDS = [pytest.param(threading.Lock, id="threading.Lock")]
speedups = None
if SPEEDUPS:  # (built and in use: tests/test_speedups.py fails CI otherwise)
    from wsocket import _speedups as speedups

    KINDS.append(pytest.param(speedups.Lock, id="_speedups.Lock"))


@pytest.fixture(params=KINDS)
def make_lock(request):
    return request.param


def test_the_connections_locks_are_the_accelerators_where_it_is_built():
    expected = speedups.Lock if speedups is not None else threading.Lock
    assert type(new_lock()) is type(expected())


def test_acquire_release_and_locked(make_lock):
    lock = make_lock()
    assert lock.locked() is False
    assert lock.acquire() is True
    assert lock.locked() is True
    assert lock.acquire(False) is False
    assert lock.acquire(blocking=False) is False
    assert lock.acquire(timeout=0) is False
    assert lock.acquire(True, 0.01) is False
    lock.release()
    assert lock.locked() is False
    assert lock.acquire(timeout=0) is True
    lock.release()


def test_with_statement_holds_it_and_lets_go_on_error(make_lock):
    lock = make_lock()
    with lock as taken:
        assert taken is True
        assert lock.locked()
    assert not lock.locked()
    with pytest.raises(ZeroDivisionError), lock:
        1 / 0
    assert not lock.locked()


def test_release_of_a_free_lock_is_a_runtime_error(make_lock):
    with pytest.raises(RuntimeError):
        make_lock().release()


@pytest.mark.parametrize("arguments, error", [
    ({"blocking": False, "timeout": 1}, ValueError),
    ({"timeout": -2}, ValueError),
    ({"timeout": -0.5}, ValueError),
    ({"timeout": 1e300}, OverflowError),
    ({"timeout": "1"}, TypeError),
    ({"unknown": 1}, TypeError),
])
def test_bad_arguments_raise_as_threading_lock_does(make_lock, arguments, error):
    lock = make_lock()
    with pytest.raises(error):
        lock.acquire(**arguments)
    assert not lock.locked()


def held_and_waited_for(make_lock, timeout):
    """A lock this thread holds, and another thread's acquire(timeout=...) on it."""
    lock = make_lock()
    lock.acquire()
    results = []
    waiter = threading.Thread(target=lambda: results.append(lock.acquire(timeout=timeout)))
    waiter.start()
    return lock, waiter, results


def test_a_waiting_acquire_lets_other_threads_run_and_gets_the_lock_when_released(make_lock):
    lock, waiter, results = held_and_waited_for(make_lock, 30)
    # The waiter holds no GIL while it waits: this thread keeps running Python.
    spins = 0
    until = time.monotonic() + 0.2
    while time.monotonic() < until:
        spins += 1
    assert spins > 0 and results == []  # still waiting
    lock.release()
    waiter.join(30)
    assert results == [True]
    assert lock.locked()  # now the waiter's
    lock.release()


def test_a_timed_acquire_gives_up_with_false(make_lock):
    lock, waiter, results = held_and_waited_for(make_lock, 0.05)
    waiter.join(30)
    assert results == [False]
    lock.release()


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer")
def test_a_signal_handler_runs_during_a_wait_and_its_exception_ends_it(make_lock):
    lock = make_lock()
    lock.acquire()
    calls = []

    def interrupt(signum, frame):
        calls.append(signum)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the second one ends the wait, as Ctrl-C would

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)
        with pytest.raises(KeyboardInterrupt):
            lock.acquire(timeout=30)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert calls == [signal.SIGALRM, signal.SIGALRM]  # the first one's wait went on
    assert lock.locked()  # still the main thread's own hold, not a second one
    lock.release()
    assert not lock.locked()


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer")
def test_a_timed_wait_interrupted_by_signals_still_ends_at_its_timeout(make_lock):
    lock = make_lock()
    lock.acquire()
    calls = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: calls.append(signum))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.02, 0.02)
        assert lock.acquire(timeout=0.2) is False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert calls  # it was interrupted, and went back to waiting
    lock.release()
