"""What user code is handed: the guards RestrictedPython calls, ``type``, ``print`` and ``__import__``.

Every value that reaches user code from an attribute, an item or an import passes :func:`safe_value`: no
module that is not whitelisted (and for some modules only a trimmed copy, see :mod:`.modules`), no frame,
code object or traceback, no metaclass. Writes go through :func:`guarded_write`: plain containers and
classes defined by user code only.

The builtins these guards call are bound here at import, before any user code runs.
"""

from __future__ import annotations

import builtins
import collections
import operator
import sys
import types
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from RestrictedPython.Guards import full_write_guard, raise_, safer_getattr

SAFE_STDLIB = frozenset(
    {
        "json", "math", "re", "statistics", "itertools", "functools", "collections", "datetime", "decimal",
        "fractions", "random", "string", "textwrap", "typing", "dataclasses", "enum", "operator", "heapq",
        "bisect", "base64", "hashlib", "uuid", "csv", "copy", "pprint", "time",
    }
)  # fmt: skip
"""Stdlib modules a program may import (and their submodules, e.g. ``collections.abc``)."""

PACKAGES = ("stubs", "skills")
"""Packages a program may import with every submodule: the tool stubs and the saved skills."""

_BUILTINS: dict[str, Any] = dict(vars(builtins))
"""The builtins as they were when the guards were imported, before any user code ran."""


def pin_builtins(namespace: dict[str, Any]) -> None:
    """Bind every public builtin into a module's globals, where its functions look names up first.

    The guards (and the library code they call) then keep working with the real ``isinstance``,
    ``getattr`` ... even if something were to rebind ``builtins.isinstance`` (``enum.global_enum``
    with ``module='builtins'`` once could).
    """
    for name, value in _BUILTINS.items():
        if not name.startswith("_"):
            namespace.setdefault(name, value)


pin_builtins(globals())

# Bound once, before any user code runs.
_import = builtins.__import__
_build_class = builtins.__build_class__
_print = builtins.print

_user_classes: weakref.WeakSet[type] = weakref.WeakSet()
"""Classes defined by ``class`` statements in user code or skills: their instances are writable."""

_WRITABLE = (dict, list, bytearray, collections.deque)
READABLE_DUNDERS = frozenset({"__name__", "__qualname__", "__doc__"})
"""Dunder attributes programs may read (``type(x).__name__`` is common): they are only ever strings."""
_FORBIDDEN_TYPES = (types.FrameType, types.CodeType, types.TracebackType)
safe_modules: dict[str, types.ModuleType] = {}
"""The copy handed out for each whitelisted stdlib module, by name (filled by :func:`.modules.build_safe_modules`,
then as modules are first handed out)."""
_copier: Callable[[types.ModuleType], types.ModuleType] | None = None
"""Makes the copy of a whitelisted stdlib module loaded after the sweep (set by :mod:`.modules`)."""


def set_copier(copier: Callable[[types.ModuleType], types.ModuleType]) -> None:
    """How :func:`safe_module` copies a whitelisted stdlib module it has no copy of yet."""
    global _copier
    _copier = copier


def is_name(value: Any) -> bool:
    """Whether ``value`` is a plain ``str``: a subclass of the program's could lie to a guard through any method
    it overrides (``startswith``, ``partition``, ``isidentifier``), then be used as the name it really is."""
    return type(value) is str


def is_allowed_module(name: str) -> bool:
    """Whether ``import name`` is allowed (whitelisted stdlib, stubs, skills, and their submodules)."""
    if not is_name(name):
        return False
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


def is_user_class(cls: Any) -> bool:
    """Whether ``cls`` was defined by user code (a ``class`` statement, or a checked ``make_dataclass``)."""
    return isinstance(cls, type) and cls in _user_classes


def register_user_class(cls: Any) -> None:
    """Count a class built for user code by a checked library call as user-defined."""
    if isinstance(cls, type):
        _user_classes.add(cls)


def is_program_function(func: Any) -> bool:
    """Whether ``func`` is a function defined by user code (its globals are a restricted namespace)."""
    if not isinstance(func, types.FunctionType):
        return False
    table = func.__globals__.get("__builtins__")
    return isinstance(table, dict) and table.get("_getattr_") is guarded_getattr


def is_program_module(name: Any) -> bool:
    """Whether ``name`` names a module of user code (``__main__``, a skill): a restricted namespace."""
    module = sys.modules.get(name) if is_name(name) else None
    table = vars(module).get("__builtins__") if module is not None else None
    return isinstance(table, dict) and table.get("_getattr_") is guarded_getattr


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
    """The version of ``module`` user code may hold: a copy of its public names for a whitelisted stdlib
    module (trimmed of what :mod:`.modules` drops), the module itself for ``stubs`` and ``skills``.

    Never the stdlib module itself: whatever a program might one day write on what it holds (a
    ``__class__``, an attribute) lands on the copy, which has no ``__builtins__`` and no private names.
    """
    name = module.__name__
    if isinstance(module, _TrimmedModule) or module in safe_modules.values():
        return module
    if not is_allowed_module(name):
        raise ImportError(f"module {name!r} is not available in the restricted sandbox")
    if name.partition(".")[0] not in SAFE_STDLIB:
        return module
    copy_ = safe_modules.get(name)
    if copy_ is None:
        if _copier is None:
            raise ImportError(f"module {name!r} is not available yet")
        copy_ = safe_modules[name] = _copier(module)
    return copy_


class _TrimmedModule(types.ModuleType):
    pass


def trimmed(module: types.ModuleType, drop: Sequence[str], replace: dict[str, Any] | None = None) -> types.ModuleType:
    """A copy of ``module``'s public names without ``drop``, with ``replace`` on top.

    A submodule imported after the copy was made (``collections.abc`` first imported by a program) is still
    found on it, through the copy's module ``__getattr__``: submodules only, handed out as their copies.
    """
    copy_ = _TrimmedModule(module.__name__, module.__doc__)
    for key, value in vars(module).items():
        if not key.startswith("_") and key not in drop:
            setattr(copy_, key, value)
    for key, value in (replace or {}).items():
        setattr(copy_, key, value)

    def submodule(name: str) -> Any:
        value = getattr(module, name, None) if is_name(name) and not name.startswith("_") else None
        if isinstance(value, types.ModuleType) and value.__name__ == f"{module.__name__}.{name}":
            return safe_module(value)
        raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}")

    copy_.__getattr__ = submodule  # type: ignore[method-assign]
    return copy_


def guarded_getattr(obj: Any, name: str, default: Any = raise_) -> Any:
    """``obj.name`` and ``getattr`` for user code: RestrictedPython's checks plus :func:`safe_value`.

    Without ``default`` a missing attribute raises (RestrictedPython's own default would return None).
    """
    if not is_name(name):
        raise TypeError("an attribute name must be a str")
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
    if not is_name(name) or name.startswith("_"):
        raise AttributeError(f'"{name}" is an invalid attribute name')
    setattr(guarded_write(obj), name, value)


def user_delattr(obj: Any, name: str) -> None:
    """``delattr`` through the write guard."""
    if not is_name(name) or name.startswith("_"):
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
    """``obj[key] op= value`` (RestrictedPython refuses it; :mod:`.transformer` rewrites it to this)."""
    guarded_write(obj)[key] = _INPLACE[op](guarded_getitem(obj, key), value)


def inplace_attr(obj: Any, name: str, op: str, value: Any) -> None:
    """``obj.name op= value``."""
    setattr(guarded_write(obj), name, _INPLACE[op](guarded_getattr(obj, name), value))


def apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``f(*args, **kwargs)`` (RestrictedPython routes star-calls through ``_apply_``)."""
    return func(*args, **kwargs)


def build_class(func: Callable[..., Any], name: str, *bases: Any, **kwargs: Any) -> Any:
    """``__build_class__`` that remembers the class as user-defined (so ``self.x = ...`` is allowed)."""
    cls = _build_class(func, name, *bases, **kwargs)
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
        _print(*objects, **kwargs)

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
    if not is_allowed_module(name):
        raise ImportError(
            f"import of {name!r} is not allowed in the restricted sandbox (allowed: stubs, skills, "
            f"{', '.join(sorted(SAFE_STDLIB))})"
        )
    module = _import(name, None, None, fromlist, 0)
    if not fromlist:
        return safe_module(module)
    # ``from m import x`` reads ``x`` from what we return without the attribute guard: return a
    # namespace holding only checked names.
    target = sys.modules[name]
    view = _TrimmedModule(name)
    for item in fromlist:
        if not is_name(item) or item.startswith("_"):
            continue
        source = safe_module(target)
        if hasattr(source, item):
            setattr(view, item, safe_value(getattr(source, item)))
    return view
