"""The alarm thread every WASM deadline depends on: one bad entry must not end it."""

from __future__ import annotations

import math
import threading
import time

import pytest

from codemode.executors.wasm.alarm import Alarm


@pytest.mark.parametrize("never", [math.inf, math.nan])
def test_an_alarm_that_is_never_due_leaves_the_thread_serving_the_others(never: float) -> None:
    # A paused clock's deadline is infinite: at the top of the heap, its wait would overflow the platform's
    # time_t and the thread would die, and with it every later deadline of every interpreter.
    alarm = Alarm()
    fired = threading.Event()
    alarm.at(never, lambda: None)
    alarm.at(time.monotonic() + 0.05, fired.set)
    assert fired.wait(30), "the alarm thread stopped serving"
    assert alarm._thread is not None and alarm._thread.is_alive()


def test_a_failing_callback_does_not_end_the_thread() -> None:
    alarm = Alarm()
    fired = threading.Event()

    def fail() -> None:
        raise RuntimeError("a bug in one callback")

    alarm.at(time.monotonic(), fail)
    alarm.at(time.monotonic() + 0.05, fired.set)
    assert fired.wait(30)


class _CountingCondition(threading.Condition):
    waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        return super().wait(timeout)


def _sleeping(alarm: Alarm) -> None:
    """Return once the alarm thread waits on its condition (it holds the lock until then)."""
    deadline = time.monotonic() + 30
    while not alarm._cond._waiters:  # type: ignore[attr-defined]  # CPython's Condition keeps its waiters here
        assert time.monotonic() < deadline, "the alarm thread never went to sleep"
        time.sleep(0.001)


def test_an_earlier_deadline_wakes_the_thread_sleeping_until_a_later_one() -> None:
    # The thread sleeps until the earliest deadline it knows; a new earliest one must wake it, or the run it
    # bounds goes on until the later deadline (here an hour).
    alarm = Alarm()
    alarm.at(time.monotonic() + 3600, lambda: None)
    _sleeping(alarm)
    fired = threading.Event()
    alarm.at(time.monotonic() + 0.05, fired.set)
    assert fired.wait(30), "the earlier deadline waited for the later one"


def test_the_thread_sleeps_until_its_next_deadline_instead_of_spinning() -> None:
    alarm = Alarm()
    cond = alarm._cond = _CountingCondition()
    alarm.at(time.monotonic() + 3600, lambda: None)
    _sleeping(alarm)
    time.sleep(0.2)
    assert cond.waits == 1, f"the alarm thread woke {cond.waits} times with nothing due"
