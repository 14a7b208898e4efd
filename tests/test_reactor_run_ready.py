"""The reactor loop's steps per event: the C ones and the Python ones agree.

``Reactor._loop`` hands its ready watches to ``run_ready``, ``_collect`` the
events of epoll to ``take_armed``, and ``_arm_all`` the watches whose callbacks
returned to ``rearm_settled`` (``_speedups``' where the accelerator was built,
``reactor``'s ``_..._in_python`` otherwise). Both are checked here step by step
on the same cases, then through a real reactor.
"""

import collections
import logging
import socket
import threading

import pytest

from tests.netutil import wait_for
from wsocket import reactor as reactor_module
from wsocket.protocol.frames import load_accelerator
from wsocket.reactor import Reactor, Workers, _Turn, _Watch

TIMEOUT = 10

_speedups = load_accelerator()


def implementations(name):
    """The Python step ``_<name>_in_python`` and, where built, the C one ``<name>``."""
    found = [pytest.param(getattr(reactor_module, "_%s_in_python" % name), id="python")]
    if _speedups is not None:
        found.append(pytest.param(getattr(_speedups, name), id="c"))
    return found


IMPLEMENTATIONS = implementations("run_ready")


class FakeLoop:
    """What run_ready reads of the reactor: whose turn the loop is."""

    def __init__(self):
        self._turn = _Turn()


def watches(*callbacks):
    return [_Watch(None, index, callback, None) for index, callback in enumerate(callbacks)]


@pytest.mark.parametrize("name", ["run_ready", "take_armed", "rearm_settled"])
def test_the_reactor_uses_the_c_steps_when_they_were_built(name):
    expected = getattr(_speedups, name) if _speedups is not None \
        else getattr(reactor_module, "_%s_in_python" % name)
    assert getattr(reactor_module, "_" + name) is expected


@pytest.mark.parametrize("run_ready", IMPLEMENTATIONS)
def test_callbacks_run_in_order_and_float_dues_are_kept(run_ready):
    loop = FakeLoop()
    turn = loop._turn
    seen = []

    def callback(name, result):
        def run():
            # while it runs, the monitor sees it running and counted
            seen.append((name, turn.running.fd, turn.callbacks))
            return result
        return run

    first, second, third, fourth = watches(callback("a", 1.5), callback("b", None),
                                           callback("c", 7), callback("d", float("inf")))
    ready = collections.deque([first, second, third, fourth])
    finished = []
    assert run_ready(loop, turn, ready, finished) is None
    assert seen == [("a", 0, 1), ("b", 1, 2), ("c", 2, 3), ("d", 3, 4)]
    # only a float watches again: None and an int (not a due time) do not
    assert finished == [(first, 1.5), (fourth, float("inf"))]
    assert not ready and turn.running is None and turn.callbacks == 4


@pytest.mark.parametrize("run_ready", IMPLEMENTATIONS)
def test_a_hand_over_stops_the_run_and_leaves_the_rest_ready(run_ready):
    loop = FakeLoop()
    turn = loop._turn

    def blocks_and_loses_the_loop():
        loop._turn = _Turn()  # what the monitor does while this callback blocks
        return 2.0

    first, second = watches(blocks_and_loses_the_loop, lambda: 3.0)
    ready = collections.deque([first, second])
    finished = []
    run_ready(loop, turn, ready, finished)
    assert list(ready) == [second]  # for the thread that has the loop now
    assert finished == [(first, 2.0)]  # its socket waits again either way
    assert turn.running is None


@pytest.mark.parametrize("run_ready", IMPLEMENTATIONS)
def test_a_callbacks_exception_is_raised_and_the_rest_stays_ready(run_ready):
    loop = FakeLoop()
    turn = loop._turn

    def fails():
        raise ValueError("the handler's bug")

    first, second, third = watches(lambda: 1.0, fails, lambda: 3.0)
    ready = collections.deque([first, second, third])
    finished = []
    with pytest.raises(ValueError, match="the handler's bug"):
        run_ready(loop, turn, ready, finished)
    assert turn.running is None and turn.callbacks == 2
    assert finished == [(first, 1.0)]  # the failed one is not watched again
    assert list(ready) == [third]
    run_ready(loop, turn, ready, finished)  # what the loop does next
    assert finished == [(first, 1.0), (third, 3.0)]


@pytest.mark.parametrize("run_ready", IMPLEMENTATIONS)
def test_an_empty_ready_queue_runs_nothing(run_ready):
    loop = FakeLoop()
    finished = []
    run_ready(loop, loop._turn, collections.deque(), finished)
    assert finished == [] and loop._turn.callbacks == 0


class RecordingTurn(_Turn):
    """A subclass whose ``running`` is a property: the C run must go through it."""

    __slots__ = ("marks",)

    def __init__(self):
        self.marks = []
        super().__init__()  # (marks None: not running)

    @property
    def running(self):
        return self.marks[-1] if self.marks else None

    @running.setter
    def running(self, watch):
        self.marks.append(watch)


class PlainTurn:
    """A stand-in with no __slots__ at all."""

    def __init__(self):
        self.callbacks = 0
        self.running = None


@pytest.mark.parametrize("turn_type", [RecordingTurn, PlainTurn])
@pytest.mark.parametrize("run_ready", IMPLEMENTATIONS)
def test_other_turn_types_are_read_through_their_attributes(run_ready, turn_type):
    # The C run reads wsocket's own _Turn and _Watch at their slots' offsets
    # (see SlotField in _speedups.c); these are met after them, and must be
    # read and written as Python would.
    loop = FakeLoop()
    run_ready(loop, loop._turn, collections.deque(watches(lambda: 1.0)), [])
    loop._turn = turn = turn_type()
    seen = []
    (watch,) = watches(lambda: seen.append((turn.running, turn.callbacks)) or 2.0)
    finished = []
    run_ready(loop, turn, collections.deque([watch]), finished)
    assert seen == [(watch, 1)] and finished == [(watch, 2.0)]
    assert turn.running is None and turn.callbacks == 1
    if turn_type is RecordingTurn:
        assert turn.marks == [None, watch, None]


@pytest.mark.parametrize("run_ready", IMPLEMENTATIONS)
def test_a_watch_without_its_callback_raises_attribute_error(run_ready):
    loop = FakeLoop()
    (watch,) = watches(lambda: 1.0)
    del watch.callback  # an empty slot: what the attribute protocol says of it
    with pytest.raises(AttributeError, match="callback"):
        run_ready(loop, loop._turn, collections.deque([watch]), [])


@pytest.mark.skipif(_speedups is None, reason="the C accelerator was not built")
def test_the_c_run_refuses_wrong_arguments():
    loop = FakeLoop()
    with pytest.raises(TypeError, match="run_ready"):
        _speedups.run_ready(loop, loop._turn, collections.deque())
    with pytest.raises(TypeError, match="list"):
        _speedups.run_ready(loop, loop._turn, collections.deque(), ())
    with pytest.raises(TypeError):
        _speedups.run_ready(loop, loop._turn, collections.deque(), finished=[])


# -- take_armed and rearm_settled ---------------------------------------------------

@pytest.mark.parametrize("take_armed", implementations("take_armed"))
def test_armed_watches_are_taken_in_order_and_the_others_given_back(take_armed):
    armed_a, unarmed, armed_b = watches(None, None, None)
    armed_a.armed = armed_b.armed = True
    known = {watch.fd: watch for watch in (armed_a, unarmed, armed_b)}
    ready = collections.deque()
    events = [(armed_b.fd, 1), (99, 1), (unarmed.fd, 1), (armed_a.fd, 1)]
    assert take_armed(events, known, ready) == [99, unarmed.fd]
    assert list(ready) == [armed_b, armed_a]
    assert not armed_a.armed and not armed_b.armed and not unarmed.armed
    # reported again before they are armed: nothing is queued twice
    assert take_armed(events, known, ready) == [armed_b.fd, 99, unarmed.fd, armed_a.fd]
    assert len(ready) == 2


@pytest.mark.parametrize("rearm_settled", implementations("rearm_settled"))
def test_the_usual_finished_watches_are_armed_and_the_others_given_back(rearm_settled):
    usual, masked, again, unwatched, earlier = watches(*[None] * 5)
    for watch in (usual, masked, again, unwatched, earlier):
        watch.timer = 10.0  # their entry in the timer heap
    masked.masked = True
    again.again = True
    unwatched.watched = False
    finished = [(usual, 12.0), (masked, 12.0), (again, 12.0), (unwatched, 12.0), (earlier, 9.0)]
    assert rearm_settled(finished) == finished[1:]
    assert usual.armed and usual.due == 12.0
    for watch in (masked, again, unwatched, earlier):
        assert not watch.armed and watch.due == float("inf")  # left to Reactor._arm
    assert rearm_settled([]) == []


@pytest.mark.skipif(_speedups is None, reason="the C accelerator was not built")
def test_the_c_bookkeeping_refuses_wrong_arguments():
    ready = collections.deque()
    with pytest.raises(TypeError, match="pair"):
        _speedups.take_armed([3], {}, ready)
    with pytest.raises(TypeError, match="pair"):
        _speedups.rearm_settled([(1, 2, 3)])
    with pytest.raises(TypeError):
        _speedups.take_armed([], [], ready)  # watches: a dict
    with pytest.raises(TypeError, match="sequence"):
        _speedups.rearm_settled(None)


def test_a_callbacks_exception_is_logged_and_the_loop_serves_the_others(caplog):
    reactor = Reactor(Workers(idle_timeout=0.5))
    broken_ours, broken_theirs = socket.socketpair()
    good_ours, good_theirs = socket.socketpair()
    served = threading.Event()

    def broken():
        broken_ours.recv(1)
        raise RuntimeError("callback failed")

    def good():
        good_ours.recv(1)
        served.set()
        return float("inf")

    try:
        with caplog.at_level(logging.ERROR, logger="wsocket"):
            reactor.watch(broken_ours, broken)
            reactor.watch(good_ours, good)
            broken_theirs.send(b"x")
            wait_for(lambda: any(record.exc_info and "callback failed" in str(record.exc_info[1])
                                 for record in caplog.records), what="the logged error")
            good_theirs.send(b"x")
            assert served.wait(TIMEOUT)
        record = next(record for record in caplog.records if record.exc_info)
        assert record.getMessage() == "error in a reactor callback"
        assert record.exc_info[0] is RuntimeError
    finally:
        reactor.unwatch(broken_ours)
        reactor.unwatch(good_ours)
        reactor.close()
        for sock in (broken_ours, broken_theirs, good_ours, good_theirs):
            sock.close()
