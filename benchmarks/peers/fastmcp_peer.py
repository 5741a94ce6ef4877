"""What FastMCP's code mode sends a model, for catalogs read as JSON on stdin (run by ``benchmarks.peers``).

Runs in the interpreter that has the ``peers`` extra (``fastmcp``), apart from codemode's own. Each catalog's
tools are registered as FastMCP tools with their captured schemas, the ``CodeMode`` transform is applied,
and an in-memory FastMCP client lists what the model is given (``search``, ``get_schema``, ``execute``) and
asks ``get_schema`` for each tool alone (the default ``detailed`` rendering). Counting is left to the caller.

stdin: ``{"server": [tool definitions as captured], ...}``;
stdout: ``{"version": ..., "catalogs": {"server": {"definitions": [...], "get_schema": {"tool": text}}}}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import fastmcp
from fastmcp import Client, FastMCP
from fastmcp.experimental.transforms.code_mode import CodeMode
from fastmcp.tools.base import Tool, ToolResult


class CatalogTool(Tool):
    """A captured tool: its definition only (this run never calls it)."""

    async def run(self, arguments: dict[str, Any]) -> ToolResult:
        raise RuntimeError("catalog tools are definitions only")


def _text(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


async def measure(tools: list[dict[str, Any]]) -> dict[str, Any]:
    server = FastMCP("peer")
    for tool in tools:
        server.add_tool(
            CatalogTool(
                name=tool["name"],
                description=tool.get("description"),
                parameters=tool.get("inputSchema") or {"type": "object", "properties": {}},
                output_schema=tool.get("outputSchema"),
            )
        )
    server.add_transform(CodeMode())
    async with Client(server) as client:
        listed = await client.list_tools()
        definitions = [t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in listed]
        schemas = {}
        for tool in tools:
            schemas[tool["name"]] = _text(await client.call_tool("get_schema", {"tools": [tool["name"]]}))
    return {"definitions": definitions, "get_schema": schemas}


async def main() -> None:
    catalogs = json.load(sys.stdin)
    out = {name: await measure(tools) for name, tools in catalogs.items()}
    json.dump({"version": fastmcp.__version__, "catalogs": out}, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main())
