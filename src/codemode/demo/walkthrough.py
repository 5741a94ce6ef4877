"""``codemode demo``: the whole loop on the bundled demo servers, explained as it runs.

1. start the two demo servers and compile their tools into typed stubs (shows the tree and one stub);
2. run one program in the WASM sandbox that calls both servers;
3. save a function of that session as a skill, promote it, and call it from a fresh session;
4. show the token bill: direct tool calling vs code mode, counted with the o200k_base encoding (a proxy).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

from codemode import paths
from codemode.config import Config, demo_config
from codemode.engine import Engine

PROGRAM = """\
from stubs import inventory, notes

# Which SKUs do our restock notes mention, and which of them are low?
hits = notes.search_notes(query="restock", tags=["restock"])["hits"]
skus = sorted({sku for hit in hits for sku in notes.get_note(note_id=hit["id"])["meta"]["related_skus"]})
report = inventory.check_stock(skus=skus)
low = [level for level in report["levels"] if level["low"]]
for level in low:
    print(f"{level['sku']}: {level['stock']} left in {level['warehouse']}")
f"{len(low)} of {len(skus)} SKUs from {len(hits)} notes need restocking"
"""


SKILL = """\
def low_skus_from_notes(tag: str = "restock") -> list[str]:
    \"\"\"SKUs that the notes tagged ``tag`` mention and that are low on stock.\"\"\"
    hits = notes.search_notes(query=tag, tags=[tag])["hits"]
    skus = sorted({sku for hit in hits for sku in notes.get_note(note_id=hit["id"])["meta"]["related_skus"]})
    return [level["sku"] for level in inventory.check_stock(skus=skus)["levels"] if level["low"]]

save_skill(low_skus_from_notes, example="low_skus_from_notes()")
"""

LATER = """\
from skills import low_skus_from_notes, low_stock_report
{"from notes": low_skus_from_notes(), "garden at 0": len(low_stock_report(threshold=0, category="garden"))}
"""


DISCOVER = """[(t["tool"], t["summary"]) for t in search_tools("which products are low on stock", limit=3)]"""


def _gutter(text: str) -> str:
    return "\n".join(f"    │ {line}".rstrip() for line in text.splitlines())


def _say(text: str = "") -> None:
    print(text, flush=True)


def _step(number: int, title: str) -> None:
    _say()
    _say(f"── {number}. {title} " + "─" * max(0, 66 - len(title)))


def _tree(root: Path, limit: int = 14) -> list[str]:
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py"))
    shown = files[:limit]
    lines = [f"  stubs/{f}" for f in shown]
    if len(files) > limit:
        lines.append(f"  … and {len(files) - limit} more")
    return lines


async def run_demo(executor: str | None = None) -> int:
    """Run the walkthrough; returns an exit code."""
    config = demo_config()

    def progress(message: str) -> None:
        print(f"   · {message}", file=sys.stderr, flush=True)

    _say("codemode demo — one MCP tool, execute_python, in place of every upstream tool")
    with tempfile.TemporaryDirectory(prefix="codemode-demo-skills-") as scratch:
        # The demo saves and promotes a skill: into a copy of the store, so the checkout's skills/ stays as it is.
        skills_dir = Path(scratch) / "skills"
        source = paths.skills_dir_for(config)
        if source.is_dir():
            shutil.copytree(source, skills_dir, ignore=shutil.ignore_patterns(".lock", ".*.tmp"))
        return await _walk(config, executor, progress, skills_dir)


async def _walk(config: Config, executor: str | None, progress: Callable[[str], None], skills_dir: Path) -> int:
    async with Engine(config, executor=executor, progress=progress, skills_dir=skills_dir) as engine:  # type: ignore[arg-type]
        assert engine.hub is not None
        tools = engine.hub.tools()
        _step(1, "Upstream servers and the stubs compiled from them")
        for status in engine.hub.status():
            _say(f"  {status.name:<10} {status.state:<6} {status.tool_count} tools  {status.instructions or ''}")
        assert engine.catalog is not None
        tree = engine.catalog.path
        _say(f"  stub package: {tree}  (generation {tree.name}: a tool change upstream publishes the next one)")
        for line in _tree(tree):
            _say(line)
        stub = tree / "inventory" / "check_stock.py"
        if stub.is_file():
            _say("\n  inventory/check_stock.py:")
            body = stub.read_text(encoding="utf-8").split("\n\n\n", 1)[-1]
            _say(_gutter(body.strip()))

        _step(2, "What the model sees: one tool, and discovery from inside the sandbox")
        from codemode.front import tool_description

        _say("  the execute_python description (it does not grow with the number of tools):")
        _say(_gutter(tool_description(engine.index, engine.settings, skills=engine.skills.promoted_count())))
        found = await engine.execute(DISCOVER, session="demo")
        _say("\n  a first call, finding tools by meaning:")
        _say(_gutter(DISCOVER))
        _say(textwrap.indent(found.text, "    » "))

        _step(3, "A program, run in the sandbox, that calls both servers")
        _say(_gutter(PROGRAM.rstrip()))
        seen: list[str] = []
        engine.tool_observers.append(
            lambda ref, args, result: seen.append(
                json.dumps(args) + result.model_dump_json(by_alias=True, exclude_none=True)
            )
        )
        outcome = await engine.execute(PROGRAM, session="demo")
        _say("\n  result:")
        _say(textwrap.indent(outcome.text, "    » "))
        if outcome.result is not None:
            calls = ", ".join(f"{c.server}.{c.tool}" for c in outcome.result.calls)
            _say(f"  {len(outcome.result.calls)} tool calls in {outcome.result.duration_s * 1000:.0f} ms: {calls}")
        if outcome.is_error:
            return 1

        _step(4, "Skills: a function that worked, saved, reviewed, then called by a later session")
        _say(_gutter(SKILL.rstrip()))
        saved = await engine.execute(SKILL, session="demo")
        _say(textwrap.indent(saved.text, "    » "))
        if saved.is_error:
            return 1
        engine.skills.promote("low_skus_from_notes")
        _say("  $ codemode skills promote low_skus_from_notes   (a person reviews it: draft → promoted)")
        _say("  a fresh session, beside the example skills shipped in skills/:")
        _say(_gutter(LATER.rstrip()))
        later = await engine.execute(LATER, session="demo-later")
        _say(textwrap.indent(later.text, "    » "))
        if later.is_error:
            return 1

        _step(5, "What the model's context would have held")
        from codemode.tokens import count_tokens

        definitions = json.dumps([spec.to_json() for specs in tools.values() for spec in specs])
        intermediates = "".join(seen)
        direct = count_tokens(definitions) + count_tokens(intermediates)
        code_mode = count_tokens(tool_description(engine.index)) + count_tokens(PROGRAM) + count_tokens(outcome.text)
        _say(f"  direct tool calling: {direct:>6,} tokens (every definition + every intermediate result)")
        _say(f"  code mode:           {code_mode:>6,} tokens (one tool description + the program + its output)")
        _say("  counts are o200k_base proxies; `codemode bench` measures real catalogs and workflows")
    _say()
    _say("Next: `codemode serve` is what an MCP client runs; see README for the mcpServers entry.")
    return 0
