"""Attacks through ``codemode replay``: an HTTP client's execution replayed with the local user's policy, and
an audit entry choosing the config (the servers, the commands it starts) its replay loads.

Real ``serve --http`` processes and the real CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codemode.audit import AuditLog, ExecutionEntry
from tests.serve_http import BOB, CODEMODE, NOTES, audit, client, run, serving, text


def _codemode(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CODEMODE_HTTP_TOKEN"}
    env.update(CODEMODE_STATE_DIR=str(tmp_path / "state"), BOB_TOKEN=BOB)
    return subprocess.run([*CODEMODE, *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.anyio
async def test_a_clients_execution_is_replayed_under_its_identitys_policy(tmp_path: Path) -> None:
    # Replay ran every entry as the local user: a tool the policy denies to bob ran when his program was replayed.
    policy = {"rules": {"notes.*": "allow"}, "identities": {"bob": {"notes.list_tags": "deny"}}}
    program = "from stubs import notes\ntry:\n    print(len(notes.list_tags()))\n"
    program += "except ToolDenied as e:\n    print('denied', e)"
    async with serving(tmp_path, servers={"notes": NOTES}, policy=policy) as url, client(url, BOB) as bob:
        refused = await run(bob, program)
        assert "denied" in text(refused), text(refused)
    (recorded,) = audit(tmp_path)
    assert recorded["identity"] == "bob" and recorded["calls"][0]["policy"]["decision"] == "deny", recorded

    replay = _codemode(tmp_path, "replay", "--config", str(tmp_path / "team.json"), recorded["id"])
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "same tool calls and output as recorded" in replay.stdout
    assert "replaying as identity 'bob'" in replay.stderr
    replayed = audit(tmp_path)[-1]
    assert replayed["id"] != recorded["id"] and replayed["session"].startswith(f"replay-{recorded['id']}")
    assert replayed["identity"] == "bob" and replayed["calls"][0]["policy"]["decision"] == "deny", replayed


def test_replay_never_loads_the_config_an_audit_entry_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Replay loaded the config file the entry named when no --config was given; the audit log is written from
    # what clients sent (a shared audit database by every node), and loading a config starts its servers.
    marker = tmp_path / "started"
    planted = tmp_path / "planted.json"
    launch = {"command": sys.executable, "args": ["-c", f"open({str(marker)!r}, 'w').close()"]}
    planted.write_text(json.dumps({"mcpServers": {"x": launch}}))
    monkeypatch.setenv("CODEMODE_STATE_DIR", str(tmp_path / "state"))
    entry = ExecutionEntry(session="s", code="6 * 7", executor="restricted", ok=True, duration_s=0.0,
                           output_chars=2, output="42", config=str(planted))  # fmt: skip
    AuditLog(tmp_path / "state" / "audit.jsonl").append(entry)  # the per-user default log

    refused = _codemode(tmp_path, "replay", entry.id)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"ran with config {str(planted)!r}" in refused.stderr and f"pass --config {str(planted)!r}" in refused.stderr
    assert not marker.exists()  # nothing the planted config names was started

    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps({"mcpServers": {}}))
    replayed = _codemode(tmp_path, "replay", "--config", str(mine), entry.id)  # a config the user names is used
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "same tool calls and output as recorded" in replayed.stdout
    assert not marker.exists()
