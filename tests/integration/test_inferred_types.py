"""Inferred result types (issue 14, item 2) on the bundled demo servers, which run as real stdio MCP servers:
``inventory.list_products`` (JSON rows) and ``inventory.restock`` (plain text) declare no output schema."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from codemode.audit import AuditLog
from codemode.catalog.catalog import Catalog
from codemode.catalog.observed import OBSERVED_FILE
from codemode.config import Config, Settings, demo_config
from codemode.engine import Engine
from codemode.hub import FakeUpstream, ToolSpec
from tests.conftest import REPO

pytestmark = pytest.mark.anyio

SECRET = "sk-live-SECRETVALUE-4242"


def _engine(tmp_path: Path, after: int = 3) -> Engine:
    config = demo_config()
    config = config.model_copy(update={"settings": Settings(infer_results_after=after, typecheck="warn")})
    return Engine(config, stubs_dir=tmp_path / "stubs", skills_dir=tmp_path / "skills",
                  audit=AuditLog(tmp_path / "audit.jsonl"))  # fmt: skip


def _tree(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(root.rglob("*")) if p.is_file())


def _entry(engine: Engine, server: str, tool: str) -> dict[str, Any]:
    for block in engine.index["servers"]:
        if block["name"] == server:
            for entry in block["tools"]:
                if entry["name"] == tool:
                    return dict(entry)
    raise AssertionError(f"{server}.{tool} not in the index")


async def _until(engine: Engine, ready: Callable[[], bool]) -> None:
    """Wait for a published generation that makes ``ready()`` true (inferred types publish in the background)."""
    assert engine.catalog is not None
    done = anyio.Event()

    async def listener(catalog: Catalog) -> None:
        if ready():
            done.set()

    engine.catalog.listeners.append(listener)
    try:
        if not ready():  # checked after the listener is in place: no generation can slip between
            with anyio.fail_after(60):
                await done.wait()
    finally:
        engine.catalog.listeners.remove(listener)


async def _until_typed(engine: Engine, server: str, tool: str) -> dict[str, Any]:
    await _until(engine, lambda: _entry(engine, server, tool)["result_type"] != "Any")
    return _entry(engine, server, tool)


async def test_repeated_results_type_the_stub_and_the_check_flags_a_misused_field(tmp_path: Path) -> None:
    async with _engine(tmp_path) as engine:
        assert _entry(engine, "inventory", "list_products")["result_type"] == "Any"
        before = _tree(tmp_path / "stubs")  # the input schemas' enums name categories, say
        first = await engine.execute(
            "from stubs import inventory\nrows = inventory.list_products(page_size=5)\n"
            f"inventory.restock(sku=rows[0]['sku'], quantity=1, reason={SECRET!r})\nrows",
            session="s",
        )
        assert not first.is_error, first.text
        values = {str(v) for row in json.loads(first.text.split("\n")[-1] or "[]") for v in row.values()}
        assert values, first.text
        assert _entry(engine, "inventory", "list_products")["result_type"] == "Any"  # 1 of 3 results

        more = await engine.execute(
            "for _ in range(2):\n    inventory.list_products(page_size=3)\n"
            f"    inventory.restock(sku=rows[1]['sku'], quantity=2, reason={SECRET!r})",
            session="s",
        )
        assert not more.is_error, more.text
        typed = await _until_typed(engine, "inventory", "list_products")
        # One content block per row: one row comes back as the bare row, and the type says so.
        assert typed["result_type"] == "ListProductsResult | list[ListProductsResult]", typed
        assert (await _until_typed(engine, "inventory", "restock"))["result_type"] == "str"

        stub = (engine.stubs_path / "inventory" / "list_products.py").read_text()
        assert "class ListProductsResult(TypedDict):" in stub and "    sku: str" in stub, stub
        assert "inferred from 3 results (1 shape, digest " in stub, stub

        # Later programs type-check against the inferred shape: a misspelt key is flagged on its line.
        take = "from stubs import inventory\ngot = inventory.list_products(page_size=1)\n"
        take += "rows = got if isinstance(got, list) else [got]\n"
        misuse = await engine.execute(take + "rows[0]['prise_cents']", session="fresh")
        assert "line 4:" in misuse.text and '"prise_cents"' in misuse.text, misuse.text
        fine = await engine.execute(take + "rows[0]['price_cents'] > 0", session="fresh")
        assert fine.text == "true", fine.text

        # No value a result held is in any stub file, the index, or the shapes file.
        tree = _tree(tmp_path / "stubs")
        assert SECRET not in tree
        leaked = {v for v in values if len(v) > 3 and v in tree and v not in before}
        assert not leaked, leaked

        # The generated tree still passes mypy --strict.
        copy = tmp_path / "check" / "stubs"
        shutil.copytree(engine.stubs_path, copy, ignore=shutil.ignore_patterns("__pycache__"))
        mypy = await anyio.run_process(
            [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "-p", "stubs"],
            cwd=copy.parent, env={**os.environ, "MYPYPATH": str(REPO / "sandbox")}, check=False,
        )  # fmt: skip
        assert mypy.returncode == 0, mypy.stdout[-3000:].decode()

    # A restart keeps the inferred types: the first generation of the new engine already has them.
    assert (tmp_path / "stubs" / OBSERVED_FILE).is_file()
    async with _engine(tmp_path) as engine:
        assert _entry(engine, "inventory", "list_products")["result_type"].startswith("ListProductsResult | ")
        assert _entry(engine, "inventory", "restock")["result_type"] == "str"


async def test_inference_off_leaves_the_result_untyped(tmp_path: Path) -> None:
    async with _engine(tmp_path, after=0) as engine:
        sku = "inventory.list_products(page_size=2)[0]['sku']"
        out = await engine.execute(f"from stubs import inventory\n[inventory.restock(sku={sku}, quantity=1) "
                                   "for _ in range(4)]", session="s")  # fmt: skip
        assert not out.is_error, out.text
        assert engine.shapes.inferred() == {}
        assert _entry(engine, "inventory", "restock")["result_type"] == "Any"
        assert not (tmp_path / "stubs" / OBSERVED_FILE).exists()


async def test_a_later_conflicting_result_widens_the_published_type(tmp_path: Path) -> None:
    answers = iter([{"id": 1, "name": "a"}] * 2 + [{"id": "x-2", "extra": True}])
    shop = FakeUpstream("shop", [ToolSpec("shop", "item")], lambda tool, args: next(answers))
    engine = Engine(Config(settings=Settings(infer_results_after=2)), upstreams={"shop": shop},
                    stubs_dir=tmp_path / "stubs", skills_dir=tmp_path / "skills",
                    audit=AuditLog(tmp_path / "a.jsonl"))  # fmt: skip
    async with engine:
        await engine.execute("from stubs import shop\nshop.item()\nshop.item()", session="s")
        await _until_typed(engine, "shop", "item")
        first = (engine.stubs_path / "shop" / "item.py").read_text()
        assert "    id: int\n    name: str\n" in first, first

        assert engine.catalog is not None and engine.catalog.generation is not None
        before = engine.catalog.generation.name
        await engine.execute("shop.item()", session="s")
        await _until(engine, lambda: engine.catalog is not None and engine.catalog.path.name != before)
        widened = (engine.stubs_path / "shop" / "item.py").read_text()
        assert "    extra: NotRequired[bool]\n    id: int | str\n    name: NotRequired[str]\n" in widened, widened
        assert "inferred from 3 results (2 shapes, digest " in widened
