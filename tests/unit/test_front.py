"""The execute_python description, who a call is from and the output cut: the parts of serve with no I/O."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from mcp.server.connection import Connection

from codemode.config import Settings
from codemode.engine import cut
from codemode.front import HANDLE_META_KEY, CallerError, caller_of, tool_description
from codemode.session_names import Handles
from codemode.sessions import LOCAL
from codemode.tokens import count_tokens


def _index(servers: int, tools_each: int) -> dict[str, Any]:
    summary = "Manage the things of this service: create, list, update and delete them, with filters and paging."
    return {
        "servers": [
            {
                "name": f"service-{i}",
                "module": f"service_{i}",
                "tool_count": tools_each,
                "summary": summary,
                "tools": [{"python_name": f"tool_{j}", "summary": "x" * 80} for j in range(tools_each)],
            }
            for i in range(servers)
        ]
    }


def test_description_names_every_server_and_does_not_grow_with_tools() -> None:
    small = tool_description(_index(30, 5), Settings())
    large = tool_description(_index(30, 500), Settings())
    assert all(f"service_{i}: " in small for i in range(30))
    assert count_tokens(large) - count_tokens(small) < 30  # only the tool counts' digits change
    assert count_tokens(large) < 1_500  # the serve issue's budget for 30 servers
    assert "search_tools" in small and "describe" in small and "from stubs import" in small
    assert "30 s, 256 MB, 200 tool calls" in small
    errors = ("ToolError", "ToolTimeout", "ToolUnavailable", "QuotaExceeded", "UnknownTool", "ToolDenied", "retryable")
    assert all(name in small for name in errors)


def test_description_with_no_servers_says_so() -> None:
    assert "(none connected)" in tool_description({"servers": []})


def _request(request: Any = None, session_id: str | None = None, meta: Any = None) -> Any:
    """What ``caller_of`` reads of a request context: the HTTP request (None over stdio) and the connection."""
    connection = Connection.for_loop(None, session_id=session_id)  # type: ignore[arg-type]  # never sends
    return SimpleNamespace(request=request, session=SimpleNamespace(_connection=connection), meta=meta)


def _http(headers: dict[str, str] | None = None) -> Any:
    return SimpleNamespace(headers=headers or {}, client=SimpleNamespace(host="10.0.0.7"), scope={})


def test_callers() -> None:
    handles = Handles()
    assert caller_of(None, None, handles) == caller_of(_request(), None, handles)  # stdio: one client per process
    local = caller_of(_request(), "mine", handles)
    assert (local.owner, local.session, local.handle) == (LOCAL, "mine", None)
    a = caller_of(_request(_http(), "abc"), None, handles)
    b = caller_of(_request(_http(), "abd"), "mine", handles)
    assert a.owner.key.startswith("mcp-") and a.owner.key != b.owner.key and "abc" not in a.owner.key
    assert (a.session, b.session, a.handle, a.owner.peer) == ("default", "mine", None, "10.0.0.7")
    assert a.connection is not None and a.connection.session_id == "abc"  # its end closes a's sessions
    # Sessionless: a new owner and handle for each call without one; never a shared session.
    first, second = (caller_of(_request(_http()), None, handles) for _ in range(2))
    assert first.owner.key != second.owner.key and first.minted and first.owner.provisional
    assert first.handle is not None and first.handle.startswith("cmh_")
    back = caller_of(_request(_http()), first.handle, handles)
    assert back.owner.key == first.owner.key and not back.owner.provisional and not back.minted
    named = caller_of(_request(_http()), f"{first.handle}/w", handles)
    meta = caller_of(_request(_http(), meta={HANDLE_META_KEY: first.handle}), "w", handles)
    assert named == meta and named.owner.key == first.owner.key and named.session == "w"
    assert named.handle == f"{first.handle}/w"
    altered = first.handle[:-1] + ("A" if first.handle[-1] != "A" else "B")
    for forged, issuer in [(altered, handles), (first.handle, Handles())]:
        with pytest.raises(CallerError, match="is gone: this server does not hold it"):
            caller_of(_request(_http()), forged, issuer)
    # A 2026-07-28 request may carry any mcp-session-id header: it is not an identity.
    spoofed = caller_of(_request(_http({"mcp-session-id": "abc"})), None, handles)
    assert spoofed.owner.key != a.owner.key and spoofed.minted


def test_handles_name_their_node_and_a_node_refuses_another_nodes_handle() -> None:
    key = b"k" * 32  # the same key on both: only the node tag tells them apart
    one, two = Handles(key, node="node1"), Handles(key, node="node2")
    handle = one.mint(principal="")
    assert handle.startswith("cmh_") and handle.endswith(".node1")  # a load balancer routes on this
    assert one.owner(handle, principal="") is not None
    assert two.owner(handle, principal="") is None  # held by node1 only: node2 says the session is gone
    retagged = handle.removesuffix(".node1") + ".node2"
    assert two.owner(retagged, principal="") is None  # the tag is under the mac
    assert Handles(key).owner(handle, principal="") is None and Handles(key).owner(retagged, principal="") is None
    untagged = Handles(key).mint(principal="")
    assert one.owner(untagged, principal="") is None
    for bad in ("Node1", "", "a" * 33, "n.1", "n/1"):
        with pytest.raises(ValueError, match="node name"):
            Handles(node=bad)


def test_cut_keeps_whole_lines_and_names_the_full_copy() -> None:
    text = "\n".join(f"line {i:04d}" for i in range(1000)) + "\nTraceback ...\nZeroDivisionError: division by zero"
    out = cut(text, 1000, "/scratch/outputs/x.txt", len(text))
    head, rest = out.split("\n[output cut:", 1)
    note, tail = rest.split("\n", 1)
    assert len(head) + len(tail) <= 1000 and head.splitlines()[-1].startswith("line ") and head.startswith("line 0000")
    assert tail.splitlines()[0].startswith("line ") and tail.endswith("ZeroDivisionError: division by zero")
    assert "/scratch/outputs/x.txt" in note and f"of {len(text):,} characters" in note
    assert "Print less" in cut(text, 1000, None, len(text))  # no file promised where none is kept
