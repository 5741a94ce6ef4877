"""Requests codemode sends on an upstream's stdio pipe itself, beside the SDK's session: the hot path.

Every tool call a program makes is a ``tools/call`` to an upstream. Through the SDK's ``ClientSession``
one costs ~0.3 ms of CPU on the event loop (its dispatcher's streams, cancel scopes and trace context, the
request and response models, then the version's result surface), which is most of what a call inside
``execute_python`` costs over the same call made directly. On a stdio upstream that speaks a handshake-era
protocol (through 2025-11-25, where a request is its JSON-RPC object and nothing more) the call is written
here instead, and its answer is taken by the transport's reader (:mod:`.bounded_stdio`) before the SDK
sees it: the same bounds apply to it, and a refused answer fails its call with the same error.

Ids are strings (``codemode-N``) that the SDK never uses (its ids are integers), so the two never collide
and everything else on the pipe (the server's notifications and requests, the SDK's own requests) still
goes to the session. A call abandoned (timeout, cancel) is cancelled on the wire as the SDK would.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import mcp_types as types
from mcp.shared.exceptions import MCPError

logger = logging.getLogger(__name__)

_PREFIX = "codemode-"
_CANCEL_WRITE_S = 1.0
"""How long a cancelled call's ``notifications/cancelled`` may take to write (it is a courtesy)."""


class _Pending:
    __slots__ = ("answered", "error", "result")

    def __init__(self) -> None:
        self.answered = anyio.Event()
        self.result: dict[str, Any] | None = None
        self.error: types.ErrorData | None = None


class Lane:
    """Requests sent and answered outside the SDK's session, on one stdio connection.

    The transport binds it (:meth:`bind`) to its pipe and routes every answer to one of its ids to
    :meth:`settle` or :meth:`fail`; :meth:`close` when the pipe ends fails the calls still waiting.
    """

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._waiting: dict[str, _Pending] = {}
        self._write: Callable[[bytes], Awaitable[None]] | None = None
        self._closed = False

    def bind(self, write: Callable[[bytes], Awaitable[None]]) -> None:
        """Send through ``write`` (one whole line per call) from now on."""
        self._write = write

    def waiting(self) -> list[str]:
        """The ids of the calls waiting for their answer."""
        return list(self._waiting)

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send one request and return its ``result`` object.

        Raises:
            MCPError: the server answered with a JSON-RPC error (or the reader refused its answer).
            anyio.BrokenResourceError: the connection is closed, or closed before the answer came.
        """
        write = self._write
        if write is None or self._closed:
            raise anyio.BrokenResourceError("the connection is closed")
        request_id = f"{_PREFIX}{next(self._ids)}"
        pending = self._waiting[request_id] = _Pending()
        message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        # As codemode's own stdio does: a lone surrogate in an argument becomes a \\uXXXX escape, not an error.
        line = (json.dumps(message, ensure_ascii=False, separators=(",", ":")) + "\n").encode(
            "utf-8", "backslashreplace"
        )
        try:
            await write(line)
            await pending.answered.wait()
        except BaseException:
            if self._waiting.pop(request_id, None) is not None and not self._closed:
                await self._cancel(write, request_id)
            raise
        if pending.error is not None:
            raise MCPError(pending.error.code, pending.error.message, pending.error.data)
        if pending.result is None:
            raise anyio.BrokenResourceError("the connection closed before the answer")
        return pending.result

    def settle(self, message: dict[str, Any]) -> bool:
        """Take ``message`` if it answers one of this lane's calls (a response or an error); say whether it did."""
        request_id = message.get("id")
        pending = self._waiting.pop(request_id, None) if isinstance(request_id, str) else None
        if pending is None:
            return False
        result, error = message.get("result"), message.get("error")
        if isinstance(result, dict):
            pending.result = result
        else:
            try:
                pending.error = types.ErrorData.model_validate(error)
            except ValueError:
                pending.error = types.ErrorData(code=types.PARSE_ERROR, message="the server sent a malformed answer")
        pending.answered.set()
        return True

    def fail(self, request_id: object, code: int, message: str) -> bool:
        """Fail the call ``request_id`` with a JSON-RPC error (its answer was refused); say whether it was ours."""
        pending = self._waiting.pop(request_id, None) if isinstance(request_id, str) else None
        if pending is None:
            return False
        pending.error = types.ErrorData(code=code, message=message)
        pending.answered.set()
        return True

    def close(self) -> None:
        """The pipe ended: every call still waiting fails as a closed connection."""
        self._closed = True
        waiting, self._waiting = self._waiting, {}
        for pending in waiting.values():
            pending.answered.set()

    async def _cancel(self, write: Callable[[bytes], Awaitable[None]], request_id: str) -> None:
        notice = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": request_id}}
        with anyio.CancelScope(shield=True), anyio.move_on_after(_CANCEL_WRITE_S):
            try:
                await write((json.dumps(notice) + "\n").encode())
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                pass  # the server is gone: nothing left to cancel
