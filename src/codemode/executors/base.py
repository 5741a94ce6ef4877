"""What every executor promises: ``run(code, session)`` → :class:`RunResult`, with the same limits."""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, Unpack

from codemode.hub.models import ToolRef

if TYPE_CHECKING:
    import mcp_types as types

ToolHandler = Callable[[ToolRef, dict[str, Any]], Awaitable["types.CallToolResult"]]
"""How an executor reaches the real tools (the engine passes the hub's ``call_tool``)."""

KnownTools = Callable[[], set[ToolRef]]
"""The tools a program may call right now."""

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Limits:
    """Per-execution limits. Every breach ends the execution with a specific error."""

    wall_s: float = 30.0
    """Wall-clock time, tool calls included."""
    memory_bytes: int = 256 * 1024 * 1024
    """Guest memory (the WASM linear memory; address space of the RestrictedPython child)."""
    fuel: int = 40_000_000_000
    """WASM CPU budget in fuel units (≈ instructions; ``print(1)`` costs ~1 M on a warm session)."""
    output_chars: int = 2_000_000
    """stdout and stderr, each. Past it the program is stopped (the engine renders far less)."""
    max_tool_calls: int = 200
    max_request_bytes: int = 4 * 1024 * 1024
    """Size of one tool call's arguments as JSON."""
    max_result_bytes: int = 32 * 1024 * 1024
    """Size of one tool result handed to the guest."""
    scratch_bytes: int = 1024 * 1024 * 1024
    """Total size of a session's ``/scratch`` (checked twice a second while code runs)."""
    scratch_files: int = 10_000
    """Number of files and directories in a session's ``/scratch``."""


@dataclass(frozen=True)
class RunError:
    """Why an execution failed: the exception type, its message and a traceback of the user's code."""

    type: str
    message: str
    traceback: str = ""


@dataclass(frozen=True)
class ToolCallRecord:
    """One tool call made by a program, as the host saw it."""

    server: str
    tool: str
    args_bytes: int
    duration_s: float
    ok: bool
    error: str | None = None


@dataclass
class RunResult:
    """Everything an execution produced."""

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
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    duration_s: float = 0.0
    instance_lost: bool = False
    """The interpreter was killed (timeout, trap, crash): the session's state is gone."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``codemode run --json``, the audit log, the benchmarks)."""
        return asdict(self)


def result_from_guest(payload: Any, calls: list[ToolCallRecord], duration_s: float) -> RunResult:
    """The guest loop's result frame (``codemode_runtime.repl``) as a :class:`RunResult`.

    The guest is untrusted: every field is checked for type, and a payload that is not an object becomes
    an error rather than an exception on the host.
    """
    if not isinstance(payload, dict):
        malformed = RunError("BridgeError", "the sandbox sent a malformed result")
        return RunResult(ok=False, error=malformed, tool_calls=list(calls), duration_s=duration_s)
    error_data = payload.get("error")
    error: RunError | None = None
    if isinstance(error_data, dict):
        error = RunError(
            str(error_data.get("type", "Error")),
            str(error_data.get("message", "")),
            str(error_data.get("traceback", "")),
        )
    has_value = bool(payload.get("has_value"))
    shown = payload.get("value_repr")
    return RunResult(
        ok=error is None,
        stdout=str(payload.get("stdout", "")),
        stderr=str(payload.get("stderr", "")),
        value=payload.get("value") if has_value else None,
        value_repr=str(shown) if has_value and shown is not None else None,
        value_is_json=bool(payload.get("json")) and has_value,
        has_value=has_value,
        error=error,
        tool_calls=list(calls),
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
    tool_handler: ToolHandler
    known_tools: KnownTools
    limits: NotRequired[Limits | None]
    """Defaults for every execution (memory is fixed per interpreter)."""
    pool_size: NotRequired[int]
    """Interpreters kept booted for new sessions (default 2)."""
    progress: NotRequired[Progress | None]


class Executor(abc.ABC):
    """Runs Python for sessions. Subclasses are async context managers that own their interpreters."""

    kind: str

    def __init__(self, **options: Unpack[ExecutorOptions]) -> None:
        from codemode.bridge import Bridge  # the bridge imports this module's types

        self.stubs_dir = options["stubs_dir"]
        self.skills_dir = options["skills_dir"]
        self.scratch_root = options["scratch_root"]
        self.limits = options.get("limits") or Limits()
        self.pool_size = options.get("pool_size", 2)
        self.bridge = Bridge(options["tool_handler"], options["known_tools"])
        self.progress = options.get("progress")

    @abc.abstractmethod
    async def run(self, code: str, *, session: str = "default", limits: Limits | None = None) -> RunResult:
        """Run ``code`` in ``session``'s interpreter (created on first use). Never raises for bad code."""

    @abc.abstractmethod
    async def close_session(self, session: str) -> None:
        """Drop a session's interpreter and its scratch directory."""

    @abc.abstractmethod
    async def refresh(self) -> None:
        """The stubs changed: interpreters not yet given to a session should not keep the old ones."""

    @abc.abstractmethod
    def sessions(self) -> list[str]:
        """Sessions with a live interpreter."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Stop every interpreter."""

    async def __aenter__(self) -> Executor:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
