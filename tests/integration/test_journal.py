"""The side-effect journal: every tool call is recorded before it is awaited and comes back with every
outcome (success, exception, wall timeout, memory, crash, cancel), in the result, the audit log and
the text the model reads."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import anyio
import pytest

from codemode.audit import AuditLog
from codemode.calls import CallState, Limits
from codemode.config import Config, Settings, parse_config
from codemode.engine import Engine
from codemode.executors import ExecutorKind
from tests.conftest import call_started
from tests.integration.test_skills import demo_here

pytestmark = pytest.mark.anyio

THREE_NOTES = """
from stubs import notes
for i in range(3):
    notes.create_note(title=f"journal {i}", body="written before the failure")
print("made 3 notes")
"""


def _engine(tmp_path: Path, *, executor: ExecutorKind = "wasm", fragile: dict[str, object] | None = None,
            **settings: object) -> Engine:
    servers = dict(demo_here(tmp_path / "skills").servers)  # this checkout's demo servers (annotations)
    config = Config(servers=servers, settings=Settings(**settings))  # type: ignore[arg-type]
    if fragile is not None:
        extra = parse_config(json.dumps({"mcpServers": {"fragile": fragile}}))
        config = Config(servers={**servers, **extra.servers}, settings=config.settings)
    return Engine(config, executor=executor, stubs_dir=tmp_path / "stubs", skills_dir=tmp_path / "skills",
                  audit=AuditLog(tmp_path / "audit.jsonl"))  # fmt: skip


def _states(calls: list[dict[str, object]]) -> list[tuple[object, object, object]]:
    return [(c["server"], c["tool"], c["state"]) for c in calls]


def _audit(tmp_path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]


DONE3 = [("notes", "create_note", "done")] * 3


@pytest.mark.parametrize("executor", ["wasm", "restricted"])
async def test_three_writes_then_an_endless_loop(tmp_path: Path, executor: ExecutorKind) -> None:
    async with _engine(tmp_path, executor=executor, wall_s=3) as engine:
        outcome = await engine.execute(THREE_NOTES + "while True:\n    pass\n", session="loop")
    assert outcome.is_error and outcome.result is not None and outcome.result.error is not None
    assert outcome.result.error.kind == "timeout"
    assert [(c.server, c.tool, c.state) for c in outcome.calls] == [("notes", "create_note", CallState.DONE)] * 3
    assert all(c.args_digest and c.result_bytes > 0 and not c.read_only for c in outcome.calls)
    assert "tool calls before the failure: 3 done (notes.create_note ×3)" in outcome.text
    assert outcome.result.stdout == "made 3 notes\n"  # printed before the loop, kept though the interpreter died
    assert outcome.text.startswith("made 3 notes\n")
    audited = _audit(tmp_path)[-1]
    assert _states(audited["calls"]) == DONE3 and audited["error_kind"] == "timeout"  # type: ignore[arg-type]


async def test_a_call_in_flight_at_the_wall_timeout_stays_in_flight(
    tmp_path: Path, fragile_server: dict[str, object]
) -> None:
    code = THREE_NOTES + "from stubs import fragile\nfragile.slow(seconds=20)\n"
    async with _engine(tmp_path, fragile=fragile_server, wall_s=4) as engine:
        outcome = await engine.execute(code, session="slow")
    assert outcome.is_error
    assert [(c.tool, c.state) for c in outcome.calls] == [
        *[("create_note", CallState.DONE)] * 3, ("slow", CallState.IN_FLIGHT),
    ]  # fmt: skip
    assert "1 in flight (fragile.slow — its effect is unknown)" in outcome.text
    assert _states(_audit(tmp_path)[-1]["calls"])[-1] == ("fragile", "slow", "in_flight")  # type: ignore[arg-type]


async def test_memory_error_and_exceptions_keep_the_journal(tmp_path: Path) -> None:
    async with _engine(tmp_path, memory_mb=64) as engine:
        boom = await engine.execute(THREE_NOTES + "1 / 0\n", session="e")
        hog = await engine.execute(THREE_NOTES + "x = [bytearray(8 << 20) for _ in range(100)]\n", session="m")
        fine = await engine.execute("from stubs import notes\nlen(notes.list_tags())", session="e")
    assert boom.result is not None and boom.result.error is not None
    assert boom.result.error.kind == "program" and boom.result.error.type == "ZeroDivisionError"
    assert "made 3 notes" in boom.text and "3 done (notes.create_note ×3)" in boom.text
    assert hog.is_error and [c.state for c in hog.calls] == [CallState.DONE] * 3
    assert "3 done (notes.create_note ×3)" in hog.text
    assert not fine.is_error and "tool calls before" not in fine.text  # success: no journal line
    assert [(c.tool, c.state, c.read_only) for c in fine.calls] == [("list_tags", CallState.DONE, True)]  # read-only


async def test_a_killed_restricted_child_keeps_its_journal(tmp_path: Path) -> None:
    code = THREE_NOTES + "x = []\nwhile True:\n    x.append('y' * 1_000_000)\n"
    async with _engine(tmp_path, executor="restricted", memory_mb=128, wall_s=20) as engine:
        outcome = await engine.execute(code, session="k")
    assert outcome.is_error and outcome.result is not None and outcome.result.error is not None
    assert outcome.result.error.kind in ("memory", "crashed"), outcome.result.error
    assert [c.state for c in outcome.calls] == [CallState.DONE] * 3


async def test_refused_and_failed_calls_are_journaled(tmp_path: Path) -> None:
    code = (
        "from stubs import inventory\nimport codemode_runtime as c\n"
        "try:\n    c.call('nope', 'x', {})\nexcept ToolError:\n    pass\n"
        "try:\n    inventory.get_order(order_id='nope')\nexcept ToolError:\n    pass\n"
        "inventory.check_stock(skus=['SKU-1'])\n"
    )
    async with _engine(tmp_path, max_tool_calls=2) as engine:
        outcome = await engine.execute(code, session="r")
    assert outcome.is_error and "reached its limit of 2 tool calls" in outcome.text
    states = [(c.server, c.tool, c.state, c.error_kind) for c in outcome.calls]
    assert states == [
        ("nope", "x", CallState.REFUSED, "unknown"),
        ("inventory", "get_order", CallState.FAILED, "tool"),
        ("inventory", "check_stock", CallState.REFUSED, "quota"),
    ]
    assert "1 failed (inventory.get_order), 2 refused (nope.x, inventory.check_stock)" in outcome.text


async def test_a_cancelled_execution_is_audited_with_its_calls_in_flight(
    tmp_path: Path, fragile_server: dict[str, object]
) -> None:
    code = "from stubs import notes, fragile\nnotes.list_tags()\nfragile.slow(seconds=30)\n"
    async with _engine(tmp_path, fragile=fragile_server, wall_s=60) as engine:
        assert engine.hub is not None
        slow_call = call_started(engine.hub, "slow")
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(engine.execute, code, session="c"))
            with anyio.fail_after(120):
                await slow_call.wait()
            await anyio.sleep(0.2)  # the request on its way to the server
            tg.cancel_scope.cancel()  # the client went away
        assert engine.executor is not None
    entry = _audit(tmp_path)[-1]
    assert entry["error_kind"] == "cancelled"
    assert _states(entry["calls"]) == [  # type: ignore[arg-type]
        ("notes", "list_tags", "done"), ("fragile", "slow", "in_flight"),
    ]  # fmt: skip


async def test_output_before_an_interrupt_and_a_trap_is_kept(tmp_path: Path) -> None:
    async with _engine(tmp_path) as engine:
        stopped = await engine.execute(
            "import sys\nprint('partial ' * 3)\nprint('on stderr', file=sys.stderr)\nwhile True:\n    pass\n",
            session="f", limits=Limits(wall_s=1),
        )
        crash = await engine.execute(
            "print('about to crash')\nimport _testcapi\n_testcapi.fatal_error(b'x')", session="t"
        )
    assert stopped.result is not None and stopped.result.error is not None
    assert stopped.result.error.kind == "timeout" and stopped.result.instance_lost
    assert stopped.result.stdout == "partial partial partial \n" and stopped.result.stderr == "on stderr\n"
    assert crash.result is not None and crash.result.error is not None and crash.result.instance_lost
    assert crash.result.stdout == "about to crash\n", crash.result


async def test_refusals_past_the_quota_are_counted_not_journaled_one_by_one(tmp_path: Path) -> None:
    code = (
        "from stubs import notes\nrefused = 0\nfor _ in range(5000):\n    try:\n        notes.list_tags()\n"
        "    except QuotaExceeded:\n        refused += 1\nrefused"
    )
    async with _engine(tmp_path, max_tool_calls=3) as engine:
        outcome = await engine.execute(code + "\n1 / 0", session="q")
    assert outcome.result is not None
    assert [c.state for c in outcome.calls] == [CallState.DONE] * 3 + [CallState.REFUSED]
    assert outcome.result.calls_over_quota == 4996
    assert "4,996 more refused over the quota" in outcome.text
    audited = _audit(tmp_path)[-1]
    assert len(audited["calls"]) == 4 and audited["calls_over_quota"] == 4996  # type: ignore[arg-type]


async def test_limits_passed_per_execution_are_honoured(tmp_path: Path) -> None:
    async with _engine(tmp_path) as engine:
        outcome = await engine.execute(THREE_NOTES, session="l", limits=Limits(max_tool_calls=1))
    assert [c.state for c in outcome.calls] == [CallState.DONE, CallState.REFUSED]
