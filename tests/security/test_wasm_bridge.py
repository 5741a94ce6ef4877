"""Attacks on the bridge: the shadowed fd_pwrite/fd_pread channel and the host's validation of tool calls."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from codemode.calls import default_gate
from codemode.calls.gate import Reply, RunContext
from codemode.executors import Limits, create_executor
from codemode.protocol import OP_SEARCH_DIRECTORY, encode_frame
from tests.conftest import Sandbox
from tests.security.helpers import ATTACK, assert_error, assert_healthy, run, run_value

pytestmark = pytest.mark.anyio

MAGIC = 0x7FFF_C0DE_0000_0000

RAW = f"""
import os, struct, json
from codemode_runtime import transport
MAGIC = {MAGIC}
def raw(frame):
    size = os.pwrite(1, frame, MAGIC)
    return os.pread(1, size, MAGIC)
def decode(reply):
    (n,) = struct.unpack_from('>I', reply)
    assert n == len(reply) - 4, (n, len(reply))
    unpack = getattr(transport, 'unpack', json.loads)
    return unpack(reply[4:])
def body(reply):
    return json.dumps(decode(reply), separators=(',', ':'))
def framed(payload):
    return struct.pack('>I', len(payload)) + payload
def jbody(text):
    return struct.pack('>I', len(text)) + text if hasattr(transport, 'unpack') else text
def message(obj):
    pack = getattr(transport, 'pack', lambda o: json.dumps(o).encode())
    return framed(pack(obj))
"""
"""Hand-made frames: ``raw(bytes)`` sends anything on the bridge channel and returns the host's reply;
``message(obj)`` frames a well-formed message the way the runtime does (the body format may evolve)."""


async def test_huge_arguments_are_refused_before_reaching_the_server(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        result = await run(ex, "from stubs import notes\nnotes.search_notes(query='x' * 10_000_000)")
        assert_error(result, "codemode_runtime.QuotaExceeded", "bytes; the limit is 4,194,304")
        caught = await run_value(
            ex,
            "from stubs import notes\ntry:\n    notes.search_notes(query='x' * 10_000_000)\n"
            "except ToolError as e:\n    kind = e.kind\nkind",
        )
        assert caught == "too_large"
        assert [(c.tool, c.ok) for c in result.calls] == [("search_notes", False)]
        await assert_healthy(ex)


async def test_malformed_frames_get_error_replies(demo_sandbox: Sandbox) -> None:
    code = RAW + (
        "replies = [\n"
        "    body(raw(b'garbage')),\n"
        "    body(raw(struct.pack('>I', 99) + b'{\"op\": \"call\"}')),\n"
        "    body(raw(struct.pack('>I', 2**32 - 1) + b'{}')),\n"
        "    body(raw(b'\\x00')),\n"
        "    body(raw(b'')),\n"
        "    body(raw(framed(b'not json at all'))),\n"
        "    body(raw(framed(b'\\xff\\xfe\\x00'))),\n"
        "    body(raw(framed(b'[1, 2, 3]'))),\n"
        "    body(raw(framed(b'\"just a string\"'))),\n"
        "    body(raw(framed(b'{\"no_op\": 1}'))),\n"
        "    body(raw(framed(b'{\"op\": 42}'))),\n"
        "    body(raw(message({'op': 'exec', 'code': 'import os'}))),\n"
        "    body(raw(framed(b'[' * 100_000 + b']' * 100_000))),\n"
        "]\n"
        "replies"
    )
    async with demo_sandbox.executor() as ex:
        replies = await run_value(ex, code)
        assert isinstance(replies, list) and len(replies) == 13
        for reply in replies:
            assert '"ok":false' in reply and '"kind":"bridge"' in reply, reply
        assert "frame header says 1734439522 bytes but 3 arrived" in replies[0]
        assert "frame header says 4294967295 bytes but 2 arrived" in replies[2]
        assert "unknown op 'exec'" in replies[11]
        await assert_healthy(ex)


async def test_hand_made_call_frames_are_validated_like_stub_calls(demo_sandbox: Sandbox) -> None:
    code = RAW + (
        "def call(obj):\n    return decode(raw(message(obj)))\n"
        "[call({'op': 'call', 'server': 1, 'tool': None, 'args': []}),\n"
        " call({'op': 'call', 'server': 'notes', 'tool': 'list_tags', 'args': 'x'}),\n"
        " call({'op': 'call', 'server': '../notes', 'tool': 'list_tags', 'args': {}}),\n"
        " call({'op': 'call', 'server': 'notes', 'tool': 'list_tags'})['ok']]"
    )
    async with demo_sandbox.executor() as ex:
        replies = await run_value(ex, code)
        assert isinstance(replies, list)
        assert replies[0]["error"]["kind"] == replies[1]["error"]["kind"] == "bridge"
        assert replies[2]["error"] == {
            "kind": "unknown",
            "message": "no server named '../notes' (connected: inventory, notes)",
        }
        assert replies[3] is True  # a well-formed hand-made call is an ordinary call
        await assert_healthy(ex)


async def test_nan_surrogates_and_huge_numbers_do_not_break_the_upstream(demo_sandbox: Sandbox) -> None:
    code = RAW + (
        'prefix = b\'{"op":"call","server":"notes","tool":"search_notes","args":{"query":\'\n'
        "[body(raw(framed(jbody(prefix + v + b'}}')))) for v in (b'NaN', b'Infinity', b'\"\\\\ud800\"', b'1e999',\n"
        "     b'9' * 5000, b'[' * 900 + b']' * 900)]"
    )
    async with demo_sandbox.executor() as ex:
        replies = await run_value(ex, code, limits=Limits(wall_s=20))
        assert isinstance(replies, list) and len(replies) == 6
        assert all('"ok":false' in r for r in replies), replies
        await assert_healthy(ex)
    assert {s.name: str(s.state) for s in demo_sandbox.hub.status()} == {"inventory": "ready", "notes": "ready"}


async def test_unknown_servers_and_tools(demo_sandbox: Sandbox) -> None:
    code = (
        "import codemode_runtime\nout = []\n"
        "for server, tool in [('nope', 'x'), ('notes', 'nope'), ('notes', '__init__'), ('', ''),\n"
        "                     ('notes/../inventory', 'list_products'), ('notes', 'list_tags\\x00')]:\n"
        "    try:\n        codemode_runtime.call(server, tool, {})\n        out.append('called')\n"
        "    except codemode_runtime.ToolError as e:\n        out.append(e.kind)\nout"
    )
    async with demo_sandbox.executor() as ex:
        result = await run(ex, code)
        assert result.ok, result.error
        assert result.value == ["unknown"] * 6
        assert all(not c.ok for c in result.calls) and len(result.calls) == 6
        await assert_healthy(ex)


async def test_tool_call_quota(demo_sandbox: Sandbox) -> None:
    code = "from stubs import notes\nfor _ in range(5):\n    notes.list_tags()"
    async with demo_sandbox.executor() as ex:
        result = await run(ex, code, limits=Limits(wall_s=10, max_tool_calls=2))
        assert_error(result, "codemode_runtime.QuotaExceeded", "reached its limit of 2 tool calls")
        assert [c.ok for c in result.calls] == [True, True, False]
        raw_third = RAW + (
            "from stubs import notes\nnotes.list_tags(); notes.list_tags()\n"
            "body(raw(message({'op': 'call', 'server': 'notes', 'tool': 'list_tags', 'args': {}})))"
        )
        reply = await run_value(ex, raw_third, limits=Limits(wall_s=10, max_tool_calls=2))
        assert isinstance(reply, str) and '"kind":"quota"' in reply  # hand-made frames count too
        await assert_healthy(ex)


async def test_oversized_results_are_refused(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        result = await run(
            ex, "from stubs import inventory\ninventory.list_products(page_size=3000)",
            limits=Limits(wall_s=10, max_result_bytes=10_000),
        )  # fmt: skip
        assert_error(result, "codemode_runtime.QuotaExceeded", "the limit is 10,000")
        await assert_healthy(ex)


async def test_pread_and_pwrite_at_other_offsets_are_refused(demo_sandbox: Sandbox) -> None:
    code = RAW + (
        "def attempt(fn):\n    try:\n        return repr(fn())\n    except OSError as e:\n        return e.errno\n"
        "fd = os.open('/scratch/f', os.O_RDWR | os.O_CREAT)\n"
        "[attempt(lambda: os.pwrite(1, b'x', 0)), attempt(lambda: os.pwrite(1, b'x', MAGIC + 2)),\n"
        " attempt(lambda: os.pwrite(1, b'x', MAGIC - 1)), attempt(lambda: os.pread(1, 10, MAGIC - 1)),\n"
        " attempt(lambda: os.pwrite(fd, b'x', 0)), attempt(lambda: os.pread(fd, 1, 0)),\n"
        " attempt(lambda: os.pread(0, 10, 0)), attempt(lambda: os.pread(1, 10, MAGIC + 2**40))]"
    )
    async with demo_sandbox.executor() as ex:
        assert await run_value(ex, code) == [58, 58, 58, 58, 58, 58, 58, "b''"]
        await assert_healthy(ex)


async def test_pread_only_returns_the_guests_own_last_reply(demo_sandbox: Sandbox) -> None:
    code = RAW + (
        "first = body(raw(message({'op': 'bogus'})))\n"
        "again = body(os.pread(1, 4096, MAGIC))\n"
        "vec = os.preadv(1, [bytearray(2), bytearray(4096)], MAGIC)\n"
        "m = message({'op': 'bogus2'})\n"
        "split = os.pwritev(1, [m[:6], m[6:]], MAGIC)\n"
        "[first == again, vec, body(os.pread(1, split, MAGIC))]"
    )
    async with demo_sandbox.executor() as ex:
        same, length, split_reply = await run_value(ex, code)
        assert same is True and isinstance(length, int)
        assert "unknown op 'bogus2'" in split_reply
        await assert_healthy(ex)


async def test_calls_outside_an_execution_are_refused(demo_sandbox: Sandbox) -> None:
    # Between executions the interpreter has no job, so no execution's gate, limits or journal: a call frame
    # arriving then (a guest that outlived its job) must be refused by the host, not served. The guest cannot
    # time such a frame, so the host's frame handler is driven directly, as the instance thread would.
    async with demo_sandbox.executor() as ex:
        assert await run_value(ex, "1") == 1
        instance = ex._sessions[ATTACK]  # type: ignore[attr-defined]
        assert instance.job is None
        frame = encode_frame({"op": "call", "server": "notes", "tool": "list_tags", "args": {}})
        reply = instance.on_frame(None, frame)
        assert b'"kind":"bridge"' in reply and b"tool calls are only allowed while code runs" in reply, reply
        await assert_healthy(ex)


async def test_a_request_other_than_a_call_is_served_on_the_event_loop(demo_sandbox: Sandbox) -> None:
    # A service op with no local handler goes to the gate's async handler, on the event loop (whose thread the
    # handler sees); its reply is the handler's own, and an op the gate has no handler for is refused by
    # name, not answered with nothing (a None reply would trap the guest).
    gate = default_gate(demo_sandbox.hub)
    threads: list[threading.Thread] = []

    async def search(ctx: RunContext, message: dict[str, Any]) -> Reply:
        threads.append(threading.current_thread())
        return Reply(True, value=[{"name": "found", "query": message["query"]}])

    gate.ops[OP_SEARCH_DIRECTORY] = search
    code = (
        "from codemode_runtime import search_directory, mount\n"
        "found = search_directory('weather')\n"
        "try:\n    mount('nothing')\nexcept ToolError as exc:\n    refused = (exc.kind, str(exc))\n"
        "[found, refused]"
    )
    root = demo_sandbox.root
    async with create_executor(
        "wasm",
        stubs_dir=demo_sandbox.stubs_dir,
        skills_dir=root / "skills",
        scratch_root=root / "scratch-ops",
        gate=gate,
        pool_size=1,
    ) as ex:
        found, refused = await run_value(ex, code)
        assert found == [{"name": "found", "query": "weather"}]
        assert threads == [threading.main_thread()]
        assert refused[0] == "unknown" and "mount() is not available in this codemode host" in refused[1]
        await assert_healthy(ex)
