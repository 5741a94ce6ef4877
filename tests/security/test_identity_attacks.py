"""Attacks on identities of ``codemode serve --http`` (issue 16): one test per way a caller with a valid token
could reach another identity's session, learn a token from timing, or find a token written down.

Real ``serve --http`` processes; the attacker speaks raw HTTP where the SDK client would not let it.
"""

from __future__ import annotations

import hmac
import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.shared.exceptions import MCPError

from codemode import identity
from codemode.identity import Identities, digest, token_key
from tests.serve_http import ALICE, BOB, CODEMODE, HANDLE, audit, client, run, serving, text

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
HELLO = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}


async def _post(
    http: httpx2.AsyncClient, url: str, token: str, message: dict[str, Any], session: str | None = None
) -> tuple[int, dict[str, Any] | None, httpx2.Headers]:
    """One JSON-RPC POST; the reply from a JSON body or the SSE stream's last ``data:`` line."""
    headers = {**ACCEPT, "Authorization": f"Bearer {token}", **({"mcp-session-id": session} if session else {})}
    response = await http.post(url, json=message, headers=headers, timeout=120)
    body = response.text
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        lines = [line.removeprefix("data:").strip() for line in body.splitlines() if line.startswith("data:")]
        body = lines[-1] if lines else ""
    return response.status_code, json.loads(body) if body.strip() else None, response.headers


async def _open_session(http: httpx2.AsyncClient, url: str, token: str) -> str:
    status, _, headers = await _post(http, url, token, {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                                        "params": HELLO})  # fmt: skip
    assert status == 200, status
    session = headers["mcp-session-id"]
    status, _, _ = await _post(http, url, token, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
    assert status == 202, status
    return session


def _call(code: str, n: int = 2) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": n, "method": "tools/call",
            "params": {"name": "execute_python", "arguments": {"code": code}}}  # fmt: skip


def _result_text(reply: dict[str, Any] | None) -> str:
    assert reply is not None and "result" in reply, reply
    return "\n".join(c.get("text", "") for c in reply["result"]["content"])


async def test_another_identity_cannot_use_an_mcp_session_id(tmp_path: Path) -> None:
    async with serving(tmp_path) as url, httpx2.AsyncClient() as http:
        alices = await _open_session(http, url, ALICE)
        status, reply, _ = await _post(http, url, ALICE, _call("secret = 'alice'"), alices)
        assert status == 200 and not reply["result"]["isError"], reply  # type: ignore[index]
        listing = {"jsonrpc": "2.0", "id": 9, "method": "tools/list"}
        for attack in (_call("secret"), _call("secret = 'forged'"), listing):
            status, stolen, _ = await _post(http, url, BOB, attack, alices)
            assert status == 404, (status, stolen)
            assert stolen is not None and "is gone: this server does not hold it" in stolen["error"]["message"], stolen
            # Exactly what a made-up id gets: another identity's session is not even shown to exist.
            _, guessed, _ = await _post(http, url, BOB, attack, uuid.uuid4().hex)
            assert guessed is not None and stolen["error"]["data"] == guessed["error"]["data"]
        ended = await http.delete(url, headers={**ACCEPT, "Authorization": f"Bearer {BOB}", "mcp-session-id": alices})
        assert ended.status_code == 404  # nor can it end the session
        status, mine, _ = await _post(http, url, ALICE, _call("secret", 3), alices)
        assert status == 200 and _result_text(mine) == '"alice"'


async def test_another_identity_cannot_use_a_session_handle(tmp_path: Path) -> None:
    async with serving(tmp_path) as url, client(url, ALICE, mode="auto") as alice, client(url, BOB, mode="auto") as bob:
        planted = await run(alice, "secret = 'alice'")
        handle = planted.meta[HANDLE]
        for attempt in ({"name": handle}, {"name": f"{handle}/other"}, {"meta": {HANDLE: handle}}):
            with pytest.raises(MCPError) as refused:
                await run(bob, "secret", attempt.get("name"), meta=attempt.get("meta"))
            assert "is gone: this server does not hold it" in refused.value.error.message, refused.value.error
        assert text(await run(alice, "secret", handle)) == '"alice"'


def test_tokens_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = [f"token-{i}-0123456789abcdefghij" for i in range(5)]
    ids = Identities([(digest(t), f"id{i}") for i, t in enumerate(tokens)])
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(identity.hmac, "compare_digest", spy)
    for presented, expected in [(tokens[0], "id0"), (tokens[-1], "id4"), ("x", None), ("y" * 5000, None)]:
        compared.clear()
        assert ids.identify(presented) == expected
        # Every known digest, whichever matches and wherever: the time says nothing about which one did.
        assert len(compared) == len(tokens), (presented[:10], len(compared))
        # Fixed-size digests, never the token itself: the time says nothing about its length or prefix.
        assert all(len(a) == len(b) == 32 for a, b in compared)
        assert all(presented.encode() not in (a, b) for a, b in compared)


async def test_tokens_are_never_written_to_the_audit_or_the_logs(tmp_path: Path) -> None:
    wrong = "wrong-token-0123456789abcdefghij"
    log = tmp_path / "serve.log"
    async with serving(tmp_path, log=log) as url, httpx2.AsyncClient() as http:
        for token in (ALICE, BOB):
            async with client(url, token) as caller:
                assert not (await run(caller, "print('hello')")).is_error
                assert (await run(caller, "raise ValueError('boom')")).is_error
        refused = await http.post(url, json={}, headers={"Authorization": f"Bearer {wrong}"})
        assert refused.status_code == 401
    _check_files(tmp_path, log, (ALICE, BOB, wrong))


def _check_files(tmp_path: Path, log: Path, tokens: tuple[str, ...]) -> None:
    assert {e["identity"] for e in audit(tmp_path)} == {"alice", "bob"}  # who ran it is recorded...
    assert "identity: alice, bob" in log.read_text() and "POST /mcp" in log.read_text()  # the real log
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert log in files and tmp_path / "audit.jsonl" in files
    for path in files:  # ...and no token, right or wrong, anywhere on disk
        data = path.read_bytes()
        for token in tokens:
            assert token.encode() not in data, f"{token[:8]}… found in {path}"


def test_a_token_put_in_the_config_by_mistake_is_not_echoed(tmp_path: Path) -> None:
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"mcpServers": {}, "codemode": {"tokens": {ALICE: "alice"}}}))
    command = [*CODEMODE, "serve", "--http", "0", "--config", str(config)]
    env = {**os.environ, "CODEMODE_STATE_DIR": str(tmp_path / "state")}
    refused = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "codemode.tokens" in refused.stderr and token_key("x")[:7] in refused.stderr
    assert ALICE not in refused.stderr and ALICE[:12] not in refused.stderr


@pytest.mark.anyio
@pytest.mark.parametrize("trusted", [False, True])
async def test_a_forwarded_address_is_believed_only_from_a_trusted_proxy(tmp_path: Path, trusted: bool) -> None:
    # Per-address limits and the audit use the client's address. X-Forwarded-For is anybody's to write: a client
    # that sends one itself must not pass for another address (nor spread its new sessions over many) unless
    # the address it connects from is a proxy the config trusts.
    from contextlib import AsyncExitStack

    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    settings = {"trusted_proxies": ["127.0.0.1"]} if trusted else {}
    async with serving(tmp_path, **settings) as url, AsyncExitStack() as stack:
        headers = {"Authorization": f"Bearer {ALICE}", "X-Forwarded-For": "203.0.113.7"}
        http = await stack.enter_async_context(create_mcp_http_client(headers=headers))
        session = await stack.enter_async_context(Client(streamable_http_client(url, http_client=http), mode="legacy"))
        assert text(await run(session, "1 + 1")) == "2"
    (entry,) = audit(tmp_path)
    assert entry["identity"] == "alice"
    assert entry["peer"] == ("203.0.113.7" if trusted else "127.0.0.1"), entry["peer"]
