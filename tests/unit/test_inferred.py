"""Result shapes (``calls.shapes``), the shape book (``catalog.observed``) and inferred stub types
(``compiler.inferred``): keys and types only, conflicts widen, bounded, deterministic, mypy-clean."""

from __future__ import annotations

import json
from pathlib import Path

import mcp_types as types

from codemode.calls.results import result_for_guest
from codemode.calls.shapes import MAX_KEYS, check, merge, shape_of, shape_of_result
from codemode.catalog.observed import ShapeBook
from codemode.compiler import compile_to_dir, load_index
from codemode.compiler.inferred import Inferred
from codemode.hub import ToolRef, ToolSpec
from tests.unit.test_compiler import _check_tree

REF = ToolRef("srv", "tool")


def _result_type(root: Path, tool: str = "tool") -> str:
    entries = {e["name"]: e for s in load_index(root)["servers"] for e in s["tools"]}
    return str(entries[tool]["result_type"])


def _compile(root: Path, observed: dict[ToolRef, Inferred], *specs: ToolSpec) -> None:
    compile_to_dir({"srv": list(specs) or [ToolSpec("srv", "tool")]}, root, observed=observed)


def test_a_shape_holds_keys_and_types_never_values() -> None:
    shape = shape_of({"name": "sk-live-SECRET", "n": 3, "ok": True, "tags": ["x"], "none": None, "x": 1.5})
    assert "SECRET" not in json.dumps(shape)
    assert shape == {"t": "object", "optional": [], "keys": {
        "name": {"t": "str"}, "n": {"t": "int"}, "ok": {"t": "bool"}, "tags": {"t": "list", "item": {"t": "str"}},
        "none": {"t": "null"}, "x": {"t": "float"},
    }}  # fmt: skip


def test_conflicting_shapes_widen() -> None:
    merged = merge(shape_of({"a": 1, "b": "x", "c": 1}), shape_of({"a": "s", "c": 2.5, "d": None}))
    assert merged["optional"] == ["b", "d"]
    assert merged["keys"]["a"] == {"t": "union", "of": [{"t": "int"}, {"t": "str"}]}
    assert merged["keys"]["c"] == {"t": "float"}
    assert merge(shape_of([1]), shape_of({"k": 1}))["t"] == "union"
    assert merge(shape_of([]), shape_of(["x"])) == {"t": "list", "item": {"t": "str"}}
    # Past the union cap: Any, never a lie.
    wide = shape_of(1)
    for value in ("s", [1], {"a": 1}, None):
        wide = merge(wide, shape_of(value))
    assert wide == {"t": "any"}


def test_widened_types_in_the_stub(tmp_path: Path) -> None:
    shape = merge(shape_of({"a": 1, "b": "x", "n": None}), shape_of({"a": "s", "n": 2}))
    _compile(tmp_path / "stubs", {REF: Inferred(shape, 3, ("0" * 12, "1" * 12))})
    text = (tmp_path / "stubs" / "srv" / "tool.py").read_text()
    assert "    a: int | str\n    b: NotRequired[str]\n    n: int | None\n" in text, text
    assert "inferred from 3 results (2 shapes, digest " in text
    _check_tree(tmp_path / "stubs")


def test_plain_text_is_str_and_blocks_are_typed(tmp_path: Path) -> None:
    text = types.CallToolResult(content=[types.TextContent(type="text", text="hello there")])
    assert shape_of_result(text, result_for_guest(text)) == {"t": "str"}
    blocks: list[types.ContentBlock] = [
        types.TextContent(type="text", text="caption"),
        types.ImageContent(type="image", data="AAAA", mime_type="image/png"),
    ]
    image = types.CallToolResult(content=blocks)
    shape = shape_of_result(image, result_for_guest(image))
    specs = [ToolSpec("srv", "text"), ToolSpec("srv", "image")]
    observed = {ToolRef("srv", "text"): Inferred({"t": "str"}, 3), ToolRef("srv", "image"): Inferred(shape, 3)}
    compile_to_dir({"srv": specs}, tmp_path / "stubs", observed=observed)
    assert _result_type(tmp_path / "stubs", "text") == "str"
    assert _result_type(tmp_path / "stubs", "image") == "ImageContent | list[ImageContent | str] | str"
    assert 'type: Literal["image"]' in (tmp_path / "stubs" / "srv" / "image.py").read_text()
    _check_tree(tmp_path / "stubs")


def test_a_declared_output_schema_wins_over_observations(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"z": {"type": "integer"}}, "required": ["z"]}
    spec = ToolSpec("srv", "tool", output_schema=schema)
    _compile(tmp_path / "stubs", {REF: Inferred(shape_of({"a": 1}), 5)}, spec)
    assert _result_type(tmp_path / "stubs") == "ToolResult"
    assert "z: int" in (tmp_path / "stubs" / "srv" / "tool.py").read_text()


def test_stubs_are_deterministic(tmp_path: Path) -> None:
    shape = shape_of([{"b": 1, "a": {"c": [True]}, "class": "k", "x-y": 2}])
    for name in ("one", "two"):
        _compile(tmp_path / name / "stubs", {REF: Inferred(shape, 4, ("b" * 12, "a" * 12))})
    one, two = ((tmp_path / n / "stubs" / "srv" / "tool.py").read_text() for n in ("one", "two"))
    assert one == two
    assert '"class": str,' in one and '"x-y": int,' in one  # keywords and non-identifiers: functional form
    _check_tree(tmp_path / "one" / "stubs")


def test_the_book_publishes_after_the_threshold_and_again_only_when_the_type_widens(tmp_path: Path) -> None:
    book = ShapeBook(tmp_path / "shapes.json", threshold=3)
    changes = [book.observe(REF, shape_of({"a": 1})) for _ in range(5)]
    assert [c.publish for c in changes] == [False, False, True, False, False]
    assert [c.dirty for c in changes] == [True, True, True, False, False]
    assert book.inferred()[REF].count == 3
    widened = book.observe(REF, shape_of({"a": 1, "b": "x"}))
    assert widened.publish and book.inferred()[REF].shape["optional"] == ["b"]
    assert book.inferred()[REF].count == 6 and len(book.inferred()[REF].digests) == 2

    book.save()
    again = ShapeBook(tmp_path / "shapes.json", threshold=3)
    again.load()
    assert again.inferred() == book.inferred()


def test_a_damaged_book_is_ignored_entry_by_entry(tmp_path: Path) -> None:
    path = tmp_path / "shapes.json"
    good = {"server": "s", "tool": "ok", "shape": {"t": "str"}, "count": 3, "digests": [],
            "published": {"shape": {"t": "str"}, "count": 3, "digests": []}}  # fmt: skip
    bad = [{"server": "s", "tool": "x", "shape": {"t": "exec"}, "count": 1}, {"tool": 3}, "junk",
           {"server": "s", "tool": "y", "shape": {"t": "union", "of": [{"t": "str"}] * 50}, "count": 1}]  # fmt: skip
    path.write_text(json.dumps({"version": 1, "tools": [*bad, good]}))
    book = ShapeBook(path, threshold=3)
    book.load()
    assert list(book.inferred()) == [ToolRef("s", "ok")]
    path.write_text("{not json")
    fresh = ShapeBook(path, threshold=3)
    fresh.load()
    assert fresh.inferred() == {}


def test_check_reapplies_the_caps() -> None:
    wide = {"t": "object", "keys": {f"k{i}": {"t": "int"} for i in range(MAX_KEYS + 1)}, "optional": []}
    assert check(wide) == {"t": "map"}
    deep: dict[str, object] = {"t": "str"}
    for _ in range(50):
        deep = {"t": "list", "item": deep}
    assert "str" not in json.dumps(check(deep))
