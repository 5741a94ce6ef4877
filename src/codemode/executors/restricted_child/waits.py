"""What happens in the child when the host signals the wall-time limit (SIGUSR1).

A program that is *waiting* (in ``time.sleep``) gets ``TimeoutError`` at the wait, and later sleeps of the
same execution fail at once: it can end cleanly and the host keeps its session. A program that is
computing gets :class:`ExecutionStopped`, its session loop reports the output so far, and the host kills
the child (its state is unknowable mid-computation). A tool call is not interrupted here: the host
answers it with ``ToolTimeout`` at the deadline.
"""

from __future__ import annotations

import time
from typing import Any

_real_sleep = time.sleep
_sleeping = False
_expired = False


class ExecutionStopped(BaseException):
    """Raised in a computing program when the host stops it at its wall-time limit (SIGUSR1).

    The session loop then reports what the program printed so far, before the host kills the child.
    """


def sleep(seconds: float, /) -> None:
    """``time.sleep`` for programs: cut short with ``TimeoutError`` by the execution's wall-time limit."""
    global _sleeping
    if _expired:
        raise TimeoutError(f"time.sleep({seconds!r}): the execution's wall-time limit was already reached")
    _sleeping = True
    try:
        _real_sleep(seconds)
    finally:
        _sleeping = False


def new_execution() -> None:
    """Before each execution: its sleeps may wait again."""
    global _expired
    _expired = False


def on_deadline(signum: int, frame: Any) -> None:
    """The SIGUSR1 handler: raise in the program where it is."""
    global _expired
    _expired = True
    if _sleeping:
        raise TimeoutError("time.sleep() was cut short by the execution's wall-time limit")
    raise ExecutionStopped("the host stopped the execution at its wall-time limit")
