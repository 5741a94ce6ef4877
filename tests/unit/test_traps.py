"""Every trap wasmtime can report maps to a codemode error class (a new wasmtime trap code fails here)."""

from __future__ import annotations

import wasmtime

from codemode.calls import Limits
from codemode.errors import SANDBOX_ERRORS
from codemode.executors.wasm.traps import _TRAP_ERRORS, trap_error


def test_every_trap_code_is_mapped() -> None:
    unmapped = [code.name for code in wasmtime.TrapCode if code not in _TRAP_ERRORS]
    assert unmapped == [], f"decide what these wasmtime traps mean for an execution: {unmapped}"
    assert set(_TRAP_ERRORS.values()) <= set(SANDBOX_ERRORS.values())


class _Trap(Exception):
    def __init__(self, code: wasmtime.TrapCode) -> None:
        super().__init__(code.name)
        self.trap_code = code


def test_trap_kinds() -> None:
    limits = Limits()

    def kind(trap: BaseException | None, **kw: object) -> str:
        options: dict[str, object] = {"cancelled": False, "memory_used": 1 << 20, "memory_limit": 256 << 20, **kw}
        return trap_error(trap, limits, **options).kind  # type: ignore[arg-type]

    assert kind(_Trap(wasmtime.TrapCode.INTERRUPT)) == "timeout"
    assert kind(_Trap(wasmtime.TrapCode.INTERRUPT), cancelled=True) == "cancelled"
    assert kind(_Trap(wasmtime.TrapCode.OUT_OF_FUEL)) == "fuel"
    assert kind(_Trap(wasmtime.TrapCode.STACK_OVERFLOW)) == "stack_overflow"
    assert kind(_Trap(wasmtime.TrapCode.UNREACHABLE)) == "crashed"
    assert kind(_Trap(wasmtime.TrapCode.UNREACHABLE), memory_used=250 << 20) == "memory"
    assert kind(_Trap(wasmtime.TrapCode.ALLOCATION_TOO_LARGE)) == "memory"


def test_a_real_wasm_stack_overflow_is_the_sandboxs_stack_error() -> None:
    # A real trap from wasmtime under codemode's engine configuration (its max_wasm_stack), not a stand-in.
    from codemode.executors.wasm.module import engine_config

    engine = wasmtime.Engine(engine_config())
    store = wasmtime.Store(engine)
    store.set_epoch_deadline(1)
    recurse = wasmtime.Module(engine, '(module (func $f (export "f") (call $f)))')
    try:
        wasmtime.Instance(store, recurse, []).exports(store)["f"](store)  # type: ignore[operator]
    except wasmtime.Trap as trap:
        error = trap_error(trap, Limits(), cancelled=False, memory_used=1 << 20, memory_limit=256 << 20)
    else:
        raise AssertionError("unbounded recursion returned")
    assert (error.type, error.message) == ("SandboxStackOverflow", (
        "the WASM stack overflowed (recursion too deep). The session's interpreter was lost; its variables are "
        "gone and the next execution starts fresh."))
