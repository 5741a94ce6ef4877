"""One CPython-in-WASM interpreter ("instance") on its own thread, and the jobs it runs.

The thread owns a wasmtime store (on the shared engine, :func:`.module.shared_module`) and runs
``codemode_runtime.repl.boot()``, a loop that asks the host for code through the bridge, runs it, and asks
again with the result (:meth:`Instance.on_frame`, called from the shims in :mod:`.hostcalls`), so a
session's variables live as long as its instance.
Each job gets an epoch deadline (armed on the alarm thread, which also watches the scratch quota), the
output cap and, on a metered interpreter, fuel; a trap ends the instance.

An instance knows nothing of its executor: it is started with an :class:`InstanceConfig` and a
:class:`~.loop.LoopLink` to the event loop that waits for it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import wasmtime

from codemode.bridge import serve_call, serve_local_op, serve_op
from codemode.calls.gate import RunContext
from codemode.calls.types import Limits
from codemode.errors import BridgeError, SandboxError, ScratchQuotaExceeded
from codemode.executors.base import (
    LOST,
    NEAR_DEADLINE_S,
    WAIT_GRACE_S,
    RunError,
    RunResult,
    failed,
    result_from_guest,
    timed_out_waiting,
)
from codemode.executors.scratch import shrink, tree_usage
from codemode.executors.wasm import hostcalls
from codemode.executors.wasm.alarm import alarm
from codemode.executors.wasm.epoch import EpochGuard
from codemode.executors.wasm.loop import LoopLink, Signal
from codemode.executors.wasm.module import shared_module
from codemode.executors.wasm.traps import describe_trap, trap_error
from codemode.protocol import (
    CALL_PREFIX,
    HEADER,
    IDLE_FRAME_LIMIT,
    OP_CALL,
    OP_NEXT,
    FrameError,
    check_hello,
    decode_frame,
    encode_frame,
    error_reply,
    exit_frame,
    guest_frame_limit,
    is_service_op,
    request_frame_limit,
    run_frame,
)

log = logging.getLogger(__name__)

_THREAD_STACK = 16 * 1024 * 1024
"""Wasm runs on the instance thread's native stack; it must be far larger than ``module.MAX_WASM_STACK``."""
_BOOT_FUEL = 50_000_000_000
_BOOT_TIMEOUT_S = 120.0
_EXIT_GRACE_S = 0.5
_SCRATCH_POLL_S = 0.5
_BOOT_CODE = "import sys; sys.path.insert(0, '/runtime'); from codemode_runtime.repl import boot; boot()"

_stack_size_lock = threading.Lock()


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
    metered: bool = False
    """The interpreter runs on the engine that counts fuel (each job then carries its budget in its limits)."""


@dataclass
class Job:
    """One execution handed to an instance: its code and context, and the result once done."""

    code: str
    ctx: RunContext
    done: Signal
    result: RunResult | None = None
    started: float = field(default_factory=time.perf_counter)

    @property
    def limits(self) -> Limits:
        return self.ctx.limits


class Instance:
    """One CPython-in-WASM interpreter on its own thread."""

    def __init__(self, config: InstanceConfig, loop: LoopLink, scratch: Path) -> None:
        self.config = config
        self.loop = loop
        self.scratch = scratch
        self.id = uuid.uuid4().hex[:8]
        self.jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self.job: Job | None = None
        self.pending = b""
        self.memory: wasmtime.Memory | None = None
        self.breach: str | None = None
        """Why the host stopped the running job, when it was not the clock (the scratch quota)."""
        self.refused: str | None = None
        """The last frame of the running job refused for its size: if the guest gives up on it (a ``next``
        it could not send ends its loop), the job fails with this."""
        self.wake = threading.Event()
        """Set when the instance is interrupted, so a guest sleeping in ``poll_oneoff`` wakes up."""
        self.waiting = False
        """The guest is sleeping in ``poll_oneoff`` or waiting for a tool call's answer."""
        self.timed_out = False
        """The running job reached its deadline while waiting: its waits raise, its session is kept."""
        self.ready = anyio.Event()
        self.boot_error: str | None = None
        self.capture: tuple[int, int] | None = None
        """Guest addresses of the bytearrays that hold a running execution's stdout and stderr."""
        self.dead = False
        self.engine: wasmtime.Engine | None = None
        self.stopping = False
        """:meth:`stop` was called: an interrupt while idle is then the exit grace, not worth a warning."""
        self.interrupted = False
        """This interpreter was asked to stop (the clock, a cancel, a breach): its store's epoch callback ends
        the running wasm; cleared when the next job starts."""
        # One pending alarm of each kind per interpreter, not one per job: an execution takes a millisecond,
        # and every stale alarm would wake the alarm thread (and take the GIL) when it came due.
        self._deadline_alarm = math.inf
        """The earliest deadline alarm pending for this interpreter (inf: none)."""
        self._scratch_alarm = False
        """A scratch watch is pending: it runs every ``_SCRATCH_POLL_S`` while jobs run."""
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

    def submit(self, job: Job) -> None:
        self.jobs.put(job)

    def stop(self) -> None:
        """Ask the guest loop to exit; interrupt it if it is running code, or still running soon after.

        The grace alarm matters for a guest that is running with no job: one that forged a ``next`` frame
        (which ends its job early) and then ignored the ``exit`` frame it was handed.
        """
        self.stopping = True  # first: a _next_job after this never blocks (the None below ends one that does)
        self.jobs.put(None)
        with self._lock:
            if self.job is not None:
                self.job.ctx.cancelled = True
                self._interrupt()
        alarm.at(time.monotonic() + _EXIT_GRACE_S, self._interrupt_if_alive)

    def _interrupt_if_alive(self) -> None:
        with self._lock:
            if not self.dead:
                self._interrupt()

    def cancel(self, job: Job) -> None:
        """Stop ``job``; the instance dies with it (its state is unknowable mid-execution)."""
        job.ctx.cancelled = True
        with self._lock:
            if self.job is job:
                self._interrupt()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _interrupt(self) -> None:
        # The flag, then the epoch (every store on the shared engine checks its callback, only this one
        # stops), then the wake: a sleeper woken before would return into wasm with time still on the clock.
        self.interrupted = True
        if self.engine is not None:
            self.engine.increment_epoch()
        self.wake.set()

    # Runs on the instance thread.
    def _main(self) -> None:
        hostcalls.bind(self)
        store: wasmtime.Store | None = None
        trap: BaseException | None = None
        try:
            metered = self.config.metered
            self.engine, module = shared_module(fuel=metered)
            linker = hostcalls.new_linker(self.engine)
            store = wasmtime.Store(self.engine)
            guard = EpochGuard(store, lambda: self.interrupted)  # noqa: F841 (lives as long as the store)
            store.set_limits(memory_size=self.config.memory_bytes)
            if metered:
                store.set_fuel(_BOOT_FUEL)
            store.set_epoch_deadline(1)
            boot_deadline = time.monotonic() + _BOOT_TIMEOUT_S
            alarm.at(boot_deadline, lambda: self._boot_timeout())
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

    @property
    def frame_limit(self) -> int:
        """The largest frame the guest may send now: sized by the running job's limits."""
        job = self.job
        if job is None:
            return IDLE_FRAME_LIMIT
        return guest_frame_limit(job.limits.max_request_bytes, job.limits.output_chars)

    @property
    def read_limit(self) -> int:
        """The largest frame read whole at once: a ``call``'s request limit plus headroom. Between it and
        :attr:`frame_limit` a frame goes to :meth:`on_large_frame` (a result is read whole there; a call
        has only its JSON part read)."""
        job = self.job
        if job is None:
            return IDLE_FRAME_LIMIT
        return request_frame_limit(job.limits.max_request_bytes)

    def on_large_frame(self, caller: wasmtime.Caller, frame: hostcalls.GuestFrame) -> bytes:
        """A frame over :attr:`read_limit` (and within :attr:`frame_limit`), still in guest memory.

        One that begins as the runtime's calls do is a call over the request limit: only its JSON part is
        read (held to the read limit, nesting and size checked as ever) and the gate refuses it on its size
        (``too_large``, journaled like any refused call), without its arguments' strings ever being copied.
        Anything else (a result carrying long output, or a forged frame) is read whole as before: it is
        within :attr:`frame_limit`.
        """
        job = self.job
        limit = self.read_limit
        prefix = frame.read(0, 2 * HEADER.size + len(CALL_PREFIX))
        if job is not None and prefix.endswith(CALL_PREFIX) and len(prefix) == 2 * HEADER.size + len(CALL_PREFIX):
            (json_size,) = HEADER.unpack_from(prefix, HEADER.size)
            if json_size <= limit:
                try:
                    message = decode_frame(frame.read(0, 2 * HEADER.size + json_size), frame.size, head_only=True)
                except FrameError as exc:
                    return encode_frame(error_reply("bridge", f"malformed frame: {exc}"))
                if message["op"] == OP_CALL:
                    return self._serve_call(job, message, frame.size)
        return self.on_frame(caller, frame.read(0, frame.size))

    def _serve_call(self, job: Job, message: dict[str, Any], size: int) -> bytes:
        # A call answers by the deadline on its own (the gate replies ``timeout``): it is a wait.
        self.waiting = True
        try:
            if message["op"] != OP_CALL:
                local = serve_local_op(job.ctx, message)  # no hop to the event loop for a fetch
                return local if local is not None else self.loop.run(serve_op(job.ctx, message))
            return self.loop.run(serve_call(job.ctx, message, size))
        except BaseException as exc:  # the event loop is gone (shutdown) or refused the call
            return encode_frame(error_reply("cancelled", f"the host stopped serving calls ({exc!r})"))
        finally:
            with self._lock:
                # A call the gate ended at the deadline may return a moment before the alarm fires: it was
                # still a wait, so the grace starts here, not a trap when the alarm finds it running.
                if self.job is job and job.ctx.clock.remaining() <= NEAR_DEADLINE_S:
                    self._wait_timed_out(job)
                self.waiting = False

    def on_refused(self, size: int, limit: int) -> bytes:
        """The reply to a frame refused unread (on the instance thread): a ``too_large`` error."""
        message = f"a frame of {size:,} bytes from the sandbox is over the {limit:,}-byte limit"
        self.refused = message
        return encode_frame(error_reply("too_large", message))

    def on_frame(self, caller: wasmtime.Caller, raw: bytes) -> bytes:
        """Handle one frame from the guest (on the instance thread) and return the reply frame."""
        self.refused = None
        try:
            message = decode_frame(raw, self.frame_limit)
        except FrameError as exc:
            return encode_frame(error_reply("bridge", f"malformed frame: {exc}"))
        op = message["op"]
        if op == OP_CALL or is_service_op(op):
            job = self.job
            if job is None:
                return encode_frame(error_reply("bridge", "tool calls are only allowed while code runs"))
            return self._serve_call(job, message, len(raw))
        if op == OP_NEXT:
            if self.job is not None:
                self._complete(self.job, message.get("result"))
            elif message.get("ready") and not self.ready.is_set():  # the boot's hello, once
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
        # Stopping, nothing more is queued: a guest that ignored its exit frame and asks again (a forged
        # ``next``) would block this thread in the queue for good, out of reach of any interrupt.
        job = None if self.stopping else self.jobs.get()
        if job is None:
            return encode_frame(exit_frame())
        with self._lock:
            self.job = job
            self.breach = None
            self.timed_out = False
            self.interrupted = False
            self.wake.clear()
            # Store methods only need a context; the caller's is the one valid inside a host call.
            if self.config.metered:
                wasmtime.Store.set_fuel(caller, job.limits.fuel)  # type: ignore[arg-type]
            wasmtime.Store.set_epoch_deadline(caller, 1)  # type: ignore[arg-type]
            job.started = time.perf_counter()
            if job.ctx.cancelled:  # cancelled before this thread took it: cancel() found no job to interrupt
                self._interrupt()
            self._arm_deadline(job.ctx.clock.deadline)
            if not self._scratch_alarm:  # a pending one comes within _SCRATCH_POLL_S
                self._scratch_alarm = True
                self._watch_scratch_soon()
        ctx = job.ctx
        frame = run_frame(job.code, job.limits.output_chars, stubs=ctx.generation, skills=ctx.skills_revision)
        return encode_frame(frame)

    def rearm(self, job: Job) -> None:
        """The job's clock changed (paused or resumed): arm the alarm for its new deadline."""
        with self._lock:
            if self.job is job:
                self._arm_deadline(job.ctx.clock.deadline)

    def _arm_deadline(self, when: float) -> None:
        # Under the lock. An alarm pending before ``when`` is enough: _deadline re-arms for the running job.
        if when < self._deadline_alarm:
            self._deadline_alarm = when
            alarm.at(when, self._deadline)

    def _watch_scratch(self) -> None:
        # Runs on the alarm thread while jobs run: WASI has no disk quota of its own.
        with self._lock:
            job = self.job
            if job is None:
                self._scratch_alarm = False  # the next job arms it again
                return
        limits = job.limits
        size, count = tree_usage(self.scratch, limits.scratch_bytes, limits.scratch_files)
        if size > limits.scratch_bytes or count > limits.scratch_files:
            with self._lock:
                if self.job is job:
                    self.breach = (
                        f"/scratch went over its quota ({limits.scratch_bytes // (1 << 20):,} MB, "
                        f"{limits.scratch_files:,} files)"
                    )
                    self._interrupt()
        self._watch_scratch_soon()

    def _watch_scratch_soon(self) -> None:
        alarm.at(time.monotonic() + _SCRATCH_POLL_S, self._watch_scratch)

    def _deadline(self) -> None:
        # The running job's deadline, or an earlier one's, or its clock was paused (a person was asked
        # something) and moved on: check, re-arm for the running job.
        with self._lock:
            self._deadline_alarm = math.inf
            job = self.job
            if job is None or self.timed_out:
                return  # no job (the next arms its own), or in its grace: _grace_over ends it
            clock = job.ctx.clock
            if clock.expired():
                if self.waiting:
                    self._wait_timed_out(job)
                else:
                    self._interrupt()
                return
            self._arm_deadline(clock.deadline)

    def _wait_timed_out(self, job: Job) -> None:
        # Waiting at the deadline (asleep, or in a call the gate answers ``timeout``): the wait raises in the
        # program, which has WAIT_GRACE_S to end with its session kept; then it is stopped. Under the lock.
        if not self.timed_out:
            self.timed_out = True
            self.wake.set()
            alarm.at(time.monotonic() + WAIT_GRACE_S, lambda: self._grace_over(job))

    def _grace_over(self, job: Job) -> None:
        with self._lock:
            if self.job is job:
                self._interrupt()

    def _complete(self, job: Job, payload: Any) -> None:
        with self._lock:
            self.job = None
            timed_out = self.timed_out
        job.result = result_from_guest(payload, job.ctx, time.perf_counter() - job.started)
        if timed_out:
            job.result = timed_out_waiting(job.result, job.limits)
        self.loop.notify(job.done.set)

    def _loss(self, trap: BaseException | None, job: Job, store: wasmtime.Store | None) -> RunError:
        if self.breach is not None:
            removed = shrink(self.scratch, job.limits.scratch_bytes // 2, job.limits.scratch_files // 2)
            note = f" Removed the largest files to make room: {', '.join(removed[:10])}" if removed else ""
            return RunError.of(ScratchQuotaExceeded, f"{self.breach}; the program was stopped.{note}. {LOST}")
        if self.refused is not None and (trap is None or isinstance(trap, wasmtime.ExitTrap)):
            return RunError.of(BridgeError, f"the sandbox ended after {self.refused}. {LOST}")
        used = None
        if self.memory is not None and store is not None:
            with contextlib.suppress(Exception):
                used = self.memory.data_len(store)
        memory_limit = self.config.memory_bytes
        return trap_error(trap, job.limits, cancelled=job.ctx.cancelled, memory_used=used, memory_limit=memory_limit)

    def _captured(self, store: wasmtime.Store | None, cap_chars: int) -> tuple[str, str]:
        """What the stopped execution had printed, read from the guest's capture buffers ("" if unreadable)."""
        if self.capture is None or self.memory is None or store is None:
            return "", ""
        return hostcalls.read_capture(self.memory, store, self.capture, cap_chars)

    def _finish(self, trap: BaseException | None, store: wasmtime.Store | None) -> None:
        with self._lock:
            self.dead = True
            job, self.job = self.job, None
        if job is not None:
            stdout, stderr = self._captured(store, job.limits.output_chars)
            try:
                error = self._loss(trap, job, store)
            except Exception as exc:  # the run is awaited: it ends whatever its cleanup met
                error = RunError.of(SandboxError, f"the sandbox ended; its cleanup failed ({exc!r}). {LOST}")
            job.result = failed(
                error, job.ctx, duration_s=time.perf_counter() - job.started, stdout=stdout, stderr=stderr
            )
            self.loop.notify(job.done.set)
        if not self.ready.is_set():
            self.boot_error = self.boot_error or describe_trap(trap)
            self.loop.notify(self.ready.set)
        elif job is None and trap is not None and not isinstance(trap, wasmtime.ExitTrap) and not self.stopping:
            log.warning("wasm instance %s ended while idle: %s", self.id, describe_trap(trap))
        if store is not None:
            with contextlib.suppress(BaseException):
                store.close()
        self.engine = None
        hostcalls.bind(None)
