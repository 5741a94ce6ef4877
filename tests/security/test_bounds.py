"""Size checks come before the work they bound: frames from the guest, their JSON, and its result.

Each attack records the host's peak RSS growth (``VmHWM``, reset through ``/proc/self/clear_refs`` where
the kernel allows it) and prints it (``pytest -s``).
"""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

import pytest

from codemode import protocol
from codemode.executors import Limits
from tests.conftest import Sandbox
from tests.security.helpers import assert_healthy, run, run_value
from tests.security.test_wasm_bridge import RAW

MB = 1 << 20


def _reset_peak() -> int:
    """Reset the peak RSS if the kernel allows it; return the current peak in bytes."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _peak()


def _peak() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _PeakGrowth:
    def __enter__(self) -> _PeakGrowth:
        self.before = _reset_peak()
        self.grown = 0
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.grown = _peak() - self.before


# -- the WASM channel: the frame's length is checked before its buffers are joined -------------------------


@pytest.mark.anyio
async def test_pwritev_of_one_buffer_repeated_is_refused_before_joining(demo_sandbox: Sandbox) -> None:
    # Regression (a hole once): the host joined the buffers first (up to 256 MB) and only then looked at the frame.
    code = RAW + (
        "buf = b'x' * (1 << 20)\n"
        "size = os.pwritev(1, [buf] * 200, MAGIC)\n"
        "body(os.pread(1, size, MAGIC))"
    )
    async with demo_sandbox.executor() as ex:
        with _PeakGrowth() as peak:
            reply = await run_value(ex, code, limits=Limits(wall_s=20))
        print(f"pwritev 200 x 1 MB: host peak RSS grew {peak.grown / MB:.1f} MB")
        assert '"ok":false' in reply and '"kind":"too_large"' in reply, reply
        assert "a frame of 209,715,200 bytes from the sandbox is over the" in reply and "-byte limit" in reply
        assert peak.grown < 100 * MB
        await assert_healthy(ex)


@pytest.mark.anyio
async def test_pwritev_with_a_huge_iovec_count_is_refused(demo_sandbox: Sandbox) -> None:
    code = RAW + "body(os.pread(1, os.pwritev(1, [b'x'] * 1025, MAGIC), MAGIC))"
    async with demo_sandbox.executor() as ex:
        reply = await run_value(ex, code)
        assert '"kind":"bridge"' in reply and "a frame in 1,025 buffers; the limit is 1,024" in reply, reply
        await assert_healthy(ex)


# -- the JSON part: nesting and container count are checked before it is parsed ----------------------------


@pytest.mark.anyio
async def test_a_frame_of_empty_objects_is_refused_before_parsing(demo_sandbox: Sandbox) -> None:
    # Regression (a hole once): 20 MB of "{}," (under the frame limit) parsed into ~7 M dicts on the host.
    build = RAW + "frame = framed(jbody(b'[' + b'{},' * 7_000_000 + b'{}]'))\nlen(frame)"
    async with demo_sandbox.executor() as ex:
        assert await run_value(ex, build, limits=Limits(wall_s=30)) > 20_000_000  # guest memory grows first
        with _PeakGrowth() as peak:
            started = time.monotonic()
            reply = await run_value(ex, "body(raw(frame))", limits=Limits(wall_s=30))
            took = time.monotonic() - started
        print(f"20 MB of {{}}: host peak RSS grew {peak.grown / MB:.1f} MB in {took:.2f} s")
        assert '"ok":false' in reply and "arrays and objects is over the limit of 1,000,000" in reply, reply
        assert peak.grown < 100 * MB
        await assert_healthy(ex)


def test_deep_nesting_is_refused_before_parsing() -> None:
    deep = _frame(b"[" * 100_000 + b"]" * 100_000)
    with _PeakGrowth() as peak:
        started = time.monotonic()
        with pytest.raises(protocol.FrameError, match="nested deeper than the limit of 200 levels"):
            protocol.decode_frame(deep, 64 * MB)
        took = time.monotonic() - started
    print(f"100k-deep: {took * 1000:.1f} ms, host peak RSS grew {peak.grown / MB:.1f} MB")
    assert peak.grown < 50 * MB


def test_fifty_megabytes_of_empty_objects_are_refused_before_parsing() -> None:
    flat = _frame(b"[" + b"{}," * (50 * MB // 3) + b"{}]")
    with _PeakGrowth() as peak:
        started = time.monotonic()
        with pytest.raises(protocol.FrameError, match="arrays and objects is over the limit of 1,000,000"):
            protocol.decode_frame(flat, 64 * MB)
        took = time.monotonic() - started
    print(f"50 MB of {{}}: {took * 1000:.1f} ms, host peak RSS grew {peak.grown / MB:.1f} MB")
    assert peak.grown < 20 * MB


def test_depth_checks_ignore_brackets_in_strings_and_accept_wide_data() -> None:
    wide = {"op": "call", "rows": [{"k": [i, {"v": "[[[{{{"}]} for i in range(5000)], "s": '\\"[' * 500}
    assert protocol.decode_frame(protocol.encode_frame(wide), 64 * MB) == wide
    nested: object = "end"
    for _ in range(protocol.MAX_DEPTH - 1):
        nested = [nested]
    ok = {"op": "call", "deep": nested}
    assert protocol.decode_frame(protocol.encode_frame(ok), 64 * MB) == ok
    with pytest.raises(protocol.FrameError, match="nested deeper"):
        protocol.decode_frame(protocol.encode_frame({"op": "call", "deep": [nested, [[[]]]]}), 64 * MB)
    with pytest.raises(protocol.FrameError, match="unbalanced"):
        protocol.decode_frame(_frame(b'{"op":"x","a":' + b"[" * 300 + b"}"), 64 * MB)


def test_blob_count_is_bounded() -> None:
    blobs = [[["k", str(i)], 0] for i in range(protocol.MAX_BLOBS + 1)]
    text = json.dumps({"op": "call", "k": {}, "$blobs": blobs}).encode()
    head = protocol.HEADER.pack(len(text)) + text
    with pytest.raises(protocol.FrameError, match="10,001 entries is over the limit of 10,000"):
        protocol.decode_frame(protocol.HEADER.pack(len(head)) + head, 64 * MB)


def _frame(json_text: bytes) -> bytes:
    body = protocol.HEADER.pack(len(json_text)) + json_text
    return protocol.HEADER.pack(len(body)) + body


# -- the result: host-side caps apply whatever the guest sends --------------------------------------------

FORGE_BIG = """
from codemode_runtime import transport
reply = transport.request({'op': 'next', 'result': {'has_value': True, 'value_repr': 'v' * %(chars)d,
                                                    'stdout': 'o' * %(chars)d, 'stderr': 'e' * %(chars)d,
                                                    'error': {'type': 'T' * %(chars)d, 'message': 'm' * %(chars)d,
                                                              'traceback': 't' * %(chars)d}}})
import os
os._exit(0)
"""
"""Ends the execution with a forged ``next`` frame whose every text field is ``chars`` long."""

FORGE_STDOUT = """
from codemode_runtime import protocol, transport
big = protocol.pack({'op': 'next', 'result': {'stdout': 'o' * %(chars)d}})
"""
SEND_FORGED = "transport.exchange(big)\nimport os\nos._exit(0)"
"""Build a forged ``next`` with a huge stdout in one execution (guest memory grows), send it in the next."""


@pytest.mark.anyio
async def test_a_forged_result_is_capped_on_the_host(demo_sandbox: Sandbox) -> None:
    # Regression (a hole once): the host stored whatever stdout the forged frame carried, past the guest-side cap.
    async with demo_sandbox.executor() as ex:
        limits = Limits(wall_s=10, output_chars=100_000)
        result = await run(ex, FORGE_BIG % {"chars": 1_000_000}, limits=limits)
        assert len(result.stdout) == len(result.stderr) == 100_000
        assert result.error is not None
        assert len(result.error.type) == 200 and len(result.error.message) == 10_000
        assert 19_900 < len(result.error.traceback) <= 20_000
        await assert_healthy(ex, ("health-check",))


@pytest.mark.anyio
async def test_a_forged_result_over_the_frame_limit_is_refused_unread(demo_sandbox: Sandbox) -> None:
    # 30 MB of stdout against a 1 MB output cap: the frame limit (4 MB + 8 x 1 M + 8 MB) refuses it unread;
    # the guest loop then has no work and ends, and the run fails naming the limit.
    async with demo_sandbox.executor() as ex:
        limits = Limits(wall_s=20, output_chars=1_000_000)
        built = await run(ex, FORGE_STDOUT % {"chars": 30_000_000}, limits=limits)
        assert built.ok, built.error
        with _PeakGrowth() as peak:
            result = await run(ex, SEND_FORGED, limits=limits)
        print(f"forged 30 MB stdout: host peak RSS grew {peak.grown / MB:.1f} MB")
        assert not result.ok and result.error is not None
        assert "from the sandbox is over the 20,582,912-byte limit" in result.error.message, result.error
        assert len(result.stdout) <= 1_000_000
        assert peak.grown < 100 * MB
        await assert_healthy(ex, ("health-check",))
