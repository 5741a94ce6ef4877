"""Python identifiers for wire names: keywords, dashes, ``$``, leading digits, non-ASCII, collisions."""

from __future__ import annotations

import hashlib
import json
import keyword
import re
import unicodedata

_NON_IDENT = re.compile(r"[^0-9A-Za-z_]+")

RESERVED_MODULE_NAMES = frozenset(
    {
        "annotations",
        "TYPE_CHECKING",
        "TOOLS",
        "SERVER",
        "importlib",
        "sys",
        "types",
        "Any",
        "_call",
        "_Package",
        "_builtins",
        "Literal",
        "NotRequired",
        "Required",
        "TypeAlias",
        "TypedDict",
        "cast",
        "__debug__",
    }
)
"""Names the generated modules use themselves (the typing names a stub may import among them), and
``__debug__``, which no code may bind; a tool or argument called one of these is renamed."""
BUILTIN_TYPES = frozenset({"list", "dict", "tuple", "str", "int", "float", "bool", "object"})
"""Builtins the stubs' annotations (and the package's ``list(TOOLS)``) use: a tool called one is renamed, or its
function would shadow the builtin in its own module."""


def identifier(name: str, *, fallback: str = "x") -> str:
    """A valid, non-keyword, ASCII Python identifier for ``name``; valid names are kept as they are."""
    if name.isascii() and name.isidentifier():
        text = name
        if keyword.iskeyword(text) or text in RESERVED_MODULE_NAMES:
            text += "_"
        return text
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text) if not text.isupper() else text
    text = _NON_IDENT.sub("_", text).strip("_").lower()
    text = re.sub(r"_+", "_", text)
    if not text:
        text = fallback
    if text[0].isdigit():
        text = f"{fallback}_{text}"
    if keyword.iskeyword(text) or text in RESERVED_MODULE_NAMES:
        text += "_"
    return text


def literal(text: str) -> str:
    """``text`` as a Python string literal, ASCII only.

    ``json.dumps`` (double quotes, as the stubs have always had) for text within the Basic Multilingual
    Plane; ``ascii()`` past it: JSON spells such a character as a surrogate pair (``"\\ud83d\\udcdd"``), which
    Python reads as two lone surrogates, so a stub would call a tool named ``📝`` by another name.
    """
    if text.isascii() or max(text) <= "\uffff":
        return json.dumps(text)
    return ascii(text)


def unique(name: str, taken: set[str], *, fold: bool = False, separator: str = "_") -> str:
    """``name`` itself, or ``name_2``, ``name_3``… — whichever is not in ``taken``; adds it to ``taken``.

    ``separator`` goes before the number: ``""`` for a class the code generator names (it drops underscores
    from class names, ``GResult_2`` would become ``GResult2``). With ``fold``, names that differ only by case
    count as the same (file and package names: ``Notes`` and ``notes`` would be one directory on a
    case-insensitive file system); ``taken`` then holds folded names.
    """
    candidate, n = name, 2
    while (candidate.casefold() if fold else candidate) in taken:
        candidate = f"{name}{separator}{n}"
        n += 1
    taken.add(candidate.casefold() if fold else candidate)
    return candidate


def class_name(name: str) -> str:
    """A CamelCase class name for a tool (``search-notes`` → ``SearchNotes``)."""
    parts = [p for p in identifier(name).split("_") if p]
    text = "".join(p[:1].upper() + p[1:] for p in parts) or "Tool"
    return text if not text[0].isdigit() else f"T{text}"


MAX_MODULE_NAME = 64
"""Longest module (file or package) name; longer ones keep a prefix plus a hash of the wire name, far under
the 255-byte file name limit even with the writer's temp-file affixes."""


def module_name(name: str, *, fallback: str) -> str:
    """:func:`identifier`, fit to be a file name in a package: no leading underscore (``__init__`` would
    replace the package's own module) and at most :data:`MAX_MODULE_NAME` characters."""
    text = identifier(name, fallback=fallback)
    if text in BUILTIN_TYPES:
        text += "_"
    if text.startswith("_"):
        text = f"{fallback}{text}"
    if len(text) > MAX_MODULE_NAME:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        text = f"{text[: MAX_MODULE_NAME - 9].rstrip('_')}_{digest}"
    return text
