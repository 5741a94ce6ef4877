"""Attacks on the policy: a program cannot reach a denied (or unapproved) tool by going around its stubs.

The policy is a host-side gate step, so whatever the guest does (import the runtime and call it, replace its
pieces, or write bridge frames by hand) the call arrives at the same step. Each test sees the upstream's
own call list stay empty; removing ``PolicyStep`` from the chain makes them fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from codemode.audit import AuditLog
from codemode.config import Config, PolicySettings, Settings
from codemode.engine import Engine
from codemode.executors import ExecutorKind
from codemode.hub import FakeUpstream, ToolSpec
from tests.security.test_wasm_bridge import RAW

pytestmark = pytest.mark.anyio

TOOLS = [ToolSpec("bank", "balance", annotations={"readOnlyHint": True}), ToolSpec("bank", "wipe"),
         ToolSpec("bank", "transfer", annotations={"destructiveHint": True})]  # fmt: skip


def _engine(tmp: Path, bank: FakeUpstream, executor: ExecutorKind = "wasm") -> Engine:
    policy = PolicySettings(rules={"bank.wipe": "deny"})
    return Engine(
        Config(settings=Settings(policy=policy)), upstreams={"bank": bank}, executor=executor,
        stubs_dir=tmp / "stubs", skills_dir=tmp / "skills", audit=AuditLog(tmp / "audit.jsonl"),
    )  # fmt: skip


async def test_calling_the_runtime_directly_is_still_decided(tmp_path: Path) -> None:
    # (The restricted executor does not let a program import codemode_runtime at all.)
    bank = FakeUpstream("bank", TOOLS, lambda tool, args: "done")
    code = """
import codemode_runtime
from codemode_runtime import call
seen = []
for server, tool in [('bank', 'wipe'), ('bank', 'transfer')]:
    try:
        call(server, tool, {})
    except ToolDenied as e:
        seen.append(e.kind + ': ' + str(e))
# Replacing the guest's error classes or helpers changes nothing on the host.
codemode_runtime.ToolDenied = type('Nothing', (Exception,), {})
try:
    call('bank', 'wipe', {})
except Exception as e:
    seen.append(type(e).__name__)
seen
"""
    async with _engine(tmp_path, bank) as engine:
        outcome = await engine.execute(code)
    assert not outcome.is_error, outcome.text
    assert "denied: bank.wipe: denied by the policy (rules['bank.wipe'] = 'deny')" in outcome.text
    assert "bank.transfer: needs approval (annotation destructiveHint" in outcome.text  # nobody to ask here
    assert bank.calls == []


async def test_hand_written_frames_meet_the_same_gate(tmp_path: Path) -> None:
    bank = FakeUpstream("bank", TOOLS, lambda tool, args: "done")
    code = RAW + (
        "[body(raw(message({'op': 'call', 'server': 'bank', 'tool': 'wipe', 'args': {}}))),\n"
        " body(raw(message({'op': 'call', 'server': 'bank', 'tool': 'transfer', 'args': {'to': 'me'}}))),\n"
        " body(raw(message({'op': 'call', 'server': 'bank', 'tool': 'balance', 'args': {}})))]"
    )
    async with _engine(tmp_path, bank) as engine:
        outcome = await engine.execute(code)
    assert not outcome.is_error, outcome.text
    wipe, transfer, balance = outcome.result.value if outcome.result else [None, None, None]  # type: ignore[misc]
    assert '"ok":false' in wipe and '"kind":"denied"' in wipe and "denied by the policy" in wipe
    assert '"ok":false' in transfer and '"kind":"denied"' in transfer and "needs approval" in transfer
    assert '"ok":true' in balance
    assert bank.calls == [("balance", {})]  # only the allowed call reached the server
    calls = AuditLog(tmp_path / "audit.jsonl").recent(1)[0].calls
    assert [(c.tool, c.policy.decision if c.policy else None) for c in calls] == [
        ("wipe", "deny"), ("transfer", "ask"), ("balance", "allow"),
    ]  # fmt: skip
