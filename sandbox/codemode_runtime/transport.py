"""The guest end of the bridge: one synchronous request/response exchange with the host.

Frames are a 4-byte big-endian length followed by a body, in both directions. A body is a 4-byte length,
that much UTF-8 JSON, then raw "blobs": large strings lifted out of the JSON (``$blobs`` lists each one's
path and byte length; the JSON holds ``null`` there). Encoding a megabyte string as JSON costs tens of
milliseconds in CPython-on-WASM; copying its UTF-8 bytes costs a fraction of one. The host uses this very
module for its side of the framing, so the two cannot drift apart.

Under WASM there is no socket or pipe to the host, so the channel rides on two WASI imports the host
shadows: ``fd_pwrite`` at a reserved offset hands the host a request (the host answers with the length
of its response in place of the bytes written, and copies the response into the last buffer when the
offset is one past the reserved one and it fits) and ``fd_pread`` at the reserved offset copies out a
response that did not fit. Any other ``pwrite``/``pread`` is refused by the host, which is why the
sandbox does not support ``os.pwrite``/``os.pread`` on files.

In the RestrictedPython child the same frames travel over a pair of pipe descriptors.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any

MAGIC_OFFSET = 0x7FFF_C0DE_0000_0000
"""The ``pwrite``/``pread`` offset that marks a bridge frame (no real file is that large)."""

_HEADER = struct.Struct(">I")
_REPLY_BUFFER = bytearray(64 * 1024)
"""Where the host writes a reply that fits (``pwritev`` at ``MAGIC_OFFSET + 1``: the last buffer is for the
reply)."""
BLOB_MIN = 16 * 1024
"""Strings at least this long travel as blobs."""
_MAX_DEPTH = 6
_MAX_LIST = 16
_pipe: tuple[int, int] | None = None


class TransportError(Exception):
    """The host answered with something that is not a frame."""


def use_pipes(read_fd: int, write_fd: int) -> None:
    """Send frames over two file descriptors instead of the WASI channel (RestrictedPython child)."""
    global _pipe
    _pipe = (read_fd, write_fd)


def _read_exact(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            raise TransportError("the host closed the channel")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _lift(value: Any, path: list[Any], blobs: list[list[Any]], chunks: list[bytes]) -> Any:
    # Returns ``value`` with large strings replaced by None, copying only the containers on a lifted path,
    # so the caller's own data is never changed. Short walk: dicts, and lists of a few items.
    if isinstance(value, str):
        if len(value) >= BLOB_MIN:
            data = value.encode("utf-8", "surrogatepass")
            blobs.append([list(path), len(data)])
            chunks.append(data)
            return None
        return value
    if len(path) >= _MAX_DEPTH:
        return value
    if isinstance(value, dict):
        copy: dict[Any, Any] | None = None
        for key, item in value.items():
            kind = type(item)
            # The common case, a short string or a number, costs one type check and no call.
            if (kind is str and len(item) < BLOB_MIN) or kind not in (str, dict, list):
                continue
            lifted = _lift(item, [*path, key], blobs, chunks)
            if lifted is not item:
                if copy is None:
                    copy = dict(value)
                copy[key] = lifted
        return value if copy is None else copy
    if isinstance(value, list) and len(value) <= _MAX_LIST:
        items = [_lift(item, [*path, i], blobs, chunks) for i, item in enumerate(value)]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def pack(message: dict[str, Any], default: Any = None) -> bytes:
    """A frame body for ``message``: JSON with large strings lifted out as blobs."""
    blobs: list[list[Any]] = []
    chunks: list[bytes] = []
    lifted = _lift(message, [], blobs, chunks)
    if blobs:
        lifted = {**lifted, "$blobs": blobs}
    # One encoder per setting, made once: json.dumps(..., default=f) builds a new encoder on every call.
    encoder = _GUEST_ENCODER if default is _fallback else _ENCODER if default is None else _encoder(default)
    text = encoder.encode(lifted)
    head = text.encode("utf-8", "surrogatepass")
    return b"".join([_HEADER.pack(len(head)), head, *chunks])


def unpack(body: bytes) -> Any:
    """Parse a frame body made by :func:`pack`; raises ``ValueError`` on anything malformed."""
    if len(body) < _HEADER.size:
        raise ValueError(f"frame body of {len(body)} bytes has no JSON length")
    (size,) = _HEADER.unpack_from(body)
    end = _HEADER.size + size
    if end > len(body):
        raise ValueError(f"JSON length {size} runs past the {len(body)}-byte body")
    message = json.loads(body[_HEADER.size : end])
    blobs = message.pop("$blobs", None) if isinstance(message, dict) else None
    if blobs is None:
        if end != len(body):
            raise ValueError("trailing bytes after the JSON")
        return message
    position = end
    for entry in blobs:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], list) and entry[0]):
            raise ValueError("malformed $blobs entry")
        path, length = entry
        if not isinstance(length, int) or length < 0 or position + length > len(body):
            raise ValueError("blob length runs past the body")
        text = body[position : position + length].decode("utf-8", "surrogatepass")
        position += length
        container = message
        for key in path[:-1]:
            container = container[key]
        if not isinstance(container, (dict, list)) or container[path[-1]] is not None:
            raise ValueError("blob path does not point at a placeholder")
        container[path[-1]] = text
    if position != len(body):
        raise ValueError("trailing bytes after the blobs")
    return message


def exchange(payload: bytes) -> bytes:
    """Send one raw frame body, return the raw response body."""
    if _pipe is not None:
        frame = _HEADER.pack(len(payload)) + payload
        read_fd, write_fd = _pipe
        view = memoryview(frame)
        while view:
            view = view[os.write(write_fd, view) :]
        (size,) = _HEADER.unpack(_read_exact(read_fd, _HEADER.size))
        return _read_exact(read_fd, size)
    # One host call when the answer fits in the reply buffer (the host copies it there), two otherwise.
    size = os.pwritev(1, [_HEADER.pack(len(payload)), payload, _REPLY_BUFFER], MAGIC_OFFSET + 1)
    if size <= len(_REPLY_BUFFER):
        response = bytes(memoryview(_REPLY_BUFFER)[:size])
    else:
        response = os.pread(1, size, MAGIC_OFFSET)
    if len(response) < _HEADER.size or _HEADER.unpack_from(response)[0] != len(response) - _HEADER.size:
        raise TransportError(f"malformed response frame ({len(response)} bytes)")
    return response[_HEADER.size :]


def request(message: dict[str, Any]) -> dict[str, Any]:
    """Send ``message`` and return the host's answer."""
    reply = unpack(exchange(pack(message, default=_fallback)))
    if not isinstance(reply, dict):
        raise TransportError("the host answered with a non-object frame")
    return reply


def _encoder(default: Any) -> json.JSONEncoder:
    return json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=default)


def _fallback(value: Any) -> Any:
    # Tuples and sets are common in programs; everything else must be JSON already.
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"argument of type {type(value).__name__} cannot be sent to a tool (not JSON)")


_ENCODER = _encoder(None)
_GUEST_ENCODER = _encoder(_fallback)
