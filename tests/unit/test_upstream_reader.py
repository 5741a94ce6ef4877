"""The upstream stdio reader's bookkeeping of the session's requests (``hub.bounded_stdio._Reader``) and of
the lane's (``hub.lane.Lane``): which request a refused line is blamed on depends on both, so a stale or
missing entry fails the wrong call, or none."""

from __future__ import annotations

import json

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage

from codemode.calls.results import MAX_CONTENT_BLOCKS
from codemode.hub.bounded_stdio import LIMIT_EXCEEDED, LineReader, _Reader, blocks_refusal
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


@pytest.mark.parametrize("before", [b"", b"ab\n"])
def test_a_line_of_exactly_the_limit_is_kept_wherever_it_starts_in_its_chunk(before: bytes) -> None:
    lines = list(LineReader(max_bytes=10).feed(before + b"y" * 10 + b"\n"))
    assert lines[-1] == bytearray(b"y" * 10)
    assert all(isinstance(line, bytearray) for line in lines)


@pytest.mark.parametrize("buffered", [5, 4500])
def test_an_over_limit_lines_head_is_its_first_bytes_and_no_more(buffered: int) -> None:
    # The head (kept to find the line's id) is the line's first 4,096 bytes, whether the part already
    # buffered is shorter or longer than that: never more of the chunk than it lacks.
    reader = LineReader(max_bytes=5000)
    assert list(reader.feed(b"a" * buffered)) == []
    (line,) = list(reader.feed(b"b" * 10_000 + b"\n"))
    assert not isinstance(line, bytearray)
    assert line.head == (b"a" * buffered + b"b" * 10_000)[:4096]
    assert line.tail == b"b" * 4096 and line.size == buffered + 10_000


def test_content_blocks_up_to_the_limit_pass_and_one_more_is_refused() -> None:
    blocks = [{"type": "text", "text": ""}] * MAX_CONTENT_BLOCKS
    assert blocks_refusal({"jsonrpc": "2.0", "id": 1, "result": {"content": blocks}}) is None
    refusal = blocks_refusal({"jsonrpc": "2.0", "id": 1, "result": {"content": [*blocks, blocks[0]]}})
    assert refusal == f"a result of {MAX_CONTENT_BLOCKS + 1:,} content blocks, over the limit of {MAX_CONTENT_BLOCKS:,}"


def test_an_invalid_envelope_is_named_by_its_first_error_alone() -> None:
    # The detail is pydantic's first complaint, one line: not its whole multi-line report of every union arm.
    reader = _Reader("s")
    reader.sent(_request(4))
    item = reader.message(bytearray(b'{"jsonrpc":"1.0","id":4,"result":{}}'))
    assert isinstance(item, SessionMessage) and isinstance(item.message, types.JSONRPCError)
    assert item.message.error.message == "the server sent a message that is not valid JSON-RPC (Input should be '2.0')"


@pytest.mark.anyio
async def test_an_answer_to_a_lane_call_is_taken_by_the_lane_not_passed_to_the_session() -> None:
    lane = Lane()
    reader = _Reader("s", lane)
    written = anyio.Event()
    results: list[dict[str, object]] = []

    async def write(line: bytes) -> None:
        written.set()

    async def call() -> None:
        results.append(await lane.request("tools/call", {"name": "t"}))

    lane.bind(write)
    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await written.wait()
        item = reader.message(bytearray(b'{"jsonrpc":"2.0","id":"codemode-1","result":{"content":[]}}'))
    assert item is None and results == [{"content": []}]


@pytest.mark.anyio
async def test_a_cancelled_call_whose_cancel_notice_cannot_be_written_still_ends_as_cancelled() -> None:
    # The server is gone by the time the call is abandoned: the notice's write fails, and that failure must
    # not replace the cancellation (the caller's timeout would become a broken-connection error).
    written = anyio.Event()
    notices: list[bytes] = []

    async def write(line: bytes) -> None:
        if written.is_set():
            notices.append(line)
            raise anyio.BrokenResourceError
        written.set()

    lane = Lane()
    lane.bind(write)
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lane.request, "tools/call", {"name": "t"})
            await written.wait()
            scope.cancel()
    assert scope.cancelled_caught and lane.waiting() == []
    assert [json.loads(n)["method"] for n in notices] == ["notifications/cancelled"]


def test_requests_of_the_server_unanswered_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    # A server sending requests without end while it stopped reading held a task (and its answer) for each.
    reader = _Reader("s")
    with caplog.at_level("WARNING", logger="codemode.hub.bounded_stdio"):
        passed = [reader.message(bytearray(b'{"jsonrpc":"2.0","id":%d,"method":"ping"}' % i)) for i in range(1000)]
    kept = [m for m in passed if m is not None]
    assert len(kept) == 32 and reader.dropped == 1000 - 32  # MAX_SERVER_REQUESTS, as documented
    # One warning for the flood, not one per request dropped (968 lines in the log).
    assert [r.getMessage() for r in caplog.records] == [
        "upstream s has 32 requests of its own unanswered (it may not be reading its stdin): its further requests "
        "are dropped"
    ]
    reader.sent(types.JSONRPCResponse(jsonrpc="2.0", id=0, result={}))  # the session answered one
    assert isinstance(reader.message(bytearray(b'{"jsonrpc":"2.0","id":"again","method":"ping"}')), SessionMessage)
    assert reader.message(bytearray(b'{"jsonrpc":"2.0","id":"more","method":"ping"}')) is None
    # Notifications and answers to the session's own requests are not counted.
    reader.sent(_request(7))
    assert isinstance(reader.message(bytearray(b'{"jsonrpc":"2.0","id":7,"result":{"content":[]}}')), SessionMessage)
    # (A notification codemode acts on: a log message is dropped as it is read, counted or not.)
    note = bytearray(b'{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}')
    assert isinstance(reader.message(note), SessionMessage)
