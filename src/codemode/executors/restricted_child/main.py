"""The child's session: set up the guarded namespace and the limits, then serve the host's frames.

Order of operations matters:

0. ``execve`` is denied (``no_new_privs`` and a seccomp filter, :mod:`.seccomp`) while this is the only
   thread; where the kernel refuses, one line on stderr says so and the session goes on without it;
1. the frame channel moves to private descriptors and fd 0/1 point at ``/dev/null``, so nothing the
   program (or a C extension) writes to stdout can corrupt the channel;
2. the packages and the allowed stdlib modules are imported, the guarded namespace is built, and the
   builtins the guards call are pinned into their modules' globals;
3. the address space at that point is the *baseline*; ``RLIMIT_AS`` is set to baseline + the memory
   limit. Measured: ~25 MB (VmSize 26,032 kB, RSS ~21 MB) for CPython 3.11 on Linux x86-64 with these
   imports; it is measured per child from ``/proc/self/status`` because it varies with the interpreter
   build, the shared libraries (OpenSSL for hashlib) and the stubs;
4. ``repl.serve`` runs the session loop. Before each execution (its ``before_run`` hook, from the ``run``
   frame) the CPU limit is re-armed to the CPU already used plus the execution's wall-time budget (the
   host's wall clock is the real limit; this is the backstop if the host is gone).
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import types
from typing import Any

from .guards import SAFE_STDLIB, pin_builtins
from .limits import apply_static_limits, arm_execution_limits
from .modules import build_safe_modules
from .namespace import make_builtins, make_globals
from .seccomp import deny_exec
from .skills import SkillFinder
from .transformer import compile_user
from .waits import new_execution, on_deadline


def _take_channel() -> tuple[int, int]:
    # The frames travel on private duplicates; fd 0/1 become /dev/null so stray writes go nowhere.
    read_fd, write_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    return read_fd, write_fd


def main(argv: list[str]) -> None:
    """Set up the guarded session and serve it until the host says stop or goes away."""
    runtime_dir, stubs_dir, skills_dir, memory_bytes = argv[1], argv[2], argv[3], int(argv[4])
    problem = deny_exec()
    if problem is not None:
        sys.stderr.write(f"codemode restricted child: exec is not denied ({problem})\n")
    read_fd, write_fd = _take_channel()
    sys.path.insert(0, runtime_dir)

    import codemode_runtime
    from codemode_runtime import repl, transport

    transport.use_pipes(read_fd, write_fd)
    # The guards' own frames (host paths) say nothing about the user's code: keep them out of tracebacks.
    # Every module of this package is in this one directory.
    repl.HIDDEN_FRAME_DIRS.add(os.path.dirname(os.path.abspath(__file__)))
    restricted_builtins = make_builtins()
    repl.mount("stubs", stubs_dir)
    repl.SHOWN_PATHS[os.path.abspath(skills_dir)] = "/skills"
    finder = SkillFinder(skills_dir, restricted_builtins)
    sys.meta_path.insert(0, finder)
    from codemode_runtime import skills

    skills.install(skills_dir)
    skills.load_source = finder.load_source  # a draft runs through the guards like any skill
    for name in sorted(SAFE_STDLIB):
        importlib.import_module(name)
    import collections.abc  # noqa: F401  # pre-imported so the baseline includes it

    build_safe_modules()
    # The guards (this package's modules and RestrictedPython's) look builtins up in their own globals
    # first: pin the real ones there, so nothing that rebinds ``builtins.x`` can change what they call.
    for name, module in list(sys.modules.items()):
        if name.partition(".")[0] in {"restricted_child", "RestrictedPython"} and module is not None:
            pin_builtins(vars(module))

    # The session's namespace is a real module's dict, registered as __main__, so stdlib code that
    # looks a class's module up in sys.modules finds the user's namespace, not the script's globals.
    main_module = types.ModuleType("__main__")
    namespace = main_module.__dict__
    namespace.update(make_globals("__main__", restricted_builtins))
    for name in codemode_runtime.PROGRAM_NAMES:
        namespace[name] = getattr(codemode_runtime, name)
    sys.modules["__main__"] = main_module

    apply_static_limits(memory_bytes)

    def arm(run: dict[str, Any]) -> None:
        new_execution()
        arm_execution_limits(int(run.get("memory_bytes", memory_bytes)), float(run.get("cpu_s", 30.0)))

    signal.signal(signal.SIGUSR1, on_deadline)
    try:
        repl.serve(compile_user, namespace, before_run=arm)
    except transport.TransportError:
        pass  # the host went away: nothing to report to
