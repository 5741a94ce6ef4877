"""Attacks on result handles: forged ids, another session's handle, hostile slice and size numbers, and
``fetch`` frames when no execution runs. Each leaves the executor healthy."""

from __future__ import annotations

import pytest

from codemode.executors import Limits
from codemode.protocol import encode_frame
from tests.conftest import Sandbox
from tests.security.helpers import ATTACK, assert_error, assert_healthy, run, run_value

pytestmark = pytest.mark.anyio

SMALL_HANDLES = Limits(wall_s=10, handle_bytes=10_000)
"""Any result over 10 KB is a handle (the demo's product list is ~100 KB)."""
BIG = "from stubs import inventory\nh = inventory.list_products(page_size=500)\n"
RAW = "import codemode_runtime\ndef fetch(**fields):\n    return codemode_runtime.request('fetch', **fields)\n"


async def test_a_forged_handle_id_is_refused(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        result = await run(ex, RAW + "fetch(handle='h-' + 'A' * 22, max_bytes=1000)", limits=SMALL_HANDLES)
        assert_error(result, "codemode_runtime.UnknownTool", "no such result handle in this session")
        await assert_healthy(ex)


async def test_another_sessions_handle_is_refused(demo_sandbox: Sandbox) -> None:
    # Under WASM a program can read anything in its own memory, the handle's id included: the id is worth
    # nothing outside the session it was made for.
    async with demo_sandbox.executor() as ex:
        stolen = await run_value(ex, BIG + "[type(h).__name__, h._id]", limits=SMALL_HANDLES)
        assert stolen[0] == "ResultHandle"
        other = await run(ex, RAW + f"fetch(handle={stolen[1]!r}, start=0, max_bytes=1000)", session="victim-b",
                          limits=SMALL_HANDLES)  # fmt: skip
        assert_error(other, "codemode_runtime.UnknownTool", "no such result handle in this session")
        forged = await run(ex, "h._id = 'h-forged'\nh[0]", limits=SMALL_HANDLES)  # a rewritten id finds nothing
        assert_error(forged, "codemode_runtime.UnknownTool", "no such result handle in this session")
        assert await run_value(ex, BIG + "h[0]['sku']", limits=SMALL_HANDLES)  # the owner still reads its own
        await assert_healthy(ex, (ATTACK, "victim-b"))


async def test_restricted_programs_cannot_reach_a_handles_id(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor("restricted") as ex:
        result = await run(ex, BIG + "h._id", limits=SMALL_HANDLES)
        assert not result.ok and result.error is not None and '"_id" is an invalid attribute name' in (
            result.error.message + result.error.traceback
        ), result.error
        await assert_healthy(ex)


@pytest.mark.parametrize(
    ("fields", "error", "phrase"),
    [
        ("start=-1", "BridgeError", "must not be negative"),
        ("start=0, stop=-(2**40)", "BridgeError", "must not be negative"),
        ("start=0, max_bytes=10**12", "QuotaExceeded", "max_bytes must be 1 to 4,194,304"),
        ("start=0, max_bytes=0", "QuotaExceeded", "max_bytes must be 1 to"),
        ("path=[2**62, 'sku']", "BridgeError", "does not lead to a part"),
    ],
)
async def test_hostile_numbers_in_a_fetch_are_refused(
    demo_sandbox: Sandbox, fields: str, error: str, phrase: str
) -> None:
    async with demo_sandbox.executor() as ex:
        code = BIG + RAW + f"args = dict(handle=h._id, max_bytes=1000)\nargs.update(dict({fields}))\nfetch(**args)"
        result = await run(ex, code, limits=SMALL_HANDLES)
        assert_error(result, f"codemode_runtime.{error}", phrase)
        await assert_healthy(ex)


async def test_huge_slices_and_indexes_behave_like_a_lists(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        value = await run_value(
            ex, BIG + "whole = h.to_json()\n"
            "[h[-10**18:10**18] == whole, h[10**18:] == [], h[::-(10**18)] == whole[::-(10**18)], len(h[-3:])]",
            limits=SMALL_HANDLES,
        )  # fmt: skip
        assert value == [True, True, True, 3]
        # A raw request for every item up to 2**62: clamped to the list, and answered within its max_bytes.
        raw = await run_value(
            ex, BIG + RAW + "import json\nr = fetch(handle=h._id, start=0, stop=2**62, max_bytes=1000)\n"
            "sent = json.dumps(r['items'], separators=(',', ':'), ensure_ascii=False).encode()\n"
            "[len(sent) <= 1000, 0 < r['next'] < len(h)]",
            limits=SMALL_HANDLES,
        )  # fmt: skip
        assert raw == [True, True]
        result = await run(ex, BIG + "h[-(10**18)]", limits=SMALL_HANDLES)
        assert_error(result, "IndexError", "list index out of range")
        await assert_healthy(ex)


async def test_fetch_outside_an_execution_is_refused(demo_sandbox: Sandbox) -> None:
    # Between executions the interpreter has no job (no session context, no limits): a fetch arriving then
    # must not be served. The guest cannot time such a frame, so the frame handler is driven directly.
    async with demo_sandbox.executor() as ex:
        handle_id = (await run_value(ex, BIG + "h._id", limits=SMALL_HANDLES))
        instance = ex._sessions[ATTACK]  # type: ignore[attr-defined]
        assert instance.job is None
        reply = instance.on_frame(None, encode_frame({"op": "fetch", "handle": handle_id, "max_bytes": 1000}))
        assert b'"kind":"bridge"' in reply and b"only allowed while code runs" in reply, reply
        await assert_healthy(ex)
