"""Approvals: an ``ask`` decision stops the program at that call and asks the person.

The guest is already blocked inside its host call while the gate works, so asking is only awaiting the
client: the execution's clock is paused meanwhile (the person's time does not count against the wall
limit), and the program goes on with the answer. Nothing is replayed: an approved call runs once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from codemode.calls.gate import Call, CannotAsk, RunContext
from codemode.calls.types import PolicyNote
from codemode.policy.rules import Decision

APPROVE = "approve"
APPROVE_SESSION = "approve for this session"
DENY = "deny"
CHOICES = (APPROVE, APPROVE_SESSION, DENY)
BY_PERSON = "person via MCP elicitation"


@dataclass(frozen=True)
class Answer:
    """The outcome of one ask: whether the call may run, and the journal's note about it."""

    approved: bool
    note: PolicyNote
    message: str = ""
    """For a refusal: what the program's ``ToolDenied`` says."""


class Approvals:
    """Asks the person about ``ask`` calls and remembers "approve for this session" grants."""

    def __init__(self, *, timeout_s: float = 300.0) -> None:
        self.timeout_s = timeout_s
        self._granted: dict[str, set[tuple[str, str]]] = {}
        self.pending = 0
        """Questions put to a person and not answered yet (a metric)."""

    def granted(self, session: str, server: str, tool: str) -> bool:
        return (server, tool) in self._granted.get(session, ())

    def forget(self, session: str) -> None:
        """The session closed: its grants go with it."""
        self._granted.pop(session, None)

    async def ask(self, call: Call, decision: Decision) -> Answer:
        """Ask about ``call`` (the clock paused meanwhile). Never raises for a client that cannot answer."""
        ref, ctx = call.ref, call.ctx
        base = PolicyNote(decision.verdict.value, decision.rule)
        if self.granted(ctx.session, ref.server, ref.tool):
            return Answer(True, _settled(base, "approved for the session", "session grant"))
        why = (
            f"needs approval ({decision.rule}) and this client cannot be asked (no MCP elicitation); "
            f'to allow it without asking, set codemode.policy.rules["{ref}"] = "allow" in the config'
        )
        if ctx.ask is None:
            return Answer(False, _settled(base, "not asked: the client cannot be asked", None), why)
        ctx.journal.note(call.index, _settled(base, "pending", None, at=False))
        answer: str | None = None
        self.pending += 1
        try:
            with ctx.clock.paused(), anyio.move_on_after(self.timeout_s) as scope:
                try:
                    answer = await ctx.ask(question(call, decision), list(CHOICES))
                except CannotAsk:
                    return Answer(False, _settled(base, "not asked: the client cannot be asked", None), why)
        finally:
            self.pending -= 1
        if scope.cancelled_caught:
            abandon = getattr(ctx.ask, "abandon", None)
            if callable(abandon):  # a parked program (protocol 2026-07-28) nobody came back to is ended
                abandon()
            message = f"not approved: nobody answered within {self.timeout_s:g} s (approval_timeout_s)"
            return Answer(False, _settled(base, "timed out", None), message)
        if answer == APPROVE_SESSION:
            self._granted.setdefault(ctx.session, set()).add((ref.server, ref.tool))
            return Answer(True, _settled(base, "approved for the session", BY_PERSON))
        if answer == APPROVE:
            return Answer(True, _settled(base, "approved", BY_PERSON))
        return Answer(False, _settled(base, "declined", BY_PERSON), "declined by the person asked")


async def approve_mount(ctx: RunContext, what: str, *, timeout_s: float = 300.0) -> bool:
    """The hook for the discovery issue's ``mount()``: when a mount is not pre-allowed, ask the person (the
    clock paused, as for a tool call) instead of refusing outright. False when nobody can be asked, the
    person declines, or nobody answers within ``timeout_s``."""
    if ctx.ask is None:
        return False
    answer: str | None = None
    with ctx.clock.paused(), anyio.move_on_after(timeout_s):
        try:
            answer = await ctx.ask(f"A program wants to mount {what}. Allow it?", [APPROVE, DENY])
        except CannotAsk:
            return False
    return answer == APPROVE


def _settled(base: PolicyNote, approval: str, by: str | None, *, at: bool = True) -> PolicyNote:
    return PolicyNote(base.decision, base.rule, approval, by, time.time() if at else None)


def question(call: Call, decision: Decision) -> str:
    """What the person reads: the server, the tool, why it is asked, and the arguments in brief."""
    spec = call.spec
    title = f" ({spec.title})" if spec is not None and spec.title else ""
    return (
        f"A program wants to call {call.ref.tool} on the server {call.ref.server}{title}.\n"
        f"Arguments:\n{summarize_args(call.args)}\n"
        f"Asked because: {decision.rule}.\n"
        f"Choose '{APPROVE}' (this call runs once), '{APPROVE_SESSION}' (later {call.ref} calls in this "
        f"session run without asking) or '{DENY}' (the program gets ToolDenied)."
    )


def summarize_args(args: Mapping[str, Any], *, per_value: int = 160, keys: int = 12) -> str:
    """One line per argument, long values cut with their full length said; control characters escaped."""
    if not args:
        return "  (none)"
    lines: list[str] = []
    for name, value in list(args.items())[:keys]:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=repr)
        shown = json.dumps(text[:per_value], ensure_ascii=False)  # quoted, with newlines etc. escaped
        more = f" … ({len(text):,} characters in all)" if len(text) > per_value else ""
        lines.append(f"  {name}: {shown}{more}")
    if len(args) > keys:
        lines.append(f"  … and {len(args) - keys} more arguments")
    return "\n".join(lines)
