"""The HTTP client for streamable-HTTP and SSE upstreams: the SDK's transports over an httpx transport that
bounds what one response costs before the SDK reads it.

Why: the SDK's streamable-HTTP client reads a JSON response body whole (``response.aread()``) and hands it
to pydantic's ``validate_json``; a 200 MB body, a million content blocks or ``{},{},…`` cost GBs before any
check of codemode's ran (mcp 2.3.0, read there). :class:`BoundedTransport` wraps each response's byte
stream, below the SDK, with the checks of the stdio reader (:mod:`codemode.hub.bounded_stdio`):

* a JSON body: its ``Content-Length`` (when sent) and then the bytes read are held to
  :data:`~codemode.hub.bounded_stdio.MAX_MESSAGE_BYTES` (reading stops there); the arrays and objects are
  counted and the nesting measured on the raw bytes; more than
  :data:`~codemode.calls.results.MAX_CONTENT_BLOCKS` content blocks are refused before the SDK's models
  are built;
* an event stream: each line is kept to the same size (the rest of a longer one is dropped as it is read)
  and each ``data:`` line checked as a JSON body is;
* on an event stream (a POST's answer, the GET stream, the legacy SSE transport), a notification codemode does
  not act on (log messages, progress ...) is dropped once the stdlib has parsed it, before the SDK's models
  and session spend ~70 us on each (:mod:`codemode.hub.notifications`): its ``data:`` line is left out, and
  the SDK takes what remains of the event (its id) for a keep-alive;
* a compressed body is refused (a small gzip body can inflate to GBs inside ``aread``): requests say
  ``Accept-Encoding: identity``.

A refused body is replaced by a JSON-RPC error for the request it answers (its id is read from the request
this transport sent), code :data:`~codemode.hub.bounded_stdio.LIMIT_EXCEEDED`, whose message names the
limit: the call fails at once as ``too_large``, as over stdio. On a stream that answers no request of its
own (the GET stream, the legacy SSE transport), a refused line becomes an SSE comment and is logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import httpx2
import mcp_types as types
from mcp.shared._httpx_utils import MCP_DEFAULT_SSE_READ_TIMEOUT, MCP_DEFAULT_TIMEOUT
from mcp.shared.dispatcher import coerce_request_id

from codemode.calls.results import MAX_CONTENT_BLOCKS
from codemode.hub.bounded_stdio import (
    LIMIT_EXCEEDED,
    MAX_MESSAGE_BYTES,
    LineReader,
    blocks_refusal,
    shape_refusal,
)
from codemode.hub.notifications import ignored

logger = logging.getLogger(__name__)


def bounded_http_client(
    headers: dict[str, str] | None = None,
    timeout: httpx2.Timeout | None = None,
    auth: httpx2.Auth | None = None,
    *,
    on_refused: Callable[[Any, str], None] | None = None,
) -> httpx2.AsyncClient:
    """``mcp.shared._httpx_utils.create_mcp_http_client`` (same timeouts and options) over a
    :class:`BoundedTransport`; usable as the SDK's ``httpx_client_factory``.

    ``on_refused(request_id, reason)`` is told of every POST the server answered with an HTTP error (the
    legacy SSE transport drops those and its request would wait for its timeout)."""
    merged = {"Accept-Encoding": "identity", **(headers or {})}
    return httpx2.AsyncClient(
        headers=merged,
        timeout=timeout or httpx2.Timeout(MCP_DEFAULT_TIMEOUT, read=MCP_DEFAULT_SSE_READ_TIMEOUT),
        auth=auth,
        transport=BoundedTransport(on_refused=on_refused),
    )


class BoundedTransport(httpx2.AsyncBaseTransport):
    """An httpx transport whose JSON and event-stream response bodies are checked before they are read."""

    def __init__(
        self,
        inner: httpx2.AsyncBaseTransport | None = None,
        max_bytes: int = MAX_MESSAGE_BYTES,
        *,
        on_refused: Callable[[Any, str], None] | None = None,
    ) -> None:
        self._inner = inner or httpx2.AsyncHTTPTransport()
        self.max_bytes = max_bytes
        self._on_refused = on_refused
        self.in_flight: set[types.RequestId] = set()
        """Ids of the session's requests sent and not yet answered."""
        self.serving: set[types.RequestId] = set()
        """Ids of the server's requests read and not yet answered."""
        self.ignored = 0
        """The server's notifications dropped for being of no use to codemode."""

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self._sent(request)
        response = await self._inner.handle_async_request(request)
        if self._on_refused is not None and request.method == "POST" and response.status_code >= 400:
            # Told to the transport, which answers the request with it; the SDK sees the message accepted
            # (raised, the refusal would end its writer and the whole connection, the reason unsaid).
            await response.aclose()
            phrase = "".join(c for c in response.reason_phrase[:80] if c.isprintable())
            reason = f"HTTP {response.status_code} {phrase}".strip()
            self._on_refused(_request_id(request), f"the server refused the message: {reason}")
            return httpx2.Response(202, request=request)
        kind = response.headers.get("content-type", "").lower()
        if not kind.startswith(("application/json", "text/event-stream")):
            return response
        inner = response.stream
        assert isinstance(inner, httpx2.AsyncByteStream)
        request_id = _request_id(request)
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        size = response.headers.get("content-length", "")
        # The body that reaches the SDK is the one produced here: no length or encoding of another one.
        for header in ("content-encoding", "content-length"):
            if header in response.headers:
                del response.headers[header]
        body: httpx2.AsyncByteStream
        if encoding not in ("", "identity"):
            body = _Refused(inner, request_id, f"a body compressed as {encoding!r}, which is not accepted", kind)
        elif size.isdigit() and int(size) > self.max_bytes:
            body = _Refused(inner, request_id, _too_long(int(size), self.max_bytes), kind)
        elif kind.startswith("application/json"):
            body = _JsonBody(inner, request_id, self.max_bytes, self)
        else:
            body = _EventStream(inner, request_id, self.max_bytes, self)
        response.stream = body
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()

    def _sent(self, request: httpx2.Request) -> None:
        """Note the requests the session sends and the server's it answers (see :meth:`kept`)."""
        message = _posted(request)
        if not isinstance(message, dict) or not isinstance(found := message.get("id"), int | str | None):
            return
        if isinstance(found, bool):
            return
        if found is not None and "method" in message:
            self.in_flight.add(coerce_request_id(found))
        elif found is not None:
            self.serving.discard(coerce_request_id(found))
        elif message.get("method") == "notifications/cancelled":
            params = message.get("params")
            cancelled = params.get("requestId") if isinstance(params, dict) else None
            if isinstance(cancelled, int | str):
                self.in_flight.discard(coerce_request_id(cancelled))

    def kept(self, message: Any) -> bool:
        """Whether a message the server sent on an event stream goes on to the SDK: all but the notifications
        :func:`~codemode.hub.notifications.ignored` names, which are counted and dropped."""
        if ignored(message, self.serving, self.in_flight):
            self.ignored += 1
            return False
        found = message.get("id") if isinstance(message, dict) else None
        if isinstance(found, int | str) and not isinstance(found, bool):
            if "method" in message:
                self.serving.add(coerce_request_id(found))
            else:
                self.in_flight.discard(coerce_request_id(found))
        return True

    def ended(self, request_id: Any) -> None:
        """The body answering ``request_id`` (a POST's) is read: the request is no longer in flight."""
        if request_id is not None:
            self.in_flight.discard(coerce_request_id(request_id))


def _posted(request: httpx2.Request) -> Any:
    """The JSON-RPC message a POST carries (the SDK posts one a request), or None."""
    if request.method != "POST":
        return None
    try:
        return json.loads(request.content)
    except (httpx2.RequestNotRead, ValueError, UnicodeDecodeError):
        return None


def _request_id(request: httpx2.Request) -> Any:
    """The JSON-RPC id of the request this response answers (the SDK posts one message a request)."""
    message = _posted(request)
    found = message.get("id") if isinstance(message, dict) else None
    return found if isinstance(found, int | str) and not isinstance(found, bool) else None


def _too_long(size: int, limit: int) -> str:
    return f"a message of {size:,} bytes, over the {limit:,}-byte limit"


def _refusal(message: bytes | bytearray) -> str | None:
    """Why one message's bytes are refused (its shape, then its content blocks), or None."""
    reason = shape_refusal(message)
    if reason is None and message.count(b"{") > MAX_CONTENT_BLOCKS:  # fewer objects: fewer blocks
        try:
            reason = blocks_refusal(json.loads(message))
        except (ValueError, RecursionError):
            return None  # the SDK's parser reports it, on the request's behalf
    return reason


def _error(request_id: Any, reason: str) -> bytes:
    error = {"code": LIMIT_EXCEEDED, "message": f"the server sent {reason}"}
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "error": error}).encode()


class _Refused(httpx2.AsyncByteStream):
    """A body refused unread: the error for its request, in the body's own format."""

    def __init__(self, inner: httpx2.AsyncByteStream, request_id: Any, reason: str, kind: str) -> None:
        self._inner, self._request_id, self._reason, self._kind = inner, request_id, reason, kind

    async def __aiter__(self) -> AsyncIterator[bytes]:
        await self._inner.aclose()
        logger.warning("an HTTP upstream sent %s: refused unread", self._reason)
        error = _error(self._request_id, self._reason)
        yield error if self._kind.startswith("application/json") else b"event: message\ndata: " + error + b"\n\n"

    async def aclose(self) -> None:
        await self._inner.aclose()


class _JsonBody(httpx2.AsyncByteStream):
    """A JSON body read up to ``max_bytes`` and checked before the SDK parses it."""

    def __init__(self, inner: httpx2.AsyncByteStream, request_id: Any, max_bytes: int, owner: BoundedTransport) -> None:
        self._inner, self._request_id, self._max_bytes, self._owner = inner, request_id, max_bytes, owner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        body = bytearray()
        size = 0
        try:
            async for chunk in self._inner:
                size += len(chunk)
                if size > self._max_bytes:
                    break  # not read further: the connection is closed with the stream
                body += chunk
        finally:
            self._owner.ended(self._request_id)
            await self._inner.aclose()
        reason = _too_long(size, self._max_bytes) + " (at least)" if size > self._max_bytes else _refusal(body)
        if reason is not None:
            logger.warning("an HTTP upstream sent %s: its request %r fails with that", reason, self._request_id)
            yield _error(self._request_id, reason)
            return
        yield bytes(body)

    async def aclose(self) -> None:
        await self._inner.aclose()


_JOINED_BYTES = 64 * 1024
"""The longest part of an event stream joined with its neighbours before it is passed on."""
_PARSED_BYTES = 1024 * 1024
"""The longest ``data:`` line parsed here to find a notification to drop (the SDK parses each line again).
What a longer one costs the SDK is its size's, as for a result: its ~70 us of overhead is nothing beside that."""


class _EventStream(httpx2.AsyncByteStream):
    """An event stream passed on line by line, each line kept to ``max_bytes`` and each ``data:`` checked."""

    def __init__(self, inner: httpx2.AsyncByteStream, request_id: Any, max_bytes: int, owner: BoundedTransport) -> None:
        self._inner, self._request_id, self._max_bytes, self._owner = inner, request_id, max_bytes, owner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        reader = LineReader(self._max_bytes)
        try:
            async for chunk in self._inner:
                # Short lines are passed on together, a chunk's worth at a time: each part yielded costs a pass of
                # httpx's and the SDK's decoders (200,000 log messages dropped here: 3 s more, one part a line).
                pending = bytearray()
                for line in reader.feed(chunk):
                    for part in self._checked(line):
                        if len(part) <= _JOINED_BYTES:
                            pending += part
                            continue
                        if pending:
                            yield cast(bytes, pending)
                            pending = bytearray()
                        # A long line is not joined: it is copied once, into the SDK's buffer.
                        yield cast(bytes, part)  # a bytearray joins as bytes do (httpx2 b"".join()s parts)
                if pending:
                    yield cast(bytes, pending)
        finally:
            self._owner.ended(self._request_id)
            await self._inner.aclose()

    def _checked(self, line: Any) -> tuple[bytes | bytearray, ...]:
        if isinstance(line, bytearray):
            if not line.startswith(b"data:"):
                return line, b"\n"
            del line[:5]  # in place (the line is the reader's fresh buffer): no copy of a long payload
            if line.endswith(b"\r"):
                del line[-1:]
            reason = _refusal(line) if line else None
            if reason is None and len(line) <= _PARSED_BYTES:
                try:
                    message = json.loads(line)
                except (ValueError, RecursionError):
                    message = None  # not JSON (the legacy transport's endpoint URL ...): the SDK's to judge
                if not self._owner.kept(message):
                    return ()
            if reason is None:
                return b"data:", line, b"\n"
        else:  # a line over the limit: only its length, head and tail were kept
            reason = _too_long(line.size, line.limit)
        if self._request_id is None:
            logger.warning("an HTTP upstream's event stream sent %s: dropped", reason)
            return (b": refused\n",)
        logger.warning("an HTTP upstream sent %s: its request %r fails with that", reason, self._request_id)
        return b"data: ", _error(self._request_id, reason), b"\n"

    async def aclose(self) -> None:
        await self._inner.aclose()
