"""Skills speed: ``save_skill`` with static validation, with its example run, and importing a promoted skill.

Timed inside the WASM sandbox (``time.perf_counter`` in the guest), through the real engine and the demo
servers, each beside a baseline measured in the same run:

- ``save_skill(fn)`` (no example: the host's static checks and the atomic write) vs one read-only tool call
  (``notes.list_tags()``) from the same session;
- ``save_skill(fn, example=...)`` (the example runs in a fresh throwaway session) vs the same baseline;
- ``from skills import NAME`` of a promoted skill in a warm session (its module forgotten before each
  import, so every sample reads and runs the file) vs re-importing a stub module the same way.

    python -m benchmarks.bench_skills [--smoke]
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import speed
from codemode.config import Config, StdioServer, demo_config
from codemode.engine import Engine

REPO = Path(__file__).resolve().parents[1]

DEFINE = '''from stubs import inventory, notes
import sys, time, statistics
from codemode_runtime import skills as _runtime_skills

def low_stock(threshold: int = 5) -> list[str]:
    """SKUs with at most ``threshold`` units in stock."""
    return [p["sku"] for p in inventory.list_products(page_size=200) if p["stock"] <= threshold]

def _p50(fn, n):
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000
'''

SAVE = "_p50(lambda: save_skill(low_stock), {n})"
SAVE_EXAMPLE = '_p50(lambda: save_skill(low_stock, example="low_stock(threshold=1)"), {n})'
CALL = "_p50(lambda: notes.list_tags(), {n})"
IMPORT = '''def _import_skill():
    _runtime_skills._forget("low_stock_report")
    from skills import low_stock_report

def _import_stub():
    for name in [m for m in sys.modules if m == "stubs.inventory" or m.startswith("stubs.inventory.")]:
        del sys.modules[name]
    import stubs.inventory

_import_skill()
[_p50(_import_skill, {n}), _p50(_import_stub, {n})]
'''


def _config(skills_dir: Path) -> Config:
    """The demo servers (this checkout's code), skills in ``skills_dir``."""
    base = demo_config()
    src = str(REPO / "src")
    servers = {
        name: server.model_copy(update={"env": {"PYTHONPATH": src}})
        for name, server in base.servers.items()
        if isinstance(server, StdioServer)
    }
    settings = base.settings.model_copy(update={"skills_dir": str(skills_dir)})
    return base.model_copy(update={"servers": servers, "settings": settings})


async def _value(engine: Engine, code: str) -> Any:
    outcome = await engine.execute(code, session="bench")
    if outcome.is_error or outcome.result is None:
        raise RuntimeError(outcome.text)
    return outcome.result.value


async def run(smoke: bool = False) -> dict[str, Any]:
    n = 5 if smoke else 40
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-skills-") as scratch:
        skills_dir = Path(scratch) / "skills"
        shutil.copytree(REPO / "skills", skills_dir, ignore=shutil.ignore_patterns(".lock", ".*.tmp"))
        async with Engine(_config(skills_dir), executor="wasm") as engine:
            await _value(engine, DEFINE)
            call = await _value(engine, CALL.format(n=n))
            save = await _value(engine, SAVE.format(n=n))
            rows.append(speed.row("save_skill, static checks (p50)", save, "ms", "one tool call", call, "≤ 200 ms"))
            example = await _value(engine, SAVE_EXAMPLE.format(n=max(3, n // 8)))
            rows.append(
                speed.row("save_skill with its example run (p50)", example, "ms", "one tool call", call, "reported")
            )
            skill, stub = await _value(engine, IMPORT.format(n=n))
            rows.append(
                speed.row("import a promoted skill, warm session (p50)", skill, "ms", "re-import a stub module",
                          stub, "≤ 5 ms")
            )  # fmt: skip
    return {"benchmark": "skills", "rows": rows, "env": {"python": sys.version.split()[0], "cpus": os.cpu_count()}}


table = speed.table

if __name__ == "__main__":
    speed.main("skills", __doc__, run)
