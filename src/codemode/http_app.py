"""The HTTP surface of ``codemode serve --http``: the SDK's streamable HTTP app plus what a team needs.

* ``/mcp``: the MCP endpoint (the SDK's), behind the bearer-token check when tokens are configured.
* ``/healthz``: 200 while the hub runs, 503 otherwise, for a load balancer. It needs no token: a balancer's
  probe carries none, and the answer says nothing but up or down.
* ``/metrics``: Prometheus text (:mod:`codemode.metrics`). It needs a token unless ``metrics_public``: it
  names the upstream servers and shows the load and the errors, which is for the operators, not for
  whoever can reach the port.
* Any other path: 401 without a token, like ``/mcp``: an unauthenticated caller is answered nothing else.

**Session gone.** Sessions live in one node's memory. A request naming a session this node does not hold
(it restarted, or a load balancer sent the request to another node) is answered HTTP 404 with a JSON-RPC
error saying the session is gone and how to start a new one, never a fresh interpreter that silently lost
the client's variables. For an MCP session (``mcp-session-id``) the SDK already answers 404 "Session not
found", also for a session another identity opened; its message is replaced with the clear one. A
sessionless client's handle travels in the JSON body (``session`` or ``_meta``), so a POST to ``/mcp`` is
read here first and a handle this node did not sign for the caller is answered 404 before the SDK runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping

import uvicorn
from mcp.server.auth.middleware.bearer_auth import RequireAuthMiddleware
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE
from mcp_types import INVALID_REQUEST
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from codemode.engine import Engine
from codemode.front import SESSION_GONE, handle_gone, identity_of, presented_handle, principal_of
from codemode.hub.hub import HubState
from codemode.identity import client_key
from codemode.metrics import Metrics
from codemode.session_names import HANDLE_PREFIX, Handles

MCP_PATH = "/mcp"
HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"
_SDK_NOT_FOUND = b"Session not found"


def http_app(
    server: MCPServer,
    engine: Engine,
    *,
    handles: Handles,
    auth: bool,
    metrics_public: bool = False,
    host: str = "127.0.0.1",
) -> Starlette:
    """The ASGI app ``serve --http`` runs: the SDK's ``/mcp`` plus ``/healthz`` and ``/metrics``.

    ``server`` must have been built with the same ``handles`` (:func:`codemode.front.build_server`) and,
    when ``auth``, with a token verifier.
    """
    metrics = Metrics(engine)

    async def healthz(request: Request) -> Response:
        running = engine.hub is not None and engine.hub.state is HubState.RUNNING and engine.executor is not None
        return JSONResponse({"status": "ok" if running else "unavailable"}, status_code=200 if running else 503)

    async def metrics_page(request: Request) -> Response:
        return Response(metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    server.custom_route(HEALTH_PATH, methods=["GET"], include_in_schema=False)(healthz)
    server.custom_route(METRICS_PATH, methods=["GET"], include_in_schema=False)(metrics_page)
    # An MCP session lasts as long as its interpreters (session_idle_s): once they expire, its id answers 404
    # "session gone" rather than reaching a fresh interpreter.
    idle_s = engine.settings.session_idle_s
    app = server.streamable_http_app(streamable_http_path=MCP_PATH, host=host, session_idle_timeout=idle_s)
    public = {HEALTH_PATH, *([METRICS_PATH] if metrics_public else [])}
    # Appended, so it runs inside the SDK's authentication middleware: the request's user is known.
    sessions = McpSessions(per_client=MCP_SESSIONS_PER_CLIENT, idle_s=idle_s)
    app.user_middleware.append(
        Middleware(_Gatekeeper, handles=handles, auth=auth, public=frozenset(public), sessions=sessions)
    )
    return app


async def serve_http(
    app: Starlette, *, host: str, port: int, log_level: str = "info", trusted_proxies: list[str] | None = None
) -> None:
    """Serve ``app`` with uvicorn until cancelled. ``X-Forwarded-For`` is read only from ``trusted_proxies``
    (uvicorn's own default trusts any local process to write it)."""
    trusted = list(trusted_proxies or [])
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level.lower(), proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or [], limit_concurrency=MAX_CONNECTIONS,
    )  # fmt: skip
    await uvicorn.Server(config).serve()


MCP_SESSIONS_PER_CLIENT = 64
"""Open MCP sessions (handshake era) one client may hold. The SDK keeps any number, each for its idle time: one
client opening them without end (initialize only) held 10,000 and 450 MB, and every other client was refused."""


OPEN_REQUESTS_PER_CLIENT = 2 * MCP_SESSIONS_PER_CLIENT
"""Requests of one client the server holds open at once, streams included (an MCP session's GET stream, a
2026-07-28 ``subscriptions/listen``): room for a GET stream and a call on each of its MCP sessions. One client
held 5,000 listen streams (200 MB) before."""
MAX_CONNECTIONS = 2048
"""Connections and requests the server holds at once, all clients together (uvicorn answers 503 past it)."""


class McpSessions:
    """The handshake-era MCP sessions each client holds (a client: :func:`codemode.identity.client_key`), as the
    SDK keeps them: from the ``mcp-session-id`` its ``initialize`` answer names until a DELETE, or ``idle_s``
    without a request (the SDK's own idle timeout)."""

    def __init__(self, *, per_client: int, idle_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_client = per_client
        self.idle_s = idle_s
        self._clock = clock
        self._held: dict[str, tuple[str, float]] = {}
        """MCP session id → (client, last request)."""

    def full(self, client: str) -> bool:
        """Whether ``client`` holds as many open sessions as it may (expired ones are forgotten first)."""
        now = self._clock()
        for session_id, (_, seen) in list(self._held.items()):
            if now - seen > self.idle_s:
                del self._held[session_id]
        return sum(1 for held, _ in self._held.values() if held == client) >= self.per_client

    def opened(self, session_id: str, client: str) -> None:
        self._held[session_id] = (client, self._clock())

    def used(self, session_id: str) -> None:
        held = self._held.get(session_id)
        if held is not None:
            self._held[session_id] = (held[0], self._clock())

    def closed(self, session_id: str) -> None:
        self._held.pop(session_id, None)


class _Gatekeeper:
    """ASGI middleware: authentication on every path but the public ones, the session-gone answer, and each
    client's cap on open MCP sessions."""

    def __init__(
        self, app: ASGIApp, *, handles: Handles, auth: bool, public: frozenset[str], sessions: McpSessions
    ) -> None:
        self.app = app
        self.handles = handles
        self.public = public
        self.sessions = sessions
        self.guarded: ASGIApp = RequireAuthMiddleware(self._inner, [], None) if auth else self._inner
        self._open: dict[str, int] = {}
        """Requests (streams included) each client has open."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.public:
            await self.app(scope, receive, send)
            return
        await self.guarded(scope, receive, send)

    async def _inner(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] != MCP_PATH:
            await self.app(scope, receive, send)
            return
        client = client_key(identity_of(Request(scope)), _peer(scope))
        held = self._open.get(client, 0)
        if held >= OPEN_REQUESTS_PER_CLIENT:
            await _too_many_open(OPEN_REQUESTS_PER_CLIENT)(scope, receive, send)
            return
        self._open[client] = held + 1
        try:
            await self._serve(scope, receive, send, client)
        finally:
            left = self._open[client] - 1
            if left:
                self._open[client] = left
            else:
                del self._open[client]

    async def _serve(self, scope: Scope, receive: Receive, send: Send, client: str) -> None:
        session_id = Headers(scope=scope).get("mcp-session-id")
        if scope["method"] == "POST":
            chunks, complete = await _read_body(receive, DEFAULT_MAX_REQUEST_BODY_SIZE)
            body = b"".join(bytes(m.get("body", b"")) for m in chunks)
            # Only a body naming a handle is parsed here (an escaped one still meets caller_of's check).
            if complete and HANDLE_PREFIX.encode() in body:  # a larger body is the SDK's to refuse
                gone = self._gone_handle(body, scope)
                if gone is not None:
                    await gone(scope, receive, send)
                    return
            if session_id is None:
                if _may_initialize(body, complete) and self.sessions.full(client):
                    await _too_many_sessions(self.sessions.per_client)(scope, receive, send)
                    return
                # Whatever the request looked like, an answer that names a new MCP session counts for its client.
                send = _on_success(send, _opened(self.sessions, client))
            receive = _replay(chunks, receive)
        if session_id is not None:
            if scope["method"] == "DELETE":  # forgotten once the SDK has ended it (a refused DELETE ends nothing)
                send = _on_success(send, lambda _: self.sessions.closed(session_id))
            else:
                self.sessions.used(session_id)
            send = _explain_not_found(send, session_id)
        await self.app(scope, receive, send)

    def _gone_handle(self, body: bytes, scope: Scope) -> Response | None:
        """The 404 for a ``tools/call`` naming a handle this node did not sign for the caller, or None."""
        try:
            message = json.loads(body)
        except ValueError:
            return None
        if not isinstance(message, dict) or message.get("method") != "tools/call":
            return None
        params = message.get("params")
        if not isinstance(params, Mapping):
            return None
        arguments = params.get("arguments")
        requested = arguments.get("session") if isinstance(arguments, Mapping) else None
        meta = params.get("_meta")
        handle, _ = presented_handle(
            requested if isinstance(requested, str) else None, meta if isinstance(meta, Mapping) else None
        )
        if handle is None or self.handles.owner(handle, principal=principal_of(scope)) is not None:
            return None
        request_id = message.get("id")
        return session_gone(
            handle_gone(handle),
            request_id if isinstance(request_id, str | int) and not isinstance(request_id, bool) else None,
        )


def _may_initialize(body: bytes, complete: bool) -> bool:
    """Whether a request may be an ``initialize`` (which opens an MCP session), as the SDK will parse it: the
    method may be written with JSON escapes (``"\\u0069nitialize"``), so a body that has either the word or an
    escape is parsed. One not read whole is taken to be one."""
    if not complete:
        return True
    if b"initialize" not in body and b"\\u" not in body:
        return False
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return False  # the SDK refuses it: no session opens
    messages = message if isinstance(message, list) else [message]
    return any(isinstance(m, dict) and m.get("method") == "initialize" for m in messages)


def _peer(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _too_many_sessions(limit: int) -> Response:
    message = (
        f"codemode: this client holds {limit} open MCP sessions, the most it may: end one (DELETE with its "
        "mcp-session-id) or wait until one is idle past session_idle_s"
    )
    error = {"code": INVALID_REQUEST, "message": message}
    return JSONResponse({"jsonrpc": "2.0", "id": None, "error": error}, status_code=429)


def _too_many_open(limit: int) -> Response:
    message = (
        f"codemode: this client has {limit} requests open (streams included), the most it may: close a stream "
        "(an MCP session's GET, a subscriptions/listen) before opening another"
    )
    error = {"code": INVALID_REQUEST, "message": message}
    return JSONResponse({"jsonrpc": "2.0", "id": None, "error": error}, status_code=429)


def _on_success(send: Send, act: Callable[[Headers], None]) -> Send:
    """``send``, calling ``act`` with the answer's headers when its status is a success (2xx)."""

    async def watching(message: Message) -> None:
        if message["type"] == "http.response.start" and 200 <= int(message.get("status", 0)) < 300:
            act(Headers(raw=message.get("headers", [])))
        await send(message)

    return watching


def _opened(sessions: McpSessions, client: str) -> Callable[[Headers], None]:
    """Record for ``client`` the MCP session an answer opens (its ``mcp-session-id`` header)."""

    def note(headers: Headers) -> None:
        opened = headers.get("mcp-session-id")
        if opened is not None:
            sessions.opened(opened, client)

    return note


def session_gone(message: str, request_id: str | int | None = None) -> Response:
    """HTTP 404 with the JSON-RPC error telling a client its session is gone."""
    error = {"code": INVALID_REQUEST, "message": f"codemode: {message}", "data": {"reason": SESSION_GONE}}
    return JSONResponse({"jsonrpc": "2.0", "id": request_id, "error": error}, status_code=404)


def _mcp_session_gone(session_id: str) -> Response:
    return session_gone(
        f"MCP session {session_id[:12]}… is gone: this server does not hold it (it ended or expired, it was opened "
        "by another client, on another node, or before this server restarted) and its variables are lost; start "
        "a new MCP session (initialize again without the mcp-session-id header)"
    )


async def _read_body(receive: Receive, limit: int) -> tuple[list[Message], bool]:
    """The request's body messages, up to ``limit`` bytes; whether they are all of it."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, False  # a disconnect: replayed as it came
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            return messages, True
        if size > limit:
            return messages, False


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` giving ``messages`` again, then (if they were not all) the rest of the request."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


def _explain_not_found(send: Send, session_id: str) -> Send:
    """``send``, with the SDK's 404 "Session not found" replaced by the session-gone answer."""
    held: list[Message] = []

    async def explain(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] == 404:
            held.append(message)
            return
        if held and message["type"] == "http.response.body":
            held.append(message)
            if message.get("more_body", False):
                return
            body = b"".join(m.get("body", b"") for m in held[1:])
            if _SDK_NOT_FOUND in body:
                await _mcp_session_gone(session_id)({"type": "http"}, _no_receive, send)
            else:
                for kept in held:
                    await send(kept)
            held.clear()
            return
        await send(message)

    return explain


async def _no_receive() -> Message:  # a Response never reads the request
    return {"type": "http.disconnect"}
