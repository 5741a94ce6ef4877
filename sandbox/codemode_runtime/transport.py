"""The guest end of the bridge: one synchronous request/response exchange with the host.

Only the channel lives here: WASI ``pwritev``/``pread`` at ``MAGIC_OFFSET`` under WASM, a pair of pipe
descriptors in the RestrictedPython child. The frame format, the ops and the codec are in
:mod:`codemode_runtime.protocol`, which the host loads too.
"""

from __future__ import annotations

import os
from typing import Any

from codemode_runtime.protocol import HEADER, MAGIC_OFFSET, lenient_default, pack, unpack

__all__ = ["TransportError", "exchange", "request", "use_pipes"]

_REPLY_BUFFER = bytearray(256 * 1024)
"""Where the host writes a reply that fits (``pwritev`` at ``MAGIC_OFFSET + 1``: the last buffer is for the
reply)."""
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


def exchange(payload: bytes) -> bytes | bytearray:
    """Send one raw frame body, return the response frame: its header (checked), then its body.

    The header stays on: the caller parses the body from ``HEADER.size``, so it is never copied again.
    """
    if _pipe is not None:
        frame = HEADER.pack(len(payload)) + payload
        read_fd, write_fd = _pipe
        view = memoryview(frame)
        while view:
            view = view[os.write(write_fd, view) :]
        head = _read_exact(read_fd, HEADER.size)
        return head + _read_exact(read_fd, HEADER.unpack(head)[0])
    # One host call when the answer fits in the reply buffer (the host copies it there), two otherwise.
    size = os.pwritev(1, [HEADER.pack(len(payload)), payload, _REPLY_BUFFER], MAGIC_OFFSET + 1)
    response = _REPLY_BUFFER[:size] if size <= len(_REPLY_BUFFER) else os.pread(1, size, MAGIC_OFFSET)
    if len(response) < HEADER.size or HEADER.unpack_from(response)[0] != len(response) - HEADER.size:
        raise TransportError(f"malformed response frame ({len(response)} bytes)")
    return response


def request(message: dict[str, Any]) -> dict[str, Any]:
    """Send ``message`` and return the host's answer."""
    reply = unpack(exchange(pack(message, default=lenient_default)), start=HEADER.size)
    if not isinstance(reply, dict):
        raise TransportError("the host answered with a non-object frame")
    return reply
