"""The WASM executor: sessions of CPython-in-WASM over a pool of pre-booted instances."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import Unpack

import anyio
import anyio.to_thread

from codemode import paths
from codemode.calls.gate import RunContext
from codemode.errors import SandboxError, SandboxUnavailable, ScratchQuotaExceeded
from codemode.executors.base import ExecutorOptions, RunError, RunResult, failed
from codemode.executors.pool import PooledExecutor
from codemode.executors.scratch import shrink, tree_usage
from codemode.executors.wasm.instance import Instance, InstanceConfig, Job
from codemode.executors.wasm.loop import LoopLink, Signal
from codemode.executors.wasm.module import compile_command, module_cache_path


class WasmExecutor(PooledExecutor[Instance]):
    """Sessions of CPython-in-WASM with a pool of pre-booted interpreters."""

    kind = "wasm"
    scratch_mount = "/scratch"

    def __init__(self, *, recursion_limit: int = 600, **options: Unpack[ExecutorOptions]) -> None:
        super().__init__(**options)
        self.recursion_limit = recursion_limit
        self.loop = LoopLink()
        """How instance threads reach the event loop (the running one once entered)."""
        self._empty_scratch: dict[Path, int] = {}
        self._module_ready = anyio.Event()
        self._compiling = False
        self._compile_error: str | None = None
        self._metered = self.limits.fuel is not None
        """Interpreters count fuel (the executor's limits set a budget): see :attr:`Limits.fuel`."""
        self._lost: weakref.WeakSet[Instance] = weakref.WeakSet()
        """Interpreters lost to a cancel or a trap, until their thread ends (its target holds them): aclose
        waits for these too."""

    async def __aenter__(self) -> WasmExecutor:
        """Start the pool at once; with no compiled python.wasm cached, compile it in the background.

        A first ``serve`` then answers its client's handshake without waiting the several seconds of a
        compile; interpreters (the pool's and the first execution's) start once it is done.
        """
        self.loop = LoopLink.current()
        await self._start_pool()
        assert self._task_group is not None
        if module_cache_path(fuel=self._metered).exists():
            self._module_ready.set()
        else:
            self._compiling = True
            self._task_group.start_soon(self._compile)
        return self

    async def _compile(self) -> None:
        """Compile python.wasm in a process of its own session: a client that gives up on a first ``serve``
        (the SDK's stdio client kills the server's whole process group two seconds after it closes stdin)
        leaves it running, and the next start finds the module cached (written atomically, whole or not at
        all). A shutdown stops waiting for it, not it."""
        cache = module_cache_path(fuel=self._metered)
        if self.progress:
            self.progress(f"compiling python.wasm for this machine in the background (first run only) → {cache}")
        started = time.perf_counter()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        try:
            with tempfile.TemporaryFile() as errors:
                process = await anyio.open_process(
                    compile_command(fuel=self._metered), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=errors, env=env, start_new_session=True,
                )  # fmt: skip
                returncode = await process.wait()
                if returncode != 0 or not cache.exists():
                    errors.seek(0)
                    tail = errors.read()[-2000:].decode("utf-8", "replace").strip().splitlines()[-1:]
                    raise SandboxError(f"exit status {returncode}{': ' + tail[0] if tail else ''}")
            if self.progress:
                self.progress(f"compiled python.wasm in {time.perf_counter() - started:.1f} s (cached for next time)")
        except Exception as exc:  # reported by every boot, so each execution says why it cannot run
            self._compile_error = f"compiling python.wasm failed: {type(exc).__name__}: {exc}"
        finally:
            self._compiling = False
            self._module_ready.set()

    @property
    def warming(self) -> str | None:
        return "compiling python.wasm for this machine (first run only)" if self._compiling else None

    async def wait_ready(self) -> None:
        await self._module_ready.wait()

    async def _boot(self) -> Instance:
        await self._module_ready.wait()
        if self._compile_error is not None:
            raise SandboxError(self._compile_error)
        scratch = self._new_scratch()
        instance = Instance(self._instance_config(), self.loop, scratch)
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
            metered=self._metered,
        )  # fmt: skip

    async def _dispose(self, instance: Instance) -> None:
        instance.stop()
        await anyio.to_thread.run_sync(instance.join, 5.0)
        self._all.discard(instance)

    async def _run(self, code: str, ctx: RunContext) -> RunResult:
        """Run ``code`` for ``ctx``; errors, timeouts and traps come back as a failed :class:`RunResult`."""
        if self._closed:
            raise SandboxError("the executor is closed")
        if ctx.limits.fuel is not None and not self._metered:
            raise ValueError(
                "a fuel budget for one run needs an executor that counts fuel: set Limits.fuel on the executor"
            )
        if ctx.limits.fuel is None and self._metered:  # the executor's budget, resolved once for the job
            ctx.limits = dataclasses.replace(ctx.limits, fuel=self.limits.fuel)
        started = time.perf_counter()
        try:
            # Waiting for an interpreter to boot is not the program's time: under a burst of new sessions
            # it can outlast the wall-time limit, which would stop the program the moment it starts.
            with ctx.clock.paused():
                instance = await self._worker_for(ctx.session)
        except SandboxError as exc:
            return failed(RunError.of(SandboxUnavailable, str(exc)), ctx, lost=False)
        job = Job(code, ctx, Signal(self.loop))
        ctx.clock.on_change(lambda: instance.rearm(job))
        instance.submit(job)
        try:
            await job.done.wait()
        except BaseException:
            instance.cancel(job)
            # Stopped too: a job that completed as the cancel came left the interpreter waiting for its next
            # job, where no interrupt reaches it; lost to its session, it would stay until the executor closes.
            instance.stop()
            self._lose(ctx.session, instance)
            raise
        result = job.result
        assert result is not None
        if result.instance_lost:
            self._lose(ctx.session, instance)
        else:
            result = _check_scratch(result, instance.scratch, ctx, self._empty_scratch)
        result.duration_s = time.perf_counter() - started
        return result

    def _lose(self, session: str, worker: Instance) -> None:
        super()._lose(session, worker)
        self._lost.add(worker)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        instances = [*self._all, *self._lost]
        for instance in instances:
            instance.stop()
        for instance in instances:
            await anyio.to_thread.run_sync(instance.join, 10.0)
        self._forget_all()
        await self._stop_pool()


def _check_scratch(result: RunResult, scratch: Path, ctx: RunContext, empty: dict[Path, int]) -> RunResult:
    """The quota, measured once more when the program ends: a short program outruns the poller.

    ``empty`` remembers, per scratch dir, the mtime at which it was last seen empty: a directory gains an
    entry only by changing its mtime, so the usual case (nothing written) costs one ``stat``.
    """
    try:
        stamp = os.stat(scratch).st_mtime_ns
    except OSError:
        return result
    if empty.get(scratch) == stamp:
        return result
    with contextlib.suppress(OSError), os.scandir(scratch) as entries:
        if next(entries, None) is None:
            if len(empty) > 4096:  # sessions come and go: forget old directories now and then
                empty.clear()
            empty[scratch] = stamp
            return result
    empty.pop(scratch, None)
    limits = ctx.limits
    size, count = tree_usage(scratch, limits.scratch_bytes, limits.scratch_files)
    if size <= limits.scratch_bytes and count <= limits.scratch_files:
        return result
    removed = shrink(scratch, limits.scratch_bytes // 2, limits.scratch_files // 2)
    note = f" Removed the largest files to make room: {', '.join(removed[:10])}." if removed else ""
    message = (
        f"/scratch went over its quota ({limits.scratch_bytes // (1 << 20):,} MB, {limits.scratch_files:,} files)."
        f"{note}"
    )
    return dataclasses.replace(result, ok=False, error=RunError.of(ScratchQuotaExceeded, message))
