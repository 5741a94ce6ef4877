"""Policy overhead per tool call: the gate with and without the policy step, for an ``allow`` decision made
from 100 rules (target: the step adds ≤ 20 µs at the median).

Both chains run in the same process, interleaved in rounds, against an in-process upstream that answers at
once, so the difference is the policy step (decision, journal note, rate-limit lookup) and nothing else.
The bridge itself (guest frame → host) is measured by ``bench_sandbox``; this is the host-side addition.

    python -m benchmarks.bench_policy [--calls 20000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import anyio
import mcp_types as types

from codemode.calls import Gate, Limits, default_gate
from codemode.hub.models import ToolRef, ToolSpec
from codemode.policy import PolicyStep, RuleSet, ToolRateLimiter

SERVERS = 10
TOOLS_PER_SERVER = 20


class InstantUpstream:
    """Answers every call at once with a small text result."""

    def __init__(self) -> None:
        self._tools = {
            f"svc{s}": [ToolSpec(f"svc{s}", f"tool_{t}", annotations={"readOnlyHint": t % 2 == 0})
                        for t in range(TOOLS_PER_SERVER)]
            for s in range(SERVERS)
        }  # fmt: skip
        self._result = types.CallToolResult(content=[types.TextContent(type="text", text="ok")])

    def tools(self) -> dict[str, list[ToolSpec]]:
        return self._tools

    def unavailable(self) -> dict[str, str]:
        return {}

    async def call_tool(self, ref: ToolRef, args: dict[str, Any]) -> types.CallToolResult:
        return self._result


def hundred_rules() -> dict[str, str]:
    """100 rules of the kinds people write: exact names, per-server globs, verb globs; none denies the target."""
    rules: dict[str, str] = {}
    for s in range(SERVERS):
        rules[f"svc{s}.delete_*"] = "deny"
        rules[f"svc{s}.tool_1?"] = "ask"
        for t in range(0, 8):
            rules[f"svc{s}.tool_{t}"] = "allow" if t % 2 else "ask"
    assert len(rules) == 100, len(rules)
    return rules


def policy_step() -> PolicyStep:
    return PolicyStep(RuleSet(hundred_rules()), rates=ToolRateLimiter({"other.*": "10/min"}))


async def measure(calls: int, rounds: int = 10) -> dict[str, Any]:
    upstream = InstantUpstream()
    bare = default_gate(upstream)
    with_policy = default_gate(upstream, policy=policy_step())
    ref = ToolRef("svc3", "tool_9")  # no rule names it exactly: every glob is tried, then the default allows
    args = {"query": "x"}
    limits = Limits(max_tool_calls=calls + 1)
    samples: dict[str, list[float]] = {"bare": [], "policy": []}

    async def run(gate: Gate, n: int) -> list[float]:
        ctx = gate.context(session="bench", limits=limits)
        out = []
        for _ in range(n):
            started = time.perf_counter()
            reply = await gate.call(ctx, ref, args, 20)
            out.append(time.perf_counter() - started)
            assert reply.ok, reply.message
        return out

    per_round = calls // rounds
    await run(bare, 200)
    await run(with_policy, 200)  # warm both (and the decision cache, as after a session's first call)
    for _ in range(rounds):
        samples["bare"] += await run(bare, per_round)
        samples["policy"] += await run(with_policy, per_round)
    cold: list[float] = []
    for _ in range(rounds):  # the first decision for each tool (nothing cached): every rule may be tried
        rules = RuleSet(hundred_rules())
        for specs in upstream.tools().values():
            for spec in specs:
                started = time.perf_counter()
                rules.decide(spec.ref, spec.annotations)
                cold.append(time.perf_counter() - started)
    bare_p50 = statistics.median(samples["bare"]) * 1e6
    policy_p50 = statistics.median(samples["policy"]) * 1e6
    return {
        "rules": 100,
        "calls_each": len(samples["bare"]),
        "bare_gate_p50_us": round(bare_p50, 2),
        "policy_gate_p50_us": round(policy_p50, 2),
        "policy_adds_p50_us": round(policy_p50 - bare_p50, 2),
        "ratio": round(policy_p50 / bare_p50, 3),
        "first_decision_p50_us": round(statistics.median(cold) * 1e6, 2),
        "target_us": 20.0,
        "met": policy_p50 - bare_p50 <= 20.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=20_000, help="calls per chain (default 20,000)")
    args = parser.parse_args()
    result = anyio.run(measure, args.calls)
    print(json.dumps(result, indent=2))
    print(
        f"policy step with 100 rules adds {result['policy_adds_p50_us']} µs p50 per allowed call "
        f"({result['bare_gate_p50_us']} → {result['policy_gate_p50_us']} µs, ratio {result['ratio']}); "
        f"target ≤ 20 µs: {'met' if result['met'] else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
