"""Skills through the engine: save from the real sandbox, drafts per session, promotion, bad input, breakage.

The upstreams are real: the bundled demo servers (started with this checkout on their path, so their
read-only annotations are the ones under test) and, for a stub that changes, an in-process FakeUpstream.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import codemode
from codemode.config import Config, StdioServer, demo_config
from codemode.engine import Engine
from codemode.executors import ExecutorKind
from codemode.hub import FakeUpstream

pytestmark = pytest.mark.anyio

LOW = '''from stubs import inventory
def low_stock(threshold: int = 5) -> list[str]:
    """SKUs with at most ``threshold`` units in stock, sorted."""
    return sorted(p["sku"] for p in inventory.list_products(page_size=200) if p["stock"] <= threshold)
'''


def demo_here(skills_dir: Path, **settings: Any) -> Config:
    """The demo config, its servers running this checkout's code, skills in ``skills_dir``."""
    base = demo_config()
    src = str(Path(codemode.__file__).resolve().parents[1])
    servers: dict[str, StdioServer] = {
        name: server.model_copy(update={"env": {"PYTHONPATH": src}})
        for name, server in base.servers.items()
        if isinstance(server, StdioServer)
    }
    updated = base.settings.model_copy(update={"skills_dir": str(skills_dir), **settings})
    return base.model_copy(update={"servers": servers, "settings": updated})


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (the lock file aside) → its content's digest."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture(params=["wasm", "restricted"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Engine]:
    kind: ExecutorKind = request.param
    async with Engine(demo_here(tmp_path / "skills"), executor=kind) as engine:
        yield engine


async def test_draft_is_private_until_promoted(engine: Engine) -> None:
    defined = await engine.execute(LOW, session="a")
    assert not defined.is_error, defined.text
    saved = await engine.execute('save_skill(low_stock, example="low_stock(threshold=2)")', session="a")
    assert not saved.is_error, saved.text
    assert saved.result is not None and saved.result.value == {
        "name": "low_stock", "state": "draft", "version": 1, "tested": "passed"
    }  # fmt: skip
    mine = await engine.execute("from skills import low_stock\nlow_stock(threshold=1)[:2]", session="a")
    assert not mine.is_error, mine.text
    theirs = await engine.execute("from skills import low_stock", session="b")
    assert theirs.is_error and "no skill named 'low_stock'" in theirs.text

    engine.skills.promote("low_stock")
    again = await engine.execute("from skills import low_stock\nlow_stock(threshold=1)[:2]", session="b")
    assert not again.is_error, again.text
    assert again.result is not None and again.result.value == mine.result.value  # type: ignore[union-attr]
    query = '[h["tool"] for h in search_tools("low stock") if h.get("kind") == "skill"]'
    found = await engine.execute(query, session="b")
    assert found.result is not None and found.result.value == ["skills.low_stock"]
    shown = await engine.execute('describe("skills.low_stock")', session="b")
    assert shown.result is not None and "def low_stock(threshold: int = 5)" in str(shown.result.value)


async def test_skill_calls_skill_and_write_is_untested(engine: Engine) -> None:
    await engine.execute(LOW, session="a")
    await engine.execute("save_skill(low_stock)", session="a")
    engine.skills.promote("low_stock")
    program = '''from skills import low_stock
from stubs import inventory
def restock_low(threshold: int, quantity: int) -> int:
    """Restock every SKU at or below ``threshold`` by ``quantity``; returns how many were restocked."""
    skus = low_stock(threshold=threshold)
    for sku in skus:
        inventory.restock(sku=sku, quantity=quantity, reason="restock_low")
    return len(skus)
save_skill(restock_low, example="restock_low(threshold=0, quantity=1)")'''
    saved = await engine.execute(program, session="c")
    assert saved.result is not None and saved.result.value["tested"] == "untested", saved.text
    # A skill that writes is not run at save time: the save itself is the one call (it counts toward the quota).
    assert [(c.server, c.tool) for c in saved.calls] == [("codemode", "save_skill(restock_low)")]
    version = engine.skill_store.version("restock_low")
    assert version.meta["calls"] == ["skills.low_stock", "stubs.inventory.restock"]


DOC = '    """Doc."""\n'
BAD: list[tuple[str, str, str, dict[str, Any]]] = [
    ("syntax", "low_stock", "def low_stock(:\n    pass\n", {}),
    ("annotations", "low_stock", 'def low_stock(t):\n    """Doc."""\n    return t\n', {}),
    ("docstring", "low_stock", "def low_stock(t: int) -> int:\n    return t\n", {}),
    ("unknown stub", "low_stock",
     "from stubs import inventory\ndef low_stock() -> int:\n" + DOC + "    return inventory.no_such()\n", {}),
    ("unknown keyword", "low_stock",
     "from stubs import inventory\ndef low_stock() -> object:\n" + DOC
     + '    return inventory.check_stock(skuz=["a"])\n', {}),
    ("import os", "low_stock", 'import os\ndef low_stock() -> int:\n    """Doc."""\n    return os.getpid()\n', {}),
    ("keyword name", "lambda", 'def x() -> int:\n    """Doc."""\n    return 1\n', {}),
    ("traversal", "../x", 'def x() -> int:\n    """Doc."""\n    return 1\n', {}),
    ("server clash", "inventory", 'def inventory() -> int:\n    """Doc."""\n    return 1\n', {}),
    ("failing example", "low_stock", LOW, {"example": "low_stock(threshold=1/0)"}),
    ("example of another function", "low_stock", LOW, {"example": "print(1)"}),
]  # fmt: skip

EXPECTED = {
    "syntax": "syntax error on line 1",
    "annotations": "the parameter 't' has no type annotation",
    "docstring": "has no docstring",
    "unknown stub": "stubs.inventory has no tool 'no_such'",
    "unknown keyword": "has no argument 'skuz'",
    "import os": "import of 'os' is not allowed",
    "keyword name": "is a Python keyword",
    "traversal": "is not a Python identifier",
    "server clash": "is a server module",
    "failing example": "ZeroDivisionError",
    "example of another function": "the example must be a call of low_stock",
}


@pytest.mark.parametrize("case", [c[0] for c in BAD])
async def test_bad_input_is_refused_and_changes_nothing(case: str, tmp_path: Path) -> None:
    _, name, source, options = next(c for c in BAD if c[0] == case)
    async with Engine(demo_here(tmp_path / "skills"), executor="restricted") as engine:
        before = snapshot(engine.skills_dir)
        result = await engine.skills.save("a", name, source, **options)
        assert result["saved"] is False
        assert any(EXPECTED[case] in reason for reason in result["reasons"]), result["reasons"]
        assert snapshot(engine.skills_dir) == before


async def test_case_clash_and_another_sessions_draft(tmp_path: Path) -> None:
    async with Engine(demo_here(tmp_path / "skills"), executor="restricted") as engine:
        assert (await engine.skills.save("a", "low_stock", LOW))["saved"]
        before = snapshot(engine.skills_dir)
        other = await engine.skills.save("b", "low_stock", LOW)
        assert other["saved"] is False and "draft saved by another session" in other["reasons"][0]
        clash = LOW.replace("low_stock", "Low_Stock")
        cased = await engine.skills.save("b", "Low_Stock", clash)
        assert cased["saved"] is False and "differs only in case" in " ".join(cased["reasons"])
        assert snapshot(engine.skills_dir) == before
        again = await engine.skills.save("a", "low_stock", LOW)  # the same session may save a new version
        assert again["saved"] and again["version"] == 2


async def test_two_saves_of_one_name_at_once(tmp_path: Path) -> None:
    import anyio

    async with Engine(demo_here(tmp_path / "skills"), executor="restricted") as engine:
        results: list[dict[str, Any]] = []

        async def save(session: str) -> None:
            results.append(await engine.skills.save(session, "low_stock", LOW, example="low_stock(threshold=1)"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(save, "a")
            tg.start_soon(save, "b")
        assert sorted(r["saved"] for r in results) == [False, True], results
        skill = engine.skill_store.skill("low_stock")
        assert skill.versions == [1]


async def test_corrupted_file_is_named_and_others_listed(tmp_path: Path) -> None:
    async with Engine(demo_here(tmp_path / "skills"), executor="restricted") as engine:
        assert (await engine.skills.save("a", "low_stock", LOW))["saved"]
        other = LOW.replace("low_stock", "few_left")
        assert (await engine.skills.save("a", "few_left", other))["saved"]
        damaged = engine.skill_store.versions_dir / "few_left" / "state.json"
        damaged.write_text("{not json")
        rows = engine.skills.listing()
        assert [r["name"] for r in rows] == ["low_stock"]
        assert len(engine.skill_store.problems) == 1 and str(damaged) in engine.skill_store.problems[0]
        before = snapshot(engine.skills_dir)
        result = await engine.skills.save("a", "few_left", other)
        assert result["saved"] is False and str(damaged) in result["reasons"][0]
        assert snapshot(engine.skills_dir) == before


async def test_stub_change_marks_broken_and_rollback_restores(tmp_path: Path) -> None:
    lookup = {"name": "lookup", "inputSchema": {"type": "object", "properties": {"key": {"type": "string"}},
              "required": ["key"]}, "annotations": {"readOnlyHint": True}}  # fmt: skip
    fake = FakeUpstream("kv", [lookup], lambda tool, args: {"value": args.get("key", args.get("id"))})
    config = Config(settings=demo_here(tmp_path / "skills").settings)
    async with Engine(config, executor="restricted", upstreams={"kv": fake}) as engine:
        v1 = 'from stubs import kv\ndef fetch(key: str) -> object:\n    """Look a key up."""\n'
        v1 += "    return kv.lookup(key=key)\n"
        assert (await engine.skills.save("a", "fetch", v1, example='fetch(key="k")'))["saved"]
        engine.skills.promote("fetch")
        # The tool's argument is renamed: the promoted skill no longer checks.
        schema = {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}
        renamed = {**lookup, "inputSchema": schema}
        fake.set_tools([renamed])
        await _until(lambda: engine.skill_store.skill("fetch").broken is not None)
        broken = engine.skill_store.skill("fetch").broken or ""
        assert "has no argument 'key'" in broken
        row = engine.skills.listing()[0]
        assert row["state"] == "broken"
        shown = await engine.execute('[h for h in search_tools("look key") if h.get("kind") == "skill"]', session="s")
        assert shown.result is not None and "has no argument 'key'" in str(shown.result.value)
        # A fixed version, promoted, then rolled back to the broken one: the mark follows the version.
        v2 = v1.replace("key=key", "id=key")
        assert (await engine.skills.save("a", "fetch", v2))["saved"]
        engine.skills.promote("fetch")
        assert engine.skill_store.skill("fetch").broken is None
        ok = await engine.execute('from skills import fetch\nfetch(key="k")', session="s")
        assert ok.result is not None and ok.result.value == {"value": "k"}, ok.text
        # The tool comes back as it was: v2 breaks, and a rollback restores v1.
        fake.set_tools([lookup])
        await _until(lambda: engine.skill_store.skill("fetch").broken is not None)
        engine.skills.rollback("fetch")
        skill = engine.skill_store.skill("fetch")
        assert skill.promoted == 1 and skill.broken is None
        back = await engine.execute('from skills import fetch\nfetch(key="k")', session="s")
        assert back.result is not None and back.result.value == {"value": "k"}, back.text


async def test_auto_promote(tmp_path: Path) -> None:
    from codemode.config import SkillsSettings

    config = demo_here(tmp_path / "skills", skills=SkillsSettings(auto_promote=True))
    async with Engine(config, executor="wasm") as engine:
        await engine.execute(LOW, session="a")
        saved = await engine.execute("save_skill(low_stock)", session="a")
        assert saved.result is not None and saved.result.value["state"] == "promoted", saved.text
        used = await engine.execute("from skills import low_stock\nlen(low_stock(threshold=0)) >= 0", session="b")
        assert used.result is not None and used.result.value is True, used.text


async def _until(condition: Any, timeout_s: float = 60) -> None:
    import anyio

    with anyio.fail_after(timeout_s):
        while not condition():  # noqa: ASYNC110 - the condition is on files another task writes
            await anyio.sleep(0.05)
