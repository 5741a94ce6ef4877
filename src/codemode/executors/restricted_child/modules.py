"""The trimmed stdlib modules handed out instead of the real ones, and the guard on ``copy``.

Each drops the names that would let user code run unguarded (``operator.attrgetter``,
``string.Formatter``, ``typing.get_type_hints``, ``functools.singledispatch``) or wraps them
(``dataclasses.dataclass`` checks field names); ``copy`` refuses user-defined ``__reduce__``.

A second class: library functions that ``setattr`` or ``update`` attributes or module dicts by names or
on targets the caller chooses. ``functools.update_wrapper(f, uuid.uuid4, updated=('__globals__',))``
merged uuid's globals (the real ``os``, the real builtins) into the program's namespace;
``enum.global_enum`` writes an enum's members into ``sys.modules[cls.__module__]``, which the functional
API lets the caller set to ``'builtins'``. These are dropped (``global_enum``) or wrapped (the
``_checked_``/``_guarded_`` functions below): fixed attribute lists, targets defined by user code,
``module=`` naming a module of user code, no ``_`` names in a class namespace.
``tests/security/test_restricted_hatches.py`` walks every module a program can reach for the originals.
"""

from __future__ import annotations

import collections
import collections.abc
import copy
import dataclasses
import enum
import functools
import keyword
import operator
import random
import sys
import types
import uuid
from collections.abc import Iterable
from typing import Any

from . import waits
from .guards import (
    SAFE_STDLIB,
    guarded_write,
    is_name,
    is_program_function,
    is_program_module,
    is_user_class,
    pin_builtins,
    register_user_class,
    safe_modules,
    set_copier,
    trimmed,
)

pin_builtins(globals())

_TIME_DROPPED = ("tzset", "clock_settime", "clock_settime_ns", "pthread_getcpuclockid")

_NODE = random.getrandbits(48) | (1 << 40)
"""The "hardware address" this child's programs see: random, with the multicast bit set (RFC 4122 §4.5)."""


def _random_getnode() -> int:
    """``uuid.getnode()`` without its probes: the original runs ``ifconfig``/``ip``/``arp`` through
    ``subprocess`` (fork + exec) to read the host's MAC address, which it then gives away."""
    return _NODE


def _checked_uuid1(node: int | None = None, clock_seq: int | None = None) -> uuid.UUID:
    """``uuid.uuid1`` with :func:`_random_getnode` as the default node: neither the probes nor libuuid
    (whose time-based UUIDs carry the host's MAC address) run."""
    return uuid.uuid1(_NODE if node is None else node, clock_seq)

_WRAPPER_ASSIGNMENTS = frozenset(functools.WRAPPER_ASSIGNMENTS)
_WRAPPER_UPDATES = frozenset(functools.WRAPPER_UPDATES)


def _checked_update_wrapper(
    wrapper: Any,
    wrapped: Any,
    assigned: Iterable[str] = functools.WRAPPER_ASSIGNMENTS,
    updated: Iterable[str] = functools.WRAPPER_UPDATES,
) -> Any:
    """``functools.update_wrapper`` on user code only, with the standard attribute lists only.

    ``updated=('__globals__',)`` would merge another function's globals into the program's namespace,
    ``assigned=`` names any attribute, and ``wrapper`` could be a real module.
    """
    assigned, updated = tuple(assigned), tuple(updated)
    if not _WRAPPER_ASSIGNMENTS.issuperset(assigned) or not _WRAPPER_UPDATES.issuperset(updated):
        raise TypeError("update_wrapper() takes only the standard assigned= and updated= attributes here")
    if not (
        is_program_function(wrapper)
        or isinstance(wrapper, functools.partial)
        or is_user_class(wrapper)
        or is_user_class(type(wrapper))
    ):
        raise TypeError("update_wrapper() only updates functions and objects defined by the program")
    functools.update_wrapper(wrapper, wrapped, assigned, ())
    if updated:
        # The wrapped object's __dict__ may be a module's (its __builtins__, its imports): public names only.
        source = getattr(wrapped, "__dict__", None)
        if isinstance(source, (dict, types.MappingProxyType)):
            target = vars(wrapper)
            for key, value in dict(source).items():
                if isinstance(key, str) and not key.startswith("_") and not isinstance(value, types.ModuleType):
                    target[key] = value
    return wrapper


def _checked_wraps(
    wrapped: Any,
    assigned: Iterable[str] = functools.WRAPPER_ASSIGNMENTS,
    updated: Iterable[str] = functools.WRAPPER_UPDATES,
) -> Any:
    """``functools.wraps`` through :func:`_checked_update_wrapper`."""
    return functools.partial(_checked_update_wrapper, wrapped=wrapped, assigned=tuple(assigned), updated=tuple(updated))


def _checked_total_ordering(cls: Any) -> Any:
    """``functools.total_ordering`` on classes defined by user code (it sets methods on ``cls``)."""
    if not is_user_class(cls):
        raise TypeError("total_ordering() only decorates classes defined by the program")
    return functools.total_ordering(cls)


def _check_field_name(name: Any, what: str) -> None:
    """A name library code will make an attribute of (and ``dataclasses`` puts into source it executes):
    a plain ``str`` that is an identifier, not a keyword, without a leading ``_`` (a class statement cannot
    define ``_`` names either)."""
    if not is_name(name) or not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
        raise TypeError(f"{what}: invalid name {name!r}")


def _check_module_arg(module: Any) -> None:
    if module is not None and not is_program_module(module):
        raise TypeError(f"module={module!r}: only the program's own modules are allowed here")


def _caller_module() -> Any:
    # The module of the user code calling the wrapper (two frames up), as the stdlib would have found it.
    return sys._getframe(2).f_globals.get("__name__")


def _checked_namedtuple(typename: Any, field_names: Any, **kwargs: Any) -> Any:
    """``collections.namedtuple`` with ``module=`` limited to the program's modules."""
    _check_module_arg(kwargs.get("module"))
    if kwargs.get("module") is None:
        kwargs["module"] = _caller_module()
    return collections.namedtuple(typename, field_names, **kwargs)


def _checked_make_dataclass(cls_name: Any, fields: Any, **kwargs: Any) -> Any:
    """``dataclasses.make_dataclass`` without ``_`` names in ``namespace=`` and with a program ``module=``.

    A ``namespace`` could otherwise give the class any dunder (``__reduce_ex__``, ``__call__``,
    ``__globals__``) that library code trusts; a class statement cannot define them either.
    """
    if not is_name(cls_name):
        raise TypeError(f"make_dataclass(): the class name must be a str, not {type(cls_name).__name__}")
    namespace = kwargs.get("namespace")
    if namespace is not None:
        namespace = dict(namespace)
        for key in namespace:
            if not is_name(key) or key.startswith("_"):
                raise TypeError(f"make_dataclass(): invalid namespace name {key!r}")
        kwargs["namespace"] = namespace
    # Each field becomes an attribute (its default a class attribute) and a name in exec'd source.
    fields = list(fields)
    for item in fields:
        _check_field_name(item if is_name(item) else item[0] if isinstance(item, (tuple, list)) and item else item,
                          "make_dataclass() field")  # fmt: skip
    _check_module_arg(kwargs.get("module"))
    cls = dataclasses.make_dataclass(cls_name, fields, **kwargs)
    register_user_class(cls)
    return cls


def _checked_asdict(obj: Any, **kwargs: Any) -> Any:
    """``dataclasses.asdict`` of the program's dataclass instances only: it reads every field by name with
    the real ``getattr``, and a field list can be made to name anything on anything else."""
    _check_program_instance(obj, "asdict")
    return dataclasses.asdict(obj, **kwargs)


def _checked_astuple(obj: Any, **kwargs: Any) -> Any:
    """``dataclasses.astuple`` of the program's dataclass instances only (see :func:`_checked_asdict`)."""
    _check_program_instance(obj, "astuple")
    return dataclasses.astuple(obj, **kwargs)


def _checked_replace(obj: Any, /, **changes: Any) -> Any:
    """``dataclasses.replace`` of the program's dataclass instances only (see :func:`_checked_asdict`)."""
    _check_program_instance(obj, "replace")
    return dataclasses.replace(obj, **changes)


def _check_program_instance(obj: Any, what: str) -> None:
    if not is_user_class(type(obj)):
        raise TypeError(f"{what}() only takes instances of dataclasses defined by the program")


def _enum_names(names: Any) -> list[Any]:
    """The member names of an ``Enum('Name', names)`` call, as ``EnumType._create_`` reads them."""
    if is_name(names):
        return list(names.replace(",", " ").split())
    if isinstance(names, str):  # a subclass's split() could answer anything
        raise TypeError("Enum(): the names must be a str, a list or a mapping")
    if isinstance(names, collections.abc.Mapping):
        return list(names)
    return [item if isinstance(item, str) else item[0] for item in names]


def _install_enum_guard() -> None:
    # The functional API puts each name into the class namespace: a dunder one (__format__, __getattribute__,
    # __reduce_ex__) becomes a method of the class rather than a member, which a class statement cannot do.
    real = enum.EnumType._create_  # type: ignore[attr-defined]

    def create(cls: Any, /, class_name: Any, names: Any, **kwargs: Any) -> Any:
        if not isinstance(names, (str, collections.abc.Mapping)):
            names = list(names)  # read once: an iterator checked here would be empty for the real call
        for name in _enum_names(names):
            _check_field_name(name, "Enum() member")
        _check_module_arg(kwargs.get("module"))
        return real(cls, class_name, names, **kwargs)

    enum.EnumType._create_ = create  # type: ignore[attr-defined]


def _guarded_setitem(obj: Any, key: Any, value: Any) -> None:
    """``operator.setitem`` through the write guard, like ``obj[key] = value``."""
    guarded_write(obj)[key] = value


def _guarded_delitem(obj: Any, key: Any) -> None:
    """``operator.delitem`` through the write guard, like ``del obj[key]``."""
    del guarded_write(obj)[key]


def _checked_dataclass(cls: Any = None, /, **kwargs: Any) -> Any:
    def wrap(target: Any) -> Any:
        # dataclass sets __init__ & co. on the class: on a class defined by the program only.
        if not is_user_class(target):
            raise TypeError("dataclass() only decorates classes defined by the program")
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
        # What copy called to get func, args and state: the class's methods, unless the instance holds its own
        # (an attribute wins over a method) or the class looks attributes up its own way.
        try:
            own = object.__getattribute__(x, "__dict__")
        except AttributeError:
            own = {}
        for name in ("__reduce_ex__", "__reduce__", "__getattribute__"):
            if isinstance(own, dict) and name in own:
                raise TypeError(f"copying an object that holds its own {name} is not supported here")
            owner = next((k for k in type(x).__mro__ if name in vars(k)), object)
            if not _is_trusted_code(vars(owner).get(name)):
                raise TypeError(f"copying {type(x).__name__} objects with a custom {name} is not supported here")
        # The object is rebuilt by calling func: a class or the standard library's code, never the program's.
        if not (isinstance(func, type) or _is_trusted_code(func)):
            raise TypeError(f"copying {type(x).__name__} objects rebuilt by {func!r} is not supported here")
        return real(x, memo, func, args, *rest, **kwargs)

    copy._reconstruct = reconstruct  # type: ignore[attr-defined]


def _replacements() -> list[tuple[Any, Any]]:
    """``(original, replacement)``: what a program gets instead of each original (None: nothing)."""
    import string
    import time
    import typing

    return [
        # Unguarded getattr: attrgetter("__class__"), "{0.__class__}" formats.
        (operator.attrgetter, None),
        (operator.methodcaller, None),
        (string.Formatter, None),
        # get_type_hints eval()s string annotations unguarded; singledispatch calls it on registration.
        (typing.get_type_hints, None),
        (functools.singledispatch, None),
        (functools.singledispatchmethod, None),
        # global_enum writes the members into sys.modules[cls.__module__], which the caller chooses.
        (enum.global_enum, None),
        # copyreg's dispatch table decides how copy rebuilds objects: not for user code to extend.
        (copy.dispatch_table, None),  # type: ignore[attr-defined]
        # Writes by caller-chosen names, on caller-chosen targets.
        (functools.update_wrapper, _checked_update_wrapper),
        (functools.wraps, _checked_wraps),
        (functools.total_ordering, _checked_total_ordering),
        (dataclasses.dataclass, _checked_dataclass),
        (dataclasses.make_dataclass, _checked_make_dataclass),
        (dataclasses.asdict, _checked_asdict),
        (dataclasses.astuple, _checked_astuple),
        (dataclasses.replace, _checked_replace),
        (collections.namedtuple, _checked_namedtuple),
        (operator.setitem, _guarded_setitem),
        (operator.delitem, _guarded_delitem),
        # time.sleep raises TimeoutError at the wall-time limit (and the session is kept); the rest change
        # the process (its time zone, a clock) or hand out a clock id of another thread.
        (time.sleep, waits.sleep),
        # The host's MAC address, read by running programs (uuid._get_command_stdout): neither is for programs.
        (uuid.getnode, _random_getnode),
        (uuid.uuid1, _checked_uuid1),
        *((getattr(time, name), None) for name in _TIME_DROPPED if hasattr(time, name)),
    ]


def build_safe_modules() -> None:
    """Make the copies of the whitelisted modules loaded so far, install the ``copy`` guard, and let
    :func:`.guards.safe_module` copy the ones loaded later the same way.

    Every loaded whitelisted module is swept, not just the one that defines an original: ``functools``
    and ``statistics`` re-export ``collections.namedtuple``, for one.
    """
    replacements = _replacements()

    def copy_of(module: types.ModuleType) -> types.ModuleType:
        drop: list[str] = []
        replace: dict[str, Any] = {}
        for key, value in vars(module).items():
            if key.startswith("_"):
                continue
            for original, replacement in replacements:
                if value is original:
                    if replacement is None:
                        drop.append(key)
                    else:
                        replace[key] = replacement
        return trimmed(module, drop, replace)

    for name, module in sorted(sys.modules.items()):
        if module is not None and name.partition(".")[0] in SAFE_STDLIB:
            safe_modules[name] = copy_of(module)
    set_copier(copy_of)
    _install_copy_guard()
    _install_enum_guard()
