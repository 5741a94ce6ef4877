"""What the speed benchmarks share: p50 timing, result rows with their baseline, the table and the CLI."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio

RESULTS = Path(__file__).parent / "results"


async def p50(fn: Callable[[], Awaitable[Any]], n: int) -> float:
    """Median wall time of ``n`` sequential awaits of ``fn()``, in milliseconds."""
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


async def p50s(fns: Sequence[Callable[[], Awaitable[Any]]], n: int, block: int = 25) -> list[float]:
    """Median wall time of each of ``fns`` over ``n`` calls, in milliseconds, sampled interleaved: in turns of
    ``block`` calls each, the first of the turns rotating, so a change in the machine's load during the run
    (another process waking, the CPU's clock) falls on all of them alike and their difference still means
    something. Calls stay in short runs, as in a loop of them: one call switching processes every time would
    measure cold caches and sleeping peers instead."""
    samples: list[list[float]] = [[] for _ in fns]
    for i in range(-(-n // block)):
        for k in range(len(fns)):
            j = (i + k) % len(fns)
            for _ in range(min(block, n - i * block)):
                started = time.perf_counter()
                await fns[j]()
                samples[j].append(time.perf_counter() - started)
    return [statistics.median(s) * 1000 for s in samples]


def row(metric: str, value: float, unit: str, baseline: str, baseline_value: float, target: str) -> dict[str, Any]:
    """One measured figure beside the baseline it is compared with (in the same run)."""
    return {
        "metric": metric, "value": round(value, 4), "unit": unit, "baseline": baseline,
        "baseline_value": round(baseline_value, 4),
        "ratio": round(value / baseline_value, 2) if baseline_value else None, "target": target,
    }  # fmt: skip


def table(result: dict[str, Any]) -> str:
    """Markdown table of a speed result."""
    lines = ["| metric | value | baseline | ratio | target |", "|---|---:|---|---:|---|"]
    for r in result["rows"]:
        ratio = f"{r['ratio']:.2f}×" if r["ratio"] is not None else "—"
        lines.append(
            f"| {r['metric']} | {r['value']:.3f} {r['unit']} | {r['baseline']}: {r['baseline_value']:.3f} {r['unit']} "
            f"| {ratio} | {r['target']} |"
        )
    return "\n".join(lines)


def main(name: str, doc: str | None, run: Callable[..., Awaitable[dict[str, Any]]]) -> None:
    """``python -m benchmarks.bench_<name> [--smoke]``: run, write ``results/<name>.json``, print the table."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="few samples, for tests")
    args = parser.parse_args()
    result = anyio.run(lambda: run(smoke=args.smoke))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.write(table(result) + "\n")
