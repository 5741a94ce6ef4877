"""What counting fuel costs: the same programs on an executor that meters fuel and on the default one.

The default executor bounds CPU by its wall-time deadline (an epoch interrupt); ``Limits.fuel`` puts the
interpreter on an engine that also counts instructions. Both run in one process and take turns, program by
program, so the machine's noise falls on both alike; each figure is the median over ``--runs`` rounds:

- a trivial program (``1 + 1``) on a warm session;
- a CPU-bound one (a loop of 20,000 additions);
- one tool call (the echo server).

    python -m benchmarks.bench_fuel [--smoke] [--runs 5]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from codemode.calls.gate import default_gate
from codemode.compiler import compile_to_dir
from codemode.config import parse_config
from codemode.executors import Executor, Limits, create_executor
from codemode.hub import Hub

PROGRAMS = (
    ("trivial `1 + 1`", "1 + 1", 400),
    ("CPU-bound loop (20,000 additions)", "total = 0\nfor i in range(20_000):\n    total += i", 60),
    ("one tool call (echo)", "echo.echo(text='x')", 200),
)
METERED = Limits(fuel=40_000_000_000, max_tool_calls=10**6)
DEFAULT = Limits(max_tool_calls=10**6)


async def _timed(executor: Executor, code: str) -> float:
    started = time.perf_counter()
    result = await executor.run(code, session="bench")
    elapsed = time.perf_counter() - started
    if not result.ok:
        raise RuntimeError(f"{code!r} failed: {result.error}")
    return elapsed


async def run(*, smoke: bool = False, runs: int = 5) -> dict[str, Any]:
    """Per program: the medians of ``runs`` rounds, metered and not; returns ``{"rows": [...]}``."""
    scale = 10 if smoke else 1
    echo = {"command": sys.executable, "args": ["-m", "benchmarks.servers.echo"], "cwd": str(Path(__file__).parents[1])}
    rounds: dict[str, list[tuple[float, float]]] = {label: [] for label, _, _ in PROGRAMS}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = parse_config(json.dumps({"mcpServers": {"echo": echo}}))
        async with Hub(config) as hub, contextlib.AsyncExitStack() as stack:
            compile_to_dir(hub.tools(), root / "stubs", summaries=hub.summaries())
            executors: dict[str, Executor] = {}
            for name, limits in (("metered", METERED), ("default", DEFAULT)):
                executor = create_executor(
                    "wasm", stubs_dir=root / "stubs", skills_dir=root / "skills", scratch_root=root / f"scratch-{name}",
                    gate=default_gate(hub), limits=limits, pool_size=1,
                )  # fmt: skip
                executors[name] = await stack.enter_async_context(executor)
                await _timed(executors[name], "from stubs import echo")
            for _ in range(1 if smoke else runs):
                for label, code, n in PROGRAMS:
                    samples: dict[str, list[float]] = {name: [] for name in executors}
                    for _ in range(max(2, n // scale)):
                        for name, executor in executors.items():  # taking turns: the same noise on both
                            samples[name].append(await _timed(executor, code))
                    rounds[label].append(
                        (statistics.median(samples["metered"]) * 1000, statistics.median(samples["default"]) * 1000)
                    )
    rows = []
    for label, pairs in rounds.items():
        metered = statistics.median(m for m, _ in pairs)
        default = statistics.median(d for _, d in pairs)
        saved = [1 - d / m for m, d in pairs]
        rows.append({
            "program": label, "metered_ms": round(metered, 3), "default_ms": round(default, 3),
            "saved": round(statistics.median(saved), 3), "saved_min": round(min(saved), 3),
            "saved_max": round(max(saved), 3),
        })  # fmt: skip
    return {"benchmark": "fuel", "runs": len(next(iter(rounds.values()))), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="few samples, for tests")
    parser.add_argument("--runs", type=int, default=5, help="rounds; each figure is their median (default 5)")
    args = parser.parse_args()
    result = anyio.run(lambda: run(smoke=args.smoke, runs=args.runs))
    print(f"median of {result['runs']} rounds, the two executors taking turns in one process:")
    print("| program | fuel counted | default | time saved (median, min–max) |")
    print("|---|---:|---:|---|")
    for r in result["rows"]:
        print(
            f"| {r['program']} | {r['metered_ms']:.3f} ms | {r['default_ms']:.3f} ms | "
            f"{r['saved']:.0%} ({r['saved_min']:.0%}–{r['saved_max']:.0%}) |"
        )


if __name__ == "__main__":
    main()
