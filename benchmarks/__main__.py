"""Run every benchmark and collect the results: JSON per benchmark, one ``summary.md`` and PNG charts.

    python -m benchmarks [--smoke] [--only NAME ...] [--out DIR]

Benchmarks, in order: ``tokens`` (definition tokens of the real catalogs), ``workflows`` (scripted tasks,
direct vs code mode), ``compile`` (stub compiler throughput), ``sandbox`` and ``serve`` (speed; skipped
with a message while their modules do not exist). ``--smoke`` runs each at a small size, for tests.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from benchmarks import bench_compile, bench_tokens, bench_workflows
from codemode.tokens import LABEL

RESULTS = Path(__file__).parent / "results"
BENCHMARKS = ("tokens", "workflows", "compile", "sandbox", "serve")
SPEED = {"sandbox": "benchmarks.bench_sandbox", "serve": "benchmarks.bench_serve"}
SMOKE_CATALOGS = ["everything", "filesystem", "memory"]
"""Small catalogs whose code-mode saving is positive, so a smoke run still exercises a meaningful ratio."""
SMOKE_TASK = "count-tags"
SMOKE_COMPILE_TOOLS = 50


class Skipped(Exception):
    """A benchmark that cannot run here (its module is not written yet); reported, not a failure."""


Outcome = tuple[dict[str, Any], str]


def _log(message: str) -> None:
    # Progress goes to stderr so stdout stays the summary only.
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


async def _tokens(smoke: bool) -> Outcome:
    # Counting is CPU-bound and synchronous; it runs on a worker thread so the event loop stays free.
    only = SMOKE_CATALOGS if smoke else None
    result = await anyio.to_thread.run_sync(lambda: bench_tokens.run(only, write=False))
    return result, bench_tokens.table(result)


async def _workflows(smoke: bool) -> Outcome:
    result = await bench_workflows.run(SMOKE_TASK if smoke else None, write=False)
    return result, bench_workflows.table(result)


async def _compile(smoke: bool) -> Outcome:
    tools = SMOKE_COMPILE_TOOLS if smoke else 1000
    result = await anyio.to_thread.run_sync(lambda: bench_compile.run(tools, write=False))
    return result, compile_table(result)


def _speed(name: str) -> Callable[[bool], Awaitable[Outcome]]:
    async def run(smoke: bool) -> Outcome:
        # Imported lazily: these modules are written separately and may not exist yet.
        try:
            module = importlib.import_module(SPEED[name])
        except ModuleNotFoundError as exc:
            if exc.name != SPEED[name]:
                raise
            raise Skipped(f"{SPEED[name]} does not exist yet") from None
        if not callable(getattr(module, "run", None)) or not callable(getattr(module, "table", None)):
            raise Skipped(f"{SPEED[name]} has no run()/table() yet")
        result: dict[str, Any] = await module.run(smoke=smoke)
        text: str = module.table(result)
        return result, text

    return run


RUNNERS: dict[str, Callable[[bool], Awaitable[Outcome]]] = {
    "tokens": _tokens,
    "workflows": _workflows,
    "compile": _compile,
    "sandbox": _speed("sandbox"),
    "serve": _speed("serve"),
}


def compile_table(result: dict[str, Any]) -> str:
    """Markdown table of a ``bench_compile`` result (it has none of its own)."""
    targets = result["targets"]
    return "\n".join([
        "| metric | value | target |",
        "|---|---:|---:|",
        f"| tools | {result['tools']:,} | |",
        f"| cold compile | {result['cold_s']:.3f} s | ≤ {targets['cold_s']:g} s |",
        f"| no-op recompile | {result['noop_s'] * 1000:.1f} ms | ≤ {targets['noop_s'] * 1000:g} ms |",
        f"| per tool | {result['per_tool_ms']} ms | |",
        f"| baseline: the same catalog all through the generator | {result['baseline_generator_s']:.3f} s | |",
        f"| targets met | {'yes' if result['meets_targets'] else 'NO'} | |",
    ])  # fmt: skip


def environment() -> dict[str, Any]:
    """Where the numbers were measured."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


# -- charts -----------------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    # Agg: no display on CI or servers, and the same PNGs everywhere.
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


DIRECT_COLOR = "#c0504d"
CODE_COLOR = "#4f81bd"


PEER_MARKERS = (
    ("fastmcp_tokens", "FastMCP code mode", "D", "#2e8b57"),
    ("cloudflare_tokens", "Cloudflare codemode", "|", "#e07b00"),
)


def tokens_chart(result: dict[str, Any], path: Path) -> None:
    """Per-catalog direct vs code-mode definition tokens: horizontal bars, log scale, combined on top."""
    plt = _pyplot()
    combined = [r for r in result["rows"] if r["server"] == bench_tokens.COMBINED]
    catalogs = sorted(
        (r for r in result["rows"] if r["server"] != bench_tokens.COMBINED),
        key=lambda r: (r["direct_tokens"], r["server"]),
    )
    # barh draws bottom-up: the largest catalogs end up at the top, the combined row above them all.
    rows = catalogs + combined
    labels = [f"{r['server']} ({r['tools']})" for r in rows]
    height = 0.4
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.32 * len(rows)))
    ys = list(range(len(rows)))
    ax.barh([y + height / 2 for y in ys], [r["direct_tokens"] for r in rows], height, color=DIRECT_COLOR,
            label="direct: every tool definition")  # fmt: skip
    ax.barh([y - height / 2 for y in ys], [r["code_mode_tokens"] for r in rows], height, color=CODE_COLOR,
            label=f"code mode: description + describe() of {result['k']} tools (median)")  # fmt: skip
    # Peers as markers on the code-mode bar's line, only where the benchmark measured them.
    for key, label, marker, color in PEER_MARKERS:
        points = [(r[key], y - height / 2) for y, r in zip(ys, rows, strict=True) if key in r]
        if points:
            version = (result.get("peers", {}).get(key.removesuffix("_tokens")) or {}).get("version")
            ax.scatter([x for x, _ in points], [y for _, y in points], marker=marker, color=color, s=22, zorder=3,
                       label=f"{label} {version}")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yticks(ys, labels)
    for tick, row in zip(ax.get_yticklabels(), rows, strict=True):
        if row["server"] == bench_tokens.COMBINED:
            tick.set_fontweight("bold")
    if combined:
        top = len(rows) - 1
        ax.axhspan(top - 0.5, top + 0.5, color="#f2e394", alpha=0.5, zorder=0)
        c = combined[0]
        ax.annotate(f"{c['saving']:.1%} saved", (c["code_mode_tokens"], top - height / 2), xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize=8, fontweight="bold")  # fmt: skip
    # Log bars need an explicit floor, else they start at the smallest value and the shortest bar vanishes.
    ax.set_xlim(left=10)
    ax.set_xlabel(f"definition tokens ({result['tokens']}, log scale)")
    ax.set_title("Tool-definition tokens in context: direct vs code mode, with peers", pad=36)
    # Legend above the plot: inside it would cover the bars of some catalog whatever the corner.
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=8, frameon=False)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def workflows_chart(result: dict[str, Any], path: Path) -> None:
    """Per-task billed tokens (input summed over the agent's turns + output), direct vs code mode, log scale."""
    plt = _pyplot()
    tasks = result["tasks"]
    direct = [bench_workflows.billed_total(t["direct"]) for t in tasks]
    code = [bench_workflows.billed_total(t["code_mode"]) for t in tasks]
    width = 0.4
    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(tasks) + 2), 4.5))
    xs = list(range(len(tasks)))
    ax.bar([x - width / 2 for x in xs], direct, width, color=DIRECT_COLOR, label="direct tool calling")
    ax.bar([x + width / 2 for x in xs], code, width, color=CODE_COLOR, label="code mode")
    for x, t, c in zip(xs, tasks, code, strict=True):
        ax.annotate(f"−{t['billed_saving']:.1%}", (x + width / 2, c), xytext=(0, 3),
                    textcoords="offset points", ha="center", fontsize=8)  # fmt: skip
    ax.set_yscale("log")
    ax.set_ylim(bottom=10)
    ax.set_xlim(-0.8, len(tasks) - 0.2)
    ax.set_xticks(xs, [t["task"] for t in tasks], rotation=20, ha="right")
    ax.set_ylabel(f"billed tokens per task ({result['tokens']}, log scale)")
    ax.set_title("Workflow tokens billed over the agent loop: direct vs code mode")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


CHARTS: dict[str, Callable[[dict[str, Any], Path], None]] = {"tokens": tokens_chart, "workflows": workflows_chart}


# -- driver -----------------------------------------------------------------------------------------


async def collect(names: list[str], *, smoke: bool) -> list[tuple[str, dict[str, Any] | None, str]]:
    """Run ``names`` in the canonical order: (name, result or None, markdown section body) for each.

    A failed benchmark is reported as ``Failed`` in its section; one broken benchmark should not hide the
    others' numbers (the exit status still says so).
    """
    done: list[tuple[str, dict[str, Any] | None, str]] = []
    for name in [b for b in BENCHMARKS if b in names]:
        _log(f"[benchmarks] {name} ...")
        started = time.perf_counter()
        try:
            result, text = await RUNNERS[name](smoke)
        except Skipped as exc:
            _log(f"[benchmarks] {name}: skipped: {exc}")
            done.append((name, None, f"Skipped: {exc}."))
            continue
        except Exception:
            _log(f"[benchmarks] {name}: FAILED\n{traceback.format_exc()}")
            done.append((name, None, f"Failed:\n\n```\n{traceback.format_exc(limit=3)}```"))
            continue
        _log(f"[benchmarks] {name}: done in {time.perf_counter() - started:.1f} s")
        done.append((name, result, text))
    return done


def write_report(done: list[tuple[str, dict[str, Any] | None, str]], *, smoke: bool, out: Path) -> str:
    """Write ``<name>.json``, the charts and ``summary.md`` to ``out``; returns the summary text."""
    out.mkdir(parents=True, exist_ok=True)
    sections: list[str] = []
    for name, result, text in done:
        if result is not None:
            (out / f"{name}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", "utf-8")
            chart = CHARTS.get(name)
            if chart is not None:
                chart(result, out / f"{name}.png")
                text += f"\n\n![{name}]({name}.png)"
        sections.append(f"## {name}\n\n{text}")
    header = [
        "# codemode benchmarks" + (" (smoke run: small sizes, not the reported figures)" if smoke else ""),
        "",
        *(f"- {key}: {value}" for key, value in environment().items()),
        "- token counts: " + LABEL,
    ]
    summary = "\n".join(header) + "\n\n" + "\n\n".join(sections) + "\n"
    (out / "summary.md").write_text(summary, encoding="utf-8")
    return summary


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="small sizes, fast (for tests)")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, metavar="NAME",
                        help=f"run only these: {', '.join(BENCHMARKS)}")  # fmt: skip
    parser.add_argument("--out", type=Path, help=f"results directory (default {RESULTS})")
    args = parser.parse_args(argv)
    out: Path = args.out or RESULTS
    if args.smoke and args.out is None:
        # A smoke run must never overwrite the reported figures.
        out = Path(tempfile.mkdtemp(prefix="codemode-bench-smoke-"))
        _log(f"[benchmarks] smoke run without --out: writing to {out}")
    names = list(args.only or BENCHMARKS)
    done = anyio.run(lambda: collect(names, smoke=args.smoke))
    sys.stdout.write(write_report(done, smoke=args.smoke, out=out))
    failed = [name for name, result, text in done if result is None and text.startswith("Failed")]
    if failed:
        _log(f"[benchmarks] failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
