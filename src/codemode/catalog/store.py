"""Generations: whole trees (the stubs, later the skills) published atomically, never changed in place.

::

    store = GenerationStore(root)
    generation = store.publish(lambda tree: compile_to_dir(tools, tree))   # build a copy, then switch
    store.current()                                                        # the newest generation

Layout: ``root/g000001/``, ``root/g000002/`` ... and ``root/CURRENT`` naming the newest. A new generation
starts as a copy of the current one in a temporary directory, so an incremental builder rewrites only what
changed; it becomes visible with one ``rename`` and one atomic write of ``CURRENT``. A session reads one
generation for a whole execution (the executors mount ``root`` and pin a generation's name), and old
generations are removed only when no running execution pins them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

_NAME = re.compile(r"g(\d{6,})")
CURRENT = "CURRENT"
KEEP = 3
"""Generations kept besides pinned ones: a session idle on an older one can still lazily import from it."""

_STALE_BUILD_S = 3600.0
T = TypeVar("T")


@dataclass(frozen=True)
class Generation:
    """One published tree: its name (``g000002``) and host path."""

    name: str
    path: Path

    @property
    def number(self) -> int:
        return int(self.name[1:])


class GenerationStore:
    """Publishes trees under ``root`` as numbered generations. Thread-safe; one publisher at a time."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._pins: Counter[str] = Counter()

    def current(self) -> Generation | None:
        """The newest published generation, or None before the first publish."""
        try:
            name = (self.root / CURRENT).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        if not _NAME.fullmatch(name) or not (self.root / name).is_dir():
            return None
        return Generation(name, self.root / name)

    def publish(
        self, build: Callable[[Path], T], *, unchanged: Callable[[T], bool] | None = None
    ) -> tuple[Generation, T]:
        """Build the next generation from a copy of the current one and make it current.

        ``build(tree)`` fills the directory it is given; if it raises, nothing is published and the
        temporary tree is removed. When ``unchanged(outcome)`` says the build changed nothing, the copy is
        dropped and the current generation is returned (a restart with the same tools publishes nothing).
        """
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)
            previous = self.current()
            tmp = self.root / f".build-{uuid.uuid4().hex[:12]}"
            if previous is not None:
                # Bytecode caches stay behind: the restricted child writes them into the generation it imports
                # from, and a removed server's leftover __pycache__ would still import as a namespace package.
                shutil.copytree(previous.path, tmp, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                tmp.mkdir()
            try:
                outcome = build(tmp)
                if previous is not None and unchanged is not None and unchanged(outcome):
                    shutil.rmtree(tmp, ignore_errors=True)
                    return previous, outcome
                generation = self._claim(tmp)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            pointer = self.root / f".{CURRENT}.{uuid.uuid4().hex[:8]}"
            pointer.write_text(generation.name + "\n", encoding="utf-8")
            os.replace(pointer, self.root / CURRENT)
            self._collect()
            return generation, outcome

    def _claim(self, tmp: Path) -> Generation:
        # Another process publishing into the same root may take a number first: rename fails, try the next.
        for _ in range(100):
            number = max((g.number for g in self._all()), default=0) + 1
            generation = Generation(f"g{number:06d}", self.root / f"g{number:06d}")
            try:
                tmp.rename(generation.path)
            except OSError:
                if not generation.path.exists():
                    raise
                continue
            return generation
        raise OSError(f"{self.root}: could not claim a generation number")

    def pin(self, name: str) -> None:
        """A running execution reads ``name``: keep it until :meth:`unpin`."""
        with self._lock:
            self._pins[name] += 1

    def unpin(self, name: str) -> None:
        with self._lock:
            self._pins[name] -= 1
            if self._pins[name] <= 0:
                del self._pins[name]

    def _all(self) -> list[Generation]:
        if not self.root.is_dir():
            return []
        found = [Generation(p.name, p) for p in self.root.iterdir() if _NAME.fullmatch(p.name) and p.is_dir()]
        return sorted(found, key=lambda g: g.number)

    def _collect(self) -> None:
        # Called with the lock held, right after a publish.
        generations = self._all()
        for generation in generations[:-KEEP]:
            if self._pins[generation.name] == 0:
                shutil.rmtree(generation.path, ignore_errors=True)
        now = time.time()
        for stale in self.root.glob(".build-*"):  # left by a process that died mid-build
            with contextlib.suppress(OSError):
                if now - stale.stat().st_mtime > _STALE_BUILD_S:
                    shutil.rmtree(stale, ignore_errors=True)
