"""Hybrid mode: which upstream tools ``codemode serve`` also offers as ordinary MCP tools, and under what name.

``codemode.expose_direct`` lists ``server.tool`` globs (``fs.read_*``, ``memory.*``) and may contain
``"auto"``: every tool of a server whose definitions cost fewer tokens than code mode's overhead for it
(its line in the ``execute_python`` description plus ``describe()`` of a typical task's tools, the figure
the token benchmark charges code mode). Small catalogs lose in code mode; ``auto`` hands them back.

A direct tool keeps the upstream's own name; where two selected tools share one (or one is a name the
front already uses), each of them is prefixed with its server (``server_tool``). Calls to direct tools are
not sent to the hub here: the front passes them to :meth:`codemode.engine.Engine.call_tool`, the same gate,
journal and audit as a program's calls.
"""

from __future__ import annotations

import fnmatch
import statistics
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from codemode import paths
from codemode.hub.models import ToolSpec
from codemode.tokens import count_json, count_tokens

AUTO = "auto"
AUTO_TASK_TOOLS = 3
"""Tools a typical task reads with ``describe()``: what the token benchmark charges code mode (its ``k``)."""


@dataclass(frozen=True)
class DirectTool:
    """An upstream tool offered under ``name`` beside ``execute_python``."""

    name: str
    spec: ToolSpec


def discovery_for(stubs_dir: Path, skills_dir: Path | None = None) -> ModuleType:
    """A private host-side copy of the guest's discovery module reading ``stubs_dir`` (and the promoted
    skills in ``skills_dir``, when given).

    One copy per stubs tree, because the module caches the parsed index.
    """
    module = paths.load_guest_module("discovery", f"_codemode_discovery_{id(stubs_dir):x}")
    # setattr: a module global the type checker cannot see through spec loading.
    setattr(module, "STUBS_DIR", str(stubs_dir))  # noqa: B010
    setattr(module, "SKILLS_ROOT", str(skills_dir) if skills_dir is not None else "")  # noqa: B010
    return module


def direct_cost(specs: Sequence[ToolSpec]) -> int:
    """Tokens of ``specs``' definitions as codemode would list them (``tools/list`` entries, one JSON list)."""
    return count_json([spec.to_json() for spec in specs])


def code_mode_cost(description_tokens: int, describe_tokens: Sequence[int], k: int = AUTO_TASK_TOOLS) -> int:
    """Code mode's cost for a catalog: its description plus ``describe()`` of ``k`` tools at the median cost."""
    if not describe_tokens:
        return description_tokens
    return description_tokens + round(statistics.median(describe_tokens) * min(k, len(describe_tokens)))


def code_mode_costs(
    index: Mapping[str, Any], stubs_dir: Path, description: Callable[[dict[str, Any]], str]
) -> dict[str, int]:
    """Code mode's cost per server of ``index`` (compiled under ``stubs_dir``), each as if it were alone.

    ``description`` renders the ``execute_python`` description of an index (the front's own).
    """
    discovery = discovery_for(stubs_dir)
    costs: dict[str, int] = {}
    for server in index.get("servers", []):
        describe = [count_tokens(discovery.describe(f"{server['module']}.{t['python_name']}")) for t in server["tools"]]
        alone = count_tokens(description({**index, "servers": [server]}))
        costs[str(server["name"])] = code_mode_cost(alone, describe)
    return costs


def auto_servers(tools: Mapping[str, Sequence[ToolSpec]], code_costs: Mapping[str, int]) -> set[str]:
    """The servers whose direct definitions cost less than code mode does for them."""
    return {
        server
        for server, specs in tools.items()
        if specs and server in code_costs and direct_cost(specs) < code_costs[server]
    }


def select(
    patterns: Sequence[str],
    tools: Mapping[str, Sequence[ToolSpec]],
    *,
    auto: Collection[str] = (),
    reserved: Collection[str] = (),
) -> list[DirectTool]:
    """The tools ``patterns`` select (plus every tool of the ``auto`` servers), named for the client.

    ``reserved`` are names the front already offers (``execute_python``): a tool of that name is prefixed.
    The result is sorted by name.
    """
    globs = [p for p in patterns if p != AUTO]
    chosen = [
        spec
        for server in sorted(tools)
        for spec in tools[server]
        if server in auto or any(fnmatch.fnmatchcase(f"{server}.{spec.name}", g) for g in globs)
    ]
    counts: dict[str, int] = {}
    for spec in chosen:
        counts[spec.name] = counts.get(spec.name, 0) + 1
    named = [
        DirectTool(spec.name if counts[spec.name] == 1 and spec.name not in reserved else _prefixed(spec), spec)
        for spec in chosen
    ]
    return sorted(named, key=lambda d: d.name)


def unmatched(patterns: Sequence[str], tools: Mapping[str, Sequence[ToolSpec]]) -> list[str]:
    """The globs of ``patterns`` that select no tool (worth a warning: likely a typo)."""
    names = [f"{server}.{spec.name}" for server, specs in tools.items() for spec in specs]
    return [p for p in patterns if p != AUTO and not fnmatch.filter(names, p)]


def _prefixed(spec: ToolSpec) -> str:
    return f"{spec.server}_{spec.name}"
