"""The one exception tree of codemode.

::

    CodemodeError
    ├── ConfigError              the mcpServers file or a setting is wrong (names file, line, key)
    ├── UpstreamError            an upstream server failed to start, timed out or died (names server)
    │   └── ToolCallError        one tools/call failed at the protocol level (names server.tool)
    │       └── ToolCallTimeout  ... because it got no answer in time (its effect is unknown)
    ├── PolicyDenied             a quota or policy refused a call or an execution
    ├── SandboxError             an execution did not finish normally; ``kind`` names which way
    │   ├── ProgramError         the program raised (the guest's exception name is kept beside it)
    │   ├── SandboxTimeout       wall-time limit (epoch deadline or kill)
    │   ├── OutOfFuel            CPU budget exhausted
    │   ├── SandboxMemoryError   memory limit hit
    │   ├── ScratchQuotaExceeded /scratch grew past its size or file-count quota
    │   ├── ExecutionCancelled   the client cancelled or went away
    │   ├── SandboxUnavailable   no interpreter could be started
    │   ├── SandboxCrashed       the instance trapped or the child died; it is replaced
    │   │   ├── SandboxExited    the program ended the interpreter itself
    │   │   └── SandboxStackOverflow  the WASM stack overflowed (recursion too deep for the interpreter)
    │   └── BridgeError          the guest sent a malformed or oversized frame, or spoke another version
    ├── CompileError             a schema could not be turned into a stub
    └── SkillError               saving, validating or promoting a skill failed

Executors do not raise the ``SandboxError`` classes: they return them as data (``RunError.kind`` is the
class's ``kind``), because a failed program is an ordinary outcome. ``RunError.exception()`` turns one
back into the class, e.g. for a script's exit status.

Messages lead with what failed: ``filesystem.read_file: timed out after 30 s``.
"""

from __future__ import annotations

from typing import ClassVar


class CodemodeError(Exception):
    """Base of every error codemode raises on purpose."""


class ConfigError(CodemodeError):
    """The configuration is malformed or names something that does not exist."""


class UpstreamError(CodemodeError):
    """An upstream MCP server failed: it would not start, timed out, or died."""

    def __init__(self, server: str, message: str) -> None:
        super().__init__(f"{server}: {message}")
        self.server = server
        self.message = message


class ToolCallError(UpstreamError):
    """A single tools/call failed at the protocol level (not an ``isError`` result)."""

    def __init__(self, server: str, tool: str, message: str) -> None:
        CodemodeError.__init__(self, f"{server}.{tool}: {message}")
        self.server = server
        self.tool = tool
        self.message = message


class ToolCallTimeout(ToolCallError):
    """A tools/call got no answer within its timeout; the server may still have acted on it."""


class PolicyDenied(CodemodeError):
    """A quota or policy rule refused the request."""


class SandboxError(CodemodeError):
    """The sandboxed program could not finish. ``kind`` is this class's name in results and logs."""

    kind: ClassVar[str] = "sandbox"


class ProgramError(SandboxError):
    """The program raised an exception (its name is ``RunError.type``, e.g. ``ZeroDivisionError``)."""

    kind = "program"


class SandboxTimeout(SandboxError):
    """The program ran past its wall-time limit."""

    kind = "timeout"


class OutOfFuel(SandboxError):
    """The program used up its CPU budget (wasmtime fuel)."""

    kind = "fuel"


class SandboxMemoryError(SandboxError):
    """The program hit the memory limit."""

    kind = "memory"


class ScratchQuotaExceeded(SandboxError):
    """The session's ``/scratch`` grew past its size or file-count quota."""

    kind = "scratch_quota"


class ExecutionCancelled(SandboxError):
    """The execution was cancelled (the client cancelled the request or went away)."""

    kind = "cancelled"


class SandboxUnavailable(SandboxError):
    """No interpreter could be started for the execution."""

    kind = "unavailable"


class SandboxCrashed(SandboxError):
    """The sandbox instance trapped or its process died; it has been discarded."""

    kind = "crashed"


class SandboxExited(SandboxCrashed):
    """The program ended the interpreter (``sys.exit``, ``os._exit``)."""

    kind = "exited"


class SandboxStackOverflow(SandboxCrashed):
    """Recursion went deeper than the interpreter's native stack (a WASM stack-overflow trap)."""

    kind = "stack_overflow"


class BridgeError(SandboxError):
    """A frame between guest and host was malformed, too large, or of an unknown version."""

    kind = "bridge"


class CompileError(CodemodeError):
    """A tool schema could not be compiled to a stub."""


class SkillError(CodemodeError):
    """A skill could not be saved, validated or promoted."""


SANDBOX_ERRORS: dict[str, type[SandboxError]] = {
    cls.kind: cls
    for cls in (
        ProgramError, SandboxTimeout, OutOfFuel, SandboxMemoryError, ScratchQuotaExceeded, ExecutionCancelled,
        SandboxUnavailable, SandboxCrashed, SandboxExited, SandboxStackOverflow, BridgeError,
    )
}  # fmt: skip
"""Every kind an execution can fail with, and its class: the closed set ``RunError.kind`` draws from."""
