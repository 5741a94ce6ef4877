"""A first ``codemode serve`` on a machine with no compiled python.wasm: the handshake is answered at once
and the compile runs in the background (the first execution waits for it, with progress notifications).

Real: ``codemode serve`` over stdio with the demo servers, the SDK client, an empty cache directory
(``CODEMODE_CACHE_DIR``), so the compile really happens. Ordered events, not wall time.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

pytestmark = pytest.mark.anyio


def _compiled(cache: Path) -> list[str]:
    folder = cache / "wasm"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


async def test_a_first_serve_answers_the_handshake_while_python_wasm_compiles(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = {**os.environ, "CODEMODE_STATE_DIR": str(tmp_path / "state"), "CODEMODE_CACHE_DIR": str(cache)}
    params = StdioServerParameters(command=sys.executable, args=["-m", "codemode.cli", "serve"], env=env)
    async with Client(params, read_timeout_seconds=300) as client:
        # initialize has been answered: the compile (several seconds) has not written its module yet.
        assert _compiled(cache) == []
        assert [tool.name for tool in (await client.list_tools()).tools] == ["execute_python"]

        messages: list[str | None] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            messages.append(message)

        result = await client.call_tool("execute_python", {"code": "6 * 7"}, progress_callback=on_progress)
        assert not result.is_error and result.content[0].text == "42", result  # type: ignore[union-attr]
        assert messages and "compiling python.wasm" in (messages[0] or ""), messages
        assert messages[-1] == "ready: running the program"
        # The module was cached whole (written to a temporary name, then renamed).
        names = _compiled(cache)
        assert len(names) == 1 and names[0].endswith(".cwasm"), names

        second: list[str | None] = []

        async def on_second(progress: float, total: float | None, message: str | None) -> None:
            second.append(message)

        again = await client.call_tool("execute_python", {"code": "1 + 1"}, progress_callback=on_second)
        assert again.content[0].text == "2" and second == []  # type: ignore[union-attr]  # warm: no wait


async def test_a_client_that_gives_up_mid_compile_still_leaves_the_module_cached(tmp_path: Path) -> None:
    # The SDK's stdio client kills the server's process group two seconds after it closes stdin: a compile
    # running inside serve would die with it, half-written, and every first start would begin again.
    cache = tmp_path / "cache"
    env = {**os.environ, "CODEMODE_STATE_DIR": str(tmp_path / "state"), "CODEMODE_CACHE_DIR": str(cache)}
    params = StdioServerParameters(command=sys.executable, args=["-m", "codemode.cli", "serve"], env=env)
    async with Client(params, read_timeout_seconds=300):
        assert _compiled(cache) == []  # the client leaves right after the handshake, mid-compile
    with anyio.fail_after(300):  # compiling takes seconds; this only bounds a hang
        while not [name for name in _compiled(cache) if name.endswith(".cwasm")]:  # noqa: ASYNC110  # a file, not a task
            await anyio.sleep(0.2)
    assert _compiled(cache) == [n for n in _compiled(cache) if n.endswith(".cwasm")]  # no temp file left
