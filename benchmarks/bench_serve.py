"""End-to-end speed of ``codemode serve`` through a real MCP client (the SDK's, over stdio).

Side by side in one run, against the pinned memory reference server:

- direct: the client calls ``read_graph`` on the memory server itself;
- code mode: the client calls ``execute_python`` on ``codemode serve`` with ``mem.read_graph()``;
- a trivial program (``1 + 1``) through ``execute_python`` on a warm session, beside the same client calling a
  Python MCP server's tool that does nothing (``benchmarks.servers.echo``, the SDK's ``MCPServer``): what
  any server built on the Python SDK costs that client here;
- the same two with a program never sent before on each call: the type check before a run (on by default,
  ``typecheck: warn``) remembers a program it has checked, so a repeated program skips it and a new one pays it.

Timing starts once the server has settled (``SETTLE_S``): the first execution takes the pool's pre-booted
interpreter and the server boots its replacement in the background, which on a 2-core machine competes with the
calls timed beside it (a cost a session pays once, measured by ``bench_sandbox``'s "new session" row).

Each set is sampled interleaved with the direct call, in turns of 25 calls (``speed.p50s``), so the direct
call's figure and the others' come from the same stretches of the run and the overhead (their difference)
does not move with the machine's load.

The client speaks the same protocol era to both servers: the memory server knows only the handshake era
(through 2025-11-25), so the headline rows talk to ``codemode serve`` in that era too. A 2026-07-28 client
(the SDK's default, which ``codemode serve`` also speaks) stamps every request with its envelope and the
server checks it; its two rows are shown apart, beside the same direct call.

Targets (hardening issue): a trivial program p50 ≤ 1.2 ms; one tool call inside ``execute_python`` costs
≤ 1.5 ms more than the same call made directly (the serve issue's were ≤ 10 ms and ≤ 2 ms).

    python -m benchmarks.bench_serve [--smoke]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from benchmarks import speed

RESULTS = Path(__file__).parent / "results"
MEMORY = "@modelcontextprotocol/server-memory@2026.8.31"
MODERN = "2026-07-28"
SETTLE_S = 2.0
"""How long the server is left to boot the pool's replacement interpreter before timing starts (a boot takes
a few hundred milliseconds here)."""


def _executor(client: Client) -> Callable[[str], Awaitable[None]]:
    async def execute(code: str) -> None:
        result = await client.call_tool("execute_python", {"code": code})
        assert not result.is_error, result.content  # a refusal is fast: it must not be timed as a run

    return execute


async def run(*, smoke: bool = False) -> dict[str, Any]:
    """Measure; returns ``{"benchmark": "serve", "rows": [...]}``."""
    n = 20 if smoke else 300
    with tempfile.TemporaryDirectory() as tmp:
        mem_env = {"MEMORY_FILE_PATH": str(Path(tmp) / "memory.jsonl")}
        config = Path(tmp) / "mcp.json"
        config.write_text(
            # The per-client execution rate limit (1,000 a minute by default) would refuse the later rounds.
            json.dumps(
                {
                    "mcpServers": {"mem": {"command": "npx", "args": ["-y", MEMORY], "env": mem_env}},
                    "codemode": {"executions_per_minute": 1_000_000},
                }
            )
        )
        env = {**os.environ, "CODEMODE_STATE_DIR": str(Path(tmp) / "state")}
        direct_params = StdioServerParameters(command="npx", args=["-y", MEMORY], env={**env, **mem_env})
        echo_params = StdioServerParameters(
            command=sys.executable, args=["-m", "benchmarks.servers.echo"], env=env, cwd=str(Path(__file__).parents[1])
        )
        served = StdioServerParameters(
            command=sys.executable, args=["-m", "codemode.cli", "serve", "--config", str(config)], env=env
        )
        async with Client(direct_params, read_timeout_seconds=120, mode="legacy") as upstream:
            await upstream.call_tool("read_graph", {})

            def direct() -> Awaitable[object]:
                return upstream.call_tool("read_graph", {})

            # The direct call is sampled interleaved with the ones compared with it (speed.p50s): their
            # difference is the overhead, whatever the machine's load did during the run.
            async with (
                Client(served, read_timeout_seconds=120, mode="legacy") as client,
                Client(echo_params, read_timeout_seconds=120, mode="legacy") as echo,
            ):
                execute = _executor(client)
                await execute("from stubs import mem\nmem.read_graph()")
                await echo.call_tool("echo", {"text": "2"})
                await anyio.sleep(SETTLE_S)
                direct_ms, inside, trivial, python_noop = await speed.p50s(
                    [
                        direct,
                        lambda: execute("mem.read_graph()"),
                        lambda: execute("1 + 1"),
                        lambda: echo.call_tool("echo", {"text": "2"}),
                    ],
                    n,
                )
                fresh = iter(range(1_000_000))
                new_direct, new_inside, new_trivial = await speed.p50s(
                    [
                        direct,
                        lambda: execute(f"mem.read_graph()\n{next(fresh)}"),
                        lambda: execute(f"1 + {next(fresh)}"),
                    ],
                    n,
                )
            async with Client(served, read_timeout_seconds=120) as client:
                assert client.session.protocol_version == MODERN, client.session.protocol_version
                execute = _executor(client)
                await execute("from stubs import mem\nmem.read_graph()")
                await anyio.sleep(SETTLE_S)
                modern_direct, modern_inside, modern_trivial = await speed.p50s(
                    [direct, lambda: execute("mem.read_graph()"), lambda: execute("1 + 1")], n
                )
    base = "direct read_graph p50"
    rows = [
        speed.row("trivial execute_python p50", trivial, "ms", base, direct_ms, "≤ 1.2 ms"),
        speed.row(
            "trivial execute_python, beside a Python server's no-op tool p50",
            trivial,
            "ms",
            "the same client calling benchmarks.servers.echo",
            python_noop,
            "—",
        ),
        speed.row("tool call inside execute_python p50", inside, "ms", base, direct_ms, "—"),
        speed.row("overhead vs direct call p50", inside - direct_ms, "ms", base, direct_ms, "≤ 1.5 ms"),
        speed.row("trivial, a new program each call p50", new_trivial, "ms", base, new_direct, "—"),
        speed.row("overhead, a new program each call p50", new_inside - new_direct, "ms", base, new_direct, "—"),
        speed.row(f"trivial, a {MODERN} client p50", modern_trivial, "ms", base, modern_direct, "—"),
        speed.row(f"overhead, a {MODERN} client p50", modern_inside - modern_direct, "ms", base, modern_direct, "—"),
    ]
    return {"benchmark": "serve", "rows": rows, "env": {"python": sys.version.split()[0], "cpus": os.cpu_count()}}


table = speed.table

if __name__ == "__main__":
    speed.main("serve", __doc__, run)
