"""The RestrictedPython child process: one session's interpreter for :mod:`codemode.executors.restricted`.

Started by the host as ``python -I restricted_child.py RUNTIME_DIR STUBS_DIR SKILLS_DIR MEMORY_BYTES`` with a
minimal environment and the session's scratch directory as its working directory. It imports only the
stdlib, RestrictedPython and the guest runtime (``codemode_runtime``), so it is run by path rather than
with ``-m``: importing the ``codemode`` package would pull in the MCP client stack (~0.5 s and ~60 MB of
address space per child) for nothing.

Order of operations matters:

1. the frame channel moves to private descriptors and fd 0/1 point at ``/dev/null``, so nothing the
   program (or a C extension) writes to stdout can corrupt the channel;
2. the packages and the allowed stdlib modules are imported, the guarded namespace is built;
3. the address space at that point is the *baseline*; ``RLIMIT_AS`` is set to baseline + the memory
   limit. Measured: ~25 MB (VmSize 26,032 kB, RSS ~21 MB) for CPython 3.11 on Linux x86-64 with these
   imports; it is measured per child from ``/proc/self/status`` because it varies with the interpreter
   build, the shared libraries (OpenSSL for hashlib) and the stubs;
4. ``repl.serve`` runs the session loop. Before each execution (its ``before_run`` hook, from the ``run``
   frame) the CPU limit is re-armed to the CPU already used plus the execution's wall-time budget (the
   host's wall clock is the real limit; this is the backstop if the host is gone).

The guards are RestrictedPython's (compile-time: no ``_``-prefixed names or attributes, no
exec/eval; run-time: ``_getattr_``, ``_write_`` ...) plus what this file adds: a whitelist ``__import__``
that hands out trimmed copies of modules with escape hatches (``operator.attrgetter``,
``string.Formatter``, ``typing.get_type_hints``, ``functools.singledispatch``), an attribute guard that
never returns a non-whitelisted module, frame, code object or metaclass, a ``type`` that cannot build
classes (use ``class``), a ``dataclass`` that checks field names (its generated ``__init__`` is ``exec``'d
source), a ``copy`` that refuses user-defined ``__reduce__`` (it would be an unguarded ``setattr``), and
restricted compilation for skills.
"""

from __future__ import annotations

import ast
import builtins
import collections
import copy
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import keyword
import math
import operator
import os
import resource
import signal
import sys
import types
import warnings
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from RestrictedPython.compile import compile_restricted
from RestrictedPython.Guards import (
    full_write_guard,
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    raise_,
    safe_builtins,
    safer_getattr,
)
from RestrictedPython.transformer import (
    INSPECT_ATTRIBUTES,
    IOPERATOR_TO_STR,
    RestrictingNodeTransformer,
    copy_locations,
)

SAFE_STDLIB = frozenset(
    {
        "json", "math", "re", "statistics", "itertools", "functools", "collections", "datetime", "decimal",
        "fractions", "random", "string", "textwrap", "typing", "dataclasses", "enum", "operator", "heapq",
        "bisect", "base64", "hashlib", "uuid", "csv", "copy", "pprint",
    }
)  # fmt: skip
"""Stdlib modules a program may import (and their submodules, e.g. ``collections.abc``)."""

PACKAGES = ("stubs", "skills")
"""Packages a program may import with every submodule: the tool stubs and the saved skills."""

NOFILE = 64
FSIZE_BYTES = 64 * 1024 * 1024
_BASELINE_FALLBACK = 64 * 1024 * 1024
"""Used when ``/proc`` is unavailable; a generous figure for CPython with these imports."""

_baseline = _BASELINE_FALLBACK


# -- limits ------------------------------------------------------------------------------------------


def address_space() -> int:
    """Current virtual memory size (``VmSize``) of this process in bytes, or 0 if unknown."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _set_soft(which: int, soft: int) -> None:
    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(which, (soft, hard))


def apply_static_limits(memory_bytes: int) -> None:
    """Descriptor, file-size, core and process limits, and the first address-space limit."""
    global _baseline
    _baseline = address_space() or _BASELINE_FALLBACK
    for which, value in (
        (resource.RLIMIT_NOFILE, NOFILE),
        (resource.RLIMIT_FSIZE, FSIZE_BYTES),
        (resource.RLIMIT_CORE, 0),
        # No child processes: nothing legitimate forks (uuid's MAC probing falls back to random).
        (resource.RLIMIT_NPROC, 0),
    ):
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            _set_soft(which, value)
    # A write past RLIMIT_FSIZE should fail with EFBIG, not kill the session.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    arm_execution_limits(memory_bytes, None)


def arm_execution_limits(memory_bytes: int, cpu_s: float | None) -> None:
    """Before an execution: address space = baseline + ``memory_bytes``; CPU = used so far + ``cpu_s``.

    Only soft limits move (the hard limits stay open so they can be raised again for the next run); the
    program cannot call ``setrlimit`` itself.
    """
    _set_soft(resource.RLIMIT_AS, _baseline + memory_bytes)
    if cpu_s is not None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        _set_soft(resource.RLIMIT_CPU, math.ceil(usage.ru_utime + usage.ru_stime + cpu_s) + 1)


# -- the guards --------------------------------------------------------------------------------------

_user_classes: weakref.WeakSet[type] = weakref.WeakSet()
"""Classes defined by ``class`` statements in user code or skills: their instances are writable."""

_WRITABLE = (dict, list, bytearray, collections.deque)
READABLE_DUNDERS = frozenset({"__name__", "__qualname__", "__doc__"})
"""Dunder attributes programs may read (``type(x).__name__`` is common): they are only ever strings."""
_FORBIDDEN_TYPES = (types.FrameType, types.CodeType, types.TracebackType)
_safe_modules: dict[str, types.ModuleType] = {}


def is_allowed_module(name: str) -> bool:
    """Whether ``import name`` is allowed (whitelisted stdlib, stubs, skills, and their submodules)."""
    root = name.partition(".")[0]
    return root in SAFE_STDLIB or root in PACKAGES


class SafeTypeMeta(type):
    """Makes :class:`SafeType` pass for ``type`` in ``isinstance``/``issubclass`` checks."""

    def __instancecheck__(cls, instance: Any) -> bool:
        return isinstance(instance, type)

    def __subclasscheck__(cls, subclass: Any) -> bool:
        return isinstance(subclass, type) and issubclass(subclass, type)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        # type(name, bases, dict) would create classes with arbitrary dunders (a __reduce__ or
        # __annotations__ that host code trusts); a class statement goes through the guards instead.
        if len(args) != 1 or kwargs:
            raise TypeError("type() takes exactly one argument here; define classes with a class statement")
        return safe_value(type(args[0]))


class SafeType(metaclass=SafeTypeMeta):
    """What user code gets for ``type``: ``type(x)`` only."""


SafeType.__name__ = SafeType.__qualname__ = "type"
SafeType.__module__ = "builtins"


def safe_value(value: Any) -> Any:
    """Check an object about to be handed to user code: no foreign modules, frames, code or metaclasses."""
    if isinstance(value, types.ModuleType):
        return safe_module(value)
    if isinstance(value, _FORBIDDEN_TYPES):
        raise AttributeError(f"access to {type(value).__name__} objects is not allowed")
    if isinstance(value, type) and issubclass(value, type):
        if value is type:
            return SafeType
        if value is SafeTypeMeta:
            return SafeType
        raise AttributeError(f"access to the metaclass {value.__name__} is not allowed")
    return value


def safe_module(module: types.ModuleType) -> types.ModuleType:
    """The version of ``module`` user code may hold: a trimmed copy for some, the module for the rest."""
    name = module.__name__
    if isinstance(module, _TrimmedModule) or module in _safe_modules.values():
        return module
    if not is_allowed_module(name):
        raise ImportError(f"module {name!r} is not available in the restricted sandbox")
    return _safe_modules.get(name, module)


class _TrimmedModule(types.ModuleType):
    pass


def _trimmed(module: types.ModuleType, drop: Sequence[str], replace: dict[str, Any] | None = None) -> types.ModuleType:
    copy_ = _TrimmedModule(module.__name__, module.__doc__)
    for key, value in vars(module).items():
        if not key.startswith("_") and key not in drop:
            setattr(copy_, key, value)
    for key, value in (replace or {}).items():
        setattr(copy_, key, value)
    return copy_


def guarded_getattr(obj: Any, name: str, default: Any = raise_) -> Any:
    """``obj.name`` and ``getattr`` for user code: RestrictedPython's checks plus :func:`safe_value`.

    Without ``default`` a missing attribute raises (RestrictedPython's own default would return None).
    """
    if name in READABLE_DUNDERS:
        value = getattr(obj, name) if default is raise_ else getattr(obj, name, default)
        # A class can set __doc__ to anything: hand out strings only.
        return value if isinstance(value, str) else None
    if name == "mro" and isinstance(obj, type):
        # mro() of a metaclass hands out ``type`` itself.
        raise AttributeError('"mro" is not available in the restricted sandbox')
    return safe_value(safer_getattr(obj, name, default))  # type: ignore[no-untyped-call]


_MISSING = object()


def user_hasattr(obj: Any, name: str) -> bool:
    """``hasattr`` through the guard: a blocked attribute does not exist."""
    try:
        return guarded_getattr(obj, name, _MISSING) is not _MISSING
    except (AttributeError, ImportError, NotImplementedError, TypeError):
        return False


def guarded_getitem(obj: Any, key: Any) -> Any:
    """``obj[key]`` for user code."""
    return safe_value(obj[key])


def guarded_write(obj: Any) -> Any:
    """Attribute/item assignment target: plain containers and user-defined classes and instances only."""
    if isinstance(obj, _WRITABLE) or type(obj) in _user_classes or (isinstance(obj, type) and obj in _user_classes):
        return obj
    return full_write_guard(obj)


def user_setattr(obj: Any, name: str, value: Any) -> None:
    """``setattr`` through the write guard; ``_`` names are refused like ``obj._x = ...`` is."""
    if not isinstance(name, str) or name.startswith("_"):
        raise AttributeError(f'"{name}" is an invalid attribute name')
    setattr(guarded_write(obj), name, value)


def user_delattr(obj: Any, name: str) -> None:
    """``delattr`` through the write guard."""
    if not isinstance(name, str) or name.startswith("_"):
        raise AttributeError(f'"{name}" is an invalid attribute name')
    delattr(guarded_write(obj), name)


_INPLACE: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow, "<<=": operator.ilshift,
    ">>=": operator.irshift, "|=": operator.ior, "^=": operator.ixor, "&=": operator.iand,
    "@=": operator.imatmul,
}  # fmt: skip


def inplacevar(op: str, target: Any, value: Any) -> Any:
    """``x op= y`` for names."""
    return _INPLACE[op](target, value)


def inplace_item(obj: Any, key: Any, op: str, value: Any) -> None:
    """``obj[key] op= value`` (RestrictedPython refuses it; :class:`Policy` rewrites it to this)."""
    guarded_write(obj)[key] = _INPLACE[op](guarded_getitem(obj, key), value)


def inplace_attr(obj: Any, name: str, op: str, value: Any) -> None:
    """``obj.name op= value``."""
    setattr(guarded_write(obj), name, _INPLACE[op](guarded_getattr(obj, name), value))


def apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``f(*args, **kwargs)`` (RestrictedPython routes star-calls through ``_apply_``)."""
    return func(*args, **kwargs)


def build_class(func: Callable[..., Any], name: str, *bases: Any, **kwargs: Any) -> Any:
    """``__build_class__`` that remembers the class as user-defined (so ``self.x = ...`` is allowed)."""
    cls = builtins.__build_class__(func, name, *bases, **kwargs)
    if isinstance(cls, type):
        _user_classes.add(cls)
    return cls


class Printer:
    """``print`` for user code: writes to ``sys.stdout``, which the session loop captures and caps."""

    def __init__(self, getattr_: Any = None) -> None:
        self._getattr = getattr_

    def _call_print(self, *objects: Any, **kwargs: Any) -> None:
        target = kwargs.get("file")
        if target is None:
            kwargs["file"] = sys.stdout
        else:
            guarded_getattr(target, "write")
        # This *is* the program's print(): the real one, with sep/end/flush, into the captured stdout.
        builtins.print(*objects, **kwargs)  # noqa: T201

    def __call__(self) -> str:
        # RestrictedPython's ``printed``: output goes straight to stdout here, nothing is collected.
        return ""


def guarded_import(
    name: str,
    globals: Any = None,
    locals: Any = None,
    fromlist: Sequence[str] | None = (),
    level: int = 0,
) -> Any:
    """``__import__`` for user code: whitelisted modules only, handed out through :func:`safe_module`."""
    if level:
        raise ImportError("relative imports are not allowed in the restricted sandbox")
    if not isinstance(name, str) or not is_allowed_module(name):
        raise ImportError(
            f"import of {name!r} is not allowed in the restricted sandbox (allowed: stubs, skills, "
            f"{', '.join(sorted(SAFE_STDLIB))})"
        )
    module = builtins.__import__(name, None, None, fromlist, 0)
    if not fromlist:
        return safe_module(module)
    # ``from m import x`` reads ``x`` from what we return without the attribute guard: return a
    # namespace holding only checked names.
    target = sys.modules[name]
    view = _TrimmedModule(name)
    for item in fromlist:
        if not isinstance(item, str) or item.startswith("_"):
            continue
        source = _safe_modules.get(name, target)
        if hasattr(source, item):
            setattr(view, item, safe_value(getattr(source, item)))
    return view


# -- trimmed stdlib modules -------------------------------------------------------------------------


def _checked_dataclass(cls: Any = None, /, **kwargs: Any) -> Any:
    import dataclasses

    def wrap(target: Any) -> Any:
        # dataclass builds __init__ & co. as source text from the field names and exec's it.
        for klass in getattr(target, "__mro__", (target,)):
            names = list(vars(klass).get("__annotations__", {}))
            fields = vars(klass).get("__dataclass_fields__", {})
            names += list(fields) + [getattr(f, "name", None) for f in fields.values()]
            for field_name in names:
                if field_name is None:
                    continue
                if not isinstance(field_name, str) or not field_name.isidentifier() or keyword.iskeyword(field_name):
                    raise TypeError(f"invalid dataclass field name {field_name!r}")
        return dataclasses.dataclass(target, **kwargs)

    return wrap if cls is None else wrap(cls)


def _is_trusted_code(method: Any) -> bool:
    # C methods, or Python functions whose globals are those of a whitelisted stdlib module (a module
    # name can be faked with ``__module__``, a function's globals cannot).
    function = getattr(method, "__func__", method)
    if function is None or isinstance(
        function, (types.BuiltinFunctionType, types.WrapperDescriptorType, types.MethodDescriptorType)
    ):
        return True
    module_globals = getattr(function, "__globals__", None)
    if not isinstance(module_globals, dict):
        return False
    name = str(module_globals.get("__name__", ""))
    module = sys.modules.get(name)
    return module is not None and vars(module) is module_globals and name.partition(".")[0] in {"copyreg", *SAFE_STDLIB}


def _install_copy_guard() -> None:
    # copy.copy/deepcopy rebuild objects from __reduce_ex__ and then setattr() whatever "state" it
    # returned on whatever object it built: with a user-defined __reduce__ that is an unguarded setattr.
    real = copy._reconstruct  # type: ignore[attr-defined]

    def reconstruct(x: Any, memo: Any, func: Any, args: Any, *rest: Any, **kwargs: Any) -> Any:
        for name in ("__reduce_ex__", "__reduce__"):
            owner = next((k for k in type(x).__mro__ if name in vars(k)), object)
            if not _is_trusted_code(vars(owner).get(name)):
                raise TypeError(f"copying {type(x).__name__} objects with a custom {name} is not supported here")
        return real(x, memo, func, args, *rest, **kwargs)

    copy._reconstruct = reconstruct  # type: ignore[attr-defined]


def _build_safe_modules() -> None:
    import dataclasses
    import functools
    import string
    import typing

    _safe_modules["operator"] = _trimmed(operator, ("attrgetter", "methodcaller"))
    _safe_modules["string"] = _trimmed(string, ("Formatter",))
    # get_type_hints eval()s string annotations unguarded; singledispatch calls it on registration.
    _safe_modules["typing"] = _trimmed(typing, ("get_type_hints",))
    _safe_modules["functools"] = _trimmed(functools, ("singledispatch", "singledispatchmethod"))
    _safe_modules["dataclasses"] = _trimmed(dataclasses, (), {"dataclass": _checked_dataclass})
    # copyreg's dispatch table decides how copy rebuilds objects: not for user code to extend.
    _safe_modules["copy"] = _trimmed(copy, ("dispatch_table",))
    _install_copy_guard()


# -- compilation -------------------------------------------------------------------------------------


class Policy(RestrictingNodeTransformer):
    """RestrictedPython's policy, plus ``obj[k] += v`` and ``obj.attr += v`` (common in real programs)."""

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        """Reading ``__name__``/``__qualname__``/``__doc__`` is allowed; everything else as RestrictedPython."""
        if node.attr in READABLE_DUNDERS and isinstance(node.ctx, ast.Load):
            call = ast.Call(
                func=ast.Name("_getattr_", ast.Load()),
                args=[self.visit(node.value), ast.Constant(node.attr)],
                keywords=[],
            )
            copy_locations(call, node)
            return call
        return super().visit_Attribute(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> Any:
        """``x: int = 1`` (and class fields for dataclasses); ``obj.x: int = 1`` becomes a plain assignment.

        Annotations are evaluated through the guards like any expression; nothing offered to user code
        evaluates string annotations (``typing.get_type_hints`` is withheld).
        """
        if isinstance(node.target, ast.Name):
            return self.node_contents_visit(node)
        if node.value is None:
            return None
        assign = ast.Assign(targets=[node.target], value=node.value)
        copy_locations(assign, node)
        return self.visit(assign)

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        target = node.target
        if isinstance(target, ast.Subscript) and not isinstance(target.slice, ast.Slice):
            obj = self.visit(target.value)
            helper, key = "_inplace_item_", self.visit(target.slice)
        elif isinstance(target, ast.Attribute):
            if target.attr.startswith("_") or target.attr in INSPECT_ATTRIBUTES:
                self.error(node, f'"{target.attr}" is an invalid attribute name because it starts with "_"')
                return node
            obj = self.visit(target.value)
            helper, key = "_inplace_attr_", ast.Constant(target.attr)
        else:
            return super().visit_AugAssign(node)
        operator = ast.Constant(IOPERATOR_TO_STR[type(node.op)])
        call = ast.Call(
            func=ast.Name(helper, ast.Load()),
            args=[obj, key, operator, self.visit(node.value)],
            keywords=[],
        )
        statement = ast.Expr(call)
        copy_locations(statement, node)
        return statement


def compile_user(source: Any, filename: str, mode: str) -> types.CodeType:
    """The session loop's compiler: RestrictedPython with :class:`Policy` (accepts source or an AST)."""
    with warnings.catch_warnings():
        # "Prints, but never reads 'printed'" and friends: noise for our use of print.
        warnings.simplefilter("ignore", SyntaxWarning)
        try:
            return compile_restricted(source, filename, mode, policy=Policy)  # type: ignore[arg-type]
        except SyntaxError as exc:
            # RestrictedPython raises SyntaxError(tuple_of_messages); make it read like one error.
            if exc.args and isinstance(exc.args[0], (tuple, list)):
                raise SyntaxError("; ".join(str(m) for m in exc.args[0])) from None
            raise


def make_builtins() -> dict[str, Any]:
    """The ``__builtins__`` of user code and skills: safe builtins, wrappers and RestrictedPython's hooks."""
    table = dict(safe_builtins)
    for name in (
        "sorted", "min", "max", "sum", "any", "all", "enumerate", "zip", "map", "filter", "reversed", "list",
        "dict", "set", "frozenset", "tuple", "iter", "next", "object", "super", "property", "staticmethod",
        "classmethod", "bytes", "bytearray", "format", "bin", "ascii", "dir", "NotImplemented",
        "StopAsyncIteration", "RecursionError", "TimeoutError", "ConnectionError", "FileNotFoundError",
        "PermissionError", "ExceptionGroup", "BaseExceptionGroup", "ModuleNotFoundError", "LookupError",
    ):  # fmt: skip
        table[name] = getattr(builtins, name)
    table.update(
        {
            "__build_class__": build_class,
            "__import__": guarded_import,
            "__metaclass__": type,
            "type": SafeType,
            "getattr": guarded_getattr,
            "hasattr": user_hasattr,
            "setattr": user_setattr,
            "delattr": user_delattr,
            "_getattr_": guarded_getattr,
            "_getitem_": guarded_getitem,
            "_getiter_": iter,
            "_write_": guarded_write,
            "_inplacevar_": inplacevar,
            "_inplace_item_": inplace_item,
            "_inplace_attr_": inplace_attr,
            "_apply_": apply,
            "_print_": Printer,
            "_unpack_sequence_": guarded_unpack_sequence,
            "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        }
    )
    return table


def make_globals(name: str, restricted_builtins: dict[str, Any]) -> dict[str, Any]:
    """Fresh module globals for restricted code."""
    return {
        "__name__": name,
        "__builtins__": restricted_builtins,
        "__metaclass__": type,
        "_print": Printer(),
    }


# -- skills: imported as restricted code -------------------------------------------------------------


class _RestrictedLoader(importlib.abc.Loader):
    def __init__(self, path: str, restricted_builtins: dict[str, Any]) -> None:
        self.path = path
        self.builtins = restricted_builtins

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        with open(self.path, encoding="utf-8") as fh:
            source = fh.read()
        code = compile_user(ast.parse(source, self.path, "exec"), self.path, "exec")
        module.__dict__.update(make_globals(module.__name__, self.builtins))
        exec(code, module.__dict__)


class SkillFinder(importlib.abc.MetaPathFinder):
    """Finds ``skills`` and ``skills.*`` in the skills directory and loads them through the guards.

    Skills are code the model saved earlier: importing them unrestricted would be an escape.
    """

    def __init__(self, root: str, restricted_builtins: dict[str, Any]) -> None:
        self.root = root
        self.builtins = restricted_builtins

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        parts = fullname.split(".")
        if parts[0] != "skills":
            return None
        if any(not p.isidentifier() for p in parts):
            return None
        base = os.path.join(self.root, *parts[1:])
        init = os.path.join(base, "__init__.py")
        if os.path.isdir(base):
            if os.path.isfile(init):
                loader: importlib.abc.Loader = _RestrictedLoader(init, self.builtins)
                spec = importlib.util.spec_from_file_location(
                    fullname, init, loader=loader, submodule_search_locations=[base]
                )
            else:
                spec = importlib.machinery.ModuleSpec(fullname, None, is_package=True)
                spec.submodule_search_locations = [base]
            return spec
        if os.path.isfile(base + ".py"):
            return importlib.util.spec_from_file_location(
                fullname, base + ".py", loader=_RestrictedLoader(base + ".py", self.builtins)
            )
        return None


# -- main --------------------------------------------------------------------------------------------


def _take_channel() -> tuple[int, int]:
    # The frames travel on private duplicates; fd 0/1 become /dev/null so stray writes go nowhere.
    read_fd, write_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    return read_fd, write_fd


class ExecutionStopped(BaseException):
    """Raised in the program when the host stops it at its wall-time limit (SIGUSR1).

    The session loop then reports what the program printed so far, before the host kills the child.
    """


def _stop_execution(signum: int, frame: object) -> None:
    raise ExecutionStopped("the host stopped the execution at its wall-time limit")


def main(argv: list[str]) -> None:
    """Set up the guarded session and serve it until the host says stop or goes away."""
    runtime_dir, stubs_dir, skills_dir, memory_bytes = argv[1], argv[2], argv[3], int(argv[4])
    read_fd, write_fd = _take_channel()
    sys.path.insert(0, runtime_dir)

    import codemode_runtime
    from codemode_runtime import repl, transport

    transport.use_pipes(read_fd, write_fd)
    # The guards' own frames (host paths) say nothing about the user's code: keep them out of tracebacks.
    repl.HIDDEN_FRAME_DIRS.add(os.path.dirname(os.path.abspath(__file__)))
    restricted_builtins = make_builtins()
    repl.mount("stubs", stubs_dir)
    repl.SHOWN_PATHS[os.path.abspath(skills_dir)] = "/skills"
    sys.meta_path.insert(0, SkillFinder(skills_dir, restricted_builtins))
    for name in sorted(SAFE_STDLIB):
        importlib.import_module(name)
    import collections.abc  # noqa: F401  # pre-imported so the baseline includes it

    _build_safe_modules()

    # The session's namespace is a real module's dict, registered as __main__, so stdlib code that
    # looks a class's module up in sys.modules finds the user's namespace, not this file's globals.
    main_module = types.ModuleType("__main__")
    namespace = main_module.__dict__
    namespace.update(make_globals("__main__", restricted_builtins))
    for name in codemode_runtime.PROGRAM_NAMES:
        namespace[name] = getattr(codemode_runtime, name)
    sys.modules["__main__"] = main_module

    apply_static_limits(memory_bytes)

    def arm(run: dict[str, Any]) -> None:
        arm_execution_limits(int(run.get("memory_bytes", memory_bytes)), float(run.get("cpu_s", 30.0)))

    signal.signal(signal.SIGUSR1, _stop_execution)
    try:
        repl.serve(compile_user, namespace, before_run=arm)
    except transport.TransportError:
        pass  # the host went away: nothing to report to


if __name__ == "__main__":
    main(sys.argv)
