"""Policy: rules (allow / deny / ask per tool), approvals that pause a program to ask the person, quotas.

Built from a :class:`~codemode.config.Config` by :func:`policy_step`; the engine puts it in the gate chain
after ``KnownTool`` and before ``Quota``, and the catalog leaves denied tools out of the stubs.
"""

from __future__ import annotations

from codemode.config import Config
from codemode.policy.approvals import Approvals
from codemode.policy.quotas import RateLimiter, ToolRateLimiter, parse_rate
from codemode.policy.rules import Decision, RuleSet, Verdict
from codemode.policy.step import PolicyStep

__all__ = [
    "Approvals",
    "Decision",
    "PolicyStep",
    "RateLimiter",
    "RuleSet",
    "ToolRateLimiter",
    "Verdict",
    "parse_rate",
    "policy_step",
    "rule_set",
]


def rule_set(config: Config, identity: str | None = None) -> RuleSet:
    """The config's compiled rules: ``codemode.policy`` plus the servers' ``autoApprove`` / ``alwaysAllow``;
    for ``identity``, its ``policy.identities`` rules first, then those (see :mod:`codemode.policy.rules`)."""
    policy = config.settings.policy
    approved = {
        name: [*(server.auto_approve or []), *(server.always_allow or [])]
        for name, server in config.servers.items()
        if server.auto_approve or server.always_allow
    }
    common = RuleSet(policy.rules, auto_approve=approved, read_only=policy.read_only, destructive=policy.destructive)
    own = policy.identities.get(identity or "")
    if own is None:
        return common
    return RuleSet(own, read_only=policy.read_only, destructive=policy.destructive, fallback=common)


def policy_step(config: Config) -> PolicyStep:
    """The gate step enforcing ``config``'s policy (the identities' own rules compiled once, here)."""
    policy = config.settings.policy
    return PolicyStep(
        rule_set(config),
        approvals=Approvals(timeout_s=policy.approval_timeout_s),
        rates=ToolRateLimiter(policy.rate_limits),
        by_identity={identity: rule_set(config, identity) for identity in policy.identities},
    )
