"""End-to-end speed of ``codemode serve`` through a real MCP client (the SDK's, over stdio).

Side by side in one run, against the pinned memory reference server:

- direct: the client calls ``read_graph`` on the memory server itself;
- code mode: the client calls ``execute_python`` on ``codemode serve`` with ``mem.read_graph()``;
- a trivial program (``1 + 1``) through ``execute_python`` on a warm session.

Targets (serve issue): trivial program p50 ≤ 10 ms; one tool call inside ``execute_python`` costs ≤ 2 ms
more than the same call made directly.

    python -m benchmarks.bench_serve [--smoke]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.client.stdio import StdioServerParameters

from benchmarks import speed

RESULTS = Path(__file__).parent / "results"
MEMORY = "@modelcontextprotocol/server-memory@2026.8.31"


async def run(*, smoke: bool = False) -> dict[str, Any]:
    """Measure; returns ``{"benchmark": "serve", "rows": [...]}``."""
    n = 20 if smoke else 300
    with tempfile.TemporaryDirectory() as tmp:
        mem_env = {"MEMORY_FILE_PATH": str(Path(tmp) / "memory.jsonl")}
        config = Path(tmp) / "mcp.json"
        config.write_text(
            json.dumps({"mcpServers": {"mem": {"command": "npx", "args": ["-y", MEMORY], "env": mem_env}}})
        )
        env = {**os.environ, "CODEMODE_STATE_DIR": str(Path(tmp) / "state")}
        direct_params = StdioServerParameters(command="npx", args=["-y", MEMORY], env={**env, **mem_env})
        async with Client(direct_params, read_timeout_seconds=120) as client:
            await client.call_tool("read_graph", {})
            direct = await speed.p50(lambda: client.call_tool("read_graph", {}), n)
        served = StdioServerParameters(
            command=sys.executable, args=["-m", "codemode.cli", "serve", "--config", str(config)], env=env
        )
        async with Client(served, read_timeout_seconds=120) as client:
            first = await client.call_tool("execute_python", {"code": "from stubs import mem\nmem.read_graph()"})
            assert not first.is_error, first.content
            inside = await speed.p50(lambda: client.call_tool("execute_python", {"code": "mem.read_graph()"}), n)
            trivial = await speed.p50(lambda: client.call_tool("execute_python", {"code": "1 + 1"}), n)
    rows = [
        speed.row("trivial execute_python p50", trivial, "ms", "direct read_graph p50", direct, "≤ 10 ms"),
        speed.row("tool call inside execute_python p50", inside, "ms", "direct read_graph p50", direct, "—"),
        speed.row("overhead vs direct call p50", inside - direct, "ms", "direct read_graph p50", direct, "≤ 2 ms"),
    ]
    return {"benchmark": "serve", "rows": rows, "env": {"python": sys.version.split()[0], "cpus": os.cpu_count()}}


table = speed.table

if __name__ == "__main__":
    speed.main("serve", __doc__, run)
