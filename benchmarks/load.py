"""Load test of the team setup (``scripts/cluster``): many MCP clients through HAProxy to 1..N nodes.

Each client is an MCP client over streamable HTTP holding one session (the handshake era: its
``Mcp-Session-Id`` routes it) and runs a series of executions, each calling two bundled demo servers. The
client is a lean one (:class:`LeanClient`, the same wire exchange as the SDK's at about an eighth of its CPU):
the load generator shares the machine's cores with the nodes, and its CPU per execution is reported apart.
Setups, one after the other in the same run:

- ``1 node`` (its audit in the local log) and ``3 nodes`` (the audit in PostgreSQL): throughput, p50/p99
  latency (of a session's executions after its first, which also starts an interpreter and is reported
  apart), CPU seconds per execution (every node's process tree, HAProxy and PostgreSQL; the load generator
  apart);
- ``pinned 1`` and ``pinned 2``: nodes pinned to one core each (``taskset``), for the scale-out ratio on a
  2-core machine (target: 2 nodes ≥ 1.7× one);
- ``kill``: 3 nodes, one killed with SIGKILL a third of the way in. Its clients get an error, reconnect
  and go on through another node; every execution a client saw complete is in the audit exactly once.

    python -m benchmarks.load [--clients 50] [--executions 20] [--smoke] [--only kill ...]

Results: ``benchmarks/results/load.json`` and ``load.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
from mcp_types.version import LATEST_HANDSHAKE_VERSION

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
CLUSTER = ROOT / "scripts" / "cluster"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

PROGRAM = """\
# load c{client} e{execution}
from stubs import inventory, notes
stock = inventory.check_stock(skus=["SKU-0001", "SKU-0002", "SKU-{client:04d}"])
tags = notes.list_tags()
[len(stock["levels"]), len(tags), {client}, {execution}]
"""


@dataclass
class Cluster:
    url: str
    token: str
    folder: Path
    env: dict[str, str]

    def pids(self) -> dict[str, int]:
        rows = (line.split() for line in (self.folder / "pids").read_text().splitlines())
        found = {what: int(pid) for pid, what in rows}
        pgdir = self.folder / "pgdir"
        if pgdir.exists():
            postmaster = Path(pgdir.read_text().strip()) / "data" / "postmaster.pid"
            found["postgresql"] = int(postmaster.read_text().split()[0])
        return found

    def down(self) -> None:
        subprocess.run(["bash", str(CLUSTER), "down"], env=self.env, capture_output=True, timeout=120, check=False)


def cluster_up(nodes: int, folder: Path, *, pin: bool = False, local_audit: bool = False) -> Cluster:
    env = {**os.environ, "CODEMODE_CLUSTER_DIR": str(folder), "CODEMODE_CLUSTER_PIN": "1" if pin else "",
           "CODEMODE_CLUSTER_AUDIT": "local" if local_audit else "postgresql"}  # fmt: skip
    up = subprocess.run(["bash", str(CLUSTER), "up", str(nodes)], env=env, capture_output=True, text=True,
                        timeout=600)  # fmt: skip
    if up.returncode != 0:
        raise SystemExit(f"scripts/cluster up {nodes} failed:\n{up.stderr[-3000:]}")
    printed = dict(line.split("=", 1) for line in up.stdout.splitlines() if "=" in line)
    return Cluster(printed["URL"], printed["TOKEN"], folder, env)


def _own_cpu_s() -> float:
    """CPU seconds (user + system) of this process, the load generator."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _tree_cpu_s(root: int) -> float:
    """CPU seconds (user + system) of ``root`` and every live descendant."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        stats[pid] = fields
        children.setdefault(int(fields[1]), []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += int(stats[pid][11]) + int(stats[pid][12])  # utime, stime (fields 14, 15)
        todo.extend(children.get(pid, []))
    return total / CLOCK_TICKS


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    """Of each session's executions after its first (the first also starts an interpreter)."""
    first: list[float] = field(default_factory=list)
    samples: dict[str, str] = field(default_factory=dict)
    """One message per error kind, to read what went wrong."""
    completed: set[tuple[int, int]] = field(default_factory=set)
    errors: Counter[str] = field(default_factory=Counter)
    reconnects: int = 0


class SessionGone(Exception):
    """The node answered that the MCP session is gone (HTTP 404 or a JSON-RPC error saying so)."""


class LeanClient:
    """An MCP client over streamable HTTP that costs its process little: one HTTP/1.1 keep-alive connection
    per session, JSON-RPC as plain dicts.

    What the SDK's client does on the wire, minus its cost (pydantic models, a dispatcher task per message,
    httpx): ``initialize`` then ``notifications/initialized`` (keeping ``Mcp-Session-Id`` and sending it and
    ``MCP-Protocol-Version`` on every request), ``tools/list`` once (the SDK lists before its first
    ``tools/call`` to validate results), each ``tools/call`` answered as JSON or as an SSE stream, and a
    ``DELETE`` at the end. It opens no GET stream (optional in the protocol; the programs here need no
    server-initiated message). The load generator's CPU is measured (``cpu_ms_per_execution_by_part``):
    it shares the cores with the nodes, so a costly client lowers the scale-out ratio it is measuring.
    """

    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
        self.token = token
        self.session_id: str | None = None
        self.protocol: str | None = None
        self.ids = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> LeanClient:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        init = await self.request("initialize", {"protocolVersion": LATEST_HANDSHAKE_VERSION, "capabilities": {},
                                                 "clientInfo": {"name": "codemode-load", "version": "1"}})  # fmt: skip
        self.protocol = init["protocolVersion"]
        await self.notify("notifications/initialized")
        await self.request("tools/list", {})
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if exc[0] is None and self.session_id is not None:
                with contextlib.suppress(OSError, asyncio.IncompleteReadError):  # best effort, as in the SDK
                    await self._http("DELETE", b"")
        finally:
            if self.writer is not None:
                self.writer.close()

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return await self.request("tools/call", {"name": name, "arguments": arguments})

    async def notify(self, method: str) -> None:
        status, _, body = await self._http("POST", json.dumps({"jsonrpc": "2.0", "method": method}).encode())
        if status >= 300:
            raise RuntimeError(f"{method}: HTTP {status}: {body[:300]!r}")

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.ids += 1
        rid = self.ids
        payload = json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}).encode()
        status, headers, body = await self._http("POST", payload)
        if method == "initialize" and "mcp-session-id" in headers:
            self.session_id = headers["mcp-session-id"]
        kind = headers.get("content-type", "")
        if kind.startswith("text/event-stream"):
            answers = [json.loads(line[5:]) for line in body.decode().splitlines() if line.startswith("data:")
                       and line[5:].strip()]  # fmt: skip
        elif kind.startswith("application/json"):
            answers = [json.loads(body)]
        else:
            answers = []
        answer = next((a for a in answers if isinstance(a, dict) and a.get("id") in (rid, None)
                       and ("result" in a or "error" in a)), None)  # fmt: skip
        error = answer.get("error") if answer is not None else None
        message = str(error.get("message", "")) if isinstance(error, dict) else ""
        if status == 404 or "is gone" in message:
            raise SessionGone(message or f"{method}: HTTP 404, session is gone")
        if answer is None or status >= 300:
            raise RuntimeError(f"{method}: HTTP {status}: {body[:300]!r}")
        if error is not None:
            raise RuntimeError(f"{method}: JSON-RPC error {error}")
        result = answer["result"]
        assert isinstance(result, dict)
        return result

    async def _http(self, method: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """One request on the session's connection, its whole answer read (so the connection is reusable)."""
        assert self.reader is not None and self.writer is not None
        head = [f"{method} {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                f"Authorization: Bearer {self.token}", "Accept: application/json, text/event-stream",
                "Content-Type: application/json", f"Content-Length: {len(body)}"]  # fmt: skip
        if self.session_id is not None:
            head.append(f"Mcp-Session-Id: {self.session_id}")
        if self.protocol is not None:
            head.append(f"MCP-Protocol-Version: {self.protocol}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        reader = self.reader
        with anyio.fail_after(300):
            lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = {}
            for line in lines[1:]:
                if line:
                    key, _, value = line.partition(":")
                    headers[key.strip().lower()] = value.strip()
            if "content-length" in headers:
                data = await reader.readexactly(int(headers["content-length"]))
            elif headers.get("transfer-encoding", "").lower() == "chunked":
                chunks = []
                while size := int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16):
                    chunks.append((await reader.readexactly(size + 2))[:-2])
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                    pass
                data = b"".join(chunks)
            elif status in (204, 304) or status < 200:
                data = b""
            else:  # delimited by the end of the connection
                data = await reader.read()
                headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":  # the next request needs a new connection
            self.writer.close()
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return status, headers, data


async def _client(cluster: Cluster, cid: int, executions: int, run: Run, progress: anyio.Event | None,
                  goal: int) -> None:  # fmt: skip
    """One client: a session of ``executions`` executions; on a lost node, a new session through another."""
    done, in_flight = 0, False
    while done < executions:
        try:
            async with LeanClient(cluster.url, cluster.token) as client:
                session_runs = 0
                while done < executions:
                    code = PROGRAM.format(client=cid, execution=done)
                    started, in_flight = time.perf_counter(), True
                    result = await client.call_tool("execute_python", {"code": code})
                    elapsed, in_flight = time.perf_counter() - started, False
                    done += 1
                    text = " ".join(str(c.get("text", "")) for c in result.get("content", []))
                    if result.get("isError"):
                        kind = "gone" if "is gone" in text else "execution error"
                        run.errors[kind] += 1
                        run.samples.setdefault(kind, text[-300:])
                        break
                    if f", {cid}, {done - 1}]" not in text:  # the program's value: it ran, and for this client
                        run.errors["wrong result"] += 1
                        run.samples.setdefault("wrong result", text[-300:])
                        continue
                    (run.latencies if session_runs else run.first).append(elapsed)
                    session_runs += 1
                    run.completed.add((cid, done - 1))
                    if progress is not None and len(run.completed) >= goal:
                        progress.set()
        except Exception as exc:  # a dead node surfaces as any transport error: count it and go on
            kind = "gone" if _says_gone(exc) else type(exc).__name__
            run.errors[kind] += 1
            run.samples.setdefault(kind, _message(exc)[-300:])
            if in_flight:  # it may or may not have run: an execution is never sent twice
                done, in_flight = done + 1, False
        run.reconnects += done < executions


def _says_gone(exc: BaseException) -> bool:
    """The node answered that the session is gone (HTTP 404, a JSON-RPC error), maybe inside a group."""
    if isinstance(exc, BaseExceptionGroup):
        return any(_says_gone(e) for e in exc.exceptions)
    return "is gone" in str(getattr(getattr(exc, "error", None), "message", "")) or "is gone" in str(exc)


def _message(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_message(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {getattr(getattr(exc, 'error', None), 'message', None) or exc}"


def _audited(cluster: Cluster, nodes: int) -> Counter[tuple[int, int]]:
    """(client, execution) of every execution in the audit, from each node's ``codemode history``."""
    seen: Counter[tuple[int, int]] = Counter()
    configs = [cluster.folder / f"node{i}" / "config.json" for i in range(1, nodes + 1)]
    shared = "audit_url" in json.loads(configs[0].read_text())["codemode"]
    codemode = str(ROOT / ".venv" / "bin" / "codemode")
    for config in configs[:1] if shared else configs:
        out = subprocess.run([codemode, "history", "--json", "-n", "0", "--config", str(config)],
                             capture_output=True, text=True, check=True, timeout=300)  # fmt: skip
        for record in json.loads(out.stdout):
            first = str(record.get("code", "")).split("\n", 1)[0]
            if first.startswith("# load c"):
                client, _, execution = first.removeprefix("# load c").partition(" e")
                seen[(int(client), int(execution))] += 1
    return seen


async def measure(name: str, nodes: int, clients: int, executions: int, *, pin: bool = False,
                  kill: bool = False, local_audit: bool = False) -> dict[str, Any]:  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="codemode-load-") as tmp:
        cluster = cluster_up(nodes, Path(tmp) / "cluster", pin=pin, local_audit=local_audit)
        try:
            pids = cluster.pids()
            warm = Run()  # one execution per node before timing: stubs compiled, pools filled
            async with anyio.create_task_group() as tg:
                for i in range(nodes * 2):
                    tg.start_soon(_client, cluster, 10_000 + i, 1, warm, None, 0)
            cpu_before = {what: _tree_cpu_s(pid) for what, pid in pids.items()}
            own_before = _own_cpu_s()
            run, third = Run(), anyio.Event()
            started = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for cid in range(clients):
                    tg.start_soon(_client, cluster, cid, executions, run, third if kill else None,
                                  clients * executions // 3)  # fmt: skip
                if kill:
                    await third.wait()
                    cpu_before.pop("node2")
                    os.kill(pids["node2"], signal.SIGKILL)
            wall = time.perf_counter() - started
            own = _own_cpu_s() - own_before
            cpu = {what: _tree_cpu_s(pid) - cpu_before[what] for what, pid in pids.items() if what in cpu_before}
            per = 1000 / max(len(run.completed), 1)
            parts = {"nodes": sum(v for k, v in cpu.items() if k.startswith("node")),
                     "haproxy": cpu.get("haproxy", 0.0), "postgresql": cpu.get("postgresql", 0.0),
                     "load_generator": own}  # fmt: skip
            row: dict[str, Any] = {
                "setup": name, "nodes": nodes, "clients": clients, "executions_each": executions,
                "completed": len(run.completed), "wall_s": round(wall, 2),
                "throughput_per_s": round(len(run.completed) / wall, 2),
                "p50_ms": round(statistics.median(run.latencies) * 1000, 1) if run.latencies else None,
                "p99_ms": round(statistics.quantiles(run.latencies, n=100)[98] * 1000, 1)
                if len(run.latencies) > 1 else None,
                "cpu_s": {k: round(v, 2) for k, v in cpu.items()},
                "cpu_ms_per_execution": round(sum(cpu.values()) * per, 2),
                # The load generator shares the cores: its CPU per execution bounds the scale-out ratio too.
                "cpu_ms_per_execution_by_part": {k: round(v * per, 2) for k, v in parts.items()},
                "first_p50_ms": round(statistics.median(run.first) * 1000, 1) if run.first else None,
                "errors": dict(run.errors), "error_samples": run.samples, "reconnects": run.reconnects,
            }  # fmt: skip
            if kill:
                audited = _audited(cluster, nodes)
                row["audit"] = {
                    "completed_missing": sorted(str(k) for k in run.completed if audited[k] == 0)[:20],
                    "recorded_twice": sorted(str(k) for k, n in audited.items() if n > 1)[:20],
                    "completed_recorded_once": sum(1 for k in run.completed if audited[k] == 1),
                }
            return row
        finally:
            cluster.down()


def _chart(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    names = [r["setup"] for r in rows]
    left.bar(names, [r["throughput_per_s"] for r in rows], color="#4878a8")
    left.set_ylabel("executions / s")
    left.set_title("throughput")
    x = range(len(rows))
    right.bar([i - 0.2 for i in x], [r["p50_ms"] or 0 for r in rows], width=0.4, label="p50")
    right.bar([i + 0.2 for i in x], [r["p99_ms"] or 0 for r in rows], width=0.4, label="p99")
    right.set_xticks(list(x), names)
    right.set_ylabel("ms")
    right.set_title("latency per execution")
    right.legend()
    for axis in (left, right):
        axis.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


SETUPS: dict[str, dict[str, Any]] = {
    "1 node": {"nodes": 1, "local_audit": True},
    "3 nodes": {"nodes": 3},
    "pinned 1": {"nodes": 1, "pin": True},
    "pinned 2": {"nodes": 2, "pin": True},
    "kill": {"nodes": 3, "kill": True},
}


async def run(clients: int, executions: int, only: list[str] | None) -> dict[str, Any]:
    rows = []
    for name, setup in SETUPS.items():
        if only and name not in only:
            continue
        row = await measure(name, clients=clients, executions=executions, **setup)
        row["audit_store"] = "local" if setup.get("local_audit") else "postgresql"
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    by = {r["setup"]: r for r in rows}
    summary: dict[str, Any] = {}
    if "1 node" in by and "3 nodes" in by:
        summary["cpu_per_execution_3_vs_1"] = round(
            by["3 nodes"]["cpu_ms_per_execution"] / by["1 node"]["cpu_ms_per_execution"], 3
        )
    if "pinned 1" in by and "pinned 2" in by:
        summary["throughput_pinned_2_vs_1"] = round(
            by["pinned 2"]["throughput_per_s"] / by["pinned 1"]["throughput_per_s"], 3
        )
    return {"benchmark": "load", "cores": os.cpu_count(), "rows": rows, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--executions", type=int, default=20)
    parser.add_argument("--smoke", action="store_true", help="6 clients x 3 executions")
    parser.add_argument("--only", nargs="+", choices=list(SETUPS), metavar="SETUP")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    clients, executions = (6, 3) if args.smoke else (args.clients, args.executions)
    result = anyio.run(run, clients, executions, args.only)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "load.json").write_text(json.dumps(result, indent=2) + "\n")
    _chart(result["rows"], args.out / "load.png")
    for row in result["rows"]:
        print(f"{row['setup']:>9}: {row['completed']} done, {row['throughput_per_s']}/s, p50 {row['p50_ms']} ms, "
              f"p99 {row['p99_ms']} ms (a session's first: p50 {row['first_p50_ms']} ms), "
              f"CPU {row['cpu_ms_per_execution']} ms/execution, errors {row['errors']}")
        by = ", ".join(f"{k} {v}" for k, v in row["cpu_ms_per_execution_by_part"].items())
        print(f"           CPU ms/execution by part: {by}")
        if "audit" in row:
            print(f"           audit: {row['audit']}")
    print(json.dumps(result["summary"]))


if __name__ == "__main__":
    main()
