"""Stub generations: published whole, never changed in place, kept while an execution pins them."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import pytest

from codemode.catalog.catalog import Catalog
from codemode.catalog.store import KEEP, GenerationStore
from codemode.hub.models import ToolSpec

pytestmark = pytest.mark.anyio


def _write(tree: Path, text: str) -> str:
    (tree / "a.txt").write_text(text)
    return text


def test_publish_copies_the_previous_tree_and_switches_atomically(tmp_path: Path) -> None:
    store = GenerationStore(tmp_path / "root")
    assert store.current() is None
    first, _ = store.publish(lambda tree: _write(tree, "one"))
    (first.path / "keep.txt").write_text("carried over")  # an incremental builder relies on this copy
    second, outcome = store.publish(lambda tree: _write(tree, "two"))
    assert outcome == "two" and (first.name, second.name) == ("g000001", "g000002")
    assert store.current() == second
    assert (first.path / "a.txt").read_text() == "one"  # the old generation is untouched
    assert (second.path / "a.txt").read_text() == "two" and (second.path / "keep.txt").exists()


def test_a_failing_build_publishes_nothing(tmp_path: Path) -> None:
    store = GenerationStore(tmp_path / "root")
    first, _ = store.publish(lambda tree: _write(tree, "one"))

    def broken(tree: Path) -> None:
        _write(tree, "half")
        raise RuntimeError("compiler bug")

    with pytest.raises(RuntimeError):
        store.publish(broken)
    assert store.current() == first
    assert sorted(p.name for p in store.root.iterdir()) == ["CURRENT", "g000001"]  # no temp tree left


def test_old_generations_are_collected_unless_pinned(tmp_path: Path) -> None:
    store = GenerationStore(tmp_path / "root")
    first, _ = store.publish(lambda tree: _write(tree, "0"))
    store.pin(first.name)
    for i in range(KEEP + 2):
        store.publish(functools.partial(_write, text=str(i)))
    names = sorted(p.name for p in store.root.glob("g*"))
    assert first.name in names and len(names) == KEEP + 1  # the pinned one survives, and the newest KEEP
    store.unpin(first.name)
    store.publish(lambda tree: _write(tree, "last"))
    assert first.name not in {p.name for p in store.root.glob("g*")}


class _Tools:
    def __init__(self, tools: dict[str, list[ToolSpec]]) -> None:
        self._tools = tools

    def tools(self) -> dict[str, list[ToolSpec]]:
        return self._tools

    def summaries(self) -> dict[str, str]:
        return {}


async def test_catalog_publishes_indexes_and_notifies(tmp_path: Path) -> None:
    tools = {"notes": [ToolSpec("notes", "list_tags", "List tags.")]}
    catalog = Catalog(tmp_path / "stubs", _Tools(tools))
    seen: list[str] = []

    async def listener(c: Catalog) -> None:
        assert c.generation is not None
        seen.append(c.generation.name)

    catalog.listeners.append(listener)
    await catalog.refresh()
    tools["notes"].append(ToolSpec("notes", "create_note", "Create a note."))
    await catalog.refresh("notes changed its tools")
    assert seen == ["g000001", "g000002"]
    assert [t["python_name"] for t in catalog.index["servers"][0]["tools"]] == ["create_note", "list_tags"]
    assert (catalog.path / "notes" / "create_note.py").exists()
    assert not (tmp_path / "stubs" / "g000001" / "notes" / "create_note.py").exists()


class _Broken(_Tools):
    def tools(self) -> dict[str, list[ToolSpec]]:
        raise RuntimeError("the hub lost its tool list")


async def test_a_failed_recompile_keeps_the_last_generation_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    catalog = Catalog(tmp_path / "stubs", _Tools({"notes": [ToolSpec("notes", "list_tags")]}))
    await catalog.refresh()
    good = catalog.generation
    catalog._source = _Broken({})
    with caplog.at_level(logging.ERROR):
        assert await catalog.refresh("notes changed its tools") is None
    assert catalog.generation == good and catalog.error is not None
    assert "notes changed its tools" in catalog.error and "the hub lost its tool list" in catalog.error
    assert "recompiling the stubs" in caplog.text
    catalog._source = _Tools({"notes": [ToolSpec("notes", "list_tags")]})
    assert await catalog.refresh("retry") is not None and catalog.error is None


async def test_a_recompile_that_changes_nothing_publishes_nothing(tmp_path: Path) -> None:
    tools = {"notes": [ToolSpec("notes", "list_tags", "List tags.")]}
    first = Catalog(tmp_path / "stubs", _Tools(tools))
    await first.refresh()
    again = Catalog(tmp_path / "stubs", _Tools(tools))  # e.g. the next `codemode serve` on the same config
    notified: list[Catalog] = []

    async def listener(c: Catalog) -> None:
        notified.append(c)

    again.listeners.append(listener)
    await again.refresh()
    assert again.generation == first.generation and notified == [again]  # its first generation, announced
    await again.refresh("no change")
    assert notified == [again] and sorted(p.name for p in (tmp_path / "stubs").glob("g*")) == ["g000001"]
