"""Attacks that target the host around the sandbox: its bookkeeping of executions and its own file writes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from codemode.audit import AuditLog
from codemode.config import Config, Settings, demo_config
from codemode.engine import Engine
from codemode.executors import Limits
from tests.conftest import Sandbox
from tests.security.helpers import ATTACK, assert_healthy, instance_threads, run

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
        result = await run(ex, FORGE_NEXT % {"seconds": 0}, limits=Limits(wall_s=2))
        assert result.ok and result.value == "forged"  # the guest owns its result, as it owns its output
        assert result.calls == []  # ...but the host's ledger is the only record of calls
        await assert_healthy(ex, ("health-check",))


async def test_forged_next_frame_does_not_let_the_guest_outlive_its_session(demo_sandbox: Sandbox) -> None:
    # HOLE: a guest that sends {'op': 'next'} mid-execution makes the host complete the job (job = None).
    # The guest keeps running; stop() only interrupts an instance whose job is set, so close_session()
    # and aclose() just hand it an 'exit' frame it ignores, wait out their join timeouts (5 s / 10 s) and
    # return, leaving the interpreter thread running on the host with no wall-time limit (fuel barely
    # moves while it sleeps). Here the guest exits by itself after 9 s; a real attacker would not.
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


async def test_engine_output_spill_does_not_follow_a_guest_symlink(tmp_path: Path) -> None:
    # HOLE: the guest can create /scratch/outputs as a relative symlink that climbs out of its scratch dir
    # (wasmtime allows relative targets). When an output is cut, Engine._spill() writes the full output to
    # <scratch>/<session>/outputs/<id>.txt on the host, following the link: guest-controlled content lands
    # in any existing host directory the host user can write.
    victim = tmp_path / "victim"
    victim.mkdir()
    config = Config(servers=demo_config().servers, settings=Settings(output_chars=200))
    target = "../" * 40 + str(victim).lstrip("/")
    code = f"import os\nos.symlink({target!r}, '/scratch/outputs')\nprint('PWNED ' * 1000)"
    async with Engine(config, stubs_dir=tmp_path / "stubs", skills_dir=tmp_path / "skills",
                      audit=AuditLog(tmp_path / "audit.jsonl")) as engine:  # fmt: skip
        outcome = await engine.execute(code, session="spill-attack")
        await engine.close_session("spill-attack")
    written = sorted(p.name for p in victim.iterdir())
    assert written == [], (
        f"the host wrote the guest's output outside the sandbox: {victim}/{written} ({outcome.text[-80:]!r})"
    )
