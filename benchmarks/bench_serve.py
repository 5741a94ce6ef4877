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

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

RESULTS = Path(__file__).parent / "results"
MEMORY = "@modelcontextprotocol/server-memory@2026.8.31"


async def _p50(fn: Callable[[], Awaitable[Any]], n: int) -> float:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def _row(metric: str, value: float, baseline: str, baseline_value: float, target: str) -> dict[str, Any]:
    return {
        "metric": metric, "value": round(value, 3), "unit": "ms", "baseline": baseline,
        "baseline_value": round(baseline_value, 3),
        "ratio": round(value / baseline_value, 2) if baseline_value else None, "target": target,
    }  # fmt: skip


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
            direct = await _p50(lambda: client.call_tool("read_graph", {}), n)
        served = StdioServerParameters(
            command=sys.executable, args=["-m", "codemode.cli", "serve", "--config", str(config)], env=env
        )
        async with Client(served, read_timeout_seconds=120) as client:
            first = await client.call_tool("execute_python", {"code": "from stubs import mem\nmem.read_graph()"})
            assert not first.is_error, first.content
            inside = await _p50(lambda: client.call_tool("execute_python", {"code": "mem.read_graph()"}), n)
            trivial = await _p50(lambda: client.call_tool("execute_python", {"code": "1 + 1"}), n)
    rows = [
        _row("trivial execute_python p50", trivial, "direct read_graph p50", direct, "≤ 10 ms"),
        _row("tool call inside execute_python p50", inside, "direct read_graph p50", direct, "—"),
        _row("overhead vs direct call p50", inside - direct, "direct read_graph p50", direct, "≤ 2 ms"),
    ]
    return {"benchmark": "serve", "rows": rows, "env": {"python": sys.version.split()[0], "cpus": os.cpu_count()}}


def table(result: dict[str, Any]) -> str:
    """Markdown table of a result."""
    lines = ["| metric | value | baseline | ratio | target |", "|---|---:|---|---:|---|"]
    for r in result["rows"]:
        lines.append(
            f"| {r['metric']} | {r['value']:.2f} ms | {r['baseline']}: {r['baseline_value']:.2f} ms "
            f"| {r['ratio']:.2f}× | {r['target']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="few samples, for tests")
    args = parser.parse_args()
    result = anyio.run(lambda: run(smoke=args.smoke))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serve.json").write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.write(table(result) + "\n")


if __name__ == "__main__":
    main()
