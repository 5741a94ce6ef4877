"""Audit log (append-only JSONL, atomic lines, damaged lines skipped) and the per-session rate limit."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from codemode.audit import AuditLog, ExecutionEntry
from codemode.calls import CallRecord, CallState
from codemode.errors import PolicyDenied
from codemode.policy import RateLimiter


def _entry(i: int, session: str = "s") -> ExecutionEntry:
    return ExecutionEntry(
        session=session,
        code=f"print({i})",
        executor="wasm",
        ok=True,
        duration_s=0.01,
        output_chars=2,
        calls=[CallRecord("notes", "search_notes", 20, 0.002, CallState.DONE, args_digest="ab12")],
    )


def test_append_and_read_back(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    first = _entry(1)
    log.append(first)
    log.append(_entry(2))
    entries = log.recent(10)
    assert [e.code for e in entries] == ["print(1)", "print(2)"]
    assert entries[0].calls[0].tool == "search_notes" and entries[0].calls[0].state is CallState.DONE
    assert log.find(first.id[:6]) == first
    line = (tmp_path / "audit.jsonl").read_text().splitlines()[0]
    assert first.code_sha256 in line


def test_concurrent_appends_never_interleave(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    big = "x" * 200_000

    def writer(k: int) -> None:
        for i in range(20):
            log.append(
                ExecutionEntry(
                    session=str(k), code=big + str(i), executor="wasm", ok=True, duration_s=0, output_chars=0
                )
            )

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(list(log.entries())) == 80


def test_damaged_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.append(_entry(1))
    with open(path, "a") as fh:
        fh.write('{"half a line\n')
    log.append(_entry(2))
    assert [e.code for e in log.entries()] == ["print(1)", "print(2)"]


def test_unwritable_sink_does_not_raise(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    AuditLog(blocker / "audit.jsonl").append(_entry(1))  # parent is a file: logged, not raised


def test_rate_limit_per_session_with_sliding_window() -> None:
    now = [0.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    limiter.check("a")
    limiter.check("a")
    limiter.check("b")
    with pytest.raises(PolicyDenied, match="at most 2 executions per minute"):
        limiter.check("a")
    now[0] = 61.0
    limiter.check("a")


def test_lines_are_valid_utf8_even_with_lone_surrogates(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append(ExecutionEntry(session="s", code="print('\udcff')", executor="wasm", ok=True, duration_s=0,
                              output_chars=1, output="\udcff\x1b[2J"))  # fmt: skip
    raw = (tmp_path / "audit.jsonl").read_bytes()
    raw.decode("utf-8")  # strict: no surrogate bytes on disk
    assert log.recent(1)[0].output == "\udcff\x1b[2J"  # and it reads back as it was


def test_the_log_rotates_and_long_programs_are_stored_as_head_and_digest(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", max_bytes=20_000)
    big = "x = 1\n" * 20_000
    log.append(ExecutionEntry(session="s", code=big, executor="wasm", ok=True, duration_s=0, output_chars=0))
    line = (tmp_path / "audit.jsonl").read_text()
    assert len(line) < 80_000 and '"code_truncated":true' in line and ExecutionEntry(
        session="s", code=big, executor="wasm", ok=True, duration_s=0, output_chars=0
    ).code_sha256 in line
    for i in range(200):
        log.append(_entry(i))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2", "audit.jsonl.3"]
    assert all(p.stat().st_size <= 80_000 for p in tmp_path.iterdir())
    assert log.recent(1)[0].code == "print(199)"


def test_history_escapes_control_characters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from codemode.cli import main

    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {}, "codemode": {"audit_log": str(tmp_path / "a.jsonl")}}))
    AuditLog(tmp_path / "a.jsonl").append(
        ExecutionEntry(session="s\x1b]0;pwned\x07", code="print('\x1b[2J')", executor="wasm", ok=True,
                       duration_s=0, output_chars=0, config=str(config))
    )  # fmt: skip
    assert main(["history", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\\x1b[2J" in out


def test_history_reads_entries_rotated_out_of_the_current_file(tmp_path: Path) -> None:
    # One client's executions rotate another's out of the current file; history and replay still find it.
    log = AuditLog(tmp_path / "audit.jsonl", max_bytes=20_000)
    alice = ExecutionEntry(session="s", code="print('alice')", executor="wasm", ok=True, duration_s=0, output_chars=0)
    log.append(alice)
    for i in range(40):
        log.append(_entry(i))
    assert alice.id not in (tmp_path / "audit.jsonl").read_text()
    assert [e.code for e in log.recent(1)] == ["print(39)"]
    every = log.recent(0)
    assert every[0].id == alice.id and [e.code for e in every[1:]] == [f"print({i})" for i in range(40)]
    assert [e.id for e in log.entries()] == [e.id for e in every]
    assert log.find(alice.id) == alice
    assert log.recent(41)[0].id == alice.id
