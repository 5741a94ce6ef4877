"""Whole packages: per-server lazy ``__init__``, the root ``__init__``, and the ``_index.json`` discovery index."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from codemode.compiler.naming import literal, module_name, unique
from codemode.compiler.render import (
    HEADER,
    ToolStub,
    build_stub,
    escape_docstring,
    render_stub,
    summary_of,
    with_header,
)
from codemode.hub.models import UNAVAILABLE, ToolSpec

INDEX_FILE = "_index.json"
INDEX_VERSION = 1


def server_modules(servers: Sequence[str]) -> dict[str, str]:
    """Server name → Python package name, unique whatever the case (each is a directory) and stable (sorted
    by server name)."""
    taken: set[str] = set()
    return {s: unique(module_name(s, fallback="server"), taken, fold=True) for s in sorted(servers)}


def tool_names(tools: Sequence[ToolSpec]) -> dict[str, str]:
    """Wire tool name → Python function/module name within one server, collisions (case included: each is a
    file) resolved stably."""
    taken: set[str] = set()
    return {t: unique(module_name(t, fallback="tool"), taken, fold=True) for t in sorted({t.name for t in tools})}


def render_server_init(server: str, module: str, summary: str, stubs: Sequence[ToolStub]) -> str:
    """A lazy per-server package: tool modules load on first attribute access; mypy sees real types."""
    ordered = sorted(stubs, key=lambda s: _natural(s.python_name))
    doc = f"{server}: {len(ordered)} tools." + (f" {summary}" if summary else "")
    lines = [
        HEADER,
        f'"""{escape_docstring(doc)}"""',
        "",
        "from __future__ import annotations",
        "",
        "import builtins as _builtins",
        "import importlib",
        "import sys",
        "import types",
        "from typing import TYPE_CHECKING, Any",
        "",
        "if TYPE_CHECKING:",
    ]
    lines += [_reexport(s.python_name) for s in ordered] or ["    pass"]
    lines += ["", f"SERVER = {literal(server)}", "", "TOOLS: dict[str, str] = {"]
    lines += [f"    {literal(s.python_name)}: {json.dumps(s.summary, ensure_ascii=False)}," for s in ordered]
    lines += [
        "}",
        "",
        "__all__ = list(TOOLS)",
        "",
        "",
        "# A tool's function, once used, is a global here: builtins are reached through _builtins (no tool",
        "# module starts with _), or a tool named globals or isinstance would be called in their place.",
        "def __getattr__(name: str) -> Any:",
        "    # Import a tool's module only when it is used: one broken tool cannot break the package.",
        "    if name in TOOLS:",
        '        function = _builtins.getattr(importlib.import_module(f"{__name__}.{name}"), name)',
        "        _builtins.globals()[name] = function",
        "        return function",
        *_missing_tool(server, summary, ordered),
        "",
        "",
        "def __dir__() -> list[str]:",
        "    return _builtins.sorted({*_builtins.globals(), *__all__})",
        "",
        "",
        "class _Package(types.ModuleType):",
        "    # Importing a tool's module binds the module to the package attribute; keep the function there.",
        "    def __setattr__(self, name: str, value: Any) -> None:",
        "        if name in TOOLS and _builtins.isinstance(value, types.ModuleType):",
        "            value = _builtins.getattr(value, name)",
        "        types.ModuleType.__setattr__(self, name, value)",
        "",
        "",
        "sys.modules[__name__].__class__ = _Package",
    ]
    return with_header("\n".join(lines) + "\n")


def _missing_tool(server: str, summary: str, stubs: Sequence[ToolStub]) -> list[str]:
    """The end of the package's ``__getattr__``: a name that is no tool. A server that could not be listed
    (down when this was compiled: no tools, its summary the hub's ``unavailable: …``) says so, as the call
    gate does, rather than that the tool does not exist."""
    if stubs or not summary.startswith(UNAVAILABLE):
        return ['    raise _builtins.AttributeError(f"module {__name__!r} has no tool {name!r}; see TOOLS")']
    why = literal(f"server {server!r} is {summary}; its tools have stubs once it is back")
    return [
        '    if name.startswith("__"):  # import machinery and introspection, not a program asking for a tool',
        '        raise _builtins.AttributeError(f"module {__name__!r} has no attribute {name!r}")',
        "    from codemode_runtime import ToolUnavailable",
        "",
        f"    raise ToolUnavailable(SERVER, name, {why})",
    ]


def _reexport(name: str) -> str:
    line = f"    from .{name} import {name} as {name}"
    # Wrapped the way ruff's isort does it past 120 columns, so the package stays lint-clean.
    return line if len(line) <= 120 else f"    from .{name} import (\n        {name} as {name},\n    )"


def render_root_init(modules: Mapping[str, str]) -> str:
    """The ``stubs`` package: which servers exist (server modules import on demand)."""
    ordered = sorted(modules.items(), key=lambda kv: kv[1])
    lines = [
        HEADER,
        '"""Typed stubs for the connected MCP servers: ``from stubs import <server>``, then call its tools."""',
        "",
        "SERVERS: dict[str, str] = {",
    ]
    lines += [f"    {literal(module)}: {literal(server)}," for server, module in ordered]
    lines += ["}", '"""Python package name → MCP server name."""', "", "__all__ = list(SERVERS)"]
    return with_header("\n".join(lines) + "\n")


def render_index(servers: Mapping[str, dict[str, Any]]) -> str:
    """``_index.json``: servers and tools with signatures, for discovery helpers and the front."""
    data = {
        "version": INDEX_VERSION,
        "servers": [servers[k] for k in sorted(servers, key=lambda s: servers[s]["module"])],
    }
    # Compact on purpose: the C encoder is ~10x faster than indent=, which keeps a no-op recompile cheap.
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"


def server_index_entry(server: str, module: str, summary: str, entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One server's block of the index."""
    return {
        "name": server,
        "module": module,
        "summary": summary,
        "tool_count": len(entries),
        "tools": sorted(entries, key=lambda e: e["python_name"]),
    }


def compile_server(server: str, tools: Sequence[ToolSpec], *, module: str | None = None,
                   summary: str = "") -> dict[PurePosixPath, str]:  # fmt: skip
    """Compile one server's tools into files (paths relative to the stubs root). Pure: no I/O."""
    module = module or server_modules([server])[server]
    names = tool_names(tools)
    stubs = [build_stub(spec, names[spec.name]) for spec in unique_specs(tools)]
    files = {PurePosixPath(module, f"{s.python_name}.py"): render_stub(s) for s in stubs}
    files[PurePosixPath(module, "__init__.py")] = render_server_init(server, module, summary, stubs)
    return files


def unique_specs(tools: Sequence[ToolSpec]) -> list[ToolSpec]:
    """One spec per wire name, sorted by name. A name listed twice keeps one definition, chosen by content
    (not by list order), so the output does not depend on the order a server lists its tools in."""
    listed = Counter(tool.name for tool in tools)
    chosen: dict[str, tuple[str, ToolSpec]] = {}
    for tool in tools:
        # Only a name listed more than once needs its definitions compared (serialised, which costs).
        key = json.dumps(tool.to_json(), sort_keys=True) if listed[tool.name] > 1 else ""
        if tool.name not in chosen or key < chosen[tool.name][0]:
            chosen[tool.name] = (key, tool)
    return [chosen[name][1] for name in sorted(chosen)]


def _natural(name: str) -> tuple[tuple[int, int | str], ...]:
    """isort's order (numbers by value, case folded), so ruff accepts the generated imports."""
    parts = re.split(r"(\d+)", name)
    return (*((0, int(p)) if p.isdigit() else (1, p.lower()) for p in parts if p), (1, name))


__all__ = [
    "INDEX_FILE",
    "compile_server",
    "render_index",
    "render_root_init",
    "render_server_init",
    "server_index_entry",
    "server_modules",
    "summary_of",
    "tool_names",
    "unique_specs",
]
