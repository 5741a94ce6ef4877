"""The hub: every upstream server, started together, called by ``ToolRef``.

::

    async with Hub(config, on_tools_changed=recompile) as hub:
        hub.tools()                          # {"notes": [ToolSpec, ...], ...}
        await hub.call_tool(ToolRef("notes", "search_notes"), {"query": "restock"})
        await hub.mount("calc", FakeUpstream("calc", tools, handler))   # recompile("calc") follows
        await hub.unmount("calc")

Upstreams come from the config (:class:`~codemode.hub.mcp.McpUpstream`), from the ``upstreams`` argument,
and from :meth:`Hub.mount` at run time; the hub sees each only through the
:class:`~codemode.hub.upstream.Upstream` protocol.

One bad server degrades, never aborts: it is reported in :meth:`Hub.status` and the others keep working.
No ``ExceptionGroup`` leaves the hub.

Tool-list changes reach ``on_tools_changed(server)`` from a dispatcher task of the hub, never from inside an
upstream's connection: an upstream only queues its name. Pending names are coalesced, and the callback runs
for one server at a time, so a slow recompile neither stalls a connection nor overlaps another. An exception
from the callback is logged and the dispatcher carries on.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import mcp_types as types
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from codemode import paths
from codemode.config import AnyServer, Config, OpenApiServer
from codemode.errors import UpstreamError
from codemode.hub.mcp import McpUpstream
from codemode.hub.models import UNAVAILABLE, ToolRef, ToolSpec
from codemode.hub.upstream import Upstream, UpstreamState

logger = logging.getLogger(__name__)


_RETRY_TICK_S = 0.5
_RETRY_FIRST_S = 1.0
_RETRY_MAX_S = 60.0


class HubState(StrEnum):
    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"


@dataclass(frozen=True)
class ServerStatus:
    """What :meth:`Hub.status` reports for one server."""

    name: str
    state: str
    transport: str
    tool_count: int
    error: str | None
    version: str | None
    instructions: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "transport": self.transport,
            "tools": self.tool_count,
            "error": self.error,
            "version": self.version,
        }


class Hub:
    """Client sessions to the upstream servers of a :class:`~codemode.config.Config`, plus any mounted ones.

    ``upstreams`` join the configured servers (the config may have none): ``Hub(Config(), upstreams={"calc":
    FakeUpstream("calc", ...)})``. ``on_tools_changed(server)`` is awaited after a server's tool list
    changed, or it was mounted or unmounted; see the module docstring for how it is delivered.

    Raises:
        ValueError: an ``upstreams`` key names a configured server, or differs from its upstream's ``name``.
    """

    def __init__(
        self,
        config: Config,
        *,
        log_dir: Path | None = None,
        on_tools_changed: Callable[[str], Awaitable[None]] | None = None,
        upstreams: Mapping[str, Upstream] | None = None,
    ) -> None:
        self.config = config
        self.state = HubState.NEW
        self._log_dir = log_dir if log_dir is not None else paths.log_dir()
        self._on_tools_changed = on_tools_changed
        self._upstreams: dict[str, Upstream] = {
            name: upstream_for(name, cfg, log_dir=self._log_dir) for name, cfg in config.servers.items()
        }
        for name, upstream in (upstreams or {}).items():
            self._check_new(name, upstream)
            self._upstreams[name] = upstream
        for upstream in self._upstreams.values():
            upstream.on_change = self._queue_change
        self._tg: TaskGroup | None = None
        self._changes: MemoryObjectSendStream[str] | None = None

    async def __aenter__(self) -> Hub:
        if self.state is not HubState.NEW:
            raise RuntimeError("a Hub can be entered once")
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        try:
            # Unbounded, so the upstreams' notifier never blocks; the dispatcher coalesces what piles up.
            self._changes, receive = anyio.create_memory_object_stream[str](max_buffer_size=math.inf)
            self._tg.start_soon(self._dispatch_changes, receive)
            for upstream in self._upstreams.values():
                upstream.attach(self._tg)
            async with anyio.create_task_group() as starters:
                for upstream in self._upstreams.values():
                    starters.start_soon(upstream.start)
            self._tg.start_soon(self._retry_failed)
        except BaseException:
            await self._shutdown()
            raise
        self.state = HubState.RUNNING
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._shutdown()

    async def aclose(self) -> None:
        """Stop every upstream server. Idempotent."""
        await self._shutdown()

    async def _shutdown(self) -> None:
        if self.state is HubState.CLOSED:
            return
        self.state = HubState.CLOSED
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as closers:
                for upstream in self._upstreams.values():
                    closers.start_soon(upstream.aclose)
        if self._changes is not None:
            self._changes.close()  # changes announced from now on have nobody left to tell
        # The owner task group was entered in __aenter__, so it must be exited here, outside any scope
        # opened since (anyio cancel scopes nest strictly).
        tg, self._tg = self._tg, None
        if tg is not None:
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)

    # -- mounting ------------------------------------------------------------------------------

    async def mount(self, name: str, upstream: Upstream) -> None:
        """Add an upstream to the running hub and start it; ``on_tools_changed(name)`` follows.

        Like a configured server, one that fails to start is kept, reported by :meth:`status` and retried
        on the next call.

        Raises:
            UpstreamError: the hub is not running.
            ValueError: ``name`` is taken, or is not ``upstream.name``.
        """
        tg = self._tg
        if self.state is not HubState.RUNNING or tg is None:
            raise UpstreamError(name, f"cannot mount: the hub is {self.state.value}")
        self._check_new(name, upstream)
        # Registered before the first await, so a second mount of the same name is refused at once.
        self._upstreams[name] = upstream
        upstream.on_change = self._queue_change
        try:
            upstream.attach(tg)
            await upstream.start()
        except BaseException:
            # Cancelled while starting: leave nothing half-mounted behind.
            if self._upstreams.get(name) is upstream:
                del self._upstreams[name]
            upstream.on_change = None
            with anyio.CancelScope(shield=True):
                await upstream.aclose()
            raise
        self._queue_change(name)

    async def unmount(self, name: str) -> None:
        """Stop an upstream and remove it from the hub; ``on_tools_changed(name)`` follows.

        Raises:
            UpstreamError: no server of that name, or the hub is not running.
        """
        if self.state is not HubState.RUNNING:
            raise UpstreamError(name, f"cannot unmount: the hub is {self.state.value}")
        upstream = self._get(name)
        del self._upstreams[name]
        upstream.on_change = None
        # Shielded: a cancelled unmount must still stop the server (aclose bounds its own waits).
        with anyio.CancelScope(shield=True):
            await upstream.aclose()
        self._queue_change(name)

    def _check_new(self, name: str, upstream: Upstream) -> None:
        if name in self._upstreams:
            raise ValueError(f"{name}: the hub already has a server of that name")
        if upstream.name != name:
            # ToolSpec.server comes from the upstream; a second name would split one server's identity.
            raise ValueError(f"{name}: the upstream is named {upstream.name!r}; add it under that name")

    # -- change events -------------------------------------------------------------------------

    def _queue_change(self, server: str) -> None:
        """The upstreams' ``on_change``: queue the name and return at once (called from their message loops)."""
        changes = self._changes
        if changes is None:
            return  # not started yet: the tool lists are read after start anyway
        try:
            changes.send_nowait(server)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass  # the hub is closing: nobody is left to recompile for

    async def _dispatch_changes(self, receive: MemoryObjectReceiveStream[str]) -> None:
        """Deliver queued changes one at a time, each server once however often it was queued meanwhile."""
        with receive:
            async for first in receive:
                pending = {first: None}  # a dict: ordered, and a name queued twice is delivered once
                while True:
                    try:
                        pending[receive.receive_nowait()] = None
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                for server in pending:
                    await self._deliver_change(server)

    async def _deliver_change(self, server: str) -> None:
        if self._on_tools_changed is None:
            return
        try:
            await self._on_tools_changed(server)
        except Exception:
            # The callback belongs to someone else (the engine's recompile): its failure must be visible,
            # but must not stop later changes from being delivered.
            logger.exception("hub: on_tools_changed(%r) failed", server)

    # -- queries -------------------------------------------------------------------------------

    @property
    def servers(self) -> list[str]:
        """Names of all servers in the hub, configured and mounted."""
        return list(self._upstreams)

    def tools(self) -> dict[str, list[ToolSpec]]:
        """Tools per server, for every enabled server (failed servers map to ``[]``)."""
        return {
            name: list(u.tools) if u.state is not UpstreamState.FAILED else []
            for name, u in self._upstreams.items()
            if not u.disabled
        }

    def status(self) -> list[ServerStatus]:
        """One line per server: state, transport, tool count and the error if any."""
        return [
            ServerStatus(
                name=name,
                state=u.state.value,
                transport=u.transport,
                tool_count=len(u.tools),
                error=u.error,
                version=u.server_version,
                instructions=u.instructions,
            )
            for name, u in self._upstreams.items()
        ]

    def summaries(self) -> dict[str, str]:
        """Each server's description (the config's ``description``, else the server's own ``instructions``),
        for stub docs and the front; for a server that is down, why (so ``list_servers()`` and the tool
        description say so)."""
        # A ``description`` in the config is the user's word for the server: it wins over the server's own.
        described = {name: entry.description for name, entry in self.config.servers.items() if entry.description}
        out = {
            name: described.get(name) or u.instructions or ""
            for name, u in self._upstreams.items()
            if described.get(name) or u.instructions
        }
        for name, reason in self.unavailable().items():
            out[name] = f"{UNAVAILABLE}{reason} (codemode retries it)"
        return out

    def unavailable(self) -> dict[str, str]:
        """Servers that failed to start, and why (host diagnostics such as stderr left out)."""
        return {
            name: (u.error or "not running").partition(" (stderr: ")[0]
            for name, u in self._upstreams.items()
            if not u.disabled and u.state is UpstreamState.FAILED
        }

    async def _retry_failed(self) -> None:
        """Start servers that failed again, backing off per server (1 s, 2 s, 4 s ... up to a minute).

        A server that comes up announces its tools like any change, so its stubs appear without a restart.
        """
        delays: dict[str, float] = {}
        due: dict[str, float] = {}
        while True:
            await anyio.sleep(_RETRY_TICK_S)
            now = anyio.current_time()
            for name, upstream in list(self._upstreams.items()):
                if upstream.disabled or not _failed(upstream):
                    delays.pop(name, None)
                    due.pop(name, None)
                    continue
                if name not in due:
                    delays[name] = _RETRY_FIRST_S
                    due[name] = now + delays[name]
                elif now >= due[name]:
                    await upstream.start()
                    if not _failed(upstream):
                        self._queue_change(name)  # its tools (and its summary) change: recompile
                        continue
                    delays[name] = min(delays[name] * 2, _RETRY_MAX_S)
                    due[name] = anyio.current_time() + delays[name]

    def find(self, ref: ToolRef) -> ToolSpec | None:
        """The spec of a tool, or None when the server or tool is unknown."""
        upstream = self._upstreams.get(ref.server)
        if upstream is None:
            return None
        return next((t for t in upstream.tools if t.name == ref.tool), None)

    # -- calls ---------------------------------------------------------------------------------

    async def call_tool(
        self, ref: ToolRef, args: dict[str, Any], *, timeout_s: float | None = None
    ) -> types.CallToolResult:
        """Call an upstream tool; a dead or failed server is (re)started first.

        Raises:
            UpstreamError: unknown server, or it could not be started.
            ToolCallError: timeout or protocol failure of this call.
        """
        if self.state is not HubState.RUNNING:
            raise UpstreamError(ref.server, f"hub is {self.state.value}")
        return await self._get(ref.server).call_tool(ref.tool, args, timeout_s=timeout_s)

    async def restart(self, server: str) -> None:
        """Stop and start one server again (used after it died, or on request); see :meth:`status` after.

        Raises:
            UpstreamError: unknown server, or the hub is not running.
        """
        if self.state is not HubState.RUNNING:
            raise UpstreamError(server, f"hub is {self.state.value}")
        await self._get(server).restart()

    def _get(self, server: str) -> Upstream:
        upstream = self._upstreams.get(server)
        if upstream is None:
            known = ", ".join(sorted(self._upstreams)) or "none"
            raise UpstreamError(server, f"unknown server (connected: {known})")
        return upstream


def upstream_for(name: str, config: AnyServer, *, log_dir: Path | None = None) -> Upstream:
    """The upstream for one server config: an MCP server, or an OpenAPI service."""
    if isinstance(config, OpenApiServer):
        from codemode.hub.openapi import OpenApiUpstream

        return OpenApiUpstream(name, config)
    return McpUpstream(name, config, log_dir=log_dir)


def _failed(upstream: Upstream) -> bool:
    return upstream.state is UpstreamState.FAILED
