"""The fast path: annotations for schemas with no nested objects, written directly (no code generator).

Most real tools take flat primitive arguments; writing those annotations directly is what makes a
1,000-tool catalog compile in seconds. Anything nested returns None and goes to the generator.
"""

from __future__ import annotations

from typing import Any

from codemode.compiler.naming import literal

_PRIMITIVES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "null": "None"}
_COMBINATORS = ("anyOf", "oneOf")


def flat_annotation(schema: Any) -> str | None:
    """A Python annotation for ``schema`` if it needs no TypedDict, else None."""
    if schema is True or schema == {}:
        return "Any"
    if not isinstance(schema, dict):
        return None
    if "$ref" in schema or "allOf" in schema or "not" in schema:
        return None
    if "const" in schema:
        return _literal([schema["const"]])
    if "enum" in schema:
        return _literal(schema["enum"])
    for key in _COMBINATORS:
        if key in schema:
            options = [flat_annotation(option) for option in schema[key]]
            if any(o is None for o in options) or not options:
                return None
            return _union([o for o in options if o is not None])
    kind = schema.get("type")
    if kind is None:
        return None if "properties" in schema else "Any"
    kinds = kind if isinstance(kind, list) else [kind]
    if not all(isinstance(k, str) for k in kinds):
        return None
    kinds = list(dict.fromkeys(kinds))  # once each: every "array" walks the same items again (N^depth for N copies)
    parts: list[str] = []
    for k in kinds:
        part = _one(k, schema)
        if part is None:
            return None
        parts.append(part)
    return _union(parts) if parts else "Any"


def _one(kind: Any, schema: dict[str, Any]) -> str | None:
    if kind in _PRIMITIVES:
        return _PRIMITIVES[kind]
    if kind == "array":
        items = schema.get("items")
        if items is None or items is True or items == {}:
            return "list[Any]"
        inner = flat_annotation(items)
        return None if inner is None else f"list[{inner}]"
    if kind == "object":
        if schema.get("properties"):
            return None
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            inner = flat_annotation(extra)
            return None if inner is None else f"dict[str, {inner}]"
        return "dict[str, Any]"
    return None


def _literal(values: list[Any]) -> str | None:
    if not values or not all(v is None or isinstance(v, (str, int, bool)) for v in values):
        return None if values else "Any"
    concrete = [v for v in values if v is not None]
    parts = []
    if concrete:
        parts.append("Literal[" + ", ".join(literal(v) if isinstance(v, str) else repr(v) for v in concrete) + "]")
    if len(concrete) != len(values):
        parts.append("None")
    return _union(parts)


def _union(parts: list[str]) -> str:
    seen: list[str] = []
    for part in parts:
        for piece in _split_union(part):
            if piece not in seen:
                seen.append(piece)
    if "Any" in seen:
        return "Any"
    # None last reads best: `int | None`.
    seen.sort(key=lambda p: p == "None")
    return " | ".join(seen)


def _split_union(annotation: str) -> list[str]:
    depth, start, out = 0, 0, []
    for i, ch in enumerate(annotation):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "|" and depth == 0:
            out.append(annotation[start:i].strip())
            start = i + 1
    out.append(annotation[start:].strip())
    return out


def is_nullable(annotation: str) -> bool:
    """True when ``None`` is one of the union's members."""
    return "None" in _split_union(annotation)
