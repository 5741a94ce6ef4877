"""The MCP front: ``codemode serve`` exposes one tool, ``execute_python``, over stdio or streamable HTTP.

Two error channels: whatever the model's code caused (an exception, a tool error, a quota, a timeout, the
output cap) comes back as an ``execute_python`` result with ``isError``; only codemode's own faults become
protocol errors. The stubs are also offered as resources (``stubs://<server>/<tool>``), one per tool.

Both follow the engine's stubs catalog: when an upstream server changes its tools, the catalog publishes a
new generation, the description and the resources are rebuilt from its index, and every connected client
is sent ``notifications/tools/list_changed`` / ``notifications/resources/list_changed`` (see
:class:`ClientNotifier` for how that reaches each protocol era).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
import mcp_types as types
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.session import ServerSession
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ResourcesListChanged,
    ServerEvent,
    SubscriptionBus,
    ToolsListChanged,
)
from mcp.shared.exceptions import MCPError, NoBackChannelError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import Field, create_model

from codemode._version import __version__
from codemode.calls.gate import Asker
from codemode.config import Settings
from codemode.engine import Engine

logger = logging.getLogger(__name__)

TOOL_NAME = "execute_python"
CODE_HELP = "The Python program. What it prints and the value of its last expression are returned."
SESSION_HELP = (
    "Optional name of an interpreter to run in: calls with the same name share variables and /scratch. "
    "Omit it to use this client's own session."
)
STUB_MIME_TYPE = "text/x-python"
NOTIFY_TIMEOUT_S = 5.0
"""How long one client may take to accept a list-changed notification before it is skipped."""


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
        "the stub sources are files under /stubs.",
        "A failing tool raises ToolError (.server, .tool, .message, .retryable) or a subclass: ToolTimeout, "
        "ToolUnavailable, QuotaExceeded, UnknownTool, ToolDenied (predefined names, no import needed).",
        "Print only what you need: intermediate data stays in the sandbox. Long output is cut to its head and "
        "tail (errors stay visible); the full text is kept in /scratch/outputs/. Printing over 2,000,000 "
        "characters stops the program.",
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
    """An MCP server exposing ``execute_python`` backed by ``engine`` (which must be entered).

    The tool description and the ``stubs://`` resources follow the engine's stubs catalog: after each new
    generation they are rebuilt, and connected clients are told what changed (see :class:`ClientNotifier`).
    """
    notifier = ClientNotifier(InMemorySubscriptionBus())
    server: MCPServer = MCPServer(
        "codemode",
        instructions="Call execute_python with a Python program; `from stubs import <server>` to use tools.",
        version=__version__,
        subscriptions=notifier.bus,
        middleware=[notifier],
    )

    async def execute_python(
        code: Annotated[str, Field(description=CODE_HELP)],
        ctx: Context[Any, Any],
        session: Annotated[str | None, Field(description=SESSION_HELP)] = None,
    ) -> types.CallToolResult:
        """Run a Python program in the sandbox (see the tool description)."""
        try:
            outcome = await engine.execute(code, session=session_key(ctx, session), ask=elicitation_asker(ctx))
        except Exception as exc:
            # The program's own failures come back as an Outcome; an exception is codemode's fault.
            logger.exception("execute_python: the engine failed")
            raise MCPError(INTERNAL_ERROR, f"codemode failed to run the program: {_one_line(exc)}") from exc
        return _result(outcome.text or "(no output)", is_error=outcome.is_error)

    front = _Front(server, engine, execute_python, notifier)
    front.sync()
    if engine.catalog is not None:
        engine.catalog.listeners.append(front.catalog_changed)
    return server


def elicitation_asker(ctx: Context[Any, Any]) -> Asker | None:
    """How the gate asks the person at this client a question: MCP elicitation, if the client offers it.

    The program is blocked inside its tool call meanwhile, so it resumes with the answer; nothing reruns.
    """
    try:
        capabilities = ctx.client_capabilities
    except (AttributeError, LookupError, ValueError):
        return None
    if capabilities is None or capabilities.elicitation is None:
        return None

    async def ask(question: str, choices: Sequence[str]) -> str | None:
        options = tuple(choices)
        answer_model = create_model(
            "Answer", answer=(Literal[options], Field(description="; ".join(options)))  # type: ignore[arg-type]
        )
        try:
            result = await ctx.elicit(question, answer_model)
        except NoBackChannelError:
            # Protocol 2026-07-28 without a back-channel: such clients answer through InputRequiredResult
            # (the approvals work); here nobody can be asked.
            return None
        if result.action != "accept":
            return None
        answer = getattr(result.data, "answer", None)
        return answer if answer in options else None

    return ask


class _Front:
    """The part of the server that mirrors the engine's current stubs generation."""

    def __init__(
        self, server: MCPServer, engine: Engine, execute_python: Callable[..., Any], notifier: ClientNotifier
    ) -> None:
        self.server = server
        self.engine = engine
        self.execute_python = execute_python
        self.notifier = notifier
        self.description: str | None = None
        self.resources: list[types.Resource] = []
        self.stub_files: dict[str, Path] = {}
        """Resource URI → the stub's path inside a generation."""
        lowlevel = server._lowlevel_server
        # MCPServer 2.3 can add a resource but not remove one, so the front answers resources/* itself.
        lowlevel.add_request_handler("resources/list", types.PaginatedRequestParams, self._list_resources)
        lowlevel.add_request_handler("resources/read", types.ReadResourceRequestParams, self._read_resource)

    def sync(self) -> tuple[bool, bool]:
        """Match the tool description and the resources to the engine's index; say which of them changed."""
        index = self.engine.index
        description = tool_description(index, self.engine.settings)
        tools_changed = description != self.description
        if tools_changed:
            if self.description is not None:
                self.server.remove_tool(TOOL_NAME)
            self.server.add_tool(
                self.execute_python,
                name=TOOL_NAME,
                description=description,
                annotations=types.ToolAnnotations(title="Run Python with tool access", open_world_hint=True),
            )
            self.description = description
        resources, files = stub_resources(index)
        resources_changed = resources != self.resources
        self.resources, self.stub_files = resources, files
        return tools_changed, resources_changed

    async def catalog_changed(self, _catalog: object) -> None:
        """Catalog listener: a new stubs generation was published."""
        tools_changed, resources_changed = self.sync()
        await self.notifier.notify(tools=tools_changed, resources=resources_changed)

    async def _list_resources(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams
    ) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=list(self.resources))

    async def _read_resource(
        self, ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        relative = self.stub_files.get(params.uri)
        if relative is None:
            raise MCPError(INVALID_PARAMS, f"Unknown resource: {params.uri}", {"uri": params.uri})
        try:
            text = (self.engine.stubs_path / relative).read_text(encoding="utf-8")
        except OSError as exc:
            logger.exception("reading %s failed", params.uri)
            raise MCPError(INTERNAL_ERROR, f"could not read {params.uri}: {_one_line(exc)}") from exc
        return types.ReadResourceResult(
            contents=[types.TextResourceContents(uri=params.uri, text=text, mime_type=STUB_MIME_TYPE)]
        )


def stub_resources(index: dict[str, Any]) -> tuple[list[types.Resource], dict[str, Path]]:
    """One ``stubs://<module>/<tool>`` resource per tool in ``index``, and each one's path in a generation."""
    resources: list[types.Resource] = []
    files: dict[str, Path] = {}
    for srv in index.get("servers", []):
        for tool in srv.get("tools", []):
            uri = f"stubs://{srv['module']}/{tool['python_name']}"
            files[uri] = Path(srv["module"]) / f"{tool['python_name']}.py"
            resources.append(
                types.Resource(
                    uri=uri,
                    name=f"{srv['module']}.{tool['python_name']}",
                    description=(tool.get("summary") or "")[:200],
                    mime_type=STUB_MIME_TYPE,
                )
            )
    return resources, files


class ClientNotifier:
    """Tells every connected client that the tool list or the resource list changed.

    Two protocol eras, two routes, both used for every change:

    * 2026-07-28 clients (stdio or streamable HTTP) hold a ``subscriptions/listen`` stream open; an event
      published on the server's subscription ``bus`` reaches each stream that asked for that kind. The SDK
      forbids sending them an unrequested change notification, and drops one if we try.
    * Handshake-era clients (``initialize`` … ``notifications/initialized``) get unsolicited
      ``notifications/*/list_changed`` on their connection's standalone channel: the one stdio pipe, or an
      HTTP session's GET stream. As server middleware this class sees each such connection's
      ``notifications/initialized``, keeps its session until the connection closes, and adds
      ``listChanged: true`` to the ``initialize`` result so these clients know to expect the notifications.

    A client that cannot be told (gone, stuck) is logged and skipped; it never holds up the others.
    """

    def __init__(self, bus: SubscriptionBus) -> None:
        self.bus = bus
        self._handshake_clients: dict[object, ServerSession] = {}

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)
        if ctx.method == "initialize" and isinstance(result, dict):
            result = _announce_list_changes(result)
        elif ctx.method == "notifications/initialized" and ctx.session.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            self._track(ctx.session)
        return result

    def _track(self, session: ServerSession) -> None:
        # Per-connection cleanup belongs on the Connection's exit_stack, but SDK 2.3 gives a request no
        # public route to its Connection: the session's private reference is the only one.
        connection = getattr(session, "_connection", None)
        key: object = connection if connection is not None else session
        self._handshake_clients[key] = session
        if isinstance(connection, Connection):
            connection.exit_stack.callback(self._handshake_clients.pop, key, None)

    @property
    def handshake_clients(self) -> int:
        """How many handshake-era connections are open."""
        return len(self._handshake_clients)

    async def notify(self, *, tools: bool, resources: bool) -> None:
        """Send ``tools/list_changed`` and/or ``resources/list_changed`` to every client. Never raises."""
        if not (tools or resources):
            return
        events: list[ServerEvent] = [*([ToolsListChanged()] if tools else []),
                                     *([ResourcesListChanged()] if resources else [])]  # fmt: skip
        for event in events:
            try:
                await self.bus.publish(event)
            except Exception:
                logger.exception("publishing %s to subscription streams failed", type(event).__name__)
        async with anyio.create_task_group() as tg:
            for session in list(self._handshake_clients.values()):
                tg.start_soon(self._tell, session, tools, resources)

    async def _tell(self, session: ServerSession, tools: bool, resources: bool) -> None:
        try:
            with anyio.fail_after(NOTIFY_TIMEOUT_S):
                if tools:
                    await session.send_tool_list_changed()
                if resources:
                    await session.send_resource_list_changed()
        except Exception as exc:
            logger.warning("could not tell a client its lists changed: %s", _one_line(exc))


def _announce_list_changes(result: dict[str, Any]) -> dict[str, Any]:
    """An ``initialize`` result whose tools and resources capabilities say ``listChanged: true``."""
    capabilities = dict(result.get("capabilities") or {})
    for name in ("tools", "resources"):
        if isinstance(capabilities.get(name), dict):
            capabilities[name] = {**capabilities[name], "listChanged": True}
    return {**result, "capabilities": capabilities}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _result(text: str, *, is_error: bool) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=is_error)


async def serve_stdio(server: MCPServer) -> None:
    """Serve ``server`` over stdin/stdout (see :mod:`codemode.stdio` for why not the SDK's transport)."""
    from codemode.stdio import pipe_stdio

    lowlevel = server._lowlevel_server  # the SDK's own run_stdio_async does exactly this
    async with pipe_stdio() as (read_stream, write_stream):
        await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
