"""The guest runtime: what generated stubs call inside the sandbox. Imports only the stdlib.

``call(server, tool, args)`` sends one request to the host over the installed transport and returns the
tool's result: its structured content, or its text content parsed as JSON when it is JSON, else the text
(several content blocks come back as a list). Keys whose value is ``None`` are dropped before sending,
so an omitted optional argument is not sent as ``null``.

``ToolError`` is raised when the call fails: the upstream tool reported an error, the tool is unknown,
the arguments are too large, or the execution's tool-call quota is spent. ``kind`` says which.
"""

from __future__ import annotations

from typing import Any

from codemode_runtime import transport as _transport


class ToolError(Exception):
    """A tool call failed. ``kind`` is ``tool`` (the upstream tool said so), ``unknown``, ``quota``,
    ``too_large``, ``timeout``, ``upstream`` (the server is down) or ``bridge`` (a malformed request)."""

    def __init__(self, server: str, tool: str, message: str, kind: str = "tool") -> None:
        super().__init__(f"{server}.{tool}: {message}")
        self.server = server
        self.tool = tool
        self.message = message
        self.kind = kind


def call(server: str, tool: str, args: dict[str, Any]) -> Any:
    """Call ``tool`` on ``server`` through the host bridge and return its result."""
    request = {"op": "call", "server": server, "tool": tool, "args": {k: v for k, v in args.items() if v is not None}}
    reply = _transport.request(request)
    if reply.get("ok"):
        return reply.get("result")
    error = reply.get("error") or {}
    message = str(error.get("message", "the bridge refused the call"))
    raise ToolError(server, tool, message, str(error.get("kind", "bridge")))


from codemode_runtime.discovery import describe, list_servers, list_tools, search_tools  # noqa: E402

__all__ = ["ToolError", "call", "describe", "list_servers", "list_tools", "search_tools"]
