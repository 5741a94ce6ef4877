"""The hub over in-process FakeUpstreams: calls, error mapping, degradation, mount/unmount, change events."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import mcp_types as types
import pytest

from codemode.config import Config, StdioServer
from codemode.errors import ToolCallError, UpstreamError
from codemode.hub import FakeServerDied, FakeUpstream, Hub, ToolRef, ToolSpec

pytestmark = pytest.mark.anyio

CALC_TOOLS: list[ToolSpec | dict[str, Any]] = [
    ToolSpec("calc", "add", input_schema={"type": "object", "properties": {"a": {}, "b": {}}}),
    {"name": "greet", "description": "Say hello.", "inputSchema": {"type": "object"}},
    {"name": "primes"},
    {"name": "boom"},
    {"name": "die"},
    {"name": "slow"},
    {"name": "refuse"},
]


async def calc(tool: str, args: dict[str, Any]) -> object:
    if tool == "add":
        return {"sum": args["a"] + args["b"]}
    if tool == "greet":
        return f"hello {args['name']}"
    if tool == "primes":
        return [2, 3, 5]
    if tool == "boom":
        raise RuntimeError("boom")
    if tool == "die":
        raise FakeServerDied
    if tool == "slow":
        await anyio.sleep(10)
    return types.CallToolResult(content=[types.TextContent(text="not like that")], is_error=True)


class Changes:
    """An ``on_tools_changed`` callback that records what it was told and lets a test wait for it."""

    def __init__(self, effect: Callable[[str], Any] | None = None) -> None:
        self.seen: list[str] = []
        self.effect = effect
        self._arrived = anyio.Event()

    async def __call__(self, server: str) -> None:
        self.seen.append(server)
        self._arrived.set()
        if self.effect is not None:
            result = self.effect(server)
            if result is not None:
                await result

    async def wait_for(self, count: int) -> list[str]:
        with anyio.fail_after(5):
            while len(self.seen) < count:
                self._arrived = anyio.Event()
                await self._arrived.wait()
        return self.seen


@pytest.fixture
async def changes() -> Changes:
    return Changes()


@pytest.fixture
async def fakes() -> dict[str, FakeUpstream]:
    return {
        "calc": FakeUpstream("calc", CALC_TOOLS, calc, instructions="Arithmetic."),
        "broken": FakeUpstream("broken", [{"name": "x"}], fail_start="command not found: nope"),
    }


@pytest.fixture
async def hub(fakes: dict[str, FakeUpstream], changes: Changes) -> AsyncIterator[Hub]:
    async with Hub(Config(), upstreams=fakes, on_tools_changed=changes) as hub:
        yield hub


async def test_a_hub_of_fakes_lists_and_calls(hub: Hub) -> None:
    assert [spec.name for spec in hub.tools()["calc"]] == ["add", "greet", "primes", "boom", "die", "slow", "refuse"]
    assert all(spec.server == "calc" for spec in hub.tools()["calc"])
    down = "unavailable: command not found: nope (codemode retries it)"
    assert hub.summaries() == {"calc": "Arithmetic.", "broken": down}
    greet = hub.find(ToolRef("calc", "greet"))
    assert greet is not None and greet.description == "Say hello."

    added = await hub.call_tool(ToolRef("calc", "add"), {"a": 1, "b": 2})
    assert added.structured_content == {"sum": 3} and not added.is_error
    greeting = await hub.call_tool(ToolRef("calc", "greet"), {"name": "Ada"})
    assert greeting.structured_content is None
    assert greeting.content[0].text == "hello Ada"  # type: ignore[union-attr]
    primes = await hub.call_tool(ToolRef("calc", "primes"), {})
    assert primes.content[0].text == "[2, 3, 5]"  # type: ignore[union-attr]
    refused = await hub.call_tool(ToolRef("calc", "refuse"), {})
    assert refused.is_error and refused.content[0].text == "not like that"  # type: ignore[union-attr]
    unknown = await hub.call_tool(ToolRef("calc", "nope"), {})
    assert unknown.is_error  # as a real server answers: a result, not an exception


async def test_exceptions_map_to_tool_call_errors(hub: Hub) -> None:
    with pytest.raises(ToolCallError, match=r"^calc\.boom: RuntimeError: boom$") as info:
        await hub.call_tool(ToolRef("calc", "boom"), {})
    assert info.value.server == "calc" and info.value.tool == "boom"
    assert isinstance(info.value.__cause__, RuntimeError)
    with pytest.raises(ToolCallError, match=r"^calc\.slow: timed out after 0\.1 s$"):
        await hub.call_tool(ToolRef("calc", "slow"), {}, timeout_s=0.1)


async def test_a_fake_that_dies_mid_call_is_restarted_on_the_next_call(hub: Hub) -> None:
    with pytest.raises(ToolCallError, match=r"^calc\.die: the server died during the call$"):
        await hub.call_tool(ToolRef("calc", "die"), {})
    assert {s.name: s.state for s in hub.status()}["calc"] == "died"
    again = await hub.call_tool(ToolRef("calc", "add"), {"a": 2, "b": 2})
    assert again.structured_content == {"sum": 4}
    assert {s.name: s.state for s in hub.status()}["calc"] == "ready"


async def test_a_fake_that_will_not_start_degrades(hub: Hub, fakes: dict[str, FakeUpstream]) -> None:
    status = {s.name: s for s in hub.status()}
    assert status["broken"].state == "failed" and status["broken"].error == "command not found: nope"
    assert status["calc"].state == "ready" and status["calc"].transport == "fake"
    assert status["calc"].tool_count == len(CALC_TOOLS)
    with pytest.raises(UpstreamError, match=r"^broken: command not found: nope$"):
        await hub.call_tool(ToolRef("broken", "x"), {})
    assert (await hub.call_tool(ToolRef("calc", "add"), {"a": 0, "b": 1})).structured_content == {"sum": 1}

    fakes["broken"].fail_start = None  # it got better: the next call retries the start
    result = await hub.call_tool(ToolRef("broken", "x"), {"k": 1})
    assert result.structured_content == {"tool": "x", "arguments": {"k": 1}}  # the default handler echoes


async def test_restart_goes_through_the_upstream(hub: Hub, fakes: dict[str, FakeUpstream]) -> None:
    assert fakes["calc"].starts == 1
    await hub.restart("calc")
    assert fakes["calc"].starts == 2
    with pytest.raises(UpstreamError, match=r"^nobody: unknown server \(connected: broken, calc\)$"):
        await hub.restart("nobody")


async def test_mount_and_unmount_at_run_time(hub: Hub, changes: Changes) -> None:
    extra = FakeUpstream("extra", [{"name": "ping"}], lambda tool, args: "pong")
    await hub.mount("extra", extra)
    assert await changes.wait_for(1) == ["extra"]
    assert hub.servers == ["calc", "broken", "extra"]
    assert {s.name: s.state for s in hub.status()}["extra"] == "ready"
    pong = await hub.call_tool(ToolRef("extra", "ping"), {})
    assert pong.content[0].text == "pong"  # type: ignore[union-attr]

    with pytest.raises(ValueError, match="already has a server of that name"):
        await hub.mount("extra", FakeUpstream("extra"))
    with pytest.raises(ValueError, match="the upstream is named 'other'"):
        await hub.mount("another", FakeUpstream("other"))

    failing = FakeUpstream("failing", fail_start="no route to host")
    await hub.mount("failing", failing)  # degrades like a configured server
    assert {s.name: s.error for s in hub.status()}["failing"] == "no route to host"

    await hub.unmount("extra")
    assert await changes.wait_for(3) == ["extra", "failing", "extra"]
    assert extra.state == "closed" and "extra" not in hub.servers
    with pytest.raises(UpstreamError, match=r"^extra: unknown server"):
        await hub.call_tool(ToolRef("extra", "ping"), {})
    with pytest.raises(UpstreamError, match=r"^extra: unknown server"):
        await hub.unmount("extra")
    extra.set_tools([])  # an unmounted upstream no longer reaches the hub
    await anyio.sleep(0.05)
    assert changes.seen == ["extra", "failing", "extra"]


async def test_mount_needs_a_running_hub() -> None:
    hub = Hub(Config())
    with pytest.raises(UpstreamError, match=r"^x: cannot mount: the hub is new$"):
        await hub.mount("x", FakeUpstream("x"))
    async with hub:
        pass
    with pytest.raises(UpstreamError, match=r"^x: cannot mount: the hub is closed$"):
        await hub.mount("x", FakeUpstream("x"))
    with pytest.raises(UpstreamError, match=r"^x: cannot unmount: the hub is closed$"):
        await hub.unmount("x")


def test_extra_upstreams_cannot_shadow_configured_servers() -> None:
    config = Config(servers={"notes": StdioServer(command="notes-server")})
    with pytest.raises(ValueError, match=r"^notes: the hub already has a server of that name$"):
        Hub(config, upstreams={"notes": FakeUpstream("notes")})
    with pytest.raises(ValueError, match=r"^a: the upstream is named 'b'"):
        Hub(Config(), upstreams={"a": FakeUpstream("b")})


async def test_set_tools_is_delivered_by_the_dispatcher_not_inside_set_tools(
    hub: Hub, fakes: dict[str, FakeUpstream], changes: Changes
) -> None:
    inside = False
    seen_inside: list[bool] = []
    changes.effect = lambda server: seen_inside.append(inside)

    inside = True
    fakes["calc"].set_tools([{"name": "only"}])
    inside = False
    assert changes.seen == []  # queued, not called: set_tools returned first
    assert await changes.wait_for(1) == ["calc"]
    assert seen_inside == [False]
    assert [spec.name for spec in hub.tools()["calc"]] == ["only"]


async def test_a_failing_callback_is_logged_and_later_changes_still_arrive(
    hub: Hub, fakes: dict[str, FakeUpstream], changes: Changes, caplog: pytest.LogCaptureFixture
) -> None:
    def fail_first(server: str) -> None:
        if len(changes.seen) == 1:
            raise RuntimeError("recompile broke")

    changes.effect = fail_first
    calc_upstream = fakes["calc"]
    with caplog.at_level(logging.ERROR, logger="codemode.hub.hub"):
        calc_upstream.set_tools([{"name": "a"}])
        await changes.wait_for(1)
        calc_upstream.set_tools([{"name": "b"}])
        assert await changes.wait_for(2) == ["calc", "calc"]
    (record,) = [r for r in caplog.records if "on_tools_changed" in r.getMessage()]
    assert "'calc'" in record.getMessage() and record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


async def test_changes_are_serialized_and_coalesced(changes: Changes) -> None:
    active = 0
    most = 0
    entered = anyio.Event()
    release = anyio.Event()

    async def slow_recompile(server: str) -> None:
        nonlocal active, most
        active += 1
        most = max(most, active)
        entered.set()
        await release.wait()
        await anyio.sleep(0.01)
        active -= 1

    changes.effect = slow_recompile
    a, b = FakeUpstream("a", [{"name": "t"}]), FakeUpstream("b", [{"name": "t"}])
    async with Hub(Config(), upstreams={"a": a, "b": b}, on_tools_changed=changes):
        a.set_tools([{"name": "t1"}])
        with anyio.fail_after(5):
            await entered.wait()  # the callback for "a" is running and blocked
        b.set_tools([{"name": "t2"}])
        a.set_tools([{"name": "t3"}])
        b.set_tools([{"name": "t4"}])
        release.set()
        assert await changes.wait_for(3) == ["a", "b", "a"]  # b, a, b queued meanwhile: each once
        await anyio.sleep(0.05)
        assert changes.seen == ["a", "b", "a"]
    assert most == 1

