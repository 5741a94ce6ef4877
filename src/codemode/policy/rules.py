"""Policy rules: which tool calls are allowed, denied, or need a person's approval.

A rule set is compiled once from the config's ``codemode.policy`` block and the ``autoApprove`` /
``alwaysAllow`` lists of the ``mcpServers`` entries. Each call is decided, in this order:

1. the most specific rule matching ``server.tool`` (an exact name beats any glob; among globs, more literal
   characters win, then fewer wildcards; a tie goes to the stricter verdict: deny > ask > allow);
2. otherwise a server's ``autoApprove`` list (Claude Desktop / Cline style): allow;
3. otherwise the tool's annotations: ``destructiveHint: true`` → ``policy.destructive`` (``ask`` by default);
4. otherwise allow.

An identity's own rules (``policy.identities``) are a rule set whose ``fallback`` is the global one: the
most specific of the identity's rules decides when one matches, else the global rules as above.

``read_only: true`` then turns every verdict but deny into deny for a tool not annotated ``readOnlyHint``:
a read-only session never writes, whatever a rule says.

Decisions are cached per tool and annotation pair, so an ``allow`` on the call path is one dict lookup
whatever the number of rules (see ``benchmarks/bench_policy.py``).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from codemode.hub.models import ToolRef


class Verdict(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    ASK = "ask"


_STRICTNESS = {Verdict.ALLOW: 0, Verdict.ASK: 1, Verdict.DENY: 2}


@dataclass(frozen=True)
class Decision:
    """What the policy says about one tool, and why (``rule`` is shown by ``codemode policy explain``)."""

    verdict: Verdict
    rule: str
    """The rule that made it, e.g. ``rules["fs.write_*"] = "ask"``, ``annotation destructiveHint``."""

    def to_json(self) -> dict[str, str]:
        return {"decision": self.verdict.value, "rule": self.rule}


@dataclass(frozen=True)
class _Glob:
    pattern: str
    verdict: Verdict
    source: str
    regex: re.Pattern[str]
    rank: tuple[int, int, int]


def _rank(pattern: str, verdict: Verdict) -> tuple[int, int, int]:
    wildcards = sum(pattern.count(c) for c in "*?[")
    literal = len(re.sub(r"\[[^\]]*\]|[*?]", "", pattern))
    return (literal, -wildcards, _STRICTNESS[verdict])


def is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


class RuleSet:
    """Compiled rules. :meth:`decide` is what the gate, the compiler and ``policy explain`` all ask."""

    def __init__(
        self,
        rules: Mapping[str, str] | None = None,
        *,
        auto_approve: Mapping[str, Iterable[str]] | None = None,
        read_only: bool = False,
        destructive: str = "ask",
        fallback: RuleSet | None = None,
    ) -> None:
        self.read_only = read_only
        self.fallback = fallback
        """Consulted when none of these rules matches (an identity's rules fall back to the global ones)."""
        self.destructive = Verdict(destructive)
        self._exact: dict[str, tuple[Verdict, str]] = {}
        globs: list[_Glob] = []
        entries = [(p, Verdict(v), f"rules[{p!r}] = {Verdict(v).value!r}") for p, v in (rules or {}).items()]
        approved = [
            (f"{server}.{tool}", Verdict.ALLOW, f"mcpServers[{server!r}].autoApprove contains {tool!r}")
            for server, tools in (auto_approve or {}).items()
            for tool in tools
        ]
        # Explicit rules first: an autoApprove entry never overrides a rule written for the same pattern.
        for pattern, verdict, source in [*entries, *approved]:
            if is_glob(pattern):
                if any(g.pattern == pattern for g in globs):
                    continue
                regex = re.compile(fnmatch.translate(pattern))
                globs.append(_Glob(pattern, verdict, source, regex, _rank(pattern, verdict)))
            else:
                self._exact.setdefault(pattern, (verdict, source))
        self._globs = sorted(globs, key=lambda g: g.rank, reverse=True)  # most specific first
        self._cache: dict[tuple[str, str, bool, bool], Decision] = {}

    def __len__(self) -> int:
        return len(self._exact) + len(self._globs)

    def decide(self, ref: ToolRef, annotations: Mapping[str, Any] | None = None) -> Decision:
        """The decision for a call of ``ref`` (a tool with these MCP annotations)."""
        ann = annotations or {}
        read_only_hint = ann.get("readOnlyHint") is True
        destructive_hint = ann.get("destructiveHint") is True and not read_only_hint
        key = (ref.server, ref.tool, read_only_hint, destructive_hint)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._decide(str(ref), read_only_hint, destructive_hint)
        return found

    def _decide(self, name: str, read_only_hint: bool, destructive_hint: bool) -> Decision:
        decision = self._match(name)
        if decision is None:
            if destructive_hint:
                decision = Decision(self.destructive, f"annotation destructiveHint → policy.destructive = "
                                    f"{self.destructive.value!r}")  # fmt: skip
            else:
                decision = Decision(Verdict.ALLOW, "no rule matches: allowed by default")
        if self.read_only and not read_only_hint and decision.verdict is not Verdict.DENY:
            return Decision(Verdict.DENY, "policy.read_only = true and the tool is not annotated readOnlyHint")
        return decision

    def _match(self, name: str) -> Decision | None:
        exact = self._exact.get(name)
        if exact is not None:
            return Decision(*exact)
        for glob in self._globs:
            if glob.regex.match(name):
                return Decision(glob.verdict, glob.source)
        return self.fallback._match(name) if self.fallback is not None else None
