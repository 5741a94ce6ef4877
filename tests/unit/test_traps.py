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
