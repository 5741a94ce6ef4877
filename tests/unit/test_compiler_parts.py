"""The compiler's parts one at a time, each rule pinned at its boundary: names from upstream text, the rendered
text's cut and wrap widths, result types, and the writer's reuse of a manifest (most from the mutation round
of issue 17; scripts/mutation.py runs this file first for the compiler, it is fast)."""

from __future__ import annotations

import ast
import inspect
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from codemode.calls.shapes import merge, shape_of
from codemode.compiler import compile_to_dir, load_index
from codemode.compiler.inferred import Inferred
from codemode.compiler.naming import class_name, identifier, unique
from codemode.compiler.render import (
    HEADER,
    LONG_LINES,
    _docstring,
    build_stub,
    declares_result,
    render_stub,
    summary_of,
    with_header,
)
from codemode.hub import ToolSpec
from tests.conftest import REPO


def _one_arg_stub(server: str, key: str) -> str:
    schema = {"type": "object", "properties": {key: {"type": "string"}}, "required": [key]}
    text = render_stub(build_stub(ToolSpec(server, "t", "d", schema), "t"))
    ast.parse(text)
    return text


def test_a_call_is_wrapped_only_past_90_characters() -> None:
    # _call("ss", "t", {"k…": k…}) is 24 + 2 × 33 = 90 characters; one more in the server's name makes 91.
    key = "k" * 33
    assert f'    return _call("ss", "t", {{"{key}": {key}}})\n' in _one_arg_stub("ss", key)
    wrapped = _one_arg_stub("sss", key)
    assert '    return _call(\n        "sss",\n        "t",\n        {\n' in wrapped
    assert f'            "{key}": {key},\n        }},\n    )\n' in wrapped


def test_a_signature_is_wrapped_only_past_110_characters() -> None:
    # def t(*, k…: str) -> Any: is 23 + 87 = 110 characters.
    assert f"\ndef t(*, {'k' * 87}: str) -> Any:\n" in _one_arg_stub("s", "k" * 87)
    assert f"\ndef t(\n    *,\n    {'k' * 88}: str,\n) -> Any:\n" in _one_arg_stub("s", "k" * 88)


def test_the_line_length_exemption_is_added_only_past_120_columns() -> None:
    assert with_header(f"{HEADER}\n{'x' * 120}\n") == f"{HEADER}\n{'x' * 120}\n"
    assert with_header(f"{HEADER}\n{'x' * 121}\n") == f"{HEADER}\n{LONG_LINES}\n{'x' * 121}\n"


def test_a_summary_is_cut_only_past_160_characters() -> None:
    assert summary_of("x" * 160) == "x" * 160
    assert summary_of("x" * 161) == "x" * 159 + "…"
    assert summary_of("First part.\n\nSecond part.") == "First part."
    assert summary_of("First part\n\nSecond part\n\nThird") == "First part"
    assert summary_of("Lists notes.  Each   note\nhas a title. More") == "Lists notes."
    assert summary_of("Is it safe? Yes. Always.") == "Is it safe?" and summary_of("Go! Now? Yes.") == "Go!"
    assert summary_of("Version 1.2 is out. More") == "Version 1.2 is out." and summary_of("No stop") == "No stop"


def test_an_uncompiled_schemas_reason_is_cut_only_past_300_characters() -> None:
    # The reason is "inputSchema type is '…', not 'object'": 36 characters around the type's text.
    def reason(length: int) -> str:
        stub = build_stub(ToolSpec("s", "t", "d", {"type": "y" * length}), "t")
        assert stub.generic and stub.warning is not None
        return stub.warning.split("using a generic signature: ", 1)[1]

    assert reason(264) == f"inputSchema type is '{'y' * 264}', not 'object'"
    assert reason(265) == f"inputSchema type is '{'y' * 265}', not 'objec…"  # 299 characters and the mark


def test_class_names_get_a_letter_first_only_when_they_would_start_with_a_digit() -> None:
    # A class name is made from upstream text (a tool's or an observed key's name).
    assert class_name("v2") == "V2" and class_name("search-notes") == "SearchNotes"
    assert class_name("_2fa") == "T2fa" and class_name("_1") == "T1" and class_name("9") == "X9"
    assert all(class_name(n).isidentifier() for n in ("_2fa", "9", "", "日本", "a-1"))


def test_observed_results_type_only_a_tool_without_an_output_schema() -> None:
    observed = Inferred(merge(shape_of({"a": 1, "b": "x"}), shape_of({"a": 2})), 2)
    stub = build_stub(ToolSpec("s", "t", "d"), "t", observed)
    assert stub.result_type == "TResult" and stub.result_doc.startswith("inferred from 2 results")
    assert stub.classes["TResult"] == "class TResult(TypedDict):\n    a: int\n    b: NotRequired[str]"
    assert {"NotRequired", "TypedDict"} <= stub.typing_names  # the IR names what its classes use
    enum = {"type": "object", "properties": {"mode": {"enum": ["a", "b"]}}}
    assert "Literal" in build_stub(ToolSpec("s", "t", "d", enum), "t").typing_names
    declared = {"type": "object", "properties": {"z": {"type": "integer"}}, "required": ["z"]}
    stub = build_stub(ToolSpec("s", "t", "d", output_schema=declared), "t", observed)
    assert stub.result_type == "TResult" and stub.result_doc == "structured content matching the tool's output schema"
    assert "z: int" in stub.classes["TResult"] and "a: int" not in stub.classes["TResult"]
    assert build_stub(ToolSpec("s", "t", "d"), "t").result_type == "Any"


def test_a_docstring_of_one_line_closes_on_that_line() -> None:
    assert _docstring("One line.", "    ") == '    """One line."""'
    assert _docstring("a\n\n  b\nc", "    ") == '    """a\n\n      b\n    c\n    """'


def test_only_a_current_manifest_spares_a_tool_its_rendering(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import codemode.compiler.writer as writer

    rendered: list[str] = []
    real = writer.build_stub
    monkeypatch.setattr(writer, "build_stub", lambda spec, *a: rendered.append(spec.name) or real(spec, *a))
    root, tools = tmp_path / "stubs", {"s": [ToolSpec("s", "t", "First.")]}
    compile_to_dir(tools, root)
    again = compile_to_dir(tools, root)
    assert rendered == ["t"]  # the second compile reused the manifest's record
    assert again.written == [] and again.unchanged == ["s/t.py", "s/__init__.py", "__init__.py", "_index.json"]
    manifest_path = root / ".codemode-manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "version": "1-older"}))
    report = compile_to_dir(tools, root)
    assert rendered == ["t", "t"] and report.unchanged == ["s/t.py", "s/__init__.py", "__init__.py", "_index.json"]


def test_argument_names_that_differ_only_by_case_stay_as_they_are() -> None:
    # Files fold case (see test_hostile_schemas); Python names do not: Q and q are two parameters.
    schema = {"type": "object", "properties": {"Q": {"type": "integer"}, "q": {"type": "string"}}}
    stub = build_stub(ToolSpec("s", "t", "d", schema), "t")
    assert [(a.python, a.wire) for a in stub.args] == [("Q", "Q"), ("q", "q")]
    assert 'return _call("s", "t", {"Q": Q, "q": q})' in render_stub(stub)
    taken = {"x", "x_2"}
    assert unique("x", taken) == "x_3" and unique("x", taken) == "x_4" and unique("X", taken) == "X"


def test_the_stubs_directory_is_made_with_its_parents(tmp_path: Path) -> None:
    root = tmp_path / "new" / "deeper" / "stubs"
    report = compile_to_dir({"s": [ToolSpec("s", "t")]}, root)
    assert (root / "s" / "t.py").is_file() and report.warnings == []


def test_names_from_upstream_text_split_camel_case_only_when_not_all_capitals() -> None:
    assert identifier("getUser-Info") == "get_user_info" and identifier("HTTP-Server") == "http_server"
    assert identifier("ALL-CAPS") == "all_caps" and identifier("getUser") == "getUser"  # a valid name stays
    # A name that becomes a keyword or a name the stubs use only after its cleaning is renamed all the same.
    assert identifier("class-") == "class_" and identifier("for ") == "for_" and identifier("sys.") == "sys_"


def test_an_optional_argument_is_none_able_exactly_once() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {}, "b": {"type": ["integer", "null"]}, "c": {"type": "integer"}, "d": {"type": "string"}},
        "required": ["c"],
    }
    stub = build_stub(ToolSpec("s", "t", "d", schema), "t")
    assert stub.signature == "t(*, c: int, a: Any = None, b: int | None = None, d: str | None = None) -> Any"


@pytest.mark.parametrize(
    "output", [None, {"type": "object"}, {"type": "object", "properties": {}}, {"type": "array", "items": {}}]
)
def test_an_output_schema_without_properties_leaves_the_result_to_observation(output: Any) -> None:
    spec = ToolSpec("s", "t", "d", output_schema=output)
    assert not declares_result(spec) and build_stub(spec, "t").result_type == "Any"
    observed = Inferred(shape_of({"a": 1}), 1)
    assert build_stub(spec, "t", observed).result_type == "TResult"


def test_a_stub_deleted_by_hand_is_written_again(tmp_path: Path) -> None:
    root, tools = tmp_path / "stubs", {"s": [ToolSpec("s", "t", "First.")]}
    compile_to_dir(tools, root)
    text = (root / "s" / "t.py").read_bytes()
    (root / "s" / "t.py").unlink()
    report = compile_to_dir(tools, root)  # the manifest's record is current, but the file is gone
    assert report.written == ["s/t.py"] and (root / "s" / "t.py").read_bytes() == text


def test_an_index_that_is_not_an_object_reads_as_empty(tmp_path: Path) -> None:
    (tmp_path / "_index.json").write_text("[1, 2]")
    assert load_index(tmp_path) == {"version": 1, "servers": []}


def test_the_compiler_version_changes_with_any_of_its_source_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stale manifests must never keep stale stubs: the version hashes the compiler's own code.
    import codemode.compiler.writer as writer

    source = REPO / "src" / "codemode"
    shutil.copytree(source / "compiler", tmp_path / "compiler", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "calls").mkdir()
    shutil.copy(source / "calls" / "shapes.py", tmp_path / "calls" / "shapes.py")
    monkeypatch.setattr(writer, "__file__", str(tmp_path / "compiler" / "writer.py"))
    seen = [writer._compiler_version()]
    assert seen[0] == writer.COMPILER_VERSION
    for changed in ("compiler/naming.py", "compiler/writer.py", "calls/shapes.py"):
        with (tmp_path / changed).open("a") as fh:
            fh.write("# changed\n")
        seen.append(writer._compiler_version())
    assert len(set(seen)) == 4 and all(v.startswith("2-") for v in seen), seen


def test_files_of_removed_tools_already_gone_are_no_error(tmp_path: Path) -> None:
    root = tmp_path / "stubs"
    compile_to_dir({"a": [ToolSpec("a", "keep"), ToolSpec("a", "drop")], "b": [ToolSpec("b", "t")]}, root)
    (root / "a" / "drop.py").unlink()  # a person tidied up by hand before the next compile
    shutil.rmtree(root / "b")
    report = compile_to_dir({"a": [ToolSpec("a", "keep")]}, root)
    assert report.deleted == [] and report.warnings == []
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py")) == [
        "__init__.py", "a/__init__.py", "a/keep.py",
    ]  # fmt: skip


def test_a_refused_manifest_path_is_shown_cut_to_200_characters(tmp_path: Path) -> None:
    root = tmp_path / "stubs"
    compile_to_dir({"s": [ToolSpec("s", "t")]}, root)
    manifest_path = root / ".codemode-manifest.json"
    manifest = json.loads(manifest_path.read_text())
    long = "../" + "v" * 300
    manifest["files"] += [long, "../" + "w" * 197]
    manifest_path.write_text(json.dumps(manifest))
    report = compile_to_dir({"s": [ToolSpec("s", "t")]}, root)
    shown = [w.split("ignored ", 1)[1].split(":", 1)[0] for w in report.warnings]
    assert shown == [repr(long[:200]), repr("../" + "w" * 197)], report.warnings


def test_an_output_class_named_like_a_different_input_class_is_renamed() -> None:
    item_in = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    item_out = {"type": "object", "properties": {"b": {"type": "integer"}}, "required": ["b"]}
    schema = {"type": "object", "properties": {"item": item_in}}
    stub = build_stub(
        ToolSpec("s", "t", "d", schema, output_schema={"type": "object", "properties": {"item": item_out}}), "t"
    )
    assert stub.classes["Item"] == "class Item(TypedDict):\n    a: str"
    assert stub.classes["ItemOut"] == "class ItemOut(TypedDict):\n    b: int"
    assert "item: NotRequired[ItemOut]" in stub.classes["TResult"]
    ast.parse(render_stub(stub))
    # The same class on both sides is one class.
    stub = build_stub(
        ToolSpec("s", "t", "d", schema, output_schema={"type": "object", "properties": {"item": item_in}}), "t"
    )
    assert list(stub.classes) == ["Item", "TResult"] and "item: NotRequired[Item]" in stub.classes["TResult"]


def test_argument_docs_name_default_format_and_wire_name() -> None:
    props = {
        "max-results": {"type": "integer", "description": "How  many\n results.", "default": 5, "format": "int32"},
        "q": {"type": "string", "default": None},
        "long_" + "k" * 100: {"type": "string"},
    }
    schema = {"type": "object", "properties": props, "required": ["long_" + "k" * 100]}
    text = render_stub(build_stub(ToolSpec("s", "t", "Doc.", schema), "t"))
    assert "        max_results: How many results. (default: 5) (format: int32) (wire name: 'max-results')\n" in text
    assert "        q: -\n" in text and "wire name: 'q'" not in text
    # A wrapped signature keeps the required arguments first, as the one-line form does.
    assert f"def t(\n    *,\n    long_{'k' * 100}: str,\n    max_results: int | None = None,\n" in text


def test_a_description_quoting_the_header_gets_no_exemption_line_inside_it() -> None:
    description = f"{HEADER}\n{'w' * 130}"
    text = render_stub(build_stub(ToolSpec("s", "t", description), "t"))
    assert text.startswith(f"{HEADER}\n{LONG_LINES}\n") and text.count(LONG_LINES) == 1
    namespace: dict[str, Any] = {}
    exec(compile(text.replace("from codemode_runtime import call as _call", "_call = None"), "t.py", "exec"), namespace)
    assert inspect.cleandoc(namespace["t"].__doc__).startswith(description + "\n")


def test_an_inferred_class_never_takes_the_name_of_an_argument_class() -> None:
    nested = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    schema = {"type": "object", "properties": {"t_result_item": nested}}
    stub = build_stub(ToolSpec("s", "t", "d", schema), "t", Inferred(shape_of({"item": {"b": 1}}), 1))
    assert stub.classes["TResultItem"] == "class TResultItem(TypedDict):\n    a: str"  # the argument's, kept
    assert stub.classes["TResult"] == "class TResult(TypedDict):\n    item: TResultItem_2"


def test_a_compile_types_from_observations_only_the_tools_without_an_output_schema(tmp_path: Path) -> None:
    declared = {"type": "object", "properties": {"z": {"type": "integer"}}, "required": ["z"]}
    tools = [ToolSpec("s", "plain"), ToolSpec("s", "typed", output_schema=declared)]
    observed = {spec.ref: Inferred(shape_of({"a": 1}), 3) for spec in tools}
    root = tmp_path / "stubs"
    compile_to_dir({"s": tools}, root, observed=observed)
    entries = {e["name"]: e for block in load_index(root)["servers"] for e in block["tools"]}
    assert entries["plain"]["result_type"] == "PlainResult" and entries["typed"]["result_type"] == "TypedResult"
    assert "    a: int\n" in (root / "s" / "plain.py").read_text()
    typed = (root / "s" / "typed.py").read_text()
    assert "    z: int\n" in typed and "    a: int\n" not in typed
