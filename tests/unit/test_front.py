"""The execute_python description, session keys and the output cut: the parts of serve with no I/O."""

from __future__ import annotations

from typing import Any

from codemode.config import Settings
from codemode.engine import cut
from codemode.front import session_key, tool_description
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


class _Ctx:
    def __init__(self, headers: dict[str, str] | None) -> None:
        self.headers = headers


def test_session_keys() -> None:
    assert session_key(None) == "default"
    assert session_key(_Ctx(None)) == "default"  # type: ignore[arg-type]  # stdio: one client per process
    a = session_key(_Ctx({"mcp-session-id": "abc"}))  # type: ignore[arg-type]
    b = session_key(_Ctx({"mcp-session-id": "abd"}))  # type: ignore[arg-type]
    assert a.startswith("http-") and a != b and "abc" not in a
    assert session_key(_Ctx({"mcp-protocol-version": "2026-07-28"})) == "http-shared"  # type: ignore[arg-type]
    assert session_key(_Ctx({"mcp-session-id": "abc"}), "mine") == "named-mine"  # type: ignore[arg-type]


def test_cut_keeps_whole_lines_and_names_the_full_copy() -> None:
    text = "\n".join(f"line {i:04d}" for i in range(1000)) + "\nTraceback ...\nZeroDivisionError: division by zero"
    out = cut(text, 1000, "/scratch/outputs/x.txt", len(text))
    head, rest = out.split("\n[output cut:", 1)
    note, tail = rest.split("\n", 1)
    assert len(head) + len(tail) <= 1000 and head.splitlines()[-1].startswith("line ") and head.startswith("line 0000")
    assert tail.splitlines()[0].startswith("line ") and tail.endswith("ZeroDivisionError: division by zero")
    assert "/scratch/outputs/x.txt" in note and f"of {len(text):,} characters" in note
    assert "Print less" in cut(text, 1000, None, len(text))  # no file promised where none is kept
