"""The hub against real servers started for real: demo servers and misbehaving ones."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from codemode.config import Config, StdioServer, load_config, parse_config
from codemode.errors import ToolCallError, UpstreamError
from codemode.hub import Hub, McpUpstream, ToolRef


def _cfg(servers: dict[str, Any]) -> Any:
    return parse_config(json.dumps({"mcpServers": servers}))


async def test_demo_servers_start_and_answer() -> None:
    async with Hub(load_config(None)) as hub:
        states = {s.name: (s.state, s.tool_count) for s in hub.status()}
        assert states["inventory"][0] == "ready" and states["inventory"][1] >= 5
        assert states["notes"][0] == "ready" and states["notes"][1] >= 4
        result = await hub.call_tool(ToolRef("notes", "search_notes"), {"query": "restock"})
        assert not result.is_error
        assert result.structured_content is not None
        assert result.structured_content["total"] >= 2
        spec = hub.find(ToolRef("inventory", "create_order"))
        assert spec is not None and spec.output_schema is not None


async def test_tool_error_is_a_result_not_an_exception() -> None:
    async with Hub(load_config(None)) as hub:
        result = await hub.call_tool(ToolRef("inventory", "get_order"), {"order_id": "nope"})
        assert result.is_error


async def test_bad_servers_degrade_and_are_named(fragile_server: dict[str, Any]) -> None:
    cfg = _cfg(
        {
            "missing": {"command": "definitely-not-a-command-xyz"},
            "exits": {
                "command": sys.executable,
                "args": ["-c", "import sys; print('bye', file=sys.stderr); sys.exit(3)"],
            },
            "hangs": {"command": sys.executable, "args": ["-c", "import time; time.sleep(60)"], "start_timeout_s": 1.5},
            "good": fragile_server,
        }
    )
    async with Hub(cfg) as hub:
        status = {s.name: s for s in hub.status()}
        assert status["missing"].state == "failed" and "command not found" in (status["missing"].error or "")
        assert status["exits"].state == "failed" and "bye" in (status["exits"].error or "")
        assert status["hangs"].state == "failed" and "did not start within 1.5 s" in (status["hangs"].error or "")
        assert status["good"].state == "ready"
        result = await hub.call_tool(ToolRef("good", "echo"), {"text": "still here"})
        assert result.content[0].text == "still here"  # type: ignore[union-attr]
        with pytest.raises(UpstreamError, match=r"^missing: command not found"):
            await hub.call_tool(ToolRef("missing", "x"), {})
        with pytest.raises(UpstreamError, match="unknown server"):
            await hub.call_tool(ToolRef("nobody", "x"), {})


async def test_server_dies_mid_call_then_restarts(fragile_server: dict[str, Any]) -> None:
    async with Hub(_cfg({"f": fragile_server})) as hub:
        first = await hub.call_tool(ToolRef("f", "pid"), {})
        with pytest.raises(ToolCallError, match=r"^f\.die: the server died during the call"):
            await hub.call_tool(ToolRef("f", "die"), {})
        second = await hub.call_tool(ToolRef("f", "pid"), {})
        assert first.content[0].text != second.content[0].text  # type: ignore[union-attr]


async def test_call_timeout_names_the_tool(fragile_server: dict[str, Any]) -> None:
    async with Hub(_cfg({"f": {**fragile_server, "call_timeout_s": 0.5}})) as hub:
        with pytest.raises(ToolCallError, match=r"^f\.slow: timed out after 0\.5 s"):
            await hub.call_tool(ToolRef("f", "slow"), {"seconds": 3})


async def test_no_orphan_processes_after_close(fragile_server: dict[str, Any]) -> None:
    async with Hub(_cfg({"f": fragile_server})) as hub:
        result = await hub.call_tool(ToolRef("f", "pid"), {})
        pid = int(result.content[0].text)  # type: ignore[union-attr]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_no_orphan_process_when_the_hub_is_cancelled(fragile_server: dict[str, Any]) -> None:
    # A cancelled caller (a client gone, a timeout around the hub) still stops the server: the transport's
    # shutdown runs shielded, else the cancellation cut it before the process was stopped and reaped.
    with anyio.CancelScope() as scope:
        async with Hub(_cfg({"f": fragile_server})) as hub:
            result = await hub.call_tool(ToolRef("f", "pid"), {})
            pid = int(result.content[0].text)  # type: ignore[union-attr]
            scope.cancel()
            await anyio.sleep_forever()
    try:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)


async def test_a_changed_tool_list_reaches_the_callback(fragile_server: dict[str, Any]) -> None:
    seen: list[tuple[str, list[str]]] = []

    async def changed(server: str) -> None:
        # Awaiting the same server from the callback is fine: it runs in the hub's task, not the connection's.
        pid = await hub.call_tool(ToolRef(server, "pid"), {})
        assert not pid.is_error
        seen.append((server, sorted(spec.name for spec in hub.tools()[server])))

    async def wait_for(count: int) -> None:
        with anyio.fail_after(20):
            while len(seen) < count:  # noqa: ASYNC110
                await anyio.sleep(0.02)

    async with Hub(_cfg({"f": fragile_server}), on_tools_changed=changed) as hub:
        grown = await hub.call_tool(ToolRef("f", "grow"), {"name": "shout"})
        assert not grown.is_error
        await wait_for(1)
        assert seen == [("f", ["die", "echo", "grow", "pid", "shout", "slow"])]
        shouted = await hub.call_tool(ToolRef("f", "shout"), {"text": "hi"})
        assert shouted.content[0].text == "shout: hi"  # type: ignore[union-attr]
        # A new process has forgotten the added tool: the restart announces the shorter list.
        await hub.restart("f")
        await wait_for(2)
        assert seen[1] == ("f", ["die", "echo", "grow", "pid", "slow"])


async def test_restart_starts_a_new_process(fragile_server: dict[str, Any]) -> None:
    async with Hub(_cfg({"f": fragile_server})) as hub:
        first = await hub.call_tool(ToolRef("f", "pid"), {})
        await hub.restart("f")
        assert {s.name: s.state for s in hub.status()}["f"] == "ready"
        second = await hub.call_tool(ToolRef("f", "pid"), {})
        assert first.content[0].text != second.content[0].text  # type: ignore[union-attr]
        with pytest.raises(ProcessLookupError):
            os.kill(int(first.content[0].text), 0)  # type: ignore[union-attr]


async def test_mount_and_unmount_a_real_server(fragile_server: dict[str, Any], tmp_path: Path) -> None:
    changed: list[str] = []

    async def record(server: str) -> None:
        changed.append(server)

    async with Hub(Config(), on_tools_changed=record) as hub:
        await hub.mount("f", McpUpstream("f", StdioServer(**fragile_server), log_dir=tmp_path))
        (status,) = hub.status()
        assert (status.name, status.state, status.transport) == ("f", "ready", "stdio")
        pid = int((await hub.call_tool(ToolRef("f", "pid"), {})).content[0].text)  # type: ignore[union-attr]
        await hub.unmount("f")
        assert hub.status() == []
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        with anyio.fail_after(5):
            while len(changed) < 2:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        assert changed == ["f", "f"]
