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
    if kind == "wasm":
        from codemode.executors.wasm import WasmExecutor

        return WasmExecutor(
            stubs_dir=stubs_dir, skills_dir=skills_dir, scratch_root=scratch_root, tool_handler=tool_handler,
            known_tools=known_tools, limits=limits, pool_size=pool_size, progress=progress,
        )  # fmt: skip
    if kind == "restricted":
        from codemode.executors.restricted import RestrictedExecutor

        return RestrictedExecutor(
            stubs_dir=stubs_dir, skills_dir=skills_dir, scratch_root=scratch_root, tool_handler=tool_handler,
            known_tools=known_tools, limits=limits, pool_size=pool_size, progress=progress,
        )  # fmt: skip
    raise ValueError(f"unknown executor {kind!r} (use 'wasm' or 'restricted')")


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
]
