"""A live ``codemode serve`` session, driven by the SDK client: find a service, mount it, use it in the same
program and the next one, unmount it; the client hears ``list_changed`` each time."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from mcp.client.stdio import StdioServerParameters

from tests.integration.test_serve_live import TOOLS_CHANGED, _text, watching

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.skipif(shutil.which("npx") is None, reason="npx")]

MOUNT = """
[entry] = search_directory("memory")
print(entry["name"], entry["mounted"])
module = mount("memory")
from stubs import memory
memory.create_entities(entities=[{"name": "seed", "entityType": "idea", "observations": ["from serve"]}])
print(module, memory.read_graph()["entities"][0]["name"])
"""


async def test_search_mount_use_unmount_in_a_live_session(tmp_path: Path) -> None:
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {}, "codemode": {"mount": ["*memory*"]}}))
    env = {**os.environ, "CODEMODE_STATE_DIR": str(tmp_path / "state"), "MEMORY_FILE_PATH": str(tmp_path / "m.json")}
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "codemode.cli", "serve", "--config", str(config)], env=env
    )
    async with watching(params, "legacy") as watcher:
        client = watcher.client
        assert client is not None
        mounted = await client.call_tool("execute_python", {"code": MOUNT})
        assert not mounted.is_error, _text(mounted)
        assert _text(mounted).splitlines()[:2] == ["memory False", "memory seed"]
        await watcher.wait_for(TOOLS_CHANGED)
        [tool] = (await client.list_tools()).tools
        assert "memory" in (tool.description or "")
        code = "from stubs import memory\nmemory.search_nodes(query='seed')['entities'][0]['observations']"
        again = await client.call_tool("execute_python", {"code": code})
        assert not again.is_error and "from serve" in _text(again), _text(again)
        before = watcher.seen.count(TOOLS_CHANGED)
        gone = await client.call_tool("execute_python", {"code": "unmount('memory')"})
        assert not gone.is_error, _text(gone)
        failed = await client.call_tool("execute_python", {"code": "import stubs.memory"})
        assert failed.is_error and "No module named 'stubs.memory'" in _text(failed)
        assert watcher.seen.count(TOOLS_CHANGED) > before
