"""The guest runtime: what generated stubs call inside the sandbox. Imports only the stdlib.

PLACEHOLDER CONTRACT (the sandbox work fills in the transport):

- ``call(server, tool, args)`` sends one request to the host and returns the tool's result
  (structured content, or the text content parsed as JSON when it is JSON, else the text).
  Keys whose value is ``None`` are dropped before sending (an omitted optional argument).
- ``ToolError`` is raised when the upstream tool fails; it carries ``server``, ``tool``, ``message``.
"""

from __future__ import annotations

from typing import Any


class ToolError(Exception):
    """An upstream tool call failed."""

    def __init__(self, server: str, tool: str, message: str) -> None:
        super().__init__(f"{server}.{tool}: {message}")
        self.server = server
        self.tool = tool
        self.message = message


def call(server: str, tool: str, args: dict[str, Any]) -> Any:
    """Call ``tool`` on ``server`` through the host bridge and return its result."""
    raise NotImplementedError("no bridge transport installed in this interpreter")


__all__ = ["ToolError", "call"]
