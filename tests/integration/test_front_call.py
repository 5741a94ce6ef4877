"""``execute_python`` answered by the front itself rather than by MCPServer's tool machinery: the program gets
the arguments MCPServer would have given it, and a client gets the same answers for bad arguments and faults.
In process: the real front, engine and WASM sandbox, and the SDK's client connected in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client
from mcp.server._otel import OpenTelemetryMiddleware
from opentelemetry import trace
from pydantic import ValidationError

from codemode.audit import AuditLog
from codemode.config import Config
from codemode.engine import Engine
from codemode.front import TOOL_NAME, _plain_arguments, build_server

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def _engine(tmp: Path) -> AsyncIterator[Engine]:
    engine = Engine(Config(), stubs_dir=tmp / "stubs", skills_dir=tmp / "skills", audit=AuditLog(tmp / "audit.jsonl"))
    async with engine:
        yield engine


def _text(result: types.CallToolResult) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


ARGUMENTS: list[dict[str, Any]] = [
    {}, {"code": 5}, {"code": None}, {"code": "1"}, {"code": "[1]"}, {"code": "null"}, {"code": "1", "extra": 2},
    *({"code": "1", "session": session} for session in (
        None, 3, ["s"], "s", "notes", "nan", "NaN", "3", "1.5", '"quoted"', "null", "true", "false", "[1]", ' {"a": 1}',
        "\t[", "{", "tea", "",
    )),
]  # fmt: skip


async def test_the_program_gets_what_mcpserver_would_pass(tmp_path: Path) -> None:
    async with _engine(tmp_path) as engine:
        server = build_server(engine)
        tool = server._tool_manager.get_tool(TOOL_NAME)
        assert tool is not None
        for arguments in ARGUMENTS:
            try:
                validated: dict[str, Any] | None = tool.fn_metadata.validate_arguments(arguments)
            except ValidationError:
                validated = None
            plain = _plain_arguments(arguments)
            if plain is not None:  # the front answers: with exactly what MCPServer's validation yields
                assert validated == {"code": plain[0], "session": plain[1]}, arguments
            else:  # MCPServer answers: it refuses them or changes them
                assert validated is None or validated != {**{"session": None}, **arguments}, arguments
        # MCPServer's own call in process, outside any request: the tool still runs, for the local client.
        direct = await server.call_tool(TOOL_NAME, {"code": "1 + 1"})
        assert isinstance(direct, types.CallToolResult) and _text(direct) == "2"
    assert _plain_arguments({"code": "x", "session": "notes"}) == ("x", "notes")  # the usual calls take the short path
    assert _plain_arguments({"code": "x"}) == ("x", None)


async def test_bad_arguments_get_a_clear_error_and_sessions_still_work(tmp_path: Path) -> None:
    async with _engine(tmp_path) as engine, Client(build_server(engine)) as client:
        missing = await client.call_tool(TOOL_NAME, {})
        assert missing.is_error and "code" in _text(missing) and "Field required" in _text(missing)
        ill_typed = await client.call_tool(TOOL_NAME, {"code": 5})
        assert ill_typed.is_error and "code" in _text(ill_typed) and "valid string" in _text(ill_typed)
        bad_session = await client.call_tool(TOOL_NAME, {"code": "1", "session": 3})
        assert bad_session.is_error and "session" in _text(bad_session)
        assert not (await client.call_tool(TOOL_NAME, {"code": "x = 41", "session": "a"})).is_error
        assert _text(await client.call_tool(TOOL_NAME, {"code": "x + 1", "session": "a"})) == "42"
        other = await client.call_tool(TOOL_NAME, {"code": "x", "session": "b"})
        assert other.is_error and "NameError" in _text(other)
        await client.call_tool(TOOL_NAME, {"code": "y = 7"})
        assert _text(await client.call_tool(TOOL_NAME, {"code": "y", "session": "null"})) == "7"  # read as no session


async def test_a_fault_outside_the_engine_is_an_error_result_as_before(tmp_path: Path) -> None:
    async def person(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        raise AssertionError("nothing is asked")

    async with _engine(tmp_path) as engine:
        server = build_server(engine)
    # The engine is closed: parking the program of a 2026-07-28 client that elicits fails before it runs.
    async with Client(server, elicitation_callback=person) as client:
        assert client.protocol_version == "2026-07-28"
        result = await client.call_tool(TOOL_NAME, {"code": "1 + 1"})
    assert result.is_error and _text(result) == f"Error executing tool {TOOL_NAME}"


class _Provider(trace.TracerProvider):
    """A tracer provider someone installed (``opentelemetry-instrument`` installs the SDK's)."""

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return trace.NoOpTracer()


async def test_the_sdks_request_span_is_kept_only_when_a_tracer_provider_is_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _engine(tmp_path) as engine:
        # None installed (the default proxy): the span middleware would only cost every request its no-op span.
        bare = build_server(engine)
        assert not [m for m in bare.middleware if isinstance(m, OpenTelemetryMiddleware)]
        async with Client(bare, mode="legacy") as client:
            result = await client.call_tool(TOOL_NAME, {"code": "6 * 7"})
        assert _text(result) == "42" and not result.is_error
        monkeypatch.setattr(trace, "get_tracer_provider", _Provider)
        traced = build_server(engine)
        assert [type(m) for m in traced.middleware].count(OpenTelemetryMiddleware) == 1
