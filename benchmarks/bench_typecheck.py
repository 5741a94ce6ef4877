"""Type check before run: a warm check of a new 50-line program (target ≤ 50 ms p50), against running it.

Same run, same machine: the demo servers are started for real, their stubs compiled, the checker warmed
once; then each round checks a program never seen before (its names change every round, so mypy cannot
reuse an earlier result) and runs the same program in the WASM sandbox. Also counts how many of the captured
tools in ``benchmarks/catalogs/`` declare an ``outputSchema``.

    python -m benchmarks.bench_typecheck [--rounds 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from codemode.audit import AuditLog
from codemode.config import demo_config
from codemode.engine import Engine
from codemode.preflight import checker_for

RESULTS = Path(__file__).parent / "results"
CATALOGS = Path(__file__).parent / "catalogs"
TARGET_MS = 50.0


def program(n: int) -> str:
    """A correct 50-line agent program using both demo servers; every name carries ``n``."""
    v = f"_{n}"
    lines = [
        "from stubs import inventory, notes",
        "import json",
        "import re",
        "from collections import Counter",
        "",
        f"products{v} = inventory.list_products(page_size=20)",
        f"by_category{v}: Counter[str] = Counter()",
        f"for product{v} in products{v}:",
        f"    by_category{v}[product{v}['category']] += 1",
        f"low{v} = [p for p in products{v} if p['stock'] < 5]",
        f"names{v} = sorted(p['name'] for p in low{v})",
        f"found{v} = notes.search_notes(query='restock', limit=5)",
        f"titles{v} = [hit['title'] for hit in found{v}['hits']]",
        f"note{v} = notes.get_note(note_id=1)",
        f"title{v} = note{v}['title'].strip().upper()",
        f"tags{v} = list(note{v}['tags'])",
        f"author{v} = note{v}['meta'].get('author', 'unknown')",
        f"def summarise{v}(rows, width=40):",
        "    out = []",
        "    for row in rows:",
        "        text = str(row)",
        "        out.append(text[:width])",
        "    return out",
        "",
        f"def score{v}(name: str) -> int:",
        "    return sum(ord(c) for c in name) % 97",
        "",
        f"scores{v} = {{name: score{v}(name) for name in names{v}}}",
        f"best{v} = max(scores{v}.items(), key=lambda kv: kv[1], default=None)",
        f"pattern{v} = re.compile(r'[A-Z]+-\\d+')",
        f"skus{v} = [m.group(0) for m in pattern{v}.finditer(json.dumps(products{v}))]",
        f"report{v} = {{",
        f"    'categories': dict(by_category{v}),",
        f"    'low': names{v},",
        f"    'note': title{v},",
        f"    'tags': tags{v},",
        f"    'author': author{v},",
        f"    'best': best{v},",
        f"    'skus': len(skus{v}),",
        "}",
        f"lines{v} = summarise{v}(report{v}.items())",
        f"for line{v} in lines{v}:",
        f"    if len(line{v}) > 30:",
        f"        print(line{v})",
        f"total{v} = sum(p['stock'] for p in products{v})",
        f"average{v} = total{v} / max(len(products{v}), 1)",
        f"flags{v} = [name for name, s in scores{v}.items() if s > average{v} % 97]",
        f"summary{v} = f'{{len(products{v})}} products, {{len(low{v})}} low, average stock {{average{v}:.1f}}'",
        f"print(summary{v}, titles{v}, flags{v}[:3])",
        f"report{v}['summary'] = summary{v}",
    ]
    return "\n".join(lines) + "\n"


def output_schemas() -> dict[str, int]:
    """How many captured tools declare an ``outputSchema``, in all."""
    tools = declared = 0
    for file in sorted(CATALOGS.glob("*.json")):
        for tool in json.loads(file.read_text(encoding="utf-8")).get("tools", []):
            tools += 1
            declared += bool(tool.get("outputSchema"))
    return {"tools": tools, "with_output_schema": declared}


async def run(rounds: int = 30, *, write: bool = True) -> dict[str, Any]:
    """Measure and return the figures (and write ``results/typecheck.json`` unless ``write`` is False)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        engine = Engine(demo_config(), stubs_dir=root / "stubs", skills_dir=root / "skills",
                        audit=AuditLog(root / "audit.jsonl"))  # fmt: skip
        async with engine:
            t0 = time.perf_counter()
            checker = await anyio.to_thread.run_sync(lambda: checker_for(engine.stubs_path, skills=engine.skills_dir))
            await anyio.to_thread.run_sync(checker.warm)
            warm_s = time.perf_counter() - t0
            checks: list[float] = []
            runs: list[float] = []
            for n in range(rounds):
                code = program(n)
                t0 = time.perf_counter()
                found = checker.check(code)
                checks.append(time.perf_counter() - t0)
                assert not found, [d.render() for d in found]
                t0 = time.perf_counter()
                outcome = await engine.execute(code, session=f"bench-{n}")
                runs.append(time.perf_counter() - t0)
                assert not outcome.is_error, outcome.text
    check_ms = statistics.median(checks) * 1000
    run_ms = statistics.median(runs) * 1000
    result = {
        "benchmark": "typecheck",
        "rounds": rounds,
        "program_lines": program(0).count("\n"),
        "first_build_s": round(warm_s, 2),
        "check_p50_ms": round(check_ms, 2),
        "check_max_ms": round(max(checks) * 1000, 2),
        "run_p50_ms": round(run_ms, 2),
        "check_over_run": round(check_ms / run_ms, 3),
        "target_ms": TARGET_MS,
        "meets_target": check_ms <= TARGET_MS,
        "catalogs": output_schemas(),
    }
    if write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "typecheck.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    r = anyio.run(lambda: run(args.rounds))
    c = r["catalogs"]
    print(
        f"type check of a new {r['program_lines']}-line program: p50 {r['check_p50_ms']} ms "
        f"(max {r['check_max_ms']} ms; target ≤ {TARGET_MS:.0f} ms: {'met' if r['meets_target'] else 'NOT met'}); "
        f"running it: p50 {r['run_p50_ms']} ms; check/run = {r['check_over_run']}; first build {r['first_build_s']} s. "
        f"captured tools declaring an outputSchema: {c['with_output_schema']} of {c['tools']}"
    )


if __name__ == "__main__":
    main()
