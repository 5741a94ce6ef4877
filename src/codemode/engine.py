"""The engine behind ``execute_python``: hub, compiled stubs, call gate, executor, sessions and audit.

::

    async with Engine(load_config(None)) as engine:
        outcome = await engine.execute("from stubs import notes\\nnotes.list_tags()", session="s1")
        print(outcome.text)

Sessions belong to an owner (the client; ``"local"`` by default): ``execute(..., session="s1", owner="alice")``
and ``owner="bob"`` run in two interpreters, and quotas are counted per owner (:mod:`codemode.sessions`).

``codemode serve``, ``codemode run``, ``codemode demo`` and the benchmarks all go through here, so every
execution is checked, rate-limited, bounded, journaled, audited and rendered the same way. The engine owns
the call gate (:mod:`codemode.calls.gate`): every tool call a program makes, from either executor, passes
its steps.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from contextlib import AsyncExitStack
from contextvars import ContextVar
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import anyio.abc

from codemode import paths
from codemode.audit import MAX_CODE_CHARS, AuditSink, ExecutionEntry, audit_log, new_execution_id
from codemode.calls.gate import Asker, Gate, Observer, Reply, RunContext, default_gate, journaled
from codemode.calls.handles import ResultStore
from codemode.calls.infer import InferResultStep
from codemode.calls.types import Limits
from codemode.catalog.catalog import Catalog
from codemode.catalog.observed import OBSERVED_FILE, Change, ShapeBook
from codemode.compiler import CompileReport
from codemode.config import Config
from codemode.directory.load import directory_for
from codemode.directory.service import Services
from codemode.errors import PolicyDenied, SkillError
from codemode.executors import Executor, ExecutorKind, RunResult, create_executor
from codemode.files import remove_orphans
from codemode.hub import Hub, ToolRef, ToolSpec
from codemode.hub.upstream import Upstream
from codemode.identity import LOCAL_IDENTITY
from codemode.outcome import Outcome, cut, render
from codemode.policy import Verdict, policy_step
from codemode.preflight import Preflight, Report
from codemode.protocol import OP_SAVE_SKILL
from codemode.session_names import session_dir
from codemode.sessions import LOCAL, Owner, Sessions
from codemode.skills import Skills
from codemode.skills.gitstore import GitSkillStore, store_for

logger = logging.getLogger(__name__)

DIRECT_SESSION = "direct"
"""The session name direct calls (hybrid mode) are journaled and audited under."""
DIRECT_EXECUTOR = "direct"

SKILL_CHECKS = Owner("skill-checks")
"""The owner of the throwaway sessions skill examples run in."""
_skill_saver: ContextVar[RunContext | None] = ContextVar("skill_saver", default=None)
"""The execution saving a skill (``Skills`` calls back with no execution context): the save is audited as its
identity, and its example runs as that identity, within the time that execution has."""


class Engine:
    """Hub + stubs + gate + executor for one configuration. Use as an async context manager."""

    def __init__(
        self,
        config: Config,
        *,
        executor: ExecutorKind | None = None,
        stubs_dir: Path | None = None,
        skills_dir: Path | None = None,
        audit: AuditSink | None = None,
        progress: Callable[[str], None] | None = None,
        upstreams: Mapping[str, Upstream] | None = None,
    ) -> None:
        self.config = config
        self._extra_upstreams = dict(upstreams or {})
        """Upstreams beside the configured ones (e.g. ``FakeUpstream`` in tests)."""
        self.settings = config.settings
        self.executor_kind: ExecutorKind = executor or config.settings.executor
        self.stubs_dir = stubs_dir or paths.stubs_dir_for(config)
        self.skills_dir = skills_dir or paths.skills_dir_for(config)
        self.audit = audit if audit is not None else audit_log(config)
        self.limits = Limits(
            wall_s=config.settings.wall_s,
            memory_bytes=config.settings.memory_mb * 1024 * 1024,
            max_tool_calls=config.settings.max_tool_calls,
            handle_bytes=config.settings.result_handle_kb * 1024,
        )
        self._progress = progress or (lambda _msg: None)
        self.execution_observers: list[Callable[[ExecutionEntry], None]] = []
        """Called with every audited entry (executions, direct calls, skill actions): the metrics count them."""
        self.results = ResultStore(
            session_bytes=config.settings.result_store_mb * 1024 * 1024,
            total_bytes=config.settings.result_store_total_mb * 1024 * 1024,
        )
        """Big results kept on the host for their sessions (programs read them through handles)."""
        self.tool_observers: list[Observer] = []
        """Called with every answered tool call a program makes (the demo and benchmarks count what a model
        would see)."""
        self.sessions = Sessions(
            max_sessions=config.settings.max_sessions,
            idle_s=config.settings.session_idle_s,
            per_minute=config.settings.executions_per_minute,
            close=self._close_interpreter,
        )
        self.policy = policy_step(config)
        """The gate's policy step: rules, approvals (and their session grants), per-tool rate limits."""
        self.preflight = Preflight(config.settings.typecheck, skills=self.skills_dir)
        """The type check before each run (``codemode.typecheck``)."""
        self.shapes = ShapeBook(self.stubs_dir / OBSERVED_FILE, threshold=config.settings.infer_results_after)
        """Observed result shapes of tools without an output schema (their inferred result types)."""
        self._stack: AsyncExitStack | None = None
        self.hub: Hub | None = None
        self.gate: Gate | None = None
        self.executor: Executor | None = None
        self.catalog: Catalog | None = None
        self.services: Services | None = None
        """Services mounted at run time from the directory (``mount()`` in a program)."""
        self.log_dir = paths.log_dir()
        """Where upstream servers' stderr logs go."""
        self.skill_store = store_for(config, self.skills_dir)
        self.skills = Skills(
            self.skill_store, index=lambda: self.index, read_only=self._read_only_tools,
            run_example=self._run_example, audit=self._audit_skill,
            auto_promote=config.settings.skills.auto_promote, limits=config.settings.skills,
        )  # fmt: skip
        self._tg: anyio.abc.TaskGroup | None = None

    async def __aenter__(self) -> Engine:
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            # A shared audit that cannot be written is a reason not to start (its records would pile up).
            await anyio.to_thread.run_sync(self.audit.open)
            stack.push_async_callback(anyio.to_thread.run_sync, self.audit.close)
            count = len(self.config.enabled_servers) + len(self._extra_upstreams)
            self._progress(f"starting {count} upstream server(s)")
            hub = Hub(self.config, on_tools_changed=self._tools_changed, upstreams=self._extra_upstreams)
            self.hub = await stack.enter_async_context(hub)
            self.shapes.load()
            infer = InferResultStep(self.shapes, self._shape_observed)
            self.gate = default_gate(
                self.hub, observers=self.tool_observers, policy=self.policy, infer=infer, results=self.results
            )
            self.catalog = Catalog(
                self.stubs_dir, self.hub, progress=self._progress, visible=self.offered, observed=self.shapes.inferred
            )
            self.catalog.listeners.append(self._catalog_changed)
            directory = directory_for(self.config)
            for rejected in directory.rejected:
                logger.warning("directory entry rejected: %s", rejected)
            self.services = Services(self.hub, self.catalog, self.settings, directory, log_dir=self.log_dir)
            self.services.register(self.gate)
            self.gate.ops[OP_SAVE_SKILL] = self._save_skill
            if isinstance(self.skill_store, GitSkillStore):
                await anyio.to_thread.run_sync(self.skill_store.ensure)
            await self.recompile()
            self._progress(f"starting the {self.executor_kind} executor")
            self.executor = await stack.enter_async_context(
                create_executor(
                    self.executor_kind,
                    stubs_dir=self.stubs_dir,
                    skills_dir=self._live_skills(),
                    scratch_root=self._scratch_root(stack),
                    gate=self.gate,
                    limits=self.limits,
                    progress=self._progress,
                    pool_size=self.settings.pool_size,
                )
            )
            tg = await stack.enter_async_context(anyio.create_task_group())
            tg.start_soon(self.sessions.expire_idle)
            tg.start_soon(self.preflight.warm, self.stubs_path)
            if isinstance(self.skill_store, GitSkillStore) and self.settings.skills_git is not None:
                await anyio.to_thread.run_sync(self._refresh_shared_skills)  # now checked against the stubs
                tg.start_soon(self._pull_skills, self.skill_store, self.settings.skills_git.pull_interval_s)
            stack.callback(tg.cancel_scope.cancel)
            self._tg = tg
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

    def _scratch_root(self, stack: AsyncExitStack) -> Path:
        """This engine's own scratch root, removed when it closes: sessions of two ``serve`` processes (or
        of one run after another) never see each other's files. Roots left by a process that died are
        removed here."""
        base = paths.scratch_root()
        base.mkdir(parents=True, exist_ok=True)
        remove_orphans(base)
        root = base / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        root.mkdir()
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        return root

    # -- stubs ---------------------------------------------------------------------------------

    @property
    def index(self) -> dict[str, Any]:
        """The discovery index of the current stubs generation."""
        return self.catalog.index if self.catalog is not None else {"version": 1, "servers": []}

    @property
    def stubs_path(self) -> Path:
        """The current stubs generation's tree on the host (browse it; do not write into it)."""
        return self.catalog.path if self.catalog is not None else self.stubs_dir

    @property
    def compile_report(self) -> CompileReport | None:
        return self.catalog.report if self.catalog is not None else None

    async def recompile(self, reason: str = "start") -> None:
        """Compile the hub's current tools into a new stubs generation (a failure keeps the current one)."""
        assert self.catalog is not None
        await self.catalog.refresh(reason)

    def _shape_observed(self, ref: ToolRef, change: Change) -> None:
        """The gate's inference step saw a new shape: save the book, and compile a new generation when a
        result type changed. Both in the background: the call that was observed is not held up."""
        if self._tg is None:
            return

        async def save_and_publish() -> None:
            try:
                await anyio.to_thread.run_sync(self.shapes.save)
            except OSError:
                logger.exception("saving the observed result shapes failed")
            if change.publish:
                await self.recompile(f"inferred the result type of {ref}")

        self.spawn(save_and_publish)

    async def _tools_changed(self, server: str) -> None:
        await self.recompile(f"{server} changed its tools")

    async def _catalog_changed(self, catalog: Catalog) -> None:
        # Interpreters (pooled or in a session) switch to the new generation at their next execution:
        # no reboot needed, only the gate's view of the tools.
        if self.gate is not None:
            self.gate.invalidate()
        # A stub a skill calls may have changed: promoted skills are checked again (and marked broken).
        await anyio.to_thread.run_sync(self.skills.recheck)

    # -- skills --------------------------------------------------------------------------------

    def _refresh_shared_skills(self) -> None:
        with self.skill_store.locked():
            self.skills.refresh_live()

    async def _pull_skills(self, store: GitSkillStore, interval_s: float) -> None:
        """Take other nodes' changes of the shared skill store every ``interval_s`` (a failed pull is logged
        and tried again: this node keeps the skills it has)."""
        while True:
            await anyio.sleep(interval_s)
            try:
                await anyio.to_thread.run_sync(store.pull)
            except SkillError as exc:
                logger.error("%s", exc)

    def _live_skills(self) -> Path:
        """The directory sandboxes import promoted skills from (``/skills``), with its discovery index."""
        self.skill_store.live_dir.mkdir(parents=True, exist_ok=True)
        self.skills.recheck()
        return self.skill_store.live_dir

    def _read_only_tools(self) -> set[tuple[str, str]]:
        """(server module, tool's Python name) of every tool annotated read-only."""
        specs = self.hub.tools() if self.hub is not None else {}
        found: set[tuple[str, str]] = set()
        for server in self.index.get("servers", []):
            hints = {s.name: bool((s.annotations or {}).get("readOnlyHint")) for s in specs.get(server["name"], [])}
            found |= {(server["module"], t["python_name"]) for t in server.get("tools", []) if hints.get(t["name"])}
        return found

    async def _run_example(self, code: str, *, identity: str | None = None) -> tuple[bool, str]:
        """Run a skill's example in a fresh throwaway session, then drop the session.

        Saved from a program, the example runs as that program's identity (its policy rules apply) and within
        the time the program has left: the program waits for it, out of reach of its own deadline, and an
        example that saves a skill nests in that same time. Outside a save (``codemode skills test``) it runs
        as ``identity``, the one that saved the skill."""
        saver = _skill_saver.get()
        limits, owner = self.limits, SKILL_CHECKS
        if saver is None and identity is not None and identity != LOCAL_IDENTITY:
            # The saver's rules, not the local user's: a remote client's skill is tested as that client.
            digest = hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()
            owner = Owner(f"{SKILL_CHECKS.key}-{digest[:24]}", identity=identity)
        if saver is not None:
            left = saver.clock.remaining()
            if left <= 0:
                return False, "the example was not run: the saving program has no time left"
            limits = dataclasses.replace(limits, wall_s=min(limits.wall_s, left))
            # The saver's own throwaway owner: its rate windows and caps are the saving client's, not shared
            # by every client's examples (one client's saves would spend everyone's).
            client = hashlib.sha256(saver.client.encode("utf-8", "surrogatepass")).hexdigest()
            owner = Owner(f"{SKILL_CHECKS.key}-{client[:24]}", peer=saver.peer, identity=saver.identity)
        session = f"skill-check-{uuid.uuid4().hex[:12]}"
        try:
            outcome = await self.execute(code, session=session, owner=owner, limits=limits)
        finally:
            await self.close_session(session, owner=owner)
        return not outcome.is_error, outcome.text

    def offered(self, spec: ToolSpec) -> bool:
        """Whether the policy lets programs and clients see ``spec`` at all (a denied tool gets no stub and is
        not offered directly; its calls are refused at the gate whatever the program does)."""
        return self.policy.rules.decide(spec.ref, spec.annotations).verdict is not Verdict.DENY

    async def _save_skill(self, ctx: RunContext, message: dict[str, Any]) -> Reply:
        """The gate's handler of the ``save_skill`` op: a refusal is a result (``saved: false``), not an error."""
        description, example = message.get("description"), message.get("example")

        async def save() -> Reply:
            token = _skill_saver.set(ctx)  # for _audit_skill and _run_example, called within save
            try:
                saved = await self.skills.save(
                    ctx.session, message["name"], message["source"], description=description, example=example,
                    identity=ctx.identity,
                )  # fmt: skip
            finally:
                _skill_saver.reset(token)
            return Reply(True, value=saved)

        # A save writes files and may run an example: a program saving in a loop is held to its call quota.
        return await journaled(ctx, f"save_skill({str(message.get('name'))[:64]})", save)

    def _audit_skill(self, action: str, name: str, ok: bool, detail: str) -> None:
        saver = _skill_saver.get()  # None outside a program's save: audited as "local", as before
        self.record(
            ExecutionEntry(
                session="skills", code=f"skills {action} {name}", executor="skills", ok=ok, duration_s=0.0,
                output_chars=0, error=None if ok else detail, error_kind=None if ok else "refused",
                output=detail, config=self.config.source, identity=saver.identity if saver else "local",
            )
        )  # fmt: skip

    def record(self, entry: ExecutionEntry) -> None:
        """Audit ``entry`` and show it to the execution observers (metrics). Never raises."""
        self.audit.append(entry)
        for observe in self.execution_observers:
            try:
                observe(entry)
            except Exception:
                logger.exception("an execution observer failed")

    # -- executions ----------------------------------------------------------------------------

    def spawn(self, fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``fn`` in the engine's own task group: it may outlive the request that started it (a program
        parked while its client answers an approval), and ends when the engine closes."""
        assert self._tg is not None, "the engine is not entered"
        self._tg.start_soon(fn)

    async def execute(
        self,
        code: str,
        *,
        session: str = "default",
        owner: Owner | str = LOCAL,
        limits: Limits | None = None,
        ask: Asker | None = None,
    ) -> Outcome:
        """Run ``code`` in ``owner``'s session ``session`` (created on first use), audit it, render the outcome.

        A session name is scoped to its owner: another owner's ``session`` of the same name is another
        interpreter. Bad input and quota breaches come back as an error ``Outcome``, not an exception.
        ``ask`` lets the gate put a question to the person at the client (None: nobody can be asked).
        """
        assert self.executor is not None and self.gate is not None
        owner = Owner(owner) if isinstance(owner, str) else owner
        session = session_dir(owner.key, session)
        problem = _check_code(code)
        if problem is not None:  # not an execution: nothing ran, nothing to audit
            return Outcome(new_execution_id(), session, problem, True, None, denied=problem)
        try:
            state = await self.sessions.admit(session, owner)
        except PolicyDenied as exc:
            return self._refused(session, code, str(exc), identity=owner.identity, peer=owner.peer)
        assert self.catalog is not None
        if self.executor.warming is not None:  # ready: no trip through the event loop to learn it
            await self.executor.wait_ready()  # before the clock starts: a first compile is not the program's time
        ctx = self.gate.context(
            session=session, limits=limits or self.limits, execution_id=new_execution_id(), ask=ask,
            identity=owner.identity, peer=owner.peer,
        )  # fmt: skip
        async with state.lock:
            # One stubs generation for the whole execution, the newest at its start.
            generation = self.catalog.generation
            ctx.generation = generation.name if generation is not None else None
            ctx.skills_revision = self.skill_store.revision()
            if ctx.generation is not None:
                self.catalog.store.pin(ctx.generation)
            state.last_used = time.monotonic()
            try:
                stubs = generation.path if generation is not None else self.stubs_path
                with ctx.clock.paused():  # the type check is not the program's time (a first check takes seconds)
                    report = await self.preflight.check(
                        code, stubs=stubs, session=session, immutable=generation is not None
                    )
                if report.refused:
                    return self._not_type_safe(ctx, code, report)
                result = await self.executor.run(code, context=ctx)
                self.preflight.remember(session, code)
            except BaseException:
                # Cancelled (the client went away) or a host fault: the calls made so far still happened.
                self._audit_cancelled(ctx, code)
                raise
            finally:
                state.last_used = time.monotonic()
                if ctx.generation is not None:
                    self.catalog.store.unpin(ctx.generation)
        return self._finish(ctx, code, result, report)

    async def call_tool(
        self, ref: ToolRef, args: dict[str, Any], *, owner: Owner | str = LOCAL, ask: Asker | None = None
    ) -> Reply:
        """One upstream call a client makes directly (hybrid mode), not from a program.

        It passes the same gate as a program's calls (known tool, quota, result shaping, and whatever policy
        steps the gate holds), is journaled, and is audited as an execution of its own (executor
        ``direct``, in the owner's ``direct`` session) whose code names the tool.
        """
        assert self.gate is not None
        owner = Owner(owner) if isinstance(owner, str) else owner
        session = session_dir(owner.key, DIRECT_SESSION)
        ctx = self.gate.context(
            session=session, limits=self.limits, execution_id=new_execution_id(), ask=ask, identity=owner.identity,
            peer=owner.peer,
        )  # fmt: skip
        ctx.handles = False  # no program to read a handle: a big result is refused as before
        code = f"# direct call\n{ref.server}.{ref.tool}(**{_args_preview(args)})"
        args_bytes = len(json.dumps(args, ensure_ascii=False, default=repr).encode("utf-8", "surrogatepass"))
        started = time.perf_counter()
        try:
            reply = await self.gate.call(ctx, ref, args, args_bytes)
        except BaseException:
            self._audit_cancelled(ctx, code, executor=DIRECT_EXECUTOR)
            raise
        error = None if reply.ok else f"{reply.kind}: {reply.message}"
        self.record(
            ExecutionEntry(
                id=ctx.id, session=ctx.session, code=code, executor=DIRECT_EXECUTOR, ok=reply.ok,
                duration_s=time.perf_counter() - started, output_chars=0, calls=ctx.journal.records,
                error=error, error_kind=None if reply.ok else reply.kind, output=error or "", config=self.config.source,
                identity=ctx.identity, peer=ctx.peer,
            )
        )  # fmt: skip
        return reply

    def _finish(self, ctx: RunContext, code: str, result: RunResult, report: Report | None = None) -> Outcome:
        assert self.executor is not None
        text = full = render(result)
        checked = report.block() if report is not None else ""
        if checked:
            text = full = checked + "\n" + text
        if self.catalog is not None and self.catalog.error is not None:
            notice = f"[codemode: {self.catalog.error}; the stubs from before are still in use]"
            text = full = notice + "\n" + text
        cut_path: str | None = None
        if len(text) > self.settings.output_chars:
            cut_path = self.executor.save_output(ctx.session, ctx.id, full)
            text = cut(text, self.settings.output_chars, cut_path, len(full))
        self.record(
            ExecutionEntry(
                id=ctx.id,
                session=ctx.session,
                code=code,
                executor=self.executor_kind,
                ok=result.ok,
                duration_s=result.duration_s,
                output_chars=len(full),
                calls=list(result.calls),
                calls_over_quota=result.calls_over_quota,
                error=None if result.error is None else f"{result.error.type}: {result.error.message}",
                error_kind=None if result.error is None else result.error.kind,
                output=text,
                config=self.config.source,
                identity=ctx.identity,
                peer=ctx.peer,
            )
        )  # one small O_APPEND write: cheaper than a thread hop
        return Outcome(ctx.id, ctx.session, text, not result.ok, result, cut_path)

    def _audit_cancelled(self, ctx: RunContext, code: str, *, executor: str | None = None) -> None:
        self.record(
            ExecutionEntry(
                id=ctx.id, session=ctx.session, code=code, executor=executor or self.executor_kind, ok=False,
                duration_s=ctx.limits.wall_s - ctx.clock.remaining(), output_chars=0, calls=ctx.journal.records,
                error="ExecutionCancelled: the execution was cancelled (the client cancelled or went away)",
                error_kind="cancelled", config=self.config.source, identity=ctx.identity, peer=ctx.peer,
            )
        )  # fmt: skip

    def _not_type_safe(self, ctx: RunContext, code: str, report: Report) -> Outcome:
        """Strict mode and a program with type errors: nothing ran, no tool was called."""
        text = report.block()
        entry = ExecutionEntry(
            id=ctx.id, session=ctx.session, code=code, executor=self.executor_kind, ok=False, duration_s=0.0,
            output_chars=0, error=f"TypeCheck: {report.skipped or f'{len(report.diagnostics)} error(s)'}",
            error_kind="refused",
            output=text, config=self.config.source, identity=ctx.identity, peer=ctx.peer,
        )  # fmt: skip
        self.record(entry)
        return Outcome(ctx.id, ctx.session, text, True, None, denied=text)

    def _refused(self, session: str, code: str, message: str, *, identity: str, peer: str) -> Outcome:
        entry = ExecutionEntry(
            session=session, code=code, executor=self.executor_kind, ok=False, duration_s=0.0,
            output_chars=0, error=f"PolicyDenied: {message}", error_kind="refused", config=self.config.source,
            identity=identity, peer=peer,
        )  # fmt: skip
        self.record(entry)
        return Outcome(entry.id, session, f"PolicyDenied: {message}", True, None, denied=message)

    async def close_session(self, session: str, *, owner: Owner | str = LOCAL) -> None:
        """Drop ``owner``'s session ``session``: its interpreter and state."""
        key = owner if isinstance(owner, str) else owner.key
        await self.sessions.close(session_dir(key, session))

    async def close_owner(self, owner: Owner | str) -> None:
        """Drop every session of ``owner`` that is not running code (the client is gone for good)."""
        await self.sessions.close_owner(owner if isinstance(owner, str) else owner.key)

    async def _close_interpreter(self, session: str) -> None:
        self.policy.approvals.forget(session)
        self.preflight.forget(session)
        self.results.forget(session)
        if self.executor is not None:
            await self.executor.close_session(session)


def _args_preview(args: dict[str, Any]) -> str:
    text = json.dumps(args, ensure_ascii=False, default=repr)
    return text if len(text) <= 2_000 else text[:2_000] + "…"


def _check_code(code: str) -> str | None:
    """Why ``code`` cannot be run at all, or None (``codemode run`` and ``serve`` check alike)."""
    if not code.strip():
        return "empty program: send Python source in `code`"
    if len(code) > MAX_CODE_CHARS:
        return f"program too long: {len(code):,} characters (limit {MAX_CODE_CHARS:,})"
    if "\x00" in code:
        return "program contains a NUL character"
    return None
