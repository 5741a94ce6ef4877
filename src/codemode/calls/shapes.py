"""Result shapes: the keys and types of a tool's results, never their values, bounded whatever the result.

A shape is plain JSON data, so it can be merged, hashed, persisted and handed to the compiler::

    {"t": "str"} {"t": "int"} {"t": "float"} {"t": "bool"} {"t": "null"} {"t": "any"}
    {"t": "list", "item": SHAPE | None}                 # None: only empty lists seen
    {"t": "object", "keys": {KEY: SHAPE}, "optional": [KEY, ...]}
    {"t": "map"}                                        # an object too wide or with unusable keys
    {"t": "block", "kind": "image" | "audio" | "resource" | "resource_link"}
    {"t": "union", "of": [SHAPE, ...]}                  # at most one member per family, no nested unions

Results come from upstreams, which are not trusted: every walk is capped (:data:`MAX_DEPTH` levels,
:data:`MAX_KEYS` keys per object, :data:`LIST_SAMPLE` items per list, :data:`MAX_NODES` nodes per shape,
:data:`MAX_UNION` members per union); past a cap the part becomes ``any``/``map``, which the compiler types as
``Any``/``dict[str, Any]`` — wider, never wrong. :func:`check` re-applies the caps to a shape read from disk.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import mcp_types as types

Shape = dict[str, Any]

MAX_DEPTH = 6
"""Levels of nesting kept; deeper values are ``any``."""
MAX_KEYS = 64
"""Keys an object may have and stay a typed object; a wider one is a ``map`` (``dict[str, Any]``)."""
MAX_KEY_CHARS = 64
"""Longest key kept; an object with a longer one is a ``map``."""
LIST_SAMPLE = 20
"""Items looked at from each end of a list (a 10,000-row result costs 40 item walks, not 10,000)."""
MAX_NODES = 400
"""Nodes in one shape; past it the rest is ``any``."""
MAX_UNION = 4
"""Members of a union; a wider one is ``any``."""
BLOCK_KINDS = ("image", "audio", "resource", "resource_link")
"""Content blocks other than text, each typed as its own ``TypedDict`` in the stubs."""

ANY: Shape = {"t": "any"}
_SCALARS = {"str", "int", "float", "bool", "null", "any"}


class _Budget:
    def __init__(self, nodes: int) -> None:
        self.nodes = nodes

    def take(self) -> bool:
        self.nodes -= 1
        return self.nodes >= 0


def shape_of(value: Any) -> Shape:
    """The shape of a JSON value (as the guest receives it): keys and types only."""
    return _shape(value, 1, _Budget(MAX_NODES))


def _shape(value: Any, depth: int, budget: _Budget) -> Shape:
    if not budget.take():
        return ANY
    if value is None:
        return {"t": "null"}
    if isinstance(value, bool):
        return {"t": "bool"}
    if isinstance(value, int):
        return {"t": "int"}
    if isinstance(value, float):
        return {"t": "float"}
    if isinstance(value, str):
        return {"t": "str"}
    if depth > MAX_DEPTH:
        return ANY
    if isinstance(value, list):
        sample = value if len(value) <= 2 * LIST_SAMPLE else value[:LIST_SAMPLE] + value[-LIST_SAMPLE:]
        item: Shape | None = None
        for element in sample:
            shape = _shape(element, depth + 1, budget)
            item = shape if item is None else merge(item, shape)
        return {"t": "list", "item": item}
    if isinstance(value, dict):
        if len(value) > MAX_KEYS or not all(usable_key(k) for k in value):
            return {"t": "map"}
        keys = {k: _shape(v, depth + 1, budget) for k, v in value.items()}
        return {"t": "object", "keys": keys, "optional": []}
    return ANY


def usable_key(key: Any) -> bool:
    """Whether ``key`` can be a ``TypedDict`` key in a stub: a short string that is valid UTF-8 (any other
    character, newlines and quotes included, is written as an escaped string literal, never as code)."""
    if not isinstance(key, str) or len(key) > MAX_KEY_CHARS:
        return False
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shape_of_result(result: types.CallToolResult, value: Any) -> Shape:
    """The shape of what a stub returns for ``result`` (``value`` is :func:`result_for_guest`'s conversion).

    Structured content is its own shape; a text block is the shape of its parsed JSON, or ``str``; another
    block is a ``block`` of its kind; several blocks are a list of their merged shapes, or one such item (the
    guest gets the bare item when the next result has one block).
    """
    if result.structured_content is not None:
        return shape_of(result.structured_content)
    blocks = result.content
    items = [value] if len(blocks) == 1 else value
    if not isinstance(items, list) or len(items) != len(blocks):
        return ANY
    shapes: list[Shape] = []
    for block, item in zip(blocks, items, strict=True):
        if block.type == "text":
            shapes.append(shape_of(item))
        elif block.type in BLOCK_KINDS:
            shapes.append({"t": "block", "kind": block.type})
        else:
            shapes.append(ANY)
    if len(shapes) == 1:
        return shapes[0]
    item_shape: Shape | None = None
    for shape in shapes[: 2 * LIST_SAMPLE]:
        item_shape = shape if item_shape is None else merge(item_shape, shape)
    listed: Shape = {"t": "list", "item": item_shape}
    # Several blocks come back as a list, but one block as the bare item: a tool that answers one block per
    # row returns the item itself when there is one row, so its type says so.
    return listed if item_shape is None else merge(listed, item_shape)


def _family(shape: Shape) -> str:
    kind = shape["t"]
    if kind in ("int", "float"):
        return "number"
    if kind in ("object", "map"):
        return "object"
    if kind == "block":
        return f"block:{shape['kind']}"
    return str(kind)


def _members(shape: Shape) -> list[Shape]:
    return list(shape["of"]) if shape["t"] == "union" else [shape]


def merge(a: Shape, b: Shape) -> Shape:
    """The narrowest shape both ``a`` and ``b`` fit: keys missing on one side become optional, different
    types become a union (``int`` and ``float`` a ``float``), and anything past a cap ``any``."""
    if a == b:  # the common case (rows of one table, a tool's next result): one C-level comparison
        return a
    if a["t"] == "any" or b["t"] == "any":
        return ANY
    if a["t"] == "union" or b["t"] == "union" or _family(a) != _family(b):
        by_family: dict[str, Shape] = {}
        for member in [*_members(a), *_members(b)]:
            family = _family(member)
            by_family[family] = merge(by_family[family], member) if family in by_family else member
        if any(m["t"] == "any" for m in by_family.values()) or len(by_family) > MAX_UNION:
            return ANY
        members = sorted(by_family.values(), key=_sort_key)
        return members[0] if len(members) == 1 else _bounded({"t": "union", "of": members})
    kind = a["t"]
    if kind in ("int", "float"):
        return a if kind == b["t"] else {"t": "float"}
    if kind == "list":
        item_a, item_b = a.get("item"), b.get("item")
        item = item_b if item_a is None else item_a if item_b is None else merge(item_a, item_b)
        return _bounded({"t": "list", "item": item})
    if kind in ("object", "map"):
        if kind == "map" or b["t"] == "map":
            return {"t": "map"}
        keys_a, keys_b = a["keys"], b["keys"]
        if len(set(keys_a) | set(keys_b)) > MAX_KEYS:
            return {"t": "map"}
        keys = {k: merge(keys_a[k], keys_b[k]) if k in keys_a and k in keys_b else keys_a.get(k) or keys_b[k]
                for k in sorted(set(keys_a) | set(keys_b))}  # fmt: skip
        optional = (set(keys_a) ^ set(keys_b)) | set(a["optional"]) | set(b["optional"])
        return _bounded({"t": "object", "keys": keys, "optional": sorted(optional)})
    return a  # same scalar, or the same block kind


def _sort_key(shape: Shape) -> str:
    return json.dumps(shape, sort_keys=True)


def _bounded(shape: Shape) -> Shape:
    """``shape`` with every node past :data:`MAX_NODES` (breadth first) made ``any``."""
    budget = _Budget(MAX_NODES)
    return _clip(shape, budget)


def _clip(shape: Shape, budget: _Budget) -> Shape:
    if not budget.take():
        return ANY
    kind = shape["t"]
    if kind == "list":
        item = shape.get("item")
        return {"t": "list", "item": None if item is None else _clip(item, budget)}
    if kind == "object":
        return {**shape, "keys": {k: _clip(v, budget) for k, v in shape["keys"].items()}}
    if kind == "union":
        members = [_clip(m, budget) for m in shape["of"]]
        return ANY if any(m["t"] == "any" for m in members) else {"t": "union", "of": members}
    return shape


def check(data: Any, depth: int = 1) -> Shape:
    """``data`` (a shape read from a file, so untrusted) as a well-formed shape within every cap.

    Raises:
        ValueError: ``data`` is not a shape.
    """
    shape = _check(data, depth, _Budget(MAX_NODES))
    return shape


def _check(data: Any, depth: int, budget: _Budget) -> Shape:
    if not isinstance(data, dict) or not isinstance(data.get("t"), str):
        raise ValueError("not a shape")
    kind = data["t"]
    if not budget.take() or (depth > MAX_DEPTH + 1 and kind not in _SCALARS and kind != "map"):
        return ANY
    if kind in _SCALARS or kind == "map":
        return {"t": kind}
    if kind == "block":
        if data.get("kind") not in BLOCK_KINDS:
            raise ValueError("unknown block kind")
        return {"t": "block", "kind": data["kind"]}
    if kind == "list":
        item = data.get("item")
        return {"t": "list", "item": None if item is None else _check(item, depth + 1, budget)}
    if kind == "object":
        keys, optional = data.get("keys"), data.get("optional")
        if not isinstance(keys, dict) or not isinstance(optional, list):
            raise ValueError("malformed object shape")
        if len(keys) > MAX_KEYS or not all(usable_key(k) for k in keys):
            return {"t": "map"}
        checked = {k: _check(v, depth + 1, budget) for k, v in sorted(keys.items())}
        return {"t": "object", "keys": checked, "optional": sorted({k for k in optional if k in checked})}
    if kind == "union":
        members = data.get("of")
        if not isinstance(members, list) or not 2 <= len(members) <= MAX_UNION:
            raise ValueError("malformed union shape")
        merged: Shape = _check(members[0], depth, budget)
        for member in members[1:]:
            merged = merge(merged, _check(member, depth, budget))
        return merged
    raise ValueError(f"unknown shape kind {kind[:20]!r}")


def digest(shape: Shape | list[str]) -> str:
    """A short stable hash of a shape (or of a list of digests)."""
    text = json.dumps(shape, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]


__all__ = ["ANY", "BLOCK_KINDS", "Shape", "check", "digest", "merge", "shape_of", "shape_of_result", "usable_key"]
