"""Nested schemas through datamodel-code-generator: ``TypedDict`` classes plus the root's field annotations.

The generator's module is parsed with ``ast``: the root class gives each top-level property's annotation
(used for the stub's keyword arguments or as the result type); every other class is kept as source.
"""

from __future__ import annotations

import ast
import copy
import json
import keyword
import re
import tokenize
import warnings
from dataclasses import dataclass, field
from typing import Any

from codemode.compiler.limits import DEFINITIONS, check_refs, dicts
from codemode.compiler.naming import BUILTIN_TYPES, RESERVED_MODULE_NAMES, literal
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
    """Whether the generator's class form would write ``key`` as another name (or not at all), or as a name the
    stub module uses itself (``Any``, ``str``): a field so named reads as if it hid the import or builtin."""
    return (
        key.startswith("_")
        or not key.isascii()
        or keyword.iskeyword(key)
        or keyword.issoftkeyword(key)
        or key in RESERVED_MODULE_NAMES
        or key in BUILTIN_TYPES
    )


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
    # The generator imports a typing name under an alias (``Any as Any_aliased``) when a field is named like it;
    # the stub writes its own imports, so the models must use the names themselves. No field can hide them: a
    # key named like one is written as a string of the functional form (see _renamed).
    aliases = {
        a.asname: a.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module == "typing"
        for a in node.names
        if a.asname and a.asname != a.name
    }
    if aliases:
        text = _rename_names(text, aliases)
        tree = ast.parse(text)
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
        # The stub's signature needs no quotes (its module defers annotations); ruff asks for none (UP037).
        fields.append(RootField(name, ast.unparse(_unquoted(inner)), required))
    return fields


def _rename_names(text: str, renames: dict[str, str]) -> str:
    """``text`` with the names in ``renames`` replaced where they name something: names, class names, and the
    string forward references the generator writes for recursion (``NotRequired["Node"]``, ``"Node | None"``, and
    the name a functional ``TypedDict`` repeats). Never data: a wire key (a field of the class form, a key of the
    functional form), a ``Literal`` value or a docstring that happens to spell a class's name stays as it is."""
    pieces, done = [], 0
    for begin, end, replacement in sorted(_edits(text, renames)):
        pieces += [text[done:begin], replacement]
        done = end
    return "".join([*pieces, text[done:]])


def mentions(models: Models, name: str) -> bool:
    """Whether any class or root field annotation of ``models`` refers to ``name`` (the root refers to itself
    through a root field: ``{"$ref": "#"}``)."""
    texts = [*models.classes.values(), *(f.annotation for f in models.root_fields)]
    return any(_edits(text, {name: name}) for text in texts)


class _Lines:
    """Character offsets of ``ast`` positions (whose columns count UTF-8 bytes) in ``text``."""

    def __init__(self, text: str) -> None:
        self.lines = _LINE.findall(text)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def offset(self, row: int, byte_col: int) -> int:
        return self.starts[row - 1] + len(self.lines[row - 1].encode()[:byte_col].decode())

    def span(self, node: ast.expr) -> tuple[int, int]:
        assert node.end_lineno is not None and node.end_col_offset is not None
        return self.offset(node.lineno, node.col_offset), self.offset(node.end_lineno, node.end_col_offset)


def _data(tree: ast.AST) -> set[int]:
    """The ids of the string constants in ``tree`` that are data, not names: docstrings, ``Literal`` values and
    the functional form's keys."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            skipped |= {id(item.value) for item in node.body if isinstance(item, ast.Expr)}
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "Literal":
            skipped |= {id(inner) for inner in ast.walk(node.slice)}
        elif isinstance(node, ast.Dict):
            skipped |= {id(key) for key in node.keys if key is not None}
    return skipped


def _quoted(text: str, quote: str = '"') -> str:
    """``text`` as a string literal, in ``quote`` when it needs no escape."""
    return f"{quote}{text}{quote}" if quote not in text and "\\" not in text else literal(text)


def _forward(value: str, renames: dict[str, str]) -> str | None:
    """A string forward reference (``"Node"``, ``"Node | None"``) with ``renames`` applied, or None when it names
    none of them (or is no expression)."""
    if not any(name in value for name in renames):
        return None
    try:
        tree = ast.parse(value, mode="eval")
    except SyntaxError:
        return None
    skipped = _data(tree)
    hits = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in renames:
            node.id, hits = renames[node.id], True
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skipped:
            inner = _forward(node.value, renames)
            if inner is not None:
                node.value, hits = inner, True
    return ast.unparse(tree) if hits else None


def _unquoted(expr: ast.expr) -> ast.expr:
    """``expr`` with its string forward references written as the expressions they hold, and ``Optional[X]`` as
    ``X | None`` (the generator writes it for a forward reference, where ``"X" | None`` would fail at import)."""
    expr = copy.deepcopy(expr)
    skipped = _data(expr)

    class Unquote(ast.NodeTransformer):
        def visit_Constant(self, node: ast.Constant) -> ast.expr:
            if isinstance(node.value, str) and id(node) not in skipped:
                try:
                    return _unquoted(ast.parse(node.value, mode="eval").body)
                except SyntaxError:
                    pass
            return node

        def visit_Subscript(self, node: ast.Subscript) -> ast.expr:
            self.generic_visit(node)
            if isinstance(node.value, ast.Name) and node.value.id == "Optional":
                return ast.BinOp(node.slice, ast.BitOr(), ast.Constant(None))
            return node

    result: ast.expr = Unquote().visit(expr)
    return result


def deferred(classes: dict[str, str]) -> dict[str, str]:
    """``classes`` (in the order the module defines them) with every value of a functional ``TypedDict`` that
    names a class not yet defined written as a string: the functional form evaluates its types at import, and the
    generator leaves a reference to the root bare (a recursive root's class is written after the definitions that
    refer back to it). A value with the generator's ``Optional["X"]`` is written ``"X | None"`` too: ``Optional``
    is no name the stubs import."""
    names = list(classes)
    return {name: _defer(source, set(names[index:])) for index, (name, source) in enumerate(classes.items())}


def _defer(source: str, later: set[str]) -> str:
    if source.startswith("class "):
        return source
    node = ast.parse(source).body[0]
    if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and len(node.value.args) >= 2):
        return source
    spec = node.value.args[1]
    if not isinstance(spec, ast.Dict):
        return source
    lines = _Lines(source)
    edits: list[tuple[int, int, str]] = []
    for value in spec.values:
        if not any(isinstance(n, ast.Name) and (n.id in later or n.id == "Optional") for n in ast.walk(value)):
            continue
        inner = value
        if isinstance(value, ast.Subscript) and isinstance(value.value, ast.Name):
            if value.value.id in ("NotRequired", "Required"):
                inner = value.slice
        edits.append((*lines.span(inner), _quoted(ast.unparse(_unquoted(inner)))))
    for begin, end, text in sorted(edits, reverse=True):
        source = source[:begin] + text + source[end:]
    return source


def _edits(text: str, renames: dict[str, str]) -> list[tuple[int, int, str]]:
    """Where ``text`` names one of ``renames`` (see :func:`_rename_names`): character spans and their new text."""
    lines = _Lines(text)
    tree = ast.parse(text)
    fields: set[int] = set()  # positions of the class form's field names, which are wire keys
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    fields.add(lines.span(item.target)[0])
    skipped = _data(tree)
    edits: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skipped:
            new = renames.get(node.value) or _forward(node.value, renames)
            if new is not None:
                begin, end = lines.span(node)
                quote = "'" if text[begin] == text[end - 1] == "'" else '"'
                edits.append((begin, end, _quoted(new, quote)))
    feed = iter(lines.lines)  # the lines ast counts, so both agree on rows (a lone \r ends one)
    for token in tokenize.generate_tokens(lambda: next(feed, "")):
        if token.type == tokenize.NAME and token.string in renames:
            (row, col), (end_row, end_col) = token.start, token.end
            begin = lines.starts[row - 1] + col
            if begin not in fields:
                edits.append((begin, lines.starts[end_row - 1] + end_col, renames[token.string]))
    return edits


def rename_classes(models: Models, renames: dict[str, str]) -> Models:
    """Rename classes (and every reference to them) to avoid clashes with another set of models."""
    if not renames:
        return models

    def sub(text: str) -> str:
        return _rename_names(text, renames)

    return Models(
        typing_names=set(models.typing_names),
        classes={renames.get(k, k): sub(v) for k, v in models.classes.items()},
        root_fields=[RootField(f.name, sub(f.annotation), f.required) for f in models.root_fields],
        root_source=sub(models.root_source),
    )
