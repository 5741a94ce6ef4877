"""The alarm thread: runs callbacks at deadlines (epoch interrupts, the scratch quota watch, boot timeouts)."""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Alarm:
    """One thread for every deadline (a timer thread per execution would cost more than a snippet)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def at(self, when: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the alarm thread at ``when`` (``time.monotonic()``); never if it is not finite."""
        if not math.isfinite(when):
            # Never due (a paused clock's deadline is infinite). Kept in the heap, it would reach the top one day
            # and the wait for it overflows, which would end the one thread every deadline depends on.
            return
        with self._cond:
            entry = (when, next(self._seq), callback)
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="codemode-wasm-alarm", daemon=True)
                self._thread.start()
            if self._heap[0] is entry:  # the thread sleeps until an earlier deadline otherwise: let it sleep
                self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                _, _, callback = heapq.heappop(self._heap)
            try:
                callback()
            except Exception:  # an alarm must never kill the alarm thread
                log.exception("alarm callback failed")


alarm = Alarm()
"""The process's one alarm thread (started on first use)."""
