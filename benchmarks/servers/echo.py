"""An MCP server whose one tool returns its argument: a payload of any size with no work on top.

    python -m benchmarks.servers.echo
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

server = MCPServer("echo", version="0.0.1")


@server.tool(structured_output=False)
def echo(text: str) -> str:
    """Return ``text`` unchanged."""
    return text


if __name__ == "__main__":
    server.run()
