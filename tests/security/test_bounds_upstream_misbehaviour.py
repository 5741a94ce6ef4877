"""Host memory, disk and CPU stay bounded whatever an upstream does beside its answers: a flood of stderr, a
flood of notifications nobody asked for.

A real MCP server subprocess (``tests/fixtures/servers/unruly.py``) started through a config, as the user's
would be.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from codemode.config import parse_config
from codemode.errors import ToolCallError
from codemode.hub import Hub, ToolRef
from codemode.hub.mcp import MAX_LOG_BYTES, McpUpstream
from tests.conftest import FIXTURES
from tests.security.rss import PeakRss

pytestmark = [pytest.mark.anyio, pytest.mark.memory]

UNRULY = FIXTURES / "servers" / "unruly.py"
MB = 1 << 20


def _config(call_timeout_s: float = 60) -> Any:
    entry = {"command": sys.executable, "args": [str(UNRULY)], "call_timeout_s": call_timeout_s}
    return parse_config(json.dumps({"mcpServers": {"unruly": entry}}))


@pytest.fixture
async def unruly(tmp_path: Path) -> AsyncIterator[Hub]:
    async with Hub(_config(), log_dir=tmp_path / "logs") as hub:
        yield hub


async def _text(hub: Hub, tool: str, args: dict[str, Any]) -> str:
    result = await hub.call_tool(ToolRef("unruly", tool), args)
    assert not result.is_error, result
    return str(result.content[0].text)  # type: ignore[union-attr]


# -- stderr: the server writes its log file directly ----------------------------------------------------------


async def test_a_stderr_flood_is_cut_on_disk_keeping_its_end(unruly: Hub, tmp_path: Path) -> None:
    # Before: <server>.log grew as long as the server wrote (a server logging in a loop filled the disk).
    log = tmp_path / "logs" / "unruly.log"
    args = {"megabytes": 3 * MAX_LOG_BYTES // MB, "last": "the very last line", "wait_below": MAX_LOG_BYTES}
    assert await _text(unruly, "stderr_flood", args) == "cut"
    data = log.read_bytes()
    assert len(data) <= MAX_LOG_BYTES
    assert data.startswith(b"[codemode: ") and b"earlier bytes cut: the log is kept under" in data[:200]
    assert data.endswith(b"the very last line\n")
    assert await _text(unruly, "echo", {"text": "still here"}) == "still here"


async def test_a_server_dying_after_a_huge_stderr_is_quoted_from_its_end_only(
    tmp_path: Path, record_property: pytest.RecordProperty
) -> None:
    # Before: the error quoting the server's last stderr lines read the whole file, split into lines: 200 MB
    # of stderr cost the host 600 MB (300 MB: 800 MB) when the server died or failed to start.
    log_dir = tmp_path / "logs"
    upstream = McpUpstream("unruly", _config().servers["unruly"], log_dir=log_dir)
    log_dir.mkdir()
    (log_dir / "unruly.log").write_bytes((b"x" * 79 + b"\n") * (200 * MB // 80) + b"fatal: out of cheese\n\n")
    with PeakRss("upstream: quoting the end of a 200 MB stderr log", record_property) as rss:
        tail = upstream._stderr_tail()
    assert tail.endswith("fatal: out of cheese)"), tail
    assert rss.growth_mb < 20, f"host RSS grew {rss.growth_mb:.0f} MB"


async def test_a_server_that_dies_mid_call_is_named_with_its_last_stderr_line(unruly: Hub) -> None:
    args = {"megabytes": 2, "last": "fatal: out of cheese", "die": True}
    with pytest.raises(ToolCallError, match=r"^unruly\.stderr_flood: the server died during the call"):
        await unruly.call_tool(ToolRef("unruly", "stderr_flood"), args)
    (status,) = unruly.status()
    assert status.state == "died" and str(status.error).endswith("fatal: out of cheese)"), status
    assert await _text(unruly, "echo", {"text": "restarted"}) == "restarted"


# -- notifications codemode never asked for ------------------------------------------------------------------


async def test_a_notification_flood_does_not_hold_the_host(tmp_path: Path) -> None:
    # Before: each log message went through the session (parsed twice, a task spawned) at ~70 us of the host's
    # CPU, to be discarded there: 600,000 of them, written by the server in under a second, held the event loop
    # past the call's 15 s timeout. Dropped as they are read, they cost a tenth of that.
    async with Hub(_config(call_timeout_s=15), log_dir=tmp_path / "logs") as hub:
        params = json.dumps({"level": "info", "logger": "spam", "data": "x" * 40})
        args = {"count": 600_000, "method": "notifications/message", "params": params}
        assert await _text(hub, "notify_flood", args) == "sent 600000"
        assert await _text(hub, "echo", {"text": "still here"}) == "still here"


@pytest.mark.parametrize(
    ("notification", "heeded"),
    [
        ({"method": "notifications/message", "params": {"level": "info", "data": "x"}}, False),
        ({"method": "notifications/progress", "params": {"progressToken": 1, "progress": 1}}, False),
        ({"method": "notifications/resources/updated", "params": {"uri": "file:///etc/passwd"}}, False),
        ({"method": "notifications/cancelled", "params": {"requestId": 99}}, False),  # nothing of that id
        ({"method": "notifications/cancelled", "params": {"requestId": True}}, False),
        ({"method": "notifications/made/up", "params": {}}, False),
        ({"method": "notifications/tools/list_changed"}, True),
        ({"method": "notifications/subscriptions/acknowledged", "params": {"notifications": {}}}, True),
        ({"method": "notifications/cancelled", "params": {"requestId": 5}}, True),  # the server's own request
        ({"method": "notifications/cancelled", "params": {"requestId": "7"}}, True),  # the session's, in flight
        ({"method": ["not", "a", "name"]}, True),  # passed on, for the SDK to refuse (it raised TypeError here)
    ],
)
def test_only_notifications_codemode_acts_on_reach_the_session(notification: dict[str, Any], heeded: bool) -> None:
    from codemode.hub.bounded_stdio import _Reader

    reader = _Reader("unruly")
    reader.serving, reader.in_flight = {5}, {7}
    item = reader.message(bytearray(json.dumps({"jsonrpc": "2.0", **notification}).encode()))
    assert (item is not None) == heeded and reader.ignored == (not heeded)


# -- process life --------------------------------------------------------------------------------------------


async def test_a_server_that_exits_leaving_its_stdout_open_is_seen_to_die(tmp_path: Path) -> None:
    # Before: the connection ended only when stdout did, and a process the server started held it: the call
    # waited out its 30 s timeout, and so did every later one (the server stayed "ready", never restarted).
    async with Hub(_config(call_timeout_s=30), log_dir=tmp_path / "logs") as hub:
        with pytest.raises(ToolCallError, match=r"^unruly\.exit_leaving_a_child: the server died during the call"):
            await hub.call_tool(ToolRef("unruly", "exit_leaving_a_child"), {"seconds": 300})
        (status,) = hub.status()
        assert status.state == "died", status
        assert await _text(hub, "echo", {"text": "restarted"}) == "restarted"
    assert not _sleepers(), "the process the server left behind is still running"


class _Seen(logging.Handler):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text, self.event = text, anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()  # logged on the event loop's thread


async def test_a_hub_closed_while_the_left_process_is_being_stopped_still_stops_it(tmp_path: Path) -> None:
    # The leftover's group is stopped by the exit watcher (SIGTERM, then SIGKILL two seconds on). The hub's own
    # shutdown does not stop the group of a server that has exited, so a shutdown that cancelled the watcher in
    # those two seconds left a process that ignores SIGTERM running for good.
    seen = _Seen("exited with its stdout still open")
    stopping = seen.event
    log = logging.getLogger("codemode.hub.bounded_stdio")
    log.addHandler(seen)
    try:
        async with Hub(_config(call_timeout_s=60), log_dir=tmp_path / "logs") as hub:
            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as tg:

                    async def call() -> None:
                        with contextlib.suppress(ToolCallError):
                            await hub.call_tool(
                                ToolRef("unruly", "exit_leaving_a_child"), {"seconds": 301, "ignore_term": True}
                            )

                    tg.start_soon(call)
                    with anyio.fail_after(30):
                        await stopping.wait()
                    assert _sleepers("301"), "the process left behind has not started"
                    scope.cancel()  # the hub closes while the watcher waits for the SIGTERM to work
        # A SIGKILL sent is not yet a process gone on a busy machine: give it a moment, not the 301 s it sleeps.
        with anyio.move_on_after(10):
            while _sleepers("301"):  # noqa: ASYNC110 (a process's end in /proc has no event to wait on)
                await anyio.sleep(0.05)
        assert not _sleepers("301"), "the process the server left behind, deaf to SIGTERM, is still running"
    finally:
        log.removeHandler(seen)
        for pid in _sleepers("301"):
            with contextlib.suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)


def _sleepers(seconds: str = "300") -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and f"time.sleep({seconds}.0)".encode() in (proc / "cmdline").read_bytes():
                found.append(proc.name)
    return found
