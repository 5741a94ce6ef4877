"""The README's token and workflow tables say what ``benchmarks/results`` says.

The speed table is generated (``benchmarks.readme``, checked by ``test_readme_speed.py``); these two are
deterministic counts written from the benchmarks' JSON, and this test fails when a rerun changes a figure the
README still quotes, or a row quotes a figure no run produced.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _results(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "benchmarks" / "results" / f"{name}.json").read_text(encoding="utf-8"))
    return data


def _table(header: str) -> list[list[str]]:
    """The rows under the README table whose header row starts with ``header``, cells stripped."""
    start = README.index(header)
    lines = README[start:].split("\n\n", 1)[0].splitlines()[2:]  # past the header and its rule
    assert lines, header
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def _int(cell: str) -> int:
    match = re.match(r"[\d,]+", cell.replace("*", ""))
    assert match, cell
    return int(match.group().replace(",", ""))


def _percent(fraction: float) -> str:
    return f"{fraction:.1%}".replace("%", " %")  # the README's style: 99.7 %


def test_the_token_table_quotes_the_token_benchmarks_results() -> None:
    rows = {row["server"]: row for row in _results("tokens")["rows"]}
    table = _table("| catalog | tools | direct | code mode |")
    assert len(table) >= 5
    for name, tools, direct, code, auto, fastmcp, cloudflare in table:
        row = rows["combined" if name.startswith("**all ") else name]
        assert (_int(tools), _int(direct), _int(code)) == (row["tools"], row["direct_tokens"], row["code_mode_tokens"])
        if row["server"] == "combined":
            assert f"all {row['servers']} servers" in name and _percent(row["saving"]) in code
            continue
        assert _int(auto) == row["auto_tokens"] and ("(direct)" in auto) == (row["auto"] == "direct")
        assert (_int(fastmcp), _int(cloudflare)) == (row["fastmcp_tokens"], row["cloudflare_tokens"])


def test_the_workflow_table_quotes_the_workflow_benchmarks_results() -> None:
    tasks = {task["task"]: task for task in _results("workflows")["tasks"]}
    table = _table("| task | kind | tool calls |")
    assert sorted(row[0] for row in table) == sorted(tasks)
    for name, _kind, calls, turns, billed_direct, billed_code, saving, uncached in table:
        direct, code = tasks[name]["direct"], tasks[name]["code_mode"]
        direct_billed = direct["billed"]["input"] + direct["billed"]["output"]
        code_billed = code["billed"]["input"] + code["billed"]["output"]
        assert _int(calls) == direct["calls"]
        assert turns == f"{direct['billed']['turns']} / {code['billed']['turns']}"
        assert (_int(billed_direct), _int(billed_code)) == (direct_billed, code_billed)
        assert saving == _percent(1 - code_billed / direct_billed)
        assert uncached == f"{direct['billed']['uncached_input']:,} / {code['billed']['uncached_input']:,}"
