"""Hybrid mode's choices: which tools are offered directly, under which names, and what ``auto`` picks."""

from __future__ import annotations

import json
from pathlib import Path

from codemode import direct
from codemode.compiler import compile_to_dir, load_index
from codemode.front import tool_description
from codemode.hub import ToolSpec

CATALOGS = Path(__file__).parents[2] / "benchmarks" / "catalogs"


def _spec(server: str, name: str) -> ToolSpec:
    return ToolSpec.from_json(server, {"name": name, "inputSchema": {"type": "object"}})


def test_globs_select_and_only_clashing_names_are_prefixed() -> None:
    tools = {
        "fs": [_spec("fs", "read_file"), _spec("fs", "write_file"), _spec("fs", "search")],
        "web": [_spec("web", "search"), _spec("web", "execute_python")],
    }
    chosen = direct.select(["fs.read_*", "*.search", "web.execute_python"], tools, reserved={"execute_python"})
    assert [(d.name, d.spec.server, d.spec.name) for d in chosen] == [
        ("fs_search", "fs", "search"),
        ("read_file", "fs", "read_file"),
        ("web_execute_python", "web", "execute_python"),
        ("web_search", "web", "search"),
    ]
    assert direct.select(["fs.write_file"], tools)[0].name == "write_file"  # no clash once the other is not chosen
    assert direct.select(["auto"], tools, auto={"web"}) == direct.select(["web.*"], tools)
    assert direct.unmatched(["fs.*", "fs.delete_*", "auto"], tools) == ["fs.delete_*"]


def _auto_for(catalog: str, tmp_path: Path) -> tuple[set[str], int, int]:
    data = json.loads((CATALOGS / f"{catalog}.json").read_text(encoding="utf-8"))
    tools = {catalog: [ToolSpec.from_json(catalog, t) for t in data["tools"]]}
    stubs = tmp_path / catalog
    compile_to_dir(tools, stubs)
    costs = direct.code_mode_costs(load_index(stubs), stubs, tool_description)
    return direct.auto_servers(tools, costs), direct.direct_cost(tools[catalog]), costs[catalog]


def test_auto_exposes_a_one_tool_catalog_and_keeps_a_200_tool_one_in_code_mode(tmp_path: Path) -> None:
    small, small_direct, small_code = _auto_for("duckdb", tmp_path)  # 1 tool
    assert small == {"duckdb"} and small_direct < small_code
    large, large_direct, large_code = _auto_for("azure", tmp_path)  # 235 tools
    assert large == set() and large_direct > 10 * large_code


def test_code_mode_cost_charges_k_median_describes() -> None:
    assert direct.code_mode_cost(100, [10, 20, 90]) == 100 + 3 * 20
    assert direct.code_mode_cost(100, [30]) == 130  # a one-tool catalog cannot serve a three-tool task
    assert direct.code_mode_cost(100, []) == 100
