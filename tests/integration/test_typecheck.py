"""The type check before a run: mypy against stubs compiled from the real demo servers, through the engine
(WASM sandbox) and the CLI."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio
import pytest

from codemode.audit import AuditLog
from codemode.config import Config, Settings, demo_config
from codemode.engine import Engine
from codemode.preflight import MAX_CHECKED_CHARS, Checker, Diagnostic, Preflight, Report, SessionNames, checker_for
from tests.conftest import Sandbox

pytestmark = pytest.mark.anyio

WRONG = """\
from stubs import notes, inventory

note = notes.get_note(note=1)
print(note["titel"])
page = notes.search_notes(query="x", tags="urgent")
inventory.restock_all()
print(undefined_name)
total = 1 + "2"
"""


@pytest.fixture
async def checker(demo_sandbox: Sandbox) -> Checker:
    # Not kept across tests: one warm checker per process, and an engine's tree replaces it.
    return checker_for(demo_sandbox.root / "stubs", skills=Path(__file__).parents[2] / "skills" / "live")


def _lines(checker: Checker, code: str, known: SessionNames | None = None) -> list[tuple[int, str, str | None]]:
    return [(d.line, d.code, d.hint) for d in checker.check(code, known)]


async def test_each_mistake_is_named_with_its_line_and_a_close_match(checker: Checker) -> None:
    found = checker.check(WRONG)
    assert [(d.line, d.code) for d in found] == [
        (3, "call-arg"),  # unknown keyword
        (4, "typeddict-item"),  # a result field that does not exist
        (5, "arg-type"),  # a str where the stub wants list[str]
        (6, "attr-defined"),  # a tool that does not exist
        (7, "name-defined"),
        (8, "operator"),
    ]
    hints = {d.line: d.hint for d in found}
    assert hints[3] == '"note_id"' and hints[4] == '"title"' and hints[6] == '"restock"'
    assert "get_note" in found[0].render() and found[0].render().startswith("line 3: ")


async def test_a_correct_program_has_no_diagnostics(checker: Checker) -> None:
    code = (
        "from stubs import notes, inventory\n"
        "import json, re\n"
        "best = None\n"  # None handling and redefinitions are not held against a program
        "for n in notes.search_notes(query='restock')['hits']:\n"
        "    best = n\n"
        "print(best['title'])\n"
        "note = notes.get_note(note_id=1)\n"
        "print(note['title'].upper(), note['meta'].get('author'))\n"
        "def helper(x):\n"
        "    return x.whatever + 1\n"  # unannotated: not --strict
        "x = 1\n"
        "x = 'now a str'\n"
        "print(x.upper(), describe('notes.get_note'), search_tools('stock'))\n"
        "try:\n"
        "    inventory.restock(sku='A-1', quantity=3)\n"
        "except ToolError as exc:\n"
        "    print(exc.kind)\n"
        "import yaml\n"  # may or may not be in the sandbox: not the checker's call
        "from skills import low_stock_report\n"  # the guest binds the function, not the module skills/NAME.py
        "print(low_stock_report(threshold=2)[0])\n"
        "_\n"
    )
    assert checker.check(code) == []


async def test_names_from_earlier_executions_are_known(checker: Checker) -> None:
    later = "print(rows, helper(2))\nnotes.get_note(note_id='x')\n"
    unknown = _lines(checker, later)
    assert [line for line, code, _ in unknown if code == "name-defined"] == [1, 1, 2]
    known = SessionNames()
    known.add("from stubs import notes\nrows = [1]\ndef helper(v):\n    return v\n")
    # The replayed import keeps the stub's types: the wrong argument type is still found.
    assert _lines(checker, later, known) == [(2, "arg-type", None)]


async def test_lines_stay_those_of_the_program_after_a_docstring_and_future_import(checker: Checker) -> None:
    code = '"""doc"""\nfrom __future__ import annotations\n\nprint(zzqx)\n'
    assert _lines(checker, code) == [(4, "name-defined", None)]
    broken = checker.check("def f(:\n    pass\n")
    assert broken and broken[0].line == 1 and {d.code for d in broken} == {"syntax"}


async def test_the_checker_sees_no_tool_that_is_not_in_the_stubs(checker: Checker) -> None:
    # The stubs' module __getattr__ (lazy imports) would make any attribute Any: the checker's view drops it.
    assert _lines(checker, "from stubs import notes\nnotes.delete_everything()\n")[0][:2] == (2, "attr-defined")
    assert _lines(checker, "from stubs import nope\n")[0][:2] == (1, "attr-defined")


async def test_a_remembered_check_answers_only_the_same_program_with_the_same_names(checker: Checker) -> None:
    code = "print(total)\n"
    assert checker.remembered(code) is None
    assert _lines(checker, code) == [(1, "name-defined", None)]
    assert [(d.line, d.code) for d in checker.remembered(code) or []] == [(1, "name-defined")]
    # Once the session binds `total`, the same program is checked anew (and is clean), not answered from memory.
    known = SessionNames()
    known.add("total = 3\n")
    assert checker.remembered(code, known) is None
    assert _lines(checker, code, known) == []
    assert checker.remembered(code, known) == []
    # A program that differs only in a character is another program.
    assert checker.remembered("print(totals)\n", known) is None


async def test_what_is_remembered_stays_small_whatever_programs_are_sent(
    checker: Checker, monkeypatch: pytest.MonkeyPatch
) -> None:
    import codemode.preflight as preflight

    # A client sending many large programs must not make the host keep them: a digest per program, a bounded
    # number of them, and no check with a flood of diagnostics.
    monkeypatch.setattr(preflight, "MEMO", 3)
    big = "x = 1\n" + "# " + "p" * 300_000 + "\n"
    for i in range(5):
        checker.check(f"{big}y{i} = x\n")
    assert len(checker._memo) == 3 and all(len(key) == 32 for key in checker._memo)
    flood = "".join(f"print(undefined_{i})\n" for i in range(preflight.MEMO_DIAGNOSTICS + 1))
    assert len(checker.check(flood)) == preflight.MEMO_DIAGNOSTICS + 1
    assert checker.remembered(flood) is None


def test_work_directories_of_killed_checkers_are_removed() -> None:
    import subprocess
    import tempfile

    import codemode.preflight as preflight

    # A process that is gone (it ran and exited): its directory is an orphan; this process's own is not.
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    base = Path(tempfile.gettempdir())
    orphan = base / f"codemode-preflight-{gone.stdout.strip()}-test"
    mine = base / f"codemode-preflight-{os.getpid()}-test"
    for d in (orphan, mine):
        (d / "stubs").mkdir(parents=True, exist_ok=True)
    try:
        preflight._swept = False
        preflight._sweep_orphans()
        assert not orphan.exists() and mine.exists()
    finally:
        for d in (orphan, mine):
            preflight.shutil.rmtree(d, ignore_errors=True)


def _engine(tmp_path: Path, mode: str) -> Engine:
    config = Config(servers=demo_config().servers, settings=Settings(typecheck=mode))  # type: ignore[arg-type]
    return Engine(config, stubs_dir=tmp_path / "stubs", skills_dir=tmp_path / "skills",
                  audit=AuditLog(tmp_path / "audit.jsonl"))  # fmt: skip


async def test_warn_runs_anyway_with_the_diagnostics_on_top(tmp_path: Path) -> None:
    async with _engine(tmp_path, "warn") as engine:
        outcome = await engine.execute("from stubs import notes\nnotes.get_note(note=1)\n", session="w")
        first, second = outcome.text.splitlines()[:2]
        assert first.startswith("[typecheck: 1 error found before running; ran anyway]")
        assert second.startswith('line 2: Unexpected keyword argument "note"') and '(did you mean "note_id"?)' in second
        # It did run: the stub itself refused the keyword.
        assert outcome.is_error and outcome.text.endswith(
            "TypeError: get_note() got an unexpected keyword argument 'note'"
        )
        clean = await engine.execute("from stubs import notes\nnote = notes.get_note(note_id=1)\n", session="w")
        assert not clean.is_error and "typecheck" not in clean.text
        # `note` and `notes` come from the execution before: not flagged; `notes` (an import) is still typed.
        later = await engine.execute("print(note['title'])\nnotes.get_note(noteid=1)\n", session="w")
        assert later.text.splitlines()[:3] == [
            "[typecheck: 1 error found before running; ran anyway]",
            'line 2: Unexpected keyword argument "noteid" for "get_note" (did you mean "note_id"?)',
            "Restock before spring",
        ]
        other = await engine.execute("note", session="other")  # another session has no `note`
        assert 'line 1: Name "note" is not defined' in other.text


async def test_strict_refuses_without_calling_any_tool(tmp_path: Path) -> None:
    async with _engine(tmp_path, "strict") as engine:
        code = "from stubs import notes\nnotes.create_note(title='t', body='b')\nnotes.create_note(titel='t')\n"
        refused = await engine.execute(code, session="s")
        assert refused.is_error and refused.denied and refused.result is None and refused.calls == []
        assert refused.text.startswith("[typecheck: 1 error found before running; not run (codemode.typecheck is")
        assert "line 3:" in refused.text
        tags = await engine.execute("from stubs import notes\nnotes.list_tags()", session="s")
        assert not tags.is_error and not any("create_note" in c.tool for c in tags.calls)
        ran = await engine.execute("len(notes.search_notes(query='t'))", session="s")
        assert not ran.is_error, ran.text  # earlier names are known in strict mode too
    entries = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert entries[0]["error_kind"] == "refused" and entries[0]["calls"] == []


@pytest.mark.parametrize("mode", ["warn", "strict"])
async def test_a_program_too_long_to_check_is_not_checked(tmp_path: Path, mode: str) -> None:
    # The check holds one lock for every session: four 990 KB programs held every other client's for 12 s.
    long = "\n".join(f"v{i} = {i}" for i in range(MAX_CHECKED_CHARS // 8)) + "\nv0 + undefined_name\n"
    assert len(long) > MAX_CHECKED_CHARS
    async with _engine(tmp_path, mode) as engine:
        outcome = await engine.execute(long, session="long")
        verdict = "not run (codemode.typecheck is strict)" if mode == "strict" else "ran anyway"
        assert outcome.text.startswith(
            f"[typecheck: not checked: {len(long):,} characters, over the {MAX_CHECKED_CHARS:,} checked; {verdict}]"
        ), outcome.text[:300]
        if mode == "warn":  # it ran: its own NameError
            assert "NameError: name 'undefined_name' is not defined" in outcome.text
        else:
            assert outcome.denied and outcome.result is None


async def test_a_report_shows_twenty_errors_of_500_characters_at_most() -> None:
    errors = tuple(Diagnostic(i, "x" * 1_000, "name-defined") for i in range(1, 31))
    block = Report(errors, "strict").block().splitlines()
    assert block[0] == "[typecheck: 30 errors found before running; not run (codemode.typecheck is strict)]"
    assert len(block) == 22 and block[-1] == "... and 10 more"
    assert block[1] == f"line 1: {'x' * 491}…" and len(block[1]) == 500


async def test_off_does_not_check(tmp_path: Path) -> None:
    async with _engine(tmp_path, "off") as engine:
        outcome = await engine.execute("print(nope)", session="o")
        assert "typecheck" not in outcome.text and "NameError" in outcome.text


async def test_cli_check_prints_file_line_and_fails(demo_sandbox: Sandbox, tmp_path: Path) -> None:
    program = tmp_path / "prog.py"
    program.write_text(WRONG)
    command = [sys.executable, "-m", "codemode.cli", "check", "--stubs", str(demo_sandbox.root / "stubs")]
    bad = await anyio.run_process([*command, str(program)], check=False)
    assert bad.returncode != 0
    assert (
        bad.stdout.decode().splitlines()[0]
        == f'{program}:3: Unexpected keyword argument "note" for "get_note" (did you mean "note_id"?)'
    )
    assert len(bad.stdout.decode().splitlines()) == 6
    good = await anyio.run_process([*command, "-"], input=b"print(1)\n", check=False)
    assert good.returncode == 0 and good.stdout == b""


async def test_typing_dir_lets_a_plain_mypy_see_stubs_and_runtime(demo_sandbox: Sandbox, tmp_path: Path) -> None:
    out = tmp_path / "typing"
    stubs = str(demo_sandbox.root / "stubs")
    await anyio.run_process([sys.executable, "-m", "codemode.cli", "typing", str(out), "--stubs", stubs])
    assert (out / "stubs" / "notes" / "__init__.pyi").is_file() and (out / "codemode_runtime" / "py.typed").is_file()
    (tmp_path / "mypy.ini").write_text(f"[mypy]\nmypy_path = {out}\n")
    program = tmp_path / "prog.py"
    program.write_text("from stubs import notes\nfrom codemode_runtime import ToolError\nnotes.get_note(note_id='1')\n")
    env = {k: v for k, v in os.environ.items() if k != "MYPYPATH"}
    checked = await anyio.run_process(
        [sys.executable, "-m", "mypy", "--config-file", str(tmp_path / "mypy.ini"), "--cache-dir", str(tmp_path / "c"),
         str(program)], check=False, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert checked.returncode == 1
    assert b'prog.py:3: error: Argument "note_id" to "get_note" has incompatible type "str"' in checked.stdout


async def test_a_checker_fault_runs_the_program_unchecked(tmp_path: Path) -> None:
    broken = tmp_path / "stubs"
    broken.write_text("not a directory")  # the checker's view of it cannot be built
    preflight = Preflight("strict")
    report = await preflight.check("print(nope)", stubs=broken, session="s")
    assert report.diagnostics == () and not report.refused
