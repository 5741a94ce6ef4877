"""The child's resource limits, set on itself: descriptors, file size, core, processes, address space, CPU.

The address-space limit is relative to a *baseline*: the address space once the packages, the allowed
stdlib modules and the guarded namespace are in place (see :mod:`.main`).
"""

from __future__ import annotations

import math
import resource
import signal

NOFILE = 64
FSIZE_BYTES = 64 * 1024 * 1024
_BASELINE_FALLBACK = 64 * 1024 * 1024
"""Used when ``/proc`` is unavailable; a generous figure for CPython with these imports."""

_baseline = _BASELINE_FALLBACK


def address_space() -> int:
    """Current virtual memory size (``VmSize``) of this process in bytes, or 0 if unknown."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _set_soft(which: int, soft: int) -> None:
    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(which, (soft, hard))


def apply_static_limits(memory_bytes: int) -> None:
    """Descriptor, file-size, core and process limits, and the first address-space limit."""
    global _baseline
    _baseline = address_space() or _BASELINE_FALLBACK
    for which, value in (
        (resource.RLIMIT_NOFILE, NOFILE),
        (resource.RLIMIT_FSIZE, FSIZE_BYTES),
        (resource.RLIMIT_CORE, 0),
        # No child processes: nothing legitimate forks (uuid's MAC probing falls back to random).
        (resource.RLIMIT_NPROC, 0),
    ):
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            _set_soft(which, value)
    # A write past RLIMIT_FSIZE should fail with EFBIG, not kill the session.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    # The hard limit too: code that reached setrlimit could otherwise raise its soft limit to an open hard one.
    # A run asks for at most the memory the child was started with, so the hard limit never has to move up.
    _set_hard(resource.RLIMIT_AS, _baseline + memory_bytes)
    arm_execution_limits(memory_bytes, None)


def _set_hard(which: int, value: int) -> None:
    """Soft and hard limit ``value`` (or the hard limit already in place, when that is lower)."""
    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))


def arm_execution_limits(memory_bytes: int, cpu_s: float | None) -> None:
    """Before an execution: address space = baseline + ``memory_bytes``; CPU = used so far + ``cpu_s``.

    Only soft limits move. The address space's hard limit is the child's (:func:`apply_static_limits`): a run
    gets at most that. The CPU's stays open: the next run's soft limit is above this one's (CPU used adds up),
    and a hard limit cannot be raised again; the host's wall clock ends a run whatever its CPU limit, and the
    program cannot call ``setrlimit`` itself.
    """
    _set_soft(resource.RLIMIT_AS, _baseline + memory_bytes)
    if cpu_s is not None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        _set_soft(resource.RLIMIT_CPU, math.ceil(usage.ru_utime + usage.ru_stime + cpu_s) + 1)
