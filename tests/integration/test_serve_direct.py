"""Hybrid mode through ``codemode serve`` and the SDK client: upstream tools offered beside execute_python.

The upstreams are the bundled demo servers (``notes`` twice, so that tool names clash); the calls must pass
the same gate, journal and audit as a program's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from codemode.audit import AuditLog
from tests.integration.test_serve import _text, serve_stdio


def _config(tmp: Path, **settings: Any) -> Path:
    demo = {"command": sys.executable, "start_timeout_s": 60}
    servers = {name: {**demo, "args": ["-m", f"codemode.demo.{module}"]}
               for name, module in (("inventory", "inventory"), ("notes", "notes"), ("notes2", "notes"))}  # fmt: skip
    path = tmp / "mcp.json"
    codemode = {"audit_log": str(tmp / "audit.jsonl"), **settings}
    path.write_text(json.dumps({"mcpServers": servers, "codemode": codemode}))
    return path


@pytest.mark.slow
async def test_direct_tools_are_listed_called_gated_and_audited(tmp_path: Path) -> None:
    config = _config(tmp_path, expose_direct=["inventory.check_stock", "notes*.list_tags"])
    async with serve_stdio(tmp_path, "--config", str(config)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        # Its own name where unique; the server's prefix where two servers both have list_tags.
        assert set(tools) == {"execute_python", "check_stock", "notes_list_tags", "notes2_list_tags"}
        assert tools["check_stock"].input_schema["required"] == ["skus"]
        assert "stock" in (tools["check_stock"].description or "").lower()

        stock = await client.call_tool("check_stock", {"skus": ["ELE-00009"]})
        assert not stock.is_error, _text(stock)
        assert "ELE-00009" in _text(stock)
        tags = await client.call_tool("notes2_list_tags", {})
        assert not tags.is_error and "restock" in _text(tags)
        # A tool error from the upstream comes back as the upstream said it.
        bad = await client.call_tool("check_stock", {"skus": "not-a-list"})
        assert bad.is_error
        # execute_python is still there, and untouched.
        program = await client.call_tool("execute_python", {"code": "from stubs import notes\nlen(notes.list_tags())"})
        assert not program.is_error, _text(program)

    entries = [e for e in AuditLog(tmp_path / "audit.jsonl").entries() if e.executor == "direct"]
    assert [(e.calls[0].server, e.calls[0].tool, e.ok) for e in entries] == [
        ("inventory", "check_stock", True),
        ("notes2", "list_tags", True),
        ("inventory", "check_stock", False),
    ]
    assert [e.calls[0].state.value for e in entries] == ["done", "done", "failed"]
    assert entries[0].calls[0].args_bytes > 0 and "ELE-00009" in entries[0].code


@pytest.mark.slow
async def test_direct_calls_pass_the_gate(tmp_path: Path) -> None:
    # A quota of zero calls is enforced by the gate alone: a call sent straight to the hub would succeed.
    config = _config(tmp_path, expose_direct=["inventory.check_stock"], max_tool_calls=0)
    async with serve_stdio(tmp_path, "--config", str(config)) as client:
        refused = await client.call_tool("check_stock", {"skus": ["ELE-00009"]})
        assert refused.is_error
        assert _text(refused) == "quota: this execution reached its limit of 0 tool calls"
    (entry,) = [e for e in AuditLog(tmp_path / "audit.jsonl").entries() if e.executor == "direct"]
    assert entry.error_kind == "quota" and entry.calls[0].state.value == "refused"


@pytest.mark.slow
async def test_every_tool_direct_drops_execute_python(tmp_path: Path) -> None:
    config = tmp_path / "one.json"
    inventory = {"command": sys.executable, "args": ["-m", "codemode.demo.inventory"], "start_timeout_s": 60}
    config.write_text(json.dumps({"mcpServers": {"inventory": inventory}, "codemode": {"expose_direct": ["*.*"]}}))
    async with serve_stdio(tmp_path, "--config", str(config)) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert "execute_python" not in names and {"check_stock", "list_products"} <= names
        assert not (await client.call_tool("check_stock", {"skus": ["ELE-00009"]})).is_error


@pytest.mark.slow
async def test_discovery_tools_flag(tmp_path: Path) -> None:
    async with serve_stdio(tmp_path, "--discovery-tools") as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert names == {"execute_python", "search_tools", "describe"}
        hits = await client.call_tool("search_tools", {"query": "low stock levels", "limit": 3})
        assert not hits.is_error and "inventory.check_stock" in _text(hits)
        stub = await client.call_tool("describe", {"tool": "inventory.check_stock"})
        assert not stub.is_error and "def check_stock(" in _text(stub) and "from stubs import inventory" in _text(stub)
        missing = await client.call_tool("describe", {"tool": "inventory.nope"})
        assert "no tool 'nope'" in _text(missing)
    async with serve_stdio(tmp_path) as client:  # off by default
        assert {t.name for t in (await client.list_tools()).tools} == {"execute_python"}


@pytest.mark.slow
async def test_a_denied_tool_is_not_offered_directly_nor_run(tmp_path: Path) -> None:
    policy = {"rules": {"inventory.restock*": "deny"}}
    config = _config(tmp_path, expose_direct=["inventory.*"], policy=policy)
    async with serve_stdio(tmp_path, "--config", str(config)) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert "check_stock" in names and not any(name.startswith("restock") for name in names), names
        refused = await client.call_tool("restock", {"sku": "ELE-00009", "quantity": 1})
        assert refused.is_error
    assert not [e for e in AuditLog(tmp_path / "audit.jsonl").entries() if "restock" in e.code and e.ok]
