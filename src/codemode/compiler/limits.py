"""What an upstream's tool definition may cost the compiler, checked before the work it bounds.

An upstream is not trusted: its descriptions and schemas go through regexes, ``json.dumps``, the code
generator and ``ast``. :func:`screen` runs first, on every tool, with iterative walks only (no recursion, no
serialisation), and returns a tool the rest of the compiler can afford: its description capped, and a schema
that is too big, too deep or references anything outside itself replaced by a marker that makes the tool's
stub the generic ``(**arguments: Any) -> Any`` one. Each refusal is a warning naming the tool and the limit,
never quoting what a reference points at.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from typing import Any

from codemode.errors import CompileError
from codemode.hub.models import ToolSpec

MAX_DESCRIPTION = 32 * 1024
"""Characters of a tool's description kept (docstring and index). The largest in the 37 captured real
catalogs is 14,020; a 40 MB one otherwise costs gigabytes in the renderer's docstring regex."""
MAX_SCHEMA_BYTES = 256 * 1024
"""Approximate serialised size of one schema (input, output or annotations). Real ones are under 26 KB."""
MAX_SCHEMA_DEPTH = 64
"""Nesting of dicts and lists in one schema. Real ones are under 12; ``json`` and the generator recurse."""
MAX_EXPANDED = 1024
"""Objects that inlining one schema's local references would add. References let a schema of a kilobyte stand
for millions of objects (each definition naming the next twice), and the code generator's cost grows with that
expansion, not with the bytes: 4,000 objects took it seconds, 60,000 a minute. Of the 1,488 schemas in the 37
captured real catalogs, the most any adds is 181."""
MAX_NAME = 1024
"""Longest tool name compiled (MCP suggests at most 128); a longer one is skipped with a warning, since the
stub must repeat it verbatim to call it. Also the most of a name a warning quotes."""

REFUSED = "x-codemode-refused"
"""Key of the marker schema :func:`screen` substitutes; the renderer turns it into a generic stub."""

_RULE = "(only local '#/…' references are resolved)"
_REF_KEYS = ("$ref", "$dynamicRef", "$recursiveRef")
"""``$id`` changes the base a ``#/…`` reference resolves against: a string one is refused unless it is a bare
fragment (a property *named* ``$id`` has a schema, a dict, as its value and is fine). Draft-4 ``id`` is
only honoured by the generator at the root, where a URI- or path-like one is refused."""
_REFERRING = frozenset([*_REF_KEYS, "$id", "id"])
"""Keys of an object that :func:`check_refs` or :func:`expanded_size` act on (``id`` at the root only)."""


def check_refs(schema: Any) -> None:
    """Allow only references inside ``schema``: ``#`` or a ``#/…`` JSON pointer that resolves.

    ``$dynamicRef``/``$recursiveRef`` follow the same rule, and a string ``$id`` that is not a bare
    fragment is refused (it would re-base ``#/…`` onto a file or URL). Iterative: any depth, no recursion.

    Raises:
        CompileError: naming the rule broken, never the reference's target (whose content is external).
    """
    root_id = schema.get("id") if isinstance(schema, dict) else None
    if isinstance(root_id, str) and any(c in root_id for c in ":/\\."):
        raise CompileError(f"a root id that re-bases references outside the schema was refused {_RULE}")
    for node in dicts(schema):
        for key in _REF_KEYS:
            ref = node.get(key)
            if isinstance(ref, str) and target(schema, ref) is MISSING:
                raise CompileError(
                    f"a {key} that is not a local '#/…' reference resolving inside the schema was refused"
                )
        base = node.get("$id")
        if isinstance(base, str) and base and not base.startswith("#"):
            raise CompileError(f"a $id that re-bases references outside the schema was refused {_RULE}")


MISSING = object()
"""What :func:`target` answers for a reference that does not resolve inside the schema."""


def target(schema: Any, ref: str) -> Any:
    """What the local reference ``ref`` (``#`` or a ``#/…`` JSON pointer) points at in ``schema``, or
    :data:`MISSING`."""
    if ref == "#":
        return schema
    if not ref.startswith("#/"):
        return MISSING
    node: Any = schema
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return MISSING
    return node


def dicts(node: Any) -> Iterator[dict[Any, Any]]:
    """Every object in ``node`` (lists walked too), without recursion: schemas nest as deep as they like. Objects
    the caller adds to one it was given are walked as well."""
    stack: list[Any] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def measure(value: Any, *, max_depth: int = MAX_SCHEMA_DEPTH, max_bytes: int = MAX_SCHEMA_BYTES) -> str | None:
    """Why ``value`` is over a limit (depth or approximate JSON size), or None. Stops at the first excess."""
    return _measure(value, max_depth, max_bytes)[0]


def _measure(value: Any, max_depth: int, max_bytes: int) -> tuple[str | None, bool]:
    """:func:`measure`'s answer, and whether any object in ``value`` has a key that refers or re-bases (what
    :func:`check_refs` and :func:`expanded_size` look at): most schemas have none, and then neither need
    walking them again."""
    size = 0
    refers = False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > max_depth:
                return f"nested deeper than {max_depth} levels (limit {max_depth})", refers
            size += 2
            if isinstance(node, dict):
                refers = refers or not _REFERRING.isdisjoint(node)
                for key, item in node.items():
                    size += len(key) + 4 if isinstance(key, str) else 8
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in node)
        elif isinstance(node, str):
            size += len(node) + 3
        else:
            size += 8
        if size > max_bytes:
            return f"larger than {max_bytes // 1024} KB serialised (limit {max_bytes // 1024} KB)", refers
    return None, refers


def clean_text(text: str) -> str:
    """``text`` without what cannot be written as UTF-8 source: NUL becomes U+FFFD, lone surrogates ``?``."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def expanded_size(schema: Any, limit: int) -> int:
    """How many objects inlining every local ``$ref`` of ``schema`` would add (a reference that leads back
    into its own chain adds one), or ``limit + 1`` once past ``limit``: a schema without references adds none.
    Call after :func:`check_refs` (a reference that does not resolve adds one). Iterative: each definition is
    walked once, whatever the number of paths to it."""
    walked: dict[str, tuple[int, list[str]]] = {}
    sizes: dict[str, int] = {}
    visiting: set[str] = set()

    def total(count: int, refs: list[str]) -> int:
        for ref in refs:
            count += sizes.get(ref, 1)  # not known: a reference back into the chain being sized
            if count > limit:
                return limit + 1
        return count

    # The root's own definitions are reached through its references only: what they refer to is counted then.
    root = _objects({k: v for k, v in schema.items() if k not in DEFINITIONS} if isinstance(schema, dict) else schema)
    stack = list(root[1])
    while stack:
        ref = stack[-1]
        if ref in sizes:
            stack.pop()
            continue
        if ref not in walked:
            found = target(schema, ref)
            walked[ref] = _objects(None if found is MISSING else found)
            visiting.add(ref)
            waiting = [r for r in walked[ref][1] if r not in sizes and r not in visiting]
            if waiting:
                stack.extend(waiting)
                continue
        sizes[ref] = total(*walked[ref])
        visiting.discard(ref)
        stack.pop()
    return total(0, root[1])


DEFINITIONS = ("$defs", "definitions")
"""Where a schema keeps the definitions its references name."""


def _objects(node: Any) -> tuple[int, list[str]]:
    """The objects under ``node`` (not following references) and the references among them."""
    found = list(dicts(node))
    return len(found), [ref for item in found if isinstance(ref := item.get("$ref"), str)]


def screen(spec: ToolSpec) -> tuple[ToolSpec, list[str]]:
    """``spec`` made affordable (see the module doc), plus one warning per limit it broke.

    Raises:
        CompileError: the tool cannot be compiled at all (a name over :data:`MAX_NAME`); skip it.
    """
    label = f"{clean_text(spec.server)[:MAX_NAME]}.{clean_text(spec.name)[:MAX_NAME]}"
    if len(spec.name) > MAX_NAME:
        raise CompileError(f"tool name is {len(spec.name):,} characters (limit {MAX_NAME})")
    warnings: list[str] = []
    changes: dict[str, Any] = {}
    description = spec.description if isinstance(spec.description, str) else str(spec.description)
    if len(description) > MAX_DESCRIPTION:
        warnings.append(
            f"{label}: description is {len(description):,} characters; kept the first {MAX_DESCRIPTION} "
            f"(limit {MAX_DESCRIPTION} characters)"
        )
        description = (
            description[:MAX_DESCRIPTION]
            + f"\n\n[description truncated by codemode: {len(spec.description):,} characters, "
            f"limit {MAX_DESCRIPTION}]"
        )
    cleaned = clean_text(description)
    if cleaned is not spec.description:
        changes["description"] = cleaned
    if isinstance(spec.title, str) and (len(spec.title) > MAX_NAME or clean_text(spec.title) != spec.title):
        changes["title"] = clean_text(spec.title[:MAX_NAME])

    refused: list[str] = []
    for field, value in (("inputSchema", spec.input_schema), ("outputSchema", spec.output_schema)):
        if value is None:
            continue
        reason, refers = _measure(value, MAX_SCHEMA_DEPTH, MAX_SCHEMA_BYTES)
        if reason is None and refers:
            try:
                check_refs(value)
            except CompileError as exc:
                reason = str(exc)
        if reason is None and refers and expanded_size(value, MAX_EXPANDED) > MAX_EXPANDED:
            reason = f"expands past {MAX_EXPANDED:,} objects once its references are inlined (limit {MAX_EXPANDED:,})"
        if reason is not None:
            refused.append(f"{field} {reason}")
    if refused:
        reason = "; ".join(refused)
        warnings.append(f"{label}: schema refused, using a generic signature: {reason}")
        # The marker's digest keeps the manifest hash tied to the original schemas without holding them.
        changes["input_schema"] = {REFUSED: reason, "digest": _digest(spec)}
        changes["output_schema"] = None
    if spec.annotations is not None:
        reason = measure(spec.annotations)
        if reason is not None:
            warnings.append(f"{label}: annotations dropped: {reason}")
            changes["annotations"] = None
    return (dataclasses.replace(spec, **changes) if changes else spec), warnings


def _digest(spec: ToolSpec) -> str:
    # Hash the schemas without serialising them (they may be arbitrarily deep): an iterative walk of reprs
    # of the leaves and the shape. Only used to invalidate the manifest when a refused schema changes.
    digest = hashlib.sha256()
    stack: list[Any] = [spec.input_schema, spec.output_schema]
    seen = 0
    while stack and seen < 1_000_000:
        node = stack.pop()
        seen += 1
        if isinstance(node, dict):
            digest.update(b"{")
            for key in sorted(node, key=str):
                digest.update(str(key).encode("utf-8", "replace"))
                stack.append(node[key])
        elif isinstance(node, list):
            digest.update(b"[")
            stack.extend(node)
        else:
            digest.update(repr(node).encode("utf-8", "replace"))
    return digest.hexdigest()[:16]
