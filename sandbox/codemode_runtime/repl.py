"""The session loop inside the sandbox: ask the host for code, run it, send back what happened.

Like a notebook kernel: one namespace lives for the whole session, so variables, imports and functions
defined by one execution are there for the next. The value of a final expression is returned (and kept
as ``_``), stdout/stderr are captured up to a cap, and a failing program comes back with a traceback that
shows the user's code and the stubs or skills it called, not this loop.
"""

from __future__ import annotations

import ast
import io
import linecache
import os
import re
import sys
import traceback
import types
from collections.abc import Callable
from typing import Any

from codemode_runtime import discovery, protocol, skills, transport

CodeCompiler = Callable[[Any, str, str], types.CodeType]
"""``compile``-compatible: (AST, filename, mode) → code object. The restricted child swaps it."""


HIDDEN_FRAME_DIRS = {os.path.dirname(os.path.abspath(__file__))}
"""Directories whose frames are left out of tracebacks (the runtime; a host adds its guard module's)."""

SHOWN_PATHS: dict[str, str] = {}
"""Directory → the name tracebacks show for it (``/stubs``): where a package is mounted from elsewhere
(the restricted child's host directories), the model sees the same paths as under WASM."""


class OutputLimitExceeded(BaseException):
    """Raised inside the program when it prints more than the cap.

    A ``BaseException``, so ``except Exception`` in user code does not swallow it and loop on.
    """


class _CappedWriter:
    """A text stream that keeps what is written, up to a cap, as UTF-8 in a bytearray it is given.

    Not an ``io.TextIOBase``: creating one of those costs more than a whole trivial execution under WASM,
    and ``print`` needs only ``write``/``flush``. The rest of the file API is here for code that asks.
    The buffer is the session's own, reused by every execution: under WASM the host knows its address and
    reads what a program printed straight from guest memory when the interpreter is stopped mid-run (a
    timeout, fuel, a trap), so that output is not lost with the instance.
    """

    encoding = "utf-8"
    errors = "strict"
    closed = False

    def __init__(self, name: str, cap: int, buffer: bytearray | None = None) -> None:
        self.name = name
        self.cap = cap
        self.buffer = buffer if buffer is not None else bytearray()
        self.size = 0

    def reset(self, cap: int) -> None:
        """Empty the buffer (in place: the host holds its address) for the next execution, capped at ``cap``."""
        del self.buffer[:]
        self.size = 0
        self.cap = cap

    def write(self, text: str) -> int:
        if type(text) is not str:
            if not isinstance(text, str):
                raise TypeError(f"write() argument must be str, not {type(text).__name__}")
            text = str(text)
        room = self.cap - self.size
        if len(text) > room:
            self.buffer += text[: max(room, 0)].encode("utf-8", "surrogatepass")
            self.size = self.cap
            raise OutputLimitExceeded(f"the program wrote more than {self.cap:,} characters to {self.name}")
        self.buffer += text.encode("utf-8", "surrogatepass")
        self.size += len(text)
        return len(text)

    def writelines(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def fileno(self) -> int:
        raise io.UnsupportedOperation(f"{self.name} is captured and has no file descriptor")

    def getvalue(self) -> str:
        return self.buffer.decode("utf-8", "surrogatepass")


def mount(name: str, path: str) -> None:
    """Make the directory ``path`` importable as package ``name`` (``stubs``, ``skills``)."""
    import importlib.util

    if path != f"/{name}":
        SHOWN_PATHS[os.path.abspath(path)] = f"/{name}"
    init = os.path.join(path, "__init__.py")
    if os.path.exists(init):
        spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[path])
        if spec is None or spec.loader is None:
            return
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    elif os.path.isdir(path):
        module = types.ModuleType(name)
        module.__path__ = [path]
        sys.modules[name] = module


_generation: str | None = None
"""The stubs generation the session imports from (None: the mounted tree itself)."""


def use_stubs(generation: object) -> None:
    """Point ``stubs`` and discovery at one generation under the stubs root (the host names it per run).

    Modules of the previous generation are dropped from ``sys.modules`` so the next import reads the new
    files; objects a program already holds (``from stubs import notes`` last time) keep working.
    """
    global _generation
    if generation is None or generation == _generation:
        return  # the common case, on every run: one comparison
    if not isinstance(generation, str) or not generation or "/" in generation or generation.startswith("."):
        return
    path = os.path.join(discovery.STUBS_ROOT, generation)
    _generation = generation
    for name in [m for m in sys.modules if m == "stubs" or m.startswith("stubs.")]:
        del sys.modules[name]
    discovery.use_dir(path)
    mount("stubs", path)


class Session:
    """One interpreter's worth of state and the logic to run a snippet in it."""

    def __init__(self, compiler: CodeCompiler = compile, namespace: dict[str, Any] | None = None) -> None:
        self.compiler = compiler
        self.namespace: dict[str, Any] = namespace if namespace is not None else {"__name__": "__main__"}
        self.counter = 0
        self.capture = (bytearray(), bytearray())
        """stdout and stderr of the running execution (see :class:`_CappedWriter`)."""
        # One pair for the session, reset per run: a writer a program kept from an earlier run then counts
        # against the same cap as print does.
        self.writers = (_CappedWriter("stdout", 0, self.capture[0]), _CappedWriter("stderr", 0, self.capture[1]))

    def run(self, code: str, output_cap: int) -> dict[str, Any]:
        """Run ``code``; return stdout, stderr, the final expression's value (JSON and repr) and any error.

        Fields that would be null, false or empty are left out (the host reads each with its default).
        """
        self.counter += 1
        filename = f"<execution-{self.counter}>"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        stdout, stderr = self.writers
        stdout.reset(output_cap)
        stderr.reset(output_cap)
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = stdout, stderr
        try:
            value = self._execute(code, filename)
            if value is None:
                result: dict[str, Any] = {}
            else:
                self.namespace["_"] = value
                result = _encode_value(value)
        except BaseException as exc:  # the program's failure is data, reported to the host
            result = {"error": _describe_error(exc)}
        finally:
            sys.stdout, sys.stderr = saved
        if stdout.buffer:
            result["stdout"] = stdout.getvalue()
        if stderr.buffer:
            result["stderr"] = stderr.getvalue()
        return result

    def _execute(self, code: str, filename: str) -> Any:
        # The source is split before the last line that starts at column 0 and compiled in two parts, so
        # no AST is built: under WASM, ast.parse and compiling its tree cost twice compiling the source.
        # The split is the program's own when the part before it compiles on its own (it ends outside any
        # bracket, string or continuation, so the rest starts a top-level statement); otherwise, or when
        # the rest is not one expression or one statement that is plainly not one, the AST path decides.
        if "\n" in code:
            start = _last_line(code)
            head, tail = code[:start], code[start:]
            if "\r" in head:
                return self._execute_tree(code, filename)  # a lone \r ends a line too: the padding would be off
            padded = "\n" * head.count("\n") + tail  # the line numbers of the whole program
        else:
            head, tail = "", code
            padded = code
        if _STATEMENT.match(tail) and ";" not in tail:
            # Plainly a statement: compiled as one straight away (a failed compile raises a SyntaxError,
            # which costs as much again under WASM).
            return self._execute_statement(head, padded, filename, code)
        try:
            last = self.compiler(padded, filename, "eval")
        except SyntaxError:
            # A starred expression (``*a, b``) is a statement only; ``;`` may end with an expression.
            if ";" in tail or "*" in tail:
                return self._execute_tree(code, filename)
            return self._execute_statement(head, padded, filename, code)
        if head and not self._execute_head(head, filename):
            return self._execute_tree(code, filename)
        return eval(last, self.namespace)

    def _execute_statement(self, head: str, padded: str, filename: str, code: str) -> Any:
        """Run a program whose last part (line-padded as ``padded``, after ``head``) is a statement."""
        if "__future__" in head:  # a __future__ import in one part would not reach the other
            return self._execute_tree(code, filename)
        try:
            last = self.compiler(padded, filename, "exec")
        except SyntaxError:
            return self._execute_tree(code, filename)
        if head and not self._execute_head(head, filename):
            return self._execute_tree(code, filename)
        exec(last, self.namespace)
        return None

    def _execute_head(self, head: str, filename: str) -> bool:
        """Run the program's lines before its last statement; False if they do not compile on their own."""
        try:
            code = self.compiler(head, filename, "exec")
        except SyntaxError:
            return False
        exec(code, self.namespace)
        return True

    def _execute_tree(self, code: str, filename: str) -> Any:
        tree = ast.parse(code, filename, "exec")
        last: ast.expr | None = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = tree.body[-1].value
            del tree.body[-1]
        if tree.body:
            exec(self.compiler(tree, filename, "exec"), self.namespace)
        if last is None:
            return None
        return eval(self.compiler(ast.Expression(last), filename, "eval"), self.namespace)


def _last_line(code: str) -> int:
    """Where the last line that starts with code at column 0 begins (0 when there is none)."""
    end = len(code)
    while end > 0:
        at = code.rfind("\n", 0, end)
        if code[at + 1 : at + 2] not in _NOT_A_START:
            return at + 1
        end = at
    return 0


_NOT_A_START = {"", " ", "\t", "\n", "\r", "\f", "#"}

_STATEMENT = re.compile(
    r"(?:for|while|if|with|try|def|class|import|from|return|del|pass|raise|global|nonlocal|assert|break"
    r"|continue|async)\b|@"
    r"|(?!lambda\b)[^\W\d]\w*+(?:\s*+,\s*+[^\W\d]\w*+)*+\s*+(?:=(?!=)|[-+*/%&|^@]=|//=|\*\*=|>>=|<<=|:)"
)
"""The start of a line that cannot be an expression: a keyword that begins only statements, a decorator, or
names followed by an assignment or an annotation (``lambda`` excepted: ``lambda: 0`` is an expression).
Anything else is tried as an expression first."""


_REPR_CHARS = 100_000
"""The most characters of a final value's ``repr`` sent back (a note says how much more there was)."""


def _encode_value(value: Any) -> dict[str, Any]:
    # JSON data travels as itself (the frame encoder checks it); anything else as its repr.
    if _is_json(value, 0):
        return {"has_value": True, "value": value, "json": True}
    shown = repr(value)
    if len(shown) > _REPR_CHARS:
        left = len(shown) - _REPR_CHARS
        shown = (
            f"{shown[:_REPR_CHARS]}… [repr cut: {left:,} of {len(shown):,} characters left out; print the parts "
            "you need, e.g. repr(_)[100000:200000]]"
        )
    return {"has_value": True, "value_repr": shown}


def _is_json(value: Any, depth: int) -> bool:
    # Exact types only (a str subclass or a namedtuple would lose what makes it special); plain tuples
    # are so common as a final expression that they travel as JSON arrays.
    # Loops, not all() over generators: under WASM a generator costs more than the checks it runs.
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return value == value and value not in (_INF, _MINUS_INF)
    if depth > 100:
        return False
    if kind is list or kind is tuple:
        for item in value:
            if not _is_json(item, depth + 1):
                return False
        return True
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not _is_json(item, depth + 1):
                return False
        return True
    return False


_INF = float("inf")
_MINUS_INF = float("-inf")


def _describe_error(exc: BaseException) -> dict[str, Any]:
    frames: list[str] = []
    if isinstance(exc, SyntaxError):
        pass
    else:
        # Only the user's code, stubs and skills: the runtime's own frames (this loop, the bridge client
        # raising ToolError, a host's guards) say nothing about the program.
        summary = traceback.StackSummary.from_list(
            [f for f in traceback.extract_tb(exc.__traceback__) if os.path.dirname(f.filename) not in HIDDEN_FRAME_DIRS]
        )
        frames = ["Traceback (most recent call last):\n", *map(_shown_path, summary.format())] if summary else []
    # What was raised is never cut away: its line (a message may be huge) keeps its head, where the type is,
    # and its end; the frames nearest the error fill what is left of 20,000 characters.
    raised = _middle_cut("".join(traceback.format_exception_only(type(exc), exc)), 10_000)
    stack = "".join(frames)
    room = 20_000 - len(raised) - 60  # 60: the note
    if len(stack) > room + 60:
        stack = f"[{len(stack) - room:,} characters of the traceback cut]\n" + stack[-room:]
    message = str(exc)
    kind = type(exc).__name__
    if type(exc).__module__ not in ("builtins", "__main__"):
        kind = f"{type(exc).__module__}.{kind}"
    return {"type": kind, "message": message[:10_000], "traceback": stack + raised}


def _middle_cut(text: str, limit: int) -> str:
    """``text`` in at most about ``limit`` characters: its head and its tail, a note of what was cut between."""
    if len(text) <= limit:
        return text
    keep = max(limit - 60, 2) // 2
    return f"{text[:keep]} … [{len(text) - 2 * keep:,} characters cut] … {text[-keep:]}"


def _shown_path(entry: str) -> str:
    # A formatted frame starts with '  File "<path>", line N'.
    for directory, shown in SHOWN_PATHS.items():
        prefix = f'  File "{directory}{os.sep}'
        if entry.startswith(prefix):
            return f'  File "{shown}/{entry[len(prefix) :]}'
    return entry


RunHook = Callable[[dict[str, Any]], None]
"""Called with each ``run`` frame before its code runs."""


def serve(
    compiler: CodeCompiler = compile, namespace: dict[str, Any] | None = None, *, before_run: RunHook | None = None
) -> None:
    """Run the session loop until the host says to stop.

    ``before_run`` sees each (checked) ``run`` frame first: the restricted child arms its resource limits
    from the frame's ``cpu_s`` and ``memory_bytes``. If it raises, the execution fails with that error.
    """
    session = Session(compiler, namespace)
    # id() is the object's address in CPython: the host reads the buffers from there after a trap.
    message = protocol.hello(capture=[id(buffer) for buffer in session.capture])
    while True:
        reply = transport.request(message)
        if reply.get("op") != protocol.OP_RUN:
            return  # exit, or a host that no longer serves this session
        try:
            # The guest trusts its host's frames (the host checks the guest's): no field-by-field check here,
            # this runs before every execution.
            use_stubs(reply.get("stubs"))
            skills.use_revision(reply.get("skills"))
            if before_run is not None:
                before_run(reply)
            result = session.run(reply["code"], reply["output_cap"])
        except BaseException as exc:  # never let the loop die on a bad snippet
            result = {"error": _describe_error(exc)}
        message = {"op": protocol.OP_NEXT, "result": result}


def _timed_sleep() -> Callable[[float], None]:
    """``time.sleep`` that raises ``TimeoutError`` when the execution's wall-time limit ends the sleep.

    The host fails the sleep's ``poll_oneoff`` at the deadline (``ETIMEDOUT``), but wasi-libc's
    ``clock_nanosleep`` reports every failure as ``ENOTSUP``: say what happened instead.
    """
    import errno
    import time

    sleep = time.sleep

    def timed_sleep(seconds: float, /) -> None:
        try:
            sleep(seconds)
        except OSError as exc:
            if exc.errno != errno.ENOTSUP:
                raise
            raise TimeoutError(
                f"time.sleep({seconds!r}) was cut short by the execution's wall-time limit"
            ) from None

    timed_sleep.__doc__ = sleep.__doc__
    return timed_sleep


def boot() -> None:
    """Entry point under WASM: mount the packages, pre-import what programs use, then serve."""
    sys.setrecursionlimit(int(os.environ.get("CODEMODE_RECURSION_LIMIT", "600")))
    import time

    time.sleep = _timed_sleep()  # type: ignore[assignment]
    try:
        os.chdir("/scratch")
    except OSError:
        pass
    mount("stubs", "/stubs")
    skills.install("/skills")
    # Pre-import the stdlib modules programs reach for, so the first execution does not pay for them.
    import collections  # noqa: F401
    import datetime  # noqa: F401
    import itertools  # noqa: F401
    import math  # noqa: F401
    import re  # noqa: F401
    import statistics  # noqa: F401

    import codemode_runtime

    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    for name in codemode_runtime.PROGRAM_NAMES:
        namespace[name] = getattr(codemode_runtime, name)
    serve(compile, namespace)
