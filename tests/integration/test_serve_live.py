"""``codemode serve`` follows its upstreams live: a tool added upstream reaches every connected client.

The upstream is the ``fragile`` test server: its ``grow(name=...)`` adds a tool at run time and announces
it. codemode recompiles its stubs, rebuilds the ``execute_python`` description and the ``stubs://``
resources, and tells its own clients — 2026-07-28 clients on their ``subscriptions/listen`` stream,
handshake-era clients with unsolicited notifications — over stdio and streamable HTTP, all real processes.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.server.mcpserver import MCPServer
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.shared.exceptions import MCPError

from codemode.audit import AuditLog
from codemode.config import demo_config
from codemode.engine import Engine
from codemode.front import ClientNotifier, build_server
from tests.conftest import free_port, wait_for_port

CODEMODE = [sys.executable, "-m", "codemode.cli"]
TOOLS_CHANGED = "notifications/tools/list_changed"
RESOURCES_CHANGED = "notifications/resources/list_changed"
GROW = "from stubs import fragile\nfragile.grow(name='shout')"
SHOUT = "from stubs import fragile\nfragile.shout(text='hi')"


def _text(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


@pytest.fixture
def fragile_config(tmp_path: Path, fragile_server: dict[str, Any]) -> Path:
    cfg = tmp_path / "mcp.json"
    cfg.write_text(json.dumps({"mcpServers": {"fragile": fragile_server}}))
    return cfg


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "CODEMODE_STATE_DIR": str(tmp / "state")}


class Watcher:
    """A client plus the notification methods it has received."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.client: Client | None = None

    async def on_message(self, message: Any) -> None:
        method = getattr(message, "method", None)
        if isinstance(method, str):
            self.seen.append(method)

    async def wait_for(self, *methods: str, timeout_s: float = 30) -> None:
        with anyio.fail_after(timeout_s):
            while not set(methods) <= set(self.seen):  # noqa: ASYNC110
                await anyio.sleep(0.05)


@asynccontextmanager
async def watching(server: Any, mode: str, **kwargs: Any) -> AsyncIterator[Watcher]:
    """Connect to ``server`` in protocol ``mode`` ("auto" negotiates 2026-07-28, "legacy" the handshake)."""
    watcher = Watcher()
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(
            Client(server, mode=mode, message_handler=watcher.on_message, read_timeout_seconds=120, **kwargs)
        )
        if mode == "legacy":
            assert client.server_capabilities.tools is not None and client.server_capabilities.tools.list_changed
            assert client.server_capabilities.resources is not None
            assert client.server_capabilities.resources.list_changed
        else:
            assert client.protocol_version == "2026-07-28"
            subscription = await stack.enter_async_context(
                client.listen(tools_list_changed=True, resources_list_changed=True)
            )
            assert subscription.honored.tools_list_changed and subscription.honored.resources_list_changed
        watcher.client = client
        yield watcher


async def _description(client: Client) -> str:
    [tool] = (await client.list_tools()).tools
    return tool.description or ""


async def _grow_and_check(grower: Watcher, others: list[Watcher]) -> None:
    """``grower`` adds ``fragile.shout``; every watcher is told, sees it, and can call it."""
    everyone = [grower, *others]
    for w in everyone:
        assert w.client is not None
        assert "- fragile: 5 tools" in await _description(w.client)
        uris = {r.uri for r in (await w.client.list_resources()).resources}
        assert "stubs://fragile/echo" in uris and "stubs://fragile/shout" not in uris
    assert grower.client is not None
    grown = await grower.client.call_tool("execute_python", {"code": GROW})
    assert not grown.is_error, _text(grown)
    for w in everyone:
        await w.wait_for(TOOLS_CHANGED, RESOURCES_CHANGED)
        assert w.client is not None
        assert "- fragile: 6 tools" in await _description(w.client)
        uris = {r.uri for r in (await w.client.list_resources()).resources}
        assert "stubs://fragile/shout" in uris
        stub = await w.client.read_resource("stubs://fragile/shout")
        assert "def shout(" in getattr(stub.contents[0], "text", "")
        shouted = await w.client.call_tool("execute_python", {"code": SHOUT})
        assert not shouted.is_error, _text(shouted)
        assert "shout: hi" in _text(shouted)
    # One tool added: one description change and one resource change, not a notification per listener.
    assert grower.seen.count(TOOLS_CHANGED) == 1 and grower.seen.count(RESOURCES_CHANGED) == 1


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_stdio_clients_hear_of_a_tool_added_upstream(tmp_path: Path, fragile_config: Path, mode: str) -> None:
    params = StdioServerParameters(
        command=CODEMODE[0], args=[*CODEMODE[1:], "serve", "--config", str(fragile_config)], env=_env(tmp_path)
    )
    async with watching(params, mode) as watcher:
        await _grow_and_check(watcher, [])


@pytest.mark.slow
async def test_http_sessions_of_both_eras_hear_of_a_tool_added_upstream(tmp_path: Path, fragile_config: Path) -> None:
    port = free_port()
    proc = await anyio.open_process(
        [*CODEMODE, "serve", "--http", str(port), "--config", str(fragile_config)], env=_env(tmp_path), stderr=None
    )
    try:
        await wait_for_port(port, proc, "codemode serve --http")
        url = f"http://127.0.0.1:{port}/mcp"
        async with watching(url, "legacy"):
            pass  # a session that has ended by the time the tools change: nobody trips over it
        async with (
            watching(url, "auto") as modern,
            watching(url, "legacy") as legacy,
            watching(url, "legacy") as legacy_too,
        ):
            await _grow_and_check(modern, [legacy, legacy_too])
    finally:
        proc.terminate()
        with anyio.fail_after(30):
            await proc.wait()


async def test_an_engine_fault_is_a_protocol_error_not_a_result(tmp_path: Path) -> None:
    engine = Engine(
        demo_config(), stubs_dir=tmp_path / "stubs", skills_dir=tmp_path / "skills",
        audit=AuditLog(tmp_path / "audit.jsonl"),
    )  # fmt: skip
    async with engine:
        server = build_server(engine)
        async with Client(server) as client:
            ok = await client.call_tool("execute_python", {"code": "1 / 0"})
            assert ok.is_error and "ZeroDivisionError" in _text(ok)  # the program's fault: a result
    async with Client(server) as client:  # the engine is closed now: codemode's fault
        with pytest.raises(MCPError) as caught:
            await client.call_tool("execute_python", {"code": "1 + 1"})
    assert "codemode failed to run the program" in caught.value.error.message
    assert "Traceback" not in caught.value.error.message


async def test_notifier_reaches_both_eras_in_process_and_forgets_closed_connections() -> None:
    notifier = ClientNotifier(InMemorySubscriptionBus())
    server = MCPServer("x", subscriptions=notifier.bus, middleware=[notifier])
    server.add_tool(lambda: "hi", name="hi")
    async with watching(server, "auto") as modern, watching(server, "legacy") as legacy:
        with anyio.fail_after(10):
            while notifier.handshake_clients != 1:  # noqa: ASYNC110  # `initialized` runs in its own task
                await anyio.sleep(0.01)
        await notifier.notify(tools=True, resources=False)
        await modern.wait_for(TOOLS_CHANGED)
        await legacy.wait_for(TOOLS_CHANGED)
        await notifier.notify(tools=False, resources=True)
        await modern.wait_for(RESOURCES_CHANGED)
        await legacy.wait_for(RESOURCES_CHANGED)
        assert modern.seen.count(TOOLS_CHANGED) == legacy.seen.count(TOOLS_CHANGED) == 1
    with anyio.fail_after(10):
        while notifier.handshake_clients:  # noqa: ASYNC110  # the closed connection's cleanup drops it
            await anyio.sleep(0.01)
    await notifier.notify(tools=True, resources=True)  # nobody left: still fine
