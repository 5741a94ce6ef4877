"""Attacks that target the host around the sandbox: its bookkeeping of executions and its own file writes."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from codemode.audit import AuditLog
from codemode.config import Config, Settings, demo_config
from codemode.engine import Engine
from codemode.executors import Executor, Limits
from codemode.executors.wasm.loop import Signal
from tests.conftest import Sandbox
from tests.security.helpers import ATTACK, assert_healthy, instance_threads, run, run_value

pytestmark = pytest.mark.anyio

FORGE_NEXT = """
from codemode_runtime import transport
transport.request({'op': 'next', 'result': {'has_value': True, 'value': 'forged', 'json': True, 'stdout': '',
                                            'stderr': '', 'calls': [['notes', 'list_tags']],
                                            'tool_calls': [['notes', 'list_tags']]}})
import time
started = time.monotonic()
while time.monotonic() - started < %(seconds)s:
    time.sleep(0.05)
import os
os._exit(0)
"""
"""Ends the execution early by sending the host a forged ``next`` frame, then keeps running."""


async def test_a_forged_result_cannot_fake_tool_calls(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        # The guest ends at once; the limit only bounds a regression (2 s was too tight on a loaded machine).
        result = await run(ex, FORGE_NEXT % {"seconds": 0}, limits=Limits(wall_s=30))
        assert result.ok and result.value == "forged"  # the guest owns its result, as it owns its output
        assert result.calls == []  # ...but the host's ledger is the only record of calls
        await assert_healthy(ex, ("health-check",))


async def test_forged_next_frame_does_not_let_the_guest_outlive_its_session(demo_sandbox: Sandbox) -> None:
    # A guest that sends {'op': 'next'} mid-execution makes the host complete the job (job = None) while
    # it keeps running. close_session() must still stop that interpreter thread, not hand it an 'exit'
    # frame it can ignore and leave it running on the host with no wall-time limit. Here the guest would
    # exit by itself after 9 s (so a regression cannot hang the suite); the check is its thread, on the host.
    async with demo_sandbox.executor() as ex:
        result = await run(ex, FORGE_NEXT % {"seconds": 9}, limits=Limits(wall_s=2))
        assert result.ok and result.value == "forged"
        before_close = instance_threads()  # the attacked interpreter and the pool's spare
        started = time.monotonic()
        await ex.close_session(ATTACK)
        close_took = time.monotonic() - started
        survivors = before_close & instance_threads()
        await assert_healthy(ex, ("health-check",))
    # aclose() has stopped the spare and every interpreter it still tracks: whatever runs now has escaped.
    leaked = {thread for thread in survivors if thread.is_alive()}
    for thread in leaked:
        thread.join(15)  # let the guest end on its own, so the rest of the suite is unaffected
    assert not leaked, (
        f"interpreter thread(s) {sorted(t.name for t in leaked)} still running after close_session() "
        f"(which took {close_took:.1f} s) and aclose(), past the execution's 2 s wall-time limit"
    )


FORGE_NEXT_THEN_HELLO = """
from codemode_runtime import transport, protocol
transport.request({'op': 'next', 'result': {'has_value': True, 'value': 'forged', 'json': True, 'stdout': '',
                                            'stderr': '', 'calls': []}})
transport.request(protocol.hello(capture=['a', 'b']))  # after the exit frame the session's close sent
import os
os._exit(0)
"""
"""Ends its execution with a forged ``next``; once its session is closed, asks for work again with a hello."""


async def test_a_guest_asking_for_work_after_its_exit_frame_cannot_hold_its_thread(demo_sandbox: Sandbox) -> None:
    # The second ask reached the job queue, which held nothing more: the interpreter thread blocked there,
    # inside a host call where no interrupt reaches, for good (with its guest memory).
    async with demo_sandbox.executor() as ex:
        result = await run(ex, FORGE_NEXT_THEN_HELLO, limits=Limits(wall_s=5))
        assert result.ok and result.value == "forged"
        attacked = instance_threads()
        await ex.close_session(ATTACK)
        await assert_healthy(ex, ("health-check",))
    for thread in attacked:
        thread.join(10)
    assert not {thread for thread in attacked if thread.is_alive()}


async def test_engine_output_spill_survives_a_guest_trying_to_link_outputs(tmp_path: Path) -> None:
    # End to end: the guest tries to make /scratch/outputs a link out of its scratch dir, then prints past
    # the output cap so the engine spills. (wasmtime refuses the link first; the host-side tests below
    # attack the spill itself with links the guest is assumed to have made.)
    victim = tmp_path / "victim"
    victim.mkdir()
    config = Config(servers=demo_config().servers, settings=Settings(output_chars=200))
    target = "../" * 40 + str(victim).lstrip("/")
    code = (
        f"import os\ntry:\n    os.symlink({target!r}, '/scratch/outputs')\nexcept OSError:\n    pass\n"
        "print('PWNED ' * 1000)"
    )
    async with Engine(config, stubs_dir=tmp_path / "stubs", skills_dir=tmp_path / "skills",
                      audit=AuditLog(tmp_path / "audit.jsonl")) as engine:  # fmt: skip
        outcome = await engine.execute(code, session="spill-attack")
        spilled = re.search(r"/scratch/outputs/[\w.-]+\.txt", outcome.text)
        assert spilled is not None, outcome.text[-300:]
        read = await engine.execute(f"open({spilled[0]!r}).read().count('PWNED')", session="spill-attack")
        await engine.close_session("spill-attack")
    assert sorted(victim.iterdir()) == [], outcome.text[-200:]
    assert read.text == "1000"  # the whole output went where the guest can read it, inside its scratch


async def _session_dir(demo_sandbox: Sandbox, ex: Executor, session: str) -> Path:
    assert await run_value(ex, "open('/scratch/mine.txt', 'w').write('x')", session=session) == 1
    session_dir = demo_sandbox.root / "scratch-wasm" / session
    assert (session_dir / "mine.txt").is_file()
    return session_dir


async def test_the_spill_replaces_a_link_at_outputs_instead_of_following_it(
    demo_sandbox: Sandbox, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    async with demo_sandbox.executor() as ex:
        session_dir = await _session_dir(demo_sandbox, ex, "spill-dir")
        (session_dir / "outputs").symlink_to(victim)  # what a guest able to make links would leave there
        assert ex.save_output("spill-dir", "spilled", "FULL OUTPUT") == "/scratch/outputs/spilled.txt"
        assert sorted(victim.iterdir()) == []
        outputs = session_dir / "outputs"
        assert outputs.is_dir() and not outputs.is_symlink()
        assert (outputs / "spilled.txt").read_text() == "FULL OUTPUT"
        assert await run_value(ex, "open('/scratch/outputs/spilled.txt').read()", session="spill-dir") == "FULL OUTPUT"


async def test_the_spill_opens_outputs_without_following_a_link_swapped_in_after_the_check(
    demo_sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    async with demo_sandbox.executor() as ex:
        session_dir = await _session_dir(demo_sandbox, ex, "spill-race")
        outputs = session_dir / "outputs"
        outputs.mkdir()
        real_stat = os.stat

        def racing_stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
            found = real_stat(path, *args, **kwargs)
            if path == "outputs":  # the check saw a directory; a link takes its place before the open
                outputs.rename(session_dir / "was-outputs")
                outputs.symlink_to(victim)
            return found

        monkeypatch.setattr(os, "stat", racing_stat)
        with pytest.raises(OSError):  # refused, not written through the link
            ex.save_output("spill-race", "raced", "PWNED")
        monkeypatch.undo()
    assert list(victim.iterdir()) == []


async def test_the_spill_writes_through_no_link_inside_outputs(demo_sandbox: Sandbox, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    async with demo_sandbox.executor() as ex:
        outputs = (await _session_dir(demo_sandbox, ex, "spill-file")) / "outputs"
        outputs.mkdir()
        (outputs / ".planted.tmp").symlink_to(victim)  # the temp file's name, planted ahead
        with pytest.raises(FileExistsError):
            ex.save_output("spill-file", "planted", "PWNED")
        (outputs / "taken.txt").symlink_to(victim)  # the final name: replaced, not written through
        assert ex.save_output("spill-file", "taken", "mine") == "/scratch/outputs/taken.txt"
        assert not (outputs / "taken.txt").is_symlink() and (outputs / "taken.txt").read_text() == "mine"
        assert (outputs / "taken.txt").stat().st_mode & 0o777 == 0o600  # a program's output: nobody else's to read
    assert victim.read_text() == "precious"


async def test_a_run_cancelled_as_its_job_completes_leaves_no_interpreter_behind(
    demo_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A client may cancel at any moment, also in the instant after its program ended and before the run took
    # the result. The interpreter then waits for its next job, where no interrupt reaches it: unless it is
    # stopped, it stays with its thread and guest memory until the executor closes (one per lucky cancel).
    async with demo_sandbox.executor() as ex:
        assert await run_value(ex, "1") == 1  # the session's interpreter
        thread = ex._sessions[ATTACK]._thread  # type: ignore[attr-defined]
        assert thread is not None and thread.is_alive()
        completed = Signal.wait

        async def cancelled_at_completion(self: Signal) -> None:
            await completed(self)
            raise anyio.get_cancelled_exc_class()()

        monkeypatch.setattr(Signal, "wait", cancelled_at_completion)
        with pytest.raises(anyio.get_cancelled_exc_class()):
            await run(ex, "2")
        monkeypatch.undo()
        assert ATTACK not in ex.sessions()
        thread.join(10)
        assert not thread.is_alive()  # gone from the host, not parked until the executor closes
        assert await run_value(ex, "3") == 3  # the session starts again on a fresh interpreter
