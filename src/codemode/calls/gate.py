"""The call gate: the one place every tool call from a sandboxed program passes through.

The engine builds one :class:`Gate` and hands it to the executor; each execution gets a
:class:`RunContext` (id, session, limits, clock, journal, a way to ask the person) and every ``call``
frame from either executor becomes ``gate.call(ctx, ref, args)``. The gate is a chain of small steps,
each of which may answer the call itself (a refusal) or pass it on::

    Journal → KnownTool → Policy (rules, approvals, rate limits) → Quota → ShapeResult → Observe → InferResult
    → Upstream

``ShapeResult`` keeps a result over ``Limits.handle_bytes`` on the host (:mod:`codemode.calls.handles`) and
answers with a handle the guest reads through the ``fetch`` op (:mod:`codemode.calls.fetch`).

A feature that needs to see, hold, refuse or reshape calls is one more step, not an edit in three
modules. Steps never raise for anything a program can cause: a refusal is a :class:`Reply` with an error
kind the guest turns into a ``ToolError`` subclass.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from codemode.calls.fetch import FetchOp, describe, json_size
from codemode.calls.handles import ResultStore
from codemode.calls.journal import RECORDED_NAME_CHARS, Journal, bounded
from codemode.calls.results import ResultTooLarge, error_text, result_for_guest
from codemode.calls.types import CallState, Clock, Limits
from codemode.errors import CodemodeError, ToolCallTimeout
from codemode.hub.models import ToolRef, ToolSpec
from codemode.identity import client_key
from codemode.protocol import BLOB_MIN, HEADER, MAX_DEPTH, OP_FETCH, ErrorKind, encode_frame, error_reply

if TYPE_CHECKING:
    import mcp_types as types


class CannotAsk(Exception):
    """Raised by an :class:`Asker` when it turns out the client has no way to ask (no back-channel)."""


class Asker(Protocol):
    """How a step asks the person at the client a question (MCP elicitation at the front)."""

    async def __call__(self, question: str, choices: Sequence[str]) -> str | None:
        """Return the chosen answer, or None when the person declined or cancelled.

        Raises:
            CannotAsk: the client cannot be asked after all (e.g. protocol 2026-07-28 without a back-channel).
        """
        ...


@dataclass
class RunContext:
    """One execution as the gate and the executors see it."""

    id: str
    session: str
    limits: Limits
    clock: Clock
    journal: Journal
    gate: Gate
    ask: Asker | None = None
    """None when the client cannot be asked anything (``codemode run``, clients without elicitation)."""
    cancelled: bool = False
    """Set when the execution is being torn down: later calls are refused, not sent."""
    generation: str | None = None
    """The stubs generation the execution imports from (None: the executor's stubs dir is a plain tree)."""
    skills_revision: str | None = None
    """The skill store's revision at the start (the guest forgets imported skills when it changes)."""
    identity: str = "local"
    """Who the execution runs for (:mod:`codemode.identity`): policy rules may be scoped to it."""
    peer: str = "local"
    """Where its request came from (the client's address over HTTP): audited."""
    handles: bool = True
    """A result over ``limits.handle_bytes`` may come back as a handle (False: a client's direct call,
    which has no program to read one)."""

    @property
    def client(self) -> str:
        """Who runs it across its sessions and owners (:func:`codemode.identity.client_key`): what one client may
        hold of what every client shares is counted by this."""
        return client_key(self.identity, self.peer)


@dataclass
class Call:
    """One tool call on its way through the gate."""

    ctx: RunContext
    ref: ToolRef
    args: dict[str, Any]
    args_bytes: int
    spec: ToolSpec | None
    """The tool's spec, or None when no connected server has it."""
    index: int = -1
    """Its position in the journal (set by the journal step)."""


@dataclass
class Reply:
    """What a call comes back as. ``frame()`` is the bytes the guest reads, encoded once."""

    ok: bool
    value: Any = None
    kind: ErrorKind | None = None
    message: str | None = None
    state: CallState = CallState.DONE
    raw: types.CallToolResult | None = None
    """The upstream's own result, for observers."""
    handle: dict[str, Any] | None = None
    """The descriptor of a result kept on the host (then ``value`` is None)."""
    result_bytes: int | None = None
    """The result's size when the frame does not carry it (a handle's)."""
    _frame: bytes | None = field(default=None, repr=False)

    @classmethod
    def refuse(cls, kind: ErrorKind, message: str) -> Reply:
        """Stopped before reaching the tool."""
        return cls(False, kind=kind, message=message, state=CallState.REFUSED)

    @classmethod
    def fail(cls, kind: ErrorKind, message: str, state: CallState = CallState.FAILED) -> Reply:
        """Reached the tool (or tried to) and did not succeed."""
        return cls(False, kind=kind, message=message, state=state)

    def frame(self) -> bytes:
        if self._frame is None:
            if self.ok and self.handle is not None:
                payload = {"ok": True, "handle": self.handle}
            elif self.ok:
                payload = {"ok": True, "result": self.value}
            else:
                payload = error_reply(self.kind or "bridge", str(self.message))
            self._frame = encode_frame(payload)
        return self._frame


Next = Callable[[Call], Awaitable[Reply]]

OpHandler = Callable[["RunContext", dict[str, Any]], Awaitable[Reply]]
"""Serves one guest request other than ``call`` (the message is already checked against its op's fields)."""
LocalOpHandler = Callable[["RunContext", dict[str, Any]], Reply]
"""Serves a guest request that needs no event loop (bounded work on host memory, thread-safe), on whichever
thread the request arrives: the WASM executor then saves two thread hops per request."""


class Step(Protocol):
    """One link of the chain: answer ``call`` or pass it to ``call_next``."""

    async def __call__(self, call: Call, call_next: Next) -> Reply: ...


class Upstreams(Protocol):
    """What the gate needs from the hub."""

    def tools(self) -> dict[str, list[ToolSpec]]: ...

    def unavailable(self) -> dict[str, str]:
        """Servers that are down, and why."""
        ...

    async def call_tool(self, ref: ToolRef, args: dict[str, Any]) -> types.CallToolResult: ...


# -- the steps ------------------------------------------------------------------------------------


class JournalStep:
    """Records each call as in flight before it is awaited, then settles it with the reply's state.

    A call cut short by cancellation (the execution was killed while the call was out) stays in flight.
    """

    async def __call__(self, call: Call, call_next: Next) -> Reply:
        read_only = bool(call.spec and (call.spec.annotations or {}).get("readOnlyHint"))
        call.index = call.ctx.journal.begin(
            call.ref.server, call.ref.tool, args_bytes=call.args_bytes, args_digest=_digest(call.args, call.args_bytes),
            read_only=read_only,
        )  # fmt: skip
        started = time.perf_counter()
        reply = await call_next(call)
        call.ctx.journal.finish(
            call.index,
            reply.state,
            duration_s=time.perf_counter() - started,
            result_bytes=(reply.result_bytes or len(reply.frame()) - HEADER.size) if reply.ok else 0,
            error=reply.message,
            error_kind=reply.kind,
        )
        return reply


class KnownToolStep:
    """Refuses calls to servers or tools that are not connected."""

    async def __call__(self, call: Call, call_next: Next) -> Reply:
        if call.spec is not None and call.spec.requires_task:
            # Such a tool answers a plain call with an error or a task handle, never a result: it has no stub.
            message = f"{call.ref} can only be called as a task (execution.taskSupport: required); codemode does not"
            return Reply.refuse("unknown", message + " support that yet")
        if call.spec is not None:
            return await call_next(call)
        server, tool = _shown(call.ref.server), _shown(call.ref.tool)
        reason = call.ctx.gate.unavailable().get(call.ref.server)
        if reason is not None:
            return Reply.refuse("upstream", f"server {server} is unavailable: {reason} (codemode retries it)")
        servers = sorted(call.ctx.gate.servers())
        if call.ref.server not in servers:
            connected = ", ".join(servers) or "none"
            return Reply.refuse("unknown", f"no server named {server} (connected: {connected})")
        return Reply.refuse("unknown", f"server {server} has no tool {tool}")


def _shown(name: str) -> str:
    """A name the program gave, quoted for a message (which the journal and the audit log keep): its head."""
    return repr(bounded(name, RECORDED_NAME_CHARS))


class QuotaStep:
    """The execution's tool-call count and the size of one call's arguments."""

    async def __call__(self, call: Call, call_next: Next) -> Reply:
        limits = call.ctx.limits
        if call.index < 0 or call.index >= limits.max_tool_calls:
            return Reply.refuse("quota", f"this execution reached its limit of {limits.max_tool_calls} tool calls")
        if call.args_bytes > limits.max_request_bytes:
            return Reply.refuse(
                "too_large", f"arguments are {call.args_bytes:,} bytes; the limit is {limits.max_request_bytes:,}"
            )
        return await call_next(call)


class ShapeResultStep:
    """Turns the result into the guest's frame once, refuses one larger than the execution allows, and keeps
    one over ``Limits.handle_bytes`` on the host (in ``store``), answering with its handle."""

    def __init__(self, store: ResultStore | None = None) -> None:
        self.store = store

    async def __call__(self, call: Call, call_next: Next) -> Reply:
        reply = await call_next(call)
        if not reply.ok:
            return reply
        try:
            # A long text is measured without being encoded: it may be kept, and then no frame carries it.
            text = isinstance(reply.value, str) and len(reply.value) >= BLOB_MIN
            size = json_size(reply.value) + _TEXT_ENVELOPE if text else len(reply.frame()) - HEADER.size
        except RecursionError:  # only an in-process upstream can nest this deep: the SDK's parser stops at 200
            return Reply.fail("too_large", f"the result nests deeper than the {MAX_DEPTH}-level limit")
        limit = call.ctx.limits.max_result_bytes
        if size > limit:
            # The tool ran; only its answer is withheld, so the call is failed, not refused.
            return Reply.fail("too_large", f"the result is {size:,} bytes; the limit is {limit:,}")
        limits = call.ctx.limits
        if size <= limits.handle_bytes or self.store is None or not call.ctx.handles or _scalar(reply.value):
            return reply
        kept = self.store.keep(call.ctx.session, reply.value, size, client=call.ctx.client)
        if kept is None:
            return Reply.fail(
                "too_large", f"the result is {size:,} bytes; a session keeps at most {self.store.session_bytes:,}"
            )
        handle = describe(kept, [], reply.value, size, limits.max_read_bytes)
        return Reply(True, handle=handle, raw=reply.raw, result_bytes=size)


_TEXT_ENVELOPE = len(encode_frame({"ok": True, "result": "x" * BLOB_MIN})) - HEADER.size - BLOB_MIN
"""What a frame carrying one long text adds to the text's bytes."""


def _scalar(value: Any) -> bool:
    """Whether ``value`` cannot be a handle (a scalar: only a list, an object or a text can be kept)."""
    return not isinstance(value, list | dict | str)


Observer = Callable[[ToolRef, dict[str, Any], "types.CallToolResult"], None]


class ObserveStep:
    """Shows every answered call to observers (the demo and the benchmarks count what a model would see)."""

    def __init__(self, observers: list[Observer]) -> None:
        self.observers = observers

    async def __call__(self, call: Call, call_next: Next) -> Reply:
        reply = await call_next(call)
        if reply.raw is not None:
            for observe in self.observers:
                observe(call.ref, call.args, reply.raw)
        return reply


class UpstreamStep:
    """The end of the chain: the real tool, within the execution's remaining time."""

    def __init__(self, upstreams: Upstreams) -> None:
        self._upstreams = upstreams

    async def __call__(self, call: Call, call_next: Next) -> Reply:
        clock = call.ctx.clock
        remaining = clock.remaining()
        if remaining <= 0:
            return Reply.refuse("timeout", "the execution's wall-time limit was reached")
        try:
            with anyio.fail_after(remaining):
                result = await self._upstreams.call_tool(call.ref, call.args)
        except TimeoutError:
            # The request is out: whether the tool acted on it is unknown, so the journal keeps it in flight.
            return Reply.fail(
                "timeout", f"no answer before the execution's {clock.wall_s:g} s limit", CallState.IN_FLIGHT
            )
        except ToolCallTimeout as exc:
            return Reply.fail("timeout", _for_guest(str(exc)), CallState.IN_FLIGHT)
        except ResultTooLarge as exc:  # refused at the transport: the tool ran, its answer is withheld
            return Reply.fail("too_large", exc.message)
        except CodemodeError as exc:
            return Reply.fail("upstream", _for_guest(str(exc)))
        if result.is_error:
            return Reply(False, kind="tool", message=error_text(result), state=CallState.FAILED, raw=result)
        try:
            value = result_for_guest(result, call.ctx.limits.max_result_bytes)
        except ResultTooLarge as exc:  # checked before conversion: nothing was copied
            return Reply(False, kind="too_large", message=exc.message, state=CallState.FAILED, raw=result)
        return Reply(True, value=value, raw=result)


def _for_guest(message: str) -> str:
    # Host diagnostics (an upstream's stderr tail) stay on the host: a server may log a token there.
    head, marker, _ = message.partition(" (stderr: ")
    return head + " (details are in the codemode host's server log)" if marker else message


_EXACT_DIGEST_BYTES = 256 * 1024
"""Arguments up to this size are digested whole; above it, long strings are sampled (head, tail, length), so a
megabyte argument costs microseconds on the call path, not milliseconds of JSON and hashing."""


def _digest(args: dict[str, Any], size: int) -> str:
    value: Any = args if size <= _EXACT_DIGEST_BYTES else _sampled(args, 0)
    try:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    prefix = "" if value is args else "~"  # "~": a sampled digest
    return prefix + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[: 16 - len(prefix)]


def _sampled(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return value if len(value) <= 4096 else f"\0str:{len(value)}:{value[:2048]}:{value[-2048:]}"
    if depth > 20:
        return repr(type(value))
    if isinstance(value, dict):
        return {str(k): _sampled(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_sampled(v, depth + 1) for v in value]
    return value


async def journaled(ctx: RunContext, tool: str, act: Callable[[], Awaitable[Reply]]) -> Reply:
    """Run ``act`` (a host op of the program's: ``mount``, ``save_skill``...) as one record of the execution's
    journal (server ``codemode``), so the audit log keeps it and it counts against ``Limits.max_tool_calls``."""
    index = ctx.journal.begin("codemode", tool, args_bytes=0)
    if index < 0 or index >= ctx.limits.max_tool_calls:
        # An op costs the host more than most calls (a mount starts a process, a save writes files): it counts
        # like a call, and one refused here counts too, as a refused call does.
        reply = Reply.refuse("quota", f"this execution reached its limit of {ctx.limits.max_tool_calls} tool calls")
        ctx.journal.finish(index, reply.state, duration_s=0.0, error=reply.message, error_kind=reply.kind)
        return reply
    started = time.perf_counter()
    reply = await act()
    ctx.journal.finish(
        index, reply.state, duration_s=time.perf_counter() - started, error=reply.message, error_kind=reply.kind
    )
    return reply


# -- the gate -------------------------------------------------------------------------------------


class Gate:
    """A chain of steps ending at the upstream servers. Build one with :func:`default_gate`."""

    def __init__(self, steps: Sequence[Step], upstreams: Upstreams) -> None:
        self.steps = list(steps)
        self._upstreams = upstreams
        self._terminal = UpstreamStep(upstreams)
        self._specs: dict[ToolRef, ToolSpec] | None = None
        self.ops: dict[str, OpHandler] = {}
        """Handlers of the guest's other requests by op name (the engine registers ``mount``...); an op
        without one is answered ``unknown``."""
        self.local_ops: dict[str, LocalOpHandler] = {}
        """Handlers of requests served on the calling thread (``fetch``): see :data:`LocalOpHandler`."""
        self.results: ResultStore | None = None
        """Where big results are kept for their sessions (None: none are; :func:`default_gate` sets it)."""

    def specs(self) -> Mapping[ToolRef, ToolSpec]:
        """Every tool a program may call right now (cached until :meth:`invalidate`: read on every call)."""
        if self._specs is None:
            self._specs = {s.ref: s for specs in self._upstreams.tools().values() for s in specs}
        return self._specs

    def servers(self) -> set[str]:
        return set(self._upstreams.tools())

    def unavailable(self) -> dict[str, str]:
        return self._upstreams.unavailable()

    def invalidate(self) -> None:
        """The upstream tools changed."""
        self._specs = None

    def context(
        self,
        *,
        session: str,
        limits: Limits,
        execution_id: str = "",
        ask: Asker | None = None,
        identity: str = "local",
        peer: str = "local",
    ) -> RunContext:
        """A fresh context for one execution (its clock starts now)."""
        # Every call within the quota is recorded, and the first refusal past it; later ones are counted.
        journal = Journal(max_records=limits.max_tool_calls + 1)
        clock = Clock(limits.wall_s)
        return RunContext(execution_id, session, limits, clock, journal, self, ask, identity=identity, peer=peer)

    async def call(self, ctx: RunContext, ref: ToolRef, args: dict[str, Any], args_bytes: int) -> Reply:
        """Pass one call through every step. Never raises for anything the program did."""
        call = Call(ctx, ref, args, args_bytes, self.specs().get(ref))
        steps = self.steps
        terminal = self._terminal

        async def run(position: int, current: Call) -> Reply:
            if position == len(steps):
                return await terminal(current, _end)
            return await steps[position](current, lambda c: run(position + 1, c))

        return await run(0, call)


async def _end(call: Call) -> Reply:  # pragma: no cover - the terminal step never calls on
    raise RuntimeError("the upstream step is the end of the chain")


def default_gate(
    upstreams: Upstreams,
    *,
    observers: list[Observer] | None = None,
    policy: Step | None = None,
    infer: Step | None = None,
    results: ResultStore | None = None,
    handles: bool = True,
) -> Gate:
    """The standard chain: journal, known tool, policy (:class:`codemode.policy.PolicyStep`), quota, result
    shaping, observers, result type inference (:class:`codemode.calls.infer.InferResultStep`), upstream.

    Big results are kept in ``results`` (a fresh :class:`ResultStore` when None) and read with the ``fetch``
    op; ``handles=False`` refuses results over ``Limits.max_result_bytes`` and hands the rest over whole.
    """
    store = (results or ResultStore()) if handles else None
    steps: list[Step] = [
        JournalStep(), KnownToolStep(), *([policy] if policy else []), QuotaStep(), ShapeResultStep(store)
    ]  # fmt: skip
    if observers is not None:
        steps.append(ObserveStep(observers))
    if infer is not None:
        steps.append(infer)
    gate = Gate(steps, upstreams)
    gate.results = store
    if store is not None:
        gate.local_ops[OP_FETCH] = FetchOp(store)
    return gate
