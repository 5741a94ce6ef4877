"""The restricted child cannot ``execve``: ``no_new_privs`` plus a seccomp filter (``RLIMIT_NPROC`` only stops fork)."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from codemode.executors.restricted import RestrictedExecutor
from codemode.executors.restricted_child import seccomp
from tests.unit.test_restricted import anyio_backend, executor, hub, stubs_dir

__all__ = ["anyio_backend", "executor", "hub", "stubs_dir"]

SECCOMP_PY = Path(seccomp.__file__)

PROBE = f"""
import importlib.util, os, sys
spec = importlib.util.spec_from_file_location("seccomp", {str(SECCOMP_PY)!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
problem = module.deny_exec()
if problem is not None:
    print("unavailable:", problem)
    sys.exit(0)
for attempt in (lambda: os.execv("/bin/true", ["true"]), lambda: os.execve("/bin/true", ["true"], {{}})):
    try:
        attempt()
    except PermissionError:
        print("denied")
print("alive", os.getpid() > 0, open("/proc/self/status").read().count("NoNewPrivs:\\t1"))
"""


def _probe() -> str:
    done = subprocess.run([sys.executable, "-I", "-c", PROBE], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_exec_is_denied_by_the_filter() -> None:
    out = _probe()
    if out.startswith("unavailable:"):
        pytest.skip(out.strip())
    assert out.splitlines() == ["denied", "denied", "alive True 1"]


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_filter_checks_the_architecture_and_denies_only_exec(machine: str) -> None:
    program = seccomp.filter_program(machine)
    rows = [struct.unpack("=HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    assert rows[0] == (0x20, 0, 0, 4)  # load the audit arch first
    assert rows[1][0] == 0x15 and rows[1][3] in {0xC000003E, 0xC00000B7}
    assert rows[-2] == (0x06, 0, 0, seccomp.SECCOMP_RET_ALLOW)
    assert rows[-1] == (0x06, 0, 0, seccomp.SECCOMP_RET_ERRNO | 1)
    for index, (_, jt, jf, _) in enumerate(rows[:-2]):
        assert index + 1 + max(jt, jf) < len(rows), "a jump past the end"
    with pytest.raises(ValueError):
        seccomp.filter_program("riscv64")


async def test_the_child_runs_with_exec_denied(executor: RestrictedExecutor) -> None:
    if _probe().startswith("unavailable:"):
        pytest.skip("seccomp is not available here")
    assert (await executor.run("1")).ok
    status = await anyio.Path(f"/proc/{executor.pid('default')}/status").read_text()
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Seccomp"].strip() == "2"
