"""Tool calls codemode writes itself to a handshake-era stdio server (``codemode.hub.lane``), against a real one.

``tests/fixtures/servers/legacy.py`` speaks only 2025-11-25 in raw JSON lines, as the TypeScript reference
servers do; each test attacks what the lane must do that the SDK's session did before: cancel on the
wire, drop a late answer, refuse an answer over a limit at once, check the output schema, notice a death;
and what the reader under it must do: read every answer of a chunk, end quietly at the hub's exit.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import anyio
import pytest

from codemode.calls.results import MAX_CONTENT_BLOCKS, ResultTooLarge
from codemode.config import parse_config
from codemode.errors import ToolCallError, ToolCallTimeout
from codemode.hub import Hub, ToolRef
from tests.conftest import FIXTURES

pytestmark = pytest.mark.anyio

LEGACY = {"command": sys.executable, "args": [str(FIXTURES / "servers" / "legacy.py")]}


def _hub(**entry: Any) -> Hub:
    return Hub(parse_config(json.dumps({"mcpServers": {"old": {**LEGACY, **entry}}})))


def _text(result: Any) -> str:
    return str(result.content[0].text)


async def test_a_request_of_the_server_with_a_lane_like_id_is_the_sessions() -> None:
    async with _hub() as hub:
        # The first call on the lane is codemode-1; the server's own ping carries the same id and a method.
        assert _text(await hub.call_tool(ToolRef("old", "asks_first"), {})) == "asked"
        # A lone surrogate (a program may pass one) travels as a JSON escape and comes back as it went.
        assert _text(await hub.call_tool(ToolRef("old", "echo"), {"text": "still here \ud800"})) == "still here \ud800"


async def test_an_abandoned_call_is_cancelled_on_the_wire_and_its_late_answer_dropped() -> None:
    async with _hub(call_timeout_s=0.3) as hub:
        with pytest.raises(ToolCallTimeout, match=r"^old\.slow: timed out after 0\.3 s"):
            await hub.call_tool(ToolRef("old", "slow"), {"seconds": 0.6})
        cancelled = json.loads(_text(await hub.call_tool(ToolRef("old", "cancelled"), {})))
        assert cancelled == ["codemode-1"]
        # Asked after the first, answered after its late answer: it must get its own.
        second = await hub.call_tool(ToolRef("old", "slow"), {"seconds": 0.5}, timeout_s=5)
        assert _text(second) == "slept 0.5 s"


async def test_an_answer_after_a_blank_line_in_the_same_read_is_not_dropped() -> None:
    # A line that yields nothing (here a blank one) must not end the reading of its chunk: the call would
    # wait for its timeout (5 s: it fails fast when it does).
    async with _hub(call_timeout_s=5) as hub:
        assert _text(await hub.call_tool(ToolRef("old", "blank_first"), {"text": "after a blank"})) == "after a blank"


async def test_two_answers_in_one_read_both_reach_their_calls() -> None:
    # The first answer is settled by the lane (the reader passes nothing on): the second, in the same chunk,
    # must still be read.
    answers: dict[str, str] = {}

    async def call(hub: Hub, text: str) -> None:
        answers[text] = _text(await hub.call_tool(ToolRef("old", "paired"), {"text": text}))

    async with _hub(call_timeout_s=5) as hub, anyio.create_task_group() as tg:
        tg.start_soon(call, hub, "first")
        tg.start_soon(call, hub, "second")
    assert answers == {"first": "first", "second": "second"}


async def test_an_answer_over_a_limit_fails_its_call_at_once() -> None:
    async with _hub(call_timeout_s=10) as hub:
        with pytest.raises(ResultTooLarge, match=f"over the limit of {MAX_CONTENT_BLOCKS:,}"):
            await hub.call_tool(ToolRef("old", "blocks"), {"count": MAX_CONTENT_BLOCKS + 1})
        assert _text(await hub.call_tool(ToolRef("old", "echo"), {"text": "next"})) == "next"


async def test_a_refused_late_answer_is_not_blamed_on_the_call_in_flight() -> None:
    async with _hub(call_timeout_s=0.3) as hub:
        with pytest.raises(ToolCallTimeout):
            await hub.call_tool(ToolRef("old", "blocks"), {"count": MAX_CONTENT_BLOCKS + 1, "after": 0.5})
        # In flight alone when the refused line (whose id is the abandoned call's) arrives.
        second = await hub.call_tool(ToolRef("old", "slow"), {"seconds": 0.6}, timeout_s=5)
        assert _text(second) == "slept 0.6 s"


@pytest.mark.parametrize("part", ["error", "result"])
async def test_a_malformed_answer_fails_its_call_at_once(part: str) -> None:
    async with _hub(call_timeout_s=10) as hub:
        with pytest.raises(ToolCallError, match=r"^old\.malformed: the server sent a malformed answer"):
            await hub.call_tool(ToolRef("old", "malformed"), {"part": part})


async def test_structured_content_is_checked_against_the_output_schema() -> None:
    async with _hub() as hub:
        counted = await hub.call_tool(ToolRef("old", "counted"), {})
        assert counted.structured_content == {"count": 3}
        with pytest.raises(ToolCallError, match="Invalid structured content returned by tool miscounted"):
            await hub.call_tool(ToolRef("old", "miscounted"), {})


async def test_a_result_is_checked_against_the_negotiated_versions_result_surface() -> None:
    # The surface of 2025-11-25 wants structured content to be an object; the SDK's own result model does not.
    async with _hub() as hub:
        refused = r"(?s)^old\.listed: ValidationError: .*structuredContent.*valid dictionary"
        with pytest.raises(ToolCallError, match=refused):
            await hub.call_tool(ToolRef("old", "listed"), {})
        assert _text(await hub.call_tool(ToolRef("old", "echo"), {"text": "still here"})) == "still here"


async def test_a_server_that_dies_mid_call_fails_the_call_and_comes_back() -> None:
    async with _hub(call_timeout_s=10) as hub:
        with pytest.raises(ToolCallError, match=r"^old\.die: the server died during the call"):
            await hub.call_tool(ToolRef("old", "die"), {})
        assert _text(await hub.call_tool(ToolRef("old", "echo"), {"text": "again"})) == "again"


async def test_a_hub_leaving_while_the_server_floods_stdout_ends_quietly(caplog: pytest.LogCaptureFixture) -> None:
    # The server exits at once, but a child of its keeps writing on its stdout: our own shutdown closes that
    # stream under the read, which is not a failure to report.
    caplog.set_level(logging.WARNING)
    async with _hub() as hub:
        assert _text(await hub.call_tool(ToolRef("old", "leave_flooding"), {})) == "flooding"
    assert [r.getMessage() for r in caplog.records if r.name.startswith("codemode")] == []


async def test_a_servers_own_error_is_its_message_cut_and_escaped_and_never_a_restart() -> None:
    # -32000 is the usual "server error" code, and also the code the SDK gives a closed connection: it was read
    # as the server dying, which restarted a healthy server (its state lost) and hid its message.
    async with _hub() as hub:
        before = _text(await hub.call_tool(ToolRef("old", "pid"), {}))
        with pytest.raises(ToolCallError) as refused:
            await hub.call_tool(ToolRef("old", "refuse"), {"code": -32000})
        assert str(refused.value) == "old.refuse: by must be >= 0 \\x1b[2J"
        assert _text(await hub.call_tool(ToolRef("old", "pid"), {})) == before
        with pytest.raises(ToolCallError) as long:
            await hub.call_tool(ToolRef("old", "refuse"), {"code": -32001, "size": 1_000_000})
        assert len(str(long.value)) < 20_100 and str(long.value).endswith("[cut at 20,000 characters]")
        assert _text(await hub.call_tool(ToolRef("old", "pid"), {})) == before


async def test_a_flood_of_tool_list_changes_costs_a_listing_or_two_not_one_each() -> None:
    # Each notification started a listing of its own: a server announcing without end and not reading its
    # stdin held a gigabyte of listings waiting to be written.
    async with _hub() as hub:
        assert _text(await hub.call_tool(ToolRef("old", "listings"), {})) == "1"
        assert _text(await hub.call_tool(ToolRef("old", "announce"), {"count": 500})) == "announced"
        await anyio.sleep(1.0)  # the listings the flood starts are done by then (each takes milliseconds)
        assert 2 <= int(_text(await hub.call_tool(ToolRef("old", "listings"), {}))) <= 3


async def test_a_listing_is_kept_small_as_it_arrives() -> None:
    # What a listing held was what the pages carried until the compiler cut it: 2 GB for 20 pages of 100 MB.
    from codemode.compiler.limits import MAX_DESCRIPTION, REFUSED
    from codemode.hub.mcp import MAX_TOOLS

    async with _hub(env={"LEGACY_OVERSIZED": "1"}) as hub:
        tools = {t.name: t for t in hub.tools()["old"]}
        assert len(tools) == MAX_TOOLS
        assert len(tools["verbose"].description) == MAX_DESCRIPTION
        assert tools["wide"].input_schema == {REFUSED: "inputSchema larger than 256 KB serialised (limit 256 KB)"}
        assert _text(await hub.call_tool(ToolRef("old", "echo"), {"text": "fine"})) == "fine"
