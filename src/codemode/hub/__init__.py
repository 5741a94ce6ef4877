"""The upstream hub: every upstream server behind one ``Hub``, each seen through the ``Upstream`` protocol.

The client machinery (the mcp SDK) loads on first use of :class:`Hub` or :class:`McpUpstream`, so code
that only needs the tool model (the executors, the compiler) starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from codemode.hub.models import ToolRef, ToolSpec

if TYPE_CHECKING:
    from codemode.hub.fake import FakeServerDied, FakeUpstream
    from codemode.hub.hub import Hub, HubState, ServerStatus
    from codemode.hub.mcp import McpUpstream
    from codemode.hub.openapi import OpenApiUpstream
    from codemode.hub.upstream import Upstream, UpstreamState

_LAZY = {
    "FakeServerDied": "codemode.hub.fake",
    "FakeUpstream": "codemode.hub.fake",
    "Hub": "codemode.hub.hub",
    "HubState": "codemode.hub.hub",
    "McpUpstream": "codemode.hub.mcp",
    "OpenApiUpstream": "codemode.hub.openapi",
    "ServerStatus": "codemode.hub.hub",
    "Upstream": "codemode.hub.upstream",
    "UpstreamState": "codemode.hub.upstream",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'codemode.hub' has no attribute {name!r}")


__all__ = [
    "FakeServerDied",
    "FakeUpstream",
    "Hub",
    "HubState",
    "McpUpstream",
    "OpenApiUpstream",
    "ServerStatus",
    "ToolRef",
    "ToolSpec",
    "Upstream",
    "UpstreamState",
]
