"""The hub against real servers started for real: demo servers and misbehaving ones."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from codemode.config import load_config, parse_config
from codemode.errors import ToolCallError, UpstreamError
from codemode.hub import Hub, ToolRef


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
    import os

    async with Hub(_cfg({"f": fragile_server})) as hub:
        result = await hub.call_tool(ToolRef("f", "pid"), {})
        pid = int(result.content[0].text)  # type: ignore[union-attr]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
