"""Big tool results, read a part at a time (stdlib only).

A tool result larger than the host's threshold stays on the host; the call returns a :class:`ResultHandle`
that reads like the data and fetches what is used, in chunks of at most :data:`CHUNK_BYTES`::

    rows = db.query(sql="select * from events")      # a ResultHandle: list, 120,000 items, 52 MB
    len(rows); rows[0]; rows[-10:]                   # one item, the last ten
    errors = [r for r in rows if r["level"] == "error"]   # iterated a chunk at a time
    log = fs.read_text_file(path="/data/big.log")    # a text handle
    [line for line in log.lines() if "ERROR" in line]
    rows.to_json()                                   # the whole value, if it fits (``room`` bytes)

Objects have ``keys()``, ``values()``, ``items()``, ``get()`` and ``in``; text has ``text()``, ``lines()`` and
substring ``in``; ``json.dumps`` encodes a handle as its data. A part that is itself too big comes back as a
handle on that part. ``size`` is the
result's size in bytes (as JSON), ``preview`` its start. A read that would bring more than ``room`` bytes
into the sandbox at once (``to_json()``, ``text()``, a slice) raises ``QuotaExceeded`` before it starts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import codemode_runtime as _runtime
from codemode_runtime.protocol import KIND_TOO_LARGE, OP_FETCH

CHUNK_BYTES = 1024 * 1024
"""The most bytes one fetch asks the host for."""
READ_AHEAD_CHARS = 256 * 1024
"""A short slice of a text reads this far ahead, and the next slices are served from what came back (like a
buffered file: reading a text in small slices costs one fetch per 256 K characters, not one per slice)."""


class ResultHandle:
    """A tool result kept on the host; reads like the list, object or text it stands for."""

    __slots__ = ("_ahead", "_id", "_kind", "_length", "_path", "_room", "preview", "size")

    def __init__(self, descriptor: dict[str, Any]) -> None:
        self._id = str(descriptor["id"])
        self._path: list[Any] = list(descriptor.get("path") or [])
        self._kind = str(descriptor["type"])
        self._length = int(descriptor["length"])
        self._room = int(descriptor.get("room") or 0)
        self._ahead: tuple[int, str] | None = None
        """The text read ahead: (where it starts, the characters)."""
        self.size: int = int(descriptor["size"])
        """The result's size in bytes, as JSON."""
        self.preview: str = str(descriptor.get("preview", ""))
        """The start of the result as text (``…`` where it was cut)."""

    @property
    def type(self) -> str:
        """``list``, ``object`` or ``text``."""
        return self._kind

    def __repr__(self) -> str:
        count = {"list": "items", "object": "keys", "text": "characters"}.get(self._kind, "items")
        how = {
            "list": "len(h), h[i], h[a:b], for x in h",
            "object": "h['key'], h.get('key'), h.keys(), h.items()",
            "text": "h[a:b], h.lines(), 'word' in h, h.text()",
        }.get(self._kind, "")
        return (
            f"<ResultHandle {self._kind}: {self._length:,} {count}, {self.size:,} bytes kept on the host; "
            f"read it with {how}, h.to_json(). preview: {self.preview}>"
        )

    __str__ = __repr__

    def __len__(self) -> int:
        return self._length

    def __bool__(self) -> bool:
        return self._length > 0

    # -- reading ----------------------------------------------------------------------------------

    def _fetch(self, path: list[Any], **fields: Any) -> dict[str, Any]:
        result = _runtime.request(OP_FETCH, handle=self._id, path=path, max_bytes=CHUNK_BYTES, **fields)
        if not isinstance(result, dict):
            raise _runtime.BridgeError("codemode", OP_FETCH, "the host sent a malformed fetch answer")
        return result

    def _part(self, key: Any) -> Any:
        """The node at ``key`` below this one: its value, or a handle on it when it is big."""
        answer = self._fetch([*self._path, key])
        if answer.get("missing"):
            raise KeyError(key)
        if "handle" in answer:
            return ResultHandle(answer["handle"])
        return answer.get("value")

    def _chunks(self, start: int, stop: int, keys: bool = False) -> Iterator[list[Any]]:
        """Items ``start`` to ``stop`` a chunk at a time (text: one string per chunk)."""
        while start < stop:
            fields: dict[str, Any] = {"start": start, "stop": stop}
            if keys:
                fields["keys"] = True
            answer = self._fetch(self._path, **fields)
            after = int(answer.get("next", stop))
            if after <= start:
                raise _runtime.BridgeError("codemode", OP_FETCH, "the host's answer made no progress")
            if self._kind == "text":
                yield [answer.get("text", "")]
            else:
                items = list(answer.get("items") or [])
                for index, descriptor in (answer.get("handles") or {}).items():
                    position = int(index)
                    handle = ResultHandle(descriptor)
                    if self._kind == "object":
                        items[position] = [items[position][0], handle]
                    else:
                        items[position] = handle
                yield items
            start = after

    def _check_room(self, size: int, what: str) -> None:
        if self._room and size > self._room:
            raise _runtime.QuotaExceeded(
                "codemode",
                "ResultHandle",
                f"{what} would bring {size:,} bytes into the sandbox at once; the limit is {self._room:,}: "
                "iterate over it or read slices instead",
                KIND_TOO_LARGE,
            )

    def _range(self, start: int, stop: int) -> Any:
        if self._kind == "text":
            self._check_room(stop - start, f"a slice of {stop - start:,} characters")  # each is a byte at least
            return self._text(start, stop)
        share = self.size * (stop - start) // max(self._length, 1)  # the items' average size: an estimate
        self._check_room(share, f"a slice of {stop - start:,} items (about {share:,} bytes)")
        out: list[Any] = []
        for chunk in self._chunks(start, stop):
            out.extend(chunk)
        return out

    def _text(self, start: int, stop: int) -> str:
        ahead = self._ahead
        if ahead is not None and ahead[0] <= start and stop <= ahead[0] + len(ahead[1]):
            return ahead[1][start - ahead[0] : stop - ahead[0]]
        if stop - start >= READ_AHEAD_CHARS:
            return "".join(chunk[0] for chunk in self._chunks(start, stop))
        # One fetch (1 MB at most) from start: what came back is kept for the next slices.
        answer = self._fetch(self._path, start=start, stop=min(self._length, start + READ_AHEAD_CHARS))
        data = str(answer.get("text", ""))
        if len(data) >= stop - start and data:
            self._ahead = (start, data)
            return data[: stop - start]
        return "".join(chunk[0] for chunk in self._chunks(start, stop))

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            if self._kind == "object":
                raise TypeError("an object result cannot be sliced; use keys(), items() or ['key']")
            wanted = range(*key.indices(self._length))
            if not wanted:
                return "" if self._kind == "text" else []
            low = min(wanted[0], wanted[-1])
            part = self._range(low, max(wanted[0], wanted[-1]) + 1)
            if wanted.step == 1:
                return part
            picked = [part[i - low] for i in wanted]
            return "".join(picked) if self._kind == "text" else picked
        if self._kind == "object":
            if not isinstance(key, str):
                raise KeyError(key)
            return self._part(key)
        if not isinstance(key, int) or isinstance(key, bool):
            raise TypeError(f"{self._kind} indices must be integers or slices, not {type(key).__name__}")
        index = key + self._length if key < 0 else key
        if not 0 <= index < self._length:
            raise IndexError(f"{self._kind} index out of range")
        if self._kind == "text":
            return self._range(index, index + 1)
        return self._part(index)

    def __iter__(self) -> Iterator[Any]:
        if self._kind == "text":
            for chunk in self._chunks(0, self._length):
                yield from chunk[0]
        elif self._kind == "object":
            for chunk in self._chunks(0, self._length, keys=True):
                yield from chunk
        else:
            for chunk in self._chunks(0, self._length):
                yield from chunk

    def __contains__(self, item: Any) -> bool:
        if self._kind == "object":
            return self.get(item, _MISSING) is not _MISSING if isinstance(item, str) else False
        if self._kind == "text":
            if not isinstance(item, str):
                raise TypeError(f"'in <text>' requires a string, not {type(item).__name__}")
            tail = ""
            for chunk in self._chunks(0, self._length):
                window = tail + chunk[0]
                if item in window:
                    return True
                tail = window[-(len(item) - 1) :] if len(item) > 1 else ""
            return item == ""
        return any(value == item for value in self)

    # -- objects ------------------------------------------------------------------------------------

    def _object(self, name: str) -> None:
        if self._kind != "object":
            raise AttributeError(f"a {self._kind} result has no {name}()")

    def keys(self) -> Iterator[str]:
        """An object's keys, in order (fetched a chunk at a time)."""
        self._object("keys")
        return iter(self)

    def items(self) -> Iterator[tuple[str, Any]]:
        """An object's (key, value) pairs; a big value comes as a handle."""
        self._object("items")
        for chunk in self._chunks(0, self._length):
            yield from ((key, value) for key, value in chunk)

    def values(self) -> Iterator[Any]:
        """An object's values; a big value comes as a handle."""
        self._object("values")
        for _, value in self.items():
            yield value

    def get(self, key: str, default: Any = None) -> Any:
        """``self[key]``, or ``default`` when the object has no such key."""
        self._object("get")
        try:
            return self._part(key)
        except KeyError:
            return default

    # -- text ---------------------------------------------------------------------------------------

    def text(self) -> str:
        """The whole text (it must fit in ``room`` bytes)."""
        if self._kind != "text":
            raise AttributeError(f"a {self._kind} result has no text(); use to_json()")
        self._check_room(self.size, "text()")
        return str(self._range(0, self._length))

    def lines(self, keepends: bool = False) -> Iterator[str]:
        """The text's lines, read a chunk at a time (like iterating over a file)."""
        if self._kind != "text":
            raise AttributeError(f"a {self._kind} result has no lines()")
        rest = ""
        for chunk in self._chunks(0, self._length):
            parts = (rest + chunk[0]).splitlines(True)
            rest = parts.pop() if parts and not parts[-1].endswith(("\n", "\r")) else ""
            for line in parts:
                yield line if keepends else line.rstrip("\r\n")
        if rest:
            yield rest

    # -- whole ----------------------------------------------------------------------------------------

    def to_json(self) -> Any:
        """The whole result as plain data (what the call returns when the result is small), if it fits in
        ``room`` bytes; parts too big for one fetch are read in turn."""
        self._check_room(self.size, "to_json()")
        return _plain(self)


_MISSING = object()


def _encode_default(encoder: json.JSONEncoder, value: Any) -> Any:
    # ``json.dumps(result)`` is what programs do with a result: a handle is encoded as its data.
    if isinstance(value, ResultHandle):
        return value.to_json()
    return _JSON_DEFAULT(encoder, value)


_JSON_DEFAULT = json.JSONEncoder.default
if getattr(json.JSONEncoder.default, "__name__", "") != "_encode_default":
    json.JSONEncoder.default = _encode_default  # type: ignore[method-assign,assignment]


def _plain(value: Any) -> Any:
    if not isinstance(value, ResultHandle):
        return value
    if value._kind == "text":
        return value._range(0, value._length)
    if value._kind == "object":
        return {key: _plain(item) for key, item in value.items()}
    return [_plain(item) for chunk in value._chunks(0, value._length) for item in chunk]


__all__ = ["CHUNK_BYTES", "ResultHandle"]
