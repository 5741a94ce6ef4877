"""The MCP front: ``codemode serve`` exposes one tool, ``execute_python``, over stdio or streamable HTTP.

Two error channels: whatever the model's code caused (an exception, a tool error, a quota, a timeout, the
output cap) comes back as an ``execute_python`` result with ``isError``; only codemode's own faults become
protocol errors. The stubs are also offered as resources (``stubs://<server>/<tool>``), one per tool.

Hybrid mode (``codemode.expose_direct``, :mod:`codemode.direct`) also lists chosen upstream tools under their
own names; their calls go through :meth:`Engine.call_tool`, the same gate, journal and audit as a program's.

With ``--expose-skills`` (``codemode.expose_skills``) each promoted skill is an MCP tool too
(:mod:`codemode.skills.expose`): a call is checked against the skill's schema, then runs
``from skills import NAME; NAME(**args)`` through :meth:`Engine.execute` like any program, in the client's
own ``skill-tools`` session. The skill store is polled, so a promotion, retirement or rollback made by
``codemode skills`` in another process changes the list and the clients hear ``list_changed``.

Both follow the engine's stubs catalog: when an upstream server changes its tools, the catalog publishes a
new generation, the description and the resources are rebuilt from its index, and every connected client
is sent ``notifications/tools/list_changed`` / ``notifications/resources/list_changed`` (see
:class:`ClientNotifier` for how that reaches each protocol era).

Every call runs for one client (:func:`caller_of`), and a ``session`` name is that client's own: over stdio
the process has one client; a handshake-era HTTP client is its MCP session; a sessionless HTTP client
(protocol 2026-07-28) is a server-issued handle, returned with its first result, that it passes back. HTTP
can require a bearer token on every request (:class:`codemode.identity.Identities` maps each token to an
identity, checked by the SDK's auth middleware); the identity owns the client's sessions, is audited and
selects its policy rules. :mod:`codemode.http_app` adds ``/metrics``, ``/healthz`` and the session-gone answer.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
import mcp_types as types
from mcp.server._otel import OpenTelemetryMiddleware
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import TokenVerifier, principal_components
from mcp.server.auth.settings import AuthSettings
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.elicitation import render_elicitation_schema
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
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from opentelemetry import trace
from pydantic import BaseModel, Field, create_model

from codemode import direct
from codemode._version import __version__
from codemode.calls.gate import Asker, CannotAsk, Reply
from codemode.calls.results import upstream_text
from codemode.config import Settings
from codemode.engine import Engine
from codemode.executors.base import WAIT_GRACE_S
from codemode.identity import ANONYMOUS
from codemode.parked import ParkedRun, ParkingLot
from codemode.session_names import HANDLE_PREFIX, Handles
from codemode.sessions import LOCAL, Owner
from codemode.skills.expose import SkillTool, exposed
from codemode.skills.schema import BadArguments

logger = logging.getLogger(__name__)

TOOL_NAME = "execute_python"
CODE_HELP = "The Python program. What it prints and the value of its last expression are returned."
SESSION_HELP = (
    "Optional name of an interpreter to run in: calls with the same name share variables and /scratch "
    "(names are private to this client). Omit it to use this client's own session. If a result gave you a "
    "session handle, pass it here (alone, or as '<handle>/<name>')."
)
HANDLE_META_KEY = "codemode/session"
"""Result ``_meta`` key carrying a sessionless client's handle; a request's ``_meta`` may carry it back."""
STUB_MIME_TYPE = "text/x-python"
SKILL_SESSION = "skill-tools"
"""The session (one per client) skill tools run in: warm after the first call, apart from the client's own
``execute_python`` sessions, so a call neither sees nor leaves variables in them."""
SKILLS_POLL_S = 0.5
"""How often the front looks at the skill store for a changed promoted set (one ``stat``)."""
NOTIFY_TIMEOUT_S = 5.0
"""How long one client may take to accept a list-changed notification before it is skipped."""


def tool_description(index: dict[str, Any], settings: Settings | None = None, *, skills: int = 0) -> str:
    """The ``execute_python`` description: what it does, one line per server, how to discover tools.

    It does not list tools or skills (``skills`` is their count), so it stays small however many there are.
    A server's summary is the upstream's (or the config's) text: shown with :func:`upstream_text`, so it can
    neither send control characters to the client nor pass for one of codemode's own notes.
    """
    lines = [
        "Run a Python 3.12 program in a sandbox (no network, no host files) and return what it prints plus "
        "the value of its last expression. Variables, imports and functions persist between calls.",
        "Upstream tools are typed functions: `from stubs import <server>` then "
        "`<server>.<tool>(arg=...)` (keyword-only arguments). A result is the tool's structured content, else its "
        "text parsed as JSON when it is JSON, else a str; an image, audio or resource block is a dict with its "
        "'type'; several content blocks come back as a list. The stub's return type says which (one marked "
        "'inferred' was learned from earlier results of a tool without an output schema).",
        f"A result over {settings.result_handle_kb if settings else 256} KB stays on the host as a ResultHandle "
        "that reads like the data, fetching parts as used (len, [i], [a:b], for, .get/.keys/.items, .lines(), "
        ".text(), .to_json(), .size, .preview).",
        "Discover: `list_servers()`, `search_tools('query')`, `describe('server.tool')` (signature + docs); "
        "the stub sources are files under /stubs.",
        "A failing tool raises ToolError (.server, .tool, .message, .retryable) or a subclass: ToolTimeout, "
        "ToolUnavailable, QuotaExceeded, UnknownTool, ToolDenied (predefined names, no import needed).",
        "Print only what you need: intermediate data stays in the sandbox. Long output is cut to its head and "
        "tail (errors stay visible); the full text is kept in /scratch/outputs/. Printing over 2,000,000 "
        "characters stops the program.",
    ]
    lines.append(
        f"Skills: {skills} saved function(s), `from skills import NAME`; find them with `search_tools('query')` "
        "(kind 'skill') or `list_tools('skills')`. Save a function that worked with `save_skill(fn, "
        "example='fn(arg=1)')`: a draft for this session until a person promotes it (SkillError says why not)."
    )
    if settings is None or settings.typecheck != "off":
        lines.append("Programs are type-checked against the stubs first: errors (line, did you mean) lead the result.")
    if settings is not None:
        lines.append(
            f"Each call: up to {settings.wall_s:g} s, {settings.memory_mb} MB, {settings.max_tool_calls} tool calls; "
            "files you write under /scratch persist for the session. At the time limit a wait (time.sleep, a "
            "tool call) raises TimeoutError / ToolTimeout where it waits and the session keeps its variables "
            f"if the program ends within {WAIT_GRACE_S:g} s; code still computing is stopped and the session "
            "starts fresh."
        )
    if settings is not None and settings.mount:
        lines.append(
            "More services: `search_directory('query')` finds them; `mount('name', **params)` connects one and "
            "returns the module to import (in this same program too); `unmount('name')`."
        )
    lines.append("Servers:")
    for server in index.get("servers", []):
        summary = (server.get("summary") or "").strip().splitlines()[0:1]
        lines.append(
            f"- {server['module']}: {server['tool_count']} tools"
            + (f" — {upstream_text(summary[0][:100])}" if summary else "")
        )
    if not index.get("servers"):
        lines.append("- (none connected)")
    return "\n".join(lines)


@dataclass(frozen=True)
class Caller:
    """Whom a call runs for and in which of their sessions."""

    owner: Owner
    session: str
    handle: str | None = None
    """Sessionless HTTP only: what the client passes back as ``session`` to run here again."""
    minted: bool = False
    """The handle is new with this call: the result's text tells the client about it."""
    connection: Connection | None = field(default=None, compare=False)
    """Handshake-era HTTP only: the MCP session's connection, whose end makes its interpreters unreachable."""


class CallerError(Exception):
    """The call names a session it cannot have (a handle this server did not issue to this client)."""


def caller_of(ctx: ServerRequestContext[Any, Any] | None, requested: str | None, handles: Handles) -> Caller:
    """The client a call (whose request context is ``ctx``) comes from and the session it asked for.

    Over stdio (or in process) the server has one client, the local owner. Over HTTP the identity is one the
    client cannot choose: a handshake-era client is its ``mcp-session-id`` (issued by the SDK, bound to the
    credential that opened it, and only trusted when the transport routed the request to that session); a
    sessionless client is a handle this server signed, in ``session`` (``<handle>`` or ``<handle>/<name>``)
    or in the request's ``_meta``. A sessionless call without one gets a new handle and a new interpreter:
    it never shares one with anybody.

    Raises:
        CallerError: the call presents a handle this server did not issue, or issued to another credential.
    """
    request = _http_request(ctx)
    if request is None:
        return Caller(LOCAL, requested or "default")
    principal = _principal(request)
    identity = identity_of(request)
    client = getattr(request, "client", None)
    peer = str(getattr(client, "host", None) or "unknown")
    handle, name = presented_handle(requested, _request_meta(ctx))
    if handle is not None:
        key = handles.owner(handle, principal=principal)
        if key is None:
            raise CallerError(handle_gone(handle))
        return Caller(Owner(key, peer, identity=identity), name or "default", handle=_handle_for(handle, name))
    connection = _mcp_session(ctx)
    if connection is not None:
        key = "mcp-" + hashlib.sha256(f"{principal}\0{connection.session_id}".encode()).hexdigest()[:32]
        return Caller(Owner(key, peer, identity=identity), requested or "default", connection=connection)
    handle = handles.mint(principal=principal)
    key = handles.owner(handle, principal=principal)
    assert key is not None
    owner = Owner(key, peer, provisional=True, identity=identity)
    return Caller(owner, requested or "default", _handle_for(handle, requested), True)


SESSION_GONE = "session_gone"
"""``error.data.reason`` of the session-gone answer, for clients that act on it."""


def handle_expired(handle: str) -> str:
    """What a client presenting a handle of this server's whose interpreters have all ended is told."""
    return (
        f"session {handle[:12]}… is gone: its interpreter ended (idle past session_idle_s, or closed to make room) "
        "and its variables are lost; call execute_python without `session` (and without "
        f"{HANDLE_META_KEY!r} in _meta) to start a new interpreter"
    )


def handle_gone(handle: str) -> str:
    """What a client presenting a session handle this server cannot verify is told (here and as an HTTP 404)."""
    return (
        f"session {handle[:12]}… is gone: this server does not hold it (it was issued by another server or node, "
        "to another client, or before this server restarted) and its variables are lost; call execute_python "
        f"without `session` (and without {HANDLE_META_KEY!r} in _meta) to start a new interpreter"
    )


def presented_handle(requested: str | None, meta: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """(handle, session name) from ``session`` (``<handle>[/<name>]``) or else the request's ``_meta``."""
    if requested and requested.startswith(HANDLE_PREFIX):
        handle, _, name = requested.partition("/")
        return handle, name or None
    carried = (meta or {}).get(HANDLE_META_KEY)
    if isinstance(carried, str) and carried:
        handle, _, name = carried.partition("/")
        return handle, requested or name or None
    return None, requested


def _handle_for(handle: str, name: str | None) -> str:
    return f"{handle}/{name}" if name else handle


# These read the SDK's request context, a plain dataclass, not the ``Context`` a tool function gets: each
# property of that one costs microseconds (pydantic private attributes), and a call read a dozen of them.


def _request_meta(ctx: ServerRequestContext[Any, Any] | None) -> Mapping[str, Any] | None:
    meta = ctx.meta if ctx is not None else None
    return meta if isinstance(meta, Mapping) else None


def _http_request(ctx: ServerRequestContext[Any, Any] | None) -> Any:
    """The HTTP request this call came in (a Starlette ``Request``), or None over stdio and in process."""
    request = ctx.request if ctx is not None else None
    return request if getattr(request, "headers", None) is not None else None


def _principal(request: Any) -> str:
    """Who authenticated the request (client id, issuer, subject), or ``""`` when nobody did."""
    return principal_of(getattr(request, "scope", None))


def _authenticated(scope: Any) -> AuthenticatedUser | None:
    """The user the SDK's auth middleware put in an ASGI ``scope`` (None: nobody authenticated)."""
    user = scope.get("user") if isinstance(scope, Mapping) else None
    return user if isinstance(user, AuthenticatedUser) else None


def principal_of(scope: Any) -> str:
    """The principal of an ASGI ``scope`` the SDK's auth middleware has seen (``""``: nobody authenticated)."""
    user = _authenticated(scope)
    return "" if user is None else "\0".join(part or "" for part in principal_components(user.access_token))


def identity_of(request: Any) -> str:
    """The identity a request authenticated as (the token's ``subject``), or ``anonymous``."""
    user = _authenticated(getattr(request, "scope", None))
    return ANONYMOUS if user is None else user.access_token.subject or user.access_token.client_id


def _mcp_session(ctx: ServerRequestContext[Any, Any] | None) -> Connection | None:
    """The connection of the MCP session this request was routed to, or None (sessionless HTTP, stdio).

    Its ``session_id``, not the ``mcp-session-id`` header: a 2026-07-28 request may carry any value there
    unchecked, while a connection has a session id only when the SDK's session manager routed the request
    to that stateful session. SDK 2.3 gives a tool's context no public route to its connection; the
    session's private reference is the only one (``ClientNotifier._track`` uses it too).
    """
    connection = getattr(ctx.session, "_connection", None) if ctx is not None else None
    if not isinstance(connection, Connection) or not connection.session_id:
        return None
    return connection


def _auth_settings() -> AuthSettings:
    # The SDK requires an issuer URL with any auth settings, but uses it only for authorization-server routes
    # and protected-resource metadata, neither of which a static token serves (resource_server_url is None).
    return AuthSettings(issuer_url="http://codemode.invalid", resource_server_url=None)  # type: ignore[arg-type]


def _tracing() -> bool:
    """Whether an OpenTelemetry tracer provider is installed (e.g. by ``opentelemetry-instrument``): the SDK's
    span per request is kept then. Without one its spans are no-ops that still cost each request a span's
    context, attributes and trace-context parsing, on the hot path of every execution."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def build_server(
    engine: Engine,
    *,
    verifier: TokenVerifier | None = None,
    handles: Handles | None = None,
    discovery_tools: bool = False,
    expose_skills: bool | None = None,
) -> MCPServer:
    """An MCP server exposing ``execute_python`` backed by ``engine`` (which must be entered).

    The tool description and the ``stubs://`` resources follow the engine's stubs catalog: after each new
    generation they are rebuilt, and connected clients are told what changed (see :class:`ClientNotifier`).
    With ``verifier`` (:class:`codemode.identity.Identities`), its streamable HTTP app answers 401 to any
    request without a bearer token it accepts. ``handles`` signs sessionless clients' handles (pass the one
    :mod:`codemode.http_app` checks; ``Handles(node=...)`` names this node in them, for a load balancer's
    affinity). With ``discovery_tools``, ``search_tools`` and ``describe`` are also MCP tools (for clients that
    do better with them than with discovery inside a program). With ``expose_skills`` (default: the
    ``codemode.expose_skills`` setting) every promoted skill is a tool too.
    """
    notifier = ClientNotifier(InMemorySubscriptionBus())
    handles = handles if handles is not None else Handles()
    parked = ParkingLot(engine.spawn)
    bound: set[str] = set()  # owners whose sessions are closed when their MCP session ends

    async def session_ended(owner: str) -> None:
        bound.discard(owner)
        await engine.close_owner(owner)

    def bind(caller: Caller) -> None:
        """Close a handshake-era HTTP client's sessions when its MCP session ends (its id never comes back:
        nobody could reach them again)."""
        if caller.connection is not None and caller.owner.key not in bound:
            bound.add(caller.owner.key)
            caller.connection.exit_stack.push_async_callback(session_ended, caller.owner.key)

    server: MCPServer = MCPServer(
        "codemode",
        instructions="Call execute_python with a Python program; `from stubs import <server>` to use tools.",
        version=__version__,
        subscriptions=notifier.bus,
        middleware=[notifier],
        token_verifier=verifier,
        auth=_auth_settings() if verifier is not None else None,
    )
    if not _tracing():
        server.middleware[:] = [m for m in server.middleware if not isinstance(m, OpenTelemetryMiddleware)]

    async def execute_python(
        code: Annotated[str, Field(description=CODE_HELP)],
        ctx: Context[Any, Any],
        session: Annotated[str | None, Field(description=SESSION_HELP)] = None,
    ) -> types.CallToolResult | types.InputRequiredResult:
        """Run a Python program in the sandbox (see the tool description)."""
        try:
            request: ServerRequestContext[Any, Any] | None = ctx.request_context
        except ValueError:  # MCPServer.call_tool in process, outside any request: the local client
            request = None
        return await run_program(code, session, ctx, request, ctx.request_state)

    async def run_program(
        code: str,
        session: str | None,
        ctx: Context[Any, Any],
        request: ServerRequestContext[Any, Any] | None,
        resumed: str | None,
    ) -> types.CallToolResult | types.InputRequiredResult:
        """``execute_python``'s body. It reads the request from ``request`` and ``resumed`` (its
        ``request_state``), not from ``ctx``: each property of a ``Context`` costs microseconds."""
        try:
            caller = caller_of(request, session, handles)
        except CallerError as exc:
            return _result(str(exc), is_error=True)
        if caller.handle is not None and not caller.minted and not engine.sessions.owned_by(caller.owner.key):
            # Never a fresh interpreter that silently lost the client's variables (as an ended MCP session).
            error = {"reason": SESSION_GONE}
            raise MCPError(INVALID_REQUEST, f"codemode: {handle_expired(caller.handle)}", error)
        bind(caller)
        await _wait_until_ready(engine, ctx)
        run: ParkedRun | None = None
        capabilities = request.session.client_capabilities if request is not None else None
        if resumed is not None:  # a 2026-07-28 client answering the approval its parked program waits on
            principal = _principal(_http_request(request))
            run = parked.pending(resumed, caller.owner.key, principal=principal, fresh=caller.minted)
            if run is None or run.question is None:
                return _result(
                    "codemode: that approval is no longer pending, and this answer approved nothing (each "
                    "request_state answers one question, once: it was answered already, the program ended, or it "
                    "waited past approval_timeout_s); see codemode history for what it did, and run it again if "
                    "needed",
                    is_error=True,
                )
            run.answer(_approval_answer(ctx.input_responses, run.question[1]))
            caller = run.caller
        elif request is not None and request.protocol_version in MODERN_PROTOCOL_VERSIONS and _can_elicit(capabilities):
            # A 2026-07-28 client that declared elicitation: it answers through InputRequiredResult retries.
            who, where = caller.owner, caller.session
            run = parked.start(
                who.key, lambda run: engine.execute(code, session=where, owner=who, ask=run),
                principal=_principal(_http_request(request)), caller=caller,
            )  # fmt: skip
        try:
            if run is None:
                ask = _asker(ctx) if _can_elicit(capabilities) else None
                outcome = await engine.execute(code, session=caller.session, owner=caller.owner, ask=ask)
            else:
                await run.next_event()
                if run.question is not None:
                    return _input_required(run)
                if run.failure is not None:
                    raise run.failure
                assert run.outcome is not None
                outcome = run.outcome
        except Exception as exc:
            # The program's own failures come back as an Outcome; an exception is codemode's fault.
            logger.exception("execute_python: the engine failed")
            raise MCPError(INTERNAL_ERROR, f"codemode failed to run the program: {_one_line(exc)}") from exc
        result = _result(outcome.text or "(no output)", is_error=outcome.is_error)
        if caller.handle is None:
            return result
        if caller.minted and outcome.result is not None:  # said once, beside the program's own output
            notice = (
                f'[codemode: this ran in a new interpreter; pass session="{caller.handle}" to keep using it '
                "(without it, each call starts a new one)]"
            )
            result.content.append(types.TextContent(type="text", text=notice))
        result.meta = {HANDLE_META_KEY: caller.handle}
        return result

    expose = engine.settings.expose_skills if expose_skills is None else expose_skills
    front = _Front(server, engine, execute_python, run_program, notifier, handles, bind=bind, expose_skills=expose)
    if discovery_tools:
        add_discovery_tools(server, engine)
    revision = engine.skill_store.revision()  # before the first sync: a change during it is not missed
    front.sync()
    if engine.catalog is not None:
        engine.catalog.listeners.append(front.catalog_changed)
    engine.spawn(functools.partial(front.watch_skills, revision))
    return server


SEARCH_HELP = "Words describing what you want to do (tool names weigh most, then descriptions and arguments)."
DESCRIBE_HELP = "The tool as 'server.tool' (a name from search_tools)."


def add_discovery_tools(server: MCPServer, engine: Engine) -> None:
    """Offer the sandbox's discovery functions as MCP tools, read from the current stubs generation.

    They only read the compiled stubs on the host (no upstream call, no program): the same text a program
    gets from ``search_tools()`` and ``describe()``.
    """
    discovery = direct.discovery_for(engine.stubs_path, engine.skill_store.live_dir)

    def current() -> Any:
        if discovery.STUBS_DIR != str(engine.stubs_path):  # a new generation was published
            discovery.use_dir(str(engine.stubs_path))
        return discovery

    def search_tools(
        query: Annotated[str, Field(description=SEARCH_HELP)],
        limit: Annotated[int, Field(ge=1, le=50)] = 10,
    ) -> str:
        """Find upstream tools for a task; call them from execute_python (`from stubs import <server>`)."""
        hits = current().search_tools(query, limit)
        if not hits:
            return "no tool matches; try other words"
        return "\n".join(f"{h['tool']}: {upstream_text(h['summary'])}" for h in hits)

    def describe(tool: Annotated[str, Field(description=DESCRIBE_HELP)]) -> str:
        """The Python signature, types and docs of one upstream tool, as execute_python calls it."""
        try:
            text: str = current().describe(tool)
        except LookupError as exc:
            return f"LookupError: {upstream_text(str(exc))}"
        return upstream_text(text)

    read_only = types.ToolAnnotations(read_only_hint=True, open_world_hint=False)
    server.add_tool(search_tools, name="search_tools", annotations=read_only)
    server.add_tool(describe, name="describe", annotations=read_only)


WARMING_PROGRESS_S = 2.0
"""While the executor warms up (a first compile), a progress notification this often keeps clients that
reset their timeout on progress waiting."""


async def _wait_until_ready(engine: Engine, ctx: Context[Any, Any]) -> None:
    """Hold the call while the executor warms up, telling a client that sent a ``progressToken``."""
    executor = engine.executor
    if executor is None or executor.warming is None:
        return
    ticks = 0
    while (warming := executor.warming) is not None:
        await ctx.report_progress(ticks, None, f"{warming}; the program runs when it is done")
        ticks += 1
        with anyio.move_on_after(WARMING_PROGRESS_S):
            await executor.wait_ready()
    await ctx.report_progress(ticks, None, "ready: running the program")


def elicitation_asker(ctx: Context[Any, Any]) -> Asker | None:
    """How the gate asks the person at this client a question: MCP elicitation, if the client offers it.

    The program is blocked inside its tool call meanwhile, so it resumes with the answer; nothing reruns.
    """
    try:
        capabilities = ctx.client_capabilities
    except (AttributeError, LookupError, ValueError):
        return None
    return _asker(ctx) if _can_elicit(capabilities) else None


def _can_elicit(capabilities: types.ClientCapabilities | None) -> bool:
    return capabilities is not None and capabilities.elicitation is not None


def _asker(ctx: Context[Any, Any]) -> Asker:
    """The :func:`elicitation_asker` of a client that declared elicitation."""

    async def ask(question: str, choices: Sequence[str]) -> str | None:
        options = tuple(choices)
        try:
            result = await ctx.elicit(question, _answer_model(options))
        except NoBackChannelError as exc:
            # Protocol 2026-07-28 without a back-channel: nobody can be asked on this connection.
            raise CannotAsk("the client has no back-channel for elicitation on this connection") from exc
        if result.action != "accept":
            return None
        answer = getattr(result.data, "answer", None)
        return answer if answer in options else None

    return ask


def _answer_model(options: tuple[str, ...]) -> type[BaseModel]:
    """The one-field form the person fills in: ``answer``, one of ``options``."""
    model: type[BaseModel] = create_model(
        "Answer",
        answer=(Literal[options], Field(description="; ".join(options))),  # type: ignore[arg-type]
    )
    return model


APPROVAL_KEY = "approval"
"""The key of the approval question in ``InputRequiredResult.input_requests``."""


def _input_required(run: ParkedRun) -> types.InputRequiredResult:
    assert run.question is not None
    message, options = run.question
    params = types.ElicitRequestFormParams(
        message=message, requested_schema=render_elicitation_schema(_answer_model(options))
    )
    return types.InputRequiredResult(
        input_requests={APPROVAL_KEY: types.ElicitRequest(params=params)}, request_state=run.request_state
    )


def _approval_answer(responses: Mapping[str, Any] | None, options: tuple[str, ...]) -> str | None:
    """The chosen option from a retry's ``input_responses``; anything else (missing, declined) is None."""
    response = (responses or {}).get(APPROVAL_KEY)
    if not isinstance(response, types.ElicitResult) or response.action != "accept":
        return None
    answer = (response.content or {}).get("answer")
    return answer if isinstance(answer, str) and answer in options else None


class _Front:
    """The part of the server that mirrors the engine's current stubs generation."""

    def __init__(
        self,
        server: MCPServer,
        engine: Engine,
        execute_python: Callable[..., Any],
        run_program: Callable[..., Awaitable[types.CallToolResult | types.InputRequiredResult]],
        notifier: ClientNotifier,
        handles: Handles,
        *,
        bind: Callable[[Caller], None] = lambda _caller: None,
        expose_skills: bool = False,
    ) -> None:
        self.server = server
        self.engine = engine
        self.execute_python = execute_python
        """The tool function MCPServer lists (and calls with arguments :func:`_plain_arguments` does not pass)."""
        self.run_program = run_program
        """Its body, which :meth:`_call_execute_python` calls directly."""
        self.notifier = notifier
        self.handles = handles
        self.bind = bind
        self.expose_skills = expose_skills
        self.direct: dict[str, direct.DirectTool] = {}
        """Hybrid mode: the upstream tools offered beside ``execute_python``, by the name the client sees."""
        self.skill_tools: dict[str, SkillTool] = {}
        """``--expose-skills``: the promoted skills offered as tools, by the name the client sees."""
        self._left_out: dict[str, str] = {}
        """Skills not offered and why, as last logged (each reason is logged once, not at every sync)."""
        self.description: str | None = None
        """The ``execute_python`` description listed now (None: not listed)."""
        self.resources: list[types.Resource] = []
        self.stub_files: dict[str, Path] = {}
        """Resource URI → the stub's path inside a generation."""
        lowlevel = server._lowlevel_server
        # MCPServer 2.3 can add a resource but not remove one, so the front answers resources/* itself.
        lowlevel.add_request_handler("resources/list", types.PaginatedRequestParams, self._list_resources)
        lowlevel.add_request_handler("resources/read", types.ReadResourceRequestParams, self._read_resource)
        # Direct tools carry the upstream's own JSON schema, which MCPServer's function tools cannot: the front
        # lists them after its own and answers their calls, passing every other call to MCPServer.
        lowlevel.add_request_handler("tools/list", types.PaginatedRequestParams, self._list_tools)
        lowlevel.add_request_handler("tools/call", types.CallToolRequestParams, self._call_tool)

    def sync(self) -> tuple[bool, bool]:
        """Match the tools and the resources to the engine's index; say which of them changed."""
        index = self.engine.index
        description = tool_description(index, self.engine.settings, skills=self.engine.skills.promoted_count())
        direct_tools = self._direct_tools(index)
        # Hybrid mode with every tool offered directly is plain proxying: execute_python would only cost tokens.
        upstream_tools = sum(len(specs) for specs in (self.engine.hub.tools() if self.engine.hub else {}).values())
        wanted: str | None = None if direct_tools and len(direct_tools) == upstream_tools else description
        skill_tools = self._skill_tools(index, direct_tools)
        tools_changed = (
            wanted != self.description or direct_tools != self.direct
            or [t.key() for t in skill_tools.values()] != [t.key() for t in self.skill_tools.values()]
        )  # fmt: skip
        self.direct = direct_tools
        self.skill_tools = skill_tools
        if wanted != self.description:
            if self.description is not None:
                self.server.remove_tool(TOOL_NAME)
            if wanted is not None:
                self.server.add_tool(
                    self.execute_python,
                    name=TOOL_NAME,
                    description=wanted,
                    annotations=types.ToolAnnotations(title="Run Python with tool access", open_world_hint=True),
                )
            self.description = wanted
        resources, files = stub_resources(index)
        resources_changed = resources != self.resources
        self.resources, self.stub_files = resources, files
        return tools_changed, resources_changed

    def _direct_tools(self, index: dict[str, Any]) -> dict[str, direct.DirectTool]:
        """The tools ``codemode.expose_direct`` selects from the hub's current tools (hybrid mode)."""
        patterns = self.engine.settings.expose_direct
        if not patterns or self.engine.hub is None:
            return {}
        tools = {
            server: [spec for spec in specs if self.engine.offered(spec)]
            for server, specs in self.engine.hub.tools().items()
        }
        auto: set[str] = set()
        if direct.AUTO in patterns:
            costs = direct.code_mode_costs(
                index, self.engine.stubs_path, lambda idx: tool_description(idx, self.engine.settings)
            )
            auto = direct.auto_servers(tools, costs)
        for pattern in direct.unmatched(patterns, tools):
            logger.warning("codemode.expose_direct: %r matches no tool of the connected servers", pattern)
        reserved = {TOOL_NAME, "search_tools", "describe"}
        return {d.name: d for d in direct.select(patterns, tools, auto=auto, reserved=reserved)}

    def _skill_tools(self, index: dict[str, Any], direct_tools: Mapping[str, Any]) -> dict[str, SkillTool]:
        """``--expose-skills``: the promoted skills to offer now; the ones left out are logged with why."""
        if not self.expose_skills:
            return {}
        reserved = {TOOL_NAME, "search_tools", "describe", *direct_tools}
        try:
            tools, left_out = exposed(self.engine.skills, stubs=self.engine.stubs_path, reserved=reserved)
        except Exception:  # a store that cannot be read at all keeps the skill tools offered before
            logger.exception("reading the skill store failed; the skill tools are unchanged")
            return self.skill_tools
        for name, why in left_out.items():
            if self._left_out.get(name) != why:
                logger.warning("skill %s is not offered as a tool: %s", name, why)
        self._left_out = left_out
        return tools

    async def watch_skills(self, since: str | None = None, *, poll_s: float = SKILLS_POLL_S) -> None:
        """Follow the skill store until cancelled: when the promoted set changes (promote, reject, rollback,
        a re-check marking one broken), rebuild the tools and tell the clients if their list changed.

        ``since`` is the store's revision the tools were last built from (None: now)."""
        revision = since
        while True:
            try:
                now = self.engine.skill_store.revision()
                if revision is not None and now != revision:
                    tools_changed, resources_changed = self.sync()
                    await self.notifier.notify(tools=tools_changed, resources=resources_changed)
                revision = now
            except Exception:  # it runs in the engine's task group: a fault here must not end the server
                logger.exception("following the skill store failed; trying again")
            await anyio.sleep(poll_s)

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams
    ) -> types.ListToolsResult:
        own = await self.server.list_tools()
        offered = [types.Tool.model_validate(_offered(d)) for d in self.direct.values()]
        skills = [_skill_tool(t) for t in self.skill_tools.values()]
        return types.ListToolsResult(tools=[*own, *offered, *skills])

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult | types.InputRequiredResult:
        if params.name == TOOL_NAME and self.description is not None:
            return await self._call_execute_python(ctx, params)
        skill = self.skill_tools.get(params.name)
        tool = self.direct.get(params.name)
        if skill is None and tool is None:
            return await self.server._handle_call_tool(ctx, params)  # unknown, or a discovery tool
        context: Context[Any, Any] = Context(request_context=ctx, mcp_server=self.server)
        try:
            caller = caller_of(ctx, None, self.handles)
        except CallerError as exc:
            return _result(str(exc), is_error=True)
        if skill is not None:
            return await self._call_skill(context, caller, skill, params.arguments)
        assert tool is not None
        try:
            reply = await self.engine.call_tool(
                tool.spec.ref, dict(params.arguments or {}), owner=caller.owner, ask=elicitation_asker(context)
            )
        except Exception as exc:
            logger.exception("%s: the engine failed", params.name)
            raise MCPError(INTERNAL_ERROR, f"codemode failed to call {params.name}: {_one_line(exc)}") from exc
        return direct_result(reply)

    async def _call_execute_python(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult | types.InputRequiredResult:
        """``execute_python`` without MCPServer's tool machinery (its argument model, its wrapping), which cost
        more of the host's time per call than the rest of the front; arguments it would not pass through as
        they are (ill-typed, missing, JSON in ``session``) still go to MCPServer, which answers as before."""
        arguments = _plain_arguments(params.arguments)
        if arguments is None:
            return await self.server._handle_call_tool(ctx, params)
        code, session = arguments
        context: Context[Any, Any] = Context(
            request_context=ctx, mcp_server=self.server, input_params=params, subscriptions=self.server._subscriptions
        )
        try:
            result = await self.run_program(code, session, context, ctx, params.request_state)
        except MCPError:
            raise
        except Exception:  # what MCPServer answers for a tool that raised
            logger.exception("Tool %r raised an unexpected exception", TOOL_NAME)
            return _result(f"Error executing tool {TOOL_NAME}", is_error=True)
        return result

    async def _call_skill(
        self, context: Context[Any, Any], caller: Caller, skill: SkillTool, arguments: Mapping[str, Any] | None
    ) -> types.CallToolResult:
        """A skill tool's call: its arguments checked, then the skill run like a program of this client's."""
        try:
            code = skill.program(arguments or {})
        except BadArguments as exc:  # nothing ran: the client reads which argument to fix
            return _result(f"{skill.name}: bad arguments: {exc}", is_error=True)
        self.bind(caller)
        await _wait_until_ready(self.engine, context)
        try:
            outcome = await self.engine.execute(
                code, session=SKILL_SESSION, owner=caller.owner, ask=elicitation_asker(context)
            )
        except Exception as exc:
            logger.exception("%s: the engine failed", skill.name)
            raise MCPError(INTERNAL_ERROR, f"codemode failed to run the skill {skill.name}: {_one_line(exc)}") from exc
        result = _result(outcome.text or "(no output)", is_error=outcome.is_error)
        run = outcome.result
        if not outcome.is_error and run is not None and run.value_is_json:
            result.structured_content = {"result": run.value}  # one shape whatever the skill returns
        return result

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


def _plain_arguments(arguments: Mapping[str, Any] | None) -> tuple[str, str | None] | None:
    """``(code, session)`` when MCPServer's validation would hand them to ``execute_python`` unchanged, else None.

    It ignores other keys, and reads a ``str`` given for a field not typed plain ``str`` as JSON when that parses
    to a list, an object, a bool or null (``session="null"`` is no session; ``session="[1]"`` is refused).
    """
    arguments = arguments or {}
    code, session = arguments.get("code"), arguments.get("session")
    if not isinstance(code, str):
        return None
    if session is not None and (not isinstance(session, str) or _json_shaped(session)):
        return None
    return code, session


def _json_shaped(text: str) -> bool:
    if text.lstrip(" \t\n\r")[:1] not in ("[", "{", "t", "f", "n"):  # saves a failing json.loads per call
        return False
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return False
    return not isinstance(value, str | int | float)


def _offered(tool: direct.DirectTool) -> dict[str, Any]:
    """The ``tools/list`` entry of a direct tool: the upstream's own, its name and title shown as codemode
    shows any upstream text (:func:`upstream_text`); the schema goes as it is (the upstream checks calls
    against it)."""
    entry: dict[str, Any] = {**tool.spec.to_json(), "name": tool.name}
    for key in ("title", "description"):
        if isinstance(entry.get(key), str):
            entry[key] = upstream_text(entry[key])
    return entry


def _skill_tool(tool: SkillTool) -> types.Tool:
    """The ``tools/list`` entry of a skill tool (its description a program wrote, shown as upstream text)."""
    return types.Tool(
        name=tool.name,
        description=upstream_text(tool.description),
        input_schema=tool.schema.input_schema,
        annotations=types.ToolAnnotations(
            title=f"skill {tool.skill} v{tool.version}", read_only_hint=tool.read_only, open_world_hint=True
        ),
    )


def direct_result(reply: Reply) -> types.CallToolResult:
    """What a direct tool call returns: the upstream's own result, or the gate's refusal as a tool error."""
    if reply.raw is not None and (reply.ok or reply.kind == "tool"):
        return reply.raw
    return _result(f"{reply.kind or 'error'}: {reply.message}", is_error=True)


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
                    description=upstream_text((tool.get("summary") or "")[:200]),
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
