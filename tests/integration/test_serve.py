"""``codemode serve`` through real MCP clients: the SDK client over stdio and HTTP, and the MCP Inspector CLI.

The upstreams are real: the bundled demo servers, and the pinned filesystem + memory reference servers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.conftest import free_port, wait_for_port

CODEMODE = [sys.executable, "-m", "codemode.cli"]
FS = "@modelcontextprotocol/server-filesystem@2026.8.31"
MEMORY = "@modelcontextprotocol/server-memory@2026.8.31"
INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"


def _text(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "CODEMODE_STATE_DIR": str(tmp / "state")}


@asynccontextmanager
async def serve_stdio(tmp: Path, *extra: str) -> AsyncIterator[Client]:
    params = StdioServerParameters(command=CODEMODE[0], args=[*CODEMODE[1:], "serve", *extra], env=_env(tmp))
    async with Client(params, read_timeout_seconds=120) as client:
        yield client


@pytest.fixture
def reference_config(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i, (city, amount) in enumerate([("Berlin", 120), ("Lyon", 75), ("Berlin", 30), ("Porto", 55)]):
        (docs / f"invoice-{i}.json").write_text(json.dumps({"city": city, "amount": amount}))
    cfg = {
        "mcpServers": {
            "fs": {"command": "npx", "args": ["-y", FS, str(docs)]},
            "memory": {
                "command": "npx",
                "args": ["-y", MEMORY],
                "env": {"MEMORY_FILE_PATH": str(tmp_path / "m.jsonl")},
            },
        }
    }
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps(cfg))
    return path


@pytest.mark.slow
async def test_stdio_one_tool_state_errors(tmp_path: Path) -> None:
    async with serve_stdio(tmp_path) as client:
        tools = (await client.list_tools()).tools
        assert [t.name for t in tools] == ["execute_python"]
        assert set(tools[0].input_schema["properties"]) == {"code", "session"}
        assert tools[0].input_schema["required"] == ["code"]
        assert all(prop.get("description") for prop in tools[0].input_schema["properties"].values())
        description = tools[0].description or ""
        assert "inventory" in description and "notes" in description
        first = await client.call_tool("execute_python", {"code": "x = sum(range(10))\nprint(x)"})
        assert not first.is_error and "45" in _text(first)
        second = await client.call_tool("execute_python", {"code": "x * 2"})
        assert "90" in _text(second)
        boom = await client.call_tool("execute_python", {"code": "def f():\n    raise ValueError('boom')\nf()"})
        assert boom.is_error and "ValueError: boom" in _text(boom)
        assert "codemode_runtime" not in _text(boom)  # traceback trimmed to the user's code
        failing = await client.call_tool(
            "execute_python", {"code": "from stubs import inventory\ninventory.get_order(order_id='nope')"}
        )
        assert failing.is_error and "ToolError" in _text(failing) and "no order 'nope'" in _text(failing)
        resources = (await client.list_resources()).resources
        assert any(str(r.uri) == "stubs://inventory/check_stock" for r in resources)


@pytest.mark.slow
async def test_two_reference_servers_in_one_program(tmp_path: Path, reference_config: Path) -> None:
    program = """
import json
from stubs import fs, memory
listing = fs.list_directory(path=DOCS)["content"]
files = [line.split(" ", 1)[1] for line in listing.splitlines() if line.startswith("[FILE]")]
totals = {}
for name in sorted(files):
    data = json.loads(fs.read_text_file(path=DOCS + "/" + name)["content"])
    totals[data["city"]] = totals.get(data["city"], 0) + data["amount"]
memory.create_entities(
    entities=[{"name": c, "entityType": "city", "observations": [f"total {t}"]} for c, t in totals.items()]
)
graph = memory.read_graph()
print(sorted((e["name"], e["observations"][0]) for e in graph["entities"]))
"""
    docs = str(tmp_path / "docs")
    async with serve_stdio(tmp_path, "--config", str(reference_config)) as client:
        result = await client.call_tool("execute_python", {"code": f"DOCS = {docs!r}\n" + program})
        assert not result.is_error, _text(result)
        assert "[('Berlin', 'total 150'), ('Lyon', 'total 75'), ('Porto', 'total 55')]" in _text(result)


@pytest.mark.slow
async def test_bad_programs_are_errors_not_crashes(tmp_path: Path) -> None:
    async with serve_stdio(tmp_path) as client:
        for code, expect in [
            ("", "empty program"),
            ("def (:", "SyntaxError"),
            ("x = 1\n" * 200_000 + "'" * 10_000_000, "too long"),
        ]:
            result = await client.call_tool("execute_python", {"code": code})
            assert result.is_error and expect in _text(result), _text(result)[:300]
        result = await client.call_tool(
            "execute_python", {"code": "print('\\udcff'.encode('utf-8', 'surrogateescape'))"}
        )
        assert not result.is_error and _text(result) == "b'\\xff'", _text(result)
        lone = await client.call_tool("execute_python", {"code": "print('a\\udcffb')"})  # not UTF-8 encodable
        assert not lone.is_error and _text(lone) == "a\\udcffb"
        ok = await client.call_tool("execute_python", {"code": "print('still alive')"})
        assert "still alive" in _text(ok)


@pytest.mark.slow
async def test_output_cap_keeps_full_output_in_scratch(tmp_path: Path) -> None:
    async with serve_stdio(tmp_path) as client:
        big = await client.call_tool("execute_python", {"code": "for i in range(20000):\n    print(f'line {i:05d}')"})
        text = _text(big)
        assert "[output cut:" in text and len(text) < 21_000
        path = text.split("The full output is in ", 1)[1].split(";", 1)[0]
        again = await client.call_tool("execute_python", {"code": f"open({path!r}).read().splitlines()[-1]"})
        assert "line 19999" in _text(again)


@pytest.mark.slow
async def test_parallel_clients_have_separate_sessions(tmp_path: Path) -> None:
    async with serve_stdio(tmp_path) as a, serve_stdio(tmp_path) as b:
        await a.call_tool("execute_python", {"code": "who = 'a'"})
        await b.call_tool("execute_python", {"code": "who = 'b'"})
        results: dict[str, str] = {}

        async def ask(name: str, client: Client) -> None:
            results[name] = _text(
                await client.call_tool("execute_python", {"code": "import time; time.sleep(0.5); who"})
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask, "a", a)
            tg.start_soon(ask, "b", b)
        assert results == {"a": '"a"', "b": '"b"'}


@pytest.mark.slow
async def test_streamable_http(tmp_path: Path) -> None:
    port = free_port()
    proc = await anyio.open_process([*CODEMODE, "serve", "--http", str(port)], env=_env(tmp_path), stderr=None)
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        await wait_for_port(port, proc, "codemode serve --http")
        async with Client(url) as client:
            tools = (await client.list_tools()).tools
            assert [t.name for t in tools] == ["execute_python"]
            # Sessionless HTTP has no client identity: the first result carries a handle the client passes back.
            first = await client.call_tool("execute_python", {"code": "n = 21"})
            assert first.meta is not None
            mine = first.meta["codemode/session"]
            code = "from stubs import notes\nlen(notes.list_tags()) + n * 0 + n"
            result = await client.call_tool("execute_python", {"code": code, "session": mine})
            assert not result.is_error, _text(result)
            assert "29" in _text(result)  # 8 tags + 21: state persisted across HTTP calls
            async with Client(url) as other:
                made = await other.call_tool("execute_python", {"code": "n = 1", "session": "other"})
                assert made.meta is not None
                theirs = made.meta["codemode/session"]
                assert theirs.endswith("/other")
                answers: dict[str, list[Any]] = {}

                async def ask(name: str, c: Client, args: dict[str, str]) -> None:
                    code = "import time\nt0 = time.time()\ntime.sleep(1)\n[n, t0, time.time()]"
                    answers[name] = json.loads(_text(await c.call_tool("execute_python", {"code": code, **args})))

                async with anyio.create_task_group() as tg:
                    tg.start_soon(ask, "first", client, {"session": mine})
                    tg.start_soon(ask, "second", other, {"session": theirs})
                first, second = answers["first"], answers["second"]
                assert (first[0], second[0]) == (21, 1)  # one server, two sessions
                assert max(first[1], second[1]) < min(first[2], second[2])  # the two ran side by side
    finally:
        proc.terminate()
        with anyio.fail_after(30):
            await proc.wait()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("npx") is None, reason="needs npx")
def test_mcp_inspector_cli(tmp_path: Path) -> None:
    base = ["npx", "-y", INSPECTOR, "--cli", *CODEMODE, "serve"]
    listed = subprocess.run(
        [*base, "--method", "tools/list"], env=_env(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert [t["name"] for t in json.loads(listed.stdout)["tools"]] == ["execute_python"]
    called = subprocess.run(
        [*base, "--method", "tools/call", "--tool-name", "execute_python", "--tool-arg", "code=print(6 * 7)"],
        env=_env(tmp_path), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert called.returncode == 0, called.stderr[-2000:]
    assert "42" in called.stdout


@pytest.fixture
def fragile_config(tmp_path: Path, fragile_server: dict[str, Any]) -> Path:
    cfg = tmp_path / "mcp.json"
    cfg.write_text(json.dumps({"mcpServers": {"fragile": fragile_server}}))
    return cfg


@pytest.mark.slow
async def test_cancelled_call_and_upstream_death(tmp_path: Path, fragile_config: Path) -> None:
    cfg = fragile_config
    async with serve_stdio(tmp_path, "--config", str(cfg)) as client:
        await client.call_tool("execute_python", {"code": "keep = 1"})
        with anyio.move_on_after(1.0):
            await client.call_tool("execute_python", {"code": "while True:\n    pass"})
        # The cancelled execution was stopped (not left to run to the 30 s limit) and took its interpreter.
        with anyio.fail_after(20):
            after = await client.call_tool("execute_python", {"code": "keep"})
        assert after.is_error and "NameError" in _text(after)
        first_pid = _text(
            await client.call_tool("execute_python", {"code": "from stubs import fragile\nfragile.pid()"})
        )
        died = await client.call_tool("execute_python", {"code": "from stubs import fragile\nfragile.die()"})
        assert died.is_error and "ToolUnavailable" in _text(died) and "fragile" in _text(died)
        again = await client.call_tool("execute_python", {"code": "from stubs import fragile\nfragile.pid()"})
        assert not again.is_error and _text(again) != first_pid  # restarted on next use
