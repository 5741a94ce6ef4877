"""Host memory and CPU stay bounded whatever frames the guest sends (issue: "Host memory and CPU bounded").

Every attack records the host's peak RSS (:mod:`tests.security.rss`) and asserts its growth stays under a
bound the unbounded code went far past. The guest builds its large frames by naming one small buffer many
times in a ``pwritev``, so the guest's own memory stays small and what grows is the host's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from subprocess import PIPE

import anyio
import pytest

from codemode.executors import Executor, Limits
from tests.conftest import Sandbox
from tests.security.helpers import assert_error, assert_healthy, run, run_value
from tests.security.rss import PeakRss

# The peak RSS these attacks record is only meaningful in a process that has not run hundreds of other tests.
pytestmark = [pytest.mark.anyio, pytest.mark.memory]

MAGIC = 0x7FFF_C0DE_0000_0000
MB = 1 << 20

PRELUDE = f"""
import os, struct, json
MAGIC = {MAGIC}
MB = 1 << 20
def send(parts, reply_buffer=False):
    # One frame from ``parts`` (buffers may repeat: the guest pays for each once); the host's reply, decoded.
    vec = [struct.pack('>I', sum(len(p) for p in parts)), *parts]
    if reply_buffer:
        buf = bytearray(65536)
        size = os.pwritev(1, vec + [buf], MAGIC + 1)
        reply = bytes(buf[:size]) if size <= len(buf) else os.pread(1, size, MAGIC)
    else:
        size = os.pwritev(1, vec, MAGIC)
        reply = os.pread(1, size, MAGIC)
    (n,) = struct.unpack_from('>I', reply, 4)
    return json.loads(reply[8:8 + n])
def head(obj):
    text = json.dumps(obj, separators=(',', ':')).encode()
    return [struct.pack('>I', len(text)), text]
def json_part(*pieces):
    # A frame body whose JSON part is the concatenation of pieces (which may repeat one buffer).
    return [struct.pack('>I', sum(len(p) for p in pieces)), *pieces]
"""
"""Guest helpers: ``send(parts)`` writes one frame straight to the bridge and returns the host's reply."""

CALL = """
chunk = b'x' * MB
blob = [[['args', 'query'], %(mb)d * MB]]
send(head({'op': 'call', 'server': 'notes', 'tool': 'search_notes', 'args': {'query': None}, '$blobs': blob})
     + [chunk] * %(mb)d, reply_buffer=%(reply_buffer)s)
"""
"""A call whose one argument is ``mb`` MB: a 1 MB buffer named ``mb`` times in one ``pwritev``."""


async def warm(ex: Executor) -> None:
    """Boot the attacked session's interpreter before measuring (with no pool, nothing boots meanwhile)."""
    assert await run_value(ex, PRELUDE + "1") == 1


def _bounded(rss: PeakRss, limit_mb: float) -> None:
    assert rss.growth_mb < limit_mb, f"{rss.name}: host RSS grew {rss.growth_mb:.0f} MB (bound {limit_mb} MB)"


# -- 1. fd_pwrite: a call is read whole only up to the request limit plus headroom ---------------------------


@pytest.mark.parametrize("reply_buffer", [False, True], ids=["pwrite", "pwrite-reply-buffer"])
async def test_a_call_over_the_request_limit_is_refused_without_being_joined(
    demo_sandbox: Sandbox, reply_buffer: bool, record_property: pytest.RecordProperty
) -> None:
    # 24 MB: over the request limit (4 MB + 1 MB headroom), under the frame limit that also holds results
    # (28.5 MB). Only the call's JSON part is read; the gate refuses it on its size and journals it.
    async with demo_sandbox.executor(pool_size=0) as ex:
        await warm(ex)
        with PeakRss(f"24 MB call from one repeated 1 MB iovec ({reply_buffer=})", record_property) as rss:
            result = await run(ex, PRELUDE + CALL % {"mb": 24, "reply_buffer": reply_buffer}, limits=Limits(wall_s=30))
        assert result.ok, result.error
        assert result.value["ok"] is False and result.value["error"]["kind"] == "too_large", result.value
        assert "arguments are 25,165,9" in result.value["error"]["message"]
        assert "bytes; the limit is 4,194,304" in result.value["error"]["message"]
        assert [(c.tool, c.state.value) for c in result.calls] == [("search_notes", "refused")]
        _bounded(rss, 12)  # joined and decoded, the frame cost 48 MB
        await assert_healthy(ex)


async def test_a_large_call_whose_json_part_is_broken_is_a_bridge_error(demo_sandbox: Sandbox) -> None:
    # Over the read limit, a call has only its JSON part read; a part that does not parse is refused as
    # malformed, with no call made or journaled, and the program goes on.
    code = PRELUDE + (
        "chunk = b'x' * MB\n"
        'reply = send(json_part(b\'{"op":"call","server":"notes","tool":\') + [chunk] * 6)\n'
        "reply\n"
    )
    async with demo_sandbox.executor(pool_size=0) as ex:
        result = await run(ex, code, limits=Limits(wall_s=30))
        assert result.ok, result.error
        assert result.value["ok"] is False and result.value["error"]["kind"] == "bridge", result.value
        assert result.value["error"]["message"].startswith("malformed frame: "), result.value
        assert result.calls == []
        await assert_healthy(ex)


async def test_a_300mb_call_is_refused_unread(demo_sandbox: Sandbox, record_property: pytest.RecordProperty) -> None:
    async with demo_sandbox.executor(pool_size=0) as ex:
        await warm(ex)
        with PeakRss("300 MB call from one repeated 1 MB iovec", record_property) as rss:
            result = await run(ex, PRELUDE + CALL % {"mb": 300, "reply_buffer": True}, limits=Limits(wall_s=30))
        assert result.ok, result.error
        assert result.value["ok"] is False and result.value["error"]["kind"] == "too_large", result.value
        assert "over the 28,582,912-byte limit" in result.value["error"]["message"]
        _bounded(rss, 12)  # the unbounded host joined 300 MB, then decoded it: +900 MB
        await assert_healthy(ex)


async def test_a_result_over_the_frame_limit_ends_the_run_naming_the_refused_frame(demo_sandbox: Sandbox) -> None:
    # The guest's result frame is refused unread; the guest, answered with an error instead of its next job,
    # ends its loop: the run fails naming the frame, not as an interpreter that stopped for no reason.
    async with demo_sandbox.executor(pool_size=0) as ex:
        await warm(ex)
        result = await run(ex, "'y' * 40_000_000", limits=Limits(wall_s=30))
        assert_error(result, "BridgeError", "the sandbox ended after a frame of 40,000,")
        assert result.error is not None and "over the 28,582,912-byte limit" in result.error.message
        await assert_healthy(ex)


async def test_a_trap_after_a_refused_frame_is_that_trap(demo_sandbox: Sandbox) -> None:
    # A refusal the program went on from (it was answered) is not why the run ended: the CPU limit is.
    async with demo_sandbox.executor(pool_size=0) as ex:
        await warm(ex)
        code = PRELUDE + CALL % {"mb": 300, "reply_buffer": True} + "while True: pass\n"
        assert_error(await run(ex, code, limits=Limits(wall_s=2)), "SandboxTimeout")
        await assert_healthy(ex)


# -- 3. result frames: the host's caps, whatever the guest claims --------------------------------------------


async def test_a_forged_result_is_cut_to_the_hosts_caps(demo_sandbox: Sandbox) -> None:
    big = "'x' * 1_000_000"
    code = PRELUDE + (
        "from codemode_runtime import transport\n"
        f"transport.request({{'op': 'next', 'result': {{'stdout': {big}, 'stderr': {big}, 'has_value': True,"
        f" 'value_repr': {big}, 'error': {{'type': 'E' * 100_000, 'message': {big}, 'traceback': {big}}}}}}})\n"
        "os._exit(0)\n"
    )
    async with demo_sandbox.executor() as ex:
        result = await run(ex, code, limits=Limits(wall_s=30, output_chars=1_000))
        assert result.error is not None
        assert (len(result.stdout), len(result.stderr)) == (1_000, 1_000)
        # The error's message and traceback are held to output_chars too (their fixed caps are 10,000 and
        # 20,000 characters): nothing the guest returns is stored or rendered past the execution's cap.
        assert (len(result.error.message), len(result.error.type)) == (1_000, 200)
        assert 900 < len(result.error.traceback) <= 1_000  # its head and its end, the cut noted between
        assert result.value_repr is not None and len(result.value_repr) == 1_000
        await assert_healthy(ex, ("health-check",))


# -- 1'. the restricted child's pipe: the same limits ---------------------------------------------------------

WRITER = r"""
import json, struct, sys
out = sys.stdout.buffer
MB = 1 << 20
def frame(message, blob_mb=0, json_filler=b''):
    text = json.dumps(message, separators=(',', ':')).encode()
    if json_filler:
        text = text[:-1] + b',"pad":[' + json_filler + b'1]}'
    body_size = 4 + len(text) + blob_mb * MB
    out.write(struct.pack('>I', body_size) + struct.pack('>I', len(text)) + text)
    chunk = b'x' * MB
    for _ in range(blob_mb):
        out.write(chunk)
    out.flush()
def call(mb):
    frame({'op': 'call', 'server': 'notes', 'tool': 'search_notes', 'args': {'query': None},
           '$blobs': [[['args', 'query'], mb * MB]]}, blob_mb=mb)
call(24)
call(200)
frame({'op': 'call', 'server': 'notes', 'tool': 'list_tags', 'args': {}}, json_filler=b'{},' * (20 * MB))
frame({'op': 'call', 'server': 'notes', 'tool': 'list_tags', 'args': {}})
sys.stdin.read()
"""
"""A stand-in child that writes, on its stdout, the frames a compromised restricted child could write."""


async def test_the_restricted_pipe_reader_applies_the_same_limits(
    tmp_path: Path, record_property: pytest.RecordProperty
) -> None:
    # Before: the reader read any frame up to 28.5 MB whole, and one over it ended the child (a session lost
    # to a call with large arguments, which under WASM is only refused).
    from codemode.executors.restricted import _Child

    process = await anyio.open_process([sys.executable, "-c", WRITER], stdin=PIPE, stdout=PIPE, stderr=PIPE)
    child = _Child(process, tmp_path)
    try:
        frames = []
        for name in ("24 MB call", "200 MB call", "60 MB of {},{},... in the JSON part", "small call"):
            with PeakRss(f"restricted pipe: {name}", record_property) as rss:
                frames.append(await child.receive(Limits()))
            _bounded(rss, 12)
        call, huge, flood, small = frames
        # Over the request limit: the JSON part only (the gate refuses it on its size), the rest skipped.
        assert (call.message["op"], call.whole, call.size) == ("call", False, 24 * MB + 8 + len(_call_json(24)))
        assert call.message["args"] == {"query": None}
        # Over the frame limit: skipped unread, refused with the limit named, and the channel still in step.
        assert huge.message is None and "bytes from the sandbox is over the 28,582,912-byte limit" in str(huge.refused)
        assert flood.message is None and "28,582,912-byte limit" in str(flood.refused)
        assert small.whole and small.message == {"op": "call", "server": "notes", "tool": "list_tags", "args": {}}
    finally:
        child.kill()
        await child.reap()


def _call_json(mb: int) -> bytes:
    message = {"op": "call", "server": "notes", "tool": "search_notes", "args": {"query": None},
               "$blobs": [[["args", "query"], mb * MB]]}  # fmt: skip
    return json.dumps(message, separators=(",", ":")).encode()
