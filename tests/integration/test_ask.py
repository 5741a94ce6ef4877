"""The gate can ask the person at the client a question mid-call (MCP elicitation) and the program goes on
with the answer: the seam approvals build on. In process: the real front, engine and WASM sandbox, a
FakeUpstream, and the SDK's client connected to the server in memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client

from codemode.audit import AuditLog
from codemode.calls import CallState, Reply
from codemode.calls.gate import Call, Next
from codemode.config import Config
from codemode.engine import Engine
from codemode.front import build_server
from codemode.hub import FakeUpstream, ToolSpec

pytestmark = pytest.mark.anyio


class AskFirst:
    """A step that asks before every write, with the execution's clock stopped while the person thinks."""

    async def __call__(self, call: Call, call_next: Next) -> Reply:
        if call.ctx.ask is None:
            return Reply.refuse("denied", "nobody to ask")
        with call.ctx.clock.paused():
            answer = await call.ctx.ask(f"Run {call.ref} with {call.args}?", ["approve", "deny"])
        if answer != "approve":
            return Reply.refuse("denied", f"{call.ref} was not approved")
        return await call_next(call)


async def test_a_call_waits_for_the_persons_answer(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"amount": {"type": "integer"}}}
    transfer = ToolSpec("bank", "transfer", input_schema=schema)
    bank = FakeUpstream("bank", [transfer], lambda tool, args: {"sent": args["amount"]})
    answers = ["approve", "deny"]
    questions: list[str] = []

    async def elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        questions.append(params.message)
        return types.ElicitResult(action="accept", content={"answer": answers.pop(0)})

    engine = Engine(Config(), upstreams={"bank": bank}, stubs_dir=tmp_path / "stubs",
                    skills_dir=tmp_path / "skills", audit=AuditLog(tmp_path / "audit.jsonl"))  # fmt: skip
    async with engine:
        assert engine.gate is not None
        engine.gate.steps.insert(3, AskFirst())
        code = (
            "from stubs import bank\nfirst = bank.transfer(amount=5)\n"
            "try:\n    bank.transfer(amount=500)\nexcept ToolDenied as e:\n    second = str(e)\n[first, second]"
        )
        async with Client(build_server(engine), elicitation_callback=elicit, mode="legacy") as client:
            result = await client.call_tool("execute_python", {"code": code})
    text = result.content[0].text  # type: ignore[union-attr]
    assert not result.is_error, text
    assert '{"sent": 5}' in text and "bank.transfer was not approved" in text
    assert questions == ["Run bank.transfer with {'amount': 5}?", "Run bank.transfer with {'amount': 500}?"]
    assert bank.calls == [("transfer", {"amount": 5})]  # the refused call never reached the tool
    entry = AuditLog(tmp_path / "audit.jsonl").recent(1)[0]
    assert [c.state for c in entry.calls] == [CallState.DONE, CallState.REFUSED]


async def test_without_elicitation_nobody_is_asked(tmp_path: Path) -> None:
    bank = FakeUpstream("bank", [ToolSpec("bank", "transfer")], lambda tool, args: "ok")
    engine = Engine(Config(), upstreams={"bank": bank}, stubs_dir=tmp_path / "stubs",
                    skills_dir=tmp_path / "skills", audit=AuditLog(tmp_path / "audit.jsonl"))  # fmt: skip
    async with engine:
        assert engine.gate is not None
        engine.gate.steps.insert(3, AskFirst())
        async with Client(build_server(engine)) as client:
            result = await client.call_tool("execute_python", {"code": "from stubs import bank\nbank.transfer()"})
    assert result.is_error and "ToolDenied" in result.content[0].text  # type: ignore[union-attr]
    assert "nobody to ask" in result.content[0].text  # type: ignore[union-attr]
