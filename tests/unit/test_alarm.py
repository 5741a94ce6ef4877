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
