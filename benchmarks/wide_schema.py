"""How compile time grows with the number of nested properties of one tool (the class split was quadratic).

``python -m benchmarks.wide_schema``: compiles one tool with N object-valued properties for N = 200 and
N = 1,600 in the same run and prints each median (3 runs) and their ratio. Linear growth gives a ratio near
8; the quadratic split it replaced gave ~90 (1,600 properties: 46 s).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from codemode.compiler import compile_to_dir
from codemode.hub import ToolSpec


def _seconds(count: int, root: Path) -> float:
    properties = {f"p{i}": {"type": "object", "properties": {"q": {"type": "string"}}} for i in range(count)}
    spec = ToolSpec("wide", "t", "Wide.", {"type": "object", "properties": properties})
    runs = []
    for run in range(3):
        started = time.perf_counter()
        compile_to_dir({"wide": [spec]}, root / f"{count}-{run}")
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        small, large = _seconds(200, Path(tmp)), _seconds(1_600, Path(tmp))
    print(f"200 properties: {small:.2f} s, 1,600 properties: {large:.2f} s (median of 3); ratio {large / small:.1f}")


if __name__ == "__main__":
    main()
