"""Workflow tokens: each task of :mod:`benchmarks.workflows` done by direct tool calling and by code mode.

Both run for real against fresh servers and must give the same answer. Each side is then billed as an agent
loop (:mod:`benchmarks.billing`): direct calling is one model turn per tool call, each re-sending the
definitions and every earlier call and result; code mode is a discovery turn (``describe()`` of the tools the
task uses), the program turn, and the answer turn. Reported per task: the final context, the summed input,
the output, and the input a prefix cache would not cover. Token counts are o200k proxies.

    python -m benchmarks.bench_workflows [--only NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from benchmarks.bench_tokens import discovery_for
from benchmarks.billing import bill, code_mode_turns, direct_turns
from benchmarks.workflows import TASKS, Recorder, Task
from codemode.config import Config, demo_config, parse_config
from codemode.engine import Engine
from codemode.front import build_server, tool_description
from codemode.hub import Hub
from codemode.tokens import LABEL, count_json, count_tokens

RESULTS = Path(__file__).parent / "results"
FS = "@modelcontextprotocol/server-filesystem@2026.8.31"
MEMORY = "@modelcontextprotocol/server-memory@2026.8.31"
INVOICES = [("Berlin", 120), ("Lyon", 75), ("Berlin", 30), ("Porto", 55), ("Lyon", 20)]


def reference_config(tmp: Path) -> Config:
    """Filesystem over a folder of invoice files, and a fresh memory graph, both from npm (pinned)."""
    docs = tmp / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    for i, (city, amount) in enumerate(INVOICES):
        (docs / f"invoice-{i}.json").write_text(json.dumps({"city": city, "amount": amount}))
    servers = {
        "fs": {"command": "npx", "args": ["-y", FS, str(docs)]},
        "memory": {"command": "npx", "args": ["-y", MEMORY], "env": {"MEMORY_FILE_PATH": str(tmp / "memory.jsonl")}},
    }
    return parse_config(json.dumps({"mcpServers": servers}))


def _normal(value: Any) -> Any:
    return json.loads(json.dumps(value, default=list))


async def _direct(config: Config, tasks: list[Task]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    async with Hub(config) as hub:
        definitions = count_json([t.to_json() for specs in hub.tools().values() for t in specs])
        for task in tasks:
            recorder = Recorder(hub)
            started = time.perf_counter()
            answer = await task.direct(recorder)
            out[task.name] = {
                "answer": _normal(answer),
                "calls": recorder.calls,
                "definitions": definitions,
                "call_tokens": recorder.call_tokens,
                "result_tokens": recorder.result_tokens,
                "answer_tokens": count_json(_normal(answer)),
                "seconds": round(time.perf_counter() - started, 3),
            }
            out[task.name]["total"] = (
                definitions + recorder.call_tokens + recorder.result_tokens + (out[task.name]["answer_tokens"])
            )
            billed = bill(direct_turns(definitions, recorder.per_call, out[task.name]["answer_tokens"]))
            out[task.name]["billed"] = billed.as_dict()
    return out


async def _code(config: Config, tasks: list[Task], executor: str | None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    async with Engine(config, executor=executor) as engine:  # type: ignore[arg-type]
        description = count_tokens(tool_description(engine.index))
        discovery = discovery_for(engine.stubs_path)
        listed = await build_server(engine, discovery_tools=True).list_tools()
        extra = count_json(
            [t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in listed if t.name != "execute_python"]
        )
        for task in tasks:
            reads = sum(count_tokens(discovery.describe(t)) for t in task.tools_read)
            started = time.perf_counter()
            outcome = await engine.execute(task.program, session=f"bench-{task.name}")
            if outcome.is_error or outcome.result is None:
                raise RuntimeError(f"{task.name}: code mode failed:\n{outcome.text}")
            answer = _normal(outcome.result.value)
            out[task.name] = {
                "answer": answer,
                "calls": len(outcome.result.calls),
                "description": description,
                "stub_reads": reads,
                "program": count_tokens(task.program),
                "output": count_tokens(outcome.text),
                "seconds": round(time.perf_counter() - started, 3),
            }
            # The turns' outputs are tool calls, counted as the direct side counts its calls.
            lookup = "\n".join(f"print(describe({t!r}))" for t in task.tools_read)
            program, output, answer_tokens = _call_tokens(task.program), out[task.name]["output"], count_json(answer)
            turns = code_mode_turns(description, [(_call_tokens(lookup), reads)], program, output, answer_tokens)
            out[task.name]["billed"] = bill(turns).as_dict()
            # serve --discovery-tools: their two definitions up front, then one `describe` MCP call per tool.
            lookups = [
                (count_json({"name": "describe", "arguments": {"tool": t}}), count_tokens(discovery.describe(t)))
                for t in task.tools_read
            ]
            with_tools = code_mode_turns(description + extra, lookups, program, output, answer_tokens)
            out[task.name]["billed_discovery_tools"] = bill(with_tools).as_dict()
            out[task.name]["total"] = out[task.name]["billed"]["final_context"]
    return out


def _call_tokens(code: str) -> int:
    return count_json({"name": "execute_python", "arguments": {"code": code}})


def billed_total(side: dict[str, Any]) -> int:
    """What a side is billed for a task: summed input plus output."""
    return int(side["billed"]["input"]) + int(side["billed"]["output"])


async def run(only: str | None = None, *, executor: str | None = None, write: bool = True) -> dict[str, Any]:
    """Run the tasks both ways; returns (and writes) the results."""
    tasks = [t for t in TASKS if only is None or t.name == only]
    rows: list[dict[str, Any]] = []
    for servers in ("demo", "reference"):
        group = [t for t in tasks if t.servers == servers]
        if not group:
            continue
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            direct_cfg = demo_config() if servers == "demo" else reference_config(Path(a))
            code_cfg = demo_config() if servers == "demo" else reference_config(Path(b))
            direct = await _direct(direct_cfg, group)
            code = await _code(code_cfg, group, executor)
        for task in group:
            d, c = direct[task.name], code[task.name]
            if d["answer"] != c["answer"]:
                raise AssertionError(f"{task.name}: answers differ: direct {d['answer']!r} vs code {c['answer']!r}")
            rows.append({
                "task": task.name, "description": task.description, "servers": servers, "kinds": list(task.kinds),
                "answer": d["answer"], "direct": d, "code_mode": c,
                "saving": round(1 - c["total"] / d["total"], 4),
                "billed_saving": round(1 - billed_total(c) / billed_total(d), 4),
            })  # fmt: skip
    result = {"benchmark": "workflows", "tokens": LABEL, "tasks": rows, "env": _env()}
    if write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "workflows.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _env() -> dict[str, Any]:
    import platform

    return {"python": platform.python_version(), "cpus": os.cpu_count()}


def table(result: dict[str, Any]) -> str:
    """Markdown table of a result."""
    lines = [
        f"Billed tokens ({result['tokens']}) over the agent loop: input summed over turns + output; "
        "uncached = input a prefix cache cannot serve; final = the last turn's context.",
        "",
        "| task | calls | turns direct / code | billed direct | billed code mode | billed saving "
        "| uncached direct / code | final direct / code | final saving | with --discovery-tools: billed (turns) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["tasks"]:
        d, c = row["direct"], row["code_mode"]
        lines.append(
            f"| {row['task']} | {d['calls']} | {d['billed']['turns']} / {c['billed']['turns']} "
            f"| {billed_total(d):,} | {billed_total(c):,} | {row['billed_saving']:.1%} "
            f"| {d['billed']['uncached_input']:,} / {c['billed']['uncached_input']:,} "
            f"| {d['total']:,} / {c['total']:,} | {row['saving']:.1%} "
            f"| {billed_total({'billed': c['billed_discovery_tools']}):,} ({c['billed_discovery_tools']['turns']}) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", help="run one task")
    parser.add_argument("--executor", choices=["wasm", "restricted"])
    args = parser.parse_args()
    result = anyio.run(lambda: run(args.only, executor=args.executor))
    print(table(result))


if __name__ == "__main__":
    main()
