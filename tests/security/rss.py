"""Peak resident memory of the host process over an attack, recorded with every bounds test.

Linux keeps the process's high-water mark (``VmHWM``); writing ``5`` to ``/proc/self/clear_refs`` resets it
to the current size, so each attack's own peak is measured, whatever ran before it in the same process.
``ru_maxrss`` (the lifetime peak, which never goes down) is recorded beside it. Without ``clear_refs``, a
thread samples ``VmRSS`` every 2 ms instead.

Each measurement is printed (``pytest -s``), attached to the test report (``record_property``) and, when
``CODEMODE_RSS_LOG`` names a file, appended to it as a JSON line.
"""

from __future__ import annotations

import json
import os
import resource
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kb(field: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


class PeakRss:
    """``with PeakRss("attack", record) as rss: ...`` then ``rss.growth_mb``: the peak over the block minus
    the resident size at its start."""

    def __init__(self, name: str, record: Callable[[str, object], None] | None = None) -> None:
        self.name = name
        self.record = record
        self.start_kb = 0
        self.peak_kb = 0
        self.maxrss_before_kb = 0
        self.maxrss_after_kb = 0
        self._sampler: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def growth_mb(self) -> float:
        return (self.peak_kb - self.start_kb) / 1024

    def __enter__(self) -> PeakRss:
        self.maxrss_before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.start_kb = _status_kb("VmRSS")
        try:
            _CLEAR_REFS.write_text("5")
        except OSError:
            self.peak_kb = self.start_kb
            self._sampler = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
            self._sampler.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak_kb = max(self.peak_kb, _status_kb("VmRSS"))

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._sampler is not None:
            self._stop.set()
            self._sampler.join()
        else:
            self.peak_kb = _status_kb("VmHWM")
        self.maxrss_after_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        entry = {
            "attack": self.name,
            "rss_start_mb": round(self.start_kb / 1024, 1),
            "rss_peak_mb": round(self.peak_kb / 1024, 1),
            "growth_mb": round(self.growth_mb, 1),
            "ru_maxrss_before_mb": round(self.maxrss_before_kb / 1024, 1),
            "ru_maxrss_after_mb": round(self.maxrss_after_kb / 1024, 1),
        }
        print(f"\n[peak rss] {json.dumps(entry)}")
        if self.record is not None:
            self.record("peak_rss", entry)
        log = os.environ.get("CODEMODE_RSS_LOG")
        if log:
            with open(log, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry) + "\n")
