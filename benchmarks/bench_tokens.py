"""Definition tokens: what tool definitions cost in context, direct vs code mode, for 37 real MCP catalogs.

* **direct**: the client puts every tool definition in context: the ``tools/list`` entries exactly as the
  server sent them (``benchmarks/catalogs/*.json``), counted as one JSON list.
* **code mode**: the ``execute_python`` description (compiled from the same catalog) plus the stubs a
  program actually reads: for a task using ``k`` tools, ``describe()`` of those ``k`` tools. The typical
  case charges ``k`` × the median ``describe()`` cost; the worst case charges the ``k`` most expensive tools.

Every catalog gets a row, and so does all of them compiled together (one client, every server).
Token counts are o200k proxies.

    python -m benchmarks.bench_tokens [--only SERVER ...] [--k 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from codemode import paths
from codemode.compiler import compile_to_dir, load_index
from codemode.front import tool_description
from codemode.hub import ToolSpec
from codemode.tokens import LABEL, count_json, count_tokens

RESULTS = Path(__file__).parent / "results"
CATALOGS = Path(__file__).parent / "catalogs"
K = 3
COMBINED = "combined"


def load_catalogs(only: list[str] | None = None) -> list[dict[str, Any]]:
    """The captured catalogs, sorted by server name (so rows and the combined compile are deterministic).

    Raises:
        SystemExit: a name in ``only`` matches no catalog (a typo should not silently shrink the run).
    """
    catalogs = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(CATALOGS.glob("*.json"))]
    catalogs.sort(key=lambda c: str(c["server"]))
    if only:
        known = {c["server"] for c in catalogs}
        missing = sorted(set(only) - known)
        if missing:
            raise SystemExit(f"no catalog for {', '.join(missing)}; known: {', '.join(sorted(known))}")
        catalogs = [c for c in catalogs if c["server"] in only]
    return catalogs


def discovery_for(stubs_dir: Path) -> ModuleType:
    """A private copy of the guest's discovery module reading ``stubs_dir``.

    One copy per stubs tree, because the module caches the parsed index; re-importing it per tool would
    re-parse a multi-megabyte index a thousand times.
    """
    module = paths.load_guest_module("discovery", f"_bench_discovery_{id(stubs_dir):x}")
    # setattr: the attribute is a module global the type checker cannot see through spec loading.
    setattr(module, "STUBS_DIR", str(stubs_dir))  # noqa: B010
    return module


def _code_mode_costs(servers: dict[str, list[ToolSpec]]) -> tuple[int, list[int]]:
    """Compile ``servers`` and return (description tokens, ``describe()`` tokens of every tool)."""
    with tempfile.TemporaryDirectory(prefix="codemode-bench-tokens-") as tmp:
        stubs = Path(tmp) / "stubs"
        compile_to_dir(servers, stubs)
        index = load_index(stubs)
        description = count_tokens(tool_description(index))
        discovery = discovery_for(stubs)
        costs = [
            count_tokens(discovery.describe(f"{s['module']}.{t['python_name']}"))
            for s in index.get("servers", [])
            for t in s["tools"]
        ]
    return description, costs


def _row(
    server: str, package: str, version: str, tools: list[dict[str, Any]], specs: dict[str, list[ToolSpec]], k: int
) -> dict[str, Any]:
    direct = count_json(tools)
    # The wire shape codemode itself would forward (no `_meta`/`execution`), to show how much those add.
    core = count_json([spec.to_json() for group in specs.values() for spec in group])
    description, costs = _code_mode_costs(specs)
    if len(costs) != len(tools):
        raise AssertionError(f"{server}: compiled {len(costs)} tools from {len(tools)} definitions")
    # A one-tool catalog cannot serve a three-tool task; charge only the tools that exist.
    used = min(k, len(costs))
    median = statistics.median(costs)
    typical = description + round(median * used)
    worst = description + sum(sorted(costs, reverse=True)[:used])
    return {
        "server": server,
        "package": package,
        "version": version,
        "tools": len(tools),
        "direct_tokens": direct,
        "direct_core_tokens": core,
        "description_tokens": description,
        "describe_median": median,
        "describe_max": max(costs),
        "k": used,
        "code_mode_tokens": typical,
        "code_mode_worst_tokens": worst,
        "saving": round(1 - typical / direct, 4),
        "worst_saving": round(1 - worst / direct, 4),
    }


def run(only: list[str] | None = None, *, k: int = K, write: bool = True) -> dict[str, Any]:
    """Count every catalog and all of them together; returns (and writes ``results/tokens.json``) the rows.

    ``rows`` holds the combined row first, then one row per catalog by server name.
    """
    catalogs = load_catalogs(only)
    rows: list[dict[str, Any]] = []
    every: list[dict[str, Any]] = []
    all_specs: dict[str, list[ToolSpec]] = {}
    for catalog in catalogs:
        server = str(catalog["server"])
        specs = {server: [ToolSpec.from_json(server, t) for t in catalog["tools"]]}
        rows.append(_row(server, catalog["package"], str(catalog["version"]), catalog["tools"], specs, k))
        every.extend(catalog["tools"])
        all_specs.update(specs)
    combined = _row(COMBINED, f"{len(catalogs)} servers", "", every, all_specs, k)
    combined["servers"] = len(catalogs)
    result = {
        "benchmark": "tokens",
        "tokens": LABEL,
        "k": k,
        "rows": [combined, *rows],
        "env": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    if write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "tokens.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def table(result: dict[str, Any]) -> str:
    """Markdown table of a result (combined row first)."""
    lines = [
        f"Definition tokens ({result['tokens']}); code mode = execute_python description + describe() of "
        f"k={result['k']} tools (median cost; worst case = the {result['k']} largest).",
        "",
        "| server | version | tools | direct tokens | code-mode tokens | saving | worst-case saving |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        name = f"**{row['server']}** ({row['package']})" if row["server"] == COMBINED else row["server"]
        lines.append(
            f"| {name} | {row['version']} | {row['tools']:,} | {row['direct_tokens']:,} "
            f"| {row['code_mode_tokens']:,} | {row['saving']:.1%} | {row['worst_saving']:.1%} |"
        )
    return "\n".join(lines)


def main() -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", metavar="SERVER", help="count only these catalogs")
    parser.add_argument("--k", type=int, default=K, help="tools a task uses (default 3)")
    args = parser.parse_args()
    sys.stdout.write(table(run(args.only, k=args.k)) + "\n")


if __name__ == "__main__":
    main()
