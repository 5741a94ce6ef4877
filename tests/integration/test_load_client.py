"""The load benchmark's lean MCP client (``benchmarks/load.py``) against a real ``codemode serve --http``: the
handshake, a session's state across calls, and a session the server no longer holds reported as gone (the
benchmark's kill setup relies on it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.load import LeanClient, SessionGone
from tests.serve_http import ALICE, NOTES, serving


def text(result: dict[str, object]) -> str:
    content = result.get("content")
    assert isinstance(content, list)
    return "\n".join(str(c.get("text", "")) for c in content)


async def test_lean_client_keeps_its_session_and_is_told_when_it_is_gone(tmp_path: Path) -> None:
    async with serving(tmp_path, servers={"notes": NOTES}) as url:
        async with LeanClient(url, ALICE) as client:
            assert client.session_id
            planted = await client.call_tool("execute_python", {"code": "from stubs import notes\nx = 41"})
            assert not planted.get("isError"), text(planted)
            answer = await client.call_tool("execute_python", {"code": "x + 1"})
            assert not answer.get("isError") and text(answer) == "42", text(answer)
            failed = await client.call_tool("execute_python", {"code": "1 / 0"})
            assert failed.get("isError") and "ZeroDivisionError" in text(failed), text(failed)
            ended = client.session_id
        async with LeanClient(url, ALICE) as other:  # the first session ended with its DELETE
            other.session_id = ended
            with pytest.raises(SessionGone, match="is gone"):
                await other.call_tool("execute_python", {"code": "x"})
