"""The engine behind ``execute_python``: hub, compiled stubs, executor, sessions, quotas and audit.

::

    async with Engine(load_config(None)) as engine:
        outcome = await engine.execute("from stubs import notes\\nnotes.list_tags()", session="s1")
        print(outcome.text)

``codemode serve``, ``codemode run``, ``codemode demo`` and the benchmarks all go through here, so every
execution is rate-limited, bounded, audited and rendered the same way.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import mcp_types as types

from codemode import paths
from codemode.audit import AuditLog, ExecutionEntry, new_execution_id
from codemode.compiler import CompileReport, compile_to_dir, load_index
from codemode.config import Config
from codemode.errors import PolicyDenied
from codemode.executors import Executor, ExecutorKind, Limits, RunResult, create_executor
from codemode.hub import Hub, ToolRef
from codemode.policy import RateLimiter

_SAFE_SESSION = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class Outcome:
    """One execution, rendered for a model: ``text`` is what goes back; ``result`` is the raw run."""

    id: str
    session: str
    text: str
    is_error: bool
    result: RunResult | None
    full_output_path: str | None = None
    """Guest path of the full output when ``text`` was cut at the output cap."""
    denied: str | None = None


@dataclass
class _Session:
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    last_used: float = field(default_factory=time.monotonic)


class Engine:
    """Hub + stubs + executor for one configuration. Use as an async context manager."""

    def __init__(
        self,
        config: Config,
        *,
        executor: ExecutorKind | None = None,
        stubs_dir: Path | None = None,
        skills_dir: Path | None = None,
        audit: AuditLog | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.settings = config.settings
        self.executor_kind: ExecutorKind = executor or config.settings.executor
        self.stubs_dir = stubs_dir or paths.stubs_dir_for(config)
        self.skills_dir = skills_dir or paths.skills_dir_for(config)
        self.audit = audit if audit is not None else AuditLog(audit_path(config))
        self.limits = Limits(
            wall_s=config.settings.wall_s,
            memory_bytes=config.settings.memory_mb * 1024 * 1024,
            max_tool_calls=config.settings.max_tool_calls,
        )
        self._progress = progress or (lambda _msg: None)
        self._rate = RateLimiter(config.settings.executions_per_minute)
        self._sessions: dict[str, _Session] = {}
        self._known: set[ToolRef] | None = None
        self.tool_observers: list[Callable[[ToolRef, dict[str, Any], types.CallToolResult], None]] = []
        """Called with every tool call a program makes (the demo and benchmarks count what a model would see)."""
        self._stack: AsyncExitStack | None = None
        self.hub: Hub | None = None
        self.executor: Executor | None = None
        self.compile_report: CompileReport | None = None
        self.index: dict[str, Any] = {}

    async def __aenter__(self) -> Engine:
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            self._progress(f"starting {len(self.config.enabled_servers)} upstream server(s)")
            self.hub = await stack.enter_async_context(Hub(self.config, on_tools_changed=self._tools_changed))
            await self.recompile()
            self._progress(f"starting the {self.executor_kind} executor")
            self.executor = await stack.enter_async_context(
                create_executor(
                    self.executor_kind,
                    stubs_dir=self.stubs_dir,
                    skills_dir=self.skills_dir,
                    scratch_root=paths.scratch_root(),
                    tool_handler=self._call_tool,
                    known_tools=self.known_tools,
                    limits=self.limits,
                    progress=self._progress,
                )
            )
            tg = await stack.enter_async_context(anyio.create_task_group())
            tg.start_soon(self._expire_idle_sessions)
            stack.callback(tg.cancel_scope.cancel)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    # -- stubs ---------------------------------------------------------------------------------

    async def recompile(self) -> CompileReport:
        """Compile the hub's current tools into ``stubs_dir`` (incremental) and reload the index."""
        assert self.hub is not None
        tools = self.hub.tools()
        summaries = self.hub.summaries()
        self._known = None
        report = await anyio.to_thread.run_sync(lambda: compile_to_dir(tools, self.stubs_dir, summaries=summaries))
        self.compile_report = report
        self.index = load_index(self.stubs_dir)
        self._progress(
            f"compiled {sum(len(t) for t in tools.values())} tools from {len(tools)} server(s) into {self.stubs_dir}"
            f" ({len(report.written)} written, {len(report.unchanged)} unchanged)"
        )
        return report

    async def _tools_changed(self, server: str) -> None:
        await self.recompile()
        if self.executor is not None:
            await self.executor.refresh()

    def known_tools(self) -> set[ToolRef]:
        """Every tool the guest may call right now (cached until the next recompile: asked on every call)."""
        assert self.hub is not None
        if self._known is None:
            self._known = {spec.ref for specs in self.hub.tools().values() for spec in specs}
        return self._known

    async def _call_tool(self, ref: ToolRef, args: dict[str, Any]) -> types.CallToolResult:
        assert self.hub is not None
        result = await self.hub.call_tool(ref, args)
        for observe in self.tool_observers:
            observe(ref, args, result)
        return result

    # -- executions ----------------------------------------------------------------------------

    async def execute(self, code: str, *, session: str = "default", limits: Limits | None = None) -> Outcome:
        """Run ``code`` in ``session`` (created on first use), audit it, and render the outcome.

        Quota breaches come back as an error ``Outcome``, not an exception.
        """
        assert self.executor is not None
        session = _SAFE_SESSION.sub("_", session)[:80].lstrip(".") or "default"
        state = self._sessions.get(session)
        if state is None:
            refusal = await self._make_room()
            if refusal is not None:
                return self._denied(session, code, refusal)
            state = self._sessions.setdefault(session, _Session())
        try:
            self._rate.check(session)
        except PolicyDenied as exc:
            return self._denied(session, code, str(exc))
        async with state.lock:
            state.last_used = time.monotonic()
            result = await self.executor.run(code, session=session, limits=limits or self.limits)
            state.last_used = time.monotonic()
        execution_id = new_execution_id()
        text = full = render(result)
        cut_path: str | None = None
        if len(text) > self.settings.output_chars:
            cut_path = self._spill(session, execution_id, full)
            text = cut(text, self.settings.output_chars, cut_path, len(full))
        entry = ExecutionEntry(
            id=execution_id,
            session=session,
            code=code,
            executor=self.executor_kind,
            ok=result.ok,
            duration_s=result.duration_s,
            output_chars=len(full),
            tool_calls=list(result.tool_calls),
            error=None if result.error is None else f"{result.error.type}: {result.error.message}",
            output=text,
            config=self.config.source,
        )
        self.audit.append(entry)  # one small O_APPEND write: cheaper than a thread hop
        return Outcome(entry.id, session, text, not result.ok, result, cut_path)

    async def _make_room(self) -> str | None:
        """Keep at most ``max_sessions`` interpreters: close the least recently used idle one if needed.

        Sessions are cheap to name (the ``session`` argument), so without a cap a client could make the host
        boot interpreters until it runs out of memory.
        """
        limit = self.settings.max_sessions
        if len(self._sessions) < limit:
            return None
        idle = sorted((s.last_used, name) for name, s in self._sessions.items() if not s.lock.locked())
        if not idle:
            return f"too many sessions: all {limit} are running code; retry when one finishes"
        await self.close_session(idle[0][1])
        return None

    def _denied(self, session: str, code: str, message: str) -> Outcome:
        entry = ExecutionEntry(
            session=session, code=code, executor=self.executor_kind, ok=False, duration_s=0.0,
            output_chars=0, error=f"PolicyDenied: {message}", config=self.config.source,
        )  # fmt: skip
        self.audit.append(entry)
        return Outcome(entry.id, session, f"PolicyDenied: {message}", True, None, denied=message)

    def _spill(self, session: str, execution_id: str, full: str) -> str:
        """Keep the full output in the session's scratch dir, where the next execution can read it.

        The scratch dir is the guest's to shape, so nothing in it is trusted: ``outputs`` must be a real
        directory (a link or file there is removed), and the file is written relative to that directory's
        descriptor without following links.
        """
        session_dir = paths.scratch_root() / session
        session_dir.mkdir(parents=True, exist_ok=True)
        dir_flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
        root = os.open(session_dir, dir_flags)
        try:
            try:
                os.mkdir("outputs", dir_fd=root)
            except FileExistsError:
                if not stat.S_ISDIR(os.stat("outputs", dir_fd=root, follow_symlinks=False).st_mode):
                    os.unlink("outputs", dir_fd=root)
                    os.mkdir("outputs", dir_fd=root)
            outputs = os.open("outputs", dir_flags, dir_fd=root)
        finally:
            os.close(root)
        try:
            tmp = f".{execution_id}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=outputs)
            with os.fdopen(fd, "w", encoding="utf-8", errors="surrogatepass") as fh:
                fh.write(full)
            os.replace(tmp, f"{execution_id}.txt", src_dir_fd=outputs, dst_dir_fd=outputs)
        finally:
            os.close(outputs)
        return f"/scratch/outputs/{execution_id}.txt"

    async def close_session(self, session: str) -> None:
        """Drop a session's interpreter and state."""
        self._sessions.pop(session, None)
        self._rate.forget(session)
        if self.executor is not None:
            await self.executor.close_session(session)

    async def _expire_idle_sessions(self) -> None:
        idle = self.settings.session_idle_s
        while True:
            await anyio.sleep(min(60.0, idle / 4))
            now = time.monotonic()
            for name, state in list(self._sessions.items()):
                if now - state.last_used > idle and not state.lock.locked():
                    await self.close_session(name)


def audit_path(config: Config) -> Path:
    """The audit log of a config: the setting, else ``<state>/audit.jsonl``."""
    if config.settings.audit_log:
        return Path(config.settings.audit_log).expanduser()
    return paths.state_dir() / "audit.jsonl"


def render(result: RunResult) -> str:
    """The text a model sees for a run: stdout, stderr, the final value (JSON when it is data), the error."""
    parts: list[str] = []
    if result.stdout:
        parts.append(result.stdout.rstrip("\n"))
    if result.stderr:
        parts.append("[stderr]\n" + result.stderr.rstrip("\n"))
    if result.ok and result.has_value:
        parts.append(json.dumps(result.value, ensure_ascii=False) if result.value_is_json else str(result.value_repr))
    if result.error is not None:
        parts.append(result.error.traceback.rstrip("\n") or f"{result.error.type}: {result.error.message}")
    # Lone surrogates (a program may print any str) cannot travel as UTF-8: show them as \udcff escapes.
    return "\n".join(parts).encode("utf-8", "backslashreplace").decode("utf-8")


def cut(text: str, limit: int, full_path: str, full_len: int) -> str:
    """Cut ``text`` at a line boundary at most ``limit`` chars long and say so, naming the full copy."""
    head = text[:limit]
    newline = head.rfind("\n")
    if newline >= limit * 0.5:
        head = head[:newline]
    note = (
        f"\n[output cut: showing {len(head):,} of {full_len:,} characters. The full output is in {full_path}; "
        f"read it in the next execution, e.g. open({full_path!r}).read()[{len(head)}:{len(head) + limit}]]"
    )
    return head + note
