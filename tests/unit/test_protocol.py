"""The guest↔host protocol: codec, op table, error kinds, the version check and the guest's error classes."""

from __future__ import annotations

import ast
import importlib
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from codemode import protocol
from tests.conftest import REPO, import_guest

RUNTIME = REPO / "sandbox" / "codemode_runtime"


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The guest package imported on the host (its transport is replaced per test)."""
    yield from import_guest(monkeypatch, "codemode_runtime")


# -- the codec --------------------------------------------------------------------------------------------

BIG = "é" * 20_000 + "\ud800"  # over the blob threshold, multi-byte, with a lone surrogate


@pytest.mark.parametrize(
    ("message", "lifted"),
    [
        ({"op": "call", "server": "s", "tool": "t", "args": {}}, False),
        ({"op": "call", "server": "s", "tool": "t", "args": {"text": BIG, "n": 1, "short": "x"}}, True),
        ({"op": "next", "result": {"stdout": BIG, "value": [BIG, {"deep": BIG + "!"}], "error": None}}, True),
        ({"ok": True, "result": [1, 2.5, None, True, "ü", {"a": []}]}, False),
        ({"ok": True, "result": {"rows": [{"body": BIG}] * 3}}, True),
        ({"ok": True, "result": {"a": {"b": {"c": {"d": {"e": {"f": {"g": BIG}}}}}}}}, False),
    ],
    ids=["plain", "blob-arg", "blob-result", "json-types", "blob-in-list", "beyond-lift-depth"],
)
def test_pack_unpack_round_trip(message: dict[str, Any], lifted: bool) -> None:
    frame = protocol.encode_frame(message)
    assert protocol.unpack(frame[protocol.HEADER.size :]) == message
    if "op" in message:
        assert protocol.decode_frame(frame, 1 << 30) == message
    # Big strings travel as raw bytes after the JSON, not inside it (a walk of limited depth finds them).
    assert (b'"$blobs"' in frame) is lifted


def test_pack_does_not_change_the_callers_data() -> None:
    args = {"text": BIG, "items": [BIG]}
    protocol.encode_frame({"op": "call", "server": "s", "tool": "t", "args": args})
    assert args == {"text": BIG, "items": [BIG]}


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"", "no length header"),
        (b"\x00\x00\x00\x09{}", "header says 9 bytes but 2 arrived"),
        (protocol.HEADER.pack(5) + protocol.HEADER.pack(9) + b"[", "runs past"),
        (protocol.HEADER.pack(6) + protocol.HEADER.pack(2) + b"[]", "not a JSON object with an 'op'"),
        (protocol.HEADER.pack(7) + protocol.HEADER.pack(2) + b"{}x", "trailing bytes"),
        (protocol.HEADER.pack(6) + protocol.HEADER.pack(2) + b"{}", "not a JSON object with an 'op'"),
    ],
)
def test_decode_frame_says_what_is_wrong(raw: bytes, error: str) -> None:
    with pytest.raises(protocol.FrameError, match=error):
        protocol.decode_frame(raw, 1 << 20)


def test_decode_frame_checks_the_size_before_decoding() -> None:
    frame = protocol.encode_frame({"op": "call", "server": "s", "tool": "t", "args": {"x": "y" * 100}})
    with pytest.raises(protocol.FrameError, match="over the 10-byte limit"):
        protocol.decode_frame(frame, 10)


def _framed(json_part: bytes, *blobs: bytes) -> bytes:
    body = protocol.HEADER.pack(len(json_part)) + json_part + b"".join(blobs)
    return protocol.HEADER.pack(len(body)) + body


@pytest.mark.parametrize(
    ("json_part", "error"),
    [
        (b'{"op":"call","args":' + b"[" * (protocol.MAX_DEPTH + 1) + b"]" * (protocol.MAX_DEPTH + 1) + b"}",
         f"nested deeper than the limit of {protocol.MAX_DEPTH} levels"),
        (b'{"op":"call","args":[' + b",".join([b"[]"] * protocol.MAX_CONTAINERS) + b"]}",
         f"over the limit of {protocol.MAX_CONTAINERS:,}"),
        (b'{"op":"call","$blobs":[' + b",".join([b'[["x"],0]'] * (protocol.MAX_BLOBS + 1)) + b"]}",
         f"over the limit of {protocol.MAX_BLOBS:,}"),
    ],
    ids=["depth", "containers", "blobs"],
)  # fmt: skip
def test_decode_frame_bounds_the_shape_before_parsing(json_part: bytes, error: str) -> None:
    # Each is a guest's frame well within the byte limit: the shape checks, not the size, must refuse it.
    with pytest.raises(protocol.FrameError, match=error):
        protocol.decode_frame(_framed(json_part), 1 << 30)


def test_one_header_struct_and_one_codec() -> None:
    sources = [*(REPO / "src" / "codemode").rglob("*.py"), *RUNTIME.glob("*.py")]
    definitions = [p.name for p in sources if 'Struct(">I")' in p.read_text(encoding="utf-8")]
    assert definitions == ["protocol.py"] and 'Struct(">I")' in (RUNTIME / "protocol.py").read_text()
    assert protocol.MAGIC_OFFSET == 0x7FFF_C0DE_0000_0000


# -- the op table ---------------------------------------------------------------------------------------------

_SAMPLES: dict[type, Any] = {str: "text", int: 7, bool: True, dict: {"k": ["v", 1]}, list: [1, 2]}


def _sample(op: protocol.Op, *, optional: bool) -> dict[str, Any]:
    fields = {**op.required, **(op.optional if optional else {})}
    message: dict[str, Any] = {"op": op.name}
    for name, expected in fields.items():
        message[name] = _SAMPLES[expected[0] if isinstance(expected, tuple) else expected]
    return message


@pytest.mark.parametrize("name", sorted(protocol.OPS))
def test_every_op_round_trips_and_checks(name: str) -> None:
    op = protocol.OPS[name]
    assert op.sender in (protocol.GUEST, protocol.HOST) and op.doc
    assert (op.reply in (protocol.REPLY_WORK, protocol.REPLY_RESULT)) == (op.sender == protocol.GUEST)
    for message in (_sample(op, optional=False), _sample(op, optional=True)):
        decoded = protocol.decode_frame(protocol.encode_frame(message), 1 << 20)
        assert decoded == message
        assert protocol.check(decoded, op.sender) is op
    other = protocol.HOST if op.sender == protocol.GUEST else protocol.GUEST
    with pytest.raises(protocol.ProtocolError, match="is not an op the"):
        protocol.check(_sample(op, optional=True), other)
    for field in op.required:
        message = _sample(op, optional=True)
        del message[field]
        with pytest.raises(protocol.ProtocolError, match=f"needs the field '{field}'"):
            protocol.check(message, op.sender)
    for field in [*op.required, *op.optional]:
        message = _sample(op, optional=True)
        message[field] = [] if not isinstance(message[field], list) else "x"
        with pytest.raises(protocol.ProtocolError, match=f"field '{field}' must be"):
            protocol.check(message, op.sender)


def test_check_rejects_unknown_ops_and_bools_for_ints() -> None:
    with pytest.raises(protocol.ProtocolError, match="'exec' is not an op the guest sends"):
        protocol.check({"op": "exec", "code": "1"}, protocol.GUEST)
    with pytest.raises(protocol.ProtocolError, match="a message is a JSON object"):
        protocol.check([], protocol.GUEST)
    with pytest.raises(protocol.ProtocolError, match="'output_cap' must be int, not bool"):
        protocol.check({"op": "run", "code": "1", "output_cap": True}, protocol.HOST)


def test_the_host_builds_frames_the_table_accepts() -> None:
    assert protocol.check(protocol.run_frame("1", 10), protocol.HOST).name == protocol.OP_RUN
    assert protocol.check(protocol.run_frame("1", 10, cpu_s=3, memory_bytes=1 << 20), protocol.HOST)
    assert protocol.check(protocol.exit_frame(), protocol.HOST).name == protocol.OP_EXIT
    protocol.check_result(protocol.result_reply({"a": 1}))


# -- error kinds ----------------------------------------------------------------------------------------------


def test_error_kinds_are_one_closed_set() -> None:
    assert set(typing.get_args(protocol.ErrorKind)) == set(protocol.KINDS)
    constants = {getattr(protocol, name) for name in dir(protocol) if name.startswith("KIND_")}
    assert constants == set(protocol.KINDS)
    # Everything the bridge says today, plus the kinds approvals will need.
    assert {"tool", "unknown", "quota", "too_large", "timeout", "upstream", "bridge", "cancelled"} < constants
    assert {"denied", "awaiting"} < constants


def test_retryable_flags() -> None:
    assert {kind for kind, retryable in protocol.KINDS.items() if retryable} == {"timeout", "upstream", "awaiting"}


@pytest.mark.parametrize("kind", sorted(protocol.KINDS))
def test_error_reply_for_every_kind(kind: protocol.ErrorKind) -> None:
    reply = protocol.error_reply(kind, "why")
    protocol.check_result(reply)
    assert protocol.decode_frame(protocol.encode_frame({"op": "x", **reply}), 1 << 20)["error"]["kind"] == kind


def test_error_reply_rejects_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown tool-error kind 'quotum'"):
        protocol.error_reply("quotum", "a typo")  # type: ignore[arg-type]
    with pytest.raises(protocol.ProtocolError, match="known 'kind'"):
        protocol.check_result({"ok": False, "error": {"kind": "quotum", "message": "m"}})


# -- the version ----------------------------------------------------------------------------------------------


def test_host_and_bundled_guest_speak_the_same_version() -> None:
    assert protocol.PROTOCOL_VERSION == protocol.GUEST_PROTOCOL_VERSION == 2


def test_the_guests_hello_passes(runtime: ModuleType) -> None:
    hello = importlib.import_module("codemode_runtime.protocol").hello()
    assert hello == {"op": "next", "ready": True, "v": protocol.PROTOCOL_VERSION}
    protocol.check_hello(protocol.decode_frame(protocol.encode_frame(hello), 1 << 10))


@pytest.mark.parametrize(
    ("version", "spoken"), [(1, "protocol 1"), (3, "protocol 3"), (None, "an unversioned protocol (0)")]
)
def test_a_guest_of_another_version_is_refused_clearly(version: int | None, spoken: str) -> None:
    hello: dict[str, Any] = {"op": "next", "ready": True}
    if version is not None:
        hello["v"] = version
    with pytest.raises(protocol.ProtocolMismatch) as caught:
        protocol.check_hello(hello)
    assert str(caught.value) == (
        f"the guest runtime speaks {spoken}, this host speaks protocol 2: they come from different codemode "
        "releases; reinstall codemode"
    )


@pytest.mark.parametrize(
    "frame",
    [
        {"op": "next", "result": {}},
        {"op": "call", "server": "s", "tool": "t", "args": {}},
        {"op": "next", "ready": True, "v": "1"},
        {"op": "run", "code": "", "output_cap": 1},
    ],
)
def test_a_first_frame_that_is_no_hello_is_refused(frame: dict[str, Any]) -> None:
    with pytest.raises(protocol.FrameError, match="first frame is not a hello") as caught:
        protocol.check_hello(frame)
    assert not isinstance(caught.value, protocol.ProtocolMismatch)


# -- the guest runtime ------------------------------------------------------------------------------------


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import"
            assert node.module is not None
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted(RUNTIME.glob("*.py")), ids=lambda p: p.name)
def test_guest_runtime_imports_only_the_stdlib(path: Path) -> None:
    foreign = _imports(path) - set(sys.stdlib_module_names) - {"__future__", "codemode_runtime"}
    assert not foreign, f"{path.name} imports {sorted(foreign)}"


def test_the_host_loads_the_guest_protocol_in_one_place() -> None:
    loaders = [
        path.relative_to(REPO).as_posix()
        for path in (REPO / "src" / "codemode").rglob("*.py")
        if 'load_guest_module("protocol"' in path.read_text(encoding="utf-8")
        or 'load_guest_module("transport"' in path.read_text(encoding="utf-8")
    ]
    assert loaders == ["src/codemode/protocol.py"]


_KIND_CLASSES = {
    "tool": "ToolError",
    "timeout": "ToolTimeout",
    "upstream": "ToolUnavailable",
    "awaiting": "ApprovalPending",
    "denied": "ToolDenied",
    "quota": "QuotaExceeded",
    "too_large": "QuotaExceeded",
    "unknown": "UnknownTool",
    "cancelled": "CallCancelled",
    "bridge": "BridgeError",
    "from-the-future": "ToolError",
}


@pytest.mark.parametrize("kind", sorted(_KIND_CLASSES))
def test_call_raises_the_class_of_the_kind(runtime: ModuleType, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    sent: list[dict[str, Any]] = []

    def request(message: dict[str, Any]) -> dict[str, Any]:
        sent.append(message)
        return {"ok": False, "error": {"kind": kind, "message": "no luck"}}

    monkeypatch.setattr(runtime.transport, "request", request)
    with pytest.raises(runtime.ToolError) as caught:
        runtime.call("notes", "get_note", {"note_id": 1, "absent": None})
    error = caught.value
    assert type(error).__name__ == _KIND_CLASSES[kind] and type(error).__module__ == "codemode_runtime"
    assert (error.server, error.tool, error.message, error.kind) == ("notes", "get_note", "no luck", kind)
    assert error.retryable is protocol.KINDS.get(kind, False)
    assert str(error) == "notes.get_note: no luck"
    assert sent == [{"op": "call", "server": "notes", "tool": "get_note", "args": {"note_id": 1}}]
    protocol.check(sent[0], protocol.GUEST)


def test_error_classes_keep_the_tool_error_signature(runtime: ModuleType) -> None:
    plain = runtime.ToolError("s", "t", "m")
    assert (plain.kind, plain.retryable) == ("tool", False)
    timeout = runtime.ToolTimeout("s", "t", "m")
    assert (timeout.kind, timeout.retryable, isinstance(timeout, runtime.ToolError)) == ("timeout", True, True)
    too_large = runtime.QuotaExceeded("s", "t", "m", "too_large")
    assert (too_large.kind, too_large.retryable) == ("too_large", False)
    for name in runtime.PROGRAM_NAMES:
        assert name in runtime.__all__ and hasattr(runtime, name)
        value = getattr(runtime, name)
        # A refused save and a big result's handle are not tool calls' errors.
        if isinstance(value, type) and value not in (runtime.SkillError, runtime.ResultHandle):
            assert issubclass(value, runtime.ToolError)


def test_serve_says_hello_and_calls_before_run(runtime: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    repl = importlib.import_module("codemode_runtime.repl")
    replies = [protocol.run_frame("x = 20\nx + 1", 1000, cpu_s=5), protocol.run_frame("x", 1000), protocol.exit_frame()]
    sent: list[dict[str, Any]] = []
    seen: list[dict[str, Any]] = []

    def request(message: dict[str, Any]) -> dict[str, Any]:
        sent.append(protocol.decode_frame(protocol.encode_frame(message), 1 << 20))
        return replies.pop(0)

    def before_run(frame: dict[str, Any]) -> None:
        seen.append(frame)
        if "cpu_s" not in frame:
            raise RuntimeError("no limits")

    monkeypatch.setattr(repl.transport, "request", request)
    repl.serve(before_run=before_run)
    protocol.check_hello(sent[0])
    assert [protocol.check(m, protocol.GUEST).name for m in sent] == ["next", "next", "next"]
    assert sent[1]["result"]["value"] == 21
    assert sent[2]["result"]["error"]["type"] == "RuntimeError"  # a failing hook fails that execution only
    assert [frame.get("cpu_s") for frame in seen] == [5, None]


def test_frame_limits_are_the_request_and_output_limits_plus_their_headroom() -> None:
    # A larger limit lets a guest make the host buffer more; a smaller one refuses honest frames.
    mib = 1024 * 1024
    assert protocol.guest_frame_limit(10_000, 1_000) == 10_000 + 4 * 1_000 * 2 + 8 * mib  # stdout + stderr, 4 B/char
    assert protocol.IDLE_FRAME_LIMIT == protocol.FRAME_HEADROOM == 8 * mib
    assert protocol.request_frame_limit(10_000) == 10_000 + mib


def test_only_guest_requests_answered_with_a_result_are_service_ops() -> None:
    # Service ops reach the gate's handlers: a host op, a call (the gate's own path) or an unknown name must not.
    service = {op for op in protocol.OPS if protocol.is_service_op(op)}
    assert service == {
        protocol.OP_SAVE_SKILL, protocol.OP_SEARCH_DIRECTORY, protocol.OP_MOUNT, protocol.OP_UNMOUNT, protocol.OP_FETCH
    }
    assert not any(protocol.is_service_op(op) for op in (protocol.OP_CALL, protocol.OP_NEXT, protocol.OP_RUN,
                                                         protocol.OP_EXIT, "no_such_op", ""))


def test_a_frame_of_exactly_the_limit_is_read_and_one_byte_more_is_not() -> None:
    frame = protocol.encode_frame({"op": "call", "server": "s", "tool": "t", "args": {"x": "y" * 100}})
    body = len(frame) - protocol.HEADER.size
    assert protocol.decode_frame(frame, body)["args"] == {"x": "y" * 100}
    with pytest.raises(protocol.FrameError, match=f"frame of {body:,} bytes is over the {body - 1:,}-byte limit"):
        protocol.decode_frame(frame, body - 1)


def test_an_error_reply_is_never_ok() -> None:
    assert protocol.error_reply("bridge", "no") == {"ok": False, "error": {"kind": "bridge", "message": "no"}}


def test_a_header_alone_is_an_empty_frame_not_a_missing_header() -> None:
    with pytest.raises(protocol.FrameError, match="no length header"):
        protocol.decode_frame(protocol.HEADER.pack(0)[:-1], 10)
    with pytest.raises(protocol.FrameError, match=r"^frame is not valid: "):
        protocol.decode_frame(protocol.HEADER.pack(0), 10)


def test_the_guests_encoder_forgets_a_failed_encode(runtime: ModuleType) -> None:
    # The guest keeps one encoder: a failed encode leaves its containers marked as "being encoded", and the
    # next encode of the same list would be refused as circular if the marks were not cleared.
    protocol = runtime.protocol
    items: list[Any] = [object()]
    with pytest.raises(TypeError, match="cannot be sent to a tool"):
        protocol.pack({"a": items}, default=protocol.lenient_default)
    items[0] = 1
    body = protocol.pack({"a": items, "b": items}, default=protocol.lenient_default)
    assert protocol.unpack(body) == {"a": [1], "b": [1]}
    items.append(items)
    with pytest.raises(ValueError, match="Circular reference"):
        protocol.pack({"a": items}, default=protocol.lenient_default)

