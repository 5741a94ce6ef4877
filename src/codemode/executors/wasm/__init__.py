"""CPython compiled to WASI, run by wasmtime: the executor that is the security boundary.

Each interpreter ("instance") owns a wasmtime store, on the engine and module they all share, and runs on its
own thread. The guest runs ``codemode_runtime.repl.boot()``, a loop that asks the host for code through the
bridge, runs it, and asks again with the result, so a session's variables live as long as its instance. Two
WASI imports are shadowed to carry bridge frames (see ``codemode_runtime.protocol``); everything else is
stock WASI with nothing granted but three read-only mounts (``/runtime``, ``/stubs``, ``/skills``) and one
writable scratch directory. No host environment, no sockets, no processes.

Limits: an epoch deadline (wall time, so CPU too, watched by an alarm thread; the epoch also cancels), a
store memory limit, an output cap in the guest (with a second cap on the raw descriptors) and, when the
executor's limits set a budget, fuel (CPU counted in instructions, on an engine of its own).
A trap ends the instance; the session gets a fresh one from the pool on its next execution.

Modules, each importing only those listed before it:

* :mod:`.module`: the engine configuration and the compiled module, cached on disk;
* :mod:`.alarm`: the one thread that runs callbacks at deadlines;
* :mod:`.epoch`: interrupting one interpreter on the engine they all share;
* :mod:`.traps`: how an instance ended, as a :class:`~codemode.executors.base.RunError`;
* :mod:`.hostcalls`: the shadowed WASI calls and raw access to guest memory;
* :mod:`.loop`: how an instance thread reaches the event loop;
* :mod:`.instance`: one interpreter on its own thread, started from an ``InstanceConfig``;
* :mod:`.executor`: :class:`WasmExecutor`, sessions over a pool of instances.

The scratch quota helpers are in :mod:`codemode.executors.scratch`.
"""

from codemode.executors.wasm.executor import WasmExecutor
from codemode.executors.wasm.module import load_module, module_cache_path, wasm_path
from codemode.executors.wasm.traps import trap_error

__all__ = ["WasmExecutor", "load_module", "module_cache_path", "trap_error", "wasm_path"]
