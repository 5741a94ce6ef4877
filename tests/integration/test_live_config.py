"""Live configuration: edits of the config file add, change and remove servers while serving; a bad edit
keeps the running set. The demo servers are real stdio MCP servers; the last test drives ``codemode serve``
with the SDK client."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client.stdio import StdioServerParameters

from codemode import live
from codemode.audit import AuditLog
from codemode.config import load_config
from codemode.engine import Engine
from tests.integration.test_serve_live import TOOLS_CHANGED, _text, watching

pytestmark = pytest.mark.anyio


def _server(name: str, **extra: Any) -> dict[str, Any]:
    return {"command": sys.executable, "args": ["-m", f"codemode.demo.{name}"], **extra}


def _write(path: Path, servers: dict[str, Any], **settings: Any) -> None:
    # A fresh file each time (os.replace), as editors save: the inode changes even within one mtime tick.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"mcpServers": servers, "codemode": settings}))
    os.replace(tmp, path)


async def test_reload_adds_changes_and_removes_servers(tmp_path: Path) -> None:
    config = tmp_path / "mcp.json"
    _write(config, {"notes": _server("notes")})
    async with Engine(load_config(config), stubs_dir=tmp_path / "stubs", skills_dir=tmp_path / "skills",
                      audit=AuditLog(tmp_path / "audit.jsonl")) as engine:  # fmt: skip
        assert engine.hub is not None
        _write(config, {"notes": _server("notes"), "inventory": _server("inventory")}, mount=["*memory*"])
        result = await live.reload(engine, config)
        assert (result.added, result.removed, result.changed, result.error) == (["inventory"], [], [], None)
        assert engine.services is not None and engine.services.settings.mount == ["*memory*"]
        await engine.recompile("test")
        used = await engine.execute("from stubs import inventory\nbool(inventory.TOOLS)")
        assert used.text == "true", used.text

        config.write_text('{"mcpServers": {"notes": ')  # a bad edit: reported, nothing changes
        bad = await live.reload(engine, config)
        assert bad.error is not None and "invalid JSON" in bad.error
        assert sorted(engine.hub.servers) == ["inventory", "notes"]

        _write(config, {"inventory": _server("inventory", call_timeout_s=5)})
        result = await live.reload(engine, config)
        assert (result.added, result.removed, result.changed) == ([], ["notes"], ["inventory"])
        await engine.recompile("test")
        gone = await engine.execute("import stubs.notes")
        assert gone.is_error and "No module named 'stubs.notes'" in gone.text
        assert engine.hub.servers == ["inventory"]


@pytest.mark.slow
async def test_serve_follows_its_config_file(tmp_path: Path) -> None:
    config = tmp_path / "mcp.json"
    _write(config, {"notes": _server("notes")})
    env = {**os.environ, "CODEMODE_STATE_DIR": str(tmp_path / "state")}
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "codemode.cli", "serve", "--config", str(config)], env=env
    )
    async with watching(params, "legacy") as watcher:
        client = watcher.client
        assert client is not None
        _write(config, {"notes": _server("notes"), "inventory": _server("inventory")})
        await watcher.wait_for(TOOLS_CHANGED, timeout_s=60)
        added = await client.call_tool(
            "execute_python", {"code": "from stubs import inventory\nlen(inventory.TOOLS) > 0"}
        )
        assert _text(added) == "true", _text(added)
        config.write_text("{ not json")
        await anyio.sleep(2.5)  # two polls: the bad edit is seen and refused
        kept = await client.call_tool("execute_python", {"code": "from stubs import notes, inventory\n'ok'"})
        assert _text(kept) == '"ok"', _text(kept)
        seen = watcher.seen.count(TOOLS_CHANGED)
        _write(config, {"inventory": _server("inventory")})
        with anyio.fail_after(60):
            while watcher.seen.count(TOOLS_CHANGED) == seen:  # noqa: ASYNC110
                await anyio.sleep(0.1)
        removed = await client.call_tool("execute_python", {"code": "import stubs.notes"})
        assert removed.is_error and "No module named 'stubs.notes'" in _text(removed)


@pytest.mark.slow
async def test_codemode_mount_url_reaches_a_running_serve(tmp_path: Path) -> None:
    from tests.conftest import free_port, wait_for_port

    port = free_port()
    petstore = await anyio.open_process([sys.executable, "-m", "codemode.demo.petstore", "--port", str(port)])
    config = tmp_path / "mcp.json"
    _write(config, {"notes": _server("notes")})
    env = {**os.environ, "CODEMODE_STATE_DIR": str(tmp_path / "state")}
    env.pop("PETSTORE_KEY", None)
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "codemode.cli", "serve", "--config", str(config)], env=env
    )
    try:
        await wait_for_port(port, petstore, "petstore")
        async with watching(params, "legacy") as watcher:
            client = watcher.client
            assert client is not None
            url = f"http://127.0.0.1:{port}/openapi.json"
            added = await anyio.run_process(
                [sys.executable, "-m", "codemode.cli", "mount", url, "--name", "pets", "--config", str(config)],
                env=env,
            )
            assert b"added server 'pets'" in added.stdout
            await watcher.wait_for(TOOLS_CHANGED, timeout_s=60)
            code = "from stubs import pets\npets.create_pet(body={'name': 'Io'})['name']"
            called = await client.call_tool("execute_python", {"code": code})
            assert _text(called) == '"Io"', _text(called)
    finally:
        petstore.terminate()
        await petstore.wait()
