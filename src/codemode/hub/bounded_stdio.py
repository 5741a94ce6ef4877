"""The stdio transport for upstream servers: the SDK's, with a reader that bounds what one message costs.

Why not ``mcp.client.stdio.stdio_client`` as it is (mcp 2.3.0, read there): its reader decodes the server's
stdout as text and finds lines with ``(buffer + chunk).split("\\n")``, so a line is buffered whole however
long it is, and the buffer is copied and scanned again for every 64 KB chunk (a 200 MB line: hundreds of
GB of copying, then several times its size in memory). The parser (pydantic) then builds the whole
message: a response's ``result`` as Python dicts (~200 bytes an object), and later every content block
as a model (~1.3 KB each, 1.3 GB for a million empty text blocks). And a line it cannot parse (nested past
its 200-level limit, not JSON) is only logged: the call it answers waits for its timeout, with no cause.

:func:`bounded_stdio_client` is that function (spawn, writer, shielded shutdown: the SDK's own helpers)
with another reader. Per line, before the work each check bounds:

* at most :data:`MAX_MESSAGE_BYTES` is kept; the rest of a longer line is read and dropped, not kept;
* the arrays and objects are counted on the raw bytes
  (:data:`~codemode.calls.results.MAX_RESULT_CONTAINERS`), and when there are more than 200 the nesting is
  measured on them too (:data:`~codemode.protocol.MAX_DEPTH`, C-speed passes, no recursion);
* the bytes are parsed by the stdlib (no text decoding pass; ~250 bytes an object against ~1.4 KB through
  the SDK's ``validate_json``), and a response whose ``result.content`` lists more than
  :data:`~codemode.calls.results.MAX_CONTENT_BLOCKS` blocks is refused before pydantic sees it; the SDK
  builds its models from what is left;
* a notification codemode does not act on (log messages, progress, resource updates ...) is dropped once
  parsed, before the SDK's models and session spend on it (:mod:`codemode.hub.notifications`).

A refused or unreadable line is answered on the server's behalf: the request it belongs to gets a JSON-RPC
error with code :data:`LIMIT_EXCEEDED` (or ``PARSE_ERROR``) whose message names the limit, so the call
fails at once with the cause (:class:`~codemode.calls.results.ResultTooLarge` in ``hub.mcp``). The request
is known by the id at the head of the line (``{"jsonrpc":"2.0","id":7,"result":…``, the Python, Go and
Rust SDKs) or at its tail (``…,"jsonrpc":"2.0","id":7}``, the TypeScript SDK), taken only if a request with
that id is in flight (an id no longer in flight answers an abandoned request); when no id can be read, the
one request in flight if there is exactly one and the line is not a request or notification of the
server's. A line tied to no request is logged and dropped (a call it answered then ends at its timeout).
Calls codemode writes itself (:mod:`.lane`) are answered and refused the same way.

HTTP and SSE upstreams keep the SDK's transports over an httpx transport that applies the same checks to
response bodies before the SDK reads them: :mod:`codemode.hub.bounded_http`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import AsyncGenerator, Iterator
from contextlib import asynccontextmanager
from typing import Any, TextIO

import anyio
import anyio.lowlevel
import mcp_types as types
from mcp.client._transport import TransportStreams
from mcp.client.stdio import (
    StdioServerParameters,
    _aclose_all,
    _close_pipe,
    _create_platform_compatible_process,
    _drain_stdout,
    _get_executable_command,
    _stop_server_process,
    _terminate_process_tree,
    get_default_environment,
)
from mcp.shared.dispatcher import coerce_request_id
from mcp.shared.message import SessionMessage

from codemode.calls.results import MAX_CONTENT_BLOCKS, MAX_RESULT_CONTAINERS
from codemode.hub.lane import Lane
from codemode.hub.notifications import ignored
from codemode.protocol import MAX_DEPTH, check_shape, count_containers, openers_over

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 128 * 1024 * 1024
"""The longest line (one JSON-RPC message) kept from a server: twice the default ``Limits.max_result_bytes``,
since a result's text usually travels twice (``content`` and ``structuredContent``: the filesystem server's
50 MB file is a 100 MB line). Results that large reach a program as a handle."""
LIMIT_EXCEEDED = -32050
"""The JSON-RPC error code of a message refused here for its size (implementation-defined range)."""
_WRITER_FLUSH_TIMEOUT = 0.5
_EXIT_POLL_S = 0.1
_EXIT_DRAIN_S = 1.0
"""How long stdout may stay open after the server exited (what it wrote last is still being read) before the
processes it left behind are stopped and the pipe is closed."""
_EDGE = 4096
"""How much of a refused line's head and tail is kept to find its id."""

_ID = rb'("(?:[^"\\]|\\.){0,200}"|-?\d{1,30})'
_HEAD_ID = re.compile(rb'\s*\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"id"\s*:\s*' + _ID + rb'\s*,\s*"(?:result|error)"')
_HEAD_RESULT = re.compile(rb'\s*\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"(?:result|error)"\s*:')
_TAIL_ID = re.compile(rb'"id"\s*:\s*' + _ID + rb'\s*(?:,\s*"jsonrpc"\s*:\s*"2\.0"\s*)?\}\s*$')
_HEAD_METHOD = re.compile(
    rb'\s*\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?(?:"id"\s*:\s*' + _ID + rb'\s*,\s*)?"method"\s*:'
)


def shape_refusal(message: bytes | bytearray) -> str | None:
    """Why one JSON-RPC message's bytes are refused before parsing (too many arrays and objects, nested too
    deep), or None. Counted on the raw bytes at C speed, with no recursion."""
    containers = count_containers(message, MAX_RESULT_CONTAINERS)
    if containers > MAX_RESULT_CONTAINERS:
        return f"a message of {containers:,} JSON arrays and objects, over the limit of {MAX_RESULT_CONTAINERS:,}"
    if openers_over(message, MAX_DEPTH):
        try:
            check_shape(message, 0, len(message), MAX_DEPTH, len(message))
        except ValueError:
            return f"a message nested deeper than the {MAX_DEPTH}-level limit (or not JSON)"
    return None


def blocks_refusal(data: Any) -> str | None:
    """Why a parsed message is refused before the SDK builds its models (too many content blocks), or None."""
    result = data.get("result") if isinstance(data, dict) else None
    content = result.get("content") if isinstance(result, dict) else None
    if isinstance(content, list) and len(content) > MAX_CONTENT_BLOCKS:
        return f"a result of {len(content):,} content blocks, over the limit of {MAX_CONTENT_BLOCKS:,}"
    return None


class _Line:
    """A line too long to keep: its length, head and tail (to find the request it answers)."""

    __slots__ = ("head", "limit", "size", "tail")

    def __init__(self, head: bytes, tail: bytes, size: int, limit: int) -> None:
        self.head = head
        self.tail = tail
        self.size = size
        self.limit = limit


class LineReader:
    """Splits a byte stream into lines, keeping at most ``max_bytes`` of any line.

    :meth:`feed` yields each complete line as a ``bytearray`` (the parser takes it without a copy), or a
    :class:`_Line` summary for a longer one, whose bytes past ``max_bytes`` were never stored.
    """

    def __init__(self, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._buffer = bytearray()
        self._over: _Line | None = None

    def feed(self, chunk: bytes) -> Iterator[bytearray | _Line]:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            self._add(chunk, start, len(chunk) if end < 0 else end)
            if end < 0:
                return
            start = end + 1
            if self._over is not None:
                line, self._over = self._over, None
                yield line
            else:
                buffer, self._buffer = self._buffer, bytearray()
                yield buffer

    def _add(self, chunk: bytes, start: int, end: int) -> None:
        if start == end:
            return
        over = self._over
        if over is None and len(self._buffer) + end - start <= self.max_bytes:
            self._buffer += memoryview(chunk)[start:end]
            return
        if over is None:
            head = bytes(self._buffer[:_EDGE]) + chunk[start : start + max(0, _EDGE - len(self._buffer))]
            over = self._over = _Line(head, b"", len(self._buffer), self.max_bytes)
            self._buffer = bytearray()
        over.size += end - start
        over.tail = (over.tail + chunk[max(start, end - _EDGE) : end])[-_EDGE:]


MAX_SERVER_REQUESTS = 32
"""Requests of the server's own (``ping``, ``sampling/createMessage`` ...) passed on to the session and not yet
answered. The session starts a task for each, which waits to write its answer: a server that sends them without
end and stops reading its stdin held a gigabyte of such tasks. Past this many, the server's requests are dropped
(it waits for answers that never come; its calls are unaffected)."""


class _Reader:
    """Turns lines into the session's messages, refusing those over a limit on the requests' behalf."""

    def __init__(self, name: str, lane: Lane | None = None) -> None:
        self.name = name
        self.lane = lane
        """Calls codemode sends itself (:mod:`.lane`): their answers go to it, not to the session."""
        self.in_flight: set[types.RequestId] = set()
        """Ids of the session's requests sent and not yet answered."""
        self.serving: set[types.RequestId] = set()
        """Ids of the server's requests passed to the session and not yet answered (at most
        :data:`MAX_SERVER_REQUESTS`)."""
        self.dropped = 0
        """The server's requests dropped for being over that count."""
        self.ignored = 0
        """The server's notifications dropped for being of no use to codemode (see :func:`.notifications.ignored`)."""

    def sent(self, message: types.JSONRPCMessage) -> None:
        if isinstance(message, types.JSONRPCResponse | types.JSONRPCError) and message.id is not None:
            self.serving.discard(message.id)
        elif isinstance(message, types.JSONRPCRequest):
            self.in_flight.add(coerce_request_id(message.id))
        elif isinstance(message, types.JSONRPCNotification) and message.method == "notifications/cancelled":
            request = (message.params or {}).get("requestId")
            if isinstance(request, int | str):
                self.in_flight.discard(coerce_request_id(request))

    def message(self, line: bytearray | _Line) -> SessionMessage | Exception | None:
        """The session's item for one line: the message, a refusal answered on its request's behalf, the
        parse error (as the SDK passes it on) when no request can be blamed, or None for a blank line."""
        if isinstance(line, _Line):
            too_long = f"a message of {line.size:,} bytes, over the {line.limit:,}-byte limit"
            return self._refuse(line, too_long, LIMIT_EXCEEDED)
        if not line or line.isspace():  # isspace stops at the first other byte: no copy of a long line
            return None
        reason = shape_refusal(line)
        if reason is not None:
            return self._refuse(line, reason, LIMIT_EXCEEDED)
        try:
            # The stdlib parser, then pydantic on Python data: a JSON object costs ~250 bytes here against
            # ~1.4 KB through the SDK's validate_json, and it is faster (1 MB of text: 1.0 ms, not 1.4 ms).
            data = json.loads(line)
        except (ValueError, RecursionError) as exc:
            return self._refuse(line, f"a message that is not JSON ({str(exc)[:200]})", types.PARSE_ERROR, exc=exc)
        reason = blocks_refusal(data)
        if reason is not None:
            return self._refuse(line, reason, LIMIT_EXCEEDED, data=data)
        if self.lane is not None and isinstance(data, dict) and "method" not in data and self.lane.settle(data):
            return None
        if ignored(data, self.serving, self.in_flight):
            self.ignored += 1
            return None
        try:
            parsed = types.jsonrpc_message_adapter.validate_python(data, by_name=False)
        except ValueError as exc:  # pydantic's ValidationError
            errors = getattr(exc, "errors", None)
            detail = str(errors()[0].get("msg", "")) if callable(errors) and errors() else str(exc)[:200]
            reason = f"a message that is not valid JSON-RPC ({detail})"
            return self._refuse(line, reason, types.PARSE_ERROR, data=data, exc=exc)
        if isinstance(parsed, types.JSONRPCResponse | types.JSONRPCError) and parsed.id is not None:
            self.in_flight.discard(coerce_request_id(parsed.id))
        elif isinstance(parsed, types.JSONRPCRequest):
            if len(self.serving) >= MAX_SERVER_REQUESTS:
                if not self.dropped:
                    logger.warning(
                        "upstream %s has %d requests of its own unanswered (it may not be reading its stdin): "
                        "its further requests are dropped", self.name, MAX_SERVER_REQUESTS,
                    )  # fmt: skip
                self.dropped += 1
                return None
            self.serving.add(parsed.id)
        return SessionMessage(parsed)

    def _refuse(
        self, line: bytearray | _Line, reason: str, code: int, *, data: Any = None, exc: Exception | None = None
    ) -> SessionMessage | Exception | None:
        request = self._request_of(line, data)
        if request is None:
            logger.warning("upstream %s sent %s, which answers no request in flight: dropped", self.name, reason)
            return exc
        logger.warning("upstream %s sent %s: its request %r fails with that", self.name, reason, request)
        message = f"the server sent {reason}"
        if self.lane is not None and self.lane.fail(request, code, message):
            return None
        self.in_flight.discard(request)
        error = types.ErrorData(code=code, message=message)
        return SessionMessage(types.JSONRPCError(jsonrpc="2.0", id=request, error=error))

    def _request_of(self, line: bytearray | _Line, data: Any) -> types.RequestId | None:
        """The in-flight request a refused line answers: by its id (parsed, or read at the line's head or
        tail), else (no id) the only request in flight if the line is not a request or notification itself."""
        if isinstance(line, _Line):
            head, tail = line.head, line.tail
        else:
            head, tail = bytes(line[:_EDGE]), bytes(line[-_EDGE:])
        if isinstance(data, dict):
            found: Any = data.get("id")
            is_answer = "method" not in data
        else:
            match = _HEAD_ID.match(head)
            if match is None and _HEAD_RESULT.match(head):
                match = _TAIL_ID.search(tail)
            try:
                found = json.loads(match.group(1)) if match is not None else None
            except ValueError:
                found = None
            is_answer = not _HEAD_METHOD.match(head)
        lane = self.lane.waiting() if self.lane is not None else []
        if isinstance(found, int | str) and not isinstance(found, bool):
            if found in lane:
                return found
            request = coerce_request_id(found)
            # An id that is not in flight answers a request already abandoned (its timeout): not another one.
            return request if request in self.in_flight else None
        if is_answer and len(self.in_flight) + len(lane) == 1:
            return next(iter(self.in_flight)) if self.in_flight else lane[0]
        return None


@asynccontextmanager
async def bounded_stdio_client(
    server: StdioServerParameters, errlog: TextIO = sys.stderr, *, name: str = "server", lane: Lane | None = None
) -> AsyncGenerator[TransportStreams, None]:
    """``mcp.client.stdio.stdio_client`` with the bounded reader described in the module docstring.

    With ``lane``, codemode's own calls (:mod:`.lane`) share the pipe: bound to it here, answered by the reader.

    Raises:
        OSError: If the server process cannot be spawned.
        ValueError: If the spawn parameters are invalid (embedded NUL bytes).
    """
    command = await _get_executable_command(server.command)
    process = await _create_platform_compatible_process(
        command=command,
        args=server.args,
        env=get_default_environment() | (server.env or {}),
        errlog=errlog,
        cwd=server.cwd,
    )
    # No awaits until the task group is entered (as in the SDK): a cancellation in the gap would leak the process.
    read_stream_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, write_stream_reader = anyio.create_memory_object_stream[SessionMessage](0)
    reader = _Reader(name, lane)
    shutting_down = False
    writer_done = anyio.Event()
    stdout_done = anyio.Event()

    async def stdout_reader() -> None:
        assert process.stdout, "Opened process is missing stdout"
        lines = LineReader()
        try:
            async with read_stream_writer:
                try:
                    async for chunk in process.stdout:
                        for line in lines.feed(chunk):
                            item = reader.message(line)
                            if item is None:
                                continue
                            try:
                                await read_stream_writer.send(item)
                            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                                return  # the session is gone; only the drain below remains
                finally:
                    if lane is not None:
                        lane.close()
                    await _drain_stdout(process)
        except anyio.ClosedResourceError:
            pass  # our own shutdown closed the stdout stream under the read
        except (anyio.BrokenResourceError, ConnectionError):
            if not shutting_down:
                logger.exception("Reading from the MCP server's stdout failed mid-session")
        finally:
            stdout_done.set()

    async def exit_watcher() -> None:
        # The server's end is its process's, not its stdout's: a process it started (in its group or not) may
        # hold stdout open after it exited, and the connection looked alive: the call in flight and every later
        # one waited out its timeout, and the server was never restarted. Polled (as the SDK does): wait() also
        # waits for the pipes to close, which is the very thing that does not happen.
        while process.returncode is None:  # noqa: ASYNC110
            await anyio.sleep(_EXIT_POLL_S)
        with anyio.move_on_after(_EXIT_DRAIN_S):
            await stdout_done.wait()
        if stdout_done.is_set() or shutting_down:
            return
        assert process.stdout, "Opened process is missing stdout"
        logger.warning("upstream %s exited with its stdout still open (by a process it started?): closed", name)
        with anyio.CancelScope(shield=True):
            await _terminate_process_tree(process)  # what is left of its process group
            await _close_pipe(process.stdout)  # and for what left the group, the pipe ends here

    async def stdin_writer() -> None:
        assert process.stdin, "Opened process is missing stdin"
        try:
            async with write_stream_reader:
                async for session_message in write_stream_reader:
                    reader.sent(session_message.message)
                    text = session_message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    data = (text + "\n").encode(encoding=server.encoding, errors=server.encoding_error_handler)
                    await process.stdin.send(data)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            await read_stream_writer.aclose()
        finally:
            writer_done.set()

    async def send_line(data: bytes) -> None:
        assert process.stdin, "Opened process is missing stdin"
        try:
            await process.stdin.send(data)
        except OSError as exc:  # a broken pipe is a closed connection, as the session's writer treats it
            raise anyio.BrokenResourceError from exc

    if lane is not None:
        lane.bind(send_line)

    async def shutdown() -> None:
        read_stream.close()
        write_stream.close()
        with anyio.move_on_after(_WRITER_FLUSH_TIMEOUT) as flush_scope:
            await writer_done.wait()
        if flush_scope.cancelled_caught:
            await anyio.lowlevel.cancel_shielded_checkpoint()
        await _stop_server_process(process)
        await _aclose_all(read_stream, write_stream, read_stream_writer, write_stream_reader)
        await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(stdout_reader)
        tg.start_soon(stdin_writer)
        tg.start_soon(exit_watcher)
        try:
            yield read_stream, write_stream
        finally:
            shutting_down = True
            with anyio.CancelScope(shield=True):
                await shutdown()
            tg.cancel_scope.cancel()
    await anyio.lowlevel.cancel_shielded_checkpoint()


__all__ = ["LIMIT_EXCEEDED", "MAX_MESSAGE_BYTES", "LineReader", "bounded_stdio_client"]
