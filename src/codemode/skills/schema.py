"""A skill's signature as a JSON schema and a validator, read from its source without running it on the host.

A skill's module is code the host must never import (it runs only in the sandbox), so its annotations are
read from the ``ast`` and rebuilt from a closed set of types: the JSON-shaped builtins, ``None``, the
``typing`` forms a JSON value can take (``Literal``, ``Optional``, ``Union``, ``X | Y``, ``list``, ``dict``,
``Sequence``, ``Mapping``, ``Any``…), and ``TypedDict`` classes, either the skill's own private ones or the
stubs' (``inventory.Customer``, ``from stubs.inventory import Customer``), whose classes are read from the
stub files' ``ast`` the same way. pydantic turns the rebuilt signature into the input schema and validates
a call's arguments against it. Anything else (a class of its own, ``*args``, positional-only parameters, a
name that resolves to nothing) raises :class:`Unexpressible`: such a skill is not offered as a tool.
"""

from __future__ import annotations

import ast
import collections.abc
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typing_extensions
from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config

MAX_DEPTH = 12
"""TypedDicts nested deeper than this (or recursive ones) are not expressed."""

_TYPES: dict[str, Any] = {
    "int": int, "float": float, "str": str, "bool": bool, "object": Any, "None": None,
    "list": list, "dict": dict, "tuple": tuple, "set": set, "frozenset": frozenset,
    "Any": Any, "Optional": typing.Optional, "Union": typing.Union, "Literal": typing.Literal,
    "List": list, "Dict": dict, "Tuple": tuple, "Set": set, "FrozenSet": frozenset,
    "Sequence": collections.abc.Sequence, "Mapping": collections.abc.Mapping,
    "Iterable": collections.abc.Iterable, "Collection": collections.abc.Collection,
}  # fmt: skip
"""The names an annotation may use, bare or as ``typing.X`` / ``collections.abc.X``."""

_BUILTINS = frozenset({"int", "float", "str", "bool", "object", "None", "list", "dict", "tuple", "set", "frozenset"})
_TYPE_MODULES = ("typing", "collections.abc", "typing_extensions", "builtins")


class Unexpressible(Exception):
    """The skill's signature cannot be expressed as a JSON schema (the message says which part)."""


@dataclass(frozen=True)
class SkillSchema:
    """A skill's parameters: the JSON schema a client sees and the validator a call's arguments pass."""

    input_schema: dict[str, Any]
    adapter: TypeAdapter[Any]
    required: frozenset[str]

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The arguments as the skill takes them (JSON data), or :class:`BadArguments` naming each bad one."""
        try:
            value = self.adapter.validate_python(arguments)
        except ValidationError as exc:
            raise BadArguments(_problems(exc)) from None
        data: dict[str, Any] = self.adapter.dump_python(value, mode="json")
        return data


class BadArguments(ValueError):
    """A call's arguments do not match the skill's schema; ``problems`` has one line per argument."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _problems(exc: ValidationError) -> list[str]:
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"]) or "(arguments)"
        if error["type"] == "extra_forbidden":
            lines.append(f"{where}: no such argument")
        elif error["type"] == "missing":
            lines.append(f"{where}: required argument missing")
        else:
            lines.append(f"{where}: {error['msg']}")
    return lines


def skill_schema(name: str, source: str, *, stubs: Path) -> SkillSchema:
    """The schema of skill ``name``'s function in ``source``; stub ``TypedDict``s are read under ``stubs``.

    Raises:
        Unexpressible: a parameter's type (or the parameter kind) has no JSON schema here.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise Unexpressible(f"the source does not parse: {exc.msg}") from None
    func = next(
        (n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name), None
    )
    if func is None:
        raise Unexpressible(f"no function {name}()")
    if isinstance(func, ast.AsyncFunctionDef):
        raise Unexpressible(f"{name}() is async")
    args = func.args
    if args.posonlyargs or args.vararg or args.kwarg:
        raise Unexpressible(f"{name}() takes positional-only, *args or **kwargs parameters")
    params = [*args.args, *args.kwonlyargs]
    defaults: list[ast.expr | None] = [None] * (len(args.args) - len(args.defaults))
    defaults += [*args.defaults, *args.kw_defaults]
    resolver = _Resolver(tree, stubs)
    fields: dict[str, Any] = {}
    required: set[str] = set()
    default_values: dict[str, Any] = {}
    for param, default in zip(params, defaults, strict=True):
        if param.annotation is None:
            raise Unexpressible(f"{name}(): the parameter {param.arg!r} has no annotation")
        try:
            kind = resolver.type_of(param.annotation)
        except Unexpressible as exc:
            raise Unexpressible(f"{name}(): the parameter {param.arg!r}: {exc}") from None
        if default is None:
            required.add(param.arg)
            fields[param.arg] = typing_extensions.Required[kind]
        else:
            fields[param.arg] = typing_extensions.NotRequired[kind]
            try:
                default_values[param.arg] = ast.literal_eval(default)
            except ValueError:
                pass  # not a literal: the skill applies its own default; the schema does not show one
    arguments = with_config(ConfigDict(extra="forbid"))(
        typing_extensions.TypedDict(f"{name}_arguments", fields)  # type: ignore[operator]
    )
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(arguments)
        schema = adapter.json_schema()
    except Exception as exc:  # pydantic's schema errors have no common base worth naming
        raise Unexpressible(f"{name}(): {type(exc).__name__}: {exc}") from None
    _strip_titles(schema)
    for key, value in default_values.items():
        prop = schema.get("properties", {}).get(key)
        if isinstance(prop, dict):
            prop["default"] = value
    return SkillSchema(schema, adapter, frozenset(required))


def _strip_titles(schema: Any) -> None:
    """Drop pydantic's generated ``title``s (tokens that say nothing the names do not); property maps keep
    their keys, so a property called ``title`` stays."""
    if not isinstance(schema, dict):
        return
    schema.pop("title", None)
    for key in ("properties", "$defs"):
        for sub in (schema.get(key) or {}).values():
            _strip_titles(sub)
    for key in ("anyOf", "allOf", "oneOf", "prefixItems"):
        for sub in schema.get(key) or []:
            _strip_titles(sub)
    for key in ("items", "additionalProperties"):
        _strip_titles(schema.get(key))


class _Resolver:
    """Rebuilds annotation expressions of one module (a skill's or a stub's) into typing objects."""

    def __init__(self, tree: ast.Module, stubs: Path, *, package: str | None = None, depth: int = 0) -> None:
        self.tree = tree
        self.stubs = stubs
        self.depth = depth
        self.package = package
        """The server module when ``tree`` is a stub file (its sibling files hold more classes)."""
        self.servers: dict[str, str] = {}
        """Local name → server module (``from stubs import inventory``)."""
        self.imported: dict[str, tuple[str, str]] = {}
        """Local name → (server module, class name) (``from stubs.inventory import Customer``)."""
        self.modules: dict[str, str] = {}
        """Local name → a module whose types are allowed (``import typing as t``)."""
        self.typing_names: dict[str, str] = {}
        """Local name → a name of :data:`_TYPES` (``from typing import Literal as L``)."""
        self.classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
        self._built: dict[str, Any] = {}
        for node in tree.body:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in _TYPE_MODULES:
                        self.modules[alias.asname or alias.name.split(".")[0]] = alias.name.split(".")[0]
                    elif alias.name.startswith("stubs.") and alias.asname and alias.name.count(".") == 1:
                        self.servers[alias.asname] = alias.name.split(".")[1]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                parts = node.module.split(".")
                for alias in node.names:
                    bound = alias.asname or alias.name
                    if node.module in _TYPE_MODULES and alias.name in _TYPES:
                        self.typing_names[bound] = alias.name
                    elif parts == ["stubs"]:
                        self.servers[bound] = alias.name
                    elif parts[0] == "stubs" and len(parts) in (2, 3):
                        self.imported[bound] = (parts[1], alias.name)

    def type_of(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Constant):
            if node.value is None:
                return None
            if isinstance(node.value, str):  # a forward reference: "int", "Customer"
                try:
                    inner = ast.parse(node.value, mode="eval").body
                except SyntaxError:
                    raise Unexpressible(f"the annotation {node.value!r} does not parse") from None
                return self.type_of(inner)
            raise Unexpressible(f"{node.value!r} is not a type")
        if isinstance(node, ast.Name):
            return self._name(node.id)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            owner = node.value.id
            if owner in self.servers:
                return self._stub_class(self.servers[owner], node.attr)
            if owner in self.modules or owner in ("typing", "collections"):
                if node.attr in _TYPES:
                    return _TYPES[node.attr]
        if isinstance(node, ast.Attribute) and ast.unparse(node.value) in ("collections.abc",) and node.attr in _TYPES:
            return _TYPES[node.attr]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return typing.Union[self.type_of(node.left), self.type_of(node.right)]  # noqa: UP007
        if isinstance(node, ast.Subscript):
            return self._subscript(node)
        raise Unexpressible(f"`{ast.unparse(node)}` is not a type a JSON schema can express here")

    def _name(self, name: str) -> Any:
        if name in self.typing_names:
            return _TYPES[self.typing_names[name]]
        if name in self.classes:
            return self._class(name)
        if name in self.imported:
            return self._stub_class(*self.imported[name])
        if self.package is not None and name not in _TYPES:
            return self._stub_class(self.package, name)
        if name in _BUILTINS:
            return _TYPES[name]  # builtins need no import; typing's names do
        raise Unexpressible(f"the name {name!r} is not a type a JSON schema can express here")

    def _subscript(self, node: ast.Subscript) -> Any:
        base = self.type_of(node.value)
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if base is typing.Literal:
            values = []
            for item in items:
                if not (isinstance(item, ast.Constant) and isinstance(item.value, (str, int, bool, type(None)))):
                    raise Unexpressible(f"Literal[{ast.unparse(item)}]: only str, int, bool and None literals")
                values.append(item.value)
            return typing.Literal[tuple(values)]
        if base is Any or base is None or base in (int, float, str, bool):
            raise Unexpressible(f"`{ast.unparse(node)}` is not a generic type")
        args = tuple(self.type_of(item) for item in items)
        if base is tuple and isinstance(node.slice, ast.Tuple) and items and _is_ellipsis(items[-1]):
            raise Unexpressible("tuple[X, ...] is not supported; use list[X]")
        if base in (dict, collections.abc.Mapping) and (len(args) != 2 or args[0] is not str):
            raise Unexpressible(f"`{ast.unparse(node)}`: a JSON object's keys are str")
        try:
            return base[args if len(args) > 1 else args[0]]
        except TypeError as exc:
            raise Unexpressible(f"`{ast.unparse(node)}`: {exc}") from None

    def _class(self, name: str) -> Any:
        if name in self._built:
            return self._built[name]
        node = self.classes[name]
        if self.depth >= MAX_DEPTH:
            raise Unexpressible(f"{name}: TypedDicts nested deeper than {MAX_DEPTH} (or recursive)")
        if not any(ast.unparse(b).split(".")[-1] == "TypedDict" for b in node.bases):
            raise Unexpressible(f"the class {name} is not a TypedDict")
        total = True
        for keyword in node.keywords:
            if keyword.arg == "total" and isinstance(keyword.value, ast.Constant):
                total = bool(keyword.value.value)
        inner = _Resolver(self.tree, self.stubs, package=self.package, depth=self.depth + 1)
        inner._built = self._built
        fields: dict[str, Any] = {}
        for statement in node.body:
            if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                fields[statement.target.id] = inner._field(statement.annotation)
        built = typing_extensions.TypedDict(name, fields, total=total)  # type: ignore[misc]
        self._built[name] = built
        return built

    def _field(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Subscript):
            wrapper = ast.unparse(node.value).split(".")[-1]
            if wrapper == "NotRequired":
                return typing_extensions.NotRequired[self.type_of(node.slice)]
            if wrapper == "Required":
                return typing_extensions.Required[self.type_of(node.slice)]
        return self.type_of(node)

    def _stub_class(self, server: str, name: str) -> Any:
        """A ``TypedDict`` of stub server ``server``: the first of its files that defines ``name``."""
        if not (server.isidentifier() and name.isidentifier()):
            raise Unexpressible(f"stubs.{server}.{name} is not a stub type")
        folder = self.stubs / server
        if not folder.is_dir():
            raise Unexpressible(f"there is no stub server {server!r}")
        for path in sorted(folder.glob("*.py")):
            if path.name.startswith("_"):
                continue
            text = path.read_text(encoding="utf-8")
            if f"class {name}(" not in text:
                continue
            tree = ast.parse(text)
            resolver = _Resolver(tree, self.stubs, package=server, depth=self.depth + 1)
            if name in resolver.classes:
                return resolver._class(name)
        raise Unexpressible(f"stubs.{server} has no type {name!r}")


def _is_ellipsis(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is Ellipsis
