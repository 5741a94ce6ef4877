"""An upstream over streamable HTTP: the hub lists and calls it, and a sandboxed program reaches it."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from codemode.audit import AuditLog
from codemode.config import parse_config
from codemode.engine import Engine
from codemode.hub import Hub, ToolRef
from tests.conftest import free_port, wait_for_port

pytestmark = pytest.mark.anyio


@pytest.fixture
async def notes_over_http() -> AsyncIterator[str]:
    port = free_port()
    code = (
        "import anyio\nfrom codemode.demo.notes import server\n"
        f"anyio.run(lambda: server.run_streamable_http_async(host='127.0.0.1', port={port}))\n"
    )
    process = await anyio.open_process([sys.executable, "-c", code], stdout=None, stderr=None)
    try:
        await wait_for_port(port, process, "the HTTP notes server", timeout_s=60)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        with anyio.fail_after(30):
            await process.wait()


async def test_http_upstream_through_hub_and_sandbox(
    notes_over_http: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTES_TOKEN", "t0ken")
    raw = {"mcpServers": {"notes": {"type": "http", "url": notes_over_http,
                                    "headers": {"Authorization": "Bearer ${NOTES_TOKEN}"}}}}  # fmt: skip
    config = parse_config(json.dumps(raw))
    async with Hub(config) as hub:
        (status,) = hub.status()
        assert status.state == "ready" and status.transport in ("http", "streamable-http")
        assert {spec.name for spec in hub.tools()["notes"]} >= {"search_notes", "list_tags"}
        tags = await hub.call_tool(ToolRef("notes", "list_tags"), {})
        assert not tags.is_error
    async with Engine(config, stubs_dir=tmp_path / "stubs", skills_dir=tmp_path / "skills",
                      audit=AuditLog(tmp_path / "audit.jsonl")) as engine:  # fmt: skip
        outcome = await engine.execute("from stubs import notes\nsorted(notes.list_tags())[:1]", session="h")
        assert not outcome.is_error, outcome.text
        assert outcome.text.startswith('["') and "t0ken" not in outcome.text
