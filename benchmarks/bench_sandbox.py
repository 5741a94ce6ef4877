"""Sandbox speed: warm snippets, new sessions from the pool, cold start, bridge overhead, idle memory.

Every figure comes with a baseline measured in the same run, so the ratio means something on a noisy
machine:

- warm snippet (``1 + 1`` in a live session) vs the host interpreter's own ``exec`` of the same code;
- first execution in a new session (pool warm) vs a warm snippet;
- cold process start (import codemode, load the cached module, boot, run ``1 + 1``) vs ``python -c pass``;
- bridge overhead: a tool call made from inside the sandbox (timed in the guest) minus the same call made
  directly through the hub (an in-process MCP client), for a 1 KB and a 1 MB payload, sampled in turns of 25
  calls each so both medians come from the same stretches of the run;
- idle pooled instance: RSS growth per extra pre-booted instance vs the host process's own RSS.

    python -m benchmarks.bench_sandbox [--smoke]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel

from benchmarks import speed
from codemode.calls import default_gate
from codemode.compiler import compile_to_dir
from codemode.config import parse_config
from codemode.executors import Limits, create_executor
from codemode.executors.wasm import WasmExecutor
from codemode.hub import Hub, ToolRef

RESULTS = Path(__file__).parent / "results"
GUEST_LOOP = """
import time, codemode_runtime as _c
_payload = 'x' * {size}
_xs = []
for _ in range({n}):
    _t = time.perf_counter()
    _c.call('echo', 'echo', {{'text': _payload}})
    _xs.append(time.perf_counter() - _t)
_xs
"""
TURN = 25
"""Calls per turn of the bridge overhead's interleaved sampling (as ``speed.p50s``)."""


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _cold_start(n: int) -> tuple[float, float]:
    code = (
        "import anyio, tempfile\n"
        "from pathlib import Path\n"
        "from codemode.calls import default_gate\n"
        "from codemode.executors.wasm import WasmExecutor\n"
        "async def main():\n"
        "    d = Path(tempfile.mkdtemp())\n"
        "    class NoTools:\n"
        "        def tools(self): return {}\n"
        "        def unavailable(self): return {}\n"
        "        async def call_tool(self, ref, args): raise RuntimeError\n"
        "    ex = WasmExecutor(stubs_dir=d / 's', skills_dir=d / 'k', scratch_root=d / 'x',\n"
        "                      gate=default_gate(NoTools()), pool_size=0)\n"
        "    async with ex:\n"
        "        assert (await ex.run('1 + 1')).value == 2\n"
        "anyio.run(main)\n"
    )
    cold, bare = [], []
    for _ in range(n):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        cold.append(time.perf_counter() - started)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append(time.perf_counter() - started)
    return statistics.median(cold), statistics.median(bare)


async def run(*, smoke: bool = False) -> dict[str, Any]:
    """Measure everything; returns ``{"benchmark": "sandbox", "rows": [...]}``."""
    n = 30 if smoke else 300
    calls = 20 if smoke else 150
    rows: list[dict[str, Any]] = []
    echo = {"command": sys.executable, "args": ["-m", "benchmarks.servers.echo"], "cwd": str(Path(__file__).parents[1])}
    config = parse_config(json.dumps({"mcpServers": {"echo": echo}}))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        async with Hub(config) as hub:
            compile_to_dir(hub.tools(), root / "stubs", summaries=hub.summaries())
            limits = Limits(max_tool_calls=10_000)
            executor = create_executor(
                "wasm", stubs_dir=root / "stubs", skills_dir=root / "skills", scratch_root=root / "scratch",
                gate=default_gate(hub), limits=limits,
                pool_size=2,
            )  # fmt: skip
            async with executor as ex:
                assert isinstance(ex, WasmExecutor)
                await ex.run("1 + 1", session="warm")
                warm = await speed.p50(lambda: ex.run("1 + 1", session="warm"), n)
                code = compile("1 + 1", "<bench>", "exec")

                async def host_exec() -> None:
                    exec(code, {})
                    await anyio.lowlevel.checkpoint()

                host = await speed.p50(host_exec, n)
                rows.append(speed.row("warm snippet p50", warm, "ms", "host exec() + event-loop turn", host, "≤ 2 ms"))

                fresh = []
                for i in range(5 if smoke else 20):
                    await _wait_for_pool(ex)
                    started = time.perf_counter()
                    await ex.run("1 + 1", session=f"new-{i}")
                    fresh.append((time.perf_counter() - started) * 1000)
                    await ex.close_session(f"new-{i}")
                rows.append(
                    speed.row(
                        "new session from pool p50", statistics.median(fresh), "ms", "warm snippet", warm, "≤ 50 ms"
                    )
                )

                for label, size, target in (("1 KB", 1000, "≤ 0.5 ms"), ("1 MB", 1_000_000, "≤ 5 ms")):
                    ref, args = ToolRef("echo", "echo"), {"text": "x" * size}
                    await hub.call_tool(ref, args)
                    direct_s: list[float] = []
                    bridged_s: list[float] = []
                    for _ in range(-(-calls // TURN)):  # in turns: a change in the machine's load falls on both
                        for _ in range(TURN):
                            started = time.perf_counter()
                            await hub.call_tool(ref, args)
                            direct_s.append(time.perf_counter() - started)
                        loop = GUEST_LOOP.format(size=size, n=TURN)
                        result = await ex.run(loop, session="bridge", limits=limits)
                        assert result.ok and isinstance(result.value, list), result.error
                        bridged_s += [float(x) for x in result.value]
                    direct = statistics.median(direct_s) * 1000
                    bridged = statistics.median(bridged_s) * 1000
                    rows.append(
                        speed.row(f"bridge overhead per call ({label})", bridged - direct, "ms",
                             "direct in-process MCP call", direct, target)
                    )  # fmt: skip

                await _wait_for_pool(ex)
                before = _rss_mb()
                extra = 2 if smoke else 4
                ex.pool_size += extra
                await ex._refill()
                await anyio.sleep(0.5)
                per_instance = (_rss_mb() - before) / extra
                rows.append(
                    speed.row("idle pooled instance RSS", per_instance, "MB", "host process RSS", before, "≤ 12 MB")
                )
    cold, bare = _cold_start(2 if smoke else 5)
    rows.append(speed.row("cold process start (cached module)", cold, "s", "python -c pass", bare, "≤ 0.5 s"))
    return {"benchmark": "sandbox", "rows": rows, "env": {"python": sys.version.split()[0], "cpus": os.cpu_count()}}


async def _wait_for_pool(ex: WasmExecutor) -> None:
    with anyio.fail_after(120):
        while len(ex._pool) < ex.pool_size:  # noqa: ASYNC110 (polling a private counter is fine in a benchmark)
            await anyio.sleep(0.02)


table = speed.table

if __name__ == "__main__":
    speed.main("sandbox", __doc__, run)
