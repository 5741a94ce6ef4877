"""Result type inference per tool call: the gate with and without the inference step (shape of the result,
merged into the tool's book entry), for a small result and for a 10,000-row one.

Both chains run in the same process, interleaved in rounds, against an in-process upstream that answers at
once, so the difference is the inference step and nothing else. The book's threshold is never reached (no
stubs are compiled here: publishing happens in the background, off the call's path).

    python -m benchmarks.bench_infer [--calls 5000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types

from codemode.calls import Gate, Limits, default_gate
from codemode.calls.infer import InferResultStep
from codemode.catalog.observed import ShapeBook
from codemode.hub.models import ToolRef, ToolSpec

ROWS = 10_000


def _row(i: int) -> dict[str, Any]:
    return {"sku": f"SKU-{i:05d}", "name": f"item {i}", "price_cents": i * 7, "tags": ["a", "b"], "stock": i % 13}


class InstantUpstream:
    """``small`` answers one JSON row as text; ``big`` a 10,000-row list as structured content."""

    def __init__(self) -> None:
        self._tools = {"svc": [ToolSpec("svc", "small"), ToolSpec("svc", "big")]}
        self._small = types.CallToolResult(content=[types.TextContent(type="text", text=json.dumps(_row(1)))])
        rows = {"rows": [_row(i) for i in range(ROWS)]}
        self._big = types.CallToolResult(
            content=[types.TextContent(type="text", text="(see structured content)")], structured_content=rows
        )

    def tools(self) -> dict[str, list[ToolSpec]]:
        return self._tools

    def unavailable(self) -> dict[str, str]:
        return {}

    async def call_tool(self, ref: ToolRef, args: dict[str, Any]) -> types.CallToolResult:
        return self._small if ref.tool == "small" else self._big


async def measure(calls: int, rounds: int = 10) -> dict[str, Any]:
    upstream = InstantUpstream()
    out: dict[str, Any] = {"rows": ROWS}
    with tempfile.TemporaryDirectory() as tmp:
        book = ShapeBook(Path(tmp) / "shapes.json", threshold=10**9)
        bare = default_gate(upstream)
        inferring = default_gate(upstream, infer=InferResultStep(book, lambda ref, change: None))
        for tool, n in (("small", calls), ("big", max(rounds, calls // 50))):
            ref = ToolRef("svc", tool)
            limits = Limits(max_tool_calls=10 * n + 1000, max_result_bytes=64 * 1024 * 1024)
            samples: dict[str, list[float]] = {"bare": [], "infer": []}

            async def run(gate: Gate, count: int, ref: ToolRef = ref, limits: Limits = limits) -> list[float]:
                ctx = gate.context(session="bench", limits=limits)
                times = []
                for _ in range(count):
                    started = time.perf_counter()
                    reply = await gate.call(ctx, ref, {}, 2)
                    times.append(time.perf_counter() - started)
                    assert reply.ok, reply.message
                return times

            await run(bare, 5)
            await run(inferring, 5)
            per_round = max(1, n // rounds)
            for _ in range(rounds):
                samples["bare"] += await run(bare, per_round)
                samples["infer"] += await run(inferring, per_round)
            bare_p50 = statistics.median(samples["bare"]) * 1e6
            infer_p50 = statistics.median(samples["infer"]) * 1e6
            out[tool] = {
                "calls_each": len(samples["bare"]),
                "bare_gate_p50_us": round(bare_p50, 1),
                "infer_gate_p50_us": round(infer_p50, 1),
                "infer_adds_p50_us": round(infer_p50 - bare_p50, 1),
                "ratio": round(infer_p50 / bare_p50, 3),
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=5_000, help="calls of the small tool per chain (default 5,000)")
    args = parser.parse_args()
    result = anyio.run(measure, args.calls)
    print(json.dumps(result, indent=2))
    for tool in ("small", "big"):
        r = result[tool]
        print(f"{tool}: inference adds {r['infer_adds_p50_us']} µs p50 per call "
              f"({r['bare_gate_p50_us']} → {r['infer_gate_p50_us']} µs, ratio {r['ratio']})")  # fmt: skip


if __name__ == "__main__":
    main()
