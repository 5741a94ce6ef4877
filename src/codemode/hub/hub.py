"""The hub: every configured upstream server, started together, called by ``ToolRef``.

::

    async with Hub(config) as hub:
        hub.tools()                          # {"notes": [ToolSpec, ...], ...}
        await hub.call_tool(ToolRef("notes", "search_notes"), {"query": "restock"})

One bad server degrades, never aborts: it is reported in :meth:`Hub.status` and the others keep working.
No ``ExceptionGroup`` leaves the hub.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import mcp_types as types
from anyio.abc import TaskGroup

from codemode import paths
from codemode.config import Config
from codemode.errors import UpstreamError
from codemode.hub.models import ToolRef, ToolSpec
from codemode.hub.upstream import Upstream, UpstreamState


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
    """Client sessions to all upstream servers of a :class:`~codemode.config.Config`."""

    def __init__(
        self,
        config: Config,
        *,
        log_dir: Path | None = None,
        on_tools_changed: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.config = config
        self.state = HubState.NEW
        self._log_dir = log_dir if log_dir is not None else paths.log_dir()
        self._upstreams = {
            name: Upstream(name, cfg, log_dir=self._log_dir, on_tools_changed=on_tools_changed)
            for name, cfg in config.servers.items()
        }
        self._tg: TaskGroup | None = None

    async def __aenter__(self) -> Hub:
        if self.state is not HubState.NEW:
            raise RuntimeError("a Hub can be entered once")
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        try:
            for upstream in self._upstreams.values():
                upstream.attach(self._tg)
            async with anyio.create_task_group() as starters:
                for upstream in self._upstreams.values():
                    starters.start_soon(upstream.start)
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
        # The owner task group was entered in __aenter__, so it must be exited here, outside any scope
        # opened since (anyio cancel scopes nest strictly).
        tg, self._tg = self._tg, None
        if tg is not None:
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)

    # -- queries -------------------------------------------------------------------------------

    @property
    def servers(self) -> list[str]:
        return list(self._upstreams)

    def tools(self) -> dict[str, list[ToolSpec]]:
        """Tools per server, for every server that has listed them (failed servers map to ``[]``)."""
        return {name: list(u.tools) for name, u in self._upstreams.items() if not u.config.disabled}

    def status(self) -> list[ServerStatus]:
        """One line per configured server: state, transport, tool count and the error if any."""
        return [
            ServerStatus(
                name=name,
                state=u.state.value,
                transport=u.config.type,
                tool_count=len(u.tools),
                error=u.error,
                version=u.server_version,
                instructions=u.instructions,
            )
            for name, u in self._upstreams.items()
        ]

    def summaries(self) -> dict[str, str]:
        """Each ready server's own description of itself (its ``instructions``), for stub docs and the front."""
        return {name: u.instructions or "" for name, u in self._upstreams.items() if u.instructions}

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
        upstream = self._upstreams.get(ref.server)
        if upstream is None:
            known = ", ".join(sorted(self._upstreams)) or "none"
            raise UpstreamError(ref.server, f"unknown server (connected: {known})")
        return await upstream.call_tool(ref.tool, args, timeout_s=timeout_s)

    async def restart(self, server: str) -> None:
        """Stop and start one server again (used after it died, or on request)."""
        upstream = self._upstreams[server]
        await upstream.aclose()
        upstream.state = UpstreamState.STARTING
        await upstream.start()
