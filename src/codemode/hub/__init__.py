"""The upstream hub: one MCP client session per configured server.

The client machinery (the mcp SDK) loads on first use of :class:`Hub`, so code that only needs the tool
model (the executors, the compiler) starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from codemode.hub.models import ToolRef, ToolSpec

if TYPE_CHECKING:
    from codemode.hub.hub import Hub, HubState, ServerStatus
    from codemode.hub.upstream import Upstream, UpstreamState

_LAZY = {
    "Hub": "codemode.hub.hub",
    "HubState": "codemode.hub.hub",
    "ServerStatus": "codemode.hub.hub",
    "Upstream": "codemode.hub.upstream",
    "UpstreamState": "codemode.hub.upstream",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'codemode.hub' has no attribute {name!r}")


__all__ = ["Hub", "HubState", "ServerStatus", "ToolRef", "ToolSpec", "Upstream", "UpstreamState"]
