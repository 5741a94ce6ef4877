"""Serving a team (issue 16, items 1, 4, 5) through real ``codemode serve --http`` processes and SDK clients:
identities own their sessions and are audited, policy rules per identity, every endpoint but ``/healthz``
needs a token, ``/metrics`` counts what ran, and a client whose node restarted is told its session is gone.
"""

from __future__ import annotations

import json
import subprocess
from contextlib import AsyncExitStack
from pathlib import Path

import httpx2
import pytest
from mcp.shared.exceptions import MCPError
from prometheus_client.parser import text_string_to_metric_families

from codemode.config import Config, Settings, parse_config
from codemode.engine import Engine
from codemode.front import build_server
from codemode.http_app import http_app
from codemode.identity import token_key
from codemode.session_names import Handles
from tests.conftest import free_port
from tests.serve_http import ALICE, BOB, CODEMODE, HANDLE, NOTES, audit, client, run, serving, text


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_two_identities_keep_their_own_state_and_are_audited(tmp_path: Path, mode: str) -> None:
    async with serving(tmp_path) as url, client(url, ALICE, mode=mode) as alice, client(url, BOB, mode=mode) as bob:
        planted = await run(alice, "x = 'alice'", "work")
        assert not planted.is_error, text(planted)
        seen = await run(bob, "x", "work")
        assert seen.is_error and "NameError" in text(seen), text(seen)
        assert not (await run(bob, "x = 'bob'", "work")).is_error
        again = "work" if mode == "legacy" else planted.meta[HANDLE]
        assert text(await run(alice, "x", again)) == '"alice"'
    by_identity = {e["identity"] for e in audit(tmp_path)}
    assert by_identity == {"alice", "bob"}, by_identity
    assert [e["output"] for e in audit(tmp_path) if e["identity"] == "alice"][-1] == '"alice"'


async def test_unauthenticated_requests_are_refused_on_every_endpoint_but_healthz(tmp_path: Path) -> None:
    async with serving(tmp_path) as url, httpx2.AsyncClient() as http:
        base = url.removesuffix("/mcp")
        for auth in [None, "Bearer wrong-token-0123456789abc", f"Bearer {ALICE}x", ALICE]:
            headers = {} if auth is None else {"Authorization": auth}
            for method, path in [("GET", "/mcp"), ("POST", "/mcp"), ("DELETE", "/mcp"), ("GET", "/metrics"),
                                 ("GET", "/"), ("GET", "/anything"), ("POST", "/healthz/x")]:  # fmt: skip
                response = await http.request(method, base + path, headers=headers, json={})
                assert response.status_code == 401, (auth, method, path, response.status_code)
                assert response.headers["www-authenticate"].startswith("Bearer")
            assert (await http.get(base + "/healthz", headers=headers)).status_code == 200
        for token in (ALICE, BOB):  # both identities' tokens are accepted
            response = await http.get(base + "/metrics", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200 and "codemode_sessions_live" in response.text


async def test_metrics_can_be_public_when_the_config_says_so(tmp_path: Path) -> None:
    async with serving(tmp_path, metrics_public=True) as url, httpx2.AsyncClient() as http:
        base = url.removesuffix("/mcp")
        assert (await http.get(base + "/metrics")).status_code == 200
        assert (await http.post(base + "/mcp", json={})).status_code == 401  # only /metrics opens


def _samples(page: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(page)
        for s in family.samples
    }


async def test_metrics_count_executions_and_tool_calls(tmp_path: Path) -> None:
    async with serving(tmp_path, servers={"notes": NOTES}) as url, httpx2.AsyncClient() as http:
        metrics_url = url.removesuffix("/mcp") + "/metrics"
        auth = {"Authorization": f"Bearer {ALICE}"}
        before = _samples((await http.get(metrics_url, headers=auth)).text)
        async with client(url, ALICE) as alice:
            assert not (await run(alice, "from stubs import notes\nnotes.list_tags()")).is_error
            assert (await run(alice, "1 / 0")).is_error
            assert (await run(alice, "import codemode_runtime\ncodemode_runtime.call('ghost', 'boo', {})")).is_error
            after = _samples((await http.get(metrics_url, headers=auth)).text)
            assert after[("codemode_sessions_live", ())] == 1
    for executor in {dict(labels).get("executor") for name, labels in after if name == "codemode_executions_total"}:
        assert executor in ("wasm", "restricted")

    def moved(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    executor = next(dict(labels)["executor"] for name, labels in after if name == "codemode_executions_total")
    assert moved("codemode_executions_total", executor=executor, outcome="ok") == 1
    assert moved("codemode_executions_total", executor=executor, outcome="program") == 2
    assert moved("codemode_execution_seconds_count") == 3
    assert moved("codemode_tool_call_seconds_count", server="notes") == 1
    assert moved("codemode_tool_calls_total", server="notes", outcome="ok") == 1
    assert moved("codemode_tool_calls_total", server="other", outcome="unknown") == 1  # no label per made-up name
    assert ("codemode_tool_calls_total", (("outcome", "unknown"), ("server", "ghost"))) not in after
    assert after[("codemode_upstream_up", (("server", "notes"),))] == 1
    assert after[("codemode_upstream_state", (("server", "notes"), ("state", "ready")))] == 1
    assert after[("codemode_upstream_tools", (("server", "notes"),))] > 0
    assert after[("codemode_approvals_pending", ())] == 0
    assert ("codemode_pool_interpreters", ()) in after
    assert after[("codemode_hub_running", ())] == 1


async def test_healthz_follows_the_hub(tmp_path: Path) -> None:
    config = Config(settings=Settings(executor="restricted", audit_log=str(tmp_path / "audit.jsonl")))
    engine = Engine(config, stubs_dir=tmp_path / "stubs", skills_dir=tmp_path / "skills")
    async with engine:
        handles = Handles()
        app = http_app(build_server(engine, handles=handles), engine, handles=handles, auth=False)
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://127.0.0.1") as http:
            running = await http.get("/healthz")
            assert running.status_code == 200 and running.json() == {"status": "ok"}
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://127.0.0.1") as http:
        stopped = await http.get("/healthz")  # the engine closed: its hub no longer runs
        assert stopped.status_code == 503 and stopped.json() == {"status": "unavailable"}


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_restarted_node_tells_its_clients_their_session_is_gone(tmp_path: Path, mode: str) -> None:
    port = free_port()
    async with AsyncExitStack() as node:
        url = await node.enter_async_context(serving(tmp_path, port=port))
        async with client(url, ALICE, mode=mode) as alice:
            first = await run(alice, "kept = 41")
            name = first.meta[HANDLE] if mode == "auto" else None  # the handle, or the MCP session
            assert text(await run(alice, "kept + 1", name)) == "42"
            await node.aclose()  # the node dies; the same address comes back without the session
            async with serving(tmp_path, port=port):
                with pytest.raises(MCPError) as gone:
                    await run(alice, "kept", name)
                assert "is gone: this server does not hold it" in gone.value.error.message, gone.value.error
                assert gone.value.error.data == {"reason": "session_gone"}
                async with client(url, ALICE, mode=mode) as again:  # a new session works, and starts empty
                    fresh = await run(again, "kept")
                    assert fresh.is_error and "NameError" in text(fresh), text(fresh)
                    assert (await run(again, "7 * 6")).content[0].text == "42"


async def test_policy_rules_can_be_scoped_to_an_identity(tmp_path: Path) -> None:
    policy = {"rules": {"notes.*": "allow"}, "identities": {"bob": {"notes.list_tags": "deny"}}}
    async with (
        serving(tmp_path, servers={"notes": NOTES}, policy=policy) as url,
        client(url, ALICE) as alice,
        client(url, BOB) as bob,
    ):
        program = "from stubs import notes\ntry:\n    notes.list_tags()\n"
        program += "except ToolDenied as e:\n    print('denied', e)"
        allowed = await run(alice, program)
        assert not allowed.is_error and "denied" not in text(allowed), text(allowed)
        refused = await run(bob, program)
        assert "denied" in text(refused) and "rules['notes.list_tags'] = 'deny'" in text(refused), text(refused)
    calls = {e["identity"]: e["calls"][0]["policy"] for e in audit(tmp_path) if e["calls"]}
    assert calls["alice"]["decision"] == "allow" and calls["bob"]["decision"] == "deny", calls


def test_codemode_token_prints_a_token_and_only_its_digest_for_the_config() -> None:
    made = subprocess.run([*CODEMODE, "token", "alice"], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    token = made.stdout.splitlines()[0].removeprefix("TOKEN=")
    entry = json.loads("{" + made.stdout.splitlines()[1].removeprefix("config: ") + "}")
    assert entry == {"codemode": {"tokens": {token_key(token): "alice"}}} and len(token) >= 32
    assert parse_config(json.dumps({"mcpServers": {}, **entry})).settings.tokens == {token_key(token): "alice"}
    refused = subprocess.run([*CODEMODE, "token", "local"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "reserved" in refused.stderr
