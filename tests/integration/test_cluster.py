"""The team setup for real: ``scripts/cluster up 2`` (two ``serve --http`` nodes behind Debian's HAProxy).

Clients of both protocol eras keep their state through the balancer, a client whose node dies is told its
session is gone and goes on with a new one, and the balancer lets no unauthenticated request through.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from codemode.front import HANDLE_META_KEY

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "scripts" / "cluster"

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs Debian's haproxy (scripts/setup installs it)"),
    pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "codemode").exists(), reason="needs the checkout's .venv"),
]


@dataclass
class Cluster:
    url: str
    token: str
    folder: Path

    def pid(self, node: str) -> int:
        for line in (self.folder / "pids").read_text().splitlines():
            pid, what = line.split()
            if what == node:
                return int(pid)
        raise KeyError(node)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("cluster") / "state"
    env = {**os.environ, "CODEMODE_CLUSTER_DIR": str(folder)}
    up = subprocess.run(["bash", str(CLUSTER), "up", "2"], env=env, capture_output=True, text=True, timeout=600)
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        printed = dict(line.split("=", 1) for line in up.stdout.splitlines() if "=" in line)
        assert set(printed) == {"URL", "TOKEN"}, up.stdout  # the two lines the script promises
        yield Cluster(printed["URL"], printed["TOKEN"], folder)
    finally:
        down = subprocess.run(["bash", str(CLUSTER), "down"], env=env, capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down.stderr
    assert not folder.exists()


@asynccontextmanager
async def connect(cluster: Cluster, mode: str, **headers: str) -> AsyncIterator[Client]:
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {cluster.token}", **headers}, timeout=120)
        )
        yield await stack.enter_async_context(Client(streamable_http_client(cluster.url, http_client=http), mode=mode))


def _marked_down(cluster: Cluster, node: str) -> bool:
    return f"nodes/{node} is DOWN" in (cluster.folder / "haproxy.log").read_text()


def _text(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def _counting(client: Client, handle: str | None, start: int) -> str | None:
    """Set a counter in the client's interpreter and bump it through the balancer; the handle it ran under."""
    session = {"session": handle} if handle else {}
    first = await client.call_tool("execute_python", {"code": f"counter = {start}\ncounter", **session})
    assert not first.is_error, _text(first)
    handle = handle or (first.meta or {}).get(HANDLE_META_KEY)
    session = {"session": handle} if handle else {}
    for i in range(1, 7):  # more calls than nodes: round robin alone would lose the variable
        bumped = await client.call_tool("execute_python", {"code": "counter += 1\ncounter", **session})
        assert not bumped.is_error and bumped.content[0].text == str(start + i), _text(bumped)
    return handle


async def test_both_client_eras_keep_their_state_through_the_balancer(cluster: Cluster) -> None:
    async with connect(cluster, "legacy") as legacy, connect(cluster, "auto") as sessionless:
        assert await _counting(legacy, None, 100) is None  # affinity on the Mcp-Session-Id header
        handle = await _counting(sessionless, None, 500)  # affinity on the node named in the handle
        assert handle is not None and handle.rsplit(".", 1)[-1] in {"node1", "node2"}


async def test_unauthenticated_requests_are_refused_through_the_balancer(cluster: Cluster) -> None:
    hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "x", "version": "0"}}
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello}
    headers = {"Accept": "application/json, text/event-stream"}
    async with httpx2.AsyncClient() as http:
        for auth in [None, "Bearer not-the-token-0123456789"]:
            for _ in range(2):  # each node answers in turn
                sent = headers if auth is None else {**headers, "Authorization": auth}
                response = await http.post(cluster.url, json=body, headers=sent)
                assert response.status_code == 401, response.text[:300]


DOUBLE = '''
def double_it(n: int) -> int:
    """Twice n."""
    return 2 * n

save_skill(double_it, example="double_it(n=21)")
'''


async def _on_node(cluster: Cluster, client: Client, unlike: str) -> str:
    """A handle of ``client`` on a node other than ``unlike`` (round robin gets there within a few tries)."""
    for _ in range(10):
        result = await client.call_tool("execute_python", {"code": "0"})
        handle = str((result.meta or {})[HANDLE_META_KEY])
        if handle.rsplit(".", 1)[-1] != unlike:
            return handle
    raise AssertionError(f"every new session landed on {unlike}")


async def test_a_skill_promoted_through_one_node_is_importable_through_the_other(cluster: Cluster) -> None:
    async with connect(cluster, "auto") as client:
        first = await client.call_tool("execute_python", {"code": DOUBLE})
        assert not first.is_error, _text(first)
        assert json.loads(first.content[0].text)["state"] == "draft"
        node = str((first.meta or {})[HANDLE_META_KEY]).rsplit(".", 1)[-1]
        promote = await anyio.run_process(
            [str(ROOT / ".venv" / "bin" / "codemode"), "skills", "promote", "double_it", "--config",
             str(cluster.folder / node / "config.json"), "--reviewer", "Rita Reviewer <rita@example.org>"],
            check=False,
        )  # fmt: skip
        assert promote.returncode == 0, promote.stderr.decode()[-2000:]
        other = await _on_node(cluster, client, node)
        use = {"code": "from skills import double_it\ndouble_it(n=21)", "session": other}
        with anyio.fail_after(120):  # the other node pulls every 2 s; a session sees it at its next execution
            while (result := await client.call_tool("execute_python", use)).is_error:
                assert "no skill named 'double_it'" in _text(result), _text(result)
                await anyio.sleep(0.5)
        assert _text(result) == "42"


async def test_the_shared_audit_holds_every_execution_once(cluster: Cluster) -> None:
    marker = "audit-once-7f3a"
    # The second client claims another address: HAProxy replaces the header, so the nodes record where it is.
    spoofed = {"X-Forwarded-For": "203.0.113.9"}
    async with connect(cluster, "legacy") as one, connect(cluster, "auto", **spoofed) as two:
        for i in range(4):
            for client in (one, two):
                result = await client.call_tool("execute_python", {"code": f"# {marker} {i}\n{i}"})
                assert not result.is_error, _text(result)
    expected = sorted(f"# {marker} {i}\n{i}" for i in range(4) for _ in range(2))
    for node in ("node1", "node2"):  # either node reads the one audit
        with anyio.fail_after(60):  # each node's writer inserts its spooled records in the background
            while (codes := await _audited(cluster, node, marker)) != expected:
                assert len(codes) < len(expected), codes  # never a record twice
                await anyio.sleep(0.5)
    assert await _audited(cluster, "node1", marker, field="peer") == ["127.0.0.1"] * len(expected)


async def _audited(cluster: Cluster, node: str, marker: str, *, field: str = "code") -> list[str]:
    history = await anyio.run_process(
        [str(ROOT / ".venv" / "bin" / "codemode"), "history", "--json", "-n", "0", "--config",
         str(cluster.folder / node / "config.json")],
        check=True,
    )  # fmt: skip
    return sorted(e[field] for e in json.loads(history.stdout) if marker in str(e.get("code", "")))


async def test_a_dead_nodes_client_is_told_its_session_is_gone_and_goes_on(cluster: Cluster) -> None:
    async with connect(cluster, "auto") as client:
        handle = await _counting(client, None, 7)
        assert handle is not None
        node = handle.rsplit(".", 1)[-1]
        os.kill(cluster.pid(node), signal.SIGKILL)
        # The balancer's health check marks it down; until then a request may meet the closing connection.
        with anyio.fail_after(60):
            while not _marked_down(cluster, node):  # noqa: ASYNC110 - another process's log, no event to await
                await anyio.sleep(0.1)
        with pytest.raises(MCPError) as gone:  # HTTP 404 with a JSON-RPC error (codemode.http_app)
            await client.call_tool("execute_python", {"code": "counter", "session": handle})
        assert "is gone: this server does not hold it" in gone.value.error.message, gone.value.error
        assert "variables are lost" in gone.value.error.message
        fresh = await client.call_tool("execute_python", {"code": "6 * 7"})
        assert not fresh.is_error and fresh.content[0].text == "42"
        survivor = (fresh.meta or {})[HANDLE_META_KEY].rsplit(".", 1)[-1]
        assert survivor != node
    async with connect(cluster, "legacy") as later:  # a new handshake lands on the node still up
        result = await later.call_tool("execute_python", {"code": "40 + 2"})
        assert not result.is_error and _text(result) == "42"
