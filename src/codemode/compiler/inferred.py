"""Result types inferred from observed results: a shape (:mod:`codemode.calls.shapes`) → an annotation and the
``TypedDict`` classes it names. Pure and deterministic.

Only keys and types reach a stub, never values. A key that is not an identifier, is a Python keyword, starts
with ``_`` or could shadow a name the annotations use is written in the functional form
(``X = TypedDict("X", {"a-b": str})``), where it is an escaped string literal: no key can become code.
"""

from __future__ import annotations

import json
import keyword
from dataclasses import dataclass

from codemode.calls.shapes import Shape, check, digest
from codemode.compiler.naming import class_name, literal, unique

BLOCK_CLASSES: dict[str, tuple[str, str]] = {
    "image": (
        "ImageContent",
        'class ImageContent(TypedDict):\n    """An image block: base64 ``data``."""\n\n'
        '    type: Literal["image"]\n    data: str\n    mimeType: str',
    ),
    "audio": (
        "AudioContent",
        'class AudioContent(TypedDict):\n    """An audio block: base64 ``data``."""\n\n'
        '    type: Literal["audio"]\n    data: str\n    mimeType: str',
    ),
    "resource": (
        "EmbeddedResource",
        "class ResourceContents(TypedDict):\n    uri: str\n    mimeType: NotRequired[str]\n"
        "    text: NotRequired[str]\n    blob: NotRequired[str]\n\n\n"
        "class EmbeddedResource(TypedDict):\n"
        '    """A resource block: ``resource`` holds ``text`` or base64 ``blob``."""\n\n'
        '    type: Literal["resource"]\n    resource: ResourceContents',
    ),
    "resource_link": (
        "ResourceLink",
        'class ResourceLink(TypedDict):\n    """A link to a resource (read it with the server\'s own tools)."""\n\n'
        '    type: Literal["resource_link"]\n    uri: str\n    name: str\n'
        "    mimeType: NotRequired[str]\n    description: NotRequired[str]",
    ),
}
"""The typed content blocks, as the guest receives them (the block's JSON form)."""

_SHADOWED = frozenset(
    {"str", "int", "float", "bool", "list", "dict", "None", "Any", "Literal", "NotRequired", "TypedDict", "type"}
)


@dataclass(frozen=True)
class Inferred:
    """A tool's inferred result type: the shape, how many results it was inferred from, and the digests of
    the distinct shapes those results had."""

    shape: Shape
    count: int
    digests: tuple[str, ...] = ()

    @property
    def digest(self) -> str:
        """One digest for the shapes seen."""
        return digest(sorted(self.digests)) if self.digests else digest(self.shape)

    def note(self) -> str:
        """The docstring's account of where the type comes from."""
        kinds = len(self.digests)
        seen = f"{kinds} shapes" if kinds > 1 else "1 shape"
        return f"inferred from {self.count} results ({seen}, digest {self.digest}); no output schema, may differ"


@dataclass
class Rendered:
    """An inferred result type as stub code."""

    annotation: str
    classes: dict[str, str]
    """Class name → source, dependencies first (a functional ``TypedDict`` evaluates its types at import)."""


def render_inferred(inferred: Inferred, base: str, taken: set[str]) -> Rendered:
    """The annotation and classes for ``inferred``'s shape; ``base`` names the top class (``ToolResult``),
    ``taken`` holds class names already in the module (and gets the new ones)."""
    shape = check(inferred.shape)  # the caps again: the shape came from a file
    objects: list[tuple[str, Shape]] = []
    blocks: set[str] = set()
    annotation = _Annotator(taken, objects, blocks).annotate(shape, base)
    names = {name for name, _ in objects} | set(taken)
    classes: dict[str, str] = {}
    for kind in sorted(blocks):
        name, source = BLOCK_CLASSES[kind]
        classes[name] = source
    for name, obj in objects:
        classes[name] = _typed_dict(name, obj, names)
    return Rendered(annotation, classes)


class _Annotator:
    """Shape → annotation, collecting the ``TypedDict``s (one class per distinct object shape) and blocks."""

    def __init__(self, taken: set[str], objects: list[tuple[str, Shape]], blocks: set[str]) -> None:
        self.taken = taken
        self.objects = objects
        self.blocks = blocks
        self.named: dict[str, str] = {}

    def annotate(self, shape: Shape, name: str) -> str:
        kind = shape["t"]
        if kind in ("str", "int", "float", "bool"):
            return str(kind)
        if kind == "null":
            return "None"
        if kind == "map":
            return "dict[str, Any]"
        if kind == "block":
            self.blocks.add(shape["kind"])
            return BLOCK_CLASSES[shape["kind"]][0]
        if kind == "list":
            item = shape.get("item")
            return f"list[{'Any' if item is None else self.annotate(item, f'{name}Item')}]"
        if kind == "union":
            # Objects first, so an item and a list of it share the shorter name.
            members = sorted(shape["of"], key=lambda m: m["t"] != "object")
            parts = [self.annotate(m, name) for m in members]
            return " | ".join(sorted(parts, key=lambda p: (p == "None", p)))
        if kind == "object" and shape["keys"]:
            key = json.dumps(shape, sort_keys=True)
            if key in self.named:
                return self.named[key]
            own = unique(name, self.taken | set(BLOCK_CLASSES), fold=False)
            self.taken.add(own)
            self.named[key] = own
            fields = {k: self.annotate(v, own + class_name(k)) for k, v in shape["keys"].items()}
            self.objects.append((own, {"keys": fields, "optional": shape["optional"]}))
            return own
        return "dict[str, Any]" if kind == "object" else "Any"


def _typed_dict(name: str, obj: Shape, names: set[str]) -> str:
    fields: dict[str, str] = obj["keys"]
    optional = set(obj["optional"])

    def typed(key: str) -> str:
        return f"NotRequired[{fields[key]}]" if key in optional else fields[key]

    if all(_plain(key, names) for key in fields):
        return "\n".join([f"class {name}(TypedDict):", *(f"    {key}: {typed(key)}" for key in fields)])
    # Ruff would ask for the class form when every key is an identifier (a key that shadows a type name).
    noqa = "  # noqa: UP013" if all(k.isidentifier() and not keyword.iskeyword(k) for k in fields) else ""
    lines = [f"{name} = TypedDict({noqa}", f"    {literal(name)},", "    {"]
    lines += [f"        {literal(key)}: {typed(key)}," for key in fields]
    lines += ["    },", ")"]
    return "\n".join(lines)


def _plain(key: str, names: set[str]) -> bool:
    return (
        key.isascii()
        and key.isidentifier()
        and not keyword.iskeyword(key)
        and not key.startswith("_")
        and key not in _SHADOWED
        and key not in names
    )


__all__ = ["BLOCK_CLASSES", "Inferred", "Rendered", "render_inferred"]
