"""What a model reads back from one execution: the rendered text, cut to size, with the journal line."""

from __future__ import annotations

import json
from dataclasses import dataclass

from codemode.calls.types import CallRecord
from codemode.executors.base import RunResult


@dataclass(frozen=True)
class Outcome:
    """One execution, rendered for a model: ``text`` is what goes back; ``result`` is the raw run."""

    id: str
    session: str
    text: str
    is_error: bool
    result: RunResult | None
    full_output_path: str | None = None
    """Guest path of the full output when ``text`` was cut at the output cap (None if not kept)."""
    denied: str | None = None
    """Why the execution was refused before it ran (a quota, bad input), if it was."""

    @property
    def calls(self) -> list[CallRecord]:
        """The side-effect journal of the execution (empty when it never ran)."""
        return self.result.calls if self.result is not None else []


def render(result: RunResult) -> str:
    """The text a model sees for a run: stdout, stderr, the final value (JSON when it is data), the error,
    and for a failed run with tool calls, one line saying what they did."""
    parts: list[str] = []
    if result.stdout:
        parts.append(result.stdout.rstrip("\n"))
    if result.stderr:
        parts.append("[stderr]\n" + result.stderr.rstrip("\n"))
    if result.ok and result.has_value:
        parts.append(json.dumps(result.value, ensure_ascii=False) if result.value_is_json else str(result.value_repr))
    if result.error is not None:
        parts.append(result.error.traceback.rstrip("\n") or f"{result.error.type}: {result.error.message}")
    journal = result.journal_line()
    if journal:
        parts.append(journal)
    # Lone surrogates (a program may print any str) cannot travel as UTF-8: show them as \udcff escapes.
    return "\n".join(parts).encode("utf-8", "backslashreplace").decode("utf-8")


def cut(text: str, limit: int, full_path: str | None, full_len: int) -> str:
    """Cut ``text`` at a line boundary at most ``limit`` chars long and say so, naming the full copy if any."""
    head = text[:limit]
    newline = head.rfind("\n")
    if newline >= limit * 0.5:
        head = head[:newline]
    shown = f"showing {len(head):,} of {full_len:,} characters"
    if full_path is None:
        return head + f"\n[output cut: {shown}. Print less, or print a part at a time.]"
    note = (
        f"\n[output cut: {shown}. The full output is in {full_path}; "
        f"read it in the next execution, e.g. open({full_path!r}).read()[{len(head)}:{len(head) + limit}]]"
    )
    return head + note
