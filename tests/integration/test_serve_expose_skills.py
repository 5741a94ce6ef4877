"""``codemode serve --expose-skills`` end to end: promoted skills as MCP tools, through real processes.

A client saves a skill from a program, ``codemode skills promote`` (another process) promotes it, and the
serving process — which polls its store — tells the client its tool list changed; the client then calls
the skill as a tool, with its arguments checked against the schema read from the skill's signature.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client.stdio import StdioServerParameters

from codemode.config import SkillsSettings
from tests.integration.test_serve import CODEMODE, _env, _text, serve_stdio
from tests.integration.test_serve_live import TOOLS_CHANGED, Watcher, watching
from tests.integration.test_serve_skills import SHIPPED, _config
from tests.integration.test_skills import LOW

pytestmark = pytest.mark.anyio


async def _cli(tmp: Path, *args: str) -> str:
    done = await anyio.run_process([*CODEMODE, *args], env=_env(tmp), check=True)
    return done.stdout.decode()


async def _changes(watcher: Watcher, count: int) -> None:
    """Wait until ``watcher`` has heard ``count`` tool-list changes."""
    with anyio.fail_after(60):
        while watcher.seen.count(TOOLS_CHANGED) < count:  # noqa: ASYNC110
            await anyio.sleep(0.05)


def _tools(listed: Any) -> dict[str, Any]:
    return {t.name: t for t in listed.tools}


@pytest.mark.slow
async def test_promote_lists_the_skill_as_a_tool_and_calls_run_in_the_sandbox(tmp_path: Path) -> None:
    config = _config(tmp_path)
    params = StdioServerParameters(
        command=CODEMODE[0], args=[*CODEMODE[1:], "serve", "--expose-skills", "--config", str(config)],
        env=_env(tmp_path),
    )  # fmt: skip
    async with watching(params, "auto") as watcher:
        client = watcher.client
        assert client is not None
        assert list(_tools(await client.list_tools())) == ["execute_python"]
        await client.call_tool("execute_python", {"code": LOW})
        saved = await client.call_tool("execute_python", {"code": 'save_skill(low_stock, example="low_stock(2)")'})
        assert json.loads(_text(saved))["state"] == "draft", _text(saved)
        assert list(_tools(await client.list_tools())) == ["execute_python"]  # a draft is not offered

        await _cli(tmp_path, "skills", "promote", "low_stock", "--config", str(config))
        await _changes(watcher, 1)
        tools = _tools(await client.list_tools())
        assert sorted(tools) == ["execute_python", "low_stock"]
        tool = tools["low_stock"]
        assert tool.description == "SKUs with at most ``threshold`` units in stock, sorted."
        assert tool.input_schema == {
            "type": "object", "additionalProperties": False,
            "properties": {"threshold": {"type": "integer", "default": 5}},
        }  # fmt: skip
        assert "Skills: 1 saved function(s)" in (tools["execute_python"].description or "")

        called = await client.call_tool("low_stock", {"threshold": 1})
        assert not called.is_error, _text(called)
        same = await client.call_tool("execute_python", {"code": "from skills import low_stock\nlow_stock(1)"})
        assert called.structured_content == {"result": json.loads(_text(same))}
        assert json.loads(_text(called)) == json.loads(_text(same)) and called.structured_content["result"]
        defaulted = await client.call_tool("low_stock", {})
        assert not defaulted.is_error and len(json.loads(_text(defaulted))) >= len(json.loads(_text(called)))

        wrong_type = await client.call_tool("low_stock", {"threshold": "lots"})
        assert wrong_type.is_error and "low_stock: bad arguments: threshold:" in _text(wrong_type)
        unknown = await client.call_tool("low_stock", {"treshold": 1})
        assert unknown.is_error and "treshold: no such argument" in _text(unknown)

        await _cli(tmp_path, "skills", "reject", "low_stock", "--config", str(config))  # retires it
        await _changes(watcher, 2)
        assert list(_tools(await client.list_tools())) == ["execute_python"]
        gone = await client.call_tool("low_stock", {"threshold": 1})
        assert gone.is_error

    history = json.loads(await _cli(tmp_path, "history", "--json", "-n", "50", "--config", str(config)))
    runs = [e for e in history if "from skills import low_stock\nlow_stock(**" in e["code"]]
    assert len(runs) == 2 and all(e["ok"] and e["executor"] == "wasm" for e in runs), runs
    assert any('"threshold": 1' in e["code"] for e in runs)
    assert not [e for e in history if "lots" in e["code"] or "treshold" in e["code"]]  # refused before running


@pytest.mark.slow
async def test_rollback_changes_the_schema_and_the_clients_hear_it(tmp_path: Path) -> None:
    config = _config(tmp_path)
    shutil.copytree(SHIPPED, tmp_path / "skills")
    v2 = (
        "from stubs import notes\n\n\n"
        "def urgent_notes(limit: int) -> list[str]:\n"
        '    """Titles of the urgent notes."""\n'
        '    return [h["title"] for h in notes.search_notes(query="", priority="urgent", limit=limit)["hits"]]\n'
    )
    params = StdioServerParameters(
        command=CODEMODE[0], args=[*CODEMODE[1:], "serve", "--expose-skills", "--config", str(config)],
        env=_env(tmp_path),
    )  # fmt: skip
    async with watching(params, "legacy") as watcher:
        client = watcher.client
        assert client is not None
        tools = _tools(await client.list_tools())
        assert sorted(tools) == ["execute_python", "low_stock_report", "urgent_notes"]
        assert "required" not in tools["urgent_notes"].input_schema
        assert tools["urgent_notes"].annotations is not None and tools["urgent_notes"].annotations.read_only_hint
        await client.call_tool("execute_python", {"code": v2})
        save = 'save_skill(urgent_notes, example="urgent_notes(2)")'
        saved = await client.call_tool("execute_python", {"code": save})
        assert json.loads(_text(saved))["version"] == 2, _text(saved)
        await _cli(tmp_path, "skills", "promote", "urgent_notes", "--config", str(config))
        await _changes(watcher, 1)
        schema = _tools(await client.list_tools())["urgent_notes"].input_schema
        assert schema["required"] == ["limit"]
        missing = await client.call_tool("urgent_notes", {})
        assert missing.is_error and "limit: required argument missing" in _text(missing)
        titles = await client.call_tool("urgent_notes", {"limit": 2})
        assert not titles.is_error and all(isinstance(t, str) for t in json.loads(_text(titles)))

        await _cli(tmp_path, "skills", "rollback", "urgent_notes", "--config", str(config))
        await _changes(watcher, 2)
        assert "required" not in _tools(await client.list_tools())["urgent_notes"].input_schema


@pytest.mark.slow
async def test_without_the_flag_no_skill_tools_and_the_setting_turns_them_on(tmp_path: Path) -> None:
    config = _config(tmp_path)
    shutil.copytree(SHIPPED, tmp_path / "skills")
    async with serve_stdio(tmp_path, "--config", str(config)) as client:
        assert list(_tools(await client.list_tools())) == ["execute_python"]
        refused = await client.call_tool("urgent_notes", {"limit": 1})
        assert refused.is_error
    data = json.loads(config.read_text())
    data["codemode"]["expose_skills"] = True
    config.write_text(json.dumps(data))
    async with serve_stdio(tmp_path, "--config", str(config)) as client:
        assert sorted(_tools(await client.list_tools())) == ["execute_python", "low_stock_report", "urgent_notes"]
        urgent = await client.call_tool("urgent_notes", {"limit": 1})
        assert not urgent.is_error, _text(urgent)
        assert [row["id"] for row in json.loads(_text(urgent))] == [3]


async def test_serve_help_mentions_the_flag(tmp_path: Path) -> None:
    text = await _cli(tmp_path, "serve", "--help")
    assert "--expose-skills" in text and "promoted skill" in text


async def test_auto_promoted_save_in_process_reaches_the_client_as_a_tool(tmp_path: Path) -> None:
    from codemode.audit import AuditLog
    from codemode.engine import Engine
    from codemode.front import build_server
    from tests.integration.test_skills import demo_here

    config = demo_here(tmp_path / "skills", skills=SkillsSettings(auto_promote=True), expose_skills=True)
    async with Engine(config, executor="wasm", audit=AuditLog(tmp_path / "audit.jsonl")) as engine:
        async with watching(build_server(engine), "legacy") as watcher:
            client = watcher.client
            assert client is not None
            await client.call_tool("execute_python", {"code": LOW})
            saved = await client.call_tool("execute_python", {"code": "save_skill(low_stock)"})
            assert json.loads(_text(saved))["state"] == "promoted", _text(saved)
            await _changes(watcher, 1)
            called = await client.call_tool("low_stock", {"threshold": 1})
            assert not called.is_error and isinstance(called.structured_content, dict), _text(called)
            skus = called.structured_content["result"]
            assert skus and skus == sorted(skus) and all(isinstance(sku, str) for sku in skus)
