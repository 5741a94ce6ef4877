"""Plain data every layer shares about tool calls: per-execution limits, the deadline clock, call records.

Nothing here imports an executor, the engine or the hub's client machinery, so executors, the gate, the
audit log and the engine can all depend on it without pointing back up.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class Limits:
    """Per-execution limits. Every breach ends the execution (or the call) with a specific error."""

    wall_s: float = 30.0
    """Wall-clock time, tool calls included (time spent waiting for a person's approval is not counted)."""
    memory_bytes: int = 256 * 1024 * 1024
    """Guest memory (the WASM linear memory; address space of the RestrictedPython child). Fixed per
    interpreter: an interpreter is booted with the executor's default."""
    fuel: int | None = None
    """A WASM CPU budget in fuel units (≈ instructions; ``1 + 1`` costs ~0.5 M on a warm session), or None:
    CPU is then bounded by :attr:`wall_s` alone, which a busy program meets first anyway. Counting fuel
    slows the guest by 10-25% (benchmarks/bench_fuel.py), so it is chosen per executor: an executor whose default limits
    set a budget runs on a metered engine, and a run's own limits then change the budget. A run cannot ask
    an executor without fuel for a budget."""
    output_chars: int = 2_000_000
    """Characters of stdout and of stderr the guest captures. Past it the program is stopped; the engine
    then shows the model far less (``Settings.output_chars``)."""
    max_tool_calls: int = 200
    max_request_bytes: int = 4 * 1024 * 1024
    """Size of one tool call's arguments as JSON."""
    max_result_bytes: int = 64 * 1024 * 1024
    """The largest tool result (as JSON) a program may receive; a larger one fails the call (``too_large``).
    Results over :attr:`handle_bytes` stay on the host and reach the program as a handle."""
    handle_bytes: int = 256 * 1024
    """A result larger than this (as JSON) stays on the host: the program gets a ``ResultHandle`` that reads
    parts of it as they are used (:mod:`codemode.calls.handles`)."""
    max_read_bytes: int = 32 * 1024 * 1024
    """The most of a handle one read brings into the guest at once (``.to_json()``, ``.text()``, one slice):
    past it the program is told to iterate or slice instead."""
    scratch_bytes: int = 1024 * 1024 * 1024
    """Total size of a session's ``/scratch`` (checked twice a second while code runs)."""
    scratch_files: int = 10_000
    """Number of files and directories in a session's ``/scratch``; a tree deeper than 128 directories
    (``codemode.executors.scratch.MAX_DEPTH``) counts as over it."""


class Clock:
    """An execution's wall-time deadline, which can be paused (while a person is asked a question).

    The executors read :attr:`deadline` when they arm their own timers and subscribe with
    :meth:`on_change` so that a pause (deadline at infinity) and a resume (deadline moved later by the
    time paused) reach them. Only the event-loop thread changes it; other threads only read floats.
    """

    def __init__(self, wall_s: float, *, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self.wall_s = wall_s
        self._deadline = now() + wall_s
        self._paused_at: float | None = None
        self._listeners: list[Callable[[], None]] = []

    @property
    def deadline(self) -> float:
        """``time.monotonic()`` value at which the execution runs out of time (``inf`` while paused)."""
        return float("inf") if self._paused_at is not None else self._deadline

    def remaining(self) -> float:
        """Seconds left (``inf`` while paused, never negative)."""
        return max(0.0, self.deadline - self._now())

    def expired(self) -> bool:
        return self._paused_at is None and self._now() >= self._deadline

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever :attr:`deadline` changes (pause and resume)."""
        self._listeners.append(listener)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Stop the clock for the duration of the block (nested pauses count once)."""
        if self._paused_at is not None:
            yield
            return
        self._paused_at = self._now()
        self._notify()
        try:
            yield
        finally:
            self._deadline += self._now() - self._paused_at
            self._paused_at = None
            self._notify()

    def _notify(self) -> None:
        for listener in self._listeners:
            listener()


class CallState(StrEnum):
    """Where one tool call stands. A call is recorded as ``in_flight`` *before* it is awaited."""

    IN_FLIGHT = "in_flight"
    """Sent upstream and not answered: if the execution died here, its effect is unknown."""
    DONE = "done"
    FAILED = "failed"
    """Reached the tool (or tried to) and failed: a tool error, a timeout, the server down."""
    REFUSED = "refused"
    """Stopped by codemode before it reached the tool (unknown tool, quota, size, policy)."""


@dataclass(frozen=True)
class PolicyNote:
    """What the policy decided about one call, and, for an ``ask``, who answered and when."""

    decision: str
    """``allow``, ``deny`` or ``ask``: the rule set's verdict."""
    rule: str
    """The rule that made it (as ``codemode policy explain`` prints it)."""
    approval: str | None = None
    """For ``ask``: ``approved``, ``approved for the session``, ``declined``, ``not asked: ...``,
    ``timed out``, ``pending`` (the execution ended while the person was being asked)."""
    approved_by: str | None = None
    """Who answered (``person via MCP elicitation``, ``session grant``)."""
    decided_at: float | None = None
    """Unix time of the answer."""

    def to_json(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_json(cls, data: object) -> PolicyNote | None:
        if not isinstance(data, dict) or "decision" not in data:
            return None
        at = data.get("decided_at")
        return cls(
            decision=str(data["decision"]),
            rule=str(data.get("rule", "")),
            approval=None if data.get("approval") is None else str(data["approval"]),
            approved_by=None if data.get("approved_by") is None else str(data["approved_by"]),
            decided_at=float(at) if isinstance(at, int | float) else None,
        )


@dataclass(frozen=True)
class CallRecord:
    """One tool call made by a program, as the host saw it."""

    server: str
    tool: str
    args_bytes: int
    duration_s: float
    state: CallState
    error: str | None = None
    args_digest: str = ""
    """SHA-256 (16 hex digits) of the arguments as canonical JSON: tells repeated calls apart without
    storing what may be secret. Arguments over 256 KB are digested with long strings sampled (head, tail,
    length); such a digest starts with ``~``."""
    result_bytes: int = 0
    read_only: bool = False
    """The tool is annotated ``readOnlyHint``: running it again is harmless."""
    error_kind: str | None = None
    """The guest error kind (``tool``, ``timeout``, ``quota`` ...) when the call did not succeed."""
    policy: PolicyNote | None = None
    """The policy's decision (None: the call was stopped before the policy saw it)."""

    @property
    def ok(self) -> bool:
        return self.state is CallState.DONE

    def to_json(self) -> dict[str, object]:
        return {
            "server": self.server,
            "tool": self.tool,
            "state": self.state.value,
            "ok": self.ok,
            "args_bytes": self.args_bytes,
            "args_digest": self.args_digest,
            "result_bytes": self.result_bytes,
            "duration_s": self.duration_s,
            "read_only": self.read_only,
            "error": self.error,
            "error_kind": self.error_kind,
            **({"policy": self.policy.to_json()} if self.policy is not None else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> CallRecord:
        """Read a record back (audit lines; lines written before states existed carry only ``ok``)."""
        state = data.get("state")
        if not isinstance(state, str):
            state = CallState.DONE if data.get("ok") else CallState.FAILED
        return cls(
            server=str(data.get("server", "")),
            tool=str(data.get("tool", "")),
            args_bytes=int(data.get("args_bytes") or 0),  # type: ignore[call-overload]
            duration_s=float(data.get("duration_s") or 0.0),  # type: ignore[arg-type]
            state=CallState(state),
            error=None if data.get("error") is None else str(data.get("error")),
            args_digest=str(data.get("args_digest") or ""),
            result_bytes=int(data.get("result_bytes") or 0),  # type: ignore[call-overload]
            read_only=bool(data.get("read_only")),
            error_kind=None if data.get("error_kind") is None else str(data.get("error_kind")),
            policy=PolicyNote.from_json(data.get("policy")),
        )
