"""Reading a big result through a handle: 1 MB of text read in 64 KB slices through a ``ResultHandle`` vs the
same bytes handed to the program as one result (target: ≤ 2× the time).

Both run in one WASM executor, interleaved, against an in-process upstream that answers at once with the
same 1 MB text; each sample is one whole execution (the tool call, then the reads), so the difference is
what the handle costs: the store on the host and one ``fetch`` round trip per slice.

    python -m benchmarks.handles [--runs 15] [--kb 1024] [--slice-kb 64]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types

from codemode.calls import Limits, default_gate
from codemode.executors import create_executor
from codemode.hub.models import ToolRef, ToolSpec

WHOLE = "import codemode_runtime as rt\ntext = rt.call('big', 'text', {})\nlen(text)"
SLICED = (
    "import codemode_runtime as rt\nh = rt.call('big', 'text', {})\nassert isinstance(h, ResultHandle)\n"
    "sum(len(h[i:i + {step}]) for i in range(0, len(h), {step}))"
)


class TextUpstream:
    """Answers ``big.text`` at once with the same text every time."""

    def __init__(self, size: int) -> None:
        line = "2026-12-01T00:00:00 INFO request served in 12 ms ok\n"
        text = (line * (size // len(line) + 1))[:size]
        self._result = types.CallToolResult(content=[types.TextContent(type="text", text=text)])

    def tools(self) -> dict[str, list[ToolSpec]]:
        return {"big": [ToolSpec("big", "text")]}

    def unavailable(self) -> dict[str, str]:
        return {}

    async def call_tool(self, ref: ToolRef, args: dict[str, Any]) -> types.CallToolResult:
        return self._result


async def measure(runs: int, size: int, step: int) -> dict[str, Any]:
    upstream = TextUpstream(size)
    # The threshold decides: the same gate and executor, a handle below it, the whole text above it.
    as_handle = Limits(wall_s=60, handle_bytes=256 * 1024)
    as_one = Limits(wall_s=60, handle_bytes=size * 2)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in ("stubs", "skills"):
            (root / name).mkdir()
        executor = create_executor(
            "wasm", stubs_dir=root / "stubs", skills_dir=root / "skills", scratch_root=root / "scratch",
            gate=default_gate(upstream), limits=Limits(wall_s=60), pool_size=0,
        )  # fmt: skip
        samples: dict[str, list[float]] = {"one_result": [], "handle_slices": []}
        async with executor as ex:
            sliced = SLICED.replace("{step}", str(step))
            for warm in range(2):  # boot the session and import what both programs use
                await ex.run(WHOLE, session="bench", limits=as_one)
                await ex.run(sliced, session="bench", limits=as_handle)
                del warm
            for _ in range(runs):
                for name, code, limits in (("one_result", WHOLE, as_one), ("handle_slices", sliced, as_handle)):
                    started = time.perf_counter()
                    result = await ex.run(code, session="bench", limits=limits)
                    samples[name].append(time.perf_counter() - started)
                    assert result.ok and result.value == size, (name, result.error, result.value)
    one = statistics.median(samples["one_result"]) * 1e3
    handle = statistics.median(samples["handle_slices"]) * 1e3
    return {
        "environment": {
            "python": platform.python_version(),
            "wasmtime": importlib.metadata.version("wasmtime"),
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
        },
        "bytes": size,
        "slice_bytes": step,
        "slices": -(-size // step),
        "runs": runs,
        "one_result_p50_ms": round(one, 2),
        "handle_slices_p50_ms": round(handle, 2),
        "ratio": round(handle / one, 3),
        "target_ratio": 2.0,
        "met": handle / one <= 2.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=15, help="samples of each program (default 15)")
    parser.add_argument("--kb", type=int, default=1024, help="size of the result in KB (default 1024)")
    parser.add_argument("--slice-kb", type=int, default=64, help="size of one slice in KB (default 64)")
    parser.add_argument("--out", type=Path, help="also write the result as JSON here")
    args = parser.parse_args()
    result = anyio.run(measure, args.runs, args.kb * 1024, args.slice_kb * 1024)
    text = json.dumps(result, indent=2)
    if args.out is not None:
        args.out.write_text(text + "\n")
    print(text)
    print(
        f"{result['bytes']:,} bytes in {result['slices']} slices through a handle: {result['handle_slices_p50_ms']} ms "
        f"p50 vs {result['one_result_p50_ms']} ms as one result (ratio {result['ratio']}); target ≤ 2×: "
        f"{'met' if result['met'] else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
