"""The guest↔host protocol, written down once: frames, ops, error kinds and the version.

Stdlib only. The guest imports it as ``codemode_runtime.protocol``; the host loads this very file (in
``codemode.protocol``, its one place for that), so the two sides cannot drift apart on the format. Only
the version is stated twice, on purpose: the host states the version it speaks and compares it with
the guest's first frame.

**Frames.** A 4-byte big-endian length (:data:`HEADER`) followed by a body, in both directions. A body is
a 4-byte length, that much UTF-8 JSON (an object), then raw "blobs": large strings lifted out of the JSON
(``$blobs`` lists each one's path and byte length; the JSON holds ``null`` there). Encoding a megabyte
string as JSON costs tens of milliseconds in CPython-on-WASM; copying its UTF-8 bytes costs a fraction of
one.

**Channels** (``codemode_runtime.transport``). Under WASM there is no socket or pipe to the host, so frames
ride on two WASI imports the host shadows: ``fd_pwrite`` at :data:`MAGIC_OFFSET` hands the host a request
(the host answers with the length of its response in place of the bytes written, and copies the response
into the last buffer when the offset is ``MAGIC_OFFSET + 1`` and it fits) and ``fd_pread`` at
:data:`MAGIC_OFFSET` copies out a response that did not fit. Any other ``pwrite``/``pread`` is refused
by the host, which is why the sandbox does not support ``os.pwrite``/``os.pread`` on files. In the
RestrictedPython child the same frames travel over a pair of pipe descriptors.

**Conversation.** The guest always speaks first and the host only ever answers (a pull loop: a session
is a parked guest call, so one channel in one direction serves code and tool calls alike)::

    guest                                         host
    next {ready: true, v: 1}              →                       the hello, sent once at boot
                                          ←       run {code, output_cap[, cpu_s, memory_bytes]} | exit {}
    call {server, tool, args}             →                       any number, while the code runs
                                          ←       {ok: true, result} | {ok: true, handle} | {ok: false, error}
    fetch {handle, path, max_bytes, ...}  →                       reads part of a result kept on the host
                                          ←       {ok: true, result} | {ok: false, error: {kind, message}}
    next {result}                         →                       the execution's outcome
                                          ←       run ... | exit {}

:data:`OPS` is the table of messages that carry an ``op``; a new op (``save_skill``, ``fetch``...) is one
:class:`Op` entry there. The answer to a guest request is named by :attr:`Op.reply`: :data:`REPLY_WORK`
(a host op: ``run`` or ``exit``) or :data:`REPLY_RESULT` (an ``ok``/``error`` frame without an ``op``).
A refused request gets the error frame whatever its op (the host could not read it).

**Versions.** :data:`PROTOCOL_VERSION` changes whenever a message changes incompatibly; the host refuses
a guest whose hello carries another version (the interpreter fails to boot with a message naming both).
"""

from __future__ import annotations

import json
import re
import struct
from typing import Any, Final, Literal

PROTOCOL_VERSION: Final = 2
"""The version of this protocol; sent as ``v`` in the guest's hello (2: result handles and ``fetch``)."""

HEADER: Final = struct.Struct(">I")
"""The 4-byte big-endian length in front of every frame and of the JSON part of every body."""

MAGIC_OFFSET: Final = 0x7FFF_C0DE_0000_0000
"""The ``pwrite``/``pread`` offset that marks a bridge frame under WASM (no real file is that large)."""

BLOB_MIN: Final = 16 * 1024
"""Strings at least this long travel as blobs."""

MAX_DEPTH: Final = 200
"""The deepest nesting of arrays and objects a bounded :func:`unpack` accepts (the host's, for guest frames)."""
MAX_CONTAINERS: Final = 1_000_000
"""The most arrays and objects in the JSON part of a frame a bounded :func:`unpack` accepts: an empty ``{}``
costs 3 bytes on the wire and ~70 on the heap."""
MAX_BLOBS: Final = 10_000
"""The most ``$blobs`` entries a bounded :func:`unpack` accepts."""

# -- ops ------------------------------------------------------------------------------------------------

GUEST: Final = "guest"
"""The sender of requests (the guest always speaks first)."""
HOST: Final = "host"
"""The sender of answers."""

REPLY_WORK: Final = "work"
"""The answer is a host op: ``run`` or ``exit``."""
REPLY_RESULT: Final = "result"
"""The answer is a result frame: ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": {...}}``."""

OP_NEXT: Final = "next"
OP_CALL: Final = "call"
OP_RUN: Final = "run"
OP_EXIT: Final = "exit"
OP_SEARCH_DIRECTORY: Final = "search_directory"
OP_MOUNT: Final = "mount"
OP_UNMOUNT: Final = "unmount"
OP_SAVE_SKILL: Final = "save_skill"
OP_FETCH: Final = "fetch"

FieldTypes = dict[str, type | tuple[type, ...]]
"""Field name → the JSON type(s) its value must have (``int`` excludes ``bool``)."""


class Op:
    """One message of the protocol: who sends it, its fields, and what answers it."""

    __slots__ = ("doc", "name", "optional", "reply", "required", "sender")

    def __init__(
        self,
        name: str,
        sender: str,
        doc: str,
        *,
        required: FieldTypes | None = None,
        optional: FieldTypes | None = None,
        reply: str | None = None,
    ) -> None:
        self.name = name
        self.sender = sender
        self.doc = doc
        self.required: FieldTypes = required or {}
        self.optional: FieldTypes = optional or {}
        self.reply = reply
        """:data:`REPLY_WORK` or :data:`REPLY_RESULT` for a guest request; None for a host answer."""

    def __repr__(self) -> str:
        return f"Op({self.name!r}, {self.sender!r})"


OPS: Final[dict[str, Op]] = {
    op.name: op
    for op in (
        Op(
            OP_NEXT,
            GUEST,
            "Ask for work. The first one (the hello) carries ready=true, the protocol version v and capture: "
            "the guest addresses of the two bytearrays (stdout, stderr) a running execution's output is kept "
            "in, which the WASM host reads when it stops the interpreter mid-run. The others carry the "
            "finished execution's result (value, stdout, stderr, error).",
            optional={"ready": bool, "v": int, "capture": list, "result": dict},
            reply=REPLY_WORK,
        ),
        Op(
            OP_CALL,
            GUEST,
            "Call a tool; arguments whose value is None are dropped before sending.",
            required={"server": str, "tool": str, "args": dict},
            reply=REPLY_RESULT,
        ),
        Op(
            OP_SAVE_SKILL,
            GUEST,
            "Save a function as a skill: its module source (the def and the imports it uses), with an "
            "optional description and example call. The result is {saved: true, name, state, version, "
            "tested} or {saved: false, reasons: [...]}.",
            required={"name": str, "source": str},
            optional={"description": (str, type(None)), "example": (str, type(None))},
            reply=REPLY_RESULT,
        ),
        Op(
            OP_FETCH,
            GUEST,
            "Read part of a result the host kept (a call's answer {ok: true, handle: {id, type, length, size, "
            "preview, room}} in place of {ok: true, result}). path leads from the result to a node (list "
            "indexes, object keys). Without start: the node itself, {value} when it fits in max_bytes, else "
            "{handle} (a descriptor of the node), or {missing: true} when the path's last step is not there. "
            "With start (and stop): the node's items from start, as many as fit in max_bytes but at least one: "
            "{text, next} for text, {items, next, handles} for a list or an object (an object's items are "
            "[key, value] pairs, or its keys alone with keys=true; handles maps the index of an item too large "
            "to send to its descriptor, the item itself is null).",
            required={"handle": str, "max_bytes": int},
            optional={"path": list, "start": int, "stop": int, "keys": bool},
            reply=REPLY_RESULT,
        ),
        Op(
            OP_RUN,
            HOST,
            "Run code in the session. stubs names the generation of the stubs tree to import from (the "
            "guest remounts the stubs package when it changes; None: the mounted tree itself). The "
            "restricted child also takes its CPU-time and memory limits from it. skills is the skill store's "
            "revision: when it changes, the guest forgets the skills it imported.",
            required={"code": str, "output_cap": int},
            optional={"stubs": (str, type(None)), "skills": (str, type(None)), "cpu_s": int, "memory_bytes": int},
        ),
        Op(OP_EXIT, HOST, "End the session loop; the interpreter exits."),
        Op(
            OP_SEARCH_DIRECTORY,
            GUEST,
            "Search the directory of services; the result is a list of entries (name, description, mounted, "
            "params, secrets).",
            required={"query": str},
            reply=REPLY_RESULT,
        ),
        Op(
            OP_MOUNT,
            GUEST,
            "Mount a directory entry with params filling its declared inputs; the result is {module, stubs}: "
            "the stubs module to import and the generation that has it.",
            required={"name": str, "params": dict},
            reply=REPLY_RESULT,
        ),
        Op(
            OP_UNMOUNT,
            GUEST,
            "Unmount a service mounted at run time; the result is {stubs}: the generation without it.",
            required={"name": str},
            reply=REPLY_RESULT,
        ),
    )
}
"""Every message that carries an ``op``, by name."""

# -- error kinds ------------------------------------------------------------------------------------------

ErrorKind = Literal[
    "tool", "unknown", "quota", "too_large", "timeout", "upstream", "bridge", "cancelled", "denied", "awaiting"
]
"""Why a tool call failed: the ``kind`` of an error frame and of the guest's ``ToolError``."""

KIND_TOOL: Final = "tool"
"""The upstream tool reported an error (its message says why)."""
KIND_UNKNOWN: Final = "unknown"
"""No such server or tool."""
KIND_QUOTA: Final = "quota"
"""The execution's tool-call quota is spent."""
KIND_TOO_LARGE: Final = "too_large"
"""The arguments or the result are over their size limit."""
KIND_TIMEOUT: Final = "timeout"
"""No answer before the execution's wall-time limit."""
KIND_UPSTREAM: Final = "upstream"
"""The server is down or failed to answer."""
KIND_BRIDGE: Final = "bridge"
"""A malformed request, or a fault in the host's bridge."""
KIND_CANCELLED: Final = "cancelled"
"""The execution is being stopped; the call was not made."""
KIND_DENIED: Final = "denied"
"""A policy refused the call."""
KIND_AWAITING: Final = "awaiting"
"""The call needs an approval that has not been given yet."""

KINDS: Final[dict[str, bool]] = {
    KIND_TOOL: False,
    KIND_UNKNOWN: False,
    KIND_QUOTA: False,  # the quota is per execution: a retry in the same one fails the same way
    KIND_TOO_LARGE: False,
    KIND_TIMEOUT: True,
    KIND_UPSTREAM: True,  # the hub restarts a dead server
    KIND_BRIDGE: False,
    KIND_CANCELLED: False,
    KIND_DENIED: False,
    KIND_AWAITING: True,
}
"""Every error kind (the values of :data:`ErrorKind`) → whether retrying the same call later can succeed."""


class ProtocolError(ValueError):
    """A message that does not have the shape the protocol gives it."""


def check(message: Any, sender: str) -> Op:
    """The :class:`Op` of ``message`` from ``sender``, after checking its fields; raises :class:`ProtocolError`.

    Not for per-call paths: the guest trusts the host's replies, the host checks calls field by field.
    """
    if not isinstance(message, dict):
        raise ProtocolError(f"a message is a JSON object, not {type(message).__name__}")
    name = message.get("op")
    op = OPS.get(name) if isinstance(name, str) else None
    if op is None or op.sender != sender:
        raise ProtocolError(f"{name!r} is not an op the {sender} sends")
    for field, expected in op.required.items():
        if field not in message:
            raise ProtocolError(f"{op.name!r} needs the field {field!r}")
        _check_field(op, field, message[field], expected)
    for field, expected in op.optional.items():
        if field in message:
            _check_field(op, field, message[field], expected)
    return op


def check_result(message: Any) -> None:
    """Check a result frame (the answer to a :data:`REPLY_RESULT` request); raises :class:`ProtocolError`."""
    if not isinstance(message, dict) or not isinstance(message.get("ok"), bool):
        raise ProtocolError("a result frame is an object with a boolean 'ok'")
    if message["ok"]:
        return
    error = message.get("error")
    if not isinstance(error, dict) or error.get("kind") not in KINDS or not isinstance(error.get("message"), str):
        raise ProtocolError(f"an error frame needs a known 'kind' and a 'message', not {error!r:.200}")


def _check_field(op: Op, field: str, value: Any, expected: type | tuple[type, ...]) -> None:
    # bool is an int subclass, but no int field accepts true/false.
    if not isinstance(value, expected) or (isinstance(value, bool) and expected is int):
        raise ProtocolError(f"{op.name!r} field {field!r} must be {_type_name(expected)}, not {type(value).__name__}")


def _type_name(expected: type | tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in expected) if isinstance(expected, tuple) else expected.__name__


def hello(capture: list[int] | None = None) -> dict[str, Any]:
    """The guest's first frame; ``capture`` is where the guest keeps a running execution's output."""
    frame: dict[str, Any] = {"op": OP_NEXT, "ready": True, "v": PROTOCOL_VERSION}
    if capture is not None:
        frame["capture"] = capture
    return frame


# -- the codec ----------------------------------------------------------------------------------------------

_MAX_DEPTH = 6
_MAX_LIST = 16


def _has_big(value: dict[Any, Any] | list[Any], depth: int) -> bool:
    # Whether _lift would lift anything: the same walk, without the paths and copies (most frames have no
    # string long enough, and under WASM every call and list costs, so the lifting walk is left for the rest).
    for item in value.values() if type(value) is dict else value:
        kind = type(item)
        if kind is str:
            if len(item) >= BLOB_MIN:
                return True
        elif (kind is dict or (kind is list and len(item) <= _MAX_LIST)) and item and depth + 1 < _MAX_DEPTH:
            if _has_big(item, depth + 1):
                return True
    return False


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
    """A frame body for ``message``: JSON with large strings lifted out as blobs.

    ``default`` converts what JSON cannot hold (as for ``json.dumps``); the guest passes
    :func:`lenient_default`.
    """
    if not _has_big(message, 0):
        head = _dumps(message, default).encode("utf-8", "surrogatepass")
        return HEADER.pack(len(head)) + head
    blobs: list[list[Any]] = []
    chunks: list[bytes] = []
    lifted = {**_lift(message, [], blobs, chunks), "$blobs": blobs}
    head = _dumps(lifted, default).encode("utf-8", "surrogatepass")
    return b"".join([HEADER.pack(len(head)), head, *chunks])


def unpack(body: bytes | bytearray, *, bounded: bool = False, start: int = 0, blobs: bool = True) -> Any:
    """Parse a frame body made by :func:`pack` (from ``start`` in ``body``); raises ``ValueError`` on
    anything malformed.

    ``bounded`` (the host, reading the untrusted guest): the JSON part's nesting (:data:`MAX_DEPTH`) and
    number of containers (:data:`MAX_CONTAINERS`) are checked before it is parsed, and the number of blobs
    (:data:`MAX_BLOBS`) before any is placed. The guest trusts its host's frames and skips these checks.
    ``blobs=False`` parses the JSON part alone (``body`` may end with it): lifted strings stay ``None``.
    """
    if len(body) - start < HEADER.size:
        raise ValueError(f"frame body of {len(body) - start} bytes has no JSON length")
    (size,) = HEADER.unpack_from(body, start)
    end = start + HEADER.size + size
    if end > len(body):
        raise ValueError(f"JSON length {size} runs past the {len(body) - start}-byte body")
    if bounded:
        check_shape(body, start + HEADER.size, end, MAX_DEPTH, MAX_CONTAINERS)
    # Parsed from a str: json.loads would sniff the bytes' encoding first, in Python.
    text = str(body[start + HEADER.size : end], "utf-8", "surrogatepass")
    message, parsed = _DECODER.raw_decode(text)
    if parsed != len(text):
        raise ValueError(f"extra data after the JSON at character {parsed}")
    lifted = message.pop("$blobs", None) if isinstance(message, dict) else None
    if not blobs:
        return message
    if lifted is None:
        if end != len(body):
            raise ValueError("trailing bytes after the JSON")
        return message
    if bounded and (not isinstance(lifted, list) or len(lifted) > MAX_BLOBS):
        count = f"{len(lifted):,}" if isinstance(lifted, list) else type(lifted).__name__
        raise ValueError(f"$blobs of {count} entries is over the limit of {MAX_BLOBS:,}")
    view = memoryview(body)  # each blob is decoded in place, not copied first
    position = end
    for entry in lifted:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], list) and entry[0]):
            raise ValueError("malformed $blobs entry")
        path, length = entry
        if not isinstance(length, int) or length < 0 or position + length > len(body):
            raise ValueError("blob length runs past the body")
        text = str(view[position : position + length], "utf-8", "surrogatepass")
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


_STRUCTURE = bytes(range(256)).translate(None, b'[]{}"')
"""Every byte but the JSON brackets and the quote: :func:`check_shape` deletes them."""
_SQUARE = bytes.maketrans(b"{}", b"[]")
_STRING = re.compile(rb'"[^"]*"')


def check_shape(data: bytes | bytearray, start: int, end: int, max_depth: int, max_containers: int) -> None:
    """Raise ``ValueError`` if the JSON text ``data[start:end]`` nests deeper than ``max_depth`` or holds
    more than ``max_containers`` arrays and objects, before anything is parsed.

    C-speed passes only: a count of the opening brackets in place (enough for almost every frame), then,
    when there are more than ``max_depth``, the brackets outside strings are peeled one level at a time.
    Text that is not JSON may pass; the parser rejects it next.
    """
    containers = data.count(b"[", start, end) + data.count(b"{", start, end)
    if containers > max_containers:
        raise ValueError(f"JSON of {containers:,} or more arrays and objects is over the limit of {max_containers:,}")
    if containers <= max_depth:
        return
    head = data[start:end]
    if b'\\"' in head:
        # Escaped backslashes, then escaped quotes, so the quotes left delimit the strings.
        head = head.replace(b"\\\\", b"").replace(b'\\"', b"")
    # Objects as arrays (a mismatched pair is not JSON: the parser refuses it); then two adjacent quotes go
    # (an empty string, or an empty stretch between two strings), and strings that hold brackets last.
    brackets = head.translate(_SQUARE, _STRUCTURE).replace(b'""', b"")
    if b'"' in brackets:
        brackets = _STRING.sub(b"", brackets)
    if 2 * brackets.count(b"[") != len(brackets):
        raise ValueError("JSON brackets are unbalanced")
    deep = b"[" * (max_depth + 1) in brackets  # a straight run of openers says so at once
    for _ in range(0 if deep else max_depth):
        if not brackets:
            return
        peeled = brackets.replace(b"[]", b"")
        if len(peeled) == len(brackets):
            break  # unbalanced or mismatched: not JSON
        brackets = peeled
    if deep or brackets:
        raise ValueError(f"JSON nested deeper than the limit of {max_depth} levels (or unbalanced)")


_OPENERS = (b"{", b"[")
_WINDOW = 256 * 1024


def count_containers(data: bytes | bytearray, limit: int) -> int:
    """How many arrays and objects the JSON text ``data`` holds, without parsing it (for text that may
    carry megabytes of strings: an upstream's message, where :func:`check_shape`'s raw count would count
    the brackets of a source file in a text block).

    Exact when the answer is over ``limit``; when it is not, the answer may be any number up to ``limit``.
    Text with few brackets costs a memchr; bracket-heavy text two C passes; the exact count (strings
    skipped, a window at a time so memory stays small) only when the raw count is over the limit.
    """
    if len(data) // 2 <= limit or not openers_over(data, 1024):
        return min(len(data) // 2, limit)
    if data.count(b"{") + data.count(b"[") <= limit:
        return limit
    return _count_outside_strings(data)


def openers_over(data: bytes | bytearray, limit: int) -> bool:
    """Whether ``data`` holds more than ``limit`` opening brackets (inside strings too): ``find`` is a
    memchr, so text with few of them costs microseconds a megabyte, and the count stops at ``limit``."""
    if len(data) <= 65536:  # short text: two C counting passes beat a Python loop of finds
        return data.count(b"{") + data.count(b"[") > limit
    count = 0
    for opener in _OPENERS:
        at = data.find(opener)
        while at >= 0:
            count += 1
            if count > limit:
                return True
            at = data.find(opener, at + 1)
    return False


def _count_outside_strings(data: bytes | bytearray) -> int:
    # Opening brackets outside JSON strings, a window at a time, so that a line of a million tiny strings
    # never becomes a million objects at once. Escapes occur only inside strings: with escaped backslashes
    # and quotes removed, every quote opens or closes one, so the parity of the quotes says where a window
    # starts. A window never ends inside an escape (it is widened past a trailing backslash).
    count = 0
    inside = False
    position = 0
    while position < len(data):
        end = min(position + _WINDOW, len(data))
        while end < len(data) and data[end - 1] == 0x5C:
            end += 1
        text = bytes(data[position:end])
        if b"\\" in text:
            text = text.replace(b"\\\\", b"").replace(b'\\"', b"")
        parts = text.split(b'"')
        outside = b"".join(parts[1 if inside else 0 :: 2])
        count += outside.count(b"{") + outside.count(b"[")
        if len(parts) % 2 == 0:
            inside = not inside
        position = end
    return count


def lenient_default(value: Any) -> Any:
    """What the guest sends for values JSON cannot hold: sets as sorted lists, dates as ISO strings, a big
    result's handle as its data (``to_json()``, within its read limit).

    Tuples and sets are common in programs; everything else must be JSON already (``TypeError``).
    """
    if type(value).__name__ == "ResultHandle" and hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"argument of type {type(value).__name__} cannot be sent to a tool (not JSON)")


def _refuse(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _dumps(value: Any, default: Any) -> str:
    """``value`` as compact JSON (``ensure_ascii=False``, no NaN), ``default`` converting what JSON cannot hold.

    The C encoder straight away: ``JSONEncoder.encode`` spends more than the encoding itself on building
    one per call, in Python. The host makes a fresh one per call (it encodes from several threads); the guest,
    one thread that always passes :func:`lenient_default`, keeps one, whose circular-reference markers a
    failed encode would leave behind: they are cleared then.
    """
    if _make_encoder is None:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=default or _refuse)
    if default is lenient_default:
        try:
            return "".join(_lenient_encode(value, 0))
        except BaseException:
            _LENIENT_MARKERS.clear()
            raise
    encode = _make_encoder({}, default or _refuse, _encode_str, None, ":", ",", False, False, False)
    return "".join(encode(value, 0))


_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_encode_str: Any = json.encoder.encode_basestring
_LENIENT_MARKERS: dict[int, Any] = {}
_lenient_encode: Any = (
    _make_encoder(_LENIENT_MARKERS, lenient_default, _encode_str, None, ":", ",", False, False, False)
    if _make_encoder is not None
    else None
)
_DECODER = json.JSONDecoder()
