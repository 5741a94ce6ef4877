"""The ``fetch`` op: the guest reads part of a result the host kept (:mod:`codemode.calls.handles`).

A request names a handle, a path from the result to a node (list indexes, object keys) and the most bytes
its answer may carry. Every number is checked before any work: ``max_bytes`` within
:data:`MAX_FETCH_BYTES`, ``start``/``stop`` non-negative, the path's steps of the node's own kind. An
answer never carries more than ``max_bytes`` of data (as JSON), and always makes progress: an item too
large to send comes back as a descriptor the guest reads the same way (a handle on that part). Only an
object key longer than ``max_bytes`` is sent whole (it is a key: it has no parts).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from codemode.calls.handles import Kept, ResultStore
from codemode.protocol import BLOB_MIN

if TYPE_CHECKING:
    from codemode.calls.gate import Reply, RunContext

MAX_FETCH_BYTES = 4 * 1024 * 1024
"""The most bytes one ``fetch`` answer may carry (the guest asks for 1 MB)."""
PREVIEW_CHARS = 300
"""The most characters of a handle's ``preview``."""

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def json_size(value: Any) -> int:
    """``value``'s size as compact UTF-8 JSON in a frame (a long string as its UTF-8 bytes: it travels as a
    raw blob)."""
    if isinstance(value, str):
        if len(value) >= BLOB_MIN:
            return len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
        return len(_ENCODER.encode(value).encode("utf-8", "surrogatepass"))
    if value is None or isinstance(value, bool | int | float):
        return len(_ENCODER.encode(value))
    return len(_ENCODER.encode(value).encode("utf-8", "surrogatepass"))


def kind_of(value: Any) -> str | None:
    """``list``, ``object`` or ``text`` for a value a handle can stand for; None for a scalar."""
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, str):
        return "text"
    return None


def describe(kept: Kept, path: list[Any], node: Any, size: int, room: int) -> dict[str, Any]:
    """The descriptor the guest wraps in a ``ResultHandle``: ``room`` is the most one read may bring in."""
    return {
        "id": kept.id,
        "path": path,
        "type": kind_of(node),
        "length": len(node),
        "size": size,
        "preview": preview(node),
        "room": room,
    }


def preview(node: Any) -> str:
    """The start of ``node`` as text, at most :data:`PREVIEW_CHARS` characters (``…`` marks a cut)."""
    if isinstance(node, str):
        head = node[:PREVIEW_CHARS]
    elif isinstance(node, list):
        head = _ENCODER.encode(_small(node[:5]))
    else:
        head = _ENCODER.encode(_small({k: node[k] for k in list(node)[:5]}))
    return head if len(head) <= PREVIEW_CHARS and head == _full(node, head) else head[: PREVIEW_CHARS - 1] + "…"


def _full(node: Any, head: str) -> str:
    # Whether the preview shows everything: a short text, or a container of at most 5 small items.
    if isinstance(node, str):
        return node
    return head if len(node) <= 5 and _small(node) == node else ""


def _small(value: Any, depth: int = 0) -> Any:
    # Long strings and big containers shortened, so a preview never encodes a megabyte to show 300 characters.
    if isinstance(value, str):
        return value if len(value) <= PREVIEW_CHARS else value[:PREVIEW_CHARS]
    if depth > 3:
        return "…"
    if isinstance(value, list):
        return [_small(v, depth + 1) for v in value[:5]]
    if isinstance(value, dict):
        return {k: _small(value[k], depth + 1) for k in list(value)[:5]}
    return value


class FetchOp:
    """The gate's handler of ``fetch`` (registered by :func:`codemode.calls.gate.default_gate` as a local op:
    it reads host memory only, so it is served on the thread the request arrives on)."""

    def __init__(self, store: ResultStore) -> None:
        self.store = store

    def __call__(self, ctx: RunContext, message: dict[str, Any]) -> Reply:
        from codemode.calls.gate import Reply

        max_bytes = message["max_bytes"]
        if not 1 <= max_bytes <= MAX_FETCH_BYTES:
            return Reply.refuse("too_large", f"max_bytes must be 1 to {MAX_FETCH_BYTES:,}, not {max_bytes:,}")
        start, stop = message.get("start"), message.get("stop")
        if (start is not None and start < 0) or (stop is not None and stop < 0):
            return Reply.refuse("bridge", "start and stop must not be negative (the runtime counts from the end)")
        kept = self.store.get(ctx.session, message["handle"])
        if kept is None:
            return Reply.refuse(
                "unknown",
                "no such result handle in this session: it was dropped to make room (the session keeps at most "
                f"{self.store.session_bytes:,} bytes, the host {self.store.total_bytes:,}, the clients keeping the "
                "most giving way first; call the tool again), or it belongs to another session",
            )
        path = message.get("path") or []
        node = kept.value
        for depth, step in enumerate(path):
            found, node = _step(node, step)
            if not found:
                if depth == len(path) - 1 and start is None:
                    return Reply(True, value={"missing": True})
                return Reply.refuse("bridge", f"the path {path!r:.200} does not lead to a part of the result")
        room = ctx.limits.max_read_bytes
        if start is None:
            if kind_of(node) is not None and _size_within(kept, node, max_bytes) is None:
                return Reply(True, value={"handle": describe(kept, path, node, kept.size_of(node), room)})
            return Reply(True, value={"value": node})
        if kind_of(node) is None:
            return Reply.refuse("bridge", f"a {type(node).__name__} has no items to slice")
        stop = len(node) if stop is None else min(stop, len(node))
        start = min(start, stop)
        if isinstance(node, str):
            text = _text_within(node, start, stop, max_bytes)
            return Reply(True, value={"text": text, "next": start + len(text)})
        return Reply(True, value=_items(kept, path, node, start, stop, max_bytes, bool(message.get("keys")), room))


def _step(node: Any, step: Any) -> tuple[bool, Any]:
    if isinstance(node, list) and type(step) is int:
        return (True, node[step]) if 0 <= step < len(node) else (False, None)
    if isinstance(node, dict) and isinstance(step, str):
        return (True, node[step]) if step in node else (False, None)
    return False, None


def _size_within(kept: Kept, node: Any, limit: int) -> int | None:
    """``node``'s JSON size if it is at most ``limit``, else None. A container with more items than half the
    limit is too big without being measured (each item costs a byte and a comma at least)."""
    if isinstance(node, list | dict | str) and len(node) > limit // 2 + 1:
        return None
    size = kept.size_of(node)
    return size if size <= limit else None


def _text_within(text: str, start: int, stop: int, max_bytes: int) -> str:
    """``text[start:stop]`` cut to at most ``max_bytes`` UTF-8 bytes (at least one character)."""
    piece = text[start : min(stop, start + max_bytes)]
    data = piece.encode("utf-8", "surrogatepass")
    if len(data) <= max_bytes:
        return piece
    cut = data[:max_bytes].decode("utf-8", "ignore")  # a character cut in two is left for the next read
    return cut or piece[:1]


def _items(
    kept: Kept, path: list[Any], node: list[Any] | dict[str, Any], start: int, stop: int, max_bytes: int,
    keys_only: bool, room: int,
) -> dict[str, Any]:
    """Items ``start`` onwards while they fit in ``max_bytes`` (at least one); an item too big alone becomes a
    descriptor.

    The items are measured by encoding a run of them at once (C speed): as many as the node's average item
    size says fit, halved until they do.
    """
    if start >= stop:
        return {"items": [], "next": start, "handles": {}}
    keys = kept.keys_of(node) if isinstance(node, dict) else None
    average = 16 if keys_only else max(1, kept.size_of(node) // len(node))  # keys: a guess, halved if long
    count = max(1, min(stop - start, max_bytes // average))
    while True:
        piece = _piece(node, keys, start, start + count, keys_only)
        if count == 1 or json_size(piece) <= max_bytes:
            break
        count //= 2
    handles: dict[str, Any] = {}
    if count == 1 and not keys_only and json_size(piece) > max_bytes:
        key = keys[start] if keys is not None else start
        value = node[key]  # type: ignore[index]
        if kind_of(value) is not None:
            handles["0"] = describe(kept, [*path, key], value, kept.size_of(value), room)
            piece = [[key, None]] if keys is not None else [None]
    return {"items": piece, "next": start + count, "handles": handles}


def _piece(
    node: list[Any] | dict[str, Any], keys: list[str] | None, start: int, stop: int, keys_only: bool
) -> list[Any]:
    if keys is None:
        return node[start:stop]  # type: ignore[index]
    if keys_only:
        return keys[start:stop]
    return [[key, node[key]] for key in keys[start:stop]]  # type: ignore[call-overload]
