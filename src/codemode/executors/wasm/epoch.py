"""Interrupting one interpreter when every interpreter shares one engine (and so one epoch counter).

wasmtime checks a store's epoch deadline at function entries and loop heads; bumping the engine's epoch
reaches every store that runs. Each store gets a deadline callback (``wasmtime_store_epoch_deadline_callback``,
from the C API wasmtime-py binds but does not wrap): its own interpreter interrupted, the callback returns an
error, which ends the wasm call as a trap would; anyone else's bump, it lets the store run on one more tick.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

import wasmtime
from wasmtime import _bindings as ffi

INTERRUPTED = "codemode: the interpreter was interrupted"
"""The message of the error the callback returns: how :func:`is_interrupt` knows the trap for its own."""

_CONTINUE = 0  # WASMTIME_UPDATE_DEADLINE_CONTINUE
_Callback = ctypes.CFUNCTYPE(
    ctypes.c_size_t,
    ctypes.POINTER(ffi.wasmtime_context_t),
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint64),
    ctypes.POINTER(ffi.wasmtime_update_deadline_kind_t),
)
_Finalizer = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class EpochGuard:
    """The deadline callback of one store; keep it referenced as long as the store lives."""

    def __init__(self, store: wasmtime.Store, interrupted: Callable[[], bool]) -> None:
        def on_deadline(_context: object, _data: object, delta: Any, kind: Any) -> int:
            if interrupted():
                error = ffi.wasmtime_error_new(INTERRUPTED.encode())
                return ctypes.cast(error, ctypes.c_void_p).value or 0
            delta[0] = 1
            kind[0] = _CONTINUE
            return 0

        # ctypes frees a callback's trampoline with its Python object: both are kept on self.
        self._callback = _Callback(on_deadline)
        self._finalizer = _Finalizer(lambda _data: None)
        ffi.wasmtime_store_epoch_deadline_callback(store.ptr(), self._callback, None, self._finalizer)


def is_interrupt(trap: BaseException | None) -> bool:
    """Whether ``trap`` is this module's interruption (or wasmtime's own epoch trap)."""
    if trap is None:
        return False
    if getattr(trap, "trap_code", None) == wasmtime.TrapCode.INTERRUPT:
        return True
    return isinstance(trap, wasmtime.WasmtimeError) and INTERRUPTED in str(trap)
