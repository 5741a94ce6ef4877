"""codemode: one MCP tool, ``execute_python``, in place of hundreds."""

from codemode.errors import (
    BridgeError,
    CodemodeError,
    CompileError,
    ConfigError,
    OutOfFuel,
    PolicyDenied,
    SandboxCrashed,
    SandboxError,
    SandboxMemoryError,
    SandboxTimeout,
    SkillError,
    ToolCallError,
    UpstreamError,
)
from codemode.hub.models import ToolRef, ToolSpec

__version__ = "0.1.0"

__all__ = [
    "BridgeError",
    "CodemodeError",
    "CompileError",
    "ConfigError",
    "OutOfFuel",
    "PolicyDenied",
    "SandboxCrashed",
    "SandboxError",
    "SandboxMemoryError",
    "SandboxTimeout",
    "SkillError",
    "ToolCallError",
    "ToolRef",
    "ToolSpec",
    "UpstreamError",
    "__version__",
]
