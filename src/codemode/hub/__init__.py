"""The upstream hub: one MCP client session per configured server."""

from codemode.hub.models import ToolRef, ToolSpec

__all__ = ["ToolRef", "ToolSpec"]
