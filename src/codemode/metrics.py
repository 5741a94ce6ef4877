"""Prometheus metrics of one engine, for ``/metrics`` (:mod:`codemode.http_app`).

Counted as the engine audits (:attr:`Engine.execution_observers`), so a metric and the audit log never
disagree about what ran: executions by executor and outcome (``ok`` or the closed error kind), their
duration, and each tool call's latency and outcome by server. Read at scrape time from the engine: live
sessions, pooled interpreters, each upstream's state, approvals waiting for a person.

Every label value comes from a closed set: a program can name any server in a call, so calls to servers the
hub does not hold are counted under ``server="other"`` (no label per made-up name).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from codemode._version import __version__
from codemode.audit import ExecutionEntry
from codemode.engine import Engine
from codemode.hub.hub import HubState
from codemode.hub.upstream import UpstreamState

EXECUTION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
TOOL_CALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
OTHER_SERVER = "other"
SKILLS_EXECUTOR = "skills"


class Metrics:
    """The metrics of ``engine``, in a registry of their own (two servers in one process do not mix)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.registry = CollectorRegistry()
        self.executions = Counter(
            "codemode_executions", "Executions by executor (wasm, restricted, direct) and outcome (ok or the "
            "error kind)", ["executor", "outcome"], registry=self.registry,
        )  # fmt: skip
        self.execution_seconds = Histogram(
            "codemode_execution_seconds", "Execution duration (the program's run, tool calls included)",
            buckets=EXECUTION_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.tool_calls = Counter(
            "codemode_tool_calls", "Tool calls by upstream server and outcome (ok or the error kind)",
            ["server", "outcome"], registry=self.registry,
        )  # fmt: skip
        self.tool_call_seconds = Histogram(
            "codemode_tool_call_seconds", "Tool call latency through the gate, by upstream server", ["server"],
            buckets=TOOL_CALL_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.registry.register(_EngineState(engine))
        engine.execution_observers.append(self.observe)

    def observe(self, entry: ExecutionEntry) -> None:
        """Count one audited entry (skill actions are not executions and are left out)."""
        if entry.executor == SKILLS_EXECUTOR:
            return
        outcome = "ok" if entry.ok else entry.error_kind or "error"
        self.executions.labels(entry.executor, outcome).inc()
        self.execution_seconds.observe(entry.duration_s)
        known = set(self.engine.hub.servers) if self.engine.hub is not None else set()
        for call in entry.calls:
            server = call.server if call.server in known else OTHER_SERVER
            self.tool_calls.labels(server, "ok" if call.ok else call.error_kind or call.state.value).inc()
            self.tool_call_seconds.labels(server).observe(call.duration_s)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric now."""
        return generate_latest(self.registry)


class _EngineState(Collector):
    """Gauges read from the engine when scraped."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        engine = self.engine
        info = InfoMetricFamily("codemode", "codemode version and executor")
        info.add_metric([], {"version": __version__, "executor": engine.executor_kind})
        yield info
        running = engine.hub is not None and engine.hub.state is HubState.RUNNING
        yield GaugeMetricFamily("codemode_hub_running", "1 while the hub of upstream servers runs", value=running)
        live = len(engine.sessions)
        yield GaugeMetricFamily("codemode_sessions_live", "Sessions with a live interpreter", value=live)
        pooled = engine.executor.pooled if engine.executor is not None else 0
        yield GaugeMetricFamily("codemode_pool_interpreters", "Interpreters started ahead of need", value=pooled)
        yield GaugeMetricFamily(
            "codemode_approvals_pending", "Tool calls waiting for a person's approval",
            value=engine.policy.approvals.pending,
        )  # fmt: skip
        up = GaugeMetricFamily("codemode_upstream_up", "1 when the upstream server is connected", labels=["server"])
        tools = GaugeMetricFamily("codemode_upstream_tools", "Tools the upstream server offers", labels=["server"])
        state = GaugeMetricFamily(
            "codemode_upstream_state", "The upstream server's state (1 for the current one)", labels=["server", "state"]
        )
        for status in engine.hub.status() if engine.hub is not None else []:
            up.add_metric([status.name], status.state == UpstreamState.READY.value)
            tools.add_metric([status.name], status.tool_count)
            state.add_metric([status.name, status.state], 1)
        yield up
        yield tools
        yield state
