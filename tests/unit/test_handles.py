"""Result handles on the host: the store (budgets, eviction, ownership), the gate's shaping and ``fetch``."""

from __future__ import annotations

import json
from typing import Any

import mcp_types as types
import pytest

from codemode.bridge import serve_op
from codemode.calls import Limits, default_gate
from codemode.calls.fetch import MAX_FETCH_BYTES, json_size
from codemode.calls.gate import Gate, RunContext
from codemode.calls.handles import ResultStore
from codemode.hub.models import ToolRef, ToolSpec
from codemode.protocol import HEADER, unpack

pytestmark = pytest.mark.anyio

ROWS = [{"id": i, "name": f"row {i}", "tags": ["a", "b"]} for i in range(8000)]
DEEP = {"meta": {"n": 1}, "blob": "é" * 300_000, "rows": ROWS}


class Upstream:
    """``rows`` answers a big list (as JSON text), ``deep`` a big object (structured), ``text`` a big text."""

    def tools(self) -> dict[str, list[ToolSpec]]:
        return {"big": [ToolSpec("big", name) for name in ("rows", "deep", "text", "small", "number")]}

    def unavailable(self) -> dict[str, str]:
        return {}

    async def call_tool(self, ref: ToolRef, args: dict[str, Any]) -> types.CallToolResult:
        if ref.tool == "deep":
            return types.CallToolResult(content=[], structured_content=DEEP)
        text = {"rows": json.dumps(ROWS), "text": "line\n" * 200_000, "small": '"ok"', "number": "42"}[ref.tool]
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])


def _ctx(gate: Gate, session: str = "s", **limits: Any) -> RunContext:
    return gate.context(session=session, limits=Limits(**limits))


async def _call(ctx: RunContext, tool: str) -> Any:
    reply = await ctx.gate.call(ctx, ToolRef("big", tool), {}, 2)
    assert reply.ok, reply.message
    return reply


async def _fetch(ctx: RunContext, **fields: Any) -> dict[str, Any]:
    frame = await serve_op(ctx, {"op": "fetch", "max_bytes": 64 * 1024, **fields})
    message = unpack(frame[HEADER.size :])
    assert isinstance(message, dict)
    return message


# -- the store -------------------------------------------------------------------------------------


def test_the_store_keeps_within_the_session_budget_evicting_the_least_recently_read() -> None:
    store = ResultStore(session_bytes=100, total_bytes=1000)
    first = store.keep("s", "a", 40)
    second = store.keep("s", "b", 40)
    assert first is not None and second is not None
    assert store.get("s", first.id) is first  # first is now the most recently read: second goes next
    third = store.keep("s", "c", 40)
    assert third is not None
    assert store.get("s", second.id) is None and store.get("s", first.id) is first
    assert (store.session_used("s"), store.used, store.evicted) == (80, 80, 1)
    assert store.keep("s", "too big", 101) is None  # larger than a session may keep at all: refused
    assert store.get("s", first.id) is first  # and nothing was evicted for it


def test_the_store_keeps_within_the_host_budget_across_sessions() -> None:
    store = ResultStore(session_bytes=60, total_bytes=100)
    a = store.keep("a", "x", 50)
    b = store.keep("b", "y", 50)
    c = store.keep("c", "z", 50)  # the host's oldest (a's) goes
    assert a is not None and b is not None and c is not None
    assert store.get("a", a.id) is None and store.get("b", b.id) is b and store.get("c", c.id) is c
    assert store.used == 100


def test_a_handle_is_found_only_in_its_own_session_and_forgotten_with_it() -> None:
    store = ResultStore()
    kept = store.keep("alice", [1, 2], 5)
    assert kept is not None and kept.id.startswith("h-") and len(kept.id) > 20
    assert store.get("bob", kept.id) is None
    assert store.get("alice", "h-" + "A" * 22) is None
    store.forget("alice")
    assert store.get("alice", kept.id) is None and store.used == 0 and store.evicted == 0


# -- the gate --------------------------------------------------------------------------------------


async def test_a_result_over_the_threshold_comes_back_as_a_handle() -> None:
    gate = default_gate(Upstream())
    ctx = _ctx(gate)
    small = await _call(ctx, "small")
    assert small.handle is None and small.value == "ok"
    rows = await _call(ctx, "rows")
    assert rows.value is None and rows.handle is not None
    handle = rows.handle
    size = len(json.dumps(ROWS, separators=(",", ":")))
    assert (handle["type"], handle["length"], handle["path"]) == ("list", 8000, [])
    assert abs(handle["size"] - size) < 100 and handle["room"] == Limits().max_read_bytes
    assert handle["preview"].startswith('[{"id":0,"name":"row 0"') and handle["preview"].endswith("…")
    assert len(handle["preview"]) <= 300
    assert unpack(rows.frame(), start=HEADER.size) == {"ok": True, "handle": handle} and len(rows.frame()) < 2000
    assert ctx.journal.records[-1].result_bytes == handle["size"]  # the journal counts the real size
    assert gate.results is not None and gate.results.session_used("s") == handle["size"]


async def test_a_result_of_exactly_the_threshold_is_sent_whole_and_a_number_never_kept() -> None:
    gate = default_gate(Upstream())
    ctx = _ctx(gate)
    ctx.handles = False
    size = len((await _call(ctx, "rows")).frame()) - HEADER.size
    at = await _call(_ctx(gate, handle_bytes=size), "rows")
    over = await _call(_ctx(gate, handle_bytes=size - 1), "rows")
    assert (at.value, at.handle) == (ROWS, None) and over.handle is not None and over.handle["size"] == size
    number = await _call(_ctx(gate, handle_bytes=0), "number")  # only a list, an object or a text is kept
    assert (number.value, number.handle) == (42, None)


async def test_without_handles_a_big_result_is_sent_whole_or_refused() -> None:
    gate = default_gate(Upstream())
    ctx = _ctx(gate)
    ctx.handles = False  # a client's direct call: nobody could read a handle
    whole = await _call(ctx, "rows")
    assert whole.handle is None and whole.value == ROWS
    ctx = _ctx(gate, max_result_bytes=100_000)
    ctx.handles = False
    refused = await ctx.gate.call(ctx, ToolRef("big", "rows"), {}, 2)
    assert (refused.kind, refused.ok) == ("too_large", False)


async def test_a_result_larger_than_a_session_keeps_is_refused() -> None:
    gate = default_gate(Upstream(), results=ResultStore(session_bytes=100_000))
    ctx = _ctx(gate)
    reply = await ctx.gate.call(ctx, ToolRef("big", "rows"), {}, 2)
    assert (reply.ok, reply.kind) == (False, "too_large")
    assert "a session keeps at most 100,000" in str(reply.message)


# -- fetch -----------------------------------------------------------------------------------------


async def test_fetch_reads_a_list_in_bounded_chunks() -> None:
    ctx = _ctx(default_gate(Upstream()))
    handle = (await _call(ctx, "rows")).handle
    items: list[Any] = []
    start = 0
    while start < handle["length"]:
        answer = await _fetch(ctx, handle=handle["id"], start=start)
        assert answer["ok"], answer
        chunk = answer["result"]
        assert json_size(chunk["items"]) <= 64 * 1024 and chunk["items"]
        items += chunk["items"]
        start = chunk["next"]
    assert items == ROWS
    one = await _fetch(ctx, handle=handle["id"], path=[42])
    assert one["result"] == {"value": ROWS[42]}
    assert (await _fetch(ctx, handle=handle["id"], start=10, stop=12))["result"]["items"] == ROWS[10:12]


async def test_fetch_answers_a_big_part_with_a_handle_on_it() -> None:
    ctx = _ctx(default_gate(Upstream()))
    handle = (await _call(ctx, "deep")).handle
    assert handle["type"] == "object" and handle["length"] == 3
    keys = await _fetch(ctx, handle=handle["id"], start=0, keys=True)
    assert keys["result"]["items"] == ["meta", "blob", "rows"]
    assert (await _fetch(ctx, handle=handle["id"], path=["meta"]))["result"] == {"value": {"n": 1}}
    blob = (await _fetch(ctx, handle=handle["id"], path=["blob"]))["result"]["handle"]
    assert (blob["type"], blob["length"], blob["path"], blob["size"]) == ("text", 300_000, ["blob"], 600_000)
    text = await _fetch(ctx, handle=handle["id"], path=["blob"], start=0)
    piece = text["result"]["text"]
    assert len(piece.encode()) <= 64 * 1024 and piece == "é" * len(piece) and text["result"]["next"] == len(piece)
    # Items of an object, in order: the big ones as descriptors in their place.
    pairs = (await _fetch(ctx, handle=handle["id"], start=1, stop=2))["result"]
    assert pairs["items"] == [["blob", None]] and pairs["handles"]["0"]["path"] == ["blob"]
    assert (await _fetch(ctx, handle=handle["id"], path=["nope"]))["result"] == {"missing": True}


@pytest.mark.parametrize(
    ("fields", "kind", "phrase"),
    [
        ({"max_bytes": 0}, "too_large", "max_bytes must be 1 to"),
        ({"max_bytes": MAX_FETCH_BYTES + 1}, "too_large", "max_bytes must be 1 to"),
        ({"start": -1}, "bridge", "must not be negative"),
        ({"start": 0, "stop": -5}, "bridge", "must not be negative"),
        ({"path": [10**9, "id"]}, "bridge", "does not lead to a part"),
        ({"path": ["x", 1]}, "bridge", "does not lead to a part"),
        ({"path": [0, "id"], "start": 0}, "bridge", "has no items"),
        ({"handle": "h-forged"}, "unknown", "no such result handle in this session"),
    ],
)
async def test_fetch_checks_every_number_before_any_work(fields: dict[str, Any], kind: str, phrase: str) -> None:
    gate = default_gate(Upstream())
    ctx = _ctx(gate)
    handle = (await _call(ctx, "rows")).handle
    answer = await _fetch(ctx, **{"handle": handle["id"], **fields})
    assert answer["ok"] is False and answer["error"]["kind"] == kind and phrase in answer["error"]["message"], answer


def test_past_the_hosts_budget_the_client_keeping_the_most_gives_way() -> None:
    # Host-wide eviction took the least recently used result of any session: a client filling its own sessions
    # pushed out another's only result (and the error told that client it had used up its own budget).
    store = ResultStore(session_bytes=100, total_bytes=300)
    alices = store.keep("a", "alice's", 100, client="identity:alice")
    assert alices is not None
    for i in range(6):  # bob, in sessions of his own, keeps twice what the host holds
        assert store.keep(f"b{i}", f"bob's {i}", 100, client="identity:bob") is not None
        assert store.get("a", alices.id) is alices, i
    assert store.used == 300 and store.evicted == 4
    # A client that would keep as much as the largest gives way itself, oldest first.
    assert store.keep("a2", "alice's second", 100, client="identity:alice") is not None
    assert store.get("a", alices.id) is None and store.used == 300 and store.session_used("b5") == 100
