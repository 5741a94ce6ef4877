"""Saved skills, imported as restricted code: ``import skills.x`` compiles ``x.py`` through the guards."""

from __future__ import annotations

import ast
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types
from typing import Any

from .namespace import make_globals
from .transformer import compile_user


class _RestrictedLoader(importlib.abc.Loader):
    def __init__(self, path: str, restricted_builtins: dict[str, Any]) -> None:
        self.path = path
        self.builtins = restricted_builtins

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        with open(self.path, encoding="utf-8") as fh:
            source = fh.read()
        run_restricted(module, source, self.path, self.builtins)


def run_restricted(module: types.ModuleType, source: str, filename: str, restricted_builtins: dict[str, Any]) -> None:
    """Execute a skill's ``source`` as restricted code in ``module``'s namespace."""
    code = compile_user(ast.parse(source, filename, "exec"), filename, "exec")
    module.__dict__.update(make_globals(module.__name__, restricted_builtins))
    exec(code, module.__dict__)


class SkillFinder(importlib.abc.MetaPathFinder):
    """Finds ``skills`` and ``skills.*`` in the skills directory and loads them through the guards.

    Skills are code the model saved earlier: importing them unrestricted would be an escape.
    """

    def __init__(self, root: str, restricted_builtins: dict[str, Any]) -> None:
        self.root = root
        self.builtins = restricted_builtins

    def load_source(self, fullname: str, filename: str, source: str) -> types.ModuleType:
        """A draft skill (source kept by the session, not a file) as a restricted module in ``sys.modules``."""
        module = types.ModuleType(fullname)
        module.__file__ = filename
        sys.modules[fullname] = module
        try:
            run_restricted(module, source, filename, self.builtins)
        except BaseException:
            del sys.modules[fullname]
            raise
        return module

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
