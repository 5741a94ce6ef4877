"""Host memory and CPU stay bounded whatever an upstream server answers (issue: "Host memory and CPU bounded").

A real MCP server subprocess (``tests/fixtures/servers/hostile.py``) answers with a single 200 MB line, a
million content blocks, 30 MB of ``{},{},…``, a result nested 10,000 deep, or a line that is not JSON. Each
call must fail at once with a ``too_large`` (or ``upstream``) error naming the limit, the host's peak RSS
(recorded, :mod:`tests.security.rss`) must stay under a bound the SDK's own reader went far past, and the
server must keep serving.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp.shared.message import SessionMessage

from codemode.calls import Gate, Limits, Reply, default_gate
from codemode.config import parse_config
from codemode.executors import create_executor
from codemode.hub import Hub, ToolRef
from codemode.hub.bounded_stdio import MAX_MESSAGE_BYTES
from tests.conftest import FIXTURES
from tests.security.rss import PeakRss

# The peak RSS these attacks record is only meaningful in a process that has not run hundreds of other tests.
pytestmark = [pytest.mark.anyio, pytest.mark.memory]

HOSTILE = FIXTURES / "servers" / "hostile.py"
MB = 1 << 20


@pytest.fixture(scope="module")
async def hostile() -> AsyncIterator[tuple[Hub, Gate]]:
    entry = {"command": sys.executable, "args": [str(HOSTILE)], "call_timeout_s": 60}
    async with Hub(parse_config(json.dumps({"mcpServers": {"hostile": entry}}))) as hub:
        gate = default_gate(hub)
        # One round trip first: what the server's SDK writes unasked at the start (the tool-change subscription's
        # answer) then is on the wire before a tool writes its crafted line, not in the middle of it.
        await _assert_serving(hub, gate)
        yield hub, gate


async def _call(gate: Gate, tool: str, args: dict[str, Any], limits: Limits | None = None) -> Reply:
    ctx = gate.context(session="upstream-attack", limits=limits or Limits(wall_s=20))
    return await gate.call(ctx, ToolRef("hostile", tool), args, len(json.dumps(args)))


async def _assert_serving(hub: Hub, gate: Gate) -> None:
    reply = await _call(gate, "echo", {"text": "still here"})
    assert reply.ok and reply.value == "still here", reply
    assert {s.name: str(s.state) for s in hub.status()} == {"hostile": "ready"}


def _refused(reply: Reply, kind: str, *phrases: str) -> None:
    # A call that waited instead of failing at once would end at the 20 s limit as kind "timeout", not ``kind``.
    assert not reply.ok and reply.kind == kind, reply
    for phrase in phrases:
        assert phrase in str(reply.message), reply.message


# -- 4. upstream results: checked at the transport before they are buffered or parsed -----------------------


@pytest.mark.parametrize("id_last", [False, True], ids=["id-first", "id-last"])
async def test_a_300mb_line_is_refused_without_being_kept(
    hostile: tuple[Hub, Gate], id_last: bool, record_property: pytest.RecordProperty
) -> None:
    # The SDK's reader keeps a line whole and re-copies it for every 64 KB read (quadratic): 300 MB would
    # cost minutes and GBs. The bounded reader keeps 128 MB at most, then drops the rest as it reads it
    # (measured growth 128-163 MB with the process's own churn; a reader keeping the line holds 300 MB and more).
    hub, gate = hostile
    with PeakRss(f"upstream: one 300 MB line ({id_last=})", record_property) as rss:
        reply = await _call(gate, "huge_line", {"megabytes": 300, "id_last": id_last})
    _refused(reply, "too_large", "314,572,", f"bytes, over the {MAX_MESSAGE_BYTES:,}-byte limit")
    assert rss.growth_mb < 200, f"host RSS grew {rss.growth_mb:.0f} MB"
    await _assert_serving(hub, gate)


async def test_a_million_content_blocks_are_refused_before_they_are_parsed(
    hostile: tuple[Hub, Gate], record_property: pytest.RecordProperty
) -> None:
    # 26 MB on the wire; as the SDK's models, 1.3 GB.
    hub, gate = hostile
    with PeakRss("upstream: 1,000,000 content blocks", record_property) as rss:
        reply = await _call(gate, "many_blocks", {"count": 1_000_000})
    _refused(reply, "too_large", "1,000,004 JSON arrays and objects, over the limit of 250,000")
    assert rss.growth_mb < 80, f"host RSS grew {rss.growth_mb:.0f} MB"
    await _assert_serving(hub, gate)


async def test_more_content_blocks_than_the_limit_are_refused_before_the_models_are_built(
    hostile: tuple[Hub, Gate], record_property: pytest.RecordProperty
) -> None:
    hub, gate = hostile
    with PeakRss("upstream: 20,000 content blocks", record_property) as rss:
        reply = await _call(gate, "many_blocks", {"count": 20_000})
    _refused(reply, "too_large", "a result of 20,001 content blocks, over the limit of 10,000")
    assert rss.growth_mb < 20, f"host RSS grew {rss.growth_mb:.0f} MB"
    await _assert_serving(hub, gate)


async def test_a_flood_of_empty_objects_is_refused_before_it_is_parsed(
    hostile: tuple[Hub, Gate], record_property: pytest.RecordProperty
) -> None:
    hub, gate = hostile
    with PeakRss("upstream: 30 MB of {},{},... as structured content", record_property) as rss:
        reply = await _call(gate, "brace_flood", {"megabytes": 30})
    _refused(reply, "too_large", "JSON arrays and objects, over the limit of 250,000")
    assert rss.growth_mb < 80, f"host RSS grew {rss.growth_mb:.0f} MB"
    await _assert_serving(hub, gate)


async def test_a_text_block_over_the_result_limit_is_refused_before_conversion(
    hostile: tuple[Hub, Gate], record_property: pytest.RecordProperty
) -> None:
    # An ordinary (SDK-made) result within the transport's limit: checked block by block before it is
    # parsed as JSON, turned into the guest's data and encoded.
    hub, gate = hostile
    with PeakRss("upstream: one 8 MB text block against a 1 MB result limit", record_property):
        reply = await _call(gate, "big_text", {"megabytes": 8}, Limits(wall_s=20, max_result_bytes=MB))
    _refused(reply, "too_large", "a text block of the result is 8,388,608 characters; the limit is 1,048,576")
    await _assert_serving(hub, gate)


async def test_a_huge_tool_error_is_cut(hostile: tuple[Hub, Gate]) -> None:
    # An isError result is not a result: it never met the result size check, and went to the guest whole.
    hub, gate = hostile
    reply = await _call(gate, "fail_loudly", {"megabytes": 8})
    assert not reply.ok and reply.kind == "tool", reply.kind
    assert str(reply.message).endswith("[cut at 20,000 characters]") and len(str(reply.message)) < 20_100
    await _assert_serving(hub, gate)


# -- 5. a deep (or unreadable) result fails at once, with its cause ------------------------------------------


async def test_a_result_nested_10000_deep_fails_at_once_naming_the_limit(
    hostile: tuple[Hub, Gate], record_property: pytest.RecordProperty
) -> None:
    # Before: the SDK's parser refused the line, the SDK logged it, and the call waited for its timeout.
    hub, gate = hostile
    with PeakRss("upstream: structured content nested 10,000 deep", record_property) as rss:
        reply = await _call(gate, "deep_result", {"levels": 10_000})
    _refused(reply, "too_large", "nested deeper than the 200-level limit")
    assert rss.growth_mb < 16
    await _assert_serving(hub, gate)


async def test_a_line_that_is_not_json_fails_at_once(hostile: tuple[Hub, Gate]) -> None:
    hub, gate = hostile
    reply = await _call(gate, "garbage", {})
    _refused(reply, "upstream", "hostile.garbage: the server sent a message that is not JSON")
    await _assert_serving(hub, gate)


async def test_the_guest_sees_a_deep_result_as_too_large_at_once(hostile: tuple[Hub, Gate], tmp_path: Path) -> None:
    hub, gate = hostile
    (tmp_path / "stubs").mkdir()
    (tmp_path / "skills").mkdir()
    code = (
        "import codemode_runtime\n"
        "try:\n    codemode_runtime.call('hostile', 'deep_result', {'levels': 10_000})\n    kind = 'returned'\n"
        "except codemode_runtime.ToolError as e:\n    kind = e.kind\n"
        "kind"
    )
    async with create_executor(
        "wasm", stubs_dir=tmp_path / "stubs", skills_dir=tmp_path / "skills", scratch_root=tmp_path / "scratch",
        gate=gate, pool_size=0,
    ) as ex:  # fmt: skip
        result = await ex.run(code, session="guest", limits=Limits(wall_s=30))
    assert result.ok, result.error
    assert result.value == "too_large"  # not "timeout": the call failed at once, within the 30 s limit
    assert [(c.tool, c.state.value, c.error_kind) for c in result.calls] == [("deep_result", "failed", "too_large")]
    await _assert_serving(hub, gate)


# -- the reader itself: what a refused line is tied to -----------------------------------------------------


def test_the_line_reader_keeps_at_most_its_limit() -> None:
    from codemode.hub.bounded_stdio import LineReader

    reader = LineReader(max_bytes=1000)
    body = b'{"jsonrpc":"2.0","id":7,"result":"' + b"x" * 100_000 + b'"}'
    items = [item for start in range(0, len(body), 4096) for item in reader.feed(body[start : start + 4096])]
    assert items == []  # no newline yet: nothing is yielded, and at most 1,000 bytes were kept
    assert len(reader._buffer) == 0
    (line, short) = list(reader.feed(b'\n{"a":1}\n'))
    assert not isinstance(line, bytearray) and line.size == len(body)
    assert line.head.startswith(b'{"jsonrpc":"2.0","id":7,') and line.tail.endswith(b'x"}')
    assert short == bytearray(b'{"a":1}')


def test_an_over_limit_lines_size_is_exact_whatever_its_chunks() -> None:
    # Lines that start and end inside chunks (non-zero offsets): the size counted is the one the refusal
    # names ("a message of N bytes"), so it must be each line's own length, not skewed by where it lay.
    from codemode.hub.bounded_stdio import LineReader, _Reader

    first = b'{"jsonrpc":"2.0","id":1,"result":"' + b"x" * 3000 + b'"}'
    second = b'{"jsonrpc":"2.0","id":2,"result":"' + b"z" * 2500 + b'"}'
    stream = b'{"a":1}\n' + first + b"\n" + second + b"\n"
    reader = LineReader(max_bytes=1000)
    cuts = [0, 1500, 2100, len(stream) - 1200, len(stream)]  # each line begins over the limit mid-chunk
    items = [item for a, b in itertools.pairwise(cuts) for item in reader.feed(stream[a:b])]
    assert items[0] == bytearray(b'{"a":1}')
    sizes = [item.size for item in items[1:] if not isinstance(item, bytearray)]
    assert sizes == [len(first), len(second)]
    session = _Reader("hostile")
    session.in_flight = {1, 2}
    refusal = session.message(items[1])
    assert isinstance(refusal, SessionMessage) and isinstance(refusal.message, types.JSONRPCError)
    expected = f"the server sent a message of {len(first):,} bytes, over the 1,000-byte limit"
    assert refusal.message.error.message == expected


@pytest.mark.parametrize(
    ("head", "tail", "in_flight", "expected"),
    [
        (b'{"jsonrpc":"2.0","id":7,"result":{"content":[', b'x"}]}}', {3, 7}, 7),  # Python, Go, Rust SDKs
        (b'{"result":{"content":[{"type":"text","text":"', b'"}]},"jsonrpc":"2.0","id":3}', {3, 7}, 3),  # TS SDK
        (b'{"jsonrpc":"2.0","id":"7","result":{', b"}}", {7}, 7),  # a string id correlates with an int one
        (b'{"jsonrpc":"2.0","id":9,"result":{', b"}}", {3, 7}, None),  # not in flight, and no lone candidate
        (b'{"jsonrpc":"2.0","result":{"id":7,', b"}}", {3, 7}, None),  # an "id" inside the result is not its id
        (b'{"jsonrpc":"2.0","id":3,"result":{"a":"', b'","id":7}', {3, 7}, 3),  # the head's id, not one at the tail
        (b'{"jsonrpc":"2.0","result":{"a":', b"}}", {5}, 5),  # no id found: the only request in flight
        (b'{"jsonrpc":"2.0","id":5,"method":"sampling/createMessage"', b"}}", {5}, None),  # the server's request
        (b'{"jsonrpc":"2.0","method":"notifications/message","params":{', b"}}", {5}, None),  # a notification
        # The server's own request with its id at the tail: still not an answer to ours.
        (b'{"jsonrpc":"2.0","method":"sampling/createMessage","params":{"a":"', b'"},"id":5}', {5}, None),
        # An id that is not valid JSON (a bad escape): no id, so the lone request in flight, and no crash.
        (b'{"jsonrpc":"2.0","id":"\\q","result":{', b"}}", {5}, 5),
    ],
)
def test_a_refused_line_is_answered_for_the_request_it_belongs_to(
    head: bytes, tail: bytes, in_flight: set[int], expected: int | None
) -> None:
    from codemode.hub.bounded_stdio import LIMIT_EXCEEDED, LineReader, _Reader

    reader = _Reader("hostile")
    reader.in_flight = set(in_flight)
    lines = LineReader(max_bytes=64)
    (line,) = list(lines.feed(head + b"y" * 10_000 + tail + b"\n"))
    item = reader.message(line)
    if expected is None:
        assert item is None and reader.in_flight == in_flight
        return
    assert item is not None and not isinstance(item, Exception)
    error = item.message
    assert error.id == expected and error.error.code == LIMIT_EXCEEDED  # type: ignore[union-attr]
    assert error.error.message.endswith("bytes, over the 64-byte limit")  # type: ignore[union-attr]
    assert reader.in_flight == in_flight - {expected}
