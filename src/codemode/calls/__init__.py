"""Tool calls from sandboxed programs: the gate they pass through, their journal, limits and clock."""

from codemode.calls.gate import (
    Asker,
    Call,
    CannotAsk,
    Gate,
    JournalStep,
    KnownToolStep,
    Observer,
    ObserveStep,
    QuotaStep,
    Reply,
    RunContext,
    ShapeResultStep,
    Step,
    Upstreams,
    default_gate,
)
from codemode.calls.handles import ResultStore
from codemode.calls.journal import Journal, summarize
from codemode.calls.results import result_for_guest
from codemode.calls.types import CallRecord, CallState, Clock, Limits

__all__ = [
    "Asker",
    "Call",
    "CallRecord",
    "CallState",
    "CannotAsk",
    "Clock",
    "Gate",
    "Journal",
    "JournalStep",
    "KnownToolStep",
    "Limits",
    "ObserveStep",
    "Observer",
    "QuotaStep",
    "Reply",
    "ResultStore",
    "RunContext",
    "ShapeResultStep",
    "Step",
    "Upstreams",
    "default_gate",
    "result_for_guest",
    "summarize",
]
