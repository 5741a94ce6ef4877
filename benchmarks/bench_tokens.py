"""Definition tokens: what tool definitions cost in context, direct vs code mode, for 37 real MCP catalogs.

* **direct**: the client puts every tool definition in context: the ``tools/list`` entries exactly as the
  server sent them (``benchmarks/catalogs/*.json``), counted as one JSON list.
* **code mode**: the ``execute_python`` description (compiled from the same catalog) plus the stubs a
  program actually reads: for a task using ``k`` tools, ``describe()`` of those ``k`` tools. The typical
  case charges ``k`` × the median ``describe()`` cost; the worst case charges the ``k`` most expensive tools.

* **auto** (hybrid mode's ``expose_direct: ["auto"]``): the catalog offered directly when its definitions
  (as codemode lists them) cost less than code mode, else code mode: :func:`codemode.direct.auto_servers`,
  the rule ``serve`` applies. The benchmark fails if ``auto`` is worse than the better of the two anywhere.
* **peers**, measured from their real packages (:mod:`benchmarks.peers`): FastMCP's code mode (its
  ``search``/``get_schema``/``execute`` definitions plus ``get_schema`` of ``k`` tools, median cost) and
  Cloudflare's codemode (its one tool, whose description holds TypeScript declarations of every tool). A peer
  that is not installed is said so and its column left empty.

Every catalog gets a row, and so does all of them compiled together (one client, every server; no auto or
peer figures there). Token counts are o200k proxies.

    python -m benchmarks.bench_tokens [--only SERVER ...] [--k 3] [--no-peers]
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
from typing import Any

from benchmarks import peers as peer_runs
from codemode import direct as hybrid
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


discovery_for = hybrid.discovery_for


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
    task_only = sum(1 for group in specs.values() for spec in group if spec.requires_task)  # no stub, by design
    if len(costs) != len(tools) - task_only:
        raise AssertionError(f"{server}: compiled {len(costs)} tools from {len(tools)} definitions")
    # A one-tool catalog cannot serve a three-tool task; charge only the tools that exist.
    used = min(k, len(costs))
    median = statistics.median(costs)
    typical = hybrid.code_mode_cost(description, costs, k)
    worst = description + sum(sorted(costs, reverse=True)[:used])
    auto = hybrid.auto_servers(specs, {server: typical}) if server != COMBINED else set()
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
        "winner": "direct" if direct < typical else "code mode",
        "auto": "direct" if auto else "code mode",
        "auto_tokens": core if auto else typical,
    }


def _peers(catalogs: list[dict[str, Any]], rows: list[dict[str, Any]], k: int) -> dict[str, Any]:
    """Run each peer over the catalogs, add its column to ``rows``; return each peer's version or skip note."""
    tools = {str(c["server"]): c["tools"] for c in catalogs}
    by_server = {row["server"]: row for row in rows}
    notes: dict[str, Any] = {}
    for run_peer in (peer_runs.fastmcp, peer_runs.cloudflare):
        peer = run_peer(tools)
        notes[peer.name] = {"version": peer.version, "skipped": peer.skipped}
        if peer.skipped is not None:
            sys.stderr.write(f"peer {peer.name}: {peer.skipped}; its column is skipped\n")
            continue
        for server, out in peer.catalogs.items():
            row = by_server[server]
            if peer.name == "fastmcp":
                schemas = [count_tokens(text) for text in out["get_schema"].values()]
                upfront = count_json(out["definitions"])
                row["fastmcp_upfront_tokens"] = upfront
                row["fastmcp_tokens"] = upfront + round(statistics.median(schemas) * min(k, len(schemas)))
            else:
                row["cloudflare_tokens"] = count_json([out])
    return notes


def run(only: list[str] | None = None, *, k: int = K, write: bool = True, with_peers: bool = True) -> dict[str, Any]:
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
    del combined["auto"], combined["auto_tokens"]  # auto decides per server; see the module docstring
    for row in rows:
        # Against the definitions as codemode lists them (the same fields; key order can move a token or two).
        if row["auto_tokens"] > min(row["direct_core_tokens"], row["code_mode_tokens"]):
            raise AssertionError(f"{row['server']}: auto costs {row['auto_tokens']}, more than the better mode")
    measured = _peers(catalogs, rows, k) if with_peers else {}
    result = {
        "benchmark": "tokens",
        "tokens": LABEL,
        "k": k,
        "peers": measured,
        "rows": [combined, *rows],
        "env": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    if write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "tokens.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def table(result: dict[str, Any]) -> str:
    """Markdown table of a result (combined row first)."""
    peers = result.get("peers", {})
    fastmcp, cloudflare = (_peer_header(peers.get(name), label) for name, label in PEER_LABELS)
    lines = [
        f"Definition tokens ({result['tokens']}); code mode = execute_python description + describe() of "
        f"k={result['k']} tools (median cost; worst case = the {result['k']} largest); auto = hybrid mode's "
        f"choice; FastMCP = its three tools + get_schema of k tools (median); Cloudflare = its code tool.",
        "",
        f"| server | version | tools | direct | code mode | saving | worst-case saving | winner | auto | {fastmcp} "
        f"| {cloudflare} |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for row in result["rows"]:
        name = f"**{row['server']}** ({row['package']})" if row["server"] == COMBINED else row["server"]
        auto = f"{row['auto_tokens']:,} ({row['auto']})" if "auto" in row else "—"
        lines.append(
            f"| {name} | {row['version']} | {row['tools']:,} | {row['direct_tokens']:,} "
            f"| {row['code_mode_tokens']:,} | {row['saving']:.1%} | {row['worst_saving']:.1%} | {row['winner']} "
            f"| {auto} | {_cell(row, 'fastmcp_tokens')} | {_cell(row, 'cloudflare_tokens')} |"
        )
    for name, note in peers.items():
        if note.get("skipped"):
            lines.append(f"\n{name}: {note['skipped']}; its column is empty.")
    return "\n".join(lines)


PEER_LABELS = (("fastmcp", "FastMCP code mode"), ("cloudflare", "Cloudflare codemode"))


def _peer_header(note: dict[str, Any] | None, label: str) -> str:
    if note is None or note.get("skipped"):
        return f"{label} (not measured)"
    return f"{label} {note['version']}"


def _cell(row: dict[str, Any], key: str) -> str:
    return f"{row[key]:,}" if key in row else "—"


def main() -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", metavar="SERVER", help="count only these catalogs")
    parser.add_argument("--k", type=int, default=K, help="tools a task uses (default 3)")
    parser.add_argument("--no-peers", action="store_true", help="do not measure FastMCP and Cloudflare")
    args = parser.parse_args()
    sys.stdout.write(table(run(args.only, k=args.k, with_peers=not args.no_peers)) + "\n")


if __name__ == "__main__":
    main()
