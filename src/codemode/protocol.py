"""The host's side of the guest↔host protocol: the one place the host loads ``codemode_runtime.protocol``.

The format, the op table and the error kinds are defined once, in the guest's stdlib-only
``codemode_runtime/protocol.py`` (read its docstring for the frames and the conversation). This module
loads that file, re-exports what host code needs, and adds the host's framing helpers: the length check
before decoding, error frames with a checked kind, and the version check of the guest's hello.

The version is the one thing stated on both sides: :data:`PROTOCOL_VERSION` here is what this host's
code speaks; the guest's runtime says what it speaks in its hello (``v``). Taking the host's number
from the guest's file would compare the guest with itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from codemode import paths
from codemode.errors import BridgeError

if TYPE_CHECKING:
    # mypy reads the guest module itself (mypy_path = "sandbox"), so every name keeps its real type.
    import codemode_runtime.protocol as _guest
else:
    _guest = paths.load_guest_module("protocol", "codemode._guest_protocol")

__all__ = [
    "BLOB_MIN",
    "CALL_PREFIX",
    "FRAME_HEADROOM",
    "GUEST",
    "GUEST_PROTOCOL_VERSION",
    "HEADER",
    "HOST",
    "IDLE_FRAME_LIMIT",
    "KINDS",
    "KIND_AWAITING",
    "KIND_BRIDGE",
    "KIND_CANCELLED",
    "KIND_DENIED",
    "KIND_QUOTA",
    "KIND_TIMEOUT",
    "KIND_TOOL",
    "KIND_TOO_LARGE",
    "KIND_UNKNOWN",
    "KIND_UPSTREAM",
    "MAGIC_OFFSET",
    "MAX_BLOBS",
    "MAX_CONTAINERS",
    "MAX_DEPTH",
    "OPS",
    "OP_CALL",
    "OP_EXIT",
    "OP_FETCH",
    "OP_MOUNT",
    "OP_NEXT",
    "OP_RUN",
    "OP_SAVE_SKILL",
    "OP_SEARCH_DIRECTORY",
    "OP_UNMOUNT",
    "PROTOCOL_VERSION",
    "REPLY_RESULT",
    "REPLY_WORK",
    "REQUEST_HEADROOM",
    "ErrorKind",
    "FrameError",
    "Op",
    "ProtocolError",
    "ProtocolMismatch",
    "check",
    "check_hello",
    "check_result",
    "check_shape",
    "count_containers",
    "decode_frame",
    "encode_frame",
    "error_reply",
    "exit_frame",
    "guest_frame_limit",
    "is_service_op",
    "openers_over",
    "pack",
    "request_frame_limit",
    "result_reply",
    "run_frame",
    "unpack",
]

PROTOCOL_VERSION: Final = 2
"""The protocol version this host speaks (see the module docstring for why it is not the guest's)."""
GUEST_PROTOCOL_VERSION: Final[int] = _guest.PROTOCOL_VERSION
"""The version of the guest runtime installed next to this host (``paths.runtime_dir()``)."""

HEADER = _guest.HEADER
BLOB_MIN = _guest.BLOB_MIN
MAGIC_OFFSET = _guest.MAGIC_OFFSET
MAX_DEPTH = _guest.MAX_DEPTH
MAX_CONTAINERS = _guest.MAX_CONTAINERS
MAX_BLOBS = _guest.MAX_BLOBS
GUEST = _guest.GUEST
HOST = _guest.HOST
REPLY_RESULT = _guest.REPLY_RESULT
REPLY_WORK = _guest.REPLY_WORK
OP_NEXT = _guest.OP_NEXT
OP_CALL = _guest.OP_CALL
OP_RUN = _guest.OP_RUN
OP_EXIT = _guest.OP_EXIT
OP_SEARCH_DIRECTORY = _guest.OP_SEARCH_DIRECTORY
OP_MOUNT = _guest.OP_MOUNT
OP_UNMOUNT = _guest.OP_UNMOUNT
OP_SAVE_SKILL = _guest.OP_SAVE_SKILL
OP_FETCH = _guest.OP_FETCH
OPS = _guest.OPS
Op = _guest.Op
ErrorKind = _guest.ErrorKind
KINDS = _guest.KINDS
KIND_TOOL = _guest.KIND_TOOL
KIND_UNKNOWN = _guest.KIND_UNKNOWN
KIND_QUOTA = _guest.KIND_QUOTA
KIND_TOO_LARGE = _guest.KIND_TOO_LARGE
KIND_TIMEOUT = _guest.KIND_TIMEOUT
KIND_UPSTREAM = _guest.KIND_UPSTREAM
KIND_BRIDGE = _guest.KIND_BRIDGE
KIND_CANCELLED = _guest.KIND_CANCELLED
KIND_DENIED = _guest.KIND_DENIED
KIND_AWAITING = _guest.KIND_AWAITING
ProtocolError = _guest.ProtocolError
check = _guest.check
check_result = _guest.check_result
pack = _guest.pack
unpack = _guest.unpack
count_containers = _guest.count_containers
openers_over = _guest.openers_over
check_shape = _guest.check_shape


FRAME_HEADROOM: Final = 8 * 1024 * 1024
"""Room in a guest frame for everything but a call's arguments and the captured output: the envelope,
the final value, an error's message and traceback."""
IDLE_FRAME_LIMIT: Final = FRAME_HEADROOM
"""The largest frame the guest may send while no execution runs (its hello)."""


def guest_frame_limit(max_request_bytes: int, output_chars: int) -> int:
    """The largest frame the guest may send during an execution with these limits.

    A ``call`` carries at most ``max_request_bytes`` of arguments; a ``next`` carries stdout and stderr of
    at most ``output_chars`` characters each (4 UTF-8 bytes at most per character); both get
    :data:`FRAME_HEADROOM` on top. Checked before the frame is even assembled.
    """
    return max_request_bytes + 8 * output_chars + FRAME_HEADROOM


CALL_PREFIX: Final = b'{"op":"call"'
"""How the guest runtime's ``call`` frames begin (``pack`` keeps the message's order, ``op`` first). Only
used to decide what to read of a large frame first: a frame that does not begin so is read whole."""
REQUEST_HEADROOM: Final = 1024 * 1024
"""Room in a ``call`` frame beyond its arguments: the envelope, names, the ``$blobs`` table."""


def request_frame_limit(max_request_bytes: int) -> int:
    """The largest ``call`` the host reads whole: its arguments' limit plus :data:`REQUEST_HEADROOM`.

    A larger frame that says it is a call has only its JSON part read (the arguments' large strings stay
    where they are); the gate then refuses it on its size, and journals it like any refused call.
    """
    return max_request_bytes + REQUEST_HEADROOM


class FrameError(BridgeError, ValueError):
    """A frame from the guest that is not a length-prefixed JSON object with an ``op``."""


class ProtocolMismatch(FrameError):
    """The guest runtime speaks another protocol version than this host."""


def encode_frame(message: dict[str, Any]) -> bytes:
    """``message`` as a frame: length header, then JSON with large strings lifted out as raw blobs."""
    body = pack(message)
    return HEADER.pack(len(body)) + body


def decode_frame(raw: bytes, max_bytes: int, *, head_only: bool = False) -> dict[str, Any]:
    """Parse one frame from the guest, or raise :class:`FrameError` saying what is wrong with it.

    The size is checked before anything is decoded, the JSON part's nesting and number of containers
    before it is parsed, and the number of blobs before they are placed (``unpack(bounded=True)``). Only
    the ``op`` is checked here: the fields are the business of whoever serves that op. ``head_only``:
    ``raw`` is the frame's start, up to the end of its JSON part; the lifted strings stay ``None``.
    """
    if len(raw) < HEADER.size:
        raise FrameError(f"frame of {len(raw)} bytes has no length header")
    (size,) = HEADER.unpack_from(raw)
    if not head_only and size != len(raw) - HEADER.size:
        raise FrameError(f"frame header says {size} bytes but {len(raw) - HEADER.size} arrived")
    if size > max_bytes:
        raise FrameError(f"frame of {size:,} bytes is over the {max_bytes:,}-byte limit")
    try:
        message = unpack(raw, bounded=True, start=HEADER.size, blobs=not head_only)
    except (UnicodeDecodeError, ValueError, LookupError, TypeError, RecursionError) as exc:
        raise FrameError(f"frame is not valid: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise FrameError("frame is not a JSON object with an 'op'")
    return message


def error_reply(kind: ErrorKind, message: str) -> dict[str, Any]:
    """The result frame the guest raises as the ``ToolError`` subclass of ``kind``.

    Raises:
        ValueError: ``kind`` is not in the protocol's table (a host typo must not reach a guest).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown tool-error kind {kind!r} (known: {', '.join(KINDS)})")
    return {"ok": False, "error": {"kind": kind, "message": message}}


def result_reply(result: Any) -> dict[str, Any]:
    """The result frame of a call that succeeded."""
    return {"ok": True, "result": result}


def run_frame(
    code: str, output_cap: int, *, stubs: str | None = None, skills: str | None = None, **limits: int
) -> dict[str, Any]:
    """The ``run`` frame: ``stubs`` names the generation to import from, ``skills`` the skill store's
    revision; ``limits`` are the optional ``cpu_s`` and ``memory_bytes`` of the restricted child."""
    return {"op": OP_RUN, "code": code, "output_cap": output_cap, "stubs": stubs, "skills": skills, **limits}


def is_service_op(op: str) -> bool:
    """Whether ``op`` is a guest request served by a handler of the gate (every ``REPLY_RESULT`` op but
    ``call``): the executors route these to :func:`codemode.bridge.serve_op` without knowing them."""
    spec = OPS.get(op)
    return spec is not None and op != OP_CALL and spec.sender == GUEST and spec.reply == REPLY_RESULT


def exit_frame() -> dict[str, Any]:
    """The ``exit`` frame: the guest's session loop ends."""
    return {"op": OP_EXIT}


def check_hello(frame: dict[str, Any]) -> None:
    """Check the guest's first frame: a ``next`` with ``ready`` and this host's protocol version.

    Raises:
        ProtocolMismatch: the guest speaks another version (the message says to reinstall).
        FrameError: the frame is not a hello at all.
    """
    try:
        check(frame, GUEST)
    except ProtocolError as exc:
        raise FrameError(f"the guest's first frame is not a hello ({exc}): {frame!r:.200}") from None
    if frame.get("op") != OP_NEXT or frame.get("ready") is not True:
        raise FrameError(f"the guest's first frame is not a hello: {frame!r:.200}")
    version = frame.get("v")
    if version != PROTOCOL_VERSION:
        spoken = "an unversioned protocol (0)" if version is None else f"protocol {version}"
        # No path in the message: it can reach the model as the failed run's error.
        raise ProtocolMismatch(
            f"the guest runtime speaks {spoken}, this host speaks protocol {PROTOCOL_VERSION}: they come from "
            "different codemode releases; reinstall codemode"
        )
