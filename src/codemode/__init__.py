"""codemode: one MCP tool, ``execute_python``, in place of hundreds.

::

    import anyio
    from codemode import Engine, load_config

    async def main() -> None:
        async with Engine(load_config(None)) as engine:  # the bundled demo servers
            outcome = await engine.execute("from stubs import notes\\nnotes.list_tags()")
            print(outcome.text)

    anyio.run(main)

The engine and the config loader import the MCP client stack, so they load on first use.
"""

from typing import TYPE_CHECKING, Any

from codemode._version import __version__
from codemode.calls.types import CallRecord, CallState, Limits
from codemode.errors import (
    BridgeError,
    CodemodeError,
    CompileError,
    ConfigError,
    ExecutionCancelled,
    OutOfFuel,
    PolicyDenied,
    ProgramError,
    SandboxCrashed,
    SandboxError,
    SandboxExited,
    SandboxMemoryError,
    SandboxStackOverflow,
    SandboxTimeout,
    SandboxUnavailable,
    ScratchQuotaExceeded,
    SkillError,
    ToolCallError,
    ToolCallTimeout,
    UpstreamError,
)
from codemode.hub.models import ToolRef, ToolSpec

if TYPE_CHECKING:
    from codemode.config import Config, load_config
    from codemode.engine import Engine
    from codemode.outcome import Outcome

_LAZY = {"Engine": "codemode.engine", "Outcome": "codemode.outcome", "Config": "codemode.config",
         "load_config": "codemode.config"}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'codemode' has no attribute {name!r}")


__all__ = [
    "BridgeError",
    "CallRecord",
    "CallState",
    "CodemodeError",
    "CompileError",
    "Config",
    "ConfigError",
    "Engine",
    "ExecutionCancelled",
    "Limits",
    "OutOfFuel",
    "Outcome",
    "PolicyDenied",
    "ProgramError",
    "SandboxCrashed",
    "SandboxError",
    "SandboxExited",
    "SandboxMemoryError",
    "SandboxStackOverflow",
    "SandboxTimeout",
    "SandboxUnavailable",
    "ScratchQuotaExceeded",
    "SkillError",
    "ToolCallError",
    "ToolCallTimeout",
    "ToolRef",
    "ToolSpec",
    "UpstreamError",
    "__version__",
    "load_config",
]
