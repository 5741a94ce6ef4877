"""The MCP front: ``codemode serve`` exposes one tool, ``execute_python``, over stdio or streamable HTTP.

Two error channels: whatever the model's code caused (an exception, a tool error, a quota, a timeout, the
output cap) comes back as an ``execute_python`` result with ``isError``; only codemode's own faults become
protocol errors. The stubs are also offered as resources (``stubs://<server>/<tool>``), one per tool.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any

import mcp_types as types
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.resources import FunctionResource
from pydantic import Field

from codemode._version import __version__
from codemode.config import Settings
from codemode.engine import Engine

TOOL_NAME = "execute_python"
CODE_HELP = "The Python program. What it prints and the value of its last expression are returned."
SESSION_HELP = (
    "Optional name of an interpreter to run in: calls with the same name share variables and /scratch. "
    "Omit it to use this client's own session."
)


def tool_description(index: dict[str, Any], settings: Settings | None = None) -> str:
    """The ``execute_python`` description: what it does, one line per server, how to discover tools.

    It does not list tools, so it stays small however many upstream tools there are.
    """
    lines = [
        "Run a Python 3.12 program in a sandbox (no network, no host files) and return what it prints plus "
        "the value of its last expression. Variables, imports and functions persist between calls.",
        "Upstream tools are typed functions: `from stubs import <server>` then "
        "`<server>.<tool>(arg=...)` (keyword-only arguments; results are dicts/lists).",
        "Discover: `list_servers()`, `search_tools('query')`, `describe('server.tool')` (signature + docs); "
        "the stub sources are files under /stubs. A failing tool raises ToolError(server, tool, message).",
        "Print only what you need: intermediate data stays in the sandbox. Long output is cut; the full "
        "text is kept in /scratch/outputs/.",
    ]
    if settings is not None:
        lines.append(
            f"Each call: up to {settings.wall_s:g} s, {settings.memory_mb} MB, {settings.max_tool_calls} tool calls; "
            "files you write under /scratch persist for the session."
        )
    lines.append("Servers:")
    for server in index.get("servers", []):
        summary = (server.get("summary") or "").strip().splitlines()[0:1]
        lines.append(
            f"- {server['module']}: {server['tool_count']} tools" + (f" — {summary[0][:100]}" if summary else "")
        )
    if not index.get("servers"):
        lines.append("- (none connected)")
    return "\n".join(lines)


def session_key(ctx: Context[Any, Any] | None, requested: str | None = None) -> str:
    """The sandbox session for a call: the ``session`` the model named, else one per client.

    Over stdio a process serves exactly one client, so it has one session. Stateful HTTP clients are told
    apart by ``mcp-session-id``. Sessionless HTTP (protocol 2026-07-28) carries no client identity at all,
    so those calls share one session unless the model names its own.
    """
    if requested:
        return "named-" + requested
    if ctx is None:
        return "default"
    try:
        headers = ctx.headers
    except (AttributeError, LookupError, ValueError):
        headers = None
    if headers is None:
        return "default"
    sid = headers.get("mcp-session-id")
    if sid:
        return "http-" + hashlib.sha256(sid.encode()).hexdigest()[:16]
    return "http-shared"


def build_server(engine: Engine) -> MCPServer:
    """An MCP server exposing ``execute_python`` backed by ``engine`` (which must be entered)."""
    server: MCPServer = MCPServer(
        "codemode",
        instructions="Call execute_python with a Python program; `from stubs import <server>` to use tools.",
        version=__version__,
    )

    async def execute_python(
        code: Annotated[str, Field(description=CODE_HELP)],
        ctx: Context[Any, Any],
        session: Annotated[str | None, Field(description=SESSION_HELP)] = None,
    ) -> types.CallToolResult:
        """Run a Python program in the sandbox (see the tool description)."""
        outcome = await engine.execute(code, session=session_key(ctx, session))
        return _result(outcome.text or "(no output)", is_error=outcome.is_error)

    server.add_tool(
        execute_python,
        name=TOOL_NAME,
        description=tool_description(engine.index, engine.settings),
        annotations=types.ToolAnnotations(title="Run Python with tool access", open_world_hint=True),
    )
    _add_stub_resources(server, engine)
    return server


def _add_stub_resources(server: MCPServer, engine: Engine) -> None:
    for srv in engine.index.get("servers", []):
        for tool in srv.get("tools", []):
            relative = Path(srv["module"]) / f"{tool['python_name']}.py"

            def read(relative: Path = relative) -> str:
                return (engine.stubs_path / relative).read_text(encoding="utf-8")

            server.add_resource(
                FunctionResource(
                    uri=f"stubs://{srv['module']}/{tool['python_name']}",
                    name=f"{srv['module']}.{tool['python_name']}",
                    description=(tool.get("summary") or "")[:200],
                    mime_type="text/x-python",
                    fn=read,
                )
            )


def _result(text: str, *, is_error: bool) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=is_error)


async def serve_stdio(server: MCPServer) -> None:
    """Serve ``server`` over stdin/stdout (see :mod:`codemode.stdio` for why not the SDK's transport)."""
    from codemode.stdio import pipe_stdio

    lowlevel = server._lowlevel_server  # the SDK's own run_stdio_async does exactly this
    async with pipe_stdio() as (read_stream, write_stream):
        await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
