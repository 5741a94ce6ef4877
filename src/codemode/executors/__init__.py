"""Executors run a program for a session and hand back a :class:`RunResult`.

``wasm`` (default) is CPython compiled to WebAssembly under wasmtime: the security boundary.
``restricted`` is RestrictedPython in a resource-limited child process, for hosts without WASM; it is
weaker and documented as such.
"""

from __future__ import annotations

from typing import Literal, Unpack

from codemode.calls.types import Limits
from codemode.executors.base import (
    Executor,
    ExecutorOptions,
    Progress,
    RunError,
    RunResult,
    result_from_guest,
)

ExecutorKind = Literal["wasm", "restricted"]


def create_executor(kind: ExecutorKind, **options: Unpack[ExecutorOptions]) -> Executor:
    """Build an executor of ``kind``; use it as an async context manager."""
    executor: type[Executor]
    if kind == "wasm":
        from codemode.executors.wasm import WasmExecutor as executor
    elif kind == "restricted":
        from codemode.executors.restricted import RestrictedExecutor as executor
    else:
        raise ValueError(f"unknown executor {kind!r} (use 'wasm' or 'restricted')")
    return executor(**options)


__all__ = [
    "Executor",
    "ExecutorKind",
    "ExecutorOptions",
    "Limits",
    "Progress",
    "RunError",
    "RunResult",
    "create_executor",
    "result_from_guest",
]
