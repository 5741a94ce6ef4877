"""What serving a team adds per request and per execution (issue 16): the HTTP gatekeeper (authentication on
every path, the session-gone check of a sessionless client's handle), token lookup among many identities, and
the metrics' bookkeeping per execution.

Each variant runs in the same process, interleaved in rounds with its baseline, and the medians are printed:

* gatekeeper: an ASGI request (headers + JSON body) through ``_Gatekeeper`` and a trivial inner app, against
  the inner app alone; small bodies, a body naming a handle (parsed and checked), and a 1 MB program;
* identify: one token checked against 1 and against 100 identities (every digest is compared);
* metrics: ``Metrics.observe`` of an execution with 5 tool calls, and one ``/metrics`` page.

    python -m benchmarks.bench_http_front [--requests 5000] [--out benchmarks/results/http_front.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.types import Message, Receive, Scope, Send

from codemode.audit import ExecutionEntry
from codemode.calls.types import CallRecord, CallState
from codemode.config import Config
from codemode.engine import Engine
from codemode.http_app import _Gatekeeper
from codemode.identity import Identities, digest
from codemode.metrics import Metrics
from codemode.session_names import Handles

App = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _inner(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body, answers 200: the SDK's part left out."""
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def _request(body: bytes, user: Any) -> tuple[Scope, Receive, Send]:
    scope: Scope = {
        "type": "http", "method": "POST", "path": "/mcp", "headers": [(b"content-type", b"application/json")],
        "user": user, "auth": None,
    }  # fmt: skip
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)] or [b""]
    messages: list[Message] = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        pass

    return scope, receive, send


def _call(code: str, session: str | None = None) -> bytes:
    arguments = {"code": code, **({"session": session} if session else {})}
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "execute_python",
               "arguments": arguments}}  # fmt: skip
    return json.dumps(message).encode()


async def _time(app: App, body: bytes, user: Any, n: int) -> list[float]:
    out = []
    for _ in range(n):
        scope, receive, send = _request(body, user)
        started = time.perf_counter()
        await app(scope, receive, send)
        out.append(time.perf_counter() - started)
    return out


async def gatekeeper(requests: int, rounds: int = 10) -> dict[str, Any]:
    handles = Handles()
    user = AuthenticatedUser(AccessToken(token="", client_id="codemode-http", scopes=[], subject="alice"))
    principal = "codemode-http\0\0alice"
    handle = handles.mint(principal=principal)
    guarded = _Gatekeeper(_inner, handles=handles, auth=True, public=frozenset({"/healthz"}))
    bodies = {
        "small": _call("print(1)"),
        "handle": _call("print(1)", handle),
        "1mb": _call("x = 1\n" * 170_000),
    }
    out: dict[str, Any] = {}
    for name, body in bodies.items():
        base: list[float] = []
        gated: list[float] = []
        per_round = max(1, requests // rounds // (50 if name == "1mb" else 1))
        await _time(_inner, body, user, 20)
        await _time(guarded, body, user, 20)
        for _ in range(rounds):
            base += await _time(_inner, body, user, per_round)
            gated += await _time(guarded, body, user, per_round)
        b, g = statistics.median(base) * 1e6, statistics.median(gated) * 1e6
        out[name] = {"bytes": len(body), "bare_p50_us": round(b, 2), "gatekeeper_p50_us": round(g, 2),
                     "adds_p50_us": round(g - b, 2)}  # fmt: skip
    return out


def identify(n: int = 20_000) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for count in (1, 100):
        ids = Identities([(digest(f"token-{i}-0123456789abcdef"), f"id{i}") for i in range(count)])
        samples = []
        for i in range(n):
            token = f"token-{i % count}-0123456789abcdef"
            started = time.perf_counter()
            ids.identify(token)
            samples.append(time.perf_counter() - started)
        out[f"{count}_identities_p50_us"] = round(statistics.median(samples) * 1e6, 2)
    return out


def metrics(n: int = 20_000) -> dict[str, Any]:
    engine = Engine(Config())  # not entered: observe() and the page read what is there
    collected = Metrics(engine)
    calls = [CallRecord("notes", "list_tags", 20, 0.002, CallState.DONE) for _ in range(5)]
    entry = ExecutionEntry(session="s", code="1", executor="wasm", ok=True, duration_s=0.01, output_chars=1,
                           calls=calls)  # fmt: skip
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        collected.observe(entry)
        samples.append(time.perf_counter() - started)
    pages = []
    for _ in range(200):
        started = time.perf_counter()
        collected.exposition()
        pages.append(time.perf_counter() - started)
    return {"observe_5_calls_p50_us": round(statistics.median(samples) * 1e6, 2),
            "page_p50_us": round(statistics.median(pages) * 1e6, 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=5_000, help="requests per variant (default 5,000)")
    parser.add_argument("--out", metavar="FILE", help="also write the JSON here (benchmarks/results/http_front.json)")
    args = parser.parse_args()
    result = {
        "environment": {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()},
        "gatekeeper": anyio.run(gatekeeper, args.requests),
        "identify": identify(),
        "metrics": metrics(),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    for name, row in result["gatekeeper"].items():
        print(f"gatekeeper, {name} body ({row['bytes']:,} B): adds {row['adds_p50_us']} µs p50 "
              f"({row['bare_p50_us']} → {row['gatekeeper_p50_us']} µs)")  # fmt: skip
    print(f"identify: {result['identify']}; metrics: {result['metrics']}")


if __name__ == "__main__":
    main()
