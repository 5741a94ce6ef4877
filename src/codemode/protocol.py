"""The host's end of the guest↔host frame format (the guest's ``codemode_runtime.transport`` defines it).

The host loads the guest's own stdlib-only module instead of restating the format, so the two cannot
drift apart. Frames are a 4-byte big-endian length, then the body ``pack`` produced.
"""

from __future__ import annotations

import struct
from typing import Any

from codemode import paths

HEADER = struct.Struct(">I")


class FrameError(ValueError):
    """A frame from the guest that is not a length-prefixed JSON object."""


_framing = paths.load_guest_module("transport", "codemode._framing")
MAGIC_OFFSET: int = _framing.MAGIC_OFFSET


def encode_frame(message: dict[str, Any]) -> bytes:
    """``message`` as a frame: length header, then JSON with large strings lifted out as raw blobs."""
    body: bytes = _framing.pack(message)
    return HEADER.pack(len(body)) + body


def decode_frame(raw: bytes, max_bytes: int) -> dict[str, Any]:
    """Parse one frame from the guest, or raise :class:`FrameError` saying what is wrong with it."""
    if len(raw) < HEADER.size:
        raise FrameError(f"frame of {len(raw)} bytes has no length header")
    (size,) = HEADER.unpack_from(raw)
    if size != len(raw) - HEADER.size:
        raise FrameError(f"frame header says {size} bytes but {len(raw) - HEADER.size} arrived")
    if size > max_bytes:
        raise FrameError(f"frame of {size:,} bytes is over the {max_bytes:,}-byte limit")
    try:
        message = _framing.unpack(raw[HEADER.size :])
    except (UnicodeDecodeError, ValueError, LookupError, TypeError) as exc:
        raise FrameError(f"frame is not valid: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise FrameError("frame is not a JSON object with an 'op'")
    return message


def error_reply(kind: str, message: str) -> dict[str, Any]:
    """The frame the guest turns into ``ToolError(kind=kind)``."""
    return {"ok": False, "error": {"kind": kind, "message": message}}
