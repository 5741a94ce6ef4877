"""Real ``codemode serve --http`` processes with identities, and SDK clients that carry a bearer token."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from codemode.identity import token_key
from tests.conftest import free_port, wait_for_port

CODEMODE = [sys.executable, "-m", "codemode.cli"]
HANDLE = "codemode/session"
ALICE = "alice-token-0123456789abcdefghij"
BOB = "bob-token-0123456789abcdefghijklm"
NOTES = {"command": sys.executable, "args": ["-m", "codemode.demo.notes"], "start_timeout_s": 60}
"""A bundled demo server: programs that call a tool."""


def team_settings(**settings: object) -> dict[str, object]:
    """Two identities: alice by her token's digest, bob by an environment variable (``BOB_TOKEN``)."""
    return {"tokens": {token_key(ALICE): "alice", "env:BOB_TOKEN": "bob"}, **settings}


def text(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


@asynccontextmanager
async def serving(
    tmp: Path,
    *,
    port: int | None = None,
    servers: dict[str, object] | None = None,
    log: Path | None = None,
    **settings: object,
) -> AsyncIterator[str]:
    """``codemode serve --http`` for :func:`team_settings` (plus ``settings``); yields its MCP URL.

    The audit goes to ``tmp/audit.jsonl``; the server's stdout and stderr to ``log`` when given.
    """
    port = port or free_port()
    config = tmp / "team.json"
    body = {"mcpServers": servers or {}, "codemode": team_settings(audit_log=str(tmp / "audit.jsonl"), **settings)}
    config.write_text(json.dumps(body))
    env = {k: v for k, v in os.environ.items() if k != "CODEMODE_HTTP_TOKEN"}
    env.update(CODEMODE_STATE_DIR=str(tmp / "state"), BOB_TOKEN=BOB)
    command = [*CODEMODE, "serve", "--http", str(port), "--config", str(config)]
    async with AsyncExitStack() as stack:
        stderr: Any = None
        if log is not None:
            stderr = stack.enter_context(open(log, "ab"))  # noqa: ASYNC230  # a log file for the child
        proc = await anyio.open_process(command, env=env, stdout=stderr, stderr=stderr)  # uvicorn logs to both
        try:
            await wait_for_port(port, proc, "codemode serve --http")
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            proc.terminate()
            with anyio.fail_after(30):
                await proc.wait()


@asynccontextmanager
async def client(url: str, token: str, *, mode: str = "legacy") -> AsyncIterator[Client]:
    """An SDK client sending ``Authorization: Bearer <token>``."""
    async with AsyncExitStack() as stack:
        headers = {"Authorization": f"Bearer {token}"}
        http = await stack.enter_async_context(create_mcp_http_client(headers=headers))  # the SDK's timeouts
        yield await stack.enter_async_context(Client(streamable_http_client(url, http_client=http), mode=mode))


async def run(session: Client, code: str, name: str | None = None, **kwargs: Any) -> Any:
    arguments = {"code": code, **({"session": name} if name else {})}
    return await session.call_tool("execute_python", arguments, **kwargs)


def audit(tmp: Path) -> list[dict[str, Any]]:
    path = tmp / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
