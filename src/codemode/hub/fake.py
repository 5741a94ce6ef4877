"""An in-process upstream for tests: tools you declare, answered by a function you pass.

::

    from codemode.config import Config
    from codemode.hub import FakeUpstream, Hub, ToolRef, ToolSpec

    def handler(tool: str, args: dict[str, Any]) -> object:
        if tool == "add":
            return {"sum": args["a"] + args["b"]}      # dict -> structured content (+ its JSON as text)
        raise RuntimeError("boom")                     # -> ToolCallError("calc.boom: RuntimeError: boom")

    calc = FakeUpstream("calc", [ToolSpec("calc", "add"), {"name": "boom"}], handler)
    async with Hub(Config(), upstreams={"calc": calc}) as hub:
        result = await hub.call_tool(ToolRef("calc", "add"), {"a": 1, "b": 2})
        assert result.structured_content == {"sum": 3}
        calc.set_tools([])                             # the hub's on_tools_changed("calc") follows

What a handler may do (it may be sync or async, and is called on the event loop, so it must not block):

- return a ``CallToolResult``: passed through as is (``is_error=True`` models a tool's own failure);
- return a ``dict``: structured content plus its JSON as text; a ``str``: one text block; any other
  JSON value (list, number, bool, None): its JSON as one text block, as many MCP servers send it;
- raise :class:`FakeServerDied`: the "process" dies during the call: ``ToolCallError`` (``the server died
  during the call``), state ``died``, and the next call starts it again, as :class:`McpUpstream` does;
- raise ``UpstreamError``/``ToolCallError``: passed through; any other exception becomes a
  ``ToolCallError`` naming the tool, like a protocol failure of a real server.

``fail_start="reason"`` makes every start fail with that error (set ``fail_start = None`` to let the
next call's retry succeed). ``calls`` records every call that reached the handler; ``starts`` counts
successful starts.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import anyio
import anyio.lowlevel
import mcp_types as types
from anyio.abc import TaskGroup

from codemode.errors import ToolCallError, ToolCallTimeout, UpstreamError
from codemode.hub.models import ToolSpec
from codemode.hub.upstream import UpstreamState

FakeHandler = Callable[[str, dict[str, Any]], Any]
"""``handler(tool, args)``: returns a result or a plain value (or an awaitable of one), or raises."""


class FakeServerDied(Exception):
    """Raise it from a :class:`FakeUpstream` handler to simulate the server dying during the call."""


def _echo(tool: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"tool": tool, "arguments": args}


class FakeUpstream:
    """An upstream served in process by ``handler``; implements :class:`~codemode.hub.upstream.Upstream`.

    ``tools`` are :class:`ToolSpec` objects or MCP wire dicts (``{"name": ..., "inputSchema": ...}``); their
    ``server`` becomes ``name``. Without a handler, a call answers ``{"tool": ..., "arguments": ...}``.
    A call to a tool not in ``tools`` is an ``is_error`` result, as from a real server.
    """

    transport = "fake"

    def __init__(
        self,
        name: str,
        tools: Iterable[ToolSpec | dict[str, Any]] = (),
        handler: FakeHandler | None = None,
        *,
        fail_start: str | None = None,
        disabled: bool = False,
        call_timeout_s: float = 60.0,
        server_version: str | None = "0.0.0",
        instructions: str | None = None,
    ) -> None:
        self.name = name
        self.tools: list[ToolSpec] = self._specs(tools)
        self.handler: FakeHandler = handler if handler is not None else _echo
        self.fail_start = fail_start
        self.disabled = disabled
        self.call_timeout_s = call_timeout_s
        self.server_version = server_version
        self.instructions = instructions
        self.state = UpstreamState.DISABLED if disabled else UpstreamState.STARTING
        self.error: str | None = None
        self.on_change: Callable[[str], None] | None = None
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.starts = 0

    # -- test controls -------------------------------------------------------------------------

    def set_tools(self, tools: Iterable[ToolSpec | dict[str, Any]]) -> None:
        """Replace the tool list, as a server announcing ``tools/list_changed`` would; fires ``on_change``."""
        self.tools = self._specs(tools)
        if self.on_change is not None:
            self.on_change(self.name)

    # -- the Upstream protocol -----------------------------------------------------------------

    def attach(self, tg: TaskGroup) -> None:
        """Nothing runs in the background here; accepted for the protocol."""

    async def start(self) -> None:
        """Become ready, or ``failed`` with ``fail_start`` as the error. Never raises."""
        await anyio.lowlevel.checkpoint()
        if self.disabled:
            return
        if self.fail_start is not None:
            self.state, self.error = UpstreamState.FAILED, self.fail_start
            return
        self.state, self.error = UpstreamState.READY, None
        self.starts += 1

    async def restart(self) -> None:
        """Start again (``fail_start`` still applies)."""
        await self.start()

    async def aclose(self) -> None:
        """Stop answering calls. Idempotent."""
        await anyio.lowlevel.checkpoint()
        if self.state is not UpstreamState.DISABLED:
            self.state = UpstreamState.CLOSED

    async def call_tool(
        self, tool: str, args: dict[str, Any], *, timeout_s: float | None = None
    ) -> types.CallToolResult:
        """Run the handler. See the module docstring for how its outcome maps.

        Raises:
            UpstreamError: disabled, closed, or (re)starting failed.
            ToolCallError: the handler raised, timed out, or simulated the server dying.
        """
        if self.disabled:
            raise UpstreamError(self.name, "server is disabled in the config")
        if self.state in (UpstreamState.FAILED, UpstreamState.DIED, UpstreamState.STARTING):
            await self.start()  # a real upstream retries a failed or dead server on the next call too
        if self.state is not UpstreamState.READY:
            raise UpstreamError(self.name, self.error or "server is not running")
        if tool not in {spec.name for spec in self.tools}:
            return types.CallToolResult(content=[types.TextContent(text=f"Unknown tool: {tool}")], is_error=True)
        self.calls.append((tool, args))
        limit = timeout_s if timeout_s is not None else self.call_timeout_s
        try:
            with anyio.move_on_after(limit) as scope:
                value = self.handler(tool, args)
                if inspect.isawaitable(value):
                    value = await value
        except FakeServerDied as exc:
            self.state = UpstreamState.DIED
            self.error = "the server process exited or the connection closed"
            raise ToolCallError(self.name, tool, "the server died during the call") from exc
        except UpstreamError:
            raise
        except Exception as exc:
            raise ToolCallError(self.name, tool, f"{type(exc).__name__}: {exc}") from exc
        if scope.cancelled_caught:
            raise ToolCallTimeout(self.name, tool, f"timed out after {limit:g} s")
        return _as_result(value)

    # -- helpers -------------------------------------------------------------------------------

    def _specs(self, tools: Iterable[ToolSpec | dict[str, Any]]) -> list[ToolSpec]:
        specs = []
        for tool in tools:
            spec = tool if isinstance(tool, ToolSpec) else ToolSpec.from_json(self.name, tool)
            specs.append(spec if spec.server == self.name else replace(spec, server=self.name))
        return specs


def _as_result(value: object) -> types.CallToolResult:
    if isinstance(value, types.CallToolResult):
        return value
    if isinstance(value, str):
        return types.CallToolResult(content=[types.TextContent(text=value)])
    try:
        text = json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"a FakeUpstream handler returned {type(value).__name__}, not a JSON value") from exc
    structured = value if isinstance(value, dict) else None
    return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=structured)


__all__ = ["FakeHandler", "FakeServerDied", "FakeUpstream"]
