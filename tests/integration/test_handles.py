"""Result handles end to end: a 50 MB file from the real filesystem server filtered in a WASM guest that has
less memory than the file, and handles read the same way in both executors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from codemode.audit import AuditLog
from codemode.calls import default_gate
from codemode.calls.handles import ResultStore
from codemode.compiler import compile_to_dir
from codemode.config import Config, parse_config
from codemode.engine import Engine
from codemode.executors import ExecutorKind, Limits, create_executor
from codemode.hub import FakeUpstream, Hub, ToolSpec

FS = "@modelcontextprotocol/server-filesystem@2026.8.31"
MB = 1024 * 1024
GUEST_MEMORY = 40 * MB
"""Below the file's size: the guest cannot hold it whole."""

LINES = 850_000

pytestmark = pytest.mark.anyio


def _write_log(path: Path) -> int:
    """A ~52 MB log with one ERROR line in 1,000; returns the number of ERROR lines."""
    errors = 0
    with path.open("w") as out:
        for i in range(LINES):
            level = "ERROR" if i % 1000 == 7 else "INFO "
            errors += level == "ERROR"
            out.write(f"2026-12-01T00:{i // 60 % 60:02d}:{i % 60:02d} {level} request {i:07d} served in 12 ms ok\n")
    return errors


@pytest.fixture(scope="module")
async def fs_sandbox(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Hub, Path, int]]:
    root = tmp_path_factory.mktemp("handles")
    (root / "files").mkdir()
    errors = _write_log(root / "files" / "big.log")
    config = parse_config(
        json.dumps({"mcpServers": {"fs": {"command": "npx", "args": ["-y", FS, str(root / "files")],
                                          "call_timeout_s": 120}}})
    )  # fmt: skip
    async with Hub(config) as hub:
        compile_to_dir(hub.tools(), root / "stubs", summaries=hub.summaries())
        (root / "skills").mkdir()
        yield hub, root, errors


FILTER = """
from stubs import fs
result = fs.read_text_file(path={path!r})
log = result['content']
errors = [line for line in log.lines() if ' ERROR ' in line]
lines = sum(1 for _ in log.lines())
(type(result).__name__, type(log).__name__, log.size, len(log), lines, len(errors), errors[0][-40:], log[-3:])
"""


@pytest.mark.slow
async def test_a_50mb_file_is_filtered_in_a_guest_with_less_memory_than_the_file(
    fs_sandbox: tuple[Hub, Path, int],
) -> None:
    hub, root, errors = fs_sandbox
    path = str(root / "files" / "big.log")
    size = (root / "files" / "big.log").stat().st_size
    assert size > 50_000_000 > GUEST_MEMORY
    store = ResultStore()
    executor = create_executor(
        "wasm", stubs_dir=root / "stubs", skills_dir=root / "skills", scratch_root=root / "scratch",
        gate=default_gate(hub, results=store), limits=Limits(wall_s=120, memory_bytes=GUEST_MEMORY), pool_size=0,
    )  # fmt: skip
    async with executor as ex:
        limits = Limits(wall_s=120, memory_bytes=GUEST_MEMORY)
        result = await ex.run(FILTER.format(path=path), session="s", limits=limits)
        assert result.ok, result.error
        assert result.value == ["ResultHandle", "ResultHandle", size, size, LINES, errors,
                                "ERROR request 0000007 served in 12 ms ok", "ok\n"]  # fmt: skip
        assert [(c.tool, c.ok) for c in result.calls] == [("read_text_file", True)]
        assert result.calls[0].result_bytes > size  # the journal counts what the host kept, not the handle
        assert store.session_used("s") > size

        # The same result asked for whole: refused before a byte is fetched (over the read limit)...
        whole = await ex.run("len(result.to_json()['content'])", session="s", limits=limits)
        assert not whole.ok and whole.error is not None
        assert whole.error.type == "codemode_runtime.QuotaExceeded", whole.error
        assert "to_json() would bring" in whole.error.message
        assert "iterate over it or read slices" in whole.error.message

        # ... and with the read limit lifted, the guest runs out of memory: it never could have held it all.
        lifted = Limits(wall_s=120, memory_bytes=GUEST_MEMORY, max_read_bytes=512 * MB)
        # (the read limit a handle allows is the one of the execution that made it: the tool is called again)
        again = f"len(fs.read_text_file(path={path!r}).to_json()['content'])"
        oom = await ex.run(again, session="s", limits=lifted)
        assert not oom.ok and oom.error is not None
        assert "MemoryError" in oom.error.type or oom.error.kind == "memory", oom.error


# -- both executors ------------------------------------------------------------------------------------

ROWS = [{"id": i, "level": "error" if i % 7 == 0 else "info", "msg": "m" * 40} for i in range(20_000)]
TEXT = "".join(f"line {i} {'ERROR' if i % 5 == 0 else 'ok'}\n" for i in range(50_000))
NESTED = {"meta": {"count": 3}, "blob": "é" * 600_000, "rows": ROWS}


def _big(tool: str, args: dict[str, Any]) -> Any:
    return {"rows": ROWS, "text": TEXT, "nested": NESTED, "small": [1, 2, 3]}[tool]


def _engine(tmp_path: Path, kind: ExecutorKind) -> Engine:
    big = FakeUpstream("big", [ToolSpec("big", t) for t in ("rows", "text", "nested", "small")], _big)
    return Engine(Config(), upstreams={"big": big}, stubs_dir=tmp_path / "stubs", skills_dir=tmp_path / "skills",
                  audit=AuditLog(tmp_path / "audit.jsonl"), executor=kind)  # fmt: skip


READS = """
from stubs import big
rows, text, nested = big.rows(), big.text(), big.nested()
[
    isinstance(rows, ResultHandle), rows.type, len(rows), rows[0], rows[-1]['id'], [r['id'] for r in rows[5:8]],
    rows[1:10:4] == [ROW for ROW in rows.to_json()[1:10:4]], sum(1 for r in rows if r['level'] == 'error'),
    rows.preview[:24], rows.size > 256 * 1024, big.small(),
    len(text), text[:12], text[-3:], sum(1 for line in text.lines() if 'ERROR' in line), 'line 49999 ' in text,
    'line 50000 ' in text, text.text() == ''.join(text[i:i + 65536] for i in range(0, len(text), 65536)),
    sorted(nested.keys()), nested['meta'], nested.get('absent', 'default'), 'rows' in nested,
    type(nested['blob']).__name__, len(nested['blob']), nested['blob'][:2], type(nested['rows']).__name__,
    nested['rows'][3]['id'], [k for k, v in nested.items()], nested.to_json()['rows'][-1]['id'],
]
"""


@pytest.mark.parametrize("kind", ["wasm", "restricted"])
async def test_a_handle_reads_like_the_data_in_both_executors(tmp_path: Path, kind: ExecutorKind) -> None:
    async with _engine(tmp_path, kind) as engine:
        outcome = await engine.execute(READS, session="s")
        assert not outcome.is_error, outcome.text
        assert outcome.result is not None
        assert outcome.result.value == [
            True, "list", 20_000, ROWS[0], 19_999, [5, 6, 7],
            True, sum(1 for r in ROWS if r["level"] == "error"),
            '[{"id":0,"level":"error"', True, [1, 2, 3],
            len(TEXT), TEXT[:12], TEXT[-3:], 10_000, True,
            False, True,
            ["blob", "meta", "rows"], {"count": 3}, "default", True,
            "ResultHandle", 600_000, "éé", "ResultHandle",
            3, ["meta", "blob", "rows"], 19_999,
        ]  # fmt: skip
        errors = await engine.execute("[type(e).__name__ for e in (rows[10**9:], text[-10**9:10**9])]", session="s")
        assert errors.result is not None and errors.result.value == ["list", "str"], errors.text
        missing = await engine.execute("rows[20_000]", session="s")
        assert missing.is_error and "IndexError: list index out of range" in missing.text
        absent = await engine.execute("nested['nope']", session="s")
        assert absent.is_error and "KeyError: 'nope'" in absent.text


async def test_the_model_is_told_what_a_handle_holds_and_how_to_read_it(tmp_path: Path) -> None:
    async with _engine(tmp_path, "wasm") as engine:
        shown = await engine.execute("from stubs import big\nbig.rows()", session="s")
        assert not shown.is_error
        assert shown.text.startswith("<ResultHandle list: 20,000 items, ") and "bytes kept on the host" in shown.text
        assert "read it with len(h), h[i], h[a:b], for x in h, h.to_json(). preview: [{" in shown.text
        assert engine.results.session_used(shown.session) > 256 * 1024
        code = "import codemode_runtime as rt\nrt.call('big', 'small', {'rows': _})"
        passed = await engine.execute(code, session="s")
        assert passed.text == "[1, 2, 3]", passed.text  # a handle passed to a tool is sent as its data
        assert passed.calls[0].args_bytes > 256 * 1024
        await engine.close_session("s")
        assert engine.results.session_used(shown.session) == 0  # a closed session's results are dropped
