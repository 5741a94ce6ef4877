"""The bridge: a guest request in, a reply frame out, and never an exception (in process, no sandbox).

``serve_call``, ``serve_local_op`` and ``serve_op`` are what both executors call for every frame a program
sends; a frame they let through reaches the gate, an exception they let out reaches the executor's loop.
"""

from __future__ import annotations

import json
from typing import Any

import mcp_types as types
import pytest

from codemode.bridge import serve_call, serve_local_op, serve_op
from codemode.calls import Limits, Reply, default_gate
from codemode.calls.gate import Call, Gate, Next, RunContext
from codemode.hub.models import ToolRef, ToolSpec
from codemode.protocol import GUEST, HEADER, ProtocolError, check, unpack

pytestmark = pytest.mark.anyio

NO_HANDLE = "no such result handle in this session"


class Upstream:
    """One tool, ``notes.echo``, answered in process."""

    def __init__(self) -> None:
        self.calls: list[tuple[ToolRef, dict[str, Any]]] = []

    def tools(self) -> dict[str, list[ToolSpec]]:
        return {"notes": [ToolSpec("notes", "echo")]}

    def unavailable(self) -> dict[str, str]:
        return {}

    async def call_tool(self, ref: ToolRef, args: dict[str, Any]) -> types.CallToolResult:
        self.calls.append((ref, args))
        return types.CallToolResult(content=[types.TextContent(type="text", text=json.dumps(args))])


def _ctx(gate: Gate, **limits: Any) -> RunContext:
    return gate.context(session="s", limits=Limits(**limits))


def _reply(frame: bytes | None) -> dict[str, Any]:
    assert frame is not None
    message = unpack(frame[HEADER.size :])
    assert isinstance(message, dict)
    return message


def _error(frame: bytes | None) -> tuple[str, str]:
    error = _reply(frame)["error"]
    return error["kind"], error["message"]


def _protocol_message(message: dict[str, Any]) -> str:
    with pytest.raises(ProtocolError) as refused:
        check(message, GUEST)
    return str(refused.value)


@pytest.mark.parametrize(
    "fields",
    [{"server": 1, "tool": "echo"}, {"server": "notes", "tool": None}, {"server": "notes", "tool": "echo", "args": []}],
)
async def test_a_call_with_a_field_of_the_wrong_type_is_refused_before_the_gate(fields: dict[str, Any]) -> None:
    upstream = Upstream()
    ctx = _ctx(default_gate(upstream))
    kind, message = _error(await serve_call(ctx, {"op": "call", "args": {}, **fields}))
    assert (kind, message) == ("bridge", "a call needs string 'server' and 'tool' and an object 'args'")
    assert ctx.journal.records == [] and upstream.calls == []  # not even journaled: it never was a call


async def test_arguments_are_measured_in_utf8_bytes_against_the_request_limit() -> None:
    upstream = Upstream()
    args = {"text": "é" * 400}  # 800 bytes of UTF-8; 2,400 as ASCII-escaped JSON
    size = len(json.dumps(args, ensure_ascii=False, separators=(",", ":")).encode())
    ctx = _ctx(default_gate(upstream), max_request_bytes=size)
    assert _reply(await serve_call(ctx, {"op": "call", "server": "notes", "tool": "echo", "args": args}))["ok"]
    assert ctx.journal.records[0].args_bytes == size and upstream.calls == [(ToolRef("notes", "echo"), args)]


async def test_a_fetch_is_served_by_its_local_handler_and_not_once_cancelled() -> None:
    ctx = _ctx(default_gate(Upstream()))
    fetch = {"op": "fetch", "handle": "h-forged", "max_bytes": 1024}
    # The fetch handler itself answers (a made-up handle is not found), on either path.
    for served in (serve_local_op(ctx, fetch), await serve_op(ctx, fetch)):
        kind, message = _error(served)
        assert kind == "unknown" and message.startswith(NO_HANDLE), message
    assert serve_local_op(ctx, {"op": "mount", "name": "x", "params": {}}) is None  # served on the event loop
    malformed = {"op": "fetch", "handle": "h-forged", "max_bytes": "all"}
    assert _error(serve_local_op(ctx, malformed)) == ("bridge", _protocol_message(malformed))
    ctx.cancelled = True
    assert _error(serve_local_op(ctx, fetch))[0] == "cancelled"
    assert _error(await serve_op(ctx, fetch))[0] == "cancelled"


async def test_other_ops_reach_only_their_handlers_and_not_once_cancelled() -> None:
    ctx = _ctx(default_gate(Upstream()))
    served: list[dict[str, Any]] = []

    async def mount(ctx: RunContext, message: dict[str, Any]) -> Reply:
        served.append(message)
        return Reply(True, value={"module": message["name"]})

    ctx.gate.ops["mount"] = mount
    request = {"op": "mount", "name": "notes", "params": {}}
    assert _reply(await serve_op(ctx, request)) == {"ok": True, "result": {"module": "notes"}}
    assert _error(await serve_op(ctx, {"op": "unmount", "name": "notes"})) == (
        "unknown", "unmount() is not available in this codemode host"
    )  # fmt: skip
    malformed = {"op": "mount", "name": "notes"}
    assert _error(await serve_op(ctx, malformed)) == ("bridge", _protocol_message(malformed))
    for op in ("exec", ["fetch"], None):  # not an op a guest may send, not even a string
        assert _error(await serve_op(ctx, {"op": op}))[0] == "bridge"
    ctx.cancelled = True
    assert _error(await serve_op(ctx, request))[0] == "cancelled"
    assert served == [request]


async def test_a_host_fault_is_a_bridge_error_for_the_guest_never_an_exception() -> None:
    async def broken_step(call: Call, call_next: Next) -> Reply:
        raise RuntimeError("host bug")

    async def broken_op(ctx: RunContext, message: dict[str, Any]) -> Reply:
        raise RuntimeError("host bug")

    def broken_local_op(ctx: RunContext, message: dict[str, Any]) -> Reply:
        raise RuntimeError("host bug")

    gate = Gate([broken_step], Upstream())
    gate.ops["mount"] = broken_op
    gate.local_ops["fetch"] = broken_local_op
    ctx = _ctx(gate)
    fault = ("bridge", "RuntimeError: host bug")
    assert _error(await serve_call(ctx, {"op": "call", "server": "notes", "tool": "echo", "args": {}})) == fault
    assert _error(await serve_op(ctx, {"op": "mount", "name": "notes", "params": {}})) == fault
    assert _error(serve_local_op(ctx, {"op": "fetch", "handle": "h", "max_bytes": 1})) == fault
