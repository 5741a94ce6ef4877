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
