"""Hostile or broken upstream tool definitions against the stub compiler.

Each one must give that tool a working stub (or a generic one) plus a warning naming ``server.tool``;
the other servers and tools always compile; nothing outside the schema (``file://``, ``http://``) is read.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from codemode.compiler import compile_to_dir, load_index
from codemode.compiler.limits import (
    MAX_DESCRIPTION,
    MAX_EXPANDED,
    MAX_SCHEMA_BYTES,
    MAX_SCHEMA_DEPTH,
    check_refs,
    expanded_size,
)
from codemode.compiler.render import escape_docstring
from codemode.errors import CompileError
from codemode.hub import ToolSpec
from codemode.preflight import checker_for

SECRET = "TOPSECRETFIELD"


def _tree_text(root: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in sorted(root.rglob("*")) if p.is_file())


def _parse_all(root: Path) -> None:
    for path in root.rglob("*.py"):
        ast.parse(path.read_bytes(), str(path))


def _good() -> ToolSpec:
    return ToolSpec("other", "fine", "A fine tool.", {"type": "object", "properties": {"q": {"type": "string"}}})


def _entry(root: Path, server: str, tool: str) -> dict[str, Any]:
    for block in load_index(root)["servers"]:
        if block["name"] == server:
            for entry in block["tools"]:
                if entry["name"] == tool:
                    return dict(entry)
    raise AssertionError(f"{server}.{tool} not in the index")


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.json"
    schema = {"type": "object", "title": SECRET, "description": SECRET, "properties": {SECRET: {"type": "string"}}}
    path.write_text(json.dumps(schema))
    return path


def _ref_schemas(secret: Path) -> list[dict[str, Any]]:
    uri = secret.as_uri()
    return [
        {"type": "object", "properties": {"r": {"$ref": uri}}},
        {"type": "object", "properties": {"r": {"$ref": f"{uri}#/properties"}}},
        {"type": "object", "properties": {"r": {"$ref": str(secret)}}},
        {"type": "object", "properties": {"r": {"$ref": "secret.json"}}, "$id": f"{secret.parent.as_uri()}/"},
        {"type": "object", "properties": {"r": {"$ref": "http://127.0.0.1:9/schema.json"}}},
        {"type": "object", "properties": {"r": {"$dynamicRef": uri}}},
        {"type": "object", "properties": {"r": {"$recursiveRef": uri}}},
        {"type": "object", "properties": {"r": {"$id": uri, "$ref": "#/definitions/x"}}, "definitions": {"x": {}}},
        # No reference at all: a re-basing id is refused on its own (the screen must not take "no $ref" for
        # "nothing to check").
        {"type": "object", "properties": {"r": {"$id": uri}}},
        {"id": f"{secret.parent.as_uri()}/", "type": "object", "properties": {"r": {"type": "string"}}},
    ]


@pytest.mark.parametrize("which", ["input", "output"])
@pytest.mark.parametrize("index", range(10))
def test_non_local_refs_are_refused_and_never_read(tmp_path: Path, secret_file: Path, which: str, index: int) -> None:
    schema = _ref_schemas(secret_file)[index]
    if which == "input":
        spec = ToolSpec("evil", "leak", "Leaks.", schema)
    else:
        spec = ToolSpec("evil", "leak", "Leaks.", {"type": "object"}, output_schema=schema)
    root = tmp_path / "stubs"
    report = compile_to_dir({"evil": [spec], "other": [_good()]}, root)
    text = _tree_text(root)
    assert SECRET not in text and SECRET not in " ".join(report.warnings)
    warning = [w for w in report.warnings if w.startswith("evil.leak:")]
    assert warning and "#/" in warning[0], report.warnings
    assert _entry(root, "evil", "leak")["generic"] is True
    assert _entry(root, "other", "fine")["generic"] is False
    _parse_all(root)


def test_check_refs_accepts_local_and_rejects_the_rest() -> None:
    check_refs({"$ref": "#", "definitions": {"a": {"$ref": "#/definitions/a"}}, "properties": {"$ref": {}}})
    for bad in ("file:///etc/passwd", "#anchor", "other.json#/x", "//host/x", "#/definitions/missing"):
        with pytest.raises(CompileError) as info:
            check_refs({"definitions": {}, "properties": {"x": {"$ref": bad}}})
        assert "passwd" not in str(info.value)


def test_long_init_quote_nul_and_colliding_names(tmp_path: Path) -> None:
    tools = [
        ToolSpec("evil", "t" * 300, "Long name."),
        ToolSpec("evil", "__init__", "Shadow the package."),
        ToolSpec("evil", "quote", 'Ends in a quote"'),
        ToolSpec("evil", "backslash", "Ends in a backslash\\"),
        ToolSpec("evil", "nul\x00name", "NUL \x00 inside.", {"type": "object", "properties": {"a\x00": {}}}),
        ToolSpec("evil", "surrogate", "Lone \ud800 surrogate."),
        ToolSpec("evil", "a-b", "Collides."),
        ToolSpec("evil", "a_b", "Collides."),
        ToolSpec("evil", "a.b", "Collides."),
    ]
    root = tmp_path / "stubs"
    report = compile_to_dir({"evil": tools, "other": [_good()]}, root)
    _parse_all(root)
    index = load_index(root)
    evil = next(b for b in index["servers"] if b["name"] == "evil")
    names = {t["name"]: t["python_name"] for t in evil["tools"]}
    assert set(names) == {t.name for t in tools}
    assert len(set(names.values())) == len(names)
    assert len(names["t" * 300]) < 100
    assert names["__init__"] != "__init__"
    for python_name in names.values():
        assert (root / "evil" / f"{python_name}.py").is_file()
    assert (root / "other" / "fine.py").is_file()
    # Deterministic: a second compile into a fresh tree gives the same bytes.
    again = tmp_path / "again"
    compile_to_dir({"evil": list(reversed(tools)), "other": [_good()]}, again)
    for path in root.rglob("*"):
        if path.is_file():
            assert path.read_bytes() == (again / path.relative_to(root)).read_bytes(), path
    assert report.tools == len(tools) + 1


def test_one_unwritable_tool_does_not_stop_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import codemode.compiler.writer as writer

    real = writer.write_atomic

    def flaky(path: Path, data: bytes) -> None:
        if path.name == "doomed.py":
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(writer, "write_atomic", flaky)
    root = tmp_path / "stubs"
    tools = [ToolSpec("s", "doomed", "x"), ToolSpec("s", "fine", "y")]
    report = compile_to_dir({"s": tools, "other": [_good()]}, root)
    assert any(w.startswith("s.doomed:") and "cannot write stub" in w for w in report.warnings), report.warnings
    assert (root / "s" / "fine.py").is_file() and (root / "other" / "fine.py").is_file()
    assert "doomed" not in (root / "s" / "__init__.py").read_text()


def test_a_crashing_renderer_is_isolated_per_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import codemode.compiler.writer as writer

    real = writer.render_stub

    def boom(stub: Any) -> str:
        if stub.tool == "boom" and not stub.generic:
            raise RuntimeError("renderer bug")
        return real(stub)

    monkeypatch.setattr(writer, "render_stub", boom)
    root = tmp_path / "stubs"
    report = compile_to_dir({"s": [ToolSpec("s", "boom", "x"), ToolSpec("s", "ok", "y")]}, root)
    assert any(w.startswith("s.boom:") for w in report.warnings), report.warnings
    assert _entry(root, "s", "boom")["generic"] is True
    assert (root / "s" / "ok.py").is_file()


def _deep(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        node = {"type": "object", "properties": {"x": node}}
    return node


def test_huge_description_is_capped_before_rendering(tmp_path: Path) -> None:
    description = "A tool. " + "x" * (40 * 1024 * 1024)
    root = tmp_path / "stubs"
    start = time.perf_counter()
    report = compile_to_dir({"evil": [ToolSpec("evil", "big", description)], "other": [_good()]}, root)
    elapsed = time.perf_counter() - start
    print(f"40 MB description: {elapsed:.3f} s")
    text = (root / "evil" / "big.py").read_text()
    assert len(text) < MAX_DESCRIPTION + 4096
    assert "truncated" in text
    assert any(w.startswith("evil.big:") and str(MAX_DESCRIPTION) in w.replace(",", "") for w in report.warnings)
    _parse_all(root)


@pytest.mark.parametrize("where", ["input", "output", "annotations"])
def test_deep_schema_is_refused_before_generation(tmp_path: Path, where: str) -> None:
    deep = _deep(10_000)
    if where == "input":
        spec = ToolSpec("evil", "deep", "Deep.", deep)
    elif where == "output":
        spec = ToolSpec("evil", "deep", "Deep.", output_schema=deep)
    else:
        spec = ToolSpec("evil", "deep", "Deep.", annotations={"x": deep})
    root = tmp_path / "stubs"
    start = time.perf_counter()
    report = compile_to_dir({"evil": [spec], "other": [_good()]}, root)
    print(f"10,000-deep {where}: {time.perf_counter() - start:.3f} s")
    assert any(w.startswith("evil.deep:") and str(MAX_SCHEMA_DEPTH) in w for w in report.warnings), report.warnings
    if where != "annotations":
        assert _entry(root, "evil", "deep")["generic"] is True
    assert (root / "other" / "fine.py").is_file()
    _parse_all(root)


def test_big_schema_is_refused_before_generation(tmp_path: Path) -> None:
    properties = {f"p{i}": {"type": "string", "description": "d" * 1000} for i in range(400)}
    spec = ToolSpec("evil", "wide", "Wide.", {"type": "object", "properties": properties})
    root = tmp_path / "stubs"
    report = compile_to_dir({"evil": [spec], "other": [_good()]}, root)
    limit = f"{MAX_SCHEMA_BYTES // 1024} KB"
    assert any(w.startswith("evil.wide:") and limit in w for w in report.warnings), report.warnings
    assert _entry(root, "evil", "wide")["generic"] is True


def test_hostile_server_names_and_summaries(tmp_path: Path) -> None:
    servers = {"s" * 300: [ToolSpec("s" * 300, "t")], "__init__": [ToolSpec("__init__", "t")], "q": [_good()]}
    summaries = {"q": 'Ends in a quote"', "__init__": "NUL \x00 and \ud800", "s" * 300: "x" * 100_000}
    root = tmp_path / "stubs"
    report = compile_to_dir(servers, root, summaries=summaries)
    _parse_all(root)
    assert report.tools == 3
    modules = {b["name"]: b["module"] for b in load_index(root)["servers"]}
    assert len(modules["s" * 300]) < 100 and not modules["__init__"].startswith("_")


@pytest.mark.parametrize(
    "text", ['Ends in a quote"', 'two""', 'three"""', '"', 'a """ b', "back\\", 'path\\"', 'q"\n  ', "s\\\\"]
)
def test_a_docstring_reads_back_as_the_text_it_was_given(text: str) -> None:
    # Every tool's docstring ends with "Calls MCP tool ..." today; the escape must not rely on that.
    assert ast.literal_eval(f'"""{escape_docstring(text)}"""') == text.rstrip()


def test_absurd_tool_name_is_skipped_with_a_warning(tmp_path: Path) -> None:
    root = tmp_path / "stubs"
    report = compile_to_dir({"evil": [ToolSpec("evil", "n" * 5_000_000), ToolSpec("evil", "ok")]}, root)
    assert any("skipped" in w and "limit 1024" in w and len(w) < 2000 for w in report.warnings), report.warnings
    assert report.tools == 2  # a skipped tool is still counted as one the server has
    assert [t["name"] for b in load_index(root)["servers"] for t in b["tools"]] == ["ok"]


# -- item 7, the class: names and manifests no file system or Python literal handles as expected ------------


def test_emoji_and_non_ascii_wire_names_reach_the_tool_by_their_own_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # JSON spells 📝 as a surrogate pair; written as a Python literal that is two lone surrogates, not 📝.
    server, tool = "émoji📦", "📝 save"
    properties = {"ñame": {"type": "string"}, "📝": {"type": "integer"}}
    schema = {"type": "object", "properties": properties, "required": ["ñame"]}
    root = tmp_path / "stubs"
    compile_to_dir({server: [ToolSpec(server, tool, "Save.", schema)], "other": [_good()]}, root)
    _parse_all(root)
    entry = _entry(root, server, tool)
    module = next(b["module"] for b in load_index(root)["servers"] if b["name"] == server)
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setitem(sys.modules, "codemode_runtime", SimpleNamespace(call=lambda *a: calls.append(a)))
    path = root / module / f"{entry['python_name']}.py"
    namespace: dict[str, Any] = {}
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)
    function = namespace[entry["python_name"]]
    first, second = inspect.signature(function).parameters
    function(**{first: "x", second: 3})
    assert calls == [(server, tool, {"ñame": "x", "📝": 3})]


def test_names_that_differ_only_by_case_get_files_apart_on_any_file_system(tmp_path: Path) -> None:
    # On a case-insensitive file system (macOS, Windows) Notes/ and notes/, Get.py and get.py are one file.
    servers = {
        "Notes": [ToolSpec("Notes", name, f"{name} tool.") for name in ("Get", "get", "GET", "get_2")],
        "notes": [ToolSpec("notes", "list", "List.")],
    }
    root = tmp_path / "stubs"
    report = compile_to_dir(servers, root)
    _parse_all(root)
    files = [p.relative_to(root).as_posix() for p in root.rglob("*.py")]
    assert len({f.casefold() for f in files}) == len(files), sorted(files)
    blocks = {b["name"]: b for b in load_index(root)["servers"]}
    assert blocks["Notes"]["module"].casefold() != blocks["notes"]["module"].casefold()
    names = [t["python_name"] for t in blocks["Notes"]["tools"]]
    assert len(names) == 4 and len({n.casefold() for n in names}) == 4, names
    assert report.tools == 5


def test_a_tampered_manifest_neither_deletes_nor_writes_outside_the_tree(tmp_path: Path) -> None:
    root = tmp_path / "stubs"
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.py").write_text("keep me too")
    compile_to_dir({"other": [_good()], "gone": [ToolSpec("gone", "t", "Goes away.")]}, root)
    manifest_path = root / ".codemode-manifest.json"
    manifest = json.loads(manifest_path.read_text())
    # A backslash is a separator on Windows: "..\\victim.txt" is refused on every system.
    manifest["files"] += [
        "../victim.txt", str(victim), "other/../../victim.txt", "linked/x.py", "other\x00.py", "..\\victim.txt", 7,
    ]  # fmt: skip
    for record in manifest["tools"].values():  # index entries that would put other names into the package
        record["index"]["python_name"] = "os; import os"
    manifest_path.write_text(json.dumps(manifest))
    (root / "linked").symlink_to(outside, target_is_directory=True)
    # A server's package replaced by a link out of the tree: the next compile must not write through it.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(root / "other")
    (root / "other").symlink_to(elsewhere, target_is_directory=True)

    report = compile_to_dir({"other": [_good()]}, root)
    assert victim.read_text() == "keep me" and (outside / "x.py").read_text() == "keep me too"
    assert list(elsewhere.iterdir()) == []
    assert not (root / "other").is_symlink() and (root / "other" / "fine.py").is_file()
    assert "gone/t.py" in report.deleted and not (root / "gone").exists()
    ignored = [w for w in report.warnings if "not a file of the stubs tree" in w]
    assert len(ignored) == 6, report.warnings  # the four paths out of the tree, the NUL, the backslash; 7 is none
    _parse_all(root)
    assert "import os" not in _tree_text(root)


def test_an_empty_argument_name_gets_a_typed_stub_that_sends_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "" is a valid JSON object key: its literal must not fail the stub (the generic one would lose the types).
    schema = {"type": "object", "properties": {"": {"type": "string"}}, "required": [""]}
    root = tmp_path / "stubs"
    report = compile_to_dir({"s": [ToolSpec("s", "t", "Empty key.", schema)]}, root)
    assert report.warnings == [] and _entry(root, "s", "t")["generic"] is False
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setitem(sys.modules, "codemode_runtime", SimpleNamespace(call=lambda *a: calls.append(a)))
    namespace: dict[str, Any] = {}
    exec(compile((root / "s" / "t.py").read_text(encoding="utf-8"), "t.py", "exec"), namespace)
    namespace["t"](arg="x")
    assert calls == [("s", "t", {"": "x"})]


@pytest.mark.parametrize("tools", [None, [], "x", 7])
def test_a_manifest_of_this_version_with_broken_tool_records_is_ignored(tmp_path: Path, tools: Any) -> None:
    root = tmp_path / "stubs"
    compile_to_dir({"s": [ToolSpec("s", "t", "First.")]}, root)
    manifest_path = root / ".codemode-manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["tools"] = tools
    manifest_path.write_text(json.dumps(manifest))
    before = (root / "s" / "t.py").read_bytes()
    report = compile_to_dir({"s": [ToolSpec("s", "t", "First.")]}, root)  # no record to reuse: rendered again
    assert report.warnings == [] and report.written == [] and (root / "s" / "t.py").read_bytes() == before


@pytest.mark.parametrize("damage", ["not json", "not utf-8", "a directory"])
def test_an_unreadable_index_is_a_clear_error(tmp_path: Path, damage: str) -> None:
    root = tmp_path / "stubs"
    compile_to_dir({"s": [ToolSpec("s", "t", "First.")]}, root)
    index = root / "_index.json"
    index.unlink()
    if damage == "a directory":
        index.mkdir()
    else:
        index.write_bytes({"not json": b"{", "not utf-8": b'"\xff'}[damage])
    with pytest.raises(CompileError, match="unreadable index"):
        load_index(root)


@pytest.mark.parametrize("damage", [b"{", b'"\xff', b"[" * 100_000, b"[]", b'{"version": 1, "files": "x"}'])
def test_a_damaged_manifest_is_ignored(tmp_path: Path, damage: bytes) -> None:
    root = tmp_path / "stubs"
    compile_to_dir({"s": [ToolSpec("s", "t", "First.")]}, root)
    (root / ".codemode-manifest.json").write_bytes(damage)
    report = compile_to_dir({"s": [ToolSpec("s", "t", "First.")], "other": [_good()]}, root)
    assert report.warnings == [] and report.written == [
        "other/fine.py",
        "other/__init__.py",
        "__init__.py",
        "_index.json",
    ]
    assert json.loads((root / ".codemode-manifest.json").read_text())["files"] == [
        "__init__.py", "_index.json", "other/__init__.py", "other/fine.py", "s/__init__.py", "s/t.py",
    ]  # fmt: skip


def test_a_directory_in_the_manifests_place_is_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "stubs"
    (root / ".codemode-manifest.json").mkdir(parents=True)
    with pytest.raises(CompileError, match="cannot write stub"):
        compile_to_dir({"s": [ToolSpec("s", "t", "First.")]}, root)


def test_the_class_split_is_linear_in_the_number_of_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # ast.get_source_segment splits the whole generated module again for every class: 1,600 nested
    # properties took 46 s. The split must read the module's lines once.
    def quadratic(*args: object, **kwargs: object) -> None:
        raise AssertionError("ast.get_source_segment re-splits the module for every class")

    monkeypatch.setattr(ast, "get_source_segment", quadratic)
    properties = {f"p{i}": {"type": "object", "properties": {"q": {"type": "string"}}} for i in range(2_000)}
    root = tmp_path / "stubs"
    wide = ToolSpec("wide", "t", "Wide.", {"type": "object", "properties": properties})
    report = compile_to_dir({"wide": [wide]}, root)
    _parse_all(root)
    assert not [w for w in report.warnings if "generic" in w], report.warnings
    assert (root / "wide" / "t.py").read_text().count("class P") >= 2_000


@pytest.mark.parametrize(
    ("field", "value"), [("python_name", "os; import os"), ("name", "other"), ("summary", 7), ("summary", None)]
)
def test_a_tampered_index_record_with_a_current_hash_is_not_reused(tmp_path: Path, field: str, value: Any) -> None:
    # The hash and the stub file are as the compiler left them; only the record's names or summary are not.
    root = tmp_path / "stubs"
    compile_to_dir({"other": [_good()]}, root)
    manifest_path = root / ".codemode-manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for record in manifest["tools"].values():
        record["index"][field] = value
    manifest_path.write_text(json.dumps(manifest))
    report = compile_to_dir({"other": [_good()]}, root)
    assert report.unchanged[0] == "other/fine.py"  # rendered again, to the same bytes
    entry = _entry(root, "other", "fine")
    assert entry["python_name"] == "fine" and entry["summary"] == "A fine tool."
    assert "import os" not in _tree_text(root)
    _parse_all(root)


def _doubling(levels: int) -> dict[str, Any]:
    """A kilobyte that stands for 2**levels objects: each definition names the next one twice."""
    defs: dict[str, Any] = {
        f"d{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}, {"type": "integer"}]}
        for i in range(levels)
    }
    defs[f"d{levels}"] = {"type": "string"}
    return {"type": "object", "$defs": defs, "properties": {"p": {"$ref": "#/$defs/d0"}}}


@pytest.mark.parametrize("where", ["input", "output"])
def test_references_that_expand_past_the_limit_are_refused_before_generation(tmp_path: Path, where: str) -> None:
    # 1.3 KB: 26 s in the code generator at 12 levels, twice that at 13; one tool held up every server's stubs.
    schema = _doubling(40)
    assert expanded_size(schema, MAX_EXPANDED) == MAX_EXPANDED + 1  # counted without expanding anything
    spec = (
        ToolSpec("evil", "refs", "Refs.", schema)
        if where == "input"
        else ToolSpec("evil", "refs", "Refs.", output_schema=schema)
    )
    root = tmp_path / "stubs"
    report = compile_to_dir({"evil": [spec], "other": [_good()]}, root)
    assert any(w.startswith("evil.refs:") and f"expands past {MAX_EXPANDED:,} objects" in w for w in report.warnings), (
        report.warnings
    )
    assert _entry(root, "evil", "refs")["generic"] is True
    assert (root / "other" / "fine.py").is_file()
    _parse_all(root)


def test_what_references_add_is_counted_exactly() -> None:
    assert expanded_size(_doubling(3), 10**6) == 4 + 2 * (4 + 2 * (4 + 2 * 1))  # d0 inlined, d1 twice in it...
    wide = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(5_000)}}
    assert expanded_size(wide, 10) == 0  # no references, nothing added: its size is measure()'s to bound
    looped = {"$defs": {"a": {"properties": {"b": {"$ref": "#/$defs/a"}}}}, "properties": {"x": {"$ref": "#/$defs/a"}}}
    assert expanded_size(looped, 10**6) == 3 + 1  # a, its properties, b, and b's way back into a


def test_repeated_types_are_walked_once(tmp_path: Path) -> None:
    # "type": ["array", "array", ...] walked the same items once per entry: 20 entries, 5 levels, 20**5 walks.
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(8):
        schema = {"type": ["array"] * 20, "items": schema}
    spec = ToolSpec("evil", "nested", "Types.", {"type": "object", "properties": {"p": schema}})
    root = tmp_path / "stubs"
    compile_to_dir({"evil": [spec]}, root)
    assert f"p: {'list[' * 8}str{']' * 8} | None = None" in (root / "evil" / "nested.py").read_text()


@pytest.mark.parametrize("summary", ['Notes server """', 'Notes \\"""', 'a ""', "b \\", 'c \\"', 'd \\\\"'])
def test_a_server_summary_never_breaks_its_package(tmp_path: Path, summary: str) -> None:
    # 'Notes server """' ended the package's docstring early: the package could not be imported, and the
    # type check, which reads every package, failed for every server and let every program run unchecked.
    root = tmp_path / "stubs"
    compile_to_dir({"evil": [ToolSpec("evil", "t", "T.")], "other": [_good()]}, root, summaries={"evil": summary})
    init = (root / "evil" / "__init__.py").read_text()
    assert ast.get_docstring(ast.parse(init)) == f"evil: 1 tools. {summary.strip()}"


def test_a_package_that_does_not_parse_leaves_the_other_servers_checked(tmp_path: Path) -> None:
    root = tmp_path / "stubs"
    compile_to_dir({"evil": [ToolSpec("evil", "t", "T.")], "other": [_good()]}, root)
    (root / "evil" / "__init__.py").write_text('"""broken \\""""\n')  # what a summary once made of it
    program = "from stubs import other\nother.fine(nope=1)\nundefined_name\n"
    diagnostics = checker_for(root).check(program)
    assert [d.message for d in diagnostics] == [
        'Unexpected keyword argument "nope" for "fine"',
        'Name "undefined_name" is not defined',
    ], diagnostics


BUILTIN_TOOLS = ["globals", "getattr", "isinstance", "sorted", "super", "AttributeError"]


def test_tools_named_like_the_builtins_a_package_uses_are_only_called_when_called(tmp_path: Path) -> None:
    # A tool's function is bound into its package's globals once used: a tool named globals was then called by
    # the next attribute lookup, and one named isinstance broke every other tool of its server.
    root = tmp_path / "stubs"
    compile_to_dir({"s": [ToolSpec("s", name) for name in [*BUILTIN_TOOLS, "ok"]]}, root)
    probe = f"""
import sys
sys.path.insert(0, {str(tmp_path)!r})
import codemode_runtime
calls = []
codemode_runtime.call = lambda server, tool, args: calls.append(tool) or tool
from stubs import s
for name in {BUILTIN_TOOLS!r}:
    getattr(s, name)
print(s.ok(), sorted(dir(s)) == sorted(set(dir(s))), calls)
"""
    env_path = str(Path(__file__).resolve().parents[2] / "sandbox")
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env={"PYTHONPATH": env_path}
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ok", "True", "['ok']"]
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "-p", "stubs.s"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env={**os.environ, "MYPYPATH": env_path},
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout


def _strict(root: Path) -> None:
    """The tree passes mypy --strict and every stub imports (the runtime's call stubbed out)."""
    runtime = str(Path(__file__).resolve().parents[2] / "sandbox")
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "-p", "stubs"],
        capture_output=True, text=True, timeout=300, cwd=root.parent, env={**os.environ, "MYPYPATH": runtime},
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout
    modules = sorted(
        ".".join(path.relative_to(root.parent).with_suffix("").parts)
        for path in root.rglob("*.py")
        if path.name != "__init__.py"
    )
    probe = (
        f"import sys, importlib\nsys.path[:0] = [{str(root.parent)!r}, {runtime!r}]\n"
        f"for name in {modules!r}:\n    importlib.import_module(name)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


NAMED_LIKE = {  # wire names a stub module uses for itself
    "args": {
        "type": "object",
        "properties": {n: {"type": "string"} for n in ("result", "str", "list", "Any", "TResult", "cast", "__debug__")},
    },
    "defs": {
        "type": "object",
        "$defs": {"Any": {"type": "object", "properties": {"a": {"type": "string"}}}},
        "properties": {"p": {"$ref": "#/$defs/Any"}, "q": {"type": "object", "additionalProperties": True}},
    },
}


def test_names_a_stub_uses_itself_are_never_taken_by_a_schema(tmp_path: Path) -> None:
    # Each was a stub that failed mypy --strict (a parameter or $defs class shadowing what the module uses),
    # or that imported nothing: "__debug__" cannot be bound.
    output = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    tools = [ToolSpec("s", "t", "T.", NAMED_LIKE["args"], output_schema=output),
             ToolSpec("s", "d", "D.", NAMED_LIKE["defs"], output_schema=output),
             ToolSpec("s", "Literal", "L.", {"type": "object", "properties": {"m": {"type": "string"}}})]  # fmt: skip
    root = tmp_path / "stubs"
    report = compile_to_dir({"s": tools}, root)
    assert not [w for w in report.warnings if "generic" in w], report.warnings
    _strict(root)
    args = {a["name"]: a["wire"] for a in _entry(root, "s", "t")["args"]}
    assert set(args.values()) == set(NAMED_LIKE["args"]["properties"]) and "result" not in args
    assert _entry(root, "s", "Literal")["python_name"] != "Literal"


def test_a_class_renamed_off_a_name_the_stub_uses_takes_a_name_no_other_class_has(tmp_path: Path) -> None:
    # A tool named Item whose $defs hold Item and ItemModel: the Item class must make way for the function,
    # and not onto ItemModel, or both parameters would be typed as ItemModel and one shape lost.
    item = {"type": "object", "properties": {"v": {"type": "string"}}, "required": ["v"]}
    model = {"type": "object", "properties": {"w": {"type": "integer"}}, "required": ["w"]}
    schema = {"type": "object", "$defs": {"Item": item, "ItemModel": model},
              "properties": {"p": {"$ref": "#/$defs/Item"}, "q": {"$ref": "#/$defs/ItemModel"}}}  # fmt: skip
    root = tmp_path / "stubs"
    report = compile_to_dir({"s": [ToolSpec("s", "Item", "I.", schema)]}, root)
    assert report.warnings == [] and _entry(root, "s", "Item")["generic"] is False
    checker = checker_for(root)
    assert checker.check("from stubs import s\ns.Item(p={'v': 'x'}, q={'w': 1})\n") == []
    assert checker.check("from stubs import s\ns.Item(p={'w': 1}, q={'v': 'x'})\n") != []  # each keeps its shape


def test_a_summary_that_would_break_its_package_is_dropped_and_the_package_stands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The summary is escaped as a docstring; should the escape ever miss a case, the package must still parse
    # (one server's broken __init__ would fail the type check of every program). Here the escape is taken
    # away: a quote run ends the docstring (SyntaxError), a lone surrogate cannot be encoded for the parser
    # (UnicodeEncodeError, a ValueError).
    import codemode.compiler.package as package

    monkeypatch.setattr(package, "escape_docstring", lambda text: text)
    name = "n" * 300
    servers = {name: [_good()], "q": [_good()], "z": [_good()]}
    report = compile_to_dir(
        servers, tmp_path / "stubs", summaries={name: 'a """ b', "q": "lone \udcff here", "z": "Fine."}
    )
    _parse_all(tmp_path / "stubs")
    dropped = [w for w in report.warnings if "summary dropped" in w]
    assert len(dropped) == 2 and dropped[0].startswith("n" * 200 + ": summary dropped") and dropped[1].startswith("q:")
    summaries = {b["name"]: b.get("summary", "") for b in load_index(tmp_path / "stubs")["servers"]}
    assert (summaries[name], summaries["q"], summaries["z"]) == ("", "", "Fine.")


def test_string_values_survive_what_renames_classes(tmp_path: Path) -> None:
    # An output class named like an input class is renamed ItemOut, and "Item" inside a wire key or an enum
    # value was renamed with it; a value '\"\"\"' read as a docstring lost the import of a name used after it.
    item = {"type": "object", "properties": {"a": {"type": "string"}}}
    kind = {"enum": ["an Item here", '"""']}
    properties = {"my Item key": {"type": "string"}, "kind": kind, "any": {"type": "object"}}
    out_item = {"type": "object", "properties": properties, "required": ["my Item key"]}
    spec = ToolSpec(
        "s", "t", "T.", {"type": "object", "properties": {"item": item}},
        output_schema={"type": "object", "properties": {"item": out_item}},
    )  # fmt: skip
    root = tmp_path / "stubs"
    compile_to_dir({"s": [spec]}, root)
    text = (root / "s" / "t.py").read_text()
    assert "'my Item key'" in text and "'an Item here'" in text and "ItemOut" in text
    _strict(root)


def test_nested_keys_are_the_wire_keys(tmp_path: Path) -> None:
    # The generator's class form renamed _id to field_id, and wrote ﬁle as an identifier Python reads as file:
    # the check then refused correct programs and passed ones that fail with KeyError.
    ids = {"type": "object", "properties": {k: {"type": "string"} for k in ("_id", "__typename", "ok")}}
    ids["required"] = ["_id"]
    ligature = {"type": "object", "properties": {"\ufb01le": {"type": "string"}, "ok": {"type": "string"}}}
    spec = ToolSpec(
        "s", "get", "Get.", {"type": "object", "properties": {"filter": ids, "f2": ligature}, "required": ["filter"]},
        output_schema={"type": "object", "properties": {"doc": ids, "meta": ligature}, "required": ["doc", "meta"]},
    )  # fmt: skip
    root = tmp_path / "stubs"
    compile_to_dir({"s": [spec]}, root)
    _strict(root)
    text = (root / "s" / "get.py").read_text()
    assert "field_" not in text and "'_id'" in text and "'\ufb01le'" in text
    right = "from stubs import s\nr = s.get(filter={'_id': '1'}, f2={'\ufb01le': 'x'})\nr['doc']['__typename']\n"
    assert checker_for(root).check(right + "r['meta']['\ufb01le']\n") == []
    wrong = "from stubs import s\nr = s.get(filter={'field_id': '1'})\nr['meta']['file']\n"
    assert len(checker_for(root).check(wrong)) == 3


@pytest.mark.parametrize("required", ["ab", {"a": 1}, ["a", 7, None]])
def test_required_is_read_only_as_a_list_of_names(tmp_path: Path, required: Any) -> None:
    properties = {"a": {"type": "string"}, "b": {"type": "string"}, "ab": {"type": "string"}}
    spec = ToolSpec("s", "t", "T.", {"type": "object", "properties": properties, "required": required})
    root = tmp_path / "stubs"
    compile_to_dir({"s": [spec]}, root)
    optional = {a["name"] for a in _entry(root, "s", "t")["args"] if not a["required"]}
    assert optional == ({"b", "ab"} if isinstance(required, list) else {"a", "b", "ab"})


def test_definitions_named_like_the_root_classes_keep_their_place(tmp_path: Path) -> None:
    # A $defs entry named HArgs (tool h's arguments class) made the generator rename the root, and the entry was
    # then read as the root: every argument became Any. One named GResult was overwritten by the result class.
    v = {"type": "object", "properties": {"v": {"type": "string"}}, "required": ["v"]}
    h = ToolSpec("s", "h", "H.", {"type": "object", "$defs": {"HArgs": v},
                 "properties": {"p": {"$ref": "#/$defs/HArgs"}, "e": {"enum": ["x"]}}})  # fmt: skip
    g = ToolSpec(
        "s", "g", "G.", {"type": "object", "$defs": {"GResult": v}, "properties": {"p": {"$ref": "#/$defs/GResult"}}},
        output_schema={"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
    )  # fmt: skip
    root = tmp_path / "stubs"
    compile_to_dir({"s": [h, g]}, root)
    _strict(root)
    assert _entry(root, "s", "h")["signature"] == "h(*, p: HArgs | None = None, e: Literal['x'] | None = None) -> Any"
    program = "from stubs import s\ns.h(p={'v': 1}, e='nope')\nr = s.g(p={'v': 'x'})\nr['n'] + 1\n"
    assert [d.line for d in checker_for(root).check(program)] == [2, 2]


def test_a_dotted_definition_name_keeps_the_tool_typed(tmp_path: Path) -> None:
    # "com.example.User" (Java, .NET and OpenAPI type names) made the generator write modules for the dots.
    user = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    definitions = {"com.example.User": user, "com_example_User": {"type": "integer"}}
    properties = {"user": {"$ref": "#/$defs/com.example.User"}, "n": {"$ref": "#/$defs/com_example_User"}}
    schema = {"type": "object", "$defs": definitions, "properties": properties}
    root = tmp_path / "stubs"
    report = compile_to_dir({"s": [ToolSpec("s", "t", "T.", schema)]}, root)
    assert report.warnings == [] and _entry(root, "s", "t")["generic"] is False
    _strict(root)
    assert [d.line for d in checker_for(root).check("from stubs import s\ns.t(user={'name': 1}, n=2)\n")] == [2]


def test_a_renamed_output_class_never_lands_on_an_input_class(tmp_path: Path) -> None:
    # The output's Item, clashing with the input's, became ItemOut: the input's own ItemOut was kept in its place.
    inp = {"type": "object", "properties": {"item": {"type": "object", "properties": {"a": {"type": "string"}}},
           "item_out": {"type": "object", "properties": {"in_only": {"type": "string"}}}}}  # fmt: skip
    real = {"type": "object", "properties": {"real": {"type": "integer"}}, "required": ["real"]}
    out = {"type": "object", "properties": {"item": real}, "required": ["item"]}
    root = tmp_path / "stubs"
    compile_to_dir({"s": [ToolSpec("s", "t", "T.", inp, output_schema=out)]}, root)
    _strict(root)
    assert checker_for(root).check('from stubs import s\nprint(s.t()["item"]["real"] + 1)\n') == []


def _obj(properties: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, **more}


def test_a_field_named_like_a_typing_name_leaves_the_stub_typed(tmp_path: Path) -> None:
    # A key "Any" beside a field of type Any: the generator imported Any as Any_aliased, which the stub (writing
    # its own imports) never defined, so the stub failed mypy and raised NameError on import.
    x = {"type": "object", "properties": {"Any": {"type": "string"}, "b": {}, "str": {"type": "integer"}}}
    spec = ToolSpec("s", "t", "T.", {"type": "object", "properties": {"x": x}}, output_schema=x)
    root = tmp_path / "stubs"
    report = compile_to_dir({"s": [spec]}, root)
    assert report.warnings == [] and _entry(root, "s", "t")["generic"] is False
    _strict(root)
    text = (root / "s" / "t.py").read_text()
    assert "_aliased" not in text and "'Any': NotRequired[str]" in text and "'b': NotRequired[Any]" in text
    program = "from stubs import s\nr = s.t(x={'Any': 'a', 'str': 1})\nr['Any'].upper()\nr['str'] + 1\n"
    assert checker_for(root).check(program) == []
    assert [d.line for d in checker_for(root).check("from stubs import s\ns.t(x={'Any': 1})\n")] == [2]


@pytest.mark.parametrize(
    "schema",
    [
        _obj({"child": {"$ref": "#"}, "n": {"type": "string"}}),
        _obj({"kids": {"type": "array", "items": {"$ref": "#"}}, "n": {"type": "string"}}),
        _obj({"_id": {"type": "string"}, "up": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}}),
        _obj({"n": {"type": "string"}, "m": {"type": "object", "additionalProperties": {"$ref": "#"}}}),
    ],
    ids=["child", "list", "functional-nullable", "map"],
)
def test_a_recursive_root_is_a_class_of_the_stub(tmp_path: Path, schema: dict[str, Any]) -> None:
    # {"$ref": "#"} named the arguments' root class, which was never written: the stub named an undefined class.
    root = tmp_path / "stubs"
    report = compile_to_dir({"s": [ToolSpec("s", "tree", "Tree.", schema)]}, root)
    assert report.warnings == [] and _entry(root, "s", "tree")["generic"] is False
    _strict(root)
    key = next(iter(set(schema["properties"]) - {"n", "_id"}))
    nested = {"child": {"child": {"n": "x"}}, "kids": [{"kids": []}], "up": {"up": None}, "m": {"a": {"n": "x"}}}
    program = f"from stubs import s\ns.tree({key}={nested[key]!r})\n"
    assert checker_for(root).check(program) == []
    bad = {"child": {"child": {"n": 1}}, "kids": [{"n": 1}], "up": {"_id": 1}, "m": {"a": {"n": 1}}}
    assert [d.line for d in checker_for(root).check(f"from stubs import s\ns.tree({key}={bad[key]!r})\n")] == [2]


def test_definitions_that_refer_back_to_a_recursive_root_import(tmp_path: Path) -> None:
    # The generator wrote the root last and referred to it bare from functional TypedDicts, which evaluate their
    # types at import: NameError. Optional["X"] it writes for a nullable forward reference was never imported.
    item = {"_x": {"type": "string"}, "up": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}}
    definitions = {
        f"d{i}": {"type": "object", "properties": {**item, "next": {"anyOf": [{"$ref": f"#/$defs/d{(i + 1) % 3}"},
                                                                          {"type": "null"}]}}}
        for i in range(3)
    }  # fmt: skip
    schema = {"type": "object", "$defs": definitions, "properties": {"p": {"$ref": "#/$defs/d0"}}}
    spec = ToolSpec("s", "t", "T.", schema, output_schema=schema)
    root = tmp_path / "stubs"
    report = compile_to_dir({"s": [spec]}, root)
    assert report.warnings == [] and _entry(root, "s", "t")["generic"] is False
    _strict(root)
    program = "from stubs import s\nr = s.t(p={'next': {'up': {'p': {}}}})\nn = r['p']['next']\nprint(n and n['_x'])\n"
    assert checker_for(root).check(program) == []


# -- hostile schemas, generated: every stub must pass mypy --strict and import, typed (never the generic one) --

HOSTILE_NAMES = [
    "class", "def", "None", "True", "from", "match", "case", "type", "_", "__", "str", "int", "float", "bool", "list",
    "dict", "tuple", "object", "set", "bytes", "len", "id", "Any", "Literal", "NotRequired", "Required", "TypeAlias",
    "TypedDict", "Optional", "Union", "BaseModel", "Field", "cast", "TYPE_CHECKING", "_call", "annotations",
    "result", "t", "TArgs", "TResult", "__debug__", "__init__", "__class__", "__dict__", "__annotations__",
    "__total__", "a", "A", "any", "ANY", "a-b", "a_b", "a b", "a.b", "A-B", "$x", "1abc", "", "é", "📝", "x\ny",
    "'", '"', "\\", "AnyModel", "X", "x", "_id", "Any_aliased", "self", "builtins",
]  # fmt: skip
"""Wire names that are keywords, builtins, typing names, names the stub module uses, dunders, names that differ only
by case or sanitise to the same identifier, and odd characters."""
_TYPED = {
    "s": {"type": "string"}, "any": {}, "lit": {"enum": ["v", 1, None]}, "lst": {"type": "array", "items": {}},
    "map": {"type": "object", "additionalProperties": {"type": "number"}}, "opt": {"type": ["string", "null"]},
    "pair": {"type": "array", "prefixItems": [{"type": "number"}, {}], "minItems": 2, "maxItems": 2},
}  # fmt: skip
"""Fields whose annotations use the names a hostile field could hide (``Any``, ``Literal``, ``list``, ``tuple``…)."""


def _pointer(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def hostile_schemas(group: str) -> dict[str, dict[str, Any]]:
    """Input schemas, by case name, for one group of hostile cases."""
    names = [n for n in HOSTILE_NAMES if n]
    if group == "names":
        cases = {
            "flat": _obj({n: {"type": "string"} for n in HOSTILE_NAMES}),
            "fields": _obj({"x": _obj({**{n: {"type": "string"} for n in HOSTILE_NAMES}, **_TYPED})}),
            "objects": _obj({n: _obj({"v": {"type": "string"}, **_TYPED}) for n in HOSTILE_NAMES}),
            "defs": {"type": "object", "$defs": {n: _obj({"v": {}, **_TYPED}) for n in names},
                     "properties": {f"p{i}": {"$ref": f"#/$defs/{_pointer(n)}"} for i, n in enumerate(names)}},
        }  # fmt: skip
        for n in ("Any", "Literal", "str", "list", "tuple", "TypedDict", "NotRequired", "_call", "TArgs"):
            cases[f"one field {n}"] = _obj({"x": _obj({n: {"type": "string"}, **_TYPED})})
            cases[f"one def {n}"] = {"type": "object", "$defs": {n: _obj({"v": {}})}, "properties": {
                "p": {"$ref": f"#/$defs/{n}"}, **_TYPED}}  # fmt: skip
        return cases
    if group == "recursion":
        loop = {f"d{i}": _obj({"_x": {"type": "string"}, "n": {"$ref": f"#/$defs/d{(i + 1) % 4}"},
                               "r": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}}) for i in range(4)}  # fmt: skip
        odd = ("a b", "a-b", "a/b", "a~b", "1x", "é", "node", "Node")
        return {
            "root": _obj({"child": {"$ref": "#"}, "n": {"type": "string"}}),
            "root in nested": _obj({"x": _obj({"up": {"$ref": "#"}, "Any": {}})}),
            "root in anyOf": _obj({"c": {"anyOf": [{"$ref": "#"}, {"type": "string"}, {"type": "null"}]}}),
            "root functional": _obj({"_id": {"type": "string"}, "child": {"$ref": "#"}, "Any": {}}),
            "loop through defs": {"type": "object", "$defs": loop, "properties": {"p": {"$ref": "#/$defs/d0"}}},
            "def named like the root": {"type": "object", "$defs": {"TArgs": _obj({"x": {"$ref": "#"}})},
                                        "properties": {"p": {"$ref": "#/$defs/TArgs"}, "q": {"$ref": "#"}}},
            "odd def keys": {"$defs": {k: _obj({"v": {"$ref": f"#/$defs/{_pointer(k)}"}}) for k in odd},
                             "properties": {f"p{i}": {"$ref": f"#/$defs/{_pointer(k)}"} for i, k in enumerate(odd)}},
            "literal naming a class": _obj({"k": {"enum": ["TArgs", "X"]},
                                            "x": _obj({"k": {"const": "X"}, "s": {"$ref": "#"}})}),
        }  # fmt: skip
    return {
        "combinators": _obj({
            "all": {"allOf": [_obj({"a": {"type": "string"}}), _obj({"b": {"type": "integer"}})]},
            "any": {"anyOf": [_obj({"a": {"type": "string"}}), {"type": "string"}, {"type": "null"}]},
            "one": {"oneOf": [_obj({"k": {"const": "x"}}), _obj({"k": {"const": 2}})]},
            "mix": {"allOf": [{"anyOf": [_obj({"a": {}}), _obj({"b": {}})]}, _obj({"c": {}})]},
            "not": {"not": {"type": "string"}},
            "deep": {"oneOf": [{"oneOf": [{"type": "string"}, _obj({"z": {}})]},
                               {"type": "array", "items": {"oneOf": [{"type": "integer"}, _obj({"w": {}})]}}]},
        }),
        "enums and consts": _obj({
            "mixed": {"enum": ["a", 1, 2.5, True, None, [1], {"k": 1}]}, "floats": {"enum": [1.5]},
            "empty": {"enum": []},
            "quotes": {"enum": ["'", '"', '"""', "\\", "\n", "a\x00b", "📝"]}, "obj": {"const": {"a": 1}},
            "null": {"const": None}, "nested": _obj({"e": {"enum": ["x", 1, None, 2.0]}, "c": {"const": [1]}}),
        }),
        "empties": _obj({"e1": _obj({}), "e2": _obj({"x": _obj({})}), "e3": {}, "e4": True, "e5": {"type": []},
                         "e6": _obj({}, required=["ghost"])}),
        "additional and pattern properties": _obj({
            "map": {"type": "object", "additionalProperties": _obj({"x": {"type": "string"}})},
            "both": _obj({"a": {"type": "string"}}, additionalProperties={"type": "integer"}),
            "closed": _obj({"a": {}}, additionalProperties=False),
            "maps": {"type": "object", "additionalProperties": {"additionalProperties": {"items": _obj({"q": {}})}}},
            "pattern": {"patternProperties": {"^x-": {"type": "string"}, "^[0-9]+$": _obj({"v": {}})}},
            "pattern and properties": _obj({"a": {}}, patternProperties={".*": {"type": "integer"}}),
        }),
        "tuples": _obj({
            "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]},
            "closed": {"type": "array", "prefixItems": [{"type": "string"}, _obj({"x": {}})], "items": False},
            "more": {"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "boolean"}},
            "draft4": {"type": "array", "items": [{"type": "string"}, {"type": "integer"}]},
            "rows": {"type": "array", "items": {"prefixItems": [{"type": "number"}] * 2, "minItems": 2, "maxItems": 2}},
        }),
        "case and sanitising": _obj({k: _obj({"v": {}}) for k in ("a", "A", "a_", "a-b", "a_b", "a b", "a.b", "aB")}),
    }  # fmt: skip


@pytest.mark.parametrize("group", ["names", "recursion", "shapes"])
def test_hostile_schemas_give_typed_stubs_that_pass_mypy_strict(tmp_path: Path, group: str) -> None:
    cases = hostile_schemas(group)
    tools = [ToolSpec("s", f"in{i}", name, schema) for i, (name, schema) in enumerate(cases.items())]
    tools += [ToolSpec("s", f"out{i}", name, {"type": "object"}, output_schema=schema)
              for i, (name, schema) in enumerate(cases.items()) if schema.get("properties")]  # fmt: skip
    root = tmp_path / "stubs"
    report = compile_to_dir({"s": tools}, root)
    assert not [w for w in report.warnings if "generic" in w], report.warnings
    _strict(root)
    ruff = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--config", str(Path(__file__).resolve().parents[2] / "pyproject.toml"),
         str(root)], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ruff.returncode == 0, ruff.stdout[-3000:]
    again = tmp_path / "again" / "stubs"
    compile_to_dir({"s": list(reversed(tools))}, again)
    for path in root.rglob("*.py"):
        assert path.read_bytes() == (again / path.relative_to(root)).read_bytes(), path


def test_renaming_a_clashing_output_class_renames_references_not_keys(tmp_path: Path) -> None:
    # The output's Item, clashing with the input's, becomes ItemOut. A field named Item (a wire key) was renamed
    # with it, and the functional form's forward reference "Item" was not: the output's next pointed at the input's.
    inp = _obj({"item": _obj({"a": {"type": "string"}})})
    item = _obj({"_id": {"type": "integer"}, "next": {"$ref": "#/$defs/Item"}}, required=["_id"])
    wrap = _obj({"Item": {"type": "string"}, "k": {"enum": ["Item"]}}, required=["Item"])
    out = {"type": "object", "$defs": {"Item": item}, "properties": {"item": {"$ref": "#/$defs/Item"}, "wrap": wrap}}
    out["required"] = ["item", "wrap"]
    root = tmp_path / "stubs"
    compile_to_dir({"s": [ToolSpec("s", "t", "T.", inp, output_schema=out)]}, root)
    _strict(root)
    program = "from stubs import s\nr = s.t()\nr['wrap']['Item'].upper()\n"
    program += "n = r['item'].get('next')\nprint(n and n['_id'] + 1)\n"
    assert checker_for(root).check(program) == []
