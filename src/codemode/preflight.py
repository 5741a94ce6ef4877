"""Type check a program before it runs: mypy, as a library, against the session's stubs generation.

::

    preflight = Preflight()
    report = await preflight.check(code, stubs=generation.path, session="s1")
    report.block()      # "[typecheck: 1 error before running]\\nline 2: ... (did you mean "note_id"?)"

One warm mypy build per stubs tree (:class:`Checker`, a fine-grained build like ``dmypy`` keeps, cached by the
tree's content, the newest two kept): checking a new program re-analyses that program alone, in about a
millisecond once the modules it imports are loaded.

An agent's program is not held to ``--strict``. Missing annotations, ``None`` handling (``strict_optional``
is off), redefinitions and other style errors are not reported: only :data:`COUNTED` codes, the errors that
fail at runtime or misuse a stub (an unknown tool, keyword or key, a wrong argument type, a name that does not
exist). A program that type-checks is never refused.

Names a program finds without defining them are declared to the checker in a prelude module: the guest
helpers (``codemode_runtime.PROGRAM_NAMES``), ``_``, and every name bound at module level by the session's
earlier executions (:class:`SessionNames`): an import is replayed as the same import, so ``notes`` from an
earlier ``from stubs import notes`` keeps its type; anything else is ``Any``.
"""

from __future__ import annotations

import ast
import atexit
import difflib
import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio

from codemode import paths
from codemode.files import remove_orphans

if TYPE_CHECKING:
    from mypy.server.update import FineGrainedBuildManager

logger = logging.getLogger(__name__)
Mode = Literal["off", "warn", "strict"]

COUNTED = frozenset(
    {
        "syntax",  # the program cannot even be compiled
        "name-defined",  # NameError
        "attr-defined",  # AttributeError; an unknown tool (``notes.get_notes``)
        "call-arg",  # TypeError: an unknown keyword, a missing required argument
        "arg-type",  # a value of the wrong type for a stub's parameter
        "list-item",
        "dict-item",
        "typeddict-item",  # KeyError: a key a result does not have
        "typeddict-unknown-key",
        "index",  # TypeError: indexing what cannot be indexed
        "operator",  # TypeError: an operator the types do not support
        "call-overload",  # no variant of a builtin accepts these arguments
        "import-not-found",  # only for stubs/skills/codemode_runtime, see _counts
    }
)
"""The mypy error codes that are reported: each one fails at runtime or misuses a stub."""

PROGRAM = "_codemode_program"
PRELUDE = "_codemode_prelude"
OWN_PACKAGES = ("stubs", "skills", "codemode_runtime")
"""Packages whose modules codemode provides: importing one that does not exist is an error here."""
KEEP = 1
"""Warm checkers kept: one. mypy's type state is global to the process and every new build resets it
(``mypy.build`` calls ``reset_global_state``), so a second warm build would corrupt the first (seen as an
internal error in ``join_instances``). A session pinned to an older generation rebuilds it, rarely."""
MEMO = 512
"""Checks remembered per checker, keyed by a digest of the program and the session's names."""
MEMO_DIAGNOSTICS = 50
"""A check with more diagnostics than this is not remembered: what is kept stays small whatever is sent."""

_LINE = re.compile(
    r"^(?P<path>.*?):(?P<line>\d+): (?P<severity>error|note): (?P<message>.*?)(?:  \[(?P<code>[a-z-]+)\])?$"
)
_UNEXPECTED_KW = re.compile(r'^Unexpected keyword argument "(?P<name>\w+)" for "(?P<func>\w+)"')
_DEFINED_IN = re.compile(r'^"(?P<func>\w+)" defined in "(?P<module>[\w.]+)"')
_NOT_DEFINED = re.compile(r'^Name "(?P<name>\w+)" is not defined')
_DID_YOU_MEAN = re.compile(r"^Did you mean (?P<hint>.+)\?$")
_MAYBE = re.compile(r'; (?:maybe|did you mean) (?P<hint>".+")\?$')
_NO_ATTRIBUTE = re.compile(r'^Module (?:"[\w.]+" )?has no attribute "(?P<name>\w+)"')
_NO_MODULE = re.compile(r'module named "(?P<module>[\w.]+)"')


@dataclass(frozen=True)
class Diagnostic:
    """One error in a program: its line (1-based, in the program as sent), mypy's message and error code,
    and a close match for a misspelt name when there is one."""

    line: int
    message: str
    code: str
    hint: str | None = None

    def render(self, file: str | None = None) -> str:
        """``line 3: message (did you mean "x"?)``, or ``FILE:3: message ...`` when ``file`` is given."""
        where = f"{file}:{self.line}" if file is not None else f"line {self.line}"
        hint = f" (did you mean {self.hint}?)" if self.hint else ""
        return f"{where}: {self.message}{hint}"


@dataclass(frozen=True)
class Report:
    """The type check of one program."""

    diagnostics: tuple[Diagnostic, ...] = ()
    mode: Mode = "warn"
    skipped: str | None = None
    """Why the program was not checked at all (too long to check): strict mode refuses it."""

    @property
    def refused(self) -> bool:
        """Whether the program must not run (strict mode, and errors or no check)."""
        return self.mode == "strict" and (bool(self.diagnostics) or self.skipped is not None)

    def block(self) -> str:
        """The text put at the top of the result ('' when the program is clean), at most :data:`SHOWN_ERRORS`
        errors of at most :data:`SHOWN_CHARS` characters each (a message quotes types, which a stub's schema
        can make as long as it likes)."""
        verdict = "not run (codemode.typecheck is strict)" if self.refused else "ran anyway"
        if self.skipped is not None:
            return f"[typecheck: not checked: {self.skipped}; {verdict}]"
        if not self.diagnostics:
            return ""
        n = len(self.diagnostics)
        head = f"[typecheck: {n} error{'s' if n > 1 else ''} found before running; {verdict}]"
        lines = [_shown(d.render()) for d in self.diagnostics[:SHOWN_ERRORS]]
        if n > SHOWN_ERRORS:
            lines.append(f"... and {n - SHOWN_ERRORS} more")
        return "\n".join([head, *lines])


SHOWN_ERRORS = 20
"""Errors a report shows (the rest are counted)."""
SHOWN_CHARS = 500
"""Characters of one error shown."""
MAX_CHECKED_CHARS = 64_000
"""Longest program type-checked. The check holds one lock for every session (mypy's build is not shared
between threads) and grows with the program: a 990 KB one took 5 s, and four at once stalled every other
client's programs for 12 s. A longer program runs unchecked (warn) or is refused (strict)."""


def _shown(line: str) -> str:
    return line if len(line) <= SHOWN_CHARS else f"{line[: SHOWN_CHARS - 1]}…"


# -- names the session defined ------------------------------------------------------------------------------


@dataclass
class SessionNames:
    """Module-level names bound by a session's earlier executions: name → the import statement that bound
    it last (replayed to keep its type), or None (declared ``Any``)."""

    names: dict[str, str | None] = field(default_factory=dict)
    last: str | None = None
    """The program added last."""
    prelude: str | None = None
    """The checker's prelude for these names (made when first needed)."""

    def add(self, code: str) -> None:
        """Record the names ``code`` binds at module level (a program that does not parse binds none)."""
        self.last = code
        self.prelude = None
        try:
            tree = ast.parse(code)
        except (SyntaxError, ValueError):
            return
        for name, statement in _bindings(tree.body):
            self.names[name] = statement


def _bindings(body: Iterable[ast.stmt]) -> Iterator[tuple[str, str | None]]:
    """(name, import statement or None) for every module-level binding in ``body``, in order."""
    for node in body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    yield alias.asname, f"import {alias.name} as {alias.asname}"
                else:
                    top = alias.name.partition(".")[0]
                    yield top, f"import {alias.name}"
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    continue
                local = alias.asname or alias.name
                yield local, (f"from {node.module} import {alias.name} as {local}" if node.level == 0 else None)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield node.name, None
            # ``global x`` inside a function binds a module-level name when it runs.
            for inner in ast.walk(node):
                if isinstance(inner, ast.Global):
                    yield from ((name, None) for name in inner.names)
        else:
            for inner in _walk_module_scope(node):
                if isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Store):
                    yield inner.id, None
                elif isinstance(inner, ast.ExceptHandler) and inner.name:
                    yield inner.name, None
                elif isinstance(inner, ast.MatchAs | ast.MatchStar) and inner.name:
                    yield inner.name, None
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    yield from _bindings([child])


def _walk_module_scope(node: ast.AST) -> Iterator[ast.AST]:
    """The nodes of ``node`` that run in its own scope: not nested statements (walked on their own), nor
    function, lambda, class or comprehension bodies."""
    todo: list[ast.AST] = [node]
    while todo:
        current = todo.pop()
        yield current
        for child in ast.iter_child_nodes(current):
            if isinstance(child, ast.stmt | ast.Lambda | ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
                continue
            todo.append(child)


# -- the checker ----------------------------------------------------------------------------------------------


class Checker:
    """A warm mypy build of one stubs tree (plus the guest runtime and skills) that checks programs.

    Thread-safe: one check at a time (mypy keeps global state). :meth:`close` removes its work directory.
    """

    _mypy_lock = threading.Lock()

    def __init__(self, stubs: Path, *, runtime: Path | None = None, skills: Path | None = None) -> None:
        _sweep_orphans()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{_WORKDIR_PREFIX}{os.getpid()}-"))
        try:
            _typing_view(stubs, self.workdir / "stubs")
            # `from skills import NAME` gives the function NAME (the guest's package __getattr__), which mypy
            # would read as the module skills/NAME.py and flag every call: skills are typed Any for now.
            (self.workdir / "skills").mkdir()
            (self.workdir / "skills" / "__init__.pyi").write_text(
                "from typing import Any\n\ndef __getattr__(name: str) -> Any: ...\n", encoding="utf-8"
            )
            self._runtime = runtime or paths.runtime_dir()
            self._program = self.workdir / f"{PROGRAM}.py"
            self._prelude = self.workdir / f"{PRELUDE}.py"
            self._manager: FineGrainedBuildManager | None = None
            self._fscache: Any = None
            self._prelude_now = ""
            self._memo: OrderedDict[bytes, list[Diagnostic]] = OrderedDict()
            self._memo_lock = threading.Lock()
            self.closed = False
        except BaseException:
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise

    def close(self) -> None:
        """Drop the build and its work directory (after a check in progress)."""
        with self._mypy_lock:
            self._manager = None
            self.closed = True
            shutil.rmtree(self.workdir, ignore_errors=True)

    def warm(self) -> None:
        """Build the stubs, the runtime and what a program usually imports (about a second, once)."""
        with self._mypy_lock:
            self._build()

    def remembered(self, code: str, known: SessionNames | None = None) -> list[Diagnostic] | None:
        """The result of an earlier :meth:`check` of the same program with the same session names, or None.

        A check is a pure function of the stubs tree (this checker), the names and the program: an agent that
        retries a program, or a loop that sends the same one, is answered without mypy."""
        return self._recall(_memo_key(_prelude_text(known), code))

    def check(self, code: str, known: SessionNames | None = None) -> list[Diagnostic]:
        """The :data:`COUNTED` errors in ``code``, given the names the session already has."""
        key = _memo_key(_prelude_text(known), code)
        found = self._recall(key)
        if found is not None:
            return found
        prelude, program, inserted_at = _sources(code, known)
        found = self._check(prelude, program, inserted_at)
        if len(found) <= MEMO_DIAGNOSTICS:
            with self._memo_lock:
                self._memo[key] = found
                while len(self._memo) > MEMO:
                    self._memo.popitem(last=False)
        return found

    def _recall(self, key: bytes) -> list[Diagnostic] | None:
        with self._memo_lock:
            found = self._memo.get(key)
            if found is not None:
                self._memo.move_to_end(key)
            return found

    def _check(self, prelude: str, program: str, inserted_at: int | None) -> list[Diagnostic]:
        with self._mypy_lock:
            manager = self._build()
            changed = [(PROGRAM, str(self._program))]
            if prelude != self._prelude_now:  # most checks reuse the last session's prelude: not re-analysed
                self._prelude.write_text(prelude, encoding="utf-8")
                self._prelude_now = prelude
                changed.insert(0, (PRELUDE, str(self._prelude)))
            self._program.write_text(program, encoding="utf-8")
            self._fscache.flush()
            messages = manager.update(changed, [])
            manager.flush_cache()
            return self._diagnostics(messages, inserted_at)

    def _build(self) -> FineGrainedBuildManager:
        if self._manager is not None:
            return self._manager
        if self.closed:
            raise RuntimeError("this checker was closed (another stubs tree is checked now); use checker_for()")
        import mypy.build
        from mypy.fscache import FileSystemCache
        from mypy.modulefinder import BuildSource
        from mypy.server.update import FineGrainedBuildManager

        options = _options([str(self.workdir), str(self._runtime)])
        self._prelude_now = _prelude_text(None)
        self._prelude.write_text(self._prelude_now, encoding="utf-8")
        # The modules programs reach for are loaded with the first build, not by the first program.
        self._program.write_text("import stubs, codemode_runtime, json, re, collections, datetime, math\n")
        self._fscache = FileSystemCache()
        sources = [BuildSource(str(self._prelude), PRELUDE), BuildSource(str(self._program), PROGRAM)]
        result = mypy.build.build(sources, options, fscache=self._fscache)
        manager = FineGrainedBuildManager(result)
        # The first update after a build reports nothing for a changed module (seen with mypy 2.4): make it.
        self._program.write_text("pass\n")
        self._fscache.flush()
        manager.update([(PROGRAM, str(self._program))], [])
        manager.flush_cache()
        self._manager = manager
        return manager

    def _diagnostics(self, messages: list[str], inserted_at: int | None) -> list[Diagnostic]:
        assert self._manager is not None
        found: list[Diagnostic] = []
        last: Diagnostic | None = None
        for text in messages:
            match = _LINE.match(text)
            if match is None or Path(match["path"]).name != self._program.name:
                last = None
                continue
            line = int(match["line"])
            if inserted_at is not None:
                if line == inserted_at:
                    last = None
                    continue  # the prelude's own line
                if line > inserted_at:
                    line -= 1
            if match["severity"] == "note":
                if last is not None:
                    last = self._with_note(found, last, match["message"])
                continue
            code = match["code"] or ("syntax" if "syntax" in match["message"].lower() else "misc")
            message = match["message"]
            if not _counts(code, message):
                last = None
                continue
            hint = None
            maybe = _MAYBE.search(message)
            if maybe is not None:
                message, hint = message[: maybe.start()], maybe["hint"]
            elif (unknown := _NOT_DEFINED.match(message)) is not None:
                hint = self._close_name(unknown["name"], (PROGRAM, PRELUDE, "builtins"))
            elif (attribute := _NO_ATTRIBUTE.match(message)) is not None:
                hint = self._close_name(attribute["name"], self._server_packages())
            last = Diagnostic(line, message, code, hint)
            found.append(last)
        return found

    def _with_note(self, found: list[Diagnostic], last: Diagnostic, note: str) -> Diagnostic:
        """Fold a note into the error before it: mypy's ``Did you mean``, or the function a bad keyword was
        given to (whose parameters give the hint)."""
        hint = last.hint
        if hint is None and (mean := _DID_YOU_MEAN.match(note)) is not None:
            hint = mean["hint"]
        elif hint is None and (defined := _DEFINED_IN.match(note)) and (kw := _UNEXPECTED_KW.match(last.message)):
            params = self._parameters(defined["module"], defined["func"])
            close = difflib.get_close_matches(kw["name"], params, n=1, cutoff=0.5)
            hint = f'"{close[0]}"' if close else None
        if hint is last.hint:
            return last
        updated = Diagnostic(last.line, last.message, last.code, hint)
        found[-1] = updated
        return updated

    def _parameters(self, module: str, function: str) -> list[str]:
        from mypy.nodes import FuncDef

        assert self._manager is not None
        tree = self._manager.manager.modules.get(module)
        node = tree.names.get(function) if tree is not None else None
        if node is None or not isinstance(node.node, FuncDef):
            return []
        return [name for name in node.node.arg_names if name]

    def _server_packages(self) -> list[str]:
        assert self._manager is not None
        return [name for name in self._manager.manager.modules if name.count(".") == 1 and name.startswith("stubs.")]

    def _close_name(self, name: str, modules_searched: Iterable[str]) -> str | None:
        assert self._manager is not None
        modules = self._manager.manager.modules
        candidates = [n for module in modules_searched if module in modules for n in modules[module].names]
        close = difflib.get_close_matches(name, [c for c in candidates if not c.startswith("__")], n=1, cutoff=0.7)
        return f'"{close[0]}"' if close else None


def _memo_key(prelude: str, code: str) -> bytes:
    # A digest, not the texts: a program may be a megabyte, and hundreds are remembered.
    digest = hashlib.sha256(prelude.encode("utf-8", "surrogatepass"))
    digest.update(b"\0" + code.encode("utf-8", "surrogatepass"))
    return digest.digest()


_WORKDIR_PREFIX = "codemode-preflight-"
_swept = False


def _sweep_orphans() -> None:
    """Once per process: remove the work directories of checkers whose process was killed (each holds a copy
    of a stubs tree; a host that restarts ``serve`` often would fill its temp directory)."""
    global _swept
    if not _swept:
        _swept = True
        remove_orphans(Path(tempfile.gettempdir()), _WORKDIR_PREFIX)


def _counts(code: str, message: str) -> bool:
    if code not in COUNTED:
        return False
    if code == "import-not-found":
        module = _NO_MODULE.search(message)
        # A module the sandbox may have that mypy cannot see is not the program's fault.
        return module is not None and module["module"].partition(".")[0] in OWN_PACKAGES
    return True


def _options(mypy_path: list[str]) -> Any:
    from mypy.options import Options

    options = Options()
    options.mypy_path = mypy_path
    options.fine_grained_incremental = True
    options.incremental = True
    options.local_partial_types = True
    options.cache_dir = "/dev/null"
    # Not --strict: unannotated functions are still checked, None and redefinitions are not held against
    # a program (they are rarely what breaks it), and nothing installed on the host is visible.
    options.check_untyped_defs = True
    options.strict_optional = False
    options.allow_redefinition = True
    options.no_site_packages = True
    options.python_executable = None
    options.follow_untyped_imports = True
    return options


def _prelude_text(known: SessionNames | None) -> str:
    """The prelude module: the guest helpers, ``_``, and the session's names (imports replayed, others Any)."""
    if known is not None:
        if known.prelude is None:  # made once per program that added names, read by every check
            known.prelude = _make_prelude(known.names)
        return known.prelude
    global _EMPTY_PRELUDE
    if _EMPTY_PRELUDE is None:
        _EMPTY_PRELUDE = _make_prelude({})
    return _EMPTY_PRELUDE


_EMPTY_PRELUDE: str | None = None


def _make_prelude(names: dict[str, str | None]) -> str:
    helpers = _program_names()
    lines = [
        "from typing import Any",
        f"from codemode_runtime import {', '.join(f'{n} as {n}' for n in helpers)}",
        "_: Any",
    ]
    for name, statement in sorted(names.items()):
        if name in helpers or name == "_":
            continue
        lines.append(statement if statement is not None else f"{name}: Any")
    return "\n".join(lines) + "\n"


def _sources(code: str, known: SessionNames | None) -> tuple[str, str, int | None]:
    """(prelude module, program with the prelude's import inserted, the inserted line or None)."""
    prelude = _prelude_text(known)
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return prelude, code, None  # mypy reports the syntax error on the program as sent
    names = _prelude_names(known)
    # After the docstring and ``from __future__`` imports, which must come first.
    after = 0
    for i, node in enumerate(tree.body):
        is_doc = i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        if is_doc or (isinstance(node, ast.ImportFrom) and node.module == "__future__"):
            after = node.end_lineno or after
        else:
            break
    lines = code.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    importing = f"from {PRELUDE} import {', '.join(names)}\n"
    lines.insert(after, importing)
    return prelude, "".join(lines), after + 1


_RUNTIME_NAMES: tuple[str, ...] = ()


def _program_names() -> tuple[str, ...]:
    """``codemode_runtime.PROGRAM_NAMES``, read from the guest package's source (it is not importable here)."""
    global _RUNTIME_NAMES
    if not _RUNTIME_NAMES:
        source = (paths.runtime_dir() / "codemode_runtime" / "__init__.py").read_text(encoding="utf-8")
        for node in ast.parse(source).body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "PROGRAM_NAMES" for t in node.targets
            ):
                _RUNTIME_NAMES = tuple(ast.literal_eval(node.value))
    return _RUNTIME_NAMES


def _prelude_names(known: SessionNames | None) -> list[str]:
    return sorted({*_program_names(), "_", *(known.names if known is not None else {})})


# -- the cache and the engine's entry point ---------------------------------------------------------------


class Preflight:
    """Warm checkers cached by the content of the stubs tree, and each session's names. One per engine."""

    def __init__(self, mode: Mode = "warn", *, skills: Path | None = None) -> None:
        self.mode: Mode = mode
        self._skills = skills
        self._sessions: dict[str, SessionNames] = {}

    async def check(self, code: str, *, stubs: Path, session: str | None = None, immutable: bool = False) -> Report:
        """Check ``code`` against the stubs tree ``stubs`` with ``session``'s names (a Report without
        diagnostics when the mode is ``off``). ``immutable``: the tree never changes once written (a published
        generation), so its digest is computed once, not read from every stub file on every check."""
        if self.mode == "off" or _changes_its_stubs(code):
            return Report(mode=self.mode)
        if len(code) > MAX_CHECKED_CHARS:
            return Report(mode=self.mode, skipped=f"{len(code):,} characters, over the {MAX_CHECKED_CHARS:,} checked")
        known = self._sessions.get(session) if session is not None else None
        try:
            checker = _known_checker(stubs, self._skills) if immutable else None
            found = checker.remembered(code, known) if checker is not None else None
            if found is None:  # one hop to a worker thread: the digest (when new) and the check
                found = await anyio.to_thread.run_sync(lambda: self._check(code, known, stubs, immutable))
        except (Exception, SystemExit):  # mypy ends an internal error with SystemExit
            # A fault of the checker is not the program's: it runs unchecked (and is never refused for it), and
            # the build, which may be inconsistent now, is dropped.
            logger.exception("preflight: the type check failed; running the program unchecked")
            drop_checker(stubs, skills=self._skills)
            return Report(mode=self.mode)
        return Report(tuple(found), self.mode)

    def _check(self, code: str, known: SessionNames | None, stubs: Path, immutable: bool) -> list[Diagnostic]:
        return checker_for(stubs, skills=self._skills, immutable=immutable).check(code, known)

    async def warm(self, stubs: Path) -> None:
        """Build the checker for ``stubs`` ahead of the first program (a failure is left to the first check)."""
        if self.mode != "off":
            try:
                await anyio.to_thread.run_sync(lambda: checker_for(stubs, skills=self._skills).warm())
            except (Exception, SystemExit):
                logger.warning("preflight: warming the type checker failed", exc_info=True)

    def remember(self, session: str, code: str) -> None:
        """Record the names ``code`` defined in ``session`` (after it ran, whatever its outcome)."""
        if self.mode != "off":
            names = self._sessions.setdefault(session, SessionNames())
            if names.last != code:  # the same program again binds the same names, in the same order
                names.add(code)

    def forget(self, session: str) -> None:
        """The session is closed: its names are gone with its interpreter."""
        self._sessions.pop(session, None)


def _changes_its_stubs(code: str) -> bool:
    """Whether ``code`` mounts or unmounts a service: it then imports stubs that the generation it would be
    checked against does not have (or no longer uses), so a check could only report false errors."""
    if "mount" not in code:  # most programs: no parse
        return False
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return False  # the checker reports it
    return any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("mount", "unmount")
        for node in ast.walk(tree)
    )


_checkers: OrderedDict[str, Checker] = OrderedDict()
_checkers_lock = threading.Lock()


@atexit.register
def _close_checkers() -> None:
    while _checkers:
        _checkers.popitem()[1].close()


def checker_for(stubs: Path, *, skills: Path | None = None, immutable: bool = False) -> Checker:
    """The warm checker of a stubs tree, shared by every engine of the process: keyed by the tree's
    content, so a new generation with the same stubs reuses it. The least recently used beyond :data:`KEEP`
    are closed. ``immutable``: the tree is a published generation; its digest is remembered by path."""
    key = _digest(stubs, skills, immutable)
    with _checkers_lock:
        checker = _checkers.get(key)
        if checker is None:
            checker = _checkers[key] = Checker(stubs, skills=skills)
        _checkers.move_to_end(key)
        while len(_checkers) > KEEP:
            _checkers.popitem(last=False)[1].close()
        return checker


def _known_checker(stubs: Path, skills: Path | None) -> Checker | None:
    """The warm checker of an immutable tree whose digest is already known, without touching the disk."""
    key = _digests.get((stubs, skills))
    if key is None:
        return None
    with _checkers_lock:
        return _checkers.get(key)


def drop_checker(stubs: Path, *, skills: Path | None = None) -> None:
    """Close the warm checker of a stubs tree, if there is one (the next check builds it anew)."""
    key = _digest(stubs, skills)
    with _checkers_lock:
        checker = _checkers.pop(key, None)
    if checker is not None:
        checker.close()


_digests: dict[tuple[Path, Path | None], str] = {}
"""Digests of immutable trees (published generations) by path: computed once each."""


def _digest(stubs: Path, skills: Path | None, immutable: bool = False) -> str:
    if immutable and (known := _digests.get((stubs, skills))) is not None:
        return known
    digest = hashlib.sha256(str(skills.resolve() if skills is not None else "").encode())
    for file in sorted(stubs.rglob("*.py")):
        digest.update(str(file.relative_to(stubs)).encode() + b"\0" + file.read_bytes() + b"\0")
    key = digest.hexdigest()
    if immutable:
        if len(_digests) > 256:  # generations come and go over a long serve
            _digests.clear()
        _digests[(stubs, skills)] = key
    return key


def write_typing_dir(stubs: Path, out: Path) -> None:
    """Write ``out/stubs`` (the checker's view of ``stubs``) and ``out/codemode_runtime`` (the guest runtime):
    one directory an editor's mypy (``mypy_path``) or pyright (``extraPaths``) is pointed at in its config.
    Built beside ``out`` and switched in by renames, so an editor never reads a half-written tree."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        _typing_view(stubs, fresh / "stubs")
        runtime = paths.runtime_dir() / "codemode_runtime"
        shutil.copytree(runtime, fresh / "codemode_runtime", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        (fresh / "README.txt").write_text(
            "Written by `codemode typing`; rewritten whole each time, do not edit.\n", encoding="utf-8"
        )
        old = out.with_name(f".{out.name}-old-{fresh.name}")
        if out.exists():
            out.rename(old)
        fresh.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise


def _typing_view(stubs: Path, view: Path) -> None:
    """A copy of the stubs tree for the checker. Each package ``__init__.py`` gets an ``__init__.pyi`` without
    its module ``__getattr__`` (the lazy tool import), so an unknown tool is an error rather than ``Any``."""
    shutil.copytree(stubs, view, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))
    for init in view.rglob("__init__.py"):
        try:
            tree = ast.parse(init.read_text(encoding="utf-8"))
        except (SyntaxError, ValueError, UnicodeDecodeError):
            # A package that cannot be imported has nothing to offer: checked as empty, programs using it get
            # their errors, and every other server's stubs are still checked (the whole check failed before).
            init.with_suffix(".pyi").write_text("", encoding="utf-8")
            continue
        kept = [
            node
            for node in tree.body
            if not (isinstance(node, ast.FunctionDef) and node.name in ("__getattr__", "__dir__"))
        ]
        if len(kept) != len(tree.body):
            init.with_suffix(".pyi").write_text(ast.unparse(ast.Module(kept, [])) + "\n", encoding="utf-8")
