"""Shared helpers for the sandbox escape tests: health checks and host-side leak probes."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from codemode.executors import Executor, Limits, RunResult

ATTACK = "attack"
"""The session every attack runs in."""

QUICK = Limits(wall_s=5)
"""Limits for attacks that are expected to fail fast: a hang is then a clear failure, not a stuck suite."""

_INSTANCE_THREAD = re.compile(r"^codemode-wasm-[0-9a-f]{8}$")


async def run(ex: Executor, code: str, *, session: str = ATTACK, limits: Limits = QUICK) -> RunResult:
    return await ex.run(code, session=session, limits=limits)


async def run_value(ex: Executor, code: str, *, session: str = ATTACK, limits: Limits = QUICK) -> Any:
    """Run ``code`` and return its final value; the run itself must succeed."""
    result = await run(ex, code, session=session, limits=limits)
    assert result.ok, result.error
    return result.value


def assert_error(result: RunResult, error_type: str, message: str = "") -> None:
    """The run failed with exactly ``error_type`` and a message containing ``message``."""
    assert not result.ok, f"the attack succeeded: {result.value_repr!r} {result.stdout[:500]!r}"
    assert result.error is not None
    assert result.error.type == error_type, result.error
    assert message in result.error.message, result.error


async def assert_healthy(ex: Executor, sessions: tuple[str, ...] = (ATTACK,)) -> None:
    """The executor still runs code and makes a real tool call, in the attacked session and in a fresh one."""
    for session in sessions:
        two = await ex.run("1 + 1", session=session, limits=Limits(wall_s=10))
        assert two.ok and two.value == 2, (session, two.error)
        tags = await ex.run("from stubs import notes\nnotes.list_tags()", session=session, limits=Limits(wall_s=10))
        assert tags.ok, (session, tags.error)
        assert isinstance(tags.value, dict) and tags.value, tags.value_repr
        assert [(c.server, c.tool, c.ok) for c in tags.calls] == [("notes", "list_tags", True)]


def instance_threads() -> set[threading.Thread]:
    """Live threads that run a WASM interpreter (not the shared alarm thread)."""
    return {t for t in threading.enumerate() if _INSTANCE_THREAD.match(t.name) and t.is_alive()}


def wait_for_no_instance_threads(timeout: float) -> set[threading.Thread]:
    deadline = time.monotonic() + timeout
    while (alive := instance_threads()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def child_processes() -> set[int]:
    """Pids whose parent is this process (zombies included), read from /proc."""
    me = os.getpid()
    children = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == me:
            children.add(int(entry.name))
    return children
