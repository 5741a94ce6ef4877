"""How an interpreter ended, in words and as a :class:`RunError` of a closed kind.

The one seam where wasmtime's traps (``Trap.trap_code``, ``ExitTrap``) become codemode errors.
"""

from __future__ import annotations

import wasmtime

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
)
from codemode.executors.base import LOST, RunError
from codemode.executors.wasm.epoch import is_interrupt

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
}  # fmt: skip
"""Every trap code wasmtime can report, and what it means for an execution (a test checks it is complete)."""


_C_STACK = (
    "most often recursion through C code (a __getattr__, a sort key, eval) too deep for the interpreter's C stack"
)


def describe_trap(trap: BaseException | None) -> str:
    """A short description of how the interpreter ended (``trap`` is None if it returned)."""
    if trap is None:
        return "the interpreter exited"
    if isinstance(trap, wasmtime.ExitTrap):
        return f"the interpreter exited with status {trap.code}"
    if is_interrupt(trap):
        return "wasm trap (interrupt)"
    code = getattr(trap, "trap_code", None)
    if code is not None:
        if code == wasmtime.TrapCode.UNREACHABLE:
            return "wasm trap (abort() or a fatal error)"
        return f"wasm trap ({code.name.lower().replace('_', ' ')})"
    first = str(trap).strip().splitlines()[0] if str(trap).strip() else ""
    return f"{type(trap).__name__}: {first}"


def trap_error(
    trap: BaseException | None, limits: Limits, *, cancelled: bool, memory_used: int | None, memory_limit: int
) -> RunError:
    """Why an instance ended mid-execution, as a :class:`RunError` of a closed kind."""
    if cancelled:
        return RunError.of(ExecutionCancelled, f"the execution was cancelled. {LOST}")
    code = wasmtime.TrapCode.INTERRUPT if is_interrupt(trap) else getattr(trap, "trap_code", None)
    error = _TRAP_ERRORS.get(code, SandboxCrashed) if code is not None else None
    if error is SandboxTimeout:
        return RunError.of(SandboxTimeout, f"the program ran past the {limits.wall_s:g} s wall-time limit. {LOST}")
    if error is OutOfFuel:
        budget = f" of {limits.fuel:,} fuel units" if limits.fuel is not None else ""
        return RunError.of(OutOfFuel, f"the program used its CPU budget{budget}. {LOST}")
    if error is SandboxStackOverflow:
        return RunError.of(SandboxStackOverflow, f"the WASM stack overflowed (recursion too deep). {LOST}")
    text = describe_trap(trap)
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
    if code == wasmtime.TrapCode.MEMORY_OUT_OF_BOUNDS:
        # python.wasm keeps its C stack in linear memory below address 0: deep recursion through C code
        # (a __getattr__, a sort key, eval calling back into Python) runs off its end before any wasm stack check.
        return RunError.of(SandboxCrashed, f"the interpreter aborted: {text}, {_C_STACK}. {LOST}")
    return RunError.of(SandboxCrashed, f"the interpreter aborted: {text}. {LOST}")
