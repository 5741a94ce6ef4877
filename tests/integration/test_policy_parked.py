"""Approvals for protocol 2026-07-28 clients: ``execute_python`` answers ``InputRequiredResult``, the program
stays parked on the host (keyed by the sealed ``request_state``) and resumes when the client retries with
the answer. In process: the real front, engine and WASM sandbox, a FakeUpstream, and the SDK client on the
modern protocol (its own retry driver, and the retry driven by hand)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from codemode.audit import AuditLog
from codemode.calls import CallState
from codemode.config import Config, PolicySettings, Settings
from codemode.engine import Engine
from codemode.front import build_server
from codemode.hub import FakeUpstream, ToolSpec

pytestmark = pytest.mark.anyio

TRANSFER = ToolSpec("bank", "transfer", input_schema={"type": "object", "properties": {"amount": {"type": "integer"}}},
                    annotations={"destructiveHint": True})  # fmt: skip
CODE = "from stubs import bank\nbefore = 41\nsent = bank.transfer(amount=5)\n[before + 1, sent]"


def _engine(tmp: Path, bank: FakeUpstream, **policy: Any) -> Engine:
    return Engine(
        Config(settings=Settings(policy=PolicySettings(**policy))), upstreams={"bank": bank},
        stubs_dir=tmp / "stubs", skills_dir=tmp / "skills", audit=AuditLog(tmp / "audit.jsonl"),
    )  # fmt: skip


def _approve(answer: str) -> dict[str, types.InputResponse]:
    return {"approval": types.ElicitResult(action="accept", content={"answer": answer})}


async def test_the_sdk_driver_answers_and_the_program_resumes(tmp_path: Path) -> None:
    bank = FakeUpstream("bank", [TRANSFER], lambda tool, args: {"sent": args["amount"]})
    questions: list[str] = []

    async def person(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        questions.append(params.message)
        return types.ElicitResult(action="accept", content={"answer": "approve"})

    async with _engine(tmp_path, bank) as engine:
        async with Client(build_server(engine), elicitation_callback=person) as client:
            assert client.protocol_version == "2026-07-28"
            result = await client.call_tool("execute_python", {"code": CODE})
    assert not result.is_error, result.content
    assert '[42, {"sent": 5}]' in result.content[0].text  # type: ignore[union-attr]
    assert len(questions) == 1 and "transfer on the server bank" in questions[0]
    assert bank.calls == [("transfer", {"amount": 5})]  # ran once


async def test_a_retry_by_hand_resumes_the_parked_program(tmp_path: Path) -> None:
    bank = FakeUpstream("bank", [TRANSFER], lambda tool, args: {"sent": args["amount"]})

    async def unused(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        raise AssertionError("the test answers by hand")

    async with _engine(tmp_path, bank) as engine:
        async with Client(build_server(engine), elicitation_callback=unused) as client:
            first = await client.session.call_tool("execute_python", {"code": CODE}, allow_input_required=True)
            assert isinstance(first, types.InputRequiredResult), first
            assert first.request_state and first.input_requests and "approval" in first.input_requests
            assert bank.calls == []  # the program waits at the call
            second = await client.session.call_tool(
                "execute_python", {"code": CODE}, input_responses=_approve("approve"),
                request_state=first.request_state, allow_input_required=True,
            )  # fmt: skip
            assert isinstance(second, types.CallToolResult) and not second.is_error, second
            assert '[42, {"sent": 5}]' in second.content[0].text  # type: ignore[union-attr]
            again = await client.session.call_tool(
                "execute_python", {"code": CODE}, input_responses=_approve("approve"),
                request_state=first.request_state, allow_input_required=True,
            )  # fmt: skip
            assert isinstance(again, types.CallToolResult) and again.is_error
            assert "no longer pending" in again.content[0].text  # type: ignore[union-attr]
    assert bank.calls == [("transfer", {"amount": 5})]  # the replayed answer ran nothing
    call = AuditLog(tmp_path / "audit.jsonl").recent(1)[0].calls[0]
    assert call.policy is not None and call.policy.approval == "approved" and call.state is CallState.DONE


async def test_an_abandoned_parked_program_ends_with_its_journal(tmp_path: Path) -> None:
    bank = FakeUpstream("bank", [TRANSFER], lambda tool, args: {"sent": args["amount"]})
    code = "from stubs import bank\nbank.transfer(amount=1)\nbank.transfer(amount=2)"
    audit = AuditLog(tmp_path / "audit.jsonl")

    async def unused(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        raise AssertionError("nobody answers")

    async with _engine(tmp_path, bank, approval_timeout_s=0.5, rules={"bank.transfer": "ask"}) as engine:
        async with Client(build_server(engine), elicitation_callback=unused) as client:
            first = await client.session.call_tool("execute_python", {"code": code}, allow_input_required=True)
            assert isinstance(first, types.InputRequiredResult)
            with anyio.fail_after(30):
                # The parked program ends in the engine's task group and writes its audit line there.
                while not audit.path.exists() or not audit.recent(1):  # noqa: ASYNC110
                    await anyio.sleep(0.05)
            late = await client.session.call_tool(
                "execute_python", {"code": code}, input_responses=_approve("approve"),
                request_state=first.request_state, allow_input_required=True,
            )  # fmt: skip
            assert isinstance(late, types.CallToolResult) and late.is_error
    assert bank.calls == []
    entry = audit.recent(1)[0]
    assert entry.error_kind == "cancelled" and not entry.ok
    assert len(entry.calls) == 1 and entry.calls[0].policy is not None
    assert entry.calls[0].policy.approval == "timed out"


async def test_a_forged_request_state_resumes_nothing(tmp_path: Path) -> None:
    bank = FakeUpstream("bank", [TRANSFER], lambda tool, args: {"sent": args["amount"]})

    async def unused(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        raise AssertionError("nobody is asked")

    async with _engine(tmp_path, bank) as engine:
        async with Client(build_server(engine), elicitation_callback=unused) as client:
            first = await client.session.call_tool("execute_python", {"code": CODE}, allow_input_required=True)
            assert isinstance(first, types.InputRequiredResult) and first.request_state
            for forged in ("x" * 22, first.request_state[:-2] + "AA"):
                with pytest.raises(MCPError, match="Invalid or expired requestState"):
                    await client.session.call_tool(
                        "execute_python", {"code": CODE}, input_responses=_approve("approve"),
                        request_state=forged, allow_input_required=True,
                    )  # fmt: skip
    assert bank.calls == []
