"""Upstreams over streamable HTTP and SSE: the hub lists and calls them with their configured headers, and a
sandboxed program reaches them.

The server (``tests/fixtures/servers/guarded.py``) refuses every request without the bearer token, so the
headers are checked where they arrive; a hub configured without them must fail to connect.
"""

from __future__ import annotations

import json
import os
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

GUARDED = Path(__file__).parent.parent / "fixtures" / "servers" / "guarded.py"
TOKEN = "t0ken-7f3a"


@pytest.fixture(params=["http", "sse"])
async def guarded(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, str]]:
    """(transport, url) of the notes server behind a bearer token, served over ``transport``."""
    transport: str = request.param
    port = free_port()
    process = await anyio.open_process(
        [sys.executable, str(GUARDED), transport, str(port)], env={**os.environ, "GUARD_TOKEN": TOKEN}, stdout=None,
        stderr=None,
    )  # fmt: skip
    try:
        await wait_for_port(port, process, "the guarded notes server", timeout_s=60)
        yield transport, f"http://127.0.0.1:{port}/{'sse' if transport == 'sse' else 'mcp'}"
    finally:
        process.terminate()
        with anyio.fail_after(30):
            await process.wait()


def _config(transport: str, url: str, headers: dict[str, str]) -> str:
    server = {"type": transport, "url": url, "headers": headers, "start_timeout_s": 10}
    return json.dumps({"mcpServers": {"notes": server}})


async def test_upstream_headers_reach_the_server(
    guarded: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    transport, url = guarded
    monkeypatch.setenv("NOTES_TOKEN", TOKEN)
    config = parse_config(_config(transport, url, {"Authorization": "Bearer ${NOTES_TOKEN}"}))
    async with Hub(config) as hub:
        (status,) = hub.status()
        assert status.state == "ready", status
        assert {spec.name for spec in hub.tools()["notes"]} >= {"search_notes", "list_tags"}
        tags = await hub.call_tool(ToolRef("notes", "list_tags"), {})
        assert not tags.is_error, tags
    async with Engine(config, stubs_dir=tmp_path / "stubs", skills_dir=tmp_path / "skills",
                      audit=AuditLog(tmp_path / "audit.jsonl")) as engine:  # fmt: skip
        outcome = await engine.execute("from stubs import notes\nnotes.list_tags()", session="h")
        assert not outcome.is_error, outcome.text
        value = json.loads(outcome.text)
        assert isinstance(value, dict) and value and all(isinstance(n, int) for n in value.values()), value


async def test_without_its_headers_the_server_refuses_the_hub(guarded: tuple[str, str]) -> None:
    # The control for the test above: the server really checks the token.
    transport, url = guarded
    async with Hub(parse_config(_config(transport, url, {"Authorization": "Bearer wrong"}))) as hub:
        (status,) = hub.status()
        assert status.state == "failed" and not hub.tools().get("notes"), status


async def test_an_sse_server_that_refuses_its_messages_fails_the_start_at_once(tmp_path: Path) -> None:
    # The stream opens (GET is not checked) but every POST gets a 401: the SDK drops a refused POST, so the
    # handshake used to wait out the start timeout (two minutes here) and then say only that.
    port = free_port()
    env = {**os.environ, "GUARD_TOKEN": TOKEN, "GUARD_POSTS_ONLY": "1"}
    process = await anyio.open_process([sys.executable, str(GUARDED), "sse", str(port)], env=env)
    try:
        await wait_for_port(port, process, "the guarded notes server", timeout_s=60)
        server = {"type": "sse", "url": f"http://127.0.0.1:{port}/sse", "start_timeout_s": 120}
        with anyio.fail_after(60):
            async with Hub(parse_config(json.dumps({"mcpServers": {"notes": server}}))) as hub:
                (status,) = hub.status()
        assert status.state == "failed", status
        assert "refused the message: HTTP 401" in (status.error or ""), status.error
    finally:
        process.terminate()
        with anyio.fail_after(30):
            await process.wait()
