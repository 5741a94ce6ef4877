"""Replaying an approval: an answer a protocol 2026-07-28 client sent for one question approves nothing else.

The SDK seals ``request_state`` to the call (tool and arguments), so every question of one parked program
travels under a seal the client can send again. Each question's ``request_state`` carries its own ticket,
used up by its answer: the first answer, sent again while the program waits on its second question, is
refused and the second call never reaches the upstream. In process: the real front, engine and WASM
sandbox, a FakeUpstream, and the SDK client on the modern protocol, retrying by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client

from codemode.audit import AuditLog
from codemode.config import Config, PolicySettings, Settings
from codemode.engine import Engine
from codemode.front import build_server
from codemode.hub import FakeUpstream, ToolSpec

pytestmark = pytest.mark.anyio

TRANSFER = ToolSpec("bank", "transfer", input_schema={"type": "object", "properties": {"amount": {"type": "integer"}}})
CODE = """
from stubs import bank
sent = [bank.transfer(amount=1)]
try:
    sent.append(bank.transfer(amount=1000))
except ToolDenied as e:
    sent.append('denied: ' + str(e))
sent
"""


def _answer(answer: str) -> dict[str, types.InputResponse]:
    return {"approval": types.ElicitResult(action="accept", content={"answer": answer})}


async def _retry(client: Client, state: str | None, answer: str) -> types.CallToolResult | types.InputRequiredResult:
    assert state is not None
    return await client.session.call_tool(
        "execute_python", {"code": CODE}, input_responses=_answer(answer), request_state=state,
        allow_input_required=True,
    )  # fmt: skip


async def test_the_first_answer_sent_again_does_not_approve_the_second_question(tmp_path: Path) -> None:
    bank = FakeUpstream("bank", [TRANSFER], lambda tool, args: args["amount"])
    policy = PolicySettings(rules={"bank.transfer": "ask"})
    engine = Engine(
        Config(settings=Settings(policy=policy)), upstreams={"bank": bank},
        stubs_dir=tmp_path / "stubs", skills_dir=tmp_path / "skills", audit=AuditLog(tmp_path / "audit.jsonl"),
    )  # fmt: skip

    async def unused(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        raise AssertionError("the test answers by hand")

    async with engine, Client(build_server(engine), elicitation_callback=unused) as client:
        first = await client.session.call_tool("execute_python", {"code": CODE}, allow_input_required=True)
        assert isinstance(first, types.InputRequiredResult), first
        second = await _retry(client, first.request_state, "approve")
        assert isinstance(second, types.InputRequiredResult), second  # the program asks about amount=1000
        assert bank.calls == [("transfer", {"amount": 1})]

        replayed = await _retry(client, first.request_state, "approve")
        assert isinstance(replayed, types.CallToolResult) and replayed.is_error, replayed
        text = replayed.content[0].text  # type: ignore[union-attr]
        assert "no longer pending" in text and "approved nothing" in text
        assert bank.calls == [("transfer", {"amount": 1})]  # the second transfer was not approved

        # The second question is still the program's own, answered with its own request_state.
        last = await _retry(client, second.request_state, "deny")
        assert isinstance(last, types.CallToolResult) and not last.is_error, last
        assert "denied: " in last.content[0].text  # type: ignore[union-attr]
        again = await _retry(client, second.request_state, "approve")
        assert isinstance(again, types.CallToolResult) and again.is_error
    assert bank.calls == [("transfer", {"amount": 1})]
    approvals = [c.policy.approval for c in AuditLog(tmp_path / "audit.jsonl").recent(1)[0].calls if c.policy]
    assert approvals == ["approved", "declined"]
