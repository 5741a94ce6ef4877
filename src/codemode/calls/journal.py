"""The side-effect journal: every tool call of one execution, recorded before it is awaited.

When a program dies halfway through a sequence of writes (a timeout, a trap, a cancel), the journal says
which calls finished, which failed and which were in flight, so neither the model nor a person has to
guess what happened upstream.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from codemode.calls.types import CallRecord, CallState, PolicyNote

RECORDED_NAME_CHARS = 256
"""Characters of a call's server and tool name recorded (a program names them, up to its request limit; a
tool name the compiler takes is at most 1,024 and MCP suggests 128). Each record goes to the audit log."""
RECORDED_ERROR_CHARS = 2_000
"""Characters of a call's error recorded."""


def bounded(text: str, limit: int) -> str:
    """``text``, or its first ``limit`` characters and how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}… [{len(text):,} characters]"


class Journal:
    """The calls of one execution, in the order they were made."""

    def __init__(self, max_records: int = 1_000_000) -> None:
        self._records: list[CallRecord] = []
        self.max_records = max_records
        self.overflow = 0
        """Calls not recorded because the journal was full (all refused: the quota is spent by then)."""

    def __len__(self) -> int:
        return len(self._records)

    @property
    def records(self) -> list[CallRecord]:
        """A snapshot: calls still in flight keep that state in it."""
        return list(self._records)

    def begin(
        self, server: str, tool: str, *, args_bytes: int, args_digest: str = "", read_only: bool = False
    ) -> int:
        """Record a call as in flight; returns its position for :meth:`finish`, or -1 (not recorded, only
        counted) once the journal is full."""
        if len(self._records) >= self.max_records:
            self.overflow += 1
            return -1
        # Names as the program wrote them: 200 calls to a megabyte-long name were a 600 MB audit line.
        server, tool = bounded(server, RECORDED_NAME_CHARS), bounded(tool, RECORDED_NAME_CHARS)
        self._records.append(
            CallRecord(server, tool, args_bytes, 0.0, CallState.IN_FLIGHT, args_digest=args_digest, read_only=read_only)
        )
        return len(self._records) - 1

    def finish(
        self,
        index: int,
        state: CallState,
        *,
        duration_s: float,
        result_bytes: int = 0,
        error: str | None = None,
        error_kind: str | None = None,
    ) -> None:
        """Settle a call recorded by :meth:`begin`."""
        if index < 0:
            return
        self._records[index] = dataclasses.replace(
            self._records[index],
            state=state,
            duration_s=duration_s,
            result_bytes=result_bytes,
            error=None if error is None else bounded(error, RECORDED_ERROR_CHARS),
            error_kind=error_kind,
        )

    def note(self, index: int, policy: PolicyNote) -> None:
        """Record the policy's decision on a call recorded by :meth:`begin` (kept when it is settled)."""
        if index >= 0:
            self._records[index] = dataclasses.replace(self._records[index], policy=policy)

    def summary(self) -> str:
        """One line for a model reading a failure, e.g. ``3 done (notes.create_note ×3), 1 in flight (...)``."""
        return summarize(self._records, self.overflow)


def summarize(records: list[CallRecord], overflow: int = 0) -> str:
    """``records`` grouped by state, naming each tool with a count; empty when there were no calls.
    ``overflow`` counts refused calls past the journal's size that were not recorded one by one."""
    parts: list[str] = []
    for state, label in (
        (CallState.DONE, "done"),
        (CallState.FAILED, "failed"),
        (CallState.REFUSED, "refused"),
        (CallState.IN_FLIGHT, "in flight"),
    ):
        names = Counter(f"{r.server}.{r.tool}" for r in records if r.state is state)
        if not names:
            continue
        listed = ", ".join(name if n == 1 else f"{name} ×{n}" for name, n in names.items())
        if state is CallState.IN_FLIGHT:
            unknown = "its effect is unknown" if sum(names.values()) == 1 else "their effects are unknown"
            listed += f" — {unknown}"
        parts.append(f"{sum(names.values())} {label} ({listed})")
    if overflow:
        parts.append(f"{overflow:,} more refused over the quota (not listed one by one)")
    return ", ".join(parts)
