"""Compile throughput: a 1,000-tool synthetic catalog, cold, then a no-op recompile (target ≤ 10 s / ≤ 100 ms).

Baseline in the same run: the same catalog compiled with every tool forced through datamodel-code-generator
(no fast path), so the ratio shows what the fast path buys on this machine.

    python -m benchmarks.bench_compile [--tools 1000]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

from codemode.compiler import compile_to_dir, flat
from codemode.hub import ToolSpec

RESULTS = Path(__file__).parent / "results"


def synthetic_catalog(n: int, servers: int = 10, nested_every: int = 5) -> dict[str, list[ToolSpec]]:
    """A realistic mix: flat primitive tools, and every ``nested_every``-th with nested objects and an output
    schema (about 20 %, like real catalogs)."""
    out: dict[str, list[ToolSpec]] = {}
    for i in range(n):
        server = f"svc-{i % servers}"
        props: dict[str, Any] = {
            "query": {"type": "string", "description": f"query {i}"},
            "limit": {"type": "integer", "default": 10},
            "mode": {"type": "string", "enum": ["a", "b", "c"]},
            "tags": {"type": "array", "items": {"type": "string"}},
        }
        output = None
        if nested_every and i % nested_every == 0:
            props["filter"] = {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "range": {"type": "object", "properties": {"lo": {"type": "number"}, "hi": {"type": "number"}}},
                },
            }
            output = {
                "type": "object",
                "properties": {
                    "items": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string"}}}}
                },
            }
        schema = {"type": "object", "properties": props, "required": ["query"]}
        out.setdefault(server, []).append(
            ToolSpec(server, f"tool-{i}", f"Tool number {i}. Does things.", schema, output)
        )
    return out


def run(tools: int = 1000, *, write: bool = True) -> dict[str, Any]:
    """Measure and return the figures (and write ``results/compile.json`` unless ``write`` is False)."""
    catalog = synthetic_catalog(tools)
    with tempfile.TemporaryDirectory() as tmp:  # the generator's imports, paid once, outside both timings
        compile_to_dir(synthetic_catalog(1, nested_every=1), Path(tmp) / "stubs")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "stubs"
        t0 = time.perf_counter()
        report = compile_to_dir(catalog, root)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = compile_to_dir(catalog, root)
        noop = time.perf_counter() - t0
        assert not again.written, "a no-op recompile wrote files"
        files = sum(1 for _ in root.rglob("*.py"))
    # The baseline: the same catalog with the fast path switched off, so every schema goes through the generator.
    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(flat, "flat_annotation", return_value=None):
        t0 = time.perf_counter()
        compile_to_dir(catalog, Path(tmp) / "stubs")
        generator = time.perf_counter() - t0
    result = {
        "benchmark": "compile",
        "tools": tools,
        "files": files,
        "cold_s": round(cold, 3),
        "noop_s": round(noop, 4),
        "per_tool_ms": round(cold / tools * 1000, 2),
        "baseline_generator_s": round(generator, 3),
        "targets": {"cold_s": 10.0, "noop_s": 0.1},
        "meets_targets": cold <= 10.0 and noop <= 0.1,
        "warnings": len(report.warnings),
        "env": {"python": platform.python_version(), "machine": platform.machine(), "cpus": _cpus()},
    }
    if write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "compile.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _cpus() -> int:
    import os

    return os.cpu_count() or 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tools", type=int, default=1000)
    args = parser.parse_args()
    r = run(args.tools)
    print(
        f"compile {r['tools']} tools: cold {r['cold_s']:.2f} s ({r['per_tool_ms']} ms/tool), "
        f"no-op recompile {r['noop_s'] * 1000:.1f} ms; "
        f"the same catalog all through the generator {r['baseline_generator_s']} s. targets ≤ 10 s / ≤ 100 ms: "
        f"{'met' if r['meets_targets'] else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
