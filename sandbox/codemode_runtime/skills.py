"""Skills inside the sandbox: ``save_skill(fn)`` and the ``skills`` package (``from skills import NAME``).

``save_skill`` finds the function's ``def`` in the source the session kept of the execution that defined
it (each execution's code is in ``linecache`` under ``<execution-N>``: ``inspect.getsource`` cannot see
exec'd code), adds the top-level imports of the session that the function uses, and sends the module to
the host (op ``save_skill``), which validates and stores it. A saved draft is importable in this session
only: it is kept here, in memory, never in the shared ``/skills`` mount (which holds promoted skills).

``from skills import NAME`` returns the function itself (not its module): the package's ``__getattr__``
imports ``skills.NAME`` (a draft of this session first, else ``/skills/NAME.py``) and binds the function.
"""

from __future__ import annotations

import ast
import importlib
import linecache
import sys
import types
from collections.abc import Callable
from typing import Any

from codemode_runtime import discovery, transport
from codemode_runtime.protocol import OP_SAVE_SKILL


class SkillError(Exception):
    """A skill was not saved; ``reasons`` lists every reason."""

    def __init__(self, name: str, reasons: list[str]) -> None:
        super().__init__(f"skill {name!r} was not saved:\n" + "\n".join(f"- {r}" for r in reasons))
        self.name = name
        self.reasons = list(reasons)


SourceLoader = Callable[[str, str, str], types.ModuleType]
"""(module name, shown filename, source) → the executed module, registered in ``sys.modules``."""


def _plain_load(fullname: str, filename: str, source: str) -> types.ModuleType:
    module = types.ModuleType(fullname)
    module.__file__ = filename
    sys.modules[fullname] = module
    try:
        exec(compile(source, filename, "exec"), module.__dict__)
    except BaseException:
        del sys.modules[fullname]
        raise
    return module


load_source: SourceLoader = _plain_load
"""How a draft's source becomes a module (the restricted child compiles it through its guards)."""

ROOT = "/skills"
"""Where the promoted skills are (the restricted child's is a host directory)."""

DRAFTS: dict[str, str] = {}
"""This session's saved drafts: name → module source."""

_revision: str | None = None
_package: types.ModuleType | None = None


def install(root: str) -> types.ModuleType:
    """Create the ``skills`` package over the directory ``root`` (the promoted skills)."""
    global _package, ROOT
    ROOT = discovery.SKILLS_ROOT = root
    package = types.ModuleType("skills", "Saved skills: `from skills import NAME` gives the function NAME.")
    package.__path__ = [root]
    package.__dict__["__getattr__"] = _attribute  # a module-level __getattr__ (PEP 562)
    sys.modules["skills"] = package
    _package = package
    return package


def use_revision(revision: object) -> None:
    """The store changed (a promotion, a rollback): forget imported skills so the next import reads the files."""
    global _revision
    if revision is None or revision == _revision:
        return
    _revision = revision if isinstance(revision, str) else None
    _forget(None)


def _forget(name: str | None) -> None:
    prefix = "skills." if name is None else f"skills.{name}"
    for key in [m for m in sys.modules if m == prefix or (name is None and m.startswith(prefix))]:
        del sys.modules[key]
    if _package is not None:
        for key in [k for k in vars(_package) if not k.startswith("_") and (name is None or k == name)]:
            delattr(_package, key)
    # Only the skills directory's finder: importlib.invalidate_caches() costs ~90 ms under WASM.
    invalidate = getattr(sys.path_importer_cache.get(ROOT), "invalidate_caches", None)
    if invalidate is not None:
        invalidate()


def _attribute(name: str) -> Any:
    if name.startswith("_"):
        raise AttributeError(f"module 'skills' has no attribute {name!r}")
    fullname = f"skills.{name}"
    module = sys.modules.get(fullname)
    if module is None:
        if name in DRAFTS:
            filename = f"<draft {name}>"
            source = DRAFTS[name]
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)  # for tracebacks
            module = load_source(fullname, filename, source)
        else:
            try:
                module = importlib.import_module(fullname)
            except ModuleNotFoundError as exc:
                if exc.name != fullname:
                    raise
                raise ImportError(
                    f"no skill named {name!r}: search_tools() lists the promoted skills (and this session's drafts)",
                    name=fullname,
                ) from None
    value = getattr(module, name, module)
    if _package is not None:
        setattr(_package, name, value)  # the import bound the module there: the function replaces it
    return value


def save_skill(fn: Any, *, description: str | None = None, example: str | None = None) -> dict[str, Any]:
    """Save ``fn`` (a function this session defined) as the skill ``fn.__name__``.

    ``example`` is a call expression (``"restock_report(threshold=5)"``), run at save time when every tool
    the skill calls is read-only. Returns ``{"name", "state", "version", "tested"}``.

    Raises:
        SkillError: the skill was not saved; ``reasons`` says every reason (nothing was written).
    """
    name = getattr(fn, "__name__", "?")
    source = _module_source(fn)
    reply = transport.request(
        {"op": OP_SAVE_SKILL, "name": name, "source": source, "description": description, "example": example}
    )
    if not reply.get("ok"):
        error = reply.get("error") or {}
        raise SkillError(name, [str(error.get("message", "the host refused the request"))])
    result = reply.get("result") or {}
    if not result.get("saved"):
        raise SkillError(name, [str(r) for r in result.get("reasons") or ["the host did not save it"]])
    DRAFTS[name] = source
    _forget(name)
    return {k: result.get(k) for k in ("name", "state", "version", "tested")}


def _module_source(fn: Any) -> str:
    code = getattr(fn, "__code__", None)
    name = getattr(fn, "__name__", "?")
    if not isinstance(fn, types.FunctionType) or code is None:
        raise SkillError(name, ["save_skill() takes a function the program defined with `def`"])
    lines = linecache.getlines(code.co_filename)
    if not code.co_filename.startswith("<execution-") or not lines:
        raise SkillError(name, [f"the source of {name}() is not known: define it with `def` in a program first"])
    tree = ast.parse("".join(lines))
    node = next(
        (
            n for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name
            and min([n.lineno, *(d.lineno for d in n.decorator_list)]) == code.co_firstlineno
        ),
        None,
    )  # fmt: skip
    if node is None:
        raise SkillError(name, [f"{name}() must be defined at the top level of a program to be saved"])
    body = ast.get_source_segment("".join(lines), node, padded=False) or ""
    if node.decorator_list:
        first = min(d.lineno for d in node.decorator_list)
        body = "".join(lines[first - 1 : node.lineno - 1]) + body
    used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    used |= {n.value.id for n in ast.walk(node) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}
    imports = {bound: text for bound, text in _session_imports().items() if bound in used}
    header = "".join(sorted(set(imports.values())))
    return (header + "\n\n" if header else "") + body + "\n"


def _session_imports() -> dict[str, str]:
    """Name bound → the import statement binding it, over this session's executions in order."""
    bound: dict[str, str] = {}
    numbers = sorted(
        int(f[len("<execution-") : -1]) for f in linecache.cache if f.startswith("<execution-") and f.endswith(">")
    )
    for number in numbers:
        try:
            tree = ast.parse("".join(linecache.getlines(f"<execution-{number}>")))
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    as_part = f" as {alias.asname}" if alias.asname else ""
                    bound[alias.asname or alias.name.partition(".")[0]] = f"import {alias.name}{as_part}\n"
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for alias in node.names:
                    as_part = f" as {alias.asname}" if alias.asname else ""
                    bound[alias.asname or alias.name] = f"from {node.module} import {alias.name}{as_part}\n"
    return bound
