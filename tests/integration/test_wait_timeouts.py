"""A wall-time limit reached while the program *waits* raises in the program and keeps the session.

``time.sleep`` raises ``TimeoutError``, a slow tool call ``ToolTimeout``, at the wait; a program that then
ends (within a short grace) keeps its interpreter and variables. A program computing at the limit, or one
that catches the timeout and computes on, is still stopped and its interpreter lost. Both executors, real
demo servers and the real ``fragile`` test server (whose ``slow`` tool blocks).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import anyio
import pytest

from codemode.audit import AuditLog
from codemode.calls import CallState, default_gate
from codemode.compiler import compile_to_dir
from codemode.config import Config, Settings, demo_config, parse_config
from codemode.engine import Engine
from codemode.executors import ExecutorKind, Limits, create_executor
from codemode.executors.wasm.alarm import alarm
from codemode.hub import Hub
from codemode.outcome import Outcome
from tests.conftest import Sandbox

pytestmark = pytest.mark.anyio

WALL_S = 2.0


def _engine(tmp_path: Path, executor: ExecutorKind, fragile: dict[str, object]) -> Engine:
    extra = parse_config(json.dumps({"mcpServers": {"fragile": fragile}}))
    config = Config(servers={**demo_config().servers, **extra.servers}, settings=Settings(wall_s=WALL_S))
    return Engine(config, executor=executor, stubs_dir=tmp_path / "stubs", skills_dir=tmp_path / "skills",
                  audit=AuditLog(tmp_path / "audit.jsonl"))  # fmt: skip


def _error(outcome: Outcome) -> tuple[str, str, bool]:
    result = outcome.result
    assert result is not None and result.error is not None, outcome.text
    return result.error.type, result.error.message, result.instance_lost


@pytest.mark.parametrize("executor", ["wasm", "restricted"])
async def test_a_timed_out_wait_raises_in_the_program_and_keeps_the_session(
    tmp_path: Path, executor: ExecutorKind, fragile_server: dict[str, object]
) -> None:
    async with _engine(tmp_path, executor, fragile_server) as engine:
        assert not (await engine.execute("import time\nkeep = 41", session="s")).is_error

        slept = await engine.execute("time.sleep(1000)", session="s")
        kind, message, lost = _error(slept)
        assert (kind, lost) == ("TimeoutError", False), message
        assert "cut short by the execution's wall-time limit" in message and "variables are kept" in message

        caught = await engine.execute(
            "try:\n    time.sleep(1000)\nexcept TimeoutError:\n    print('woke at the limit')\nkeep + 1", session="s"
        )
        assert not caught.is_error and caught.result is not None, caught.text
        assert (caught.result.value, caught.result.stdout) == (42, "woke at the limit\n")

        called = await engine.execute("from stubs import fragile\nkeep = 'x'\nfragile.slow(seconds=30)", session="s")
        kind, message, lost = _error(called)
        assert kind.endswith("ToolTimeout") and not lost, (kind, message)
        assert [(c.tool, c.state) for c in called.calls] == [("slow", CallState.IN_FLIGHT)]

        assert (await engine.execute("keep", session="s")).text == '"x"'  # the variables survived every wait


@pytest.mark.parametrize("executor", ["wasm", "restricted"])
async def test_computing_at_the_limit_still_loses_the_interpreter(
    tmp_path: Path, executor: ExecutorKind, fragile_server: dict[str, object]
) -> None:
    spin_after_catch = "try:\n    time.sleep(1000)\nexcept TimeoutError:\n    while True:\n        pass"
    async with _engine(tmp_path, executor, fragile_server) as engine:
        for code in ("while True:\n    pass", spin_after_catch):
            assert not (await engine.execute("import time\nkeep = 1", session="c")).is_error
            kind, message, lost = _error(await engine.execute(code, session="c"))
            assert (kind, lost) == ("SandboxTimeout", True), (code, message)
            gone = await engine.execute("keep", session="c")
            assert gone.is_error and "NameError" in gone.text


async def test_a_paused_clock_still_gives_the_wait_its_grace(demo_sandbox: Sandbox) -> None:
    # Pausing and resuming the clock (a person asked mid-call) arms the deadline alarm again: the second
    # alarm at the same deadline must not cut the grace short and lose the session.
    async with demo_sandbox.executor() as ex:
        assert (await ex.run("import time\nkeep = 7", session="p")).ok
        ctx = ex.gate.context(session="p", limits=Limits(wall_s=1.0))
        results = []

        async def run() -> None:
            results.append(await ex.run("time.sleep(1000)", context=ctx))

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await anyio.sleep(0.3)
            with ctx.clock.paused():
                await anyio.sleep(0.2)
        (slept,) = results
        assert slept.error is not None and (slept.error.type, slept.instance_lost) == ("TimeoutError", False), slept
        assert (await ex.run("keep", session="p")).value == 7


async def test_a_program_that_catches_its_timeout_has_one_second_then_is_stopped(demo_sandbox: Sandbox) -> None:
    # WAIT_GRACE_S is 1 s: a program computing for 1.5 s after its wait timed out never gets to its print.
    code = (
        "import time\ntry:\n    time.sleep(1000)\nexcept TimeoutError:\n    t0 = time.monotonic()\n"
        "    while time.monotonic() - t0 < 1.5:\n        pass\n    print('ran on past the grace')"
    )
    async with demo_sandbox.executor() as ex:
        result = await ex.run(code, session="g", limits=Limits(wall_s=1.0))
    assert result.error is not None and (result.error.type, result.instance_lost) == ("SandboxTimeout", True), result
    assert "ran on past the grace" not in result.stdout


async def test_a_call_answered_at_the_deadline_is_a_wait_even_when_the_deadline_alarm_comes_late(
    tmp_path: Path, fragile_server: dict[str, object]
) -> None:
    # The gate answers a slow call ``timeout`` at the deadline, on the event loop; the deadline alarm fires on
    # the alarm thread. When the call's reply wins, the instance must count the call as a wait that timed out
    # (a grace for the program to end), so that the alarm arriving after it, with the program computing
    # again, does not stop it as a program computing at the limit. The alarm thread is held here from just
    # before the deadline until the program has caught its ToolTimeout, which makes that order certain;
    # the program then runs on until /scratch/go appears, within its grace.
    code = (
        "import os, codemode_runtime\ntry:\n    codemode_runtime.call('fragile', 'slow', {'seconds': 5})\n"
        "except ToolTimeout:\n    open('/scratch/caught', 'w').close()\n"
        "while not os.path.exists('/scratch/go'):\n    pass\n'ended in its grace'"
    )
    extra = parse_config(json.dumps({"mcpServers": {"fragile": fragile_server}}))
    async with Hub(extra) as hub:
        compile_to_dir(hub.tools(), tmp_path / "stubs")
        ex = create_executor(
            "wasm", stubs_dir=tmp_path / "stubs", skills_dir=tmp_path, scratch_root=tmp_path / "scratch",
            gate=default_gate(hub), pool_size=1,
        )  # fmt: skip
        async with ex:
            assert (await ex.run("kept = 1", session="late")).ok
            scratch = ex._sessions["late"].scratch  # type: ignore[attr-defined]
            ctx = ex.gate.context(session="late", limits=Limits(wall_s=1.5))
            deadline = ctx.clock.deadline

            def hold() -> None:  # on the alarm thread: nothing else it has to do runs meanwhile
                give_up = time.monotonic() + 30
                while not (scratch / "caught").exists() and time.monotonic() < give_up:
                    time.sleep(0.005)

            alarm.at(deadline - 0.3, hold)
            alarm.at(deadline + 0.3, lambda: (scratch / "go").touch())
            result = await ex.run(code, context=ctx)
            assert (scratch / "caught").exists(), result
            assert result.ok and result.value == "ended in its grace" and not result.instance_lost, result
            assert (await ex.run("kept", session="late")).value == 1


async def test_a_deadline_passed_while_the_clock_was_paused_is_armed_again_on_resume(demo_sandbox: Sandbox) -> None:
    # The deadline alarm fires during the pause, finds the clock paused (no deadline) and arms nothing: only
    # the resume arms the moved deadline. Without it a spinning program would never be stopped.
    async with demo_sandbox.executor() as ex:
        assert (await ex.run("1", session="resumed")).ok  # booted: the job runs at once, well before the pause
        ctx = ex.gate.context(session="resumed", limits=Limits(wall_s=0.5))
        results = []

        async def run() -> None:
            results.append(await ex.run("while True:\n    pass", context=ctx))

        # Stopped about 1.1 s in (0.5 s + the 0.6 s pause); unarmed, only a backstop 30 s later would stop it.
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                await anyio.sleep(0.2)
                with ctx.clock.paused():
                    await anyio.sleep(0.6)  # past the first deadline
        (spun,) = results
        assert spun.error is not None and (spun.error.type, spun.instance_lost) == ("SandboxTimeout", True), spun
