"""Observed result shapes per tool, persisted beside the stubs, and the inferred types the compiler gets.

::

    book = ShapeBook(stubs_root / OBSERVED_FILE, threshold=3)
    change = book.observe(ToolRef("fs", "list_directory"), shape_of_result(result, value))
    if change.dirty: book.save()
    if change.publish: ...recompile: book.inferred() is the compiler's ``observed=`` input

A tool's shapes are merged (:func:`codemode.calls.shapes.merge`: conflicts widen). Once ``threshold`` results
were seen, the merged shape is *published*: the next stubs generation types the tool's result with it. After
that only a shape that widens the published one publishes again, so a tool called a thousand times with the
same shape makes one generation, not a thousand. The file holds shapes, counts and digests — never values — and
is written atomically; one that is unreadable or malformed is ignored entry by entry.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codemode.calls.shapes import Shape, check, digest, merge
from codemode.compiler.inferred import Inferred
from codemode.files import write_atomic
from codemode.hub.models import ToolRef

logger = logging.getLogger(__name__)

OBSERVED_FILE = ".observed-shapes.json"
"""The book's file in the stubs root (beside the generations, so every generation is built from it)."""
VERSION = 1
MAX_TOOLS = 10_000
"""Tools the book tracks at most; later tools are not observed (their stubs keep the untyped result)."""
MAX_DIGESTS = 16
"""Distinct shape digests remembered per tool (for the stub's note); more only raise a counter."""
MAX_FILE_BYTES = 64 * 1024 * 1024


@dataclass
class Entry:
    """One tool's observations."""

    shape: Shape
    count: int = 1
    digests: list[str] = field(default_factory=list)
    published: Inferred | None = None

    def to_json(self, ref: ToolRef) -> dict[str, Any]:
        out: dict[str, Any] = {
            "server": ref.server, "tool": ref.tool, "shape": self.shape, "count": self.count, "digests": self.digests,
        }  # fmt: skip
        if self.published is not None:
            out["published"] = {
                "shape": self.published.shape, "count": self.published.count, "digests": list(self.published.digests),
            }  # fmt: skip
        return out


@dataclass(frozen=True)
class Change:
    """What one observation changed: ``dirty`` (the file is out of date), ``publish`` (the inferred type
    changed: a new stubs generation is due)."""

    dirty: bool = False
    publish: bool = False


class ShapeBook:
    """Observed shapes by tool; thread-safe."""

    def __init__(self, path: Path, *, threshold: int) -> None:
        self.path = path
        self.threshold = threshold
        """Results seen before a type is inferred (0: inference is off)."""
        self._lock = threading.Lock()
        self._entries: dict[ToolRef, Entry] = {}

    def load(self) -> None:
        """Read the file (a missing, unreadable or malformed one, or entry, is skipped with a log line)."""
        try:
            if self.path.stat().st_size > MAX_FILE_BYTES:
                logger.warning("%s: larger than %d bytes, ignored", self.path, MAX_FILE_BYTES)
                return
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError, RecursionError) as exc:
            logger.warning("%s: unreadable, ignored: %s", self.path, exc)
            return
        tools = data.get("tools") if isinstance(data, dict) and data.get("version") == VERSION else None
        entries: dict[ToolRef, Entry] = {}
        for raw in tools if isinstance(tools, list) else []:
            try:
                ref, entry = _entry(raw)
            except (ValueError, TypeError, KeyError, RecursionError) as exc:
                logger.warning("%s: an entry was ignored: %s", self.path, exc)
                continue
            if len(entries) < MAX_TOOLS:
                entries[ref] = entry
        with self._lock:
            self._entries = entries

    def observe(self, ref: ToolRef, shape: Shape) -> Change:
        """Count one result of ``ref`` with ``shape``."""
        if self.threshold <= 0:
            return Change()
        with self._lock:
            entry = self._entries.get(ref)
            if entry is not None and entry.count >= self.threshold and shape == entry.shape:
                entry.count += 1  # the steady state: a published tool answering as before costs a comparison
                return Change()
            if entry is None:
                if len(self._entries) >= MAX_TOOLS:
                    return Change()
                entry = self._entries[ref] = Entry(shape=shape, count=0)
            merged = merge(entry.shape, shape)
            widened = merged != entry.shape
            entry.shape = merged
            entry.count += 1
            seen = digest(shape)
            if seen not in entry.digests and len(entry.digests) < MAX_DIGESTS:
                entry.digests.append(seen)
                widened = True
            publish = entry.count >= self.threshold and (entry.published is None or entry.published.shape != merged)
            if publish:
                entry.published = Inferred(merged, entry.count, tuple(sorted(entry.digests)))
            # Counts past the threshold are not worth a write each; a new shape or a publication is.
            return Change(dirty=publish or widened or entry.count <= self.threshold, publish=publish)

    def inferred(self) -> dict[ToolRef, Inferred]:
        """The published types: the compiler's ``observed=`` input."""
        with self._lock:
            return {ref: e.published for ref, e in self._entries.items() if e.published is not None}

    def save(self) -> None:
        """Write the book atomically (the newest state: concurrent saves never write an older one last)."""
        with self._lock:
            tools = [self._entries[ref].to_json(ref) for ref in sorted(self._entries)]
            text = json.dumps({"version": VERSION, "tools": tools}, sort_keys=True, separators=(",", ":"))
            write_atomic(self.path, text + "\n")


def _entry(raw: Any) -> tuple[ToolRef, Entry]:
    if not isinstance(raw, dict) or not isinstance(raw.get("server"), str) or not isinstance(raw.get("tool"), str):
        raise ValueError("an entry without a server and tool name")
    count = raw.get("count")
    if not isinstance(count, int) or count < 0:
        raise ValueError("an entry without a count")
    entry = Entry(shape=check(raw["shape"]), count=count, digests=_digests(raw.get("digests")))
    published = raw.get("published")
    if isinstance(published, dict) and isinstance(published.get("count"), int):
        digests = tuple(_digests(published.get("digests")))
        entry.published = Inferred(check(published["shape"]), published["count"], digests)
    return ToolRef(raw["server"], raw["tool"]), entry


def _digests(value: Any) -> list[str]:
    items = value if isinstance(value, list) else []
    return sorted({d for d in items if isinstance(d, str) and len(d) == 12 and d.isalnum()})[:MAX_DIGESTS]


__all__ = ["OBSERVED_FILE", "Change", "Entry", "ShapeBook"]
