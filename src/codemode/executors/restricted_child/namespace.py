"""The ``__builtins__`` and module globals of user code and skills."""

from __future__ import annotations

import builtins
from typing import Any

from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence, safe_builtins

from .guards import (
    Printer,
    SafeType,
    apply,
    build_class,
    guarded_getattr,
    guarded_getitem,
    guarded_import,
    guarded_write,
    inplace_attr,
    inplace_item,
    inplacevar,
    user_delattr,
    user_hasattr,
    user_setattr,
)


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
