"""The trimmed stdlib modules handed out instead of the real ones, and the guard on ``copy``.

Each drops the names that would let user code run unguarded (``operator.attrgetter``,
``string.Formatter``, ``typing.get_type_hints``, ``functools.singledispatch``) or wraps them
(``dataclasses.dataclass`` checks field names); ``copy`` refuses user-defined ``__reduce__``.
"""

from __future__ import annotations

import copy
import keyword
import operator
import sys
import types
from typing import Any

from .guards import SAFE_STDLIB, safe_modules, trimmed


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


def build_safe_modules() -> None:
    """Make the trimmed copies (once the modules are imported) and install the ``copy`` guard."""
    import dataclasses
    import functools
    import string
    import typing

    safe_modules["operator"] = trimmed(operator, ("attrgetter", "methodcaller"))
    safe_modules["string"] = trimmed(string, ("Formatter",))
    # get_type_hints eval()s string annotations unguarded; singledispatch calls it on registration.
    safe_modules["typing"] = trimmed(typing, ("get_type_hints",))
    safe_modules["functools"] = trimmed(functools, ("singledispatch", "singledispatchmethod"))
    safe_modules["dataclasses"] = trimmed(dataclasses, (), {"dataclass": _checked_dataclass})
    # copyreg's dispatch table decides how copy rebuilds objects: not for user code to extend.
    safe_modules["copy"] = trimmed(copy, ("dispatch_table",))
    _install_copy_guard()
