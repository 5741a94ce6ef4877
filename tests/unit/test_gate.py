"""The call gate, step by step, against an in-process upstream (no servers, no sandbox)."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import anyio
import mcp_types as types
import pytest

from codemode.bridge import serve_call
from codemode.calls import CallState, Clock, Limits, Reply, default_gate
from codemode.calls.gate import Call, Gate, KnownToolStep, Next, QuotaStep, RunContext
from codemode.errors import ToolCallError
from codemode.hub.models import ToolRef, ToolSpec
from codemode.protocol import HEADER, MAX_DEPTH

pytestmark = pytest.mark.anyio


LONG = 'a "quoted" é line\n' * 3000
"""A text over ``BLOB_MIN``: the gate measures it without encoding it."""


class Upstream:
    """Tools answered in process; ``slow`` sleeps, ``broken`` fails at the protocol level."""

    def __init__(self) -> None:
        self.calls: list[tuple[ToolRef, dict[str, Any]]] = []
        self.specs = [
            ToolSpec("notes", "list_tags", annotations={"readOnlyHint": True}),
            ToolSpec("notes", "create_note"),
            ToolSpec("notes", "slow"),
            ToolSpec("notes", "broken"),
            ToolSpec("notes", "big"),
            ToolSpec("notes", "structured"),
            ToolSpec("notes", "long"),
            ToolSpec("notes", "deep"),
        ]

    def tools(self) -> dict[str, list[ToolSpec]]:
        return {"notes": self.specs}

    def unavailable(self) -> dict[str, str]:
        return {}

    async def call_tool(self, ref: ToolRef, args: dict[str, Any]) -> types.CallToolResult:
        self.calls.append((ref, args))
        if ref.tool == "slow":
            await anyio.sleep(10)
        if ref.tool == "broken":
            raise ToolCallError(ref.server, ref.tool, "the server died during the call (stderr: token=s3cret)")
        if ref.tool == "create_note" and args.get("title") == "":
            return types.CallToolResult(content=[types.TextContent(type="text", text="title is empty")], is_error=True)
        if ref.tool == "structured":  # structured content is measured only as the guest's frame is made
            return types.CallToolResult(content=[], structured_content={"rows": ["x" * 100] * 50})
        if ref.tool == "deep":  # only an in-process upstream can answer this: a real one's parser stops sooner
            deep: Any = []
            for _ in range(5000):
                deep = [deep]
            return types.CallToolResult(content=[], structured_content={"deep": deep})
        if ref.tool == "long":
            return types.CallToolResult(content=[types.TextContent(type="text", text=LONG)])
        text = "x" * 5000 if ref.tool == "big" else json.dumps({"ok": ref.tool})
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])


def _ctx(gate: Gate, **limits: Any) -> RunContext:
    return gate.context(session="s", limits=Limits(**limits))


async def _call(ctx: RunContext, tool: str, **args: Any) -> Reply:
    return await ctx.gate.call(ctx, ToolRef("notes", tool), args, len(json.dumps(args)))


async def test_every_call_is_journaled_with_its_state() -> None:
    upstream = Upstream()
    ctx = _ctx(default_gate(upstream), max_tool_calls=4, max_result_bytes=1000)
    started = time.perf_counter()
    ok = await _call(ctx, "list_tags")
    tool_error = await _call(ctx, "create_note", title="")
    unknown = await ctx.gate.call(ctx, ToolRef("nope", "x"), {}, 2)
    big = await _call(ctx, "big")
    quota = await _call(ctx, "list_tags")
    assert ok.ok and ok.value == {"ok": "list_tags"}
    assert (tool_error.kind, unknown.kind, big.kind, quota.kind) == ("tool", "unknown", "too_large", "quota")
    assert unknown.message == "no server named 'nope' (connected: notes)"
    records = ctx.journal.records
    assert [(r.tool, r.state) for r in records] == [
        ("list_tags", CallState.DONE), ("create_note", CallState.FAILED), ("x", CallState.REFUSED),
        ("big", CallState.FAILED), ("list_tags", CallState.REFUSED),
    ]  # fmt: skip
    assert records[0].read_only and not records[1].read_only and records[0].result_bytes > 0
    assert [r.result_bytes for r in records[1:]] == [0, 0, 0, 0]  # nothing was handed to the guest
    assert records[0].args_digest != records[1].args_digest and len(records[0].args_digest) == 16
    assert 0 <= records[0].duration_s <= time.perf_counter() - started  # the call's own time, from its start
    # Refused calls never reached the upstream; the oversized result did (its effect happened).
    assert [ref.tool for ref, _ in upstream.calls] == ["list_tags", "create_note", "big"]


async def test_a_call_is_in_flight_while_it_is_awaited_and_stays_so_at_the_deadline() -> None:
    upstream = Upstream()
    ctx = _ctx(default_gate(upstream), wall_s=0.5)
    seen: list[CallState] = []

    async def peek() -> None:
        with anyio.fail_after(5):
            while not upstream.calls:  # the upstream has the call: it is being awaited  # noqa: ASYNC110
                await anyio.sleep(0.01)
        seen.append(ctx.journal.records[0].state)

    async with anyio.create_task_group() as tg:
        tg.start_soon(peek)
        reply = await _call(ctx, "slow")
    assert seen == [CallState.IN_FLIGHT]
    assert reply.kind == "timeout" and ctx.journal.records[0].state is CallState.IN_FLIGHT
    late = await _call(ctx, "list_tags")  # nothing is sent once the time is up
    assert late.kind == "timeout" and ctx.journal.records[1].state is CallState.REFUSED


async def test_upstream_failures_keep_host_diagnostics_on_the_host() -> None:
    ctx = _ctx(default_gate(Upstream()))
    reply = await _call(ctx, "broken")
    assert reply.kind == "upstream" and b"s3cret" not in reply.frame() and "server log" in str(reply.message)
    assert ctx.journal.records[0].state is CallState.FAILED


async def test_a_paused_clock_does_not_count() -> None:
    now = [100.0]
    clock = Clock(10, now=lambda: now[0])
    changes: list[float] = []
    clock.on_change(lambda: changes.append(clock.deadline))
    with clock.paused():
        now[0] += 60  # a person took a minute to answer
        assert clock.remaining() == float("inf") and not clock.expired()
    assert clock.remaining() == 10 and changes == [float("inf"), 170.0]
    now[0] += 10
    assert clock.expired()


async def test_a_step_added_to_the_chain_sees_and_can_refuse_calls() -> None:
    upstream = Upstream()
    gate = default_gate(upstream)

    class NoWrites:
        async def __call__(self, call: Call, call_next: Next) -> Reply:
            if call.spec is not None and not (call.spec.annotations or {}).get("readOnlyHint"):
                return Reply.refuse("denied", f"{call.ref} writes; this session is read-only")
            return await call_next(call)

    gate.steps.insert(3, NoWrites())  # after journal, known tool and quota: a policy's place
    ctx = _ctx(gate)
    denied = await _call(ctx, "create_note", title="t")
    allowed = await _call(ctx, "list_tags")
    assert denied.kind == "denied" and allowed.ok
    assert [r.state for r in ctx.journal.records] == [CallState.REFUSED, CallState.DONE]
    assert [ref.tool for ref, _ in upstream.calls] == ["list_tags"]


async def test_a_tool_that_only_runs_as_a_task_is_refused_with_why() -> None:
    upstream = Upstream()
    upstream.specs.append(ToolSpec("notes", "research", task_support="required"))
    ctx = _ctx(default_gate(upstream))
    reply = await _call(ctx, "research")
    assert (reply.kind, reply.state) == ("unknown", CallState.REFUSED)
    assert reply.message == (
        "notes.research can only be called as a task (execution.taskSupport: required); codemode does not support "
        "that yet"
    )
    assert upstream.calls == []


async def test_gate_caches_tool_specs_until_invalidated() -> None:
    upstream = Upstream()
    gate = default_gate(upstream)
    ctx = _ctx(gate)
    assert (await _call(ctx, "later")).kind == "unknown"
    upstream.specs.append(ToolSpec("notes", "later"))
    assert (await _call(ctx, "later")).kind == "unknown"  # cached: read on every call
    gate.invalidate()
    assert (await _call(ctx, "later")).ok


async def test_oversized_arguments_are_refused_before_the_upstream() -> None:
    upstream = Upstream()
    ctx = _ctx(default_gate(upstream), max_request_bytes=1000)
    reply = await _call(ctx, "create_note", title="x" * 2000)
    assert (reply.kind, reply.state) == ("too_large", CallState.REFUSED) and "the limit is 1,000" in str(reply.message)
    assert upstream.calls == []
    assert (await _call(ctx, "create_note", title="x" * 900)).ok
    assert len(json.dumps({"title": "x" * 987})) == 1000
    assert (await _call(ctx, "create_note", title="x" * 987)).ok  # the limit itself is allowed
    assert (await _call(ctx, "create_note", title="x" * 988)).kind == "too_large"


async def test_a_structured_result_over_the_limit_is_withheld() -> None:
    upstream = Upstream()
    ctx = _ctx(default_gate(upstream), max_result_bytes=2000)
    reply = await _call(ctx, "structured")
    assert (reply.kind, reply.state) == ("too_large", CallState.FAILED) and "the limit is 2,000" in str(reply.message)
    assert [ref.tool for ref, _ in upstream.calls] == ["structured"]  # it ran; only the answer is withheld
    assert (await _call(_ctx(default_gate(upstream), max_result_bytes=10_000), "structured")).ok


async def test_a_result_nested_past_the_recursion_limit_is_failed_as_too_large() -> None:
    ctx = _ctx(default_gate(Upstream()))
    reply = await _call(ctx, "deep")
    assert (reply.kind, reply.state) == ("too_large", CallState.FAILED)
    assert reply.message == f"the result nests deeper than the {MAX_DEPTH}-level limit"


async def test_a_cancelled_execution_sends_no_more_calls() -> None:
    upstream = Upstream()
    ctx = _ctx(default_gate(upstream))
    message = {"op": "call", "server": "notes", "tool": "list_tags", "args": {}}
    assert b'"ok":true' in await serve_call(ctx, message)
    ctx.cancelled = True  # the executor's teardown sets this while the guest may still be sending
    reply = await serve_call(ctx, message)
    assert b'"kind":"cancelled"' in reply, reply
    assert [ref.tool for ref, _ in upstream.calls] == ["list_tags"]


async def test_a_chain_that_skipped_the_journal_lets_no_call_through_the_quota() -> None:
    # Defence in depth: a call the journal never saw has no index, and the quota step refuses it.
    upstream = Upstream()
    gate = Gate([KnownToolStep(), QuotaStep()], upstream)
    reply = await _call(_ctx(gate), "list_tags")
    assert (reply.kind, upstream.calls) == ("quota", [])


async def test_a_result_of_exactly_the_limit_is_handed_over() -> None:
    upstream = Upstream()
    whole = await _call(_ctx(default_gate(upstream), max_result_bytes=10_000), "structured")
    size = len(whole.frame()) - HEADER.size  # what the guest reads, without the frame's length header
    assert (await _call(_ctx(default_gate(upstream), max_result_bytes=size), "structured")).ok
    assert (await _call(_ctx(default_gate(upstream), max_result_bytes=size - 1), "structured")).kind == "too_large"


async def test_a_long_text_result_is_measured_as_the_frame_that_carries_it() -> None:
    upstream = Upstream()
    ctx = _ctx(default_gate(upstream))
    whole = await _call(ctx, "long")
    size = len(whole.frame()) - HEADER.size
    assert whole.ok and whole.value == LONG and ctx.journal.records[0].result_bytes == size
    assert (await _call(_ctx(default_gate(upstream), max_result_bytes=size), "long")).ok
    assert (await _call(_ctx(default_gate(upstream), max_result_bytes=size - 1), "long")).kind == "too_large"


async def test_the_journal_keeps_the_first_refusal_past_the_quota_and_counts_the_rest() -> None:
    upstream = Upstream()
    ctx = _ctx(default_gate(upstream), max_tool_calls=2)
    replies = [await _call(ctx, "list_tags") for _ in range(5)]
    assert [r.kind for r in replies] == [None, None, "quota", "quota", "quota"]
    assert [r.state for r in ctx.journal.records] == [CallState.DONE, CallState.DONE, CallState.REFUSED]
    assert ctx.journal.overflow == 2 and len(upstream.calls) == 2


async def test_arguments_are_digested_whole_up_to_256_kib_then_sampled_and_marked() -> None:
    ctx = _ctx(default_gate(Upstream()), max_request_bytes=10**7)
    at_limit = {"title": "x" * (256 * 1024 - len(json.dumps({"title": ""})))}
    over = {"title": at_limit["title"] + "x"}
    assert (await _call(ctx, "create_note", **at_limit)).ok and (await _call(ctx, "create_note", **over)).ok
    exact, sampled = (record.args_digest for record in ctx.journal.records)
    canonical = json.dumps(at_limit, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert exact == hashlib.sha256(canonical.encode()).hexdigest()[:16]
    assert sampled.startswith("~") and len(sampled) == 16  # "~": an auditor knows only a sample was hashed
    # The exact digest is the canonical JSON's (sorted keys, UTF-8): an auditor recomputes it from the arguments.
    unsorted = {"zeta": "é ✓", "alpha": [1, {"y": None, "b": True}]}
    await _call(ctx, "create_note", **unsorted)
    await _call(ctx, "create_note", **dict(reversed(unsorted.items())))
    first, again = (record.args_digest for record in ctx.journal.records[-2:])
    canonical = json.dumps(unsorted, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert first == again == hashlib.sha256(canonical.encode()).hexdigest()[:16]
    # The sample handles every JSON value, and its depth cut holds in lists too (no recursion limit to hit).
    deep: Any = "bottom"
    for _ in range(5000):
        deep = [deep]
    big = {"n": 1, "flag": True, "rows": ["y" * 300_000, 2, None], "deep": deep}
    assert (await ctx.gate.call(ctx, ToolRef("notes", "create_note"), big, 400_000)).ok
    assert ctx.journal.records[-1].args_digest.startswith("~")


async def test_a_sampled_digest_keeps_long_strings_ends_and_values_down_to_depth_20() -> None:
    ctx = _ctx(default_gate(Upstream()), max_request_bytes=10**7)

    async def digest(middle: str = "m", short: str = "s", leaf: int = 0, depth: int = 20) -> str:
        deep: Any = leaf  # at `depth`: the arguments are depth 0, their "deep" value depth 1
        for level in range(depth - 1):
            deep = [deep] if level % 2 else {"k": deep}  # lists and objects both count a level
        args = {"long": "y" * 150_000 + middle + "y" * 150_000, "short": "s" * 4095 + short, "deep": deep}
        assert (await ctx.gate.call(ctx, ToolRef("notes", "create_note"), args, 400_000)).ok
        return ctx.journal.records[-1].args_digest

    base = await digest()
    assert await digest(middle="M") == base  # a long string's middle is not sampled (its ends and length are)
    assert await digest(short="S") != base  # a string up to 4 KB is kept whole
    assert await digest(leaf=1) != base  # values down to depth 20 count
    deepest = await digest(depth=21)
    assert await digest(depth=21, leaf=1) == deepest != base  # below it, only the depth's type is kept


async def test_observers_see_each_answered_call_once() -> None:
    seen: list[str] = []
    gate = default_gate(Upstream(), observers=[lambda ref, args, result: seen.append(ref.tool)])
    ctx = _ctx(gate)
    for tool in ("list_tags", "nope", "create_note"):
        await _call(ctx, tool, title="")
    assert seen == ["list_tags", "create_note"]  # the tool's own error is an answer; an unknown tool has none


async def test_a_gate_without_handles_hands_a_big_result_over_whole() -> None:
    ctx = _ctx(default_gate(Upstream(), handles=False), handle_bytes=1000)
    reply = await _call(ctx, "big")
    assert reply.ok and reply.handle is None and reply.value == "x" * 5000


async def test_names_a_program_makes_up_are_kept_to_their_head_in_replies_journal_and_audit(tmp_path: Any) -> None:
    # 200 calls naming a megabyte-long server and tool: a 600 MB audit line and 2 GB of host memory before.
    from codemode.audit import AuditLog, ExecutionEntry

    ctx = _ctx(default_gate(Upstream()), max_tool_calls=200)
    name = "S" * 1_000_000
    replies = [await ctx.gate.call(ctx, ToolRef(name, name), {}, 2) for _ in range(200)]
    replies.append(await ctx.gate.call(ctx, ToolRef("notes", name), {}, 2))
    assert {r.kind for r in replies} == {"unknown"}
    assert max(len(r.message or "") for r in replies) < 1_000
    assert replies[-1].message is not None and "has no tool 'SSS" in replies[-1].message
    assert "[1,000,000 characters]" in replies[0].message  # says it was cut, and from what
    records = ctx.journal.records
    assert len(records) == 201 and max(len(r.server) + len(r.tool) + len(r.error or "") for r in records) < 2_000
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append(
        ExecutionEntry(session="s", code="...", executor="wasm", ok=False, duration_s=0, output_chars=0, calls=records)
    )
    assert (tmp_path / "audit.jsonl").stat().st_size < 400_000


async def test_a_long_upstream_error_is_recorded_to_its_head() -> None:
    class Loud(Upstream):
        async def call_tool(self, ref: ToolRef, args: dict[str, Any]) -> types.CallToolResult:
            return types.CallToolResult(content=[types.TextContent(type="text", text="e" * 100_000)], is_error=True)

    ctx = _ctx(default_gate(Loud()))
    reply = await _call(ctx, "create_note")
    assert reply.kind == "tool" and len(reply.message or "") > 10_000  # the program reads far more of it
    (record,) = ctx.journal.records
    assert record.error is not None and len(record.error) < 2_100 and record.error.endswith(" characters]")


async def test_a_host_op_is_journaled_and_counts_against_the_call_quota() -> None:
    # `journaled` wraps the program's host ops (mount, save_skill): each is one record of the execution,
    # server "codemode", with no argument bytes, and it spends the same quota as a tool call.
    from codemode.calls.gate import journaled

    ctx = _ctx(default_gate(Upstream()), max_tool_calls=3)
    ran: list[str] = []

    async def act() -> Reply:
        ran.append("op")
        await anyio.sleep(0.01)
        return Reply(ok=True, value="saved")

    started = time.perf_counter()
    first = await journaled(ctx, "save_skill(a)", act)
    took = time.perf_counter() - started
    assert first.ok and first.value == "saved"
    await _call(ctx, "list_tags")
    third = await journaled(ctx, "mount(x)", act)  # the third of three: still within the quota
    assert third.ok and ran == ["op", "op"]
    refused = [await journaled(ctx, "mount(y)", act) for _ in range(3)]
    assert [r.kind for r in refused] == ["quota"] * 3 and ran == ["op", "op"]  # never acted
    assert refused[0].message == "this execution reached its limit of 3 tool calls"
    records = ctx.journal.records
    assert [(r.server, r.tool, r.state) for r in records] == [
        ("codemode", "save_skill(a)", CallState.DONE), ("notes", "list_tags", CallState.DONE),
        ("codemode", "mount(x)", CallState.DONE), ("codemode", "mount(y)", CallState.REFUSED),
    ]  # fmt: skip
    assert ctx.journal.overflow == 2  # refused past a full journal: counted, not recorded
    assert [r.args_bytes for r in records if r.server == "codemode"] == [0, 0, 0]
    assert 0 < records[0].duration_s <= took  # the op's own time, from its start
    assert records[3].duration_s == 0.0 and records[3].error == refused[0].message
