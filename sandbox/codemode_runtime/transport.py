"""The guest end of the bridge: one synchronous request/response exchange with the host.

Frames are a 4-byte big-endian length followed by that many bytes of UTF-8 JSON, in both directions.

Under WASM there is no socket or pipe to the host, so the channel rides on two WASI imports the host
shadows: ``fd_pwrite`` at a reserved offset hands the host a request (the host answers with the length
of its response in place of the bytes written) and ``fd_pread`` at the same offset copies the response
out. Any other ``pwrite``/``pread`` is refused by the host, which is why the sandbox does not support
``os.pwrite``/``os.pread`` on files.

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


def exchange(payload: bytes) -> bytes:
    """Send one raw frame body, return the raw response body."""
    frame = _HEADER.pack(len(payload)) + payload
    if _pipe is not None:
        read_fd, write_fd = _pipe
        view = memoryview(frame)
        while view:
            view = view[os.write(write_fd, view) :]
        (size,) = _HEADER.unpack(_read_exact(read_fd, _HEADER.size))
        return _read_exact(read_fd, size)
    size = os.pwrite(1, frame, MAGIC_OFFSET)
    response = os.pread(1, size, MAGIC_OFFSET) if size else b""
    if len(response) < _HEADER.size or _HEADER.unpack_from(response)[0] != len(response) - _HEADER.size:
        raise TransportError(f"malformed response frame ({len(response)} bytes)")
    return response[_HEADER.size :]


def request(message: dict[str, Any]) -> dict[str, Any]:
    """Send ``message`` as JSON and return the host's JSON answer."""
    body = json.dumps(message, ensure_ascii=False, separators=(",", ":"), default=_fallback).encode("utf-8")
    reply = json.loads(exchange(body))
    if not isinstance(reply, dict):
        raise TransportError("the host answered with a non-object frame")
    return reply


def _fallback(value: Any) -> Any:
    # Tuples and sets are common in programs; everything else must be JSON already.
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"argument of type {type(value).__name__} cannot be sent to a tool (not JSON)")
