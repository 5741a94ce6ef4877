"""Nested schemas through datamodel-code-generator: ``TypedDict`` classes plus the root's field annotations.

The generator's module is parsed with ``ast``: the root class gives each top-level property's annotation
(used for the stub's keyword arguments or as the result type); every other class is kept as source.
"""

from __future__ import annotations

import ast
import copy
import io
import json
import keyword
import re
import tokenize
import warnings
from dataclasses import dataclass, field
from typing import Any

from codemode.compiler.limits import DEFINITIONS, check_refs, dicts
from codemode.errors import CompileError

_DROP_KEYS = ("title", "format", "examples", "$schema", "$id")


@dataclass(frozen=True)
class RootField:
    """One property of the root object: its wire name and the generator's annotation."""

    name: str
    annotation: str
    required: bool


@dataclass
class Models:
    """What the generator produced for one schema."""

    typing_names: set[str] = field(default_factory=set)
    classes: dict[str, str] = field(default_factory=dict)
    """Class (or functional TypedDict) name → source, in dependency order, the root excluded."""
    root_fields: list[RootField] = field(default_factory=list)
    root_source: str = ""


_VERBATIM = "x-codemode-verbatim-keys"
"""A property added to an object whose keys the generator's class form would rename (``_id`` became
``field_id``; ``ﬁle`` is the identifier ``file`` once Python normalises it): a key that is no identifier makes it
write the functional form, whose keys are strings, kept as they are. Removed from what it wrote."""


def _undotted(schema: dict[str, Any]) -> None:
    """Rename the root's definitions whose names hold a dot (``com.example.User``, as Java, .NET and OpenAPI
    types are named), and the references to them: the generator takes the dots for modules and writes several,
    which left the tool with the generic stub."""
    for key in DEFINITIONS:
        block = schema.get(key)
        if not isinstance(block, dict) or not any(isinstance(n, str) and "." in n for n in block):
            continue
        taken = {n for n in block if isinstance(n, str) and "." not in n}
        renamed: dict[str, str] = {}
        for name in list(block):
            if isinstance(name, str) and "." in name:
                new = name.replace(".", "_")
                while new in taken:
                    new += "_"
                taken.add(new)
                renamed[f"#/{key}/{name}"] = f"#/{key}/{new}"
                block[new] = block.pop(name)
        for node in dicts(schema):
            ref = node.get("$ref")
            if isinstance(ref, str):
                for old, new in renamed.items():
                    if ref == old or ref.startswith(old + "/"):
                        node["$ref"] = new + ref[len(old) :]
                        break


def _class_form_possible(node: ast.stmt) -> bool:
    """Whether ruff takes the functional ``TypedDict`` in ``node`` for one the class form could write (UP013):
    every key an identifier, no keyword, no ``__`` prefix."""
    if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and len(node.value.args) >= 2):
        return False
    spec = node.value.args[1]
    if not isinstance(spec, ast.Dict):
        return False
    keys = [k.value for k in spec.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
    keys = [k for k in keys if k != _VERBATIM]
    return len(keys) == len(spec.keys) - 1 and all(
        k.isidentifier() and not keyword.iskeyword(k) and not k.startswith("__") for k in keys
    )


def _keep_keys(schema: Any) -> None:
    """Add :data:`_VERBATIM` to every object schema in ``schema`` with a property the class form would rename."""
    for node in dicts(schema):
        properties = node.get("properties")
        if isinstance(properties, dict) and any(_renamed(key) for key in properties):
            properties[_VERBATIM] = {"type": "null"}


def _renamed(key: str) -> bool:
    """Whether the generator's class form would write ``key`` as another name (or not at all)."""
    return key.startswith("_") or not key.isascii() or keyword.iskeyword(key) or keyword.issoftkeyword(key)


def clean(schema: Any) -> Any:
    """Drop keys that would change generated names or types (titles, formats) — docs keep them.

    Also ``additionalProperties`` beside ``properties``: a closed or extra-items ``TypedDict`` (PEP 728)
    needs ``typing_extensions``, which the sandbox does not have, and it does not change the fields.
    A bare ``additionalProperties`` schema (a map) is kept: it becomes ``dict[str, X]``.
    """
    if isinstance(schema, dict):
        has_properties = isinstance(schema.get("properties"), dict)
        return {
            k: clean(v)
            for k, v in schema.items()
            if not (k in _DROP_KEYS and not isinstance(v, dict))
            and not (k == "additionalProperties" and (v is False or has_properties))
        }
    if isinstance(schema, list):
        return [clean(v) for v in schema]
    return schema


def generate_models(schema: dict[str, Any], root: str) -> Models:
    """Generate ``TypedDict``s for an object schema whose root class is named ``root``.

    Raises:
        CompileError: the generator rejected the schema or produced something unexpected.
    """
    from datamodel_code_generator import generate
    from datamodel_code_generator.enums import DataModelType, InputFileType
    from datamodel_code_generator.format import PythonVersion
    from datamodel_code_generator.parser import LiteralType

    check_refs(schema)  # again here, the one way into the generator: it must never fetch a file or URL
    prepared = clean(copy.deepcopy(schema))
    prepared.setdefault("type", "object")
    _keep_keys(prepared)
    _undotted(prepared)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            text = generate(
                json.dumps(prepared),
                input_file_type=InputFileType.JsonSchema,
                output_model_type=DataModelType.TypingTypedDict,
                target_python_version=PythonVersion.PY_311,
                disable_timestamp=True,
                strict_nullable=True,
                enum_field_as_literal=LiteralType.All,
                collapse_root_models=True,
                use_field_description=True,
                class_name=root,
                formatters=[],
                allow_remote_refs=False,
            )
    except Exception as exc:  # the generator raises many types; all mean "cannot compile"
        raise CompileError(f"datamodel-code-generator failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(text, str):
        raise CompileError("datamodel-code-generator returned no module")
    return _parse(text, root)


def _parse(text: str, root: str) -> Models:
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise CompileError(f"generator produced invalid Python: {exc}") from exc
    models = Models()
    lines = _LINE.findall(text)
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            if node.module == "typing":
                models.typing_names |= {a.name for a in node.names}
            elif node.module != "__future__":
                raise CompileError(f"generator needs an unsupported import: from {node.module} import …")
            continue
        if isinstance(node, ast.Import):
            raise CompileError("generator needs an unsupported import")
        name = _defined_name(node)
        if name is None:
            continue
        source = _segment(lines, node) or ast.unparse(node)
        if _VERBATIM in source:
            source = _MARKER_LINE.sub("", source)
            if _class_form_possible(node):  # ruff would ask for the class form that renames these keys
                head, newline, rest = source.partition("\n")
                source = f"{head}  # noqa: UP013{newline}{rest}"
        if name == root:
            models.root_fields = [f for f in _root_fields(node) if f.name != _VERBATIM]
            models.root_source = source
        else:
            models.classes[name] = source
    if not models.root_source:
        # A schema whose root collapsed into an alias (e.g. no properties): no fields.
        models.root_fields = []
    return models


_MARKER_LINE = re.compile(rf"\n[ \t]*'{re.escape(_VERBATIM)}': [^\n]*?,(?=\n|\}})")
"""The line of the functional form that holds :data:`_VERBATIM` (its value is ``NotRequired[None]``)."""
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")
"""A line as the tokenizer counts them (``\r\n``, ``\r`` or ``\n`` ends one; ``\f`` or ``\u2028`` do not)."""


def _segment(lines: list[str], node: ast.stmt) -> str | None:
    """``ast.get_source_segment`` over lines split once: it splits the whole module again for every
    node, quadratic in the number of classes (1,600 properties took 46 s)."""
    if node.end_lineno is None or node.end_col_offset is None:
        return None
    first, last = node.lineno - 1, node.end_lineno - 1
    if last >= len(lines):
        return None
    # Column offsets count UTF-8 bytes.
    if first == last:
        return lines[first].encode()[node.col_offset : node.end_col_offset].decode()
    head = lines[first].encode()[node.col_offset :].decode()
    tail = lines[last].encode()[: node.end_col_offset].decode()
    return "".join([head, *lines[first + 1 : last], tail])


def _defined_name(node: ast.stmt) -> str | None:
    if isinstance(node, ast.ClassDef):
        return node.name
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id
    return None


def _root_fields(node: ast.stmt) -> list[RootField]:
    pairs: list[tuple[str, ast.expr]] = []
    if isinstance(node, ast.ClassDef):
        for item in node.body:
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                pairs.append((item.target.id, item.annotation))
    elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and len(node.value.args) >= 2:
        spec = node.value.args[1]
        if isinstance(spec, ast.Dict):
            for key, value in zip(spec.keys, spec.values, strict=True):
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    pairs.append((key.value, value))
    fields: list[RootField] = []
    for name, annotation in pairs:
        required = True
        inner = annotation
        if isinstance(inner, ast.Subscript) and isinstance(inner.value, ast.Name):
            if inner.value.id in ("NotRequired", "Required"):
                required = inner.value.id == "Required"
                inner = inner.slice
        fields.append(RootField(name, ast.unparse(inner), required))
    return fields


def _rename_names(text: str, renames: dict[str, str]) -> str:
    """``text`` with the names in ``renames`` replaced where they are names: never inside a string (a wire key
    or an enum value that happens to contain a class's name is data)."""
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    edits: list[tuple[int, int, str]] = []
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.NAME and token.string in renames:
            (row, col), (end_row, end_col) = token.start, token.end
            edits.append((starts[row - 1] + col, starts[end_row - 1] + end_col, renames[token.string]))
    for begin, end, name in reversed(edits):
        text = text[:begin] + name + text[end:]
    return text


def rename_classes(models: Models, renames: dict[str, str]) -> Models:
    """Rename classes (and every reference to them) to avoid clashes with another set of models."""
    if not renames:
        return models

    def sub(text: str) -> str:
        text = _rename_names(text, renames)
        for old, new in renames.items():  # the functional form repeats its own name as a string
            text = text.replace(f"TypedDict(\n    '{old}'", f"TypedDict(\n    '{new}'").replace(
                f"TypedDict('{old}'", f"TypedDict('{new}'"
            )
        return text

    return Models(
        typing_names=set(models.typing_names),
        classes={renames.get(k, k): sub(v) for k, v in models.classes.items()},
        root_fields=[RootField(f.name, sub(f.annotation), f.required) for f in models.root_fields],
        root_source=sub(models.root_source),
    )
