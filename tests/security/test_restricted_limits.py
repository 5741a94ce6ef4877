"""The restricted child's resource limits are hard ones: code that reached ``setrlimit`` could raise a soft
limit up to its hard limit, and the address space's hard limit was left at infinity.

Read from the kernel's view of a real child, started and armed by the executor for a run in a session.
"""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from codemode.executors import Limits
from codemode.hub import Hub
from tests.unit.test_restricted import anyio_backend, hub, make_executor, stubs_dir

__all__ = ["anyio_backend", "hub", "stubs_dir"]

pytestmark = pytest.mark.anyio

HARD = {
    "RLIMIT_AS": resource.RLIMIT_AS,
    "RLIMIT_NOFILE": resource.RLIMIT_NOFILE,
    "RLIMIT_FSIZE": resource.RLIMIT_FSIZE,
    "RLIMIT_NPROC": resource.RLIMIT_NPROC,
    "RLIMIT_CORE": resource.RLIMIT_CORE,
}


async def test_the_childs_limits_are_hard_ones(hub: Hub, stubs_dir: Path, tmp_path: Path) -> None:
    memory = 200 << 20
    async with make_executor(hub, stubs_dir, tmp_path, Limits(wall_s=20, memory_bytes=memory)) as ex:
        for _ in range(2):  # armed again for the second run: the limits hold across a session's runs
            result = await ex.run("sum(range(1000))", session="s")
            assert result.ok and result.value == 499500, result.error
            pid = ex._sessions["s"].process.pid
            limits = {name: resource.prlimit(pid, which) for name, which in HARD.items()}
            unequal = {name: (soft, hard) for name, (soft, hard) in limits.items() if soft != hard}
            assert unequal == {}, unequal
            assert memory < limits["RLIMIT_AS"][1] != resource.RLIM_INFINITY
