"""A finished execution's result as the guest sends it: untrusted, so checked and capped on the host.

Both executors turn the guest's ``next`` payload into a :class:`RunResult` with ``result_from_guest``; these
tests send it what a hostile program could (forged types, oversized texts) without a sandbox in between.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import mcp_types as types
import pytest

from codemode.calls import CallRecord, CallState, Limits, default_gate
from codemode.calls.gate import RunContext
from codemode.executors.base import (
    ERROR_MESSAGE_CHARS,
    ERROR_TYPE_CHARS,
    TRACEBACK_CHARS,
    RunError,
    RunResult,
    failed,
    result_from_guest,
    timed_out_waiting,
)
from codemode.hub.models import ToolRef, ToolSpec


class Upstream:
    def tools(self) -> dict[str, list[ToolSpec]]:
        return {"notes": [ToolSpec("notes", "list_tags")]}

    def unavailable(self) -> dict[str, str]:
        return {}

    async def call_tool(self, ref: ToolRef, args: dict[str, Any]) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(type="text", text="[]")])


def _ctx(**limits: Any) -> RunContext:
    return default_gate(Upstream()).context(session="s", limits=Limits(**limits))


def test_a_payload_that_is_not_an_object_is_a_bridge_error() -> None:
    for payload in (None, [], "ok", 1):
        result = result_from_guest(payload, _ctx(), 0.5)
        assert not result.ok and result.error is not None
        assert (result.error.kind, result.error.message) == ("bridge", "the sandbox sent a malformed result")


def test_output_and_the_values_repr_are_capped_at_the_executions_output_limit() -> None:
    payload = {"stdout": "o" * 101, "stderr": "e" * 100, "has_value": True, "value": [1], "value_repr": "r" * 500}
    result = result_from_guest(payload, _ctx(output_chars=100), 0.0)
    assert result.ok and (result.stdout, result.stderr, result.value_repr) == ("o" * 100, "e" * 100, "r" * 100)
    assert (result.value, result.has_value, result.value_is_json) == ([1], True, False)


def test_forged_types_become_empty_text_never_a_rendering_of_them() -> None:
    payload = {"stdout": ["x"] * 1000, "stderr": True, "has_value": True, "value": 3, "value_repr": 12345, "json": 1}
    result = result_from_guest(payload, _ctx(output_chars=3), 0.0)
    assert (result.stdout, result.stderr, result.value_repr, result.value_is_json) == ("", "", "123", True)


def test_a_value_counts_only_when_the_guest_says_it_has_one() -> None:
    payload = {"has_value": False, "value": {"secret": 1}, "value_repr": "{'secret': 1}", "json": True}
    result = result_from_guest(payload, _ctx(), 0.0)
    assert (result.value, result.value_repr, result.value_is_json, result.has_value) == (None, None, False, False)


def test_an_error_is_capped_field_by_field_keeping_the_tracebacks_head_and_end() -> None:
    trace = "start\n" + "x" * (TRACEBACK_CHARS + 10) + "\nValueError: the end"
    error = {"type": "T" * 1000, "message": "m" * (ERROR_MESSAGE_CHARS + 1), "traceback": trace}
    result = result_from_guest({"error": error}, _ctx(), 0.0)
    assert not result.ok and result.error is not None
    assert (result.error.kind, result.error.type) == ("program", "T" * ERROR_TYPE_CHARS)
    assert result.error.message == "m" * ERROR_MESSAGE_CHARS
    shown = result.error.traceback  # its head (what was raised) and its end (how), the cut noted between
    assert shown.startswith("start\nxxx") and shown.endswith("xxx\nValueError: the end")
    head, _, rest = shown.partition(" … [")
    count, _, tail = rest.partition(" characters cut] … ")
    assert trace.startswith(head) and trace.endswith(tail) and len(head) == len(tail)
    assert len(head) + int(count.replace(",", "")) + len(tail) == len(trace)  # the note counts what it stands for
    assert len(result.error.message) == 10_000 and 19_900 < len(shown) <= 20_000  # the documented caps
    # Down to 50 characters of each end the cut keeps both (an output limit of 160); below, the end alone.
    both = result_from_guest({"error": error}, _ctx(output_chars=160), 0.0).error
    assert both is not None
    assert both.traceback == f"{trace[:50]} … [{len(trace) - 100:,} characters cut] … {trace[-50:]}"
    one_short = result_from_guest({"error": error}, _ctx(output_chars=159), 0.0).error  # 49 a side: the end alone
    assert one_short is not None and one_short.traceback == trace[-159:]
    small = result_from_guest({"error": error}, _ctx(output_chars=50), 0.0).error  # a smaller output limit wins
    assert small is not None and (len(small.message), small.traceback) == (50, trace[-50:])
    exact = "y" * TRACEBACK_CHARS  # a traceback at the cap is kept whole
    kept = result_from_guest({"error": {"traceback": exact}}, _ctx(), 0.0).error
    assert kept is not None and kept.traceback == exact and (kept.type, kept.message) == ("Error", "")
    # The cap is the documented 20,000 characters, whatever the constant says: one more is cut.
    over = result_from_guest({"error": {"traceback": "y" * 20_001}}, _ctx(), 0.0).error
    assert over is not None and " characters cut] … " in over.traceback and len(over.traceback) <= 20_000
    assert result_from_guest({"error": {"traceback": "y" * 20_000}}, _ctx(), 0.0).error == RunError(
        "program", "Error", "", "y" * 20_000
    )
    forged = result_from_guest({"error": {"type": False, "message": ["m"], "traceback": 7}}, _ctx(), 0.0).error
    assert forged is not None and (forged.type, forged.message, forged.traceback) == ("Error", "", "7")


def test_the_journal_travels_with_the_result() -> None:
    ctx = _ctx(max_tool_calls=1)
    ctx.journal.begin("notes", "list_tags", args_bytes=2)
    ctx.journal.begin("notes", "list_tags", args_bytes=2)
    ctx.journal.begin("notes", "list_tags", args_bytes=2)
    for payload in ({"stdout": ""}, None):
        result = result_from_guest(payload, ctx, 0.0)
        assert [c.tool for c in result.calls] == ["list_tags", "list_tags"]
        assert result.calls_over_quota == 1


def test_a_wait_that_reached_the_limit_says_so_in_the_programs_error() -> None:
    limits = Limits(wall_s=2)
    failed = RunResult(ok=False, error=RunError("program", "TimeoutError", "waited"))
    noted = timed_out_waiting(failed, limits).error
    assert noted is not None and noted.message == (
        "waited (the 2 s wall-time limit was reached while the program waited; the session and its variables are kept)"
    )
    caught = RunResult(ok=True, stdout="it caught TimeoutError and went on")
    assert timed_out_waiting(caught, limits) == RunResult(ok=True, stdout="it caught TimeoutError and went on")


def test_a_result_as_json_carries_its_error_or_none() -> None:
    ok = result_from_guest({"stdout": "hi", "has_value": True, "value": 2, "json": True}, _ctx(), 0.25).to_json()
    assert ok == {
        "ok": True, "stdout": "hi", "stderr": "", "value": 2, "value_repr": None, "value_is_json": True,
        "has_value": True, "error": None, "calls": [], "calls_over_quota": 0, "duration_s": 0.25,
        "instance_lost": False,
    }  # fmt: skip
    error = {"type": "ValueError", "message": "bad", "traceback": "Traceback …"}
    failed = result_from_guest({"error": error}, _ctx(), 0.0).to_json()
    assert (failed["ok"], failed["has_value"], failed["value_is_json"], failed["value"]) == (False, False, False, None)
    assert failed["error"] == {"kind": "program", "type": "ValueError", "message": "bad", "traceback": "Traceback …"}
    error_made = result_from_guest({"error": error}, _ctx(), 0.0).error
    with pytest.raises(dataclasses.FrozenInstanceError):  # what the guest said stays what it said
        error_made.message = "rewritten"  # type: ignore[misc,union-attr]


def test_a_failure_made_on_the_host_has_no_value() -> None:
    result = failed(RunError("unavailable", "SandboxUnavailable", "no interpreter", ""), _ctx())
    assert not result.ok and (result.has_value, result.value_is_json, result.value) == (False, False, None)


def test_only_a_failed_run_with_calls_has_a_journal_line() -> None:
    calls = [CallRecord("notes", "list_tags", 2, 0.01, CallState.DONE)]
    failed_with_calls = RunResult(ok=False, error=RunError("program", "ValueError", "bad", ""), calls=calls)
    assert failed_with_calls.journal_line().startswith("tool calls before the failure: 1 ")
    assert RunResult(ok=False, error=RunError("program", "ValueError", "bad", "")).journal_line() == ""
    assert RunResult(ok=True, calls=calls).journal_line() == ""
