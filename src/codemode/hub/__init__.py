"""The upstream hub: one MCP client session per configured server."""

from codemode.hub.hub import Hub, HubState, ServerStatus
from codemode.hub.models import ToolRef, ToolSpec
from codemode.hub.upstream import Upstream, UpstreamState

__all__ = ["Hub", "HubState", "ServerStatus", "ToolRef", "ToolSpec", "Upstream", "UpstreamState"]
