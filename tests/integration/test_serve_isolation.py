"""Isolation between clients of ``codemode serve --http``: real server processes, real SDK HTTP clients.

The regression tests of the HTTP isolation issue: a session name is scoped to the client that uses it (an
MCP session, or a sessionless client's server-issued handle), eviction and quotas are per client, and HTTP
can require a bearer token, which a non-loopback address must have.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from codemode.config import parse_config
from codemode.errors import ConfigError
from tests.conftest import free_port, wait_for_port

CODEMODE = [sys.executable, "-m", "codemode.cli"]
HANDLE = "codemode/session"
TOKEN = "test-token-0123456789abcdef"


def _text(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CODEMODE_HTTP_TOKEN"}
    return {**env, "CODEMODE_STATE_DIR": str(tmp / "state"), **extra}


def _config(tmp: Path, **settings: object) -> Path:
    """A config with no upstream servers (these tests need none) and the given codemode settings."""
    path = tmp / f"mcp-{len(list(tmp.glob('mcp-*.json')))}.json"
    path.write_text(json.dumps({"mcpServers": {}, "codemode": settings}))
    return path


@asynccontextmanager
async def serving(tmp: Path, *, env: dict[str, str] | None = None, **settings: object) -> AsyncIterator[str]:
    """``codemode serve --http`` on a free loopback port; yields its URL."""
    port = free_port()
    command = [*CODEMODE, "serve", "--http", str(port), "--config", str(_config(tmp, **settings))]
    proc = await anyio.open_process(command, env=_env(tmp, **(env or {})), stderr=None)
    try:
        await wait_for_port(port, proc, "codemode serve --http")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        with anyio.fail_after(30):
            await proc.wait()


async def run(client: Client, code: str, session: str | None = None, **kwargs: Any) -> Any:
    return await client.call_tool("execute_python", {"code": code, **({"session": session} if session else {})},
                                  **kwargs)  # fmt: skip


def _handle(result: Any) -> str:
    assert result.meta is not None and HANDLE in result.meta, f"no session handle in the result: {result.meta}"
    handle = result.meta[HANDLE]
    assert isinstance(handle, str)
    return handle


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_session_name_is_private_to_its_client(tmp_path: Path, mode: str) -> None:
    async with serving(tmp_path) as url, Client(url, mode=mode) as alice, Client(url, mode=mode) as mallory:
        planted = await run(alice, "secret = 'alice'\ndef sign(x):\n    return 'alice signed ' + x", "work")
        assert not planted.is_error, _text(planted)
        # Mallory uses the same name: she can neither read Alice's variables nor replace her functions.
        peek = await run(mallory, "secret", "work")
        assert peek.is_error and "NameError" in _text(peek), _text(peek)
        fake = await run(mallory, "def sign(x):\n    return 'forged ' + x", "work")
        assert not fake.is_error, _text(fake)
        mine = await run(alice, "[secret, sign('it')]", _handle(planted) if mode == "auto" else "work")
        assert _text(mine) == '["alice", "alice signed it"]'


async def test_sessionless_calls_never_share_an_interpreter(tmp_path: Path) -> None:
    async with serving(tmp_path) as url, Client(url) as alice, Client(url) as bob:
        assert alice.protocol_version == "2026-07-28"
        first = await run(alice, "x = 'alice'")
        assert not first.is_error, _text(first)
        seen = await run(bob, "x")
        assert seen.is_error and "NameError" in _text(seen), _text(seen)
        # Without its handle, even the same client gets a new interpreter: each call is private.
        again = await run(alice, "x")
        assert again.is_error and "NameError" in _text(again)
        assert len({_handle(first), _handle(seen), _handle(again)}) == 3


async def test_the_handle_keeps_a_sessionless_clients_interpreter(tmp_path: Path) -> None:
    async with serving(tmp_path) as url, Client(url) as client:
        first = await run(client, "n = 41")
        handle = _handle(first)
        assert handle.startswith("cmh_") and first.content[0].text == "(no output)"
        assert f'session="{handle}"' in first.content[1].text  # the model is told, once
        kept = await run(client, "n + 1", handle)
        assert _text(kept) == "42" and _handle(kept) == handle and "cmh_" not in _text(kept)
        via_meta = await run(client, "n", meta={HANDLE: handle})  # a client app may carry it in _meta instead
        assert _text(via_meta) == "41"
        named = await run(client, "m = n", f"{handle}/other")  # a named session of the same client
        assert named.is_error and "NameError" in _text(named)
        await run(client, "m = 1", f"{handle}/other")
        assert _text(await run(client, "m", f"{handle}/other")) == "1"
        for forged in (handle[:-1] + ("A" if handle[-1] != "A" else "B"), "cmh_mine"):  # HTTP 404: session gone
            with pytest.raises(MCPError, match="is gone: this server does not hold it"):
                await run(client, "n", forged)


async def test_a_client_cannot_evict_another_clients_sessions(tmp_path: Path) -> None:
    async with (
        serving(tmp_path, max_sessions=6) as url,
        Client(url, mode="legacy") as alice,
        Client(url, mode="legacy") as mallory,
        Client(url) as sessionless,
    ):
        assert not (await run(alice, "kept = 'alice'", "mine")).is_error
        for i in range(6):  # more names than a client may hold: Mallory's own idle ones make room
            opened = await run(mallory, f"n = {i}", f"name-{i}")
            assert not opened.is_error, _text(opened)
        for _ in range(4):  # the server is full: first calls of sessionless clients that never come back
            assert not (await run(sessionless, "1")).is_error  # make room by reclaiming each other's
        assert _text(await run(alice, "kept", "mine")) == '"alice"'
        assert _text(await run(mallory, "n", "name-5")) == "5"


async def test_an_ended_mcp_session_gives_its_interpreters_back(tmp_path: Path) -> None:
    # Sessions nobody else may evict must not outlive the MCP session that alone could reach them; until it
    # ends, a newcomer to a full server is refused rather than given another client's interpreter.
    async with serving(tmp_path, max_sessions=2) as url:
        async with Client(url, mode="legacy") as leaving:
            for name in ("a", "b"):
                assert not (await run(leaving, "1", name)).is_error
            async with Client(url, mode="legacy") as waiting:
                full = await run(waiting, "1")
                assert full.is_error and "in use by other clients" in _text(full)
        async with Client(url, mode="legacy") as later:
            with anyio.fail_after(10):
                while (await run(later, "1")).is_error:  # noqa: ASYNC110  # the cleanup follows the DELETE
                    await anyio.sleep(0.1)


async def test_the_rate_limit_is_per_client(tmp_path: Path) -> None:
    async with (
        serving(tmp_path, executions_per_minute=3) as url,
        Client(url, mode="legacy") as greedy,
        Client(url, mode="legacy") as other,
    ):
        for name in ("a", "b", "c"):
            assert not (await run(greedy, "1", name)).is_error
        refused = await run(greedy, "1", "d")  # a new session name is not a new allowance
        assert refused.is_error and "at most 3 executions per minute per client" in _text(refused)
        assert _text(await run(other, "1 + 1")) == "2"


async def test_session_churn_is_rate_limited(tmp_path: Path) -> None:
    async with serving(tmp_path, max_sessions=2) as url, Client(url, mode="legacy") as churner:
        for i in range(8):  # a new interpreter per request, up to the per-client budget for new sessions
            assert not (await run(churner, f"n = {i}", f"s{i}")).is_error
        refused = await run(churner, "1", "s8")
        assert refused.is_error and "at most 8 new sessions per minute per client" in _text(refused)
        assert _text(await run(churner, "n", "s7")) == "7"  # a live session still works


async def test_with_a_token_every_request_must_carry_it(tmp_path: Path) -> None:
    async with serving(tmp_path, env={"CODEMODE_HTTP_TOKEN": TOKEN}) as url:
        hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "x", "version": "0"}}
        body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello}
        headers = {"Accept": "application/json, text/event-stream"}
        async with httpx2.AsyncClient() as http:
            for auth in [None, "Bearer wrong-token-0123456789", f"Bearer {TOKEN}x", TOKEN, f"Basic {TOKEN}"]:
                sent = headers if auth is None else {**headers, "Authorization": auth}
                response = await http.post(url, json=body, headers=sent)
                assert response.status_code == 401, (auth, response.status_code, response.text[:200])
                assert response.headers["www-authenticate"].startswith("Bearer")
            assert (await http.post(url, json=body, headers={**headers, "Authorization": f"Bearer {TOKEN}"})).is_success
        for mode in ("auto", "legacy"):
            async with AsyncExitStack() as stack:
                http_client = await stack.enter_async_context(  # the SDK's timeouts: a first run may be slow
                    create_mcp_http_client(headers={"Authorization": f"Bearer {TOKEN}"})
                )
                client = await stack.enter_async_context(
                    Client(streamable_http_client(url, http_client=http_client), mode=mode)
                )
                assert (await run(client, "6 * 7")).content[0].text == "42"
        with pytest.raises(ExceptionGroup) as refused:  # the SDK client's task group wraps the 401's error
            async with Client(url) as anonymous:
                await run(anonymous, "1")
        assert refused.group_contains(MCPError)


def test_a_non_loopback_address_needs_a_token(tmp_path: Path) -> None:
    command = [*CODEMODE, "serve", "--http", f"0.0.0.0:{free_port()}", "--config", str(_config(tmp_path))]
    refused = subprocess.run(command, env=_env(tmp_path), capture_output=True, text=True, timeout=30)
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "refusing to serve a non-loopback address without authentication" in refused.stderr
    assert "CODEMODE_HTTP_TOKEN" in refused.stderr
    weak = subprocess.run(command, env=_env(tmp_path, CODEMODE_HTTP_TOKEN="short"), capture_output=True, text=True,
                          timeout=30)  # fmt: skip
    assert weak.returncode == 2 and "at least 16 characters" in weak.stderr, weak.stderr[-2000:]


def test_which_addresses_need_a_token(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from codemode.cli import _http_identities

    config = parse_config(json.dumps({"mcpServers": {}, "codemode": {"http_token_env": "MY_TOKEN"}}))
    monkeypatch.delenv("MY_TOKEN", raising=False)
    for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1"):
        assert _http_identities(config, host, insecure=False) is None
        assert "$MY_TOKEN is not set" in capsys.readouterr().err  # allowed, and said
    for host in ("0.0.0.0", "::", "192.168.1.20", "example.com"):
        with pytest.raises(ConfigError, match=r"non-loopback.*\$MY_TOKEN"):
            _http_identities(config, host, insecure=False)
        assert _http_identities(config, host, insecure=True) is None
        assert "WITHOUT AUTHENTICATION" in capsys.readouterr().err
    monkeypatch.setenv("MY_TOKEN", TOKEN)
    for host, insecure in (("0.0.0.0", False), ("127.0.0.1", True)):  # a token set is always enforced
        identities = _http_identities(config, host, insecure=insecure)
        assert identities is not None and identities.identify(TOKEN) == "default"
    tokens = parse_config(json.dumps({"mcpServers": {}, "codemode": {"tokens": {"env:ALICE_T": "alice"}}}))
    monkeypatch.delenv("MY_TOKEN")
    monkeypatch.setenv("ALICE_T", TOKEN)
    identities = _http_identities(tokens, "0.0.0.0", insecure=False)  # codemode.tokens alone is enough
    assert identities is not None and identities.identify(TOKEN) == "alice" and identities.identify("x" * 20) is None
    monkeypatch.delenv("ALICE_T")
    with pytest.raises(ConfigError, match=r"ALICE_T is not set"):
        _http_identities(tokens, "127.0.0.1", insecure=False)


async def test_a_client_holds_at_most_64_open_mcp_sessions(tmp_path: Path) -> None:
    # One client sending initialize only held 10,000 MCP sessions (450 MB), and every other client got 503.
    alice, bob = "alice-token-0123456789abcdefghij", "bob-token-0123456789abcdefghijklmn"
    tokens = {"env:ALICE_TOKEN": "alice", "env:BOB_TOKEN": "bob"}
    async with serving(tmp_path, env={"ALICE_TOKEN": alice, "BOB_TOKEN": bob}, tokens=tokens) as url:
        hello = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "x", "version": "0"}}
        body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello}
        accept = {"Accept": "application/json, text/event-stream"}
        as_bob, as_alice = {**accept, "Authorization": f"Bearer {bob}"}, {**accept, "Authorization": f"Bearer {alice}"}
        async with httpx2.AsyncClient(timeout=30) as http:
            # The method written with a JSON escape is the same initialize to the SDK: it counts, and is refused.
            escaped = json.dumps(body).replace('"initialize"', '"\\u0069nitialize"').encode()
            as_json = {**as_bob, "Content-Type": "application/json"}
            opened = []
            for i in range(64):
                if i % 2:
                    response = await http.post(url, content=escaped, headers=as_json)
                else:
                    response = await http.post(url, json=body, headers=as_bob)
                assert response.status_code == 200, response.text[:200]
                opened.append(response.headers["mcp-session-id"])
            refused = await http.post(url, json=body, headers=as_bob)
            assert refused.status_code == 429 and "holds 64 open MCP sessions" in refused.text, refused.text
            assert (await http.post(url, content=escaped, headers=as_json)).status_code == 429
            assert (await http.post(url, json=body, headers=as_alice)).status_code == 200  # another client
            bad = {**as_bob, "mcp-session-id": opened[0], "mcp-protocol-version": "1999-01-01"}
            assert (await http.delete(url, headers=bad)).status_code >= 400  # refused: the session did not end
            assert (await http.post(url, json=body, headers=as_bob)).status_code == 429
            ended = await http.delete(url, headers={**as_bob, "mcp-session-id": opened[0]})
            assert ended.is_success, ended.status_code
            assert (await http.post(url, json=body, headers=as_bob)).status_code == 200  # room again


async def test_a_client_holds_a_bounded_number_of_open_requests(tmp_path: Path) -> None:
    # One client held 5,000 subscriptions/listen streams (200 MB); any long-lived request counts, here bodies
    # that never finish uploading.
    from codemode.http_app import OPEN_REQUESTS_PER_CLIENT

    alice, bob = "alice-token-0123456789abcdefghij", "bob-token-0123456789abcdefghijklmn"
    tokens = {"env:ALICE_TOKEN": "alice", "env:BOB_TOKEN": "bob"}
    async with serving(tmp_path, env={"ALICE_TOKEN": alice, "BOB_TOKEN": bob}, tokens=tokens) as url:
        accept = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        as_bob, as_alice = {**accept, "Authorization": f"Bearer {bob}"}, {**accept, "Authorization": f"Bearer {alice}"}
        hello = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "x", "version": "0"}}
        initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello}

        parsed = httpx2.URL(url)
        head = f"POST {parsed.path} HTTP/1.1\r\nHost: {parsed.host}\r\nTransfer-Encoding: chunked\r\n"
        # Expect: 100-continue: the server asks for the body once the request is admitted (the gatekeeper
        # reads it), so each upload is known to be held before the next starts, and no probe races them.
        head += "Expect: 100-continue\r\n" + "".join(f"{k}: {v}\r\n" for k, v in as_bob.items()) + "\r\n"

        async with AsyncExitStack() as uploads:
            for _ in range(OPEN_REQUESTS_PER_CLIENT):
                stream = await uploads.enter_async_context(await anyio.connect_tcp(parsed.host, parsed.port or 80))
                await stream.send(head.encode())
                with anyio.fail_after(30):
                    admitted = await stream.receive()
                assert admitted.startswith(b"HTTP/1.1 100"), admitted[:200]
                await stream.send(b"1\r\n{\r\n")  # a body that never ends
            async with httpx2.AsyncClient(timeout=30) as http:
                ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
                refused = await http.post(url, json=ping, headers=as_bob)
                assert refused.status_code == 429, (refused.status_code, refused.text)
                assert "requests open (streams included)" in refused.text, refused.text
                assert (await http.post(url, json=initialize, headers=as_alice)).status_code == 200  # another client
        async with httpx2.AsyncClient(timeout=30) as http:
            with anyio.fail_after(20):
                while (await http.post(url, json=initialize, headers=as_bob)).status_code != 200:  # noqa: ASYNC110
                    await anyio.sleep(0.2)  # closed uploads give their slots back


async def test_a_handle_whose_interpreter_ended_is_told_gone_never_given_a_fresh_one(tmp_path: Path) -> None:
    # It was accepted and answered from a new interpreter: `NameError: name 'secret' is not defined`.
    async with serving(tmp_path, session_idle_s=1) as url, Client(url) as client:
        handle = _handle(await run(client, "secret = 42"))
        assert _text(await run(client, "secret", handle)) == "42"
        with anyio.fail_after(30):
            while True:  # the expiry sweep runs every quarter of the idle limit
                await anyio.sleep(1.5)
                try:
                    await run(client, "secret", handle)
                except MCPError as exc:
                    assert "is gone: its interpreter ended" in str(exc) and exc.error.data == {"reason": "session_gone"}
                    break
        fresh = await run(client, "1 + 1")  # without the handle: a new interpreter, and a new handle
        assert fresh.content[0].text == "2" and _handle(fresh) != handle
