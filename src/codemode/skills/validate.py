"""Static checks of a skill before anything is written: pure, ``ast`` against the stubs index.

:func:`check` reads the module source and returns a :class:`Report` with every reason it is refused (none:
it may be saved), the stubs and skills it calls, and whether any of those calls may write. The index is
the stubs generation's ``_index.json`` (servers → tools → keyword arguments); nothing is imported or run.
"""

from __future__ import annotations

import ast
import builtins
import keyword
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from typing import Any

from codemode.executors.restricted_child.guards import SAFE_STDLIB

FORBIDDEN_NAMES = frozenset({"__import__", "eval", "exec", "compile", "globals", "locals", "vars", "breakpoint"})
"""Builtins a skill may not name: they reach past the checks below."""


@dataclass(frozen=True)
class Signature:
    """What a callable accepts by keyword: every name, the required ones, whether ``**kwargs`` is open."""

    names: frozenset[str]
    required: frozenset[str]
    open: bool = False
    positional: bool = False
    """It takes positional arguments too (stubs do not: their arguments are keyword-only)."""


@dataclass
class Report:
    """The outcome of :func:`check`."""

    reasons: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    """``stubs.SERVER.TOOL`` and ``skills.NAME`` the skill calls, sorted."""
    writes: bool = False
    """A call that is not annotated read-only (or a skill that makes one): the example is not run."""
    description: str = ""
    signature: str = ""
    """``name(*, a: int) -> str``: what ``describe`` shows."""

    @property
    def ok(self) -> bool:
        return not self.reasons


def stub_signatures(index: Mapping[str, Any]) -> dict[str, dict[str, Signature]]:
    """Server module → tool's Python name → its :class:`Signature`, from a stubs ``_index.json``."""
    servers: dict[str, dict[str, Signature]] = {}
    for server in index.get("servers", []):
        tools: dict[str, Signature] = {}
        for tool in server.get("tools", []):
            args = tool.get("args", [])
            tools[tool["python_name"]] = Signature(
                frozenset(a["name"] for a in args),
                frozenset(a["name"] for a in args if a.get("required")),
                open=bool(tool.get("generic")),
            )
        servers[server["module"]] = tools
    return servers


def function_signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> Signature:
    a = node.args
    names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    positional = [*a.posonlyargs, *a.args]
    required = [x.arg for x in positional[: len(positional) - len(a.defaults)]]
    required += [x.arg for x, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d is None]
    return Signature(frozenset(names), frozenset(required), open=a.kwarg is not None, positional=True)


def skill_signature(name: str, source: str) -> Signature | None:
    """The signature of the function ``name`` in a skill module, or None when it has none."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return function_signature(node)
    return None


def check_name(name: str, *, servers: Set[str], skills: Set[str], hidden: Set[str] = frozenset()) -> list[str]:
    """Why ``name`` cannot name a skill (empty: it can). ``hidden`` are names the saver may not see (other
    sessions' drafts): a clash with one is refused without its name, since one store folder holds both on a
    case-insensitive file system."""
    if not name.isidentifier() or not name.isascii():
        return [f"the name {name!r} is not a Python identifier (letters, digits and _ only)"]
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return [f"the name {name!r} is a Python keyword"]
    if name.startswith("_"):
        return [f"the name {name!r} starts with _: a skill is public"]
    if hasattr(builtins, name):
        return [f"the name {name!r} is a Python builtin"]
    if name in servers or name in ("stubs", "skills", "codemode_runtime"):
        return [f"the name {name!r} is a server module of the stubs (or a package): pick another"]
    clash = [s for s in skills if s != name and s.lower() == name.lower()]
    if clash:
        return [f"the name {name!r} differs only in case from the skill {clash[0]!r}"]
    if any(s != name and s.lower() == name.lower() for s in hidden):
        return [f"the name {name!r} differs only in case from a skill another session is drafting: pick another"]
    return []


def check(
    name: str,
    source: str,
    *,
    index: Mapping[str, Any],
    skills: Mapping[str, str],
    read_only: Set[tuple[str, str]] = frozenset(),
    skill_writes: Mapping[str, bool] | None = None,
    description: str | None = None,
    example: str | None = None,
    hidden_skills: Set[str] = frozenset(),
) -> Report:
    """Every reason ``source`` cannot be saved as the skill ``name``.

    ``skills`` maps the other skills' names to their source (for the keywords of calls to them);
    ``read_only`` holds the (server module, tool) pairs annotated read-only; ``skill_writes`` says which
    skills make a call that may write; ``hidden_skills`` are the names of skills the saver cannot import
    (other sessions' drafts), checked only for a clash of names.
    """
    stubs = stub_signatures(index)
    report = Report()
    report.reasons += check_name(name, servers=stubs.keys(), skills=skills.keys(), hidden=hidden_skills)
    try:
        tree = ast.parse(source, f"<skill {name}>")
    except SyntaxError as exc:
        report.reasons.append(f"syntax error on line {exc.lineno}: {exc.msg}")
        return report
    main = _main_function(name, tree, report)
    if main is not None:
        _check_annotations(main, report)
        doc = ast.get_docstring(main)
        report.description = (description or doc or "").strip()
        if not report.description:
            report.reasons.append(f"{name}() has no docstring: say what it does (or pass description=...)")
        report.signature = f"{name}{_render_args(main)}"
    _Calls(report, stubs, skills, read_only, skill_writes or {}).visit(tree)
    if example is not None and main is not None:
        _check_example(name, example, function_signature(main), report)
    return report


def _main_function(name: str, tree: ast.Module, report: Report) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    public: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if not node.name.startswith("_"):
                public.append(node)
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            report.reasons.append(f"line {node.lineno}: class {node.name} is public: only {name}() may be")
        elif not isinstance(node, (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign, ast.ClassDef, ast.Expr)):
            report.reasons.append(f"line {node.lineno}: only imports, constants and functions may be at the top level")
    if len(public) != 1 or public[0].name != name:
        found = ", ".join(f"{f.name}()" for f in public) or "none"
        report.reasons.append(f"a skill defines exactly one public function, named {name}() (found: {found})")
        return next((f for f in public if f.name == name), None)
    return public[0]


def _check_annotations(node: ast.FunctionDef | ast.AsyncFunctionDef, report: Report) -> None:
    a = node.args
    for arg in (*a.posonlyargs, *a.args, *a.kwonlyargs, *(x for x in (a.vararg, a.kwarg) if x is not None)):
        if arg.annotation is None:
            report.reasons.append(f"{node.name}(): the parameter {arg.arg!r} has no type annotation")
    if node.returns is None:
        report.reasons.append(f"{node.name}(): the return type is not annotated (-> ...)")


def _render_args(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    returns = f" -> {ast.unparse(node.returns)}" if node.returns is not None else ""
    return f"({ast.unparse(node.args)}){returns}"


def _check_example(name: str, example: str, signature: Signature, report: Report) -> None:
    try:
        expr = ast.parse(example.strip(), "<example>", "eval").body
    except SyntaxError as exc:
        report.reasons.append(f"the example is not a Python expression: {exc.msg}")
        return
    if not (isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id == name):
        report.reasons.append(f"the example must be a call of {name}(...), e.g. {name}(limit=5)")
        return
    _check_keywords(f"{name}()", expr, signature, report, positional_ok=True)


def _check_keywords(shown: str, call: ast.Call, signature: Signature, report: Report, *, positional_ok: bool) -> None:
    if call.args and not positional_ok and not signature.positional:
        report.reasons.append(f"line {call.lineno}: {shown} takes keyword arguments only")
    if signature.open or any(k.arg is None for k in call.keywords):
        return
    given = {k.arg for k in call.keywords if k.arg is not None}
    for unknown in sorted(given - signature.names):
        accepted = ", ".join(sorted(signature.names)) or "none"
        report.reasons.append(f"line {call.lineno}: {shown} has no argument {unknown!r} (it takes: {accepted})")
    if not call.args and not any(isinstance(a, ast.Starred) for a in call.args):
        for missing in sorted(signature.required - given):
            report.reasons.append(f"line {call.lineno}: {shown} needs the argument {missing!r}")


class _Calls(ast.NodeVisitor):
    """Imports and calls: every import allowed, every stub and skill call existing, with known keywords."""

    def __init__(
        self,
        report: Report,
        stubs: Mapping[str, Mapping[str, Signature]],
        skills: Mapping[str, str],
        read_only: Set[tuple[str, str]],
        skill_writes: Mapping[str, bool],
    ) -> None:
        self.report = report
        self.stubs = stubs
        self.skills = skills
        self.read_only = read_only
        self.skill_writes = skill_writes
        self.servers: dict[str, str] = {}
        """Local name → server module."""
        self.tools: dict[str, tuple[str, str]] = {}
        """Local name → (server module, tool)."""
        self.skill_names: dict[str, str] = {}
        """Local name → skill."""
        self.stubs_names: set[str] = set()
        """Local names bound to the ``stubs`` package itself."""
        self.calls: set[str] = set()

    def visit_Module(self, node: ast.Module) -> None:
        self.generic_visit(node)
        self.report.calls = sorted(self.calls)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            parts = alias.name.split(".")
            if not self._allowed(parts[0], node.lineno):
                continue
            if parts[0] == "stubs":
                if len(parts) == 1:
                    self.stubs_names.add(alias.asname or "stubs")
                elif self._server(parts[1], node.lineno) and alias.asname:
                    self.servers[alias.asname] = parts[1]
                elif len(parts) == 2:
                    self.stubs_names.add("stubs")
            elif parts[0] == "skills" and len(parts) > 1:
                self.report.reasons.append(f"line {node.lineno}: import a skill as `from skills import {parts[1]}`")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level:
            self.report.reasons.append(f"line {node.lineno}: relative imports are not allowed in a skill")
            return
        parts = module.split(".")
        if not self._allowed(parts[0], node.lineno):
            return
        for alias in node.names:
            bound = alias.asname or alias.name
            if parts == ["stubs"]:
                if self._server(alias.name, node.lineno):
                    self.servers[bound] = alias.name
            elif parts[0] == "stubs" and len(parts) == 2:
                if self._server(parts[1], node.lineno):
                    if alias.name in self.stubs[parts[1]]:
                        self.tools[bound] = (parts[1], alias.name)
                    elif not alias.name[:1].isupper():  # result types (CheckStockResult) are importable too
                        self.report.reasons.append(f"line {node.lineno}: stubs.{parts[1]} has no tool {alias.name!r}")
            elif parts == ["skills"]:
                if alias.name in self.skills:
                    self.skill_names[bound] = alias.name
                else:
                    self.report.reasons.append(f"line {node.lineno}: there is no skill named {alias.name!r}")

    def _allowed(self, root: str, line: int) -> bool:
        if root in ("stubs", "skills") or root in SAFE_STDLIB:
            return True
        allowed = ", ".join(sorted(SAFE_STDLIB))
        self.report.reasons.append(f"line {line}: import of {root!r} is not allowed (stubs, skills, and: {allowed})")
        return False

    def _server(self, module: str, line: int) -> bool:
        if module in self.stubs:
            return True
        known = ", ".join(sorted(self.stubs)) or "none"
        self.report.reasons.append(f"line {line}: there is no server module stubs.{module} (servers: {known})")
        return False

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in FORBIDDEN_NAMES:
            self.report.reasons.append(f"line {node.lineno}: {node.id} is not allowed in a skill")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr.startswith("__") and node.attr.endswith("__"):
            self.report.reasons.append(f"line {node.lineno}: the attribute {node.attr} is not allowed in a skill")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        target = self._target(node.func)
        if target is not None:
            kind, server, tool = target
            if kind == "stub":
                signature = self.stubs.get(server, {}).get(tool)
                if signature is None:
                    self.report.reasons.append(f"line {node.lineno}: stubs.{server} has no tool {tool!r}")
                else:
                    self.calls.add(f"stubs.{server}.{tool}")
                    self.report.writes |= (server, tool) not in self.read_only
                    _check_keywords(f"{server}.{tool}()", node, signature, self.report, positional_ok=False)
            else:
                self.calls.add(f"skills.{tool}")
                self.report.writes |= self.skill_writes.get(tool, True)
                skill_sig = skill_signature(tool, self.skills.get(tool, ""))
                if skill_sig is not None:
                    _check_keywords(f"{tool}()", node, skill_sig, self.report, positional_ok=True)
        self.generic_visit(node)

    def _target(self, func: ast.expr) -> tuple[str, str, str] | None:
        if isinstance(func, ast.Name):
            if func.id in self.tools:
                return ("stub", *self.tools[func.id])
            if func.id in self.skill_names:
                return ("skill", "", self.skill_names[func.id])
        elif isinstance(func, ast.Attribute):
            owner = func.value
            if isinstance(owner, ast.Name) and owner.id in self.servers:
                return ("stub", self.servers[owner.id], func.attr)
            if (
                isinstance(owner, ast.Attribute) and isinstance(owner.value, ast.Name)
                and owner.value.id in self.stubs_names
            ):  # fmt: skip
                return ("stub", owner.attr, func.attr)
        return None
