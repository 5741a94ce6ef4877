"""An upstream MCP server (stdio, streamable HTTP or SSE): its connection, owned by a task of its own.

The ``mcp.Client`` context must be entered and exited in the same task, so each upstream runs a small
owner task that holds the connection open until asked to stop. Calls go through the live session from
any task. A server that dies is noticed (the owner task ends) and reconnected on the next call.

A changed tool list (either protocol path) is re-listed here and announced through ``on_change``, which
only queues the name: the hub reacts to it from its own task, never from this connection's message loop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import anyio
import mcp_types as types
from anyio.abc import TaskGroup
from mcp import Client
from mcp.client.session import IncomingMessage, _later_revision_fields
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import ListenNotSupportedError
from mcp.shared._context_streams import create_context_streams
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from mcp_types.methods import SERVER_RESULTS
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import TypeAdapter

from codemode._version import __version__
from codemode.calls.results import ResultTooLarge, server_text
from codemode.compiler.limits import MAX_DESCRIPTION, MAX_NAME, REFUSED, measure
from codemode.config import HttpServer, StdioServer
from codemode.errors import ToolCallError, ToolCallTimeout, UpstreamError
from codemode.hub.bounded_http import bounded_http_client
from codemode.hub.bounded_stdio import LIMIT_EXCEEDED, bounded_stdio_client
from codemode.hub.lane import Lane
from codemode.hub.models import ToolSpec
from codemode.hub.upstream import UpstreamState

logger = logging.getLogger(__name__)

_MAX_PAGES = 1000
"""A paginator that never ends must not hang start-up."""


class McpUpstream:
    """A connection to one configured MCP server; implements :class:`~codemode.hub.upstream.Upstream`.

    ``log_dir`` receives the server's stderr (``<name>.log``, stdio servers only); its last lines are
    quoted in ``error`` when the server fails or dies.
    """

    def __init__(self, name: str, config: StdioServer | HttpServer, *, log_dir: Path | None = None) -> None:
        self.name = name
        self.config = config
        self.state = UpstreamState.DISABLED if config.disabled else UpstreamState.STARTING
        self.error: str | None = None
        self.tools: list[ToolSpec] = []
        self.server_version: str | None = None
        self.instructions: str | None = None
        self.on_change: Callable[[str], None] | None = None
        self._log_dir = log_dir
        self._attempted = False
        """Whether a start was tried before: only later (re)starts announce a different tool list."""
        self._listening = False
        """A ``subscriptions/listen`` stream delivers tool changes (so the teed notifications are ignored)."""
        self._refreshing = False
        self._refresh_again = False
        """A change was announced during the listing in progress: list once more when it ends."""
        self._client: Client | None = None
        self._lane: Lane | None = None
        """Where calls go instead of the SDK's session when the connection allows it (see :mod:`.lane`)."""
        self._stop: anyio.Event | None = None
        self._done: anyio.Event | None = None
        self._lock = anyio.Lock()
        self._tg: TaskGroup | None = None
        self._scope: anyio.CancelScope | None = None

    @property
    def transport(self) -> str:
        """The configured transport: ``"stdio"``, ``"http"`` (or its aliases) or ``"sse"``."""
        return self.config.type

    @property
    def disabled(self) -> bool:
        return self.config.disabled

    # -- lifecycle -----------------------------------------------------------------------------

    def attach(self, tg: TaskGroup) -> None:
        """Give the upstream the task group its owner task will live in."""
        self._tg = tg

    async def start(self) -> None:
        """Connect and list tools, within ``start_timeout_s``. Never raises: failures land in ``state``."""
        if self.config.disabled:
            return
        async with self._lock:
            await self._start_locked()

    async def restart(self) -> None:
        """Stop the server and start it again. Never raises: a failure lands in ``state``.

        Calls made meanwhile wait for the new connection instead of failing on the closed one.
        """
        if self.config.disabled:
            return
        async with self._lock:
            await self._stop_owner()
            # A deliberate stop leaves the state READY (only an unexpected end means DIED).
            self.state = UpstreamState.STARTING
            await self._start_locked()

    async def _start_locked(self) -> None:
        assert self._tg is not None, "attach() first"
        if self.state is UpstreamState.READY:
            return
        # The hub read the tool list after the first start; a later start (a retry, a reconnect, a restart)
        # may find a different list, and whoever compiled the old one must hear of it.
        announce, self._attempted = self._attempted, True
        before = list(self.tools)
        self.state = UpstreamState.STARTING
        self.error = None
        ready = anyio.Event()
        stop = anyio.Event()
        done = anyio.Event()
        outcome: list[BaseException] = []
        self._stop, self._done = stop, done
        self._tg.start_soon(self._own, ready, stop, done, outcome)
        timeout = self.config.start_timeout_s
        with anyio.move_on_after(timeout) as scope:
            await ready.wait()
        if scope.cancelled_caught:
            self._cancel_owner()
            with anyio.move_on_after(10, shield=True):
                await done.wait()
            self._fail(f"did not start within {timeout:g} s")
            return
        if outcome:
            self._fail(_describe(outcome[0]))
            return
        self.state = UpstreamState.READY
        if announce and self.tools != before:
            self._notify()

    async def _own(
        self, ready: anyio.Event, stop: anyio.Event, done: anyio.Event, outcome: list[BaseException]
    ) -> None:
        errlog = self._open_errlog()
        if errlog is not None and self._tg is not None:
            self._tg.start_soon(self._trim_log, errlog, done)
        scope = anyio.CancelScope()
        self._scope = scope
        lane = Lane() if isinstance(self.config, StdioServer) else None
        try:
            with scope:
                async with Client(
                    self._transport(errlog, lane),
                    message_handler=self._on_message,
                    client_info=types.Implementation(name="codemode", version=__version__),
                ) as client:
                    info = client.server_info
                    self.server_version = info.version if info else None
                    self.instructions = client.instructions
                    self.tools = await self._list_tools(client)
                    self._client = client
                    self._lane = _lane_for(client, lane)
                    ready.set()
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(self._listen_for_tool_changes, client)
                        await stop.wait()
                        tg.cancel_scope.cancel()
        except BaseException as exc:
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                raise
            if not ready.is_set():
                outcome.append(exc)
            else:
                logger.warning("upstream %s: connection ended: %s", self.name, _describe(exc))
        finally:
            self._client = None
            self._lane = None
            if self.state is UpstreamState.READY and not stop.is_set():
                self.state = UpstreamState.DIED
                self.error = "the server process exited or the connection closed"
            ready.set()
            done.set()
            if errlog is not None:
                errlog.close()

    async def aclose(self) -> None:
        """Stop the server (stdin closed, then terminate/kill: the SDK bounds every wait). Idempotent."""
        await self._stop_owner()
        if self.state is not UpstreamState.DISABLED:
            self.state = UpstreamState.CLOSED

    async def _stop_owner(self) -> None:
        if self._stop is not None:
            self._stop.set()
        if self._done is not None:
            with anyio.move_on_after(5, shield=True):
                await self._done.wait()
            if not self._done.is_set():
                # Stuck in a handshake that will never finish: cancel it (the SDK's shutdown is shielded
                # and bounded, and kills the process tree).
                self._cancel_owner()
                with anyio.move_on_after(10, shield=True):
                    await self._done.wait()

    # -- calls ---------------------------------------------------------------------------------

    async def call_tool(
        self, tool: str, args: dict[str, Any], *, timeout_s: float | None = None
    ) -> types.CallToolResult:
        """Call one tool. An ``is_error`` result is returned, not raised.

        Raises:
            UpstreamError: the server is not running and could not be (re)started.
            ToolCallError: the call timed out or failed at the protocol level.
        """
        client = await self._ensure_ready()
        lane = self._lane
        limit = timeout_s if timeout_s is not None else self.config.effective_call_timeout_s
        try:
            with anyio.fail_after(limit):
                if lane is not None:
                    return await _call_on_lane(client, lane, tool, args)
                return await client.call_tool(tool, args)
        except TimeoutError:
            raise ToolCallTimeout(self.name, tool, f"timed out after {limit:g} s") from None
        except MCPError as exc:
            if exc.code == LIMIT_EXCEEDED:  # refused at the transport, before the SDK built it
                raise ResultTooLarge(exc.message, self.name, tool) from exc
            # On the lane an error is always the server's own answer (a closed pipe raises BrokenResourceError):
            # -32000, the code the SDK gives a closed connection, is also the usual "server error" a server sends.
            closed = lane is None and exc.code == types.CONNECTION_CLOSED and exc.message == _SDK_CLOSED
            if closed or self._client is None:
                reason = self._ended()  # before _mark_died, which sets the stop event itself
                self._mark_died(client)
                raise ToolCallError(self.name, tool, reason) from exc
            raise ToolCallError(self.name, tool, server_text(exc.message)) from exc
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream) as exc:
            reason = self._ended()
            self._mark_died(client)
            raise ToolCallError(self.name, tool, reason) from exc
        except Exception as exc:  # a result the SDK could not validate, a transport fault...
            raise ToolCallError(self.name, tool, _describe(exc)) from exc

    def _ended(self) -> str:
        """Why a call's connection ended under it: a stop codemode asked for, or the server dying."""
        if self._stop is not None and self._stop.is_set():
            return "the server was stopped during the call (unmounted, or codemode is shutting down)"
        return "the server died during the call"

    async def _ensure_ready(self) -> Client:
        if self.config.disabled:
            raise UpstreamError(self.name, "server is disabled in the config")
        client = self._client
        if client is not None and self.state is UpstreamState.READY:
            return client
        async with self._lock:
            if self.state in (UpstreamState.DIED, UpstreamState.FAILED, UpstreamState.STARTING):
                if self._done is not None:
                    with anyio.move_on_after(10):
                        await self._done.wait()
                await self._start_locked()
        if self._client is None:
            raise UpstreamError(self.name, self.error or "server is not running")
        return self._client

    # -- helpers -------------------------------------------------------------------------------

    def _mark_died(self, client: Client) -> None:
        """The connection is gone: let the owner task wind down; the next call restarts the server."""
        if self._client is not None and self._client is not client:
            return  # a call on an older connection failed late: the current one (after a restart) is fine
        if self.state is UpstreamState.READY:
            self.state = UpstreamState.DIED
            self.error = "the server process exited or the connection closed" + self._stderr_tail()
        if self._stop is not None:
            self._stop.set()

    def _cancel_owner(self) -> None:
        if self._scope is not None:
            self._scope.cancel()

    def _fail(self, message: str) -> None:
        self.state = UpstreamState.FAILED
        self.error = message + self._stderr_tail()
        logger.warning("upstream %s: %s", self.name, self.error)

    def _open_errlog(self) -> TextIO | None:
        if self._log_dir is None or not isinstance(self.config, StdioServer):
            return None
        self._log_dir.mkdir(parents=True, exist_ok=True)
        # Appending (the server shares this descriptor): after _trim_log empties the file, its writes go to the new
        # end instead of leaving a hole as long as all it wrote before. Readable, for the tail _trim_log keeps.
        errlog = open(self._log_dir / f"{self.name}.log", "a+", encoding="utf-8")
        errlog.truncate(0)
        return errlog

    async def _trim_log(self, errlog: TextIO, done: anyio.Event) -> None:
        """Keep the server's stderr file under :data:`MAX_LOG_BYTES` until ``done``: the server writes it
        directly, and one logging in a loop filled the disk."""
        while not done.is_set():
            with anyio.move_on_after(_LOG_CHECK_S):
                await done.wait()
            if done.is_set():
                return  # the owner closes the file once done is set: its descriptor may be another file's by now
            with contextlib.suppress(OSError):
                _trim(errlog.fileno(), self.name)

    def _stderr_tail(self) -> str:
        if self._log_dir is None:
            return ""
        path = self._log_dir / f"{self.name}.log"
        with contextlib.suppress(OSError):
            # Only the end is read: the whole of a server's stderr (GBs) once cost the host several times its size.
            with open(path, "rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - _TAIL_BYTES))
                text = log.read(_TAIL_BYTES).decode("utf-8", errors="replace")
            lines = [ln for ln in text.splitlines() if ln.strip()]
            if lines:
                # What the server wrote is shown in logs, terminals and listings: escaped like its other words.
                return f" (stderr: {server_text(' | '.join(lines[-3:])[:400])})"
        return ""

    def _transport(self, errlog: TextIO | None, lane: Lane | None) -> Any:
        cfg = self.config
        if isinstance(cfg, StdioServer):
            params = StdioServerParameters(command=cfg.command, args=cfg.args, env=cfg.env or None, cwd=cfg.cwd)
            # The SDK's stdio_client, with a reader that bounds a message before it is buffered or parsed.
            return bounded_stdio_client(params, errlog=errlog or sys.stderr, name=self.name, lane=lane)
        if cfg.type == "sse":
            return _sse_transport(cfg.url, cfg.headers)
        return _http_transport(cfg.url, cfg.headers)

    async def _list_tools(self, client: Client) -> list[ToolSpec]:
        """Every page of the server's tools, each kept small as it arrives: what the listing holds is bounded by
        :data:`MAX_TOOLS` of :func:`_kept` size, not by what the pages carry (20 pages of a tool with a 100 MB
        description held 2 GB until the compiler cut each)."""
        specs: list[ToolSpec] = []
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            page = await client.list_tools(cursor=cursor)
            for tool in page.tools:
                if len(specs) >= MAX_TOOLS:
                    logger.warning("upstream %s lists more than %d tools: the rest are left out", self.name, MAX_TOOLS)
                    return specs
                specs.append(_kept(self.name, tool.model_dump(by_alias=True, exclude_none=True, mode="json")))
            cursor = page.next_cursor
            if not cursor:
                break
        return specs

    async def _on_message(self, message: IncomingMessage) -> None:
        # Protocols before 2026-07-28 announce a changed tool list as an unsolicited notification. The SDK
        # also tees subscription events here; while the subscription is open it handles them, once.
        if (
            isinstance(message, types.ServerNotification)
            and isinstance(message, types.ToolListChangedNotification)
            and not self._listening
        ):
            await self._refresh_tools()
        await anyio.lowlevel.checkpoint()

    async def _listen_for_tool_changes(self, client: Client) -> None:
        """From 2026-07-28 on, changes arrive on a ``subscriptions/listen`` stream the client must open."""
        capabilities = client.server_capabilities
        if capabilities.tools is None or not capabilities.tools.list_changed:
            return
        try:
            async with client.listen(tools_list_changed=True) as subscription:
                self._listening = True
                try:
                    async for _event in subscription:
                        await self._refresh_tools()
                finally:
                    self._listening = False
        except ListenNotSupportedError:
            return  # an older protocol: _on_message sees the notifications
        except Exception as exc:  # a lost stream only costs live updates; calls keep working
            logger.info("upstream %s: tool-change subscription ended: %s", self.name, _describe(exc))

    async def _refresh_tools(self) -> None:
        """List the tools again after a change. One listing at a time: changes announced while it runs make one
        more listing after it, however many they are (a flood of them once started a listing each, every one
        waiting to write to a server that had stopped reading)."""
        if self._refreshing:
            self._refresh_again = True
            return
        self._refreshing = True
        try:
            again = True
            while again:
                self._refresh_again = False
                await self._refresh_once()
                again = self._refresh_again
        finally:
            self._refreshing = False

    async def _refresh_once(self) -> None:
        client = self._client
        if client is None:
            return
        try:
            with anyio.fail_after(self.config.start_timeout_s):
                tools = await self._list_tools(client)
        except Exception as exc:  # the old list stays; calls keep working, the next change retries
            logger.warning("upstream %s: re-listing changed tools failed: %s", self.name, _describe(exc))
            return
        self.tools = tools
        self._notify()

    def _notify(self) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(self.name)
        except Exception:
            # The notifier only queues a name; if it breaks anyway, say so, but keep this connection's
            # message loop (or the listen stream) alive.
            logger.exception("upstream %s: tool-change notifier raised", self.name)


MAX_LOG_BYTES = 16 * 1024 * 1024
"""The most a server's stderr file (``<name>.log``) holds: past it, all but its last :data:`_LOG_KEPT` bytes is cut."""
_LOG_KEPT = 1024 * 1024
_LOG_CHECK_S = 1.0
"""How often the stderr file's size is checked (the server writes it directly: nothing of codemode sees it grow)."""
_TAIL_BYTES = 8192
"""How much of the end of a server's stderr file is read to quote its last lines in an error."""


def _trim(fd: int, server: str) -> None:
    """Cut the stderr file open at ``fd`` to its last :data:`_LOG_KEPT` bytes if it is over :data:`MAX_LOG_BYTES`."""
    size = os.fstat(fd).st_size
    if size <= MAX_LOG_BYTES:
        return
    kept = os.pread(fd, _LOG_KEPT, size - _LOG_KEPT)
    os.ftruncate(fd, 0)
    # What the server writes between the read and the cut is lost: a log, not a record.
    marker = f"[codemode: {size - _LOG_KEPT:,} earlier bytes cut: the log is kept under {MAX_LOG_BYTES:,}]\n"
    os.write(fd, marker.encode() + kept)
    logger.warning("upstream %s: stderr log over %d bytes, cut to its last %d", server, MAX_LOG_BYTES, _LOG_KEPT)


MAX_TOOLS = 5_000
"""Tools kept from one server's listing (the largest of 37 captured real catalogs lists 235)."""


def _kept(server: str, data: dict[str, Any]) -> ToolSpec:
    """A listed tool as the hub keeps it: its description cut to the compiler's limit and a schema over the
    compiler's limits replaced by the marker that makes its stub generic (the compiler would refuse it anyway),
    each with a warning, so no listed tool holds more than a few hundred kilobytes."""
    spec = ToolSpec.from_json(server, data)
    label = f"upstream {server}: tool {server_text(spec.name[:MAX_NAME])!r}"
    changes: dict[str, Any] = {}
    if len(spec.description) > MAX_DESCRIPTION:
        logger.warning("%s: description of %d characters cut to %d", label, len(spec.description), MAX_DESCRIPTION)
        changes["description"] = spec.description[:MAX_DESCRIPTION]
    refused = [
        f"{field} {reason}"
        for field, value in (("inputSchema", spec.input_schema), ("outputSchema", spec.output_schema))
        if value is not None and (reason := measure(value)) is not None
    ]
    if refused:
        reason = "; ".join(refused)
        logger.warning("%s: schema refused, its stub takes any arguments: %s", label, reason)
        changes["input_schema"] = {REFUSED: reason}
        changes["output_schema"] = None
    return dataclasses.replace(spec, **changes) if changes else spec


def _lane_for(client: Client, lane: Lane | None) -> Lane | None:
    """``lane`` if calls may go through it on ``client``'s connection: a handshake-era protocol, where a
    request is its JSON-RPC object alone (from 2026-07-28 each carries the client's envelope and may be
    answered with an input request, which the SDK's call handles)."""
    return lane if client.session.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS else None


async def _call_on_lane(client: Client, lane: Lane, tool: str, args: dict[str, Any]) -> types.CallToolResult:
    """``client.call_tool`` through ``lane``: the result checked as the SDK checks it (the negotiated
    version's result surface, then the model, then the tool's output schema)."""
    raw = await lane.request("tools/call", {"name": tool, "arguments": args})
    version = client.session.protocol_version
    assert version is not None  # the lane is only used once the handshake is done
    _call_result_surface(version).validate_python(raw, by_name=False)
    if not (later := _later_revision_fields("tools/call", version)).isdisjoint(raw):
        raw = {key: value for key, value in raw.items() if key not in later}  # as the SDK drops them
    result = types.CallToolResult.model_validate(raw, by_name=False)
    if not result.is_error:
        await client.session.validate_tool_result(tool, result)
    return result


@functools.cache
def _call_result_surface(version: str) -> TypeAdapter[Any]:
    """The ``tools/call`` result surface of ``version``, checked as ``validate_server_result`` checks it (that
    function also dumps the validated result again, which nothing here reads: a third of its cost)."""
    surface: Any = SERVER_RESULTS[("tools/call", version)]  # a model or a union of models
    return TypeAdapter(surface)


@contextlib.asynccontextmanager
async def _http_transport(url: str, headers: dict[str, str]) -> Any:
    # The SDK reads a JSON body whole before parsing it: the client's transport bounds it first.
    async with bounded_http_client(headers=headers or None) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            yield streams


@contextlib.asynccontextmanager
async def _sse_transport(url: str, headers: dict[str, str]) -> Any:
    """The SDK's legacy SSE transport, with a message the server refuses (an HTTP error on its POST) answered
    at once: the SDK logs such a POST and drops it, and its request (``initialize`` too) waited out its
    timeout. The refusal reaches the request as a JSON-RPC error naming the status."""
    refusals, refused = anyio.create_memory_object_stream[tuple[Any, str]](64)

    def on_refused(request_id: Any, reason: str) -> None:
        with contextlib.suppress(anyio.WouldBlock, anyio.ClosedResourceError):
            refusals.send_nowait((request_id, reason))

    def factory(headers: dict[str, str] | None = None, timeout: Any = None, auth: Any = None) -> Any:
        return bounded_http_client(headers, timeout, auth, on_refused=on_refused)

    async with sse_client(url, headers=headers or None, httpx_client_factory=factory) as (read, write):
        forward, merged = create_context_streams[SessionMessage | Exception](0)

        async def relay() -> None:
            async with forward:
                async for item in read:
                    await forward.send(item)

        async def answer_refusals() -> None:
            async for request_id, reason in refused:
                if request_id is None:  # a notification or response of ours: nothing waits for it
                    logger.warning("SSE upstream %s: %s", url, reason)
                    continue
                error = types.JSONRPCError(
                    jsonrpc="2.0", id=request_id, error=types.ErrorData(code=REFUSED_BY_SERVER, message=reason)
                )
                with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                    await forward.send(SessionMessage(error))

        async with anyio.create_task_group() as tg:
            tg.start_soon(relay)
            tg.start_soon(answer_refusals)
            try:
                yield merged, write
            finally:
                refusals.close()
                tg.cancel_scope.cancel()


_SDK_CLOSED = "Connection closed"
"""The message of the error the SDK fails a request with when its connection closes (code -32000)."""

REFUSED_BY_SERVER = -32001
"""The JSON-RPC error code of a request an SSE server refused with an HTTP error (server-defined range)."""


def _describe(exc: BaseException) -> str:
    """A one-line reason, unwrapping the exception groups anyio task groups raise."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, FileNotFoundError):
        return f"command not found: {exc.filename or exc}"
    if isinstance(exc, MCPError):
        return f"protocol error: {server_text(exc.message)}"
    text = server_text(str(exc).strip()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, OSError) else text


__all__ = ["McpUpstream"]
