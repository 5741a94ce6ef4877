"""The gate's policy step: every call is decided by the rule set, whatever the program does.

It sits after ``KnownTool`` (so it only sees tools that exist) and before ``Quota``; a deny is refused with
kind ``denied`` (``ToolDenied`` in the program), an ``ask`` goes to :class:`Approvals`, and an allowed or
approved call is counted against the ``rate_limits`` before it goes on. Each decision is noted in the
journal, so the audit log and ``codemode history`` show it.

An identity with rules of its own (``policy.identities``) is decided by its own compiled set (its rules,
then the global ones). The stubs follow the global rules: a tool denied globally has no stub for anyone, so
identity rules are for narrowing (deny or ask for some callers) and for letting some callers run without
asking what asks globally.
"""

from __future__ import annotations

from collections.abc import Mapping

from codemode.calls.gate import Call, Next, Reply
from codemode.calls.types import PolicyNote
from codemode.policy.approvals import Approvals
from codemode.policy.quotas import ToolRateLimiter
from codemode.policy.rules import RuleSet, Verdict


class PolicyStep:
    """Decide, ask when needed, rate-limit, then pass the call on."""

    def __init__(
        self,
        rules: RuleSet,
        *,
        approvals: Approvals | None = None,
        rates: ToolRateLimiter | None = None,
        by_identity: Mapping[str, RuleSet] | None = None,
    ):
        self.rules = rules
        self.by_identity = dict(by_identity or {})
        self.approvals = approvals or Approvals()
        self.rates = rates if rates else None
        self._notes: dict[tuple[str, str], PolicyNote] = {}

    async def __call__(self, call: Call, call_next: Next) -> Reply:
        rules = self.by_identity.get(call.ctx.identity, self.rules)
        decision = rules.decide(call.ref, call.spec.annotations if call.spec is not None else None)
        journal = call.ctx.journal
        if decision.verdict is Verdict.ALLOW:
            note = self._notes.get((call.ref.server, call.ref.tool))
            if note is None or note.rule != decision.rule:
                note = self._notes[(call.ref.server, call.ref.tool)] = PolicyNote("allow", decision.rule)
            journal.note(call.index, note)
        elif decision.verdict is Verdict.DENY:
            journal.note(call.index, PolicyNote("deny", decision.rule))
            return Reply.refuse("denied", f"denied by the policy ({decision.rule})")
        else:
            answer = await self.approvals.ask(call, decision)
            journal.note(call.index, answer.note)
            if not answer.approved:
                return Reply.refuse("denied", answer.message)
        if self.rates is not None:
            refused = self.rates.check(str(call.ref))
            if refused is not None:
                return Reply.refuse("quota", refused)
        return await call_next(call)
