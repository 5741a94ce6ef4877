"""The stub compiler on hard schemas, the demo servers and a 1,000-tool catalog: import, call, type-check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.bench_compile import run as run_compile_benchmark
from benchmarks.bench_compile import synthetic_catalog
from codemode.compiler import compile_server, compile_to_dir, load_index
from codemode.compiler.naming import MAX_MODULE_NAME, module_name
from codemode.compiler.writer import TASK_REQUIRED, _reason
from codemode.hub import ToolSpec
from tests.conftest import FIXTURES, REPO

HARD = json.loads((FIXTURES / "schemas" / "hard.json").read_text())


def hard_tools() -> list[ToolSpec]:
    return [ToolSpec.from_json(HARD["server"], t) for t in HARD["tools"]]


def _check_tree(root: Path) -> None:
    """mypy --strict and ruff over a generated tree, importing from it as package ``stubs``."""
    env = {**os.environ, "MYPYPATH": str(REPO / "sandbox")}
    mypy = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "-p", "stubs"],
        cwd=root.parent, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert mypy.returncode == 0, mypy.stdout[-3000:]
    ruff = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--config", str(REPO / "pyproject.toml"), str(root)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert ruff.returncode == 0, ruff.stdout[-3000:]


def _import_all(root: Path, script: str) -> str:
    """Import every module of the tree in a fresh interpreter with a recording fake runtime."""
    fake = root.parent / "fake_runtime"
    (fake / "codemode_runtime").mkdir(parents=True, exist_ok=True)
    (fake / "codemode_runtime" / "__init__.py").write_text(
        "CALLS = []\ndef call(server, tool, args):\n    CALLS.append((server, tool, args))\n    return {'ok': True}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=root.parent, env={**os.environ, "PYTHONPATH": f"{fake}:{root.parent}"},
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_hard_schemas_compile_import_and_typecheck(tmp_path: Path) -> None:
    root = tmp_path / "stubs"
    report = compile_to_dir({HARD["server"]: hard_tools()}, root)
    warned = " ".join(report.warnings)
    assert "hard-cases.invalid" in warned and "hard-cases.not-an-object" in warned
    assert "hard-cases.keywords:" not in warned and "hard-cases.refs" not in warned
    _check_tree(root)
    out = _import_all(
        root,
        "import importlib, json, stubs\n"
        "from stubs import hard_cases as h\n"
        "from codemode_runtime import CALLS\n"
        "for name in h.TOOLS: importlib.import_module('stubs.hard_cases.' + name)\n"
        "h.keywords(from_='2024', class_=1, max_results=5, filter='x', arg_2fa=True, naive='n', _call_='c',"
        " keywords_2='k')\n"
        "h.invalid(x=1)\n"
        "h.import_(if_='y')\n"
        "print(json.dumps(CALLS))\n",
    )
    calls = json.loads(out)
    assert calls[0] == [
        "hard-cases",
        "keywords",
        {
            "from": "2024",
            "class": 1,
            "max-results": 5,
            "$filter": "x",
            "2fa": True,
            "naïve": "n",
            "_call": "c",
            "keywords": "k",
        },
    ]
    assert calls[1] == ["hard-cases", "invalid", {"x": 1}]  # the generic stub passes arguments through
    assert calls[2] == ["hard-cases", "import", {"if": "y"}]


def test_aliases_and_signatures_in_index(tmp_path: Path) -> None:
    compile_to_dir({HARD["server"]: hard_tools()}, tmp_path / "stubs")
    index = load_index(tmp_path / "stubs")
    (server,) = index["servers"]
    assert server["name"] == "hard-cases" and server["module"] == "hard_cases"
    tools = {t["name"]: t for t in server["tools"]}
    assert tools["keywords"]["aliases"]["from_"] == "from"
    assert tools["keywords"]["aliases"]["max_results"] == "max-results"
    assert tools["keywords_"]["python_name"] != tools["keywords"]["python_name"]
    assert tools["refs"]["signature"].startswith("refs(*, tree: Node")
    assert tools["invalid"]["generic"] is True
    assert "Literal" in tools["unions"]["signature"]


def test_optional_none_is_passed_for_the_runtime_to_drop(tmp_path: Path) -> None:
    compile_to_dir({HARD["server"]: hard_tools()}, tmp_path / "stubs")
    out = _import_all(
        tmp_path / "stubs",
        "import json\nfrom stubs import hard_cases as h\nfrom codemode_runtime import CALLS\n"
        "h.unions(mode='fast')\nprint(json.dumps(CALLS[0][2]))\n",
    )
    args = json.loads(out)
    assert args["mode"] == "fast" and args["maybe"] is None and args["target"] is None


def test_deterministic_byte_identical(tmp_path: Path) -> None:
    tools = hard_tools()
    a = compile_server(HARD["server"], tools)
    b = compile_server(HARD["server"], list(reversed(tools)))
    assert a == b
    compile_to_dir({HARD["server"]: tools}, tmp_path / "one")
    compile_to_dir({HARD["server"]: list(reversed(tools))}, tmp_path / "two")
    for path in (tmp_path / "one").rglob("*"):
        if path.is_file():
            assert path.read_bytes() == (tmp_path / "two" / path.relative_to(tmp_path / "one")).read_bytes(), path


def test_a_name_listed_twice_keeps_one_definition_whatever_the_order(tmp_path: Path) -> None:
    twice = [ToolSpec(HARD["server"], "twice", f"Definition {n}.", {"type": "object"}) for n in "AB"]
    tools = [*hard_tools(), *twice]
    one = compile_to_dir({HARD["server"]: tools}, tmp_path / "one")
    two = compile_to_dir({HARD["server"]: list(reversed(tools))}, tmp_path / "two")
    assert one.tools == two.tools == len({t.name for t in hard_tools()}) + 1
    for path in (tmp_path / "one").rglob("*.py"):
        assert path.read_bytes() == (tmp_path / "two" / path.relative_to(tmp_path / "one")).read_bytes(), path
    stub = next((tmp_path / "one").rglob("twice.py")).read_text()
    assert "Definition A." in stub and "Definition B." not in stub


def test_incremental_recompile(tmp_path: Path) -> None:
    root = tmp_path / "stubs"
    catalog = synthetic_catalog(40, servers=2)
    first = compile_to_dir(catalog, root)
    assert len(first.written) == 40 + 2 + 2  # tools, server inits, root init + index
    again = compile_to_dir(catalog, root)
    assert again.written == [] and again.deleted == []
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    compile_to_dir(catalog, root)
    assert before == {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}  # nothing touched

    changed = dict(catalog)
    tools = list(changed["svc-0"])
    tools[1] = ToolSpec("svc-0", tools[1].name, "A new description.", tools[1].input_schema)
    del tools[2]
    changed["svc-0"] = tools
    report = compile_to_dir(changed, root)
    assert sorted(report.written) == sorted(
        [f"svc_0/{tools[1].name.replace('-', '_')}.py", "svc_0/__init__.py", "_index.json"]
    )
    assert report.deleted == [f"svc_0/{catalog['svc-0'][2].name.replace('-', '_')}.py"]

    user_file = root / "svc_1" / "my_notes.py"
    user_file.write_text("# mine\n")
    report = compile_to_dir({"svc-0": tools}, root)
    assert "svc_1/__init__.py" in report.deleted
    assert user_file.exists()  # never delete what the compiler did not write


def test_broken_tool_module_does_not_break_the_package(tmp_path: Path) -> None:
    root = tmp_path / "stubs"
    compile_to_dir({"s": [ToolSpec("s", "good", "ok"), ToolSpec("s", "bad", "broken")]}, root)
    (root / "s" / "bad.py").write_text("raise RuntimeError('corrupt')\n")
    out = _import_all(root, "from stubs import s\nprint(s.good())\n")
    assert "{'ok': True}" in out


@pytest.mark.slow
def test_unwritable_out_dir_is_a_clear_error(tmp_path: Path) -> None:
    from codemode.errors import CompileError

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CompileError, match="cannot create stubs directory"):
        compile_to_dir({"s": [ToolSpec("s", "t")]}, blocker / "stubs")


def test_golden_stubs_match_the_demo_servers(tmp_path: Path) -> None:
    import anyio

    from codemode.config import demo_config
    from codemode.hub import Hub

    async def tools() -> tuple[dict[str, list[ToolSpec]], dict[str, str]]:
        async with Hub(demo_config()) as hub:
            return hub.tools(), hub.summaries()

    specs, summaries = anyio.run(tools)
    compile_to_dir(specs, tmp_path / "stubs", summaries=summaries)
    golden = REPO / "stubs"
    fresh = {
        p.relative_to(tmp_path / "stubs")
        for p in (tmp_path / "stubs").rglob("*")
        if p.is_file() and "manifest" not in p.name
    }
    committed = {
        p.relative_to(golden)
        for p in golden.rglob("*")
        if p.is_file() and "manifest" not in p.name and "__pycache__" not in p.parts
    }
    assert fresh == committed
    for rel in fresh:
        assert (tmp_path / "stubs" / rel).read_bytes() == (golden / rel).read_bytes(), (
            f"stubs/{rel} is stale: run `codemode compile --out stubs`"
        )


def test_compile_benchmark_smoke() -> None:
    result = run_compile_benchmark(30, write=False)
    assert result["tools"] == 30 and result["files"] >= 30 and result["cold_s"] > 0


def test_a_module_name_is_cut_with_a_digest_only_past_64_characters() -> None:
    assert module_name("a" * MAX_MODULE_NAME, fallback="t") == "a" * MAX_MODULE_NAME
    cut, other = module_name("a" * 65, fallback="t"), module_name("a" * 64 + "b", fallback="t")
    assert len(cut) == len(other) == MAX_MODULE_NAME and cut.startswith("a" * 55 + "_") and cut != other


def test_an_uncompiled_tree_has_an_empty_index(tmp_path: Path) -> None:
    assert load_index(tmp_path / "never-compiled") == {"version": 1, "servers": []}


def test_a_skip_reason_is_cut_only_past_300_characters() -> None:
    prefix = len("ValueError: ")
    assert _reason(ValueError("x" * (300 - prefix))) == "ValueError: " + "x" * (300 - prefix)
    long = _reason(ValueError("x" * (301 - prefix)))
    assert len(long) == 300 and long.endswith("x…")


# The two slowest last (each type-checks a 1,000-tool tree): pytest -x stops sooner for a failure above.


def test_thousand_tool_catalog_typechecks(tmp_path: Path) -> None:
    root = tmp_path / "stubs"
    report = compile_to_dir(synthetic_catalog(1000), root)
    assert report.tools == 1000 and not report.warnings
    _check_tree(root)


def test_every_captured_catalog_compiles_to_typed_stubs(tmp_path: Path) -> None:
    # 37 real servers, 1,093 tools (benchmarks/catalogs): every tool gets a real signature, not the fallback.
    servers: dict[str, list[ToolSpec]] = {}
    for path in sorted((REPO / "benchmarks" / "catalogs").glob("*.json")):
        data = json.loads(path.read_text())
        servers[data["server"]] = [ToolSpec.from_json(data["server"], tool) for tool in data["tools"]]
    root = tmp_path / "stubs"
    report = compile_to_dir(servers, root)
    assert sum(len(tools) for tools in servers.values()) >= 1_000
    assert report.warnings == []
    _check_tree(root)
    script = (
        "import importlib, json, stubs\n"
        "count = 0\n"
        "for module in stubs.SERVERS:\n"
        "    package = importlib.import_module(f'stubs.{module}')\n"
        "    for name in package.TOOLS:\n"
        "        assert callable(getattr(package, name))\n"
        "        count += 1\n"
        "print(count)\n"
    )
    # A tool that can only be called as a task (everything's simulate-research-query) gets no stub, and says why.
    task_only = [t for tools in servers.values() for t in tools if t.requires_task]
    assert [t.name for t in task_only] == ["simulate-research-query"]
    assert int(_import_all(root, script)) == sum(len(tools) for tools in servers.values()) - len(task_only)
    omitted = {s["name"]: s.get("omitted") for s in load_index(root)["servers"] if s.get("omitted")}
    assert omitted == {"everything": [{"name": "simulate-research-query", "reason": TASK_REQUIRED}]}
