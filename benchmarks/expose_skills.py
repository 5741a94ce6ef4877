"""Skills as MCP tools (``serve --expose-skills``): a skill called as its own tool vs through ``execute_python``.

Both go through the real front (the SDK client in process), the real engine, the WASM sandbox and the demo
servers, measured in the same run with their samples interleaved (so drift hits both alike):

- ``low_stock_report`` called as a tool (arguments checked, then ``from skills import …; NAME(**args)`` in
  the client's warm ``skill-tools`` session) vs the same call written as an ``execute_python`` program in a
  warm session;
- the same tool call if each call ran in a fresh session (created, run, closed) instead: the figure behind
  running skill tools in one warm session per client.

    python -m benchmarks.expose_skills [--smoke]
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mcp import Client

from benchmarks import speed
from benchmarks.bench_skills import REPO, _config
from codemode.engine import Engine
from codemode.front import build_server
from codemode.skills.expose import exposed

ARGS = {"threshold": 2, "category": "garden"}
PROGRAM = "from skills import low_stock_report\nlow_stock_report(threshold=2, category='garden')"


async def _interleaved(n: int, *fns: Callable[[], Awaitable[None]]) -> list[float]:
    """The median of ``n`` samples of each of ``fns``, taken in turn, in milliseconds."""
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(n):
        for fn, out in zip(fns, samples, strict=True):
            started = time.perf_counter()
            await fn()
            out.append(time.perf_counter() - started)
    return [statistics.median(s) * 1000 for s in samples]


async def run(smoke: bool = False) -> dict[str, Any]:
    n = 5 if smoke else 40
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-expose-") as scratch:
        skills_dir = Path(scratch) / "skills"
        shutil.copytree(REPO / "skills", skills_dir, ignore=shutil.ignore_patterns(".lock", ".*.tmp"))
        async with Engine(_config(skills_dir), executor="wasm") as engine:
            async with Client(build_server(engine, expose_skills=True)) as client:

                async def as_tool() -> None:
                    result = await client.call_tool("low_stock_report", ARGS)
                    if result.is_error:
                        raise RuntimeError(str(result.content))

                async def as_program() -> None:
                    result = await client.call_tool("execute_python", {"code": PROGRAM, "session": "bench"})
                    if result.is_error:
                        raise RuntimeError(str(result.content))

                async def fresh_session() -> None:
                    session = f"bench-{uuid.uuid4().hex[:8]}"
                    tool = server_tools["low_stock_report"]
                    try:
                        outcome = await engine.execute(tool.program(ARGS), session=session)
                    finally:
                        await engine.close_session(session)
                    if outcome.is_error:
                        raise RuntimeError(outcome.text)

                server_tools, _ = exposed(engine.skills, stubs=engine.stubs_path, reserved={"execute_python"})
                await as_tool()  # warm both sessions before timing
                await as_program()
                tool_ms, program_ms = await _interleaved(n, as_tool, as_program)
                rows.append(
                    speed.row("skill called as an MCP tool (p50)", tool_ms, "ms",
                              "same skill via execute_python", program_ms, "reported (≈ 1×)")
                )  # fmt: skip
                fresh_ms, warm_ms = await _interleaved(max(3, n // 4), fresh_session, as_tool)
                rows.append(
                    speed.row("skill tool in a fresh session per call (p50)", fresh_ms, "ms",
                              "warm per-client session (the choice)", warm_ms, "reported")
                )  # fmt: skip
    return {
        "benchmark": "expose_skills", "rows": rows,
        "env": {"python": sys.version.split()[0], "cpus": os.cpu_count(), "samples": n},
    }  # fmt: skip


table = speed.table

if __name__ == "__main__":
    speed.main("expose_skills", __doc__, run)
