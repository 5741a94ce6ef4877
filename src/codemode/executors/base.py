"""What every executor promises: ``run(code, context)`` → :class:`RunResult`, with the same limits.

An executor is given the engine's call gate (:class:`codemode.calls.Gate`) and hands every tool call a
program makes to ``gate.call(ctx, ...)``; it knows nothing of the hub, the policy or the audit log.
"""

from __future__ import annotations

import abc
import builtins
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NotRequired, TypedDict, Unpack

from codemode.calls.gate import Gate, RunContext
from codemode.calls.journal import summarize
from codemode.calls.types import CallRecord, Limits
from codemode.errors import SANDBOX_ERRORS, BridgeError, ProgramError, SandboxError

Progress = Callable[[str], None]

LOST = "The session's interpreter was lost; its variables are gone and the next execution starts fresh."

WAIT_GRACE_S = 1.0
"""How long a program that reached its wall-time limit while *waiting* (``time.sleep``, a tool call) has to
finish once the wait raised in it (``TimeoutError``, ``ToolTimeout``): its session and variables are kept if
it ends within this time. A program that is computing at the limit, or still running after the grace, is
stopped and its interpreter is lost."""


@dataclass(frozen=True)
class RunError:
    """Why an execution failed.

    ``kind`` is closed: one of :data:`codemode.errors.SANDBOX_ERRORS` (``program`` when the program raised).
    ``type`` is the name of what was raised: the guest's exception (``ZeroDivisionError``,
    ``codemode_runtime.ToolTimeout``) for ``program``, else the codemode class (``SandboxTimeout``).
    """

    kind: str
    type: str
    message: str
    traceback: str = ""

    @classmethod
    def of(cls, error: builtins.type[SandboxError], message: str, traceback: str = "") -> RunError:
        """A host verdict: ``RunError.of(SandboxTimeout, "...")``."""
        return cls(error.kind, error.__name__, message, traceback)

    def exception(self) -> SandboxError:
        """This failure as its :mod:`codemode.errors` class."""
        return SANDBOX_ERRORS.get(self.kind, SandboxError)(f"{self.type}: {self.message}")


@dataclass
class RunResult:
    """Everything an execution produced. Output printed before a failure is kept."""

    ok: bool
    stdout: str = ""
    stderr: str = ""
    value: Any = None
    """The final expression's value as JSON data (``None`` when it had none or is not JSON)."""
    value_repr: str | None = None
    """``repr`` of a final value that is not JSON data (``None`` otherwise)."""
    value_is_json: bool = False
    has_value: bool = False
    """The program ended in an expression whose value was not ``None``."""
    error: RunError | None = None
    calls: list[CallRecord] = field(default_factory=list)
    """The side-effect journal: every tool call, including those in flight when the execution ended."""
    duration_s: float = 0.0
    instance_lost: bool = False
    """The interpreter was killed (timeout, trap, crash): the session's state is gone."""
    calls_over_quota: int = 0
    """Refused calls past the tool-call quota, counted but not journaled one by one."""

    def journal_line(self) -> str:
        """``tool calls before the failure: 3 done (...)`` for a failed run with calls, else ``""``."""
        if self.ok or not self.calls:
            return ""
        return f"tool calls before the failure: {summarize(self.calls, self.calls_over_quota)}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``codemode run --json``, the benchmarks)."""
        return {
            "ok": self.ok,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "value": self.value,
            "value_repr": self.value_repr,
            "value_is_json": self.value_is_json,
            "has_value": self.has_value,
            "error": None if self.error is None else {
                "kind": self.error.kind, "type": self.error.type,
                "message": self.error.message, "traceback": self.error.traceback,
            },
            "calls": [c.to_json() for c in self.calls],
            "calls_over_quota": self.calls_over_quota,
            "duration_s": self.duration_s,
            "instance_lost": self.instance_lost,
        }  # fmt: skip


NEAR_DEADLINE_S = 0.05
"""A wait (a tool call) that ends this close to the deadline ended because of it: the gate's timeout and the
executor's deadline are two timers on one clock, and the first may fire a moment early."""


def timed_out_waiting(result: RunResult, limits: Limits) -> RunResult:
    """``result`` of a program whose wait raised at its wall-time limit and which then ended in time.

    Its session is kept; an error it ended with says so (one it caught and got past is its own business).
    """
    if result.error is not None:
        note = (
            f" (the {limits.wall_s:g} s wall-time limit was reached while the program waited; "
            "the session and its variables are kept)"
        )
        error = result.error
        result.error = RunError(error.kind, error.type, error.message + note, error.traceback)
    return result


def failed(
    error: RunError, ctx: RunContext, *, duration_s: float = 0.0, lost: bool = True, stdout: str = "", stderr: str = ""
) -> RunResult:
    """A run that the host ended (timeout, trap, crash, cancel), with its journal and any output kept."""
    return RunResult(
        ok=False, error=error, calls=ctx.journal.records, calls_over_quota=ctx.journal.overflow,
        duration_s=duration_s, instance_lost=lost,
        stdout=stdout, stderr=stderr,
    )  # fmt: skip


ERROR_TYPE_CHARS = 200
"""Host-side cap on a program error's type name, whatever the guest sends."""
ERROR_MESSAGE_CHARS = 10_000
"""Host-side cap on a program error's message (the runtime sends at most this many)."""
TRACEBACK_CHARS = 20_000
"""Host-side cap on a program error's traceback, its last characters kept (as the runtime does)."""


def guest_text(value: Any, cap: int, default: str = "") -> str:
    """A text field of the guest's result, at most ``cap`` characters; anything but a string or a number
    (which the runtime never sends) is dropped rather than rendered (``str()`` of a forged list is huge)."""
    if isinstance(value, str):
        return value if len(value) <= cap else value[:cap]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)[:cap]
    return default


def result_from_guest(payload: Any, ctx: RunContext, duration_s: float) -> RunResult:
    """The guest loop's result frame (``codemode_runtime.repl``) as a :class:`RunResult`.

    The guest is untrusted: every field is checked for type, and a payload that is not an object becomes
    an error rather than an exception on the host. The host's caps apply whatever the guest sends:
    stdout, stderr and the value's repr to the execution's ``Limits.output_chars``, an error's type,
    message and traceback to :data:`ERROR_TYPE_CHARS`, :data:`ERROR_MESSAGE_CHARS` and
    :data:`TRACEBACK_CHARS` (and to ``output_chars`` when that is smaller). The JSON value is bounded by
    the frame's size and shape limits (:func:`codemode.protocol.decode_frame`).
    """
    calls = ctx.journal.records
    if not isinstance(payload, dict):
        malformed = RunError.of(BridgeError, "the sandbox sent a malformed result")
        return RunResult(
            ok=False, error=malformed, calls=calls, calls_over_quota=ctx.journal.overflow, duration_s=duration_s
        )
    cap = ctx.limits.output_chars
    error_data = payload.get("error")
    error: RunError | None = None
    if isinstance(error_data, dict):
        trace = error_data.get("traceback", "")
        trace_cap = min(cap, TRACEBACK_CHARS)
        if isinstance(trace, str) and len(trace) > trace_cap:
            # Its head names what was raised, its end how (the guest's own cut); under a tiny output limit, its end.
            keep = (trace_cap - 60) // 2
            cut = f"{trace[:keep]} … [{len(trace) - 2 * keep:,} characters cut] … {trace[-keep:]}"
            trace = cut if keep >= 50 else trace[-trace_cap:]
        error = RunError(
            ProgramError.kind,
            guest_text(error_data.get("type", "Error"), ERROR_TYPE_CHARS, "Error"),
            guest_text(error_data.get("message", ""), min(cap, ERROR_MESSAGE_CHARS)),
            guest_text(trace, trace_cap),
        )
    has_value = bool(payload.get("has_value"))
    shown = payload.get("value_repr")
    return RunResult(
        ok=error is None,
        stdout=guest_text(payload.get("stdout", ""), cap),
        stderr=guest_text(payload.get("stderr", ""), cap),
        value=payload.get("value") if has_value else None,
        value_repr=guest_text(shown, cap) if has_value and shown is not None else None,
        value_is_json=bool(payload.get("json")) and has_value,
        has_value=has_value,
        error=error,
        calls=calls,
        calls_over_quota=ctx.journal.overflow,
        duration_s=duration_s,
    )


class ExecutorOptions(TypedDict):
    """What every executor is built from (``create_executor(kind, **options)``)."""

    stubs_dir: Path
    """Mounted read-only as ``/stubs``."""
    skills_dir: Path
    """Mounted read-only as ``/skills``."""
    scratch_root: Path
    """Parent of the per-session writable ``/scratch`` directories."""
    gate: Gate
    """Every tool call a program makes goes through it."""
    limits: NotRequired[Limits | None]
    """Defaults for every execution (memory is fixed per interpreter)."""
    pool_size: NotRequired[int]
    """Interpreters kept booted for new sessions (default 2)."""
    progress: NotRequired[Progress | None]


class Executor(abc.ABC):
    """Runs Python for sessions. Subclasses are async context managers that own their interpreters."""

    kind: str
    scratch_mount: str | None = None
    """Where a program sees its session's scratch directory (``/scratch``), or None if it has none it can
    open (then the engine promises no spilled output file)."""

    def __init__(self, **options: Unpack[ExecutorOptions]) -> None:
        self.stubs_dir = options["stubs_dir"]
        self.skills_dir = options["skills_dir"]
        self.scratch_root = options["scratch_root"]
        self.gate = options["gate"]
        self.limits = options.get("limits") or Limits()
        self.pool_size = options.get("pool_size", 2)
        self.progress = options.get("progress")

    async def run(
        self, code: str, *, session: str = "default", limits: Limits | None = None, context: RunContext | None = None
    ) -> RunResult:
        """Run ``code`` in a session's interpreter (created on first use). Never raises for bad code.

        The engine passes ``context`` (its session, limits, clock and journal); without one, a fresh
        context is made from ``session`` and ``limits`` (the executor's defaults if None).
        """
        ctx = context or self.gate.context(session=session, limits=limits or self.limits)
        return await self._run(code, ctx)

    @abc.abstractmethod
    async def _run(self, code: str, ctx: RunContext) -> RunResult:
        """Run ``code`` for ``ctx``; every failure comes back as a failed :class:`RunResult`."""

    @property
    def warming(self) -> str | None:
        """What the executor is still preparing before it can run anything (None when it is ready)."""
        return None

    @property
    @abc.abstractmethod
    def pooled(self) -> int:
        """Interpreters started ahead of need and not yet given to a session."""

    async def wait_ready(self) -> None:  # noqa: B027  # most executors are ready once entered
        """Return once :attr:`warming` is None (a failure shows in the next run's result)."""

    @abc.abstractmethod
    async def close_session(self, session: str) -> None:
        """Drop a session's interpreter and its scratch directory."""

    @abc.abstractmethod
    def sessions(self) -> list[str]:
        """Sessions with a live interpreter."""

    def save_output(self, session: str, name: str, text: str) -> str | None:
        """Keep a long output where the session's next execution can read it; return that path, or None
        when this executor gives programs no file they could open."""
        return None

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Stop every interpreter."""

    async def __aenter__(self) -> Executor:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
