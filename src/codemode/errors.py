"""The one exception tree of codemode.

::

    CodemodeError
    ├── ConfigError            the mcpServers file or a setting is wrong (names file, line, key)
    ├── UpstreamError          an upstream server failed to start, timed out or died (names server)
    │   └── ToolCallError      one tools/call failed at the protocol level (names server.tool)
    ├── PolicyDenied           a quota or policy refused a call or an execution
    ├── SandboxError           the guest could not finish
    │   ├── SandboxTimeout     wall-time limit (epoch deadline or kill)
    │   ├── OutOfFuel          CPU budget exhausted
    │   ├── SandboxMemoryError memory limit hit
    │   └── SandboxCrashed     the instance trapped or the child died; it is replaced
    ├── BridgeError            a malformed or oversized frame between guest and host
    ├── CompileError           a schema could not be turned into a stub
    └── SkillError             saving, validating or promoting a skill failed

Messages lead with what failed: ``filesystem.read_file: timed out after 30 s``.
"""

from __future__ import annotations


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


class PolicyDenied(CodemodeError):
    """A quota or policy rule refused the request."""


class SandboxError(CodemodeError):
    """The sandboxed program could not finish."""


class SandboxTimeout(SandboxError):
    """The program ran past its wall-time limit."""


class OutOfFuel(SandboxError):
    """The program used up its CPU budget (wasmtime fuel)."""


class SandboxMemoryError(SandboxError):
    """The program hit the memory limit."""


class SandboxCrashed(SandboxError):
    """The sandbox instance trapped or its process died; it has been discarded."""


class BridgeError(CodemodeError):
    """A frame between guest and host was malformed, too large, or of an unknown version."""


class CompileError(CodemodeError):
    """A tool schema could not be compiled to a stub."""


class SkillError(CodemodeError):
    """A skill could not be saved, validated or promoted."""
