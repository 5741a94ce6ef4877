"""Executors run a program for a session and hand back a :class:`RunResult`.

``wasm`` (default) is CPython compiled to WebAssembly under wasmtime: the security boundary.
``restricted`` is RestrictedPython in a resource-limited child process, for hosts without WASM; it is
weaker and documented as such.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from codemode.executors.base import (
    Executor,
    KnownTools,
    Limits,
    Progress,
    RunError,
    RunResult,
    ToolCallRecord,
    ToolHandler,
    result_from_guest,
)

ExecutorKind = Literal["wasm", "restricted"]


def create_executor(
    kind: ExecutorKind,
    *,
    stubs_dir: Path,
    skills_dir: Path,
    scratch_root: Path,
    tool_handler: ToolHandler,
    known_tools: KnownTools,
    limits: Limits | None = None,
    pool_size: int = 2,
    progress: Progress | None = None,
) -> Executor:
    """Build an executor of ``kind``; use it as an async context manager."""
    executor: type[Executor]
    if kind == "wasm":
        from codemode.executors.wasm import WasmExecutor as executor
    elif kind == "restricted":
        from codemode.executors.restricted import RestrictedExecutor as executor
    else:
        raise ValueError(f"unknown executor {kind!r} (use 'wasm' or 'restricted')")
    return executor(
        stubs_dir=stubs_dir, skills_dir=skills_dir, scratch_root=scratch_root, tool_handler=tool_handler,
        known_tools=known_tools, limits=limits, pool_size=pool_size, progress=progress,
    )  # fmt: skip


__all__ = [
    "Executor",
    "ExecutorKind",
    "KnownTools",
    "Limits",
    "RunError",
    "RunResult",
    "ToolCallRecord",
    "ToolHandler",
    "create_executor",
    "result_from_guest",
]
