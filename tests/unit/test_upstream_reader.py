"""The upstream stdio reader's bookkeeping of the session's requests (``hub.bounded_stdio._Reader``) and of
the lane's (``hub.lane.Lane``): which request a refused line is blamed on depends on both, so a stale or
missing entry fails the wrong call, or none."""

from __future__ import annotations

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage

from codemode.hub.bounded_stdio import LIMIT_EXCEEDED, LineReader, _Reader
from codemode.hub.lane import Lane


def _request(request_id: int) -> types.JSONRPCRequest:
    return types.JSONRPCRequest(jsonrpc="2.0", id=request_id, method="tools/call", params={"name": "t"})


def test_a_request_is_in_flight_until_answered_or_cancelled() -> None:
    reader = _Reader("s")
    for request_id in (1, 2, 3):
        reader.sent(_request(request_id))
    assert reader.in_flight == {1, 2, 3}
    # The session's answer to a request of the server's (a ping) is neither: it changes nothing.
    reader.sent(types.JSONRPCResponse(jsonrpc="2.0", id=9, result={}))
    cancel = types.JSONRPCNotification(jsonrpc="2.0", method="notifications/cancelled", params={"requestId": 2})
    reader.sent(cancel)
    assert reader.in_flight == {1, 3}
    answer = reader.message(bytearray(b'{"jsonrpc":"2.0","id":1,"result":{"content":[]}}'))
    assert isinstance(answer, SessionMessage) and reader.in_flight == {3}
    error = reader.message(bytearray(b'{"jsonrpc":"2.0","id":3,"error":{"code":-1,"message":"no"}}'))
    assert isinstance(error, SessionMessage) and reader.in_flight == set()


def test_an_answer_that_is_not_json_rpc_fails_its_request_naming_why() -> None:
    reader = _Reader("s")
    reader.sent(_request(4))
    item = reader.message(bytearray(b'{"jsonrpc":"2.0","id":4,"result":5}'))
    assert isinstance(item, SessionMessage)
    refusal = item.message
    assert isinstance(refusal, types.JSONRPCError) and refusal.id == 4
    assert refusal.error.code == types.PARSE_ERROR
    assert refusal.error.message.startswith("the server sent a message that is not valid JSON-RPC (")
    assert reader.in_flight == set()


_NO_ID = b'{"jsonrpc":"2.0","result":{"a":"' + b"y" * 1000 + b'"}}'
"""Over a 64-byte limit, and no id at its head or tail: only a lone request in flight can be blamed."""


@pytest.mark.anyio
@pytest.mark.parametrize("session_requests", [0, 2])
async def test_a_refused_line_with_no_id_is_blamed_on_a_lone_lane_call(session_requests: int) -> None:
    # Alone in flight, the lane's call fails at once naming the limit; beside two of the session's requests,
    # nobody is blamed (any one of the three may be the one answered).
    lane = Lane()
    reader = _Reader("s", lane)
    for request_id in range(1, session_requests + 1):
        reader.sent(_request(request_id))
    written = anyio.Event()
    outcome: list[BaseException] = []

    async def write(line: bytes) -> None:
        written.set()

    async def call() -> None:
        try:
            await lane.request("tools/call", {"name": "t"})
        except (MCPError, anyio.BrokenResourceError) as exc:
            outcome.append(exc)

    lane.bind(write)
    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await written.wait()
        (line,) = LineReader(max_bytes=64).feed(_NO_ID + b"\n")
        item = reader.message(line)
        waiting, in_flight = lane.waiting(), set(reader.in_flight)
        lane.close()  # the pipe's end: what the refusal left waiting fails now (not at a timeout)
    assert item is None and in_flight == set(range(1, session_requests + 1))
    assert waiting == (["codemode-1"] if session_requests else [])
    (error,) = outcome
    if session_requests:
        assert isinstance(error, anyio.BrokenResourceError)  # failed by the close, not by the refusal
        return
    assert isinstance(error, MCPError) and error.error.code == LIMIT_EXCEEDED
    assert error.error.message == f"the server sent a message of {len(_NO_ID):,} bytes, over the 64-byte limit"


@pytest.mark.anyio
async def test_a_closed_lane_refuses_a_request_without_writing_it() -> None:
    # Closed while its write function is still bound (the pipe ended): a request must fail at once, not be
    # written to a pipe nobody reads and wait for an answer that cannot come.
    lines: list[bytes] = []

    async def write(line: bytes) -> None:
        lines.append(line)
        raise AssertionError("a closed lane wrote a request")

    lane = Lane()
    lane.bind(write)
    lane.close()
    with pytest.raises(anyio.BrokenResourceError, match="the connection is closed"):
        await lane.request("tools/call", {"name": "t"})
    assert lines == [] and lane.waiting() == []
