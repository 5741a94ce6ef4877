"""Compile pinned third-party MCP servers started for real, import every stub, and type-check the tree.

npm servers run with ``npx -y NAME@VERSION``; PyPI servers from their own venvs under ``.venv-servers/``
(made by ``scripts/setup``), never from codemode's environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from codemode.compiler import compile_to_dir, load_index
from codemode.config import parse_config
from codemode.hub import Hub
from tests.conftest import REPO

SERVERS_VENVS = REPO / ".venv-servers"


def _config(tmp: Path) -> dict[str, dict[str, object]]:
    (tmp / "files").mkdir()
    (tmp / "files" / "a.txt").write_text("hello")
    git_repo = tmp / "repo"
    subprocess.run(["git", "init", "-q", str(git_repo)], check=True)
    return {
        "everything": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-everything@2026.8.31"]},
        "memory": {
            "command": "npx",
            "args": ["-y", "@modelcontextprotocol/server-memory@2026.8.31"],
            "env": {"MEMORY_FILE_PATH": str(tmp / "memory.jsonl")},
        },
        "filesystem": {
            "command": "npx",
            "args": ["-y", "@modelcontextprotocol/server-filesystem@2026.8.31", str(tmp / "files")],
        },
        "time": {"command": str(SERVERS_VENVS / "time" / "bin" / "mcp-server-time")},
        "git": {
            "command": str(SERVERS_VENVS / "git" / "bin" / "mcp-server-git"),
            "args": ["--repository", str(git_repo)],
        },
    }


@pytest.mark.slow
def test_reference_servers_compile_import_and_typecheck(tmp_path: Path) -> None:
    servers = _config(tmp_path)
    config = parse_config(json.dumps({"mcpServers": servers}))

    async def collect() -> tuple[dict[str, list[object]], list[object]]:
        async with Hub(config) as hub:
            return hub.tools(), hub.status()  # type: ignore[return-value]

    tools, status = anyio.run(collect)
    states = {s.name: (s.state, s.error) for s in status}  # type: ignore[attr-defined]
    assert all(state == "ready" for state, _ in states.values()), states
    assert all(tools[name] for name in servers), {k: len(v) for k, v in tools.items()}

    root = tmp_path / "stubs"
    report = compile_to_dir(tools, root)  # type: ignore[arg-type]
    assert report.tools == sum(len(v) for v in tools.values())
    index = load_index(root)
    assert {s["name"] for s in index["servers"]} == set(servers)

    script = (
        "import importlib, stubs\n"
        "n = 0\n"
        "for server in stubs.SERVERS:\n"
        "    pkg = importlib.import_module('stubs.' + server)\n"
        "    for tool in pkg.TOOLS:\n"
        "        assert callable(getattr(pkg, tool)), (server, tool)\n"
        "        n += 1\n"
        "print(n)\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'sandbox'}:{tmp_path}"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # everything's simulate-research-query can only be called as a task: no stub (issue 14).
    task_only = sum(1 for specs in tools.values() for spec in specs if spec.requires_task)  # type: ignore[attr-defined]
    assert task_only == 1
    assert int(proc.stdout) == report.tools - task_only

    mypy = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "-p", "stubs"],
        cwd=tmp_path, env={**os.environ, "MYPYPATH": str(REPO / "sandbox")}, capture_output=True, text=True,
    )  # fmt: skip
    assert mypy.returncode == 0, mypy.stdout[-3000:]
