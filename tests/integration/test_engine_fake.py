"""The engine over in-process upstreams (no server processes): tools that change, servers mounted and
unmounted while sessions run, each reaching the sandbox as a new stubs generation."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from codemode.audit import AuditLog
from codemode.config import Config
from codemode.engine import Engine
from codemode.hub import FakeUpstream, ToolSpec

pytestmark = pytest.mark.anyio

TEXT = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}


def _engine(tmp_path: Path, **upstreams: FakeUpstream) -> Engine:
    return Engine(Config(), upstreams=upstreams, stubs_dir=tmp_path / "stubs", skills_dir=tmp_path / "skills",
                  audit=AuditLog(tmp_path / "audit.jsonl"))  # fmt: skip


async def _next_generation(engine: Engine, before: str) -> None:
    assert engine.catalog is not None
    with anyio.fail_after(10):
        while engine.catalog.generation is None or engine.catalog.generation.name == before:  # noqa: ASYNC110
            await anyio.sleep(0.02)


async def test_tools_that_appear_and_servers_mounted_at_runtime(tmp_path: Path) -> None:
    echo = FakeUpstream("echo", [ToolSpec("echo", "say", input_schema=TEXT)], lambda tool, args: f"{tool}:{args}")
    async with _engine(tmp_path, echo=echo) as engine:
        assert engine.catalog is not None and engine.catalog.generation is not None and engine.hub is not None
        first = await engine.execute("from stubs import echo\nkept = 1\necho.say(text='hi')", session="s")
        assert first.text == "\"say:{'text': 'hi'}\"", first.text

        before = engine.catalog.generation.name
        echo.set_tools([ToolSpec("echo", "say", input_schema=TEXT), ToolSpec("echo", "shout", input_schema=TEXT)])
        await _next_generation(engine, before)
        grown = await engine.execute("from stubs import echo\n[kept, echo.shout(text='a')]", session="s")
        assert grown.text == "[1, \"shout:{'text': 'a'}\"]", grown.text

        before = engine.catalog.generation.name
        await engine.hub.mount("calc", FakeUpstream("calc", [ToolSpec("calc", "add")], lambda tool, args: {"n": 3}))
        await _next_generation(engine, before)
        mounted = await engine.execute("from stubs import calc\n[m['module'] for m in list_servers()], calc.add()",
                                       session="s")  # fmt: skip
        assert mounted.text == '[["calc", "echo"], {"n": 3}]', mounted.text

        before = engine.catalog.generation.name
        await engine.hub.unmount("calc")
        await _next_generation(engine, before)
        gone = await engine.execute("calc.add()", session="s")  # the module object survives; the tool does not
        assert gone.is_error and "UnknownTool" in gone.text and "no server named 'calc'" in gone.text
        assert [c.state.value for c in gone.calls] == ["refused"]


async def test_a_server_that_failed_to_start_is_shown_refused_clearly_and_retried(tmp_path: Path) -> None:
    flaky = FakeUpstream("flaky", [ToolSpec("flaky", "ping")], lambda tool, args: "pong", fail_start="port in use")
    ok = FakeUpstream("ok", [ToolSpec("ok", "ping")], lambda tool, args: "pong")
    async with _engine(tmp_path, flaky=flaky, ok=ok) as engine:
        assert engine.catalog is not None and engine.catalog.generation is not None
        listed = await engine.execute("[s['summary'] for s in list_servers() if s['server'] == 'flaky']", session="s")
        assert listed.text == '["unavailable: port in use (codemode retries it)"]', listed.text
        called = await engine.execute(
            "import codemode_runtime\ntry:\n    codemode_runtime.call('flaky', 'ping', {})\n"
            "except ToolUnavailable as e:\n    why = [str(e), e.retryable]\nwhy",
            session="s",
        )
        assert called.text == '["flaky.ping: server \'flaky\' is unavailable: port in use (codemode retries it)", true]'
        # Through its stub, as a program calls it: said to be down, not that it has no such tool.
        stub = await engine.execute(
            "from stubs import flaky\ntry:\n    flaky.ping()\n"
            "except ToolUnavailable as e:\n    why = [str(e), e.retryable]\nwhy",
            session="s",
        )
        assert stub.text.endswith(  # after the type check's note that the stub has no `ping`
            '["flaky.ping: server \'flaky\' is unavailable: port in use (codemode retries it); its tools have stubs '
            'once it is back", true]'
        ), stub.text
        before = engine.catalog.generation.name
        flaky.fail_start = None  # the next retry succeeds
        await _next_generation(engine, before)
        works = await engine.execute("from stubs import flaky\nflaky.ping()", session="s")
        assert works.text == '"pong"', works.text
