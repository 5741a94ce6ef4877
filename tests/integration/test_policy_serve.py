"""Policy and approvals through ``codemode serve`` (stdio) with the SDK client, against the real filesystem
reference server: an ``ask`` call waits for the person's answer given through MCP elicitation, a ``deny``
rule and read-only mode refuse at the gate, and every decision lands in the audit log and ``history``."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.conftest import free_port, wait_for_port
from tests.integration.test_serve import FS

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CODEMODE = [sys.executable, "-m", "codemode.cli"]


def _text(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


def _config(tmp: Path, policy: dict[str, Any]) -> tuple[Path, Path]:
    docs = tmp / "docs"
    docs.mkdir()
    (docs / "keep.txt").write_text("kept")
    path = tmp / "mcp.json"
    cfg = {"mcpServers": {"fs": {"command": "npx", "args": ["-y", FS, str(docs)]}}, "codemode": {"policy": policy}}
    path.write_text(json.dumps(cfg, indent=1))
    return path, docs


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "CODEMODE_STATE_DIR": str(tmp / "state")}


@asynccontextmanager
async def serve(tmp: Path, config: Path, **client: Any) -> AsyncIterator[Client]:
    params = StdioServerParameters(
        command=CODEMODE[0], args=[*CODEMODE[1:], "serve", "--config", str(config)], env=_env(tmp)
    )
    async with Client(params, read_timeout_seconds=120, mode="legacy", **client) as c:
        yield c


class Person:
    """The elicitation callback: answers from a script, and keeps every question asked."""

    def __init__(self, *answers: str | None) -> None:
        self.answers = list(answers)
        self.questions: list[str] = []

    async def __call__(self, context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.questions.append(params.message)
        answer = self.answers.pop(0)
        if answer is None:
            return types.ElicitResult(action="decline")
        return types.ElicitResult(action="accept", content={"answer": answer})


def _write(docs: Path, name: str, content: str = "hello") -> str:
    return f"fs.write_file(path={str(docs / name)!r}, content={content!r})"


async def test_approve_decline_and_approve_for_session(tmp_path: Path) -> None:
    config, docs = _config(tmp_path, {"rules": {"fs.write_file": "ask", "fs.move_*": "deny"}})
    person = Person("approve", None, "approve for this session")
    async with serve(tmp_path, config, elicitation_callback=person) as client:

        async def run(code: str) -> Any:
            return await client.call_tool("execute_python", {"code": "from stubs import fs\n" + code})

        approved = await run(f"before = 41\n{_write(docs, 'a.txt', 'line one')}\nbefore + 1")
        assert not approved.is_error, _text(approved)
        assert "42" in _text(approved)
        assert (docs / "a.txt").read_text() == "line one"
        assert len(person.questions) == 1
        assert "write_file" in person.questions[0] and "server fs" in person.questions[0]
        assert str(docs / "a.txt") in person.questions[0] and "line one" in person.questions[0]

        declined = await run(
            f"try:\n    {_write(docs, 'b.txt')}\nexcept ToolDenied as e:\n    print('fallback:', e)"
        )
        assert not declined.is_error, _text(declined)
        assert "fallback: fs.write_file: declined by the person asked" in _text(declined)
        assert not (docs / "b.txt").exists()

        twice = await run(f"{_write(docs, 'c.txt')}\n{_write(docs, 'd.txt')}\n'both'")
        assert not twice.is_error and "both" in _text(twice), _text(twice)
        assert (docs / "c.txt").exists() and (docs / "d.txt").exists()
        assert len(person.questions) == 3  # asked for c.txt only; d.txt ran on the session grant

        # Denied tools get no stub (the model does not plan around them) and are refused at the gate anyway.
        no_stub = await run("fs.move_file")
        assert no_stub.is_error and "has no tool 'move_file'" in _text(no_stub), _text(no_stub)
        args = {"source": str(docs / "keep.txt"), "destination": str(docs / "moved.txt")}
        moved = await run(f"import codemode_runtime\ncodemode_runtime.call('fs', 'move_file', {args!r})")
        assert moved.is_error and "ToolDenied" in _text(moved), _text(moved)
        assert "fs.move_file: denied by the policy (rules['fs.move_*'] = 'deny')" in _text(moved)
        assert (docs / "keep.txt").exists()
        resources = {str(r.uri) for r in (await client.list_resources()).resources}
        assert "stubs://fs/write_file" in resources and "stubs://fs/move_file" not in resources

    history = await anyio.run_process([*CODEMODE, "history", "--config", str(config), "--json"], env=_env(tmp_path))
    entries = json.loads(history.stdout)
    notes = [c["policy"] for e in entries for c in e["calls"] if c["tool"] in ("write_file", "move_file")]
    approvals = [(n["decision"], n.get("approval"), n.get("approved_by")) for n in notes]
    assert approvals == [
        ("ask", "approved", "person via MCP elicitation"),
        ("ask", "declined", "person via MCP elicitation"),
        ("ask", "approved for the session", "person via MCP elicitation"),
        ("ask", "approved for the session", "session grant"),
        ("deny", None, None),
    ]
    assert all(n["decided_at"] > 0 for n in notes if n["decision"] == "ask")
    listed = await anyio.run_process([*CODEMODE, "history", "--config", str(config)], env=_env(tmp_path))
    table = listed.stdout.decode()
    assert "fs.write_file declined" in table and "fs.move_file denied" in table and "fs.write_file approved" in table


async def test_a_client_without_elicitation_gets_a_clear_refusal(tmp_path: Path) -> None:
    config, docs = _config(tmp_path, {})  # write_file is annotated destructiveHint: ask by default
    async with serve(tmp_path, config) as client:
        result = await client.call_tool("execute_python", {"code": "from stubs import fs\n" + _write(docs, "a.txt")})
    text = _text(result)
    assert result.is_error and "ToolDenied" in text, text
    assert "fs.write_file: needs approval (annotation destructiveHint" in text
    assert 'codemode.policy.rules["fs.write_file"] = "allow"' in text
    assert not (docs / "a.txt").exists()


async def test_read_only_mode_against_the_filesystem_server(tmp_path: Path) -> None:
    config, docs = _config(tmp_path, {"read_only": True, "rules": {"fs.write_file": "allow"}})
    code = (
        "from stubs import fs\n"
        f"kept = fs.read_text_file(path={str(docs / 'keep.txt')!r})\n"
        "import codemode_runtime\n"
        f"try:\n    codemode_runtime.call('fs', 'create_directory', {{'path': {str(docs / 'new')!r}}})\n"
        "except ToolDenied as e:\n    denied = str(e)\n"
        "print(kept, '|', hasattr(fs, 'write_file'), '|', denied)"
    )
    async with serve(tmp_path, config, elicitation_callback=Person()) as client:
        result = await client.call_tool("execute_python", {"code": code})
    text = _text(result)
    assert not result.is_error, text
    assert "{'content': 'kept'} | False |" in text
    assert "policy.read_only = true and the tool is not annotated readOnlyHint" in text
    assert not (docs / "new").exists()


async def test_a_2026_07_28_client_over_http_approves_through_input_required(tmp_path: Path) -> None:
    config, docs = _config(tmp_path, {"rules": {"fs.write_file": "ask"}})
    port = free_port()
    serve_http = [*CODEMODE, "serve", "--config", str(config), "--http", str(port)]
    proc = await anyio.open_process(serve_http, env=_env(tmp_path), stderr=None)
    person = Person("approve", "deny")
    try:
        await wait_for_port(port, proc, "codemode serve --http")
        async with Client(f"http://127.0.0.1:{port}/mcp", elicitation_callback=person) as client:
            assert client.protocol_version == "2026-07-28"  # sessionless: no elicitation/create back-channel
            code = (
                "from stubs import fs\nbefore = 41\n" + _write(docs, "a.txt", "parked") + "\n"
                f"try:\n    {_write(docs, 'b.txt')}\nexcept ToolDenied as e:\n    print('fallback:', e)\n"
                "before + 1"
            )
            result = await client.call_tool("execute_python", {"code": code})
            text = _text(result)
            assert not result.is_error, text
            assert "fallback: fs.write_file: declined by the person asked" in text and "42" in text
            assert result.meta is not None and "codemode/session" in result.meta  # the interpreter it ran in
    finally:
        proc.terminate()
        with anyio.fail_after(30):
            await proc.wait()
    assert (docs / "a.txt").read_text() == "parked" and not (docs / "b.txt").exists()
    assert len(person.questions) == 2 and "a.txt" in person.questions[0] and "b.txt" in person.questions[1]
