"""Policy rules: most specific pattern wins, autoApprove, annotation defaults, read-only mode, rate limits,
and config errors that name file, line and key."""

from __future__ import annotations

import json

import pytest

from codemode.config import parse_config
from codemode.errors import ConfigError
from codemode.hub.models import ToolRef
from codemode.policy import RuleSet, ToolRateLimiter, Verdict, parse_rate, rule_set

DESTRUCTIVE = {"destructiveHint": True, "readOnlyHint": False}
READ_ONLY = {"readOnlyHint": True}


def _verdict(rules: RuleSet, name: str, annotations: dict[str, object] | None = None) -> str:
    server, _, tool = name.partition(".")
    return rules.decide(ToolRef(server, tool), annotations).verdict.value


def test_the_most_specific_pattern_wins() -> None:
    rules = RuleSet({"*": "ask", "fs.*": "allow", "fs.write_*": "deny", "fs.write_file": "ask", "*.delete_*": "deny"})
    assert _verdict(rules, "fs.write_file") == "ask"  # exact beats every glob
    assert _verdict(rules, "fs.write_bytes") == "deny"  # 'fs.write_' is more literal than 'fs.'
    assert _verdict(rules, "fs.read_file") == "allow"
    assert _verdict(rules, "github.delete_repo") == "deny"  # '.delete_' beats '*'
    assert _verdict(rules, "github.get_issue") == "ask"
    assert rules.decide(ToolRef("fs", "write_bytes")).rule == "rules['fs.write_*'] = 'deny'"


def test_a_tie_goes_to_the_stricter_verdict() -> None:
    rules = RuleSet({"fs.*_x": "allow", "fs.a_*": "deny"})
    assert _verdict(rules, "fs.a_x") == "deny"


def test_annotation_defaults_and_read_only_mode() -> None:
    rules = RuleSet({})
    assert _verdict(rules, "fs.write_file", DESTRUCTIVE) == "ask"
    assert _verdict(rules, "fs.write_file") == "allow"  # no annotations: nothing says it is destructive
    assert _verdict(RuleSet({"fs.write_file": "allow"}), "fs.write_file", DESTRUCTIVE) == "allow"
    assert _verdict(RuleSet({}, destructive="deny"), "fs.write_file", DESTRUCTIVE) == "deny"
    read_only = RuleSet({"fs.write_file": "allow"}, read_only=True)
    assert _verdict(read_only, "fs.write_file", DESTRUCTIVE) == "deny"  # an allow does not lift read-only
    assert _verdict(read_only, "fs.create_directory", {"destructiveHint": False}) == "deny"
    assert _verdict(read_only, "fs.read_file", READ_ONLY) == "allow"
    assert "read_only" in read_only.decide(ToolRef("fs", "write_file"), DESTRUCTIVE).rule


def test_auto_approve_lists_are_honoured_below_explicit_rules() -> None:
    cfg = parse_config(
        json.dumps(
            {
                "mcpServers": {
                    "fs": {"command": "x", "autoApprove": ["write_file", "move_file"]},
                    "gh": {"command": "y", "alwaysAllow": ["create_issue"]},
                },
                "codemode": {"policy": {"rules": {"fs.move_file": "deny"}}},
            }
        )
    )
    rules = rule_set(cfg)
    assert _verdict(rules, "fs.write_file", DESTRUCTIVE) == "allow"
    assert rules.decide(ToolRef("fs", "write_file"), DESTRUCTIVE).rule == (
        "mcpServers['fs'].autoApprove contains 'write_file'"
    )
    assert _verdict(rules, "fs.move_file", DESTRUCTIVE) == "deny"
    assert _verdict(rules, "gh.create_issue", DESTRUCTIVE) == "allow"
    assert _verdict(rules, "gh.delete_issue", DESTRUCTIVE) == "ask"


def test_decisions_are_cached_per_annotations() -> None:
    rules = RuleSet({"fs.*": "allow"}, read_only=True)
    assert rules.decide(ToolRef("fs", "t"), READ_ONLY).verdict is Verdict.ALLOW
    assert rules.decide(ToolRef("fs", "t"), DESTRUCTIVE).verdict is Verdict.DENY


def test_rate_limits() -> None:
    assert parse_rate("10/min") == (10, 60.0) and parse_rate(" 2 / s ") == (2, 1.0)
    for bad in ("ten/min", "0/min", "5", "5/week"):
        with pytest.raises(ValueError, match="must look like '10/min'"):
            parse_rate(bad)
    now = [0.0]
    limiter = ToolRateLimiter({"search.*": "2/min", "search.cheap": "100/s"}, clock=lambda: now[0])
    assert limiter.check("search.web") is None and limiter.check("search.news") is None
    refused = limiter.check("search.web")  # the pattern's count is shared by the tools it matches
    assert refused is not None and "rate limit for 'search.*': at most 2 calls per 60 s" in refused
    assert limiter.check("search.cheap") is None  # the exact pattern has its own count
    assert limiter.check("other.tool") is None
    now[0] = 60.0
    assert limiter.check("search.web") is None


@pytest.mark.parametrize(
    ("policy", "where"),
    [
        ('{"rules": {"fs.write_file": "maybe"}}', ":3: codemode.policy.rules.fs.write_file: Input should be"),
        ('{"rules": {"nodot": "deny"}}', ":3: codemode.policy.rules: Value error, 'nodot' must be a 'server.tool'"),
        ('{"rate_limits": {"fs.*": "lots"}}', ":3: codemode.policy.rate_limits: Value error, 'fs.*': rate 'lots'"),
        ('{"read_only": "sometimes"}', ":3: codemode.policy.read_only: Input should be a valid boolean"),
        ('{"approval_timeout_s": 0}', ":3: codemode.policy.approval_timeout_s: Input should be greater than 0"),
        ('{"rulez": {}}', ":3: codemode.policy.rulez: unknown key"),
    ],
)
def test_policy_config_errors_name_file_line_and_key(policy: str, where: str) -> None:
    text = '{"mcpServers": {},\n "codemode": {\n  "policy": ' + policy + "}}"
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="mcp.json")
    assert str(info.value).startswith("mcp.json" + where), str(info.value)


@pytest.mark.anyio
async def test_the_mount_hook_asks_with_the_clock_paused() -> None:
    from codemode.calls import Limits
    from codemode.calls.gate import Gate
    from codemode.policy.approvals import approve_mount

    class NoUpstreams:
        def tools(self) -> dict[str, list[object]]:
            return {}

    gate = Gate([], NoUpstreams())  # type: ignore[arg-type]
    asked: list[tuple[str, bool]] = []

    async def person(question: str, choices: object) -> str:
        asked.append((question, ctx.clock.remaining() == float("inf")))
        return "approve" if "petstore" in question else "deny"

    ctx = gate.context(session="s", limits=Limits(), ask=person)
    assert await approve_mount(ctx, "the OpenAPI server petstore") is True
    assert await approve_mount(ctx, "the OpenAPI server billing") is False
    assert asked == [("A program wants to mount the OpenAPI server petstore. Allow it?", True),
                     ("A program wants to mount the OpenAPI server billing. Allow it?", True)]  # fmt: skip
    ctx.ask = None
    assert await approve_mount(ctx, "anything") is False
