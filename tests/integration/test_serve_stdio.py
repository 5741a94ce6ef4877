"""``codemode serve``'s own stdio transport (:mod:`codemode.stdio`) on raw pipes: the lines the SDK's transport
would skip are skipped, every answer is one valid JSON line, and the end of stdin ends the server."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from subprocess import PIPE
from typing import Any

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream


async def _send(process: Process, *lines: bytes) -> None:
    assert process.stdin is not None
    await process.stdin.send(b"".join(line + b"\n" for line in lines))


async def _answer(stdout: BufferedByteReceiveStream) -> dict[str, Any]:
    with anyio.fail_after(120):
        answer: dict[str, Any] = json.loads(await stdout.receive_until(b"\n", 1 << 20))
    return answer


def _call(request_id: int, code: bytes) -> bytes:
    params = b'{"name": "execute_python", "arguments": {"code": "' + code + b'"}}'
    return b'{"jsonrpc": "2.0", "id": %d, "method": "tools/call", "params": %s}' % (request_id, params)


async def test_bad_lines_are_skipped_answers_are_json_lines_and_eof_ends_it(tmp_path: Path) -> None:
    config = tmp_path / "mcp.json"
    config.write_text('{"mcpServers": {}}')
    env = {**os.environ, "CODEMODE_STATE_DIR": str(tmp_path / "state")}
    initialize = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    process = await anyio.open_process(
        [sys.executable, "-m", "codemode.cli", "serve", "--config", str(config)], stdin=PIPE, stdout=PIPE, env=env
    )
    async with process:
        assert process.stdout is not None
        stdout = BufferedByteReceiveStream(process.stdout)
        await _send(
            process, b"not json", b"", b'{"jsonrpc": "2.0", "id": 7}',
            json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": initialize}).encode(),
        )  # fmt: skip
        assert (await _answer(stdout))["id"] == 1  # the first answer: nothing came back for the bad lines
        await _send(process, b'{"jsonrpc": "2.0", "method": "notifications/initialized"}')
        await _send(process, _call(2, b"print('a\\\\udcffb')"))  # a lone surrogate in the output
        lone = await _answer(stdout)
        assert lone["id"] == 2 and lone["result"]["content"][0]["text"] == "a\\udcffb"
        # A lone surrogate escape in the request (valid JSON that pydantic's parser refuses) went unanswered.
        await _send(process, _call(4, b'x = \\"\\ud800\\"\\nprint(len(x))'))
        surrogate = await _answer(stdout)
        assert surrogate["id"] == 4 and surrogate["result"]["isError"], surrogate
        assert "surrogates not allowed" in surrogate["result"]["content"][0]["text"], surrogate
        await _send(process, _call(3, b"\xff1 + 1"))  # not UTF-8: read as U+FFFD, as the SDK's reader does
        invalid = await _answer(stdout)
        assert invalid["result"]["isError"] and "U+FFFD" in invalid["result"]["content"][0]["text"]
        assert process.stdin is not None
        await process.stdin.aclose()
        with anyio.fail_after(60):
            assert await process.wait() == 0
