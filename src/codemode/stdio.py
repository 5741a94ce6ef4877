"""stdio for ``codemode serve`` without a thread hop per line, nor a task between the pipe and the server.

The SDK's ``stdio_server`` reads stdin through ``anyio.wrap_file``: every line is a trip to a worker
thread and back (about a dozen per ``execute_python`` call), which costs more than the rest of the tool
call. Here stdin and stdout are non-blocking pipes on the asyncio loop, and the server's read and write
streams are the pipes themselves: a message is parsed where the server reads it and written where the
server sends it, as the SDK's reader and writer tasks do, without the hop through a memory stream to each
of those tasks (two event-loop iterations per call). Anything that is not a pipe (a file, a terminal)
falls back to the SDK's own transport.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import mcp_types as types
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage

_LINE_LIMIT = 64 * 1024 * 1024
"""Longest JSON-RPC line accepted (the front refuses programs over 1 M characters anyway)."""


class _Inbound(ObjectReceiveStream[SessionMessage | Exception]):
    """The server's read stream: a message per line of the pipe, or the exception parsing it raised (as
    the SDK's reader sends it on)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._closed = False

    async def receive(self) -> SessionMessage | Exception:
        if self._closed:
            raise anyio.ClosedResourceError
        line = await self._reader.readline()
        if not line:
            raise anyio.EndOfStream
        text = line.decode("utf-8", "replace")
        try:
            message = types.jsonrpc_message_adapter.validate_json(text, by_name=False)
        except Exception as exc:
            # pydantic's parser refuses a lone surrogate escape (``"\ud800"``) that JSON allows: the request
            # went unanswered and its client waited for good. Python's parser takes it; the value is then
            # validated as any other (and the program holding it gets the usual answer).
            try:
                message = types.jsonrpc_message_adapter.validate_python(json.loads(text), by_name=False)
            except Exception:
                return exc
        return SessionMessage(message)

    async def aclose(self) -> None:
        self._closed = True


class _Outbound(ObjectSendStream[SessionMessage]):
    """The server's write stream: each message one line on the pipe, in the order sent."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._closed = False

    async def send(self, item: SessionMessage, /) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        text = item.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
        # A lone surrogate must not kill the transport: as a \\uXXXX escape it is still valid JSON.
        self._writer.write(text.encode("utf-8", "backslashreplace"))
        try:
            await self._writer.drain()
        except ConnectionError as exc:  # the client is gone: what the server takes for a closed stream
            raise anyio.BrokenResourceError from exc

    async def aclose(self) -> None:
        self._closed = True


def _is_pipe(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


@asynccontextmanager
async def pipe_stdio() -> AsyncIterator[tuple[Any, Any]]:
    """Like ``mcp.server.stdio.stdio_server()``: yields the (read, write) message streams."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is None or not (_is_pipe(0) and _is_pipe(1)):
        async with stdio_server() as streams:
            yield streams
        return
    # Keep the wire on private descriptors; fd 0 reads EOF and fd 1 goes to stderr, so a stray print
    # (ours or a library's) cannot corrupt the protocol stream.
    wire_in, wire_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    reader = asyncio.StreamReader(limit=_LINE_LIMIT)
    read_transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(wire_in, "rb", buffering=0)
    )
    write_transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(wire_out, "wb", buffering=0)
    )
    writer = asyncio.StreamWriter(write_transport, protocol, None, loop)
    try:
        yield _Inbound(reader), _Outbound(writer)
    finally:
        read_transport.close()
        write_transport.close()
