"""The policy step in process: the real front, engine and WASM sandbox, a FakeUpstream, and the SDK client
connected in memory. Per-tool rate limits, the clock paused while the person thinks, and an approval that
nobody gives in time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client

from codemode.audit import AuditLog
from codemode.config import Config, PolicySettings, Settings
from codemode.engine import Engine
from codemode.front import build_server
from codemode.hub import FakeUpstream, ToolSpec

pytestmark = pytest.mark.anyio

TOOLS = [ToolSpec("bank", "balance", annotations={"readOnlyHint": True}),
         ToolSpec("bank", "transfer", annotations={"destructiveHint": True})]  # fmt: skip


def _engine(tmp: Path, bank: FakeUpstream, **policy: Any) -> Engine:
    settings = Settings(policy=PolicySettings(**policy), wall_s=float(policy.pop("wall_s", 30.0)))
    return Engine(
        Config(settings=settings), upstreams={"bank": bank}, stubs_dir=tmp / "stubs",
        skills_dir=tmp / "skills", audit=AuditLog(tmp / "audit.jsonl"),
    )  # fmt: skip


async def test_a_per_tool_rate_limit(tmp_path: Path) -> None:
    bank = FakeUpstream("bank", TOOLS, lambda tool, args: 100)
    code = (
        "from stubs import bank\nout = []\nfor _ in range(3):\n    try:\n        out.append(bank.balance())\n"
        "    except QuotaExceeded as e:\n        out.append(str(e))\nout"
    )
    async with _engine(tmp_path, bank, rate_limits={"bank.bal*": "2/min"}) as engine:
        outcome = await engine.execute(code)
    assert not outcome.is_error, outcome.text
    assert "100, 100, " in outcome.text and "rate limit for 'bank.bal*': at most 2 calls per 60 s" in outcome.text
    assert len(bank.calls) == 2


async def test_the_persons_time_does_not_count_against_the_wall_limit(tmp_path: Path) -> None:
    bank = FakeUpstream("bank", TOOLS, lambda tool, args: "sent")

    async def slow_person(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        await anyio.sleep(3.0)  # longer than the whole execution may take
        return types.ElicitResult(action="accept", content={"answer": "approve"})

    async with _engine(tmp_path, bank) as engine:
        engine.limits = engine.limits.__class__(wall_s=2.0, fuel=engine.limits.fuel)
        async with Client(build_server(engine), elicitation_callback=slow_person, mode="legacy") as client:
            result = await client.call_tool("execute_python", {"code": "from stubs import bank\nbank.transfer()"})
    assert not result.is_error, result.content
    assert "sent" in result.content[0].text  # type: ignore[union-attr]
    assert bank.calls == [("transfer", {})]


async def test_an_approval_nobody_gives_ends_in_time(tmp_path: Path) -> None:
    bank = FakeUpstream("bank", TOOLS, lambda tool, args: "sent")

    async def away(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    code = "from stubs import bank\ntry:\n    bank.transfer()\nexcept ToolDenied as e:\n    print('gave up:', e)"
    async with _engine(tmp_path, bank, approval_timeout_s=0.5) as engine:
        async with Client(build_server(engine), elicitation_callback=away, mode="legacy") as client:
            result = await client.call_tool("execute_python", {"code": code})
    text = result.content[0].text  # type: ignore[union-attr]
    assert not result.is_error and "gave up: bank.transfer: not approved: nobody answered within 0.5 s" in text
    assert bank.calls == []
    call = AuditLog(tmp_path / "audit.jsonl").recent(1)[0].calls[0]
    assert call.policy is not None and call.policy.approval == "timed out"


async def test_a_pending_approval_is_a_metric(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from codemode.metrics import Metrics

    bank = FakeUpstream("bank", TOOLS, lambda tool, args: "sent")
    asked, answer = anyio.Event(), anyio.Event()

    async def person(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.set()
        await answer.wait()
        return types.ElicitResult(action="accept", content={"answer": "approve"})

    def pending(metrics: Metrics) -> float:
        page = metrics.exposition().decode()
        return next(s.value for f in text_string_to_metric_families(page) for s in f.samples
                    if s.name == "codemode_approvals_pending")  # fmt: skip

    async with _engine(tmp_path, bank) as engine:
        metrics = Metrics(engine)
        assert pending(metrics) == 0
        async with (
            Client(build_server(engine), elicitation_callback=person, mode="legacy") as client,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(client.call_tool, "execute_python", {"code": "from stubs import bank\nbank.transfer()"})
            with anyio.fail_after(60):
                await asked.wait()
            assert pending(metrics) == 1  # the program waits for the person
            answer.set()
        assert pending(metrics) == 0 and bank.calls == [("transfer", {})]
