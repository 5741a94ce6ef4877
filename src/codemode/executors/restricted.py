"""RestrictedPython in a resource-limited child process: the executor for hosts where WASM is unwanted.

**This is not the security boundary. WASM is.** The ``wasm`` executor runs programs in CPython compiled to
WebAssembly, with no host filesystem, environment, sockets or processes. This executor is weaker: each
session is an ordinary CPython child process running as the same user, with the same view of the
filesystem as the host, minus what the guards block. What stands between a program and the host is

* RestrictedPython's compile-time checks (no ``_``-prefixed names or attributes, no ``exec``/``eval``)
  and run-time guards (attribute, item, write and import hooks), extended in
  :mod:`codemode.executors.restricted_child` (a whitelist ``__import__``, trimmed stdlib modules, no
  frames, code objects or metaclasses handed out, restricted compilation of skills);
* OS resource limits set by the child on itself before any user code runs (``RLIMIT_AS``,
  ``RLIMIT_CPU``, ``RLIMIT_NOFILE``, ``RLIMIT_FSIZE``, ``RLIMIT_CORE``, ``RLIMIT_NPROC``);
* a minimal environment (no host variables, so no tokens) and the session's scratch directory as cwd;
* the host's wall clock: at the deadline the child is signalled (a sleep raises ``TimeoutError``, a
  computation ``ExecutionStopped``), and killed (SIGKILL) unless it was waiting and ends within a grace.

A bug in RestrictedPython or in the guards is a full escape with the host user's rights. Use it where
that risk is acceptable (trusted models, throwaway containers), and prefer ``wasm`` everywhere else.

Protocol: the same frames as under WASM (see ``codemode_runtime.protocol``), carried over the child's
stdin/stdout. A ``run`` frame also carries ``cpu_s`` and ``memory_bytes`` for the child's limits.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from subprocess import PIPE
from typing import Any

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from codemode import paths
from codemode.bridge import serve_call, serve_op
from codemode.calls.gate import RunContext
from codemode.calls.types import Limits
from codemode.errors import (
    BridgeError,
    SandboxCrashed,
    SandboxError,
    SandboxMemoryError,
    SandboxTimeout,
    SandboxUnavailable,
)
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
from codemode.executors.pool import PooledExecutor
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
    guest_frame_limit,
    is_service_op,
    request_frame_limit,
    run_frame,
)

log = logging.getLogger(__name__)

CHILD_SCRIPT = Path(__file__).with_name("restricted_child") / "__main__.py"
"""Run by path: ``-m codemode.executors.restricted_child`` would import the whole ``codemode`` package."""
_BOOT_TIMEOUT_S = 60.0
_STDERR_TAIL = 16 * 1024
_SKIP_CHUNK = 1024 * 1024


class _ChildDied(Exception):
    """The child's channel closed: it exited or was killed."""


class _TimedOut(Exception):
    """The execution's time ran out while the child was running code (or past its grace after a wait)."""


@dataclass(frozen=True)
class _Frame:
    """One frame from the child: its message, its size, and whether it was read whole."""

    message: dict[str, Any] | None
    """None when the frame was refused unread (``refused`` says why)."""
    size: int
    whole: bool = True
    """False for a call over the request limit: only its JSON part was read (its large strings are None)."""
    refused: str | None = None


class _Child:
    """One child interpreter: its process, its frame channel and the tail of its stderr."""

    def __init__(self, process: anyio.abc.Process, scratch: Path) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        self.scratch = scratch
        self.stdin = process.stdin
        self.stdout = BufferedByteReceiveStream(process.stdout)
        self.lock = anyio.Lock()
        self.dead = False
        self.killed = False
        self.stderr_tail: deque[bytes] = deque()
        self._stderr_size = 0
        self.refused: str | None = None
        """The last frame of the running execution refused for its size (said if the child then gives up)."""

    @property
    def pid(self) -> int:
        return self.process.pid

    async def drain_stderr(self) -> None:
        """Keep the last few KB of stderr (crash diagnostics) so the child never blocks writing it."""
        stream = self.process.stderr
        if stream is None:
            return
        with contextlib.suppress(anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            async for chunk in stream:
                self.stderr_tail.append(chunk)
                self._stderr_size += len(chunk)
                while self._stderr_size > _STDERR_TAIL and len(self.stderr_tail) > 1:
                    self._stderr_size -= len(self.stderr_tail.popleft())

    def stderr_text(self) -> str:
        return b"".join(self.stderr_tail).decode("utf-8", "replace")[-_STDERR_TAIL:]

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_raw(encode_frame(message))

    async def send_raw(self, frame: bytes) -> None:
        try:
            await self.stdin.send(frame)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise _ChildDied(str(exc)) from None

    async def receive(self, limits: Limits | None = None) -> _Frame:
        """The next frame from the child (raises :class:`_ChildDied` at EOF, ``FrameError`` on garbage).

        The same limits as under WASM, checked before the bytes are read: a frame over the running
        execution's frame limit (none running: the idle limit) is skipped unread and refused; a call over
        its request limit (plus headroom) has only its JSON part read, the rest skipped, never kept.
        """
        limit = IDLE_FRAME_LIMIT if limits is None else guest_frame_limit(limits.max_request_bytes, limits.output_chars)
        read_limit = IDLE_FRAME_LIMIT if limits is None else request_frame_limit(limits.max_request_bytes)
        try:
            header = await self.stdout.receive_exactly(HEADER.size)
            (size,) = HEADER.unpack(header)
            if size > limit:
                await self._skip(size)
                refused = f"a frame of {size:,} bytes from the sandbox is over the {limit:,}-byte limit"
                return _Frame(None, HEADER.size + size, whole=False, refused=refused)
            body = b""
            if size > read_limit and size >= HEADER.size + len(CALL_PREFIX):
                body = await self.stdout.receive_exactly(HEADER.size + len(CALL_PREFIX))
                (json_size,) = HEADER.unpack_from(body)
                if body.endswith(CALL_PREFIX) and len(CALL_PREFIX) <= json_size <= min(read_limit, size - HEADER.size):
                    head = header + body + await self.stdout.receive_exactly(json_size - len(CALL_PREFIX))
                    await self._skip(size - HEADER.size - json_size)
                    message = decode_frame(head, size, head_only=True)
                    return _Frame(message, HEADER.size + size, whole=False)
            body += await self.stdout.receive_exactly(size - len(body))
        except (anyio.IncompleteRead, anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            raise _ChildDied("the channel closed") from None
        return _Frame(decode_frame(header + body, limit), HEADER.size + size)

    async def _skip(self, count: int) -> None:
        # Read past bytes without keeping them, a megabyte at a time.
        while count > 0:
            count -= len(await self.stdout.receive(min(count, _SKIP_CHUNK)))

    def kill(self) -> None:
        """SIGKILL the child now (synchronous, so it works inside a cancelled scope)."""
        self.dead = True
        if self.process.returncode is None:
            self.killed = True
            with contextlib.suppress(ProcessLookupError, OSError):
                self.process.kill()

    async def reap(self, grace_s: float = 5.0) -> int | None:
        """Wait for the process to end and close its pipes; kill it if it does not end in time."""
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(grace_s):
                await self.process.wait()
            if self.process.returncode is None:
                self.kill()
                with anyio.move_on_after(grace_s):
                    await self.process.wait()
            with contextlib.suppress(Exception):
                await self.process.aclose()
        return self.process.returncode


def _crash_error(child: _Child, returncode: int | None, limits: Limits) -> RunError:
    stderr = child.stderr_text()
    memory_mb = limits.memory_bytes // (1 << 20)
    if "MemoryError" in stderr or "Cannot allocate memory" in stderr or "out of memory" in stderr.lower():
        return RunError.of(
            SandboxMemoryError,
            f"the interpreter ran out of memory (the {memory_mb} MB memory limit) and died. {LOST}",
        )
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        if -returncode == signal.SIGXCPU:
            return RunError.of(
                SandboxCrashed,
                f"the interpreter was killed by {name}: it used its CPU-time limit ({limits.wall_s:g} s). {LOST}",
            )
        return RunError.of(SandboxCrashed, f"the interpreter was killed by {name}. {LOST}")
    detail = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    return RunError.of(
        SandboxCrashed,
        f"the interpreter exited (status {returncode}){': ' + detail if detail else ''}. {LOST}",
    )


def _loop_deadline(deadline: float) -> float:
    # The clock uses time.monotonic(); anyio's deadlines use the event loop's clock (the same on asyncio,
    # but not promised): convert through "seconds from now".
    return anyio.current_time() + (deadline - time.monotonic())


class RestrictedExecutor(PooledExecutor[_Child]):
    """Sessions of RestrictedPython, one child process each, with a pool of pre-started children."""

    kind = "restricted"

    async def __aenter__(self) -> RestrictedExecutor:
        await self._start_pool()
        return self

    # -- children ------------------------------------------------------------------------------

    def child_env(self) -> dict[str, str]:
        """The child's whole environment: nothing from the host's (no tokens, no proxies, no paths)."""
        return {
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "CODEMODE_STUBS_DIR": str(self.stubs_dir),
        }

    def child_command(self) -> list[str]:
        """``python -I restricted_child/__main__.py RUNTIME STUBS SKILLS MEMORY_BYTES``."""
        return [
            sys.executable,
            "-I",
            str(CHILD_SCRIPT),
            str(paths.runtime_dir()),
            str(self.stubs_dir),
            str(self.skills_dir),
            str(self.limits.memory_bytes),
        ]

    async def _boot(self) -> _Child:
        scratch = self._new_scratch()
        try:
            # Shielded: a start cancelled halfway would leave a process nobody owns.
            with anyio.CancelScope(shield=True):
                process = await anyio.open_process(
                    self.child_command(),
                    stdin=PIPE,
                    stdout=PIPE,
                    stderr=PIPE,
                    cwd=scratch,
                    env=self.child_env(),
                    start_new_session=True,  # a Ctrl-C in the host's terminal is the host's to handle
                )
        except OSError as exc:
            shutil.rmtree(scratch, ignore_errors=True)
            raise SandboxError(f"could not start the restricted interpreter: {exc}") from exc
        child = _Child(process, scratch)
        self._all.add(child)
        if self._task_group is not None:
            self._task_group.start_soon(child.drain_stderr)
        try:
            with anyio.fail_after(_BOOT_TIMEOUT_S):
                hello = (await child.receive()).message
            if hello is None:
                raise FrameError("the interpreter's first frame is over the size limit")
            check_hello(hello)
        except BaseException as exc:
            child.kill()
            returncode = await child.reap()
            self._all.discard(child)
            shutil.rmtree(scratch, ignore_errors=True)
            if not isinstance(exc, Exception):
                raise
            detail = child.stderr_text().strip()[-2000:] or f"{type(exc).__name__}: {exc}"
            raise SandboxError(
                f"the restricted interpreter failed to start (exit status {returncode}): {detail}"
            ) from None
        return child

    async def _dispose(self, child: _Child) -> None:
        child.kill()
        await child.reap()
        self._all.discard(child)

    def pid(self, session: str) -> int | None:
        """The process id of ``session``'s child, if it has a live one (diagnostics and tests)."""
        child = self._sessions.get(session)
        return child.pid if child is not None and not child.dead else None

    # -- executions ----------------------------------------------------------------------------

    async def _run(self, code: str, ctx: RunContext) -> RunResult:
        """Run ``code`` for ``ctx``; errors, timeouts and crashes come back as a failed :class:`RunResult`."""
        if self._closed:
            raise SandboxError("the executor is closed")
        session = ctx.session
        started = time.perf_counter()
        while True:
            child = self._sessions.get(session)
            if child is not None and not child.dead and child.process.returncode is not None:
                # Died while idle (killed from outside): like a lost WASM instance, start afresh.
                await self._kill(child, session)
            try:
                with ctx.clock.paused():  # a child's start is not the program's time (as for a WASM boot)
                    child = await self._worker_for(session)
            except SandboxError as exc:
                return failed(RunError.of(SandboxUnavailable, str(exc)), ctx, lost=False)
            async with child.lock:
                if child.dead:  # lost while this run waited for the lock: start over on a fresh child
                    continue
                result = await self._run_on(child, code, ctx)
                break
        result.duration_s = time.perf_counter() - started
        return result

    async def _run_on(self, child: _Child, code: str, ctx: RunContext) -> RunResult:
        session, limits = ctx.session, ctx.limits
        started = time.perf_counter()
        try:
            result = await self._exchange(child, code, ctx, started)
        except _ChildDied:
            returncode = await self._bury(child, session)
            error = _crash_error(child, returncode, limits)
            if child.refused is not None and not child.killed:
                # The child's loop ends when its result frame is refused: say why, not just that it exited.
                error = RunError.of(BridgeError, f"the sandbox ended after {child.refused}. {LOST}")
            return failed(error, ctx, duration_s=time.perf_counter() - started)
        except _TimedOut:
            return await self._stop(child, ctx, started)
        except BaseException:
            # Cancelled (or a host bug): the child may be mid-execution, its state is unknowable.
            ctx.cancelled = True
            await self._kill(child, session)
            raise
        if result.error is not None and result.error.type == "MemoryError":
            # The memory the program holds stays in its namespace: recycle the interpreter rather than
            # leave a session that fails on every allocation.
            await self._kill(child, session)
            memory_mb = limits.memory_bytes // (1 << 20)
            result.error = RunError.of(
                SandboxMemoryError,
                f"the program hit the {memory_mb} MB memory limit (MemoryError{': ' if result.error.message else ''}"
                f"{result.error.message}). The session's interpreter was restarted; its variables are gone.",
                result.error.traceback,
            )
            result.instance_lost = True
        return result

    async def _exchange(self, child: _Child, code: str, ctx: RunContext, started: float) -> RunResult:
        """Serve the child's frames until its result; :class:`_TimedOut` when its time is up.

        Its time is the clock's deadline while it computes (read afresh for each frame: a person's answer
        pauses the clock inside a call). A call is not cut by it: the gate answers ``timeout`` at the
        deadline, the program sees ``ToolTimeout`` and has :data:`WAIT_GRACE_S` more to end.
        """
        limits, clock = ctx.limits, ctx.clock
        await child.send(
            run_frame(
                code, limits.output_chars, stubs=ctx.generation, skills=ctx.skills_revision,
                cpu_s=math.ceil(limits.wall_s), memory_bytes=limits.memory_bytes,
            )
        )
        child.refused = None
        grace_until: float | None = None  # set once a call ended at the deadline: when the program must end by
        while True:
            until = clock.deadline if grace_until is None else grace_until
            with anyio.CancelScope(deadline=_loop_deadline(until)) as scope:
                frame = await self._receive(child, limits)
            if scope.cancelled_caught:
                raise _TimedOut
            message = frame.message
            if message is None:
                # Refused unread, as under WASM: the child raises it (a call) or its loop ends (a result).
                child.refused = frame.refused
                await child.send(error_reply("too_large", str(frame.refused)))
                continue
            op = message.get("op")
            if op == OP_CALL:
                # A call over the request limit (read in part) is refused by the gate on its size, journaled.
                reply = await serve_call(ctx, message, frame.size)
                if grace_until is None and clock.remaining() <= NEAR_DEADLINE_S:
                    # Ended by the deadline (the gate's timer may fire a moment before it): a wait.
                    grace_until = max(time.monotonic(), clock.deadline) + WAIT_GRACE_S
                await child.send_raw(reply)
            elif isinstance(op, str) and is_service_op(op):
                await child.send_raw(await serve_op(ctx, message))
            elif op == OP_NEXT:
                result = result_from_guest(message.get("result"), ctx, time.perf_counter() - started)
                return result if grace_until is None else timed_out_waiting(result, limits)
            else:
                child.kill()
                raise _ChildDied(f"unknown op {op!r}")

    async def _receive(self, child: _Child, limits: Limits) -> _Frame:
        try:
            return await child.receive(limits)
        except FrameError as exc:
            # A child that speaks garbage cannot be trusted with the next execution either.
            child.kill()
            raise _ChildDied(f"malformed frame: {exc}") from None

    async def _stop(self, child: _Child, ctx: RunContext, started: float) -> RunResult:
        """The program's time is up: SIGUSR1 raises in it where it is (:mod:`.restricted_child.waits`).

        One asleep gets ``TimeoutError`` and keeps its session if it ends within :data:`WAIT_GRACE_S`;
        one computing gets ``ExecutionStopped`` and is killed after reporting its output, as is one that
        does not end in time.
        """
        session, limits = ctx.session, ctx.limits
        outcome = await self._last_words(child, ctx)
        if isinstance(outcome, RunResult) and not (outcome.error and outcome.error.type.endswith("ExecutionStopped")):
            return timed_out_waiting(outcome, limits)
        ctx.cancelled = True
        stdout, stderr = (outcome.stdout, outcome.stderr) if isinstance(outcome, RunResult) else outcome
        await self._kill(child, session)
        message = f"the program ran past the {limits.wall_s:g} s wall-time limit. {LOST}"
        timeout = RunError.of(SandboxTimeout, message)
        return failed(timeout, ctx, duration_s=time.perf_counter() - started, stdout=stdout, stderr=stderr)

    async def _last_words(self, child: _Child, ctx: RunContext) -> RunResult | tuple[str, str]:
        """Signal a timed-out program (SIGUSR1) and read its result, or ("", "") if it does not answer.

        The child raises in the program, and its session loop reports the result; calls it makes meanwhile
        are refused (the clock has run out).
        """
        with contextlib.suppress(ProcessLookupError, OSError):
            os.kill(child.pid, signal.SIGUSR1)
        started = time.perf_counter()
        with anyio.move_on_after(WAIT_GRACE_S), contextlib.suppress(_ChildDied, FrameError, anyio.BrokenResourceError):
            while True:
                frame = await child.receive(ctx.limits)
                message = frame.message or {}
                op = message.get("op")
                if op == OP_CALL:
                    await child.send_raw(await serve_call(ctx, message, frame.size))
                elif isinstance(op, str) and is_service_op(op):
                    await child.send_raw(await serve_op(ctx, message))
                elif message.get("op") == OP_NEXT:
                    return result_from_guest(message.get("result"), ctx, time.perf_counter() - started)
                else:
                    break
        return "", ""

    async def _kill(self, child: _Child, session: str) -> int | None:
        child.kill()
        self._lose(session, child)
        return await child.reap()

    async def _bury(self, child: _Child, session: str) -> int | None:
        """A child whose channel closed: let it finish dying before any kill.

        Signalling a process that has already exited makes ``Popen.send_signal`` reap it first, and its exit
        status (which says *how* it died, e.g. SIGSEGV) would be lost to the event loop's child watcher.
        """
        child.dead = True
        self._lose(session, child)
        return await child.reap(grace_s=2.0)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Stop the pool first, so no child is being started while the others are killed.
        await self._stop_pool()
        children = list(self._all)
        for child in children:
            child.kill()
        with anyio.CancelScope(shield=True):
            for child in children:
                await child.reap()
        self._forget_all()
