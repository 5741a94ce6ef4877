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


_VALUE = json.JSONEncoder(ensure_ascii=False)
"""``json.dumps(value, ensure_ascii=False)`` without a new encoder per call."""


def render(result: RunResult) -> str:
    """The text a model sees for a run: stdout, stderr, the final value (JSON when it is data), the error,
    and for a failed run with tool calls, one line saying what they did."""
    parts: list[str] = []
    if result.stdout:
        parts.append(result.stdout.rstrip("\n"))
    if result.stderr:
        parts.append("[stderr]\n" + result.stderr.rstrip("\n"))
    if result.ok and result.has_value:
        parts.append(_VALUE.encode(result.value) if result.value_is_json else str(result.value_repr))
    if result.error is not None:
        parts.append(result.error.traceback.rstrip("\n") or f"{result.error.type}: {result.error.message}")
    journal = result.journal_line()
    if journal:
        parts.append(journal)
    # Lone surrogates (a program may print any str) cannot travel as UTF-8: show them as \udcff escapes.
    return "\n".join(parts).encode("utf-8", "backslashreplace").decode("utf-8")


def cut(text: str, limit: int, full_path: str | None, full_len: int) -> str:
    """``text`` cut to about ``limit`` characters: its head and its tail at line boundaries, and a note
    between them naming the full copy if there is one.

    The tail is kept because that is where a failure is: the traceback and the journal line come last, and
    a model must never lose the error to the output cap.
    """
    head_budget = limit * 2 // 3
    head = text[:head_budget]
    newline = head.rfind("\n")
    if newline >= head_budget // 2:
        head = head[:newline]
    tail_budget = limit - len(head)
    tail = text[-tail_budget:] if tail_budget > 0 else ""
    newline = tail.find("\n")
    if 0 <= newline < len(tail) // 2:
        tail = tail[newline + 1 :]
    hidden = len(text) - len(head) - len(tail)
    shown = f"{hidden:,} of {full_len:,} characters left out between the first {len(head):,} and the last {len(tail):,}"
    if full_path is None:
        note = f"[output cut: {shown}. Print less, or print a part at a time.]"
    else:
        note = (
            f"[output cut: {shown}. The full output is in {full_path}; read it in the next execution, "
            f"e.g. open({full_path!r}).read()[{len(head)}:{len(head) + limit}]]"
        )
    return f"{head}\n{note}\n{tail}"
