"""What the hub needs from one upstream server: the :class:`Upstream` protocol and its lifecycle states.

Implementations: :class:`~codemode.hub.mcp.McpUpstream` (an MCP server over stdio, streamable HTTP or
SSE) and :class:`~codemode.hub.fake.FakeUpstream` (in process, for tests). This module imports no client
machinery, so code that only needs the protocol stays light.

The hub drives an upstream like this::

    upstream.on_change = notify          # set before start; called with the upstream's name
    upstream.attach(task_group)          # where any background task of the upstream lives
    await upstream.start()               # never raises: a failure lands in state / error
    await upstream.call_tool("search", {"query": "x"}, timeout_s=30)
    await upstream.restart()
    await upstream.aclose()              # idempotent
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import mcp_types
    from anyio.abc import TaskGroup

    from codemode.hub.models import ToolSpec


class UpstreamState(StrEnum):
    """Lifecycle of one upstream connection."""

    STARTING = "starting"
    READY = "ready"
    FAILED = "failed"
    """Could not start; ``error`` says why. Retried on the next call."""
    DIED = "died"
    """Was ready, then the connection ended; reconnected on the next call."""
    DISABLED = "disabled"
    CLOSED = "closed"


class Upstream(Protocol):
    """One upstream server as the hub sees it: its tools, its state, and calls into it.

    The attributes are read by the hub (``status()``, ``tools()``); only the upstream changes them,
    except ``on_change``, which the hub sets.
    """

    @property
    def name(self) -> str:
        """The server's name in the hub; every ``ToolSpec.server`` of ``tools`` equals it."""
        ...

    @property
    def state(self) -> UpstreamState: ...

    @property
    def error(self) -> str | None:
        """Why the upstream is failed or died, in one line (None when it is fine)."""
        ...

    @property
    def tools(self) -> list[ToolSpec]:
        """The tools it listed last (``[]`` before a successful start)."""
        ...

    @property
    def server_version(self) -> str | None: ...

    @property
    def instructions(self) -> str | None:
        """The server's own description of itself, if it gave one."""
        ...

    @property
    def transport(self) -> str:
        """A label for ``status()``: ``"stdio"``, ``"http"``, ``"sse"``, ``"fake"``..."""
        ...

    @property
    def disabled(self) -> bool:
        """Configured off: never started, and calls raise ``UpstreamError``."""
        ...

    on_change: Callable[[str], None] | None
    """Called with ``name`` after the upstream re-listed its tools while running.

    Synchronous and must not block: the hub's notifier only queues the name, and the hub's own task
    delivers it. The upstream's message loop therefore never waits for whoever reacts to the change.
    """

    def attach(self, tg: TaskGroup) -> None:
        """Give the upstream the task group its background tasks (if any) will live in. Call before ``start``."""
        ...

    async def start(self) -> None:
        """Connect and list tools. Never raises: a failure lands in ``state`` and ``error``."""
        ...

    async def call_tool(
        self, tool: str, args: dict[str, Any], *, timeout_s: float | None = None
    ) -> mcp_types.CallToolResult:
        """Call one tool. A tool's own failure is an ``is_error`` result, returned, not raised.

        Raises:
            UpstreamError: the server is not running and could not be (re)started.
            ToolCallError: the call timed out, or failed at the protocol level, or the server died in it.
        """
        ...

    async def restart(self) -> None:
        """Stop and start again (after it died, or on request). Never raises, like ``start``."""
        ...

    async def aclose(self) -> None:
        """Stop it for good. Idempotent."""
        ...


__all__ = ["Upstream", "UpstreamState"]
