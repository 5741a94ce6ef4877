"""Hostile results against result-type inference: keys that try to be code, 10,000 keys, 500 levels.

The result reaches the gate from an upstream (an in-process one here, which can nest deeper than a real
transport lets through). The defences: keys reach a stub only as escaped string literals (the functional
``TypedDict`` form for anything that is not a plain identifier), and every walk is capped (depth, keys per
object, nodes, union width), so the compiler gets a small shape whatever the result was.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from codemode.audit import AuditLog
from codemode.calls.shapes import MAX_DEPTH, MAX_NODES, shape_of
from codemode.catalog.catalog import Catalog
from codemode.compiler import compile_to_dir, load_index
from codemode.compiler.inferred import Inferred
from codemode.config import Config, Settings
from codemode.engine import Engine
from codemode.hub import FakeUpstream, ToolRef, ToolSpec
from tests.conftest import REPO

pytestmark = pytest.mark.anyio

MARKER = "PWNED"
INJECTIONS = [
    "__class__",
    "a\nimport os",
    f'a"\nimport os; os.mkdir("{MARKER}")\n#',
    f"'''\nimport os; os.mkdir('{MARKER}')\n'''",
    f'"""\nimport os; os.mkdir("{MARKER}")\n"""',
    "x\\",
    f"__import__('os').mkdir('{MARKER}')",
    "class",
    "\u2028import os",
    "\U0001f4dd",
]


def _nested(depth: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(depth):
        node["d"] = {}
        node = node["d"]
    return root


def _hostile() -> dict[str, Any]:
    return {**{key: 1 for key in INJECTIONS}, "wide": {f"k{i}": i for i in range(10_000)}, "deep": _nested(150)}


def _assert_inert(root: Path, cwd: Path) -> None:
    """Every stub parses, imports no more than a stub does, and importing it runs nothing a key asked for."""
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_bytes(), str(path))
        if path.name == "__init__.py":  # package indexes: names and summaries, no result types
            continue
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not any(isinstance(n, ast.Import) for n in ast.walk(tree)), path
        assert imported <= {"__future__", "typing", "codemode_runtime"}, (path, imported)
        calls = {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        assert calls <= {"_call", "TypedDict"}, (path, calls)
    script = "import importlib, stubs\nfor s in stubs.SERVERS:\n    p = importlib.import_module('stubs.' + s)\n" \
             "    [getattr(p, t) for t in p.TOOLS]\n"  # fmt: skip
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'sandbox'}:{root.parent}"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not (cwd / MARKER).exists()


def test_hostile_keys_and_sizes_stay_data_and_small(tmp_path: Path) -> None:
    shape = shape_of({**_hostile(), "deep": _nested(500)})
    text = json.dumps(shape)
    assert len(text) < 20_000 and text.count('"t"') <= MAX_NODES
    assert shape["keys"]["wide"] == {"t": "map"}
    depth, node = 0, shape["keys"]["deep"]
    while node["t"] == "object":
        node, depth = node["keys"]["d"], depth + 1
    assert node == {"t": "any"} and depth < MAX_DEPTH

    root = tmp_path / "out" / "stubs"
    compile_to_dir({"evil": [ToolSpec("evil", "leak")]}, root,
                   observed={ToolRef("evil", "leak"): Inferred(shape, 3)})  # fmt: skip
    stub = (root / "evil" / "leak.py").read_text()
    assert "LeakResult = TypedDict(" in stub and '"a\\nimport os": int,' in stub, stub
    assert '"wide": dict[str, Any],' in stub
    work = tmp_path / "cwd"
    work.mkdir()
    _assert_inert(root, work)
    mypy = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "-p", "stubs"],
        cwd=root.parent, env={**os.environ, "MYPYPATH": str(REPO / "sandbox")}, capture_output=True, text=True,
    )  # fmt: skip
    assert mypy.returncode == 0, mypy.stdout[-3000:]


async def test_hostile_results_through_the_engine(tmp_path: Path) -> None:
    evil = FakeUpstream("evil", [ToolSpec("evil", "leak")], lambda tool, args: _hostile())
    config = Config(settings=Settings(infer_results_after=2))
    engine = Engine(config, upstreams={"evil": evil}, stubs_dir=tmp_path / "stubs", skills_dir=tmp_path / "skills",
                    audit=AuditLog(tmp_path / "audit.jsonl"))  # fmt: skip
    async with engine:
        assert engine.catalog is not None
        published = anyio.Event()

        async def listener(catalog: Catalog) -> None:
            published.set()

        engine.catalog.listeners.append(listener)
        out = await engine.execute("from stubs import evil\n[len(evil.leak()) for _ in range(2)]", session="s")
        assert out.text == "[12, 12]", out.text  # ten hostile keys, wide, deep
        with anyio.fail_after(60):
            await published.wait()
        entry = load_index(engine.stubs_path)["servers"][0]["tools"][0]
        assert entry["result_type"] == "LeakResult", entry
        # The new generation imports in the sandbox and its type check still works.
        again = await engine.execute("from stubs import evil\nr = evil.leak()\nr['wide']['k5']", session="t")
        assert again.text == "5", again.text
        copy = tmp_path / "copy" / "stubs"
        shutil.copytree(engine.stubs_path, copy, ignore=shutil.ignore_patterns("__pycache__"))
        _assert_inert(copy, tmp_path)
