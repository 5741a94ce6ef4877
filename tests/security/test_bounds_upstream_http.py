"""Host memory stays bounded whatever a streamable-HTTP upstream answers (the HTTP side of
``test_bounds_upstream.py``).

A real MCP server (the SDK's, over uvicorn: ``tests/fixtures/servers/hostile_http.py``) answers a call with
a 200 MB body, a million content blocks, 30 MB of ``{},{},…``, a result nested 10,000 deep or a gzip body
that inflates to 200 MB, as a plain JSON body and as an event stream. Each call must fail at once with a
``too_large`` error naming the limit, the host's peak RSS (recorded) must stay under a bound the SDK's own
``response.aread()`` went far past, and the server must keep serving.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from codemode.calls import Gate, Limits, Reply, default_gate
from codemode.config import HttpServer, parse_config
from codemode.hub import Hub, ToolRef
from codemode.hub.bounded_stdio import MAX_MESSAGE_BYTES
from codemode.hub.mcp import McpUpstream
from tests.conftest import FIXTURES, free_port, wait_for_port
from tests.security.rss import PeakRss

# The peak RSS these attacks record is only meaningful in a process that has not run hundreds of other tests.
pytestmark = [pytest.mark.anyio, pytest.mark.memory]

SERVER = FIXTURES / "servers" / "hostile_http.py"
LIMIT = f"over the {MAX_MESSAGE_BYTES:,}-byte limit"


@pytest.fixture(scope="module", params=["json", "sse"])
async def hostile(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Hub, Gate, str]]:
    port = free_port()
    mode: str = request.param
    command = [sys.executable, str(SERVER), str(port), *(["--sse"] if mode == "sse" else [])]
    async with await anyio.open_process(command, stdout=None, stderr=None) as process:
        try:
            await wait_for_port(port, process, "the hostile HTTP server", timeout_s=8)
            entry = {"type": "http", "url": f"http://127.0.0.1:{port}/mcp", "call_timeout_s": 60}
            async with Hub(parse_config(json.dumps({"mcpServers": {"hostile": entry}}))) as hub:
                yield hub, default_gate(hub), mode
        finally:
            process.kill()


async def _call(gate: Gate, tool: str, size: int) -> tuple[Reply, float]:
    ctx = gate.context(session="http-attack", limits=Limits(wall_s=30))
    started = time.monotonic()
    reply = await gate.call(ctx, ToolRef("hostile", tool), {"size": size}, 20)
    return reply, time.monotonic() - started


async def _refused(
    hostile: tuple[Hub, Gate, str], tool: str, size: int, phrase: str, rss_mb: float, record: Any
) -> None:
    _, gate, mode = hostile
    with PeakRss(f"http upstream ({mode}): {tool}({size})", record) as rss:
        reply, took = await _call(gate, tool, size)
    # A call that waited for the whole body would end as the 20 s call timeout ("timeout"), not "too_large".
    assert not reply.ok and reply.kind == "too_large", (reply, f"{took:.1f} s")
    assert phrase in str(reply.message), reply.message
    assert rss.growth_mb < rss_mb, f"host RSS grew {rss.growth_mb:.0f} MB"
    ctx = gate.context(session="http-attack", limits=Limits(wall_s=30))
    echo = await gate.call(ctx, ToolRef("hostile", "echo"), {"text": "still here"}, 30)
    assert echo.ok and echo.value == "still here", echo


async def test_a_300mb_body_is_refused_without_being_kept(hostile: tuple[Hub, Gate, str], record_property: Any) -> None:
    # The transport keeps 128 MB of a line at most (measured growth 128-163 MB with the process's own churn);
    # one that kept the body whole would hold 300 MB and more.
    await _refused(hostile, "huge_body", 300, LIMIT, 200, record_property)


async def test_a_million_content_blocks_are_refused_before_they_are_parsed(
    hostile: tuple[Hub, Gate, str], record_property: Any
) -> None:
    await _refused(hostile, "many_blocks", 1_000_000, "JSON arrays and objects, over the limit of 250,000", 80,
                   record_property)  # fmt: skip


async def test_more_content_blocks_than_the_limit_are_refused_before_the_models_are_built(
    hostile: tuple[Hub, Gate, str], record_property: Any
) -> None:
    await _refused(hostile, "many_blocks", 20_000, "a result of 20,000 content blocks, over the limit of 10,000", 40,
                   record_property)  # fmt: skip


async def test_a_flood_of_empty_objects_is_refused_before_it_is_parsed(
    hostile: tuple[Hub, Gate, str], record_property: Any
) -> None:
    phrase = "JSON arrays and objects, over the limit of 250,000"
    await _refused(hostile, "brace_flood", 30, phrase, 80, record_property)


async def test_a_result_nested_10000_deep_is_refused_naming_the_limit(
    hostile: tuple[Hub, Gate, str], record_property: Any
) -> None:
    await _refused(hostile, "deep_result", 10_000, "nested deeper than the 200-level limit", 30, record_property)


async def test_a_compressed_body_is_refused_unread(hostile: tuple[Hub, Gate, str], record_property: Any) -> None:
    if hostile[2] == "sse":
        pytest.skip("the gzip body is sent as a plain JSON response")
    await _refused(hostile, "gzip_bomb", 200, "compressed as 'gzip', which is not accepted", 60, record_property)


async def test_a_flood_of_log_messages_before_a_result_never_reaches_the_session() -> None:
    # Before: each notification on the call's event stream went through the SDK (parsed, a task of the session's
    # dispatcher, teed to the message handler) at ~150 us of the host's CPU, to be discarded there: 200,000 log
    # messages held the call 30 s, past its 15 s timeout. The transport now drops them as it reads them (~3 s).
    port = free_port()
    command = [sys.executable, str(SERVER), str(port)]
    async with await anyio.open_process(command, stdout=None, stderr=None) as process:
        try:
            await wait_for_port(port, process, "the hostile HTTP server", timeout_s=8)
            upstream = McpUpstream("hostile", HttpServer(url=f"http://127.0.0.1:{port}/mcp"))
            seen: list[Any] = []

            async def on_message(message: Any) -> None:
                seen.append(message)

            upstream._on_message = on_message  # type: ignore[method-assign]  # what reaches the session's handler
            async with anyio.create_task_group() as tg:
                upstream.attach(tg)
                await upstream.start()
                assert upstream.error is None, upstream.error
                try:
                    result = await upstream.call_tool("notify_flood", {"size": 200_000}, timeout_s=15)
                finally:
                    await upstream.aclose()
        finally:
            process.kill()
    assert [block.text for block in result.content if block.type == "text"] == ["done"], result
    assert seen == [], f"{len(seen):,} notifications reached the session, the first {seen[0]!r}"
