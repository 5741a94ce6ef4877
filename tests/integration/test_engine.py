"""The engine behind execute_python: quotas, idle expiry, the audit log and the output spill."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from codemode.audit import AuditLog
from codemode.config import Config, Settings, demo_config, parse_config
from codemode.engine import Engine
from tests.conftest import call_started

pytestmark = pytest.mark.anyio


def _config(**settings: object) -> Config:
    return Config(servers=demo_config().servers, settings=Settings(**settings))  # type: ignore[arg-type]


def _engine(tmp_path: Path, config: Config) -> Engine:
    return Engine(config, stubs_dir=tmp_path / "stubs", skills_dir=tmp_path / "skills",
                  audit=AuditLog(tmp_path / "audit.jsonl"))  # fmt: skip


async def test_quotas_are_clear_errors(tmp_path: Path) -> None:
    async with _engine(tmp_path, _config(max_tool_calls=2, executions_per_minute=3, wall_s=2)) as engine:
        calls = await engine.execute("from stubs import notes\nfor _ in range(3):\n    notes.list_tags()", session="q")
        assert calls.is_error and "limit of 2 tool calls" in calls.text
        slow = await engine.execute("while True:\n    pass", session="q")
        assert slow.is_error and "2 s wall-time limit" in slow.text
        third = await engine.execute("1 + 1", session="q")
        assert not third.is_error and third.text == "2"
        denied = await engine.execute("1 + 1", session="q")
        assert denied.is_error and denied.denied and "at most 3 executions per minute" in denied.text
        other = await engine.execute("1 + 1", session="other")  # the rate limit is per client, not per name
        assert other.is_error and "at most 3 executions per minute per client" in other.text
        assert not (await engine.execute("1 + 1", session="q", owner="someone-else")).is_error


async def test_idle_sessions_expire(tmp_path: Path) -> None:
    async with _engine(tmp_path, _config(session_idle_s=0.3)) as engine:
        assert not (await engine.execute("kept = 1", session="idle")).is_error
        with anyio.fail_after(10):
            while "idle" in engine.executor.sessions():  # type: ignore[union-attr]  # noqa: ASYNC110
                await anyio.sleep(0.05)
        again = await engine.execute("kept", session="idle")
        assert again.is_error and "NameError" in again.text


async def test_audit_log_has_one_line_per_execution(tmp_path: Path) -> None:
    async with _engine(tmp_path, _config()) as engine:
        ok = await engine.execute("from stubs import notes\nlen(notes.list_tags())", session="a")
        bad = await engine.execute("1 / 0", session="a")
    lines = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [entry["id"] for entry in lines] == [ok.id, bad.id]
    first, second = lines
    assert first["ok"] is True and first["session"] == "a" and first["code_sha256"]
    assert [(c["server"], c["tool"], c["ok"]) for c in first["calls"]] == [("notes", "list_tags", True)]
    assert first["calls"][0]["args_bytes"] > 0 and first["output_chars"] == len(ok.text)
    assert second["ok"] is False and second["error"].startswith("ZeroDivisionError")


async def test_long_output_is_cut_and_kept_whole_in_scratch(tmp_path: Path) -> None:
    async with _engine(tmp_path, _config(output_chars=1_000)) as engine:
        outcome = await engine.execute("for i in range(2_000):\n    print(f'row {i}')", session="cut")
        assert outcome.full_output_path is not None and "[output cut:" in outcome.text
        assert len(outcome.text) < 1_500
        whole = await engine.execute(f"open({outcome.full_output_path!r}).read().splitlines()[-1]", session="cut")
        assert whole.text == '"row 1999"'


async def test_a_tool_added_upstream_appears_in_the_stubs(tmp_path: Path, fragile_server: dict[str, object]) -> None:
    config = parse_config(json.dumps({"mcpServers": {"fragile": fragile_server}}))
    async with _engine(tmp_path, config) as engine:
        grown = await engine.execute("from stubs import fragile\nfragile.grow(name='shout')", session="g")
        assert not grown.is_error, grown.text
        assert engine.catalog is not None
        with anyio.fail_after(20):
            while not (engine.catalog.path / "fragile" / "shout.py").exists():  # noqa: ASYNC110
                await anyio.sleep(0.05)
        used = await engine.execute("from stubs import fragile\nfragile.shout(text='hi')", session="fresh")
        assert not used.is_error, used.text
        assert used.text == '"shout: hi"'
        # The session that was running when the tool appeared sees it at its next execution.
        again = await engine.execute("from stubs import fragile\nfragile.shout(text='again')", session="g")
        assert again.text == '"shout: again"', again.text


async def test_sessions_are_capped_least_recently_used_first(tmp_path: Path) -> None:
    async with _engine(tmp_path, _config(max_sessions=2)) as engine:
        for name in ("a", "b"):
            assert not (await engine.execute(f"me = {name!r}", session=name)).is_error
        assert not (await engine.execute("me", session="a")).is_error  # "b" is now the least recently used
        assert not (await engine.execute("me = 'c'", session="c")).is_error
        assert sorted(engine.executor.sessions()) == ["a", "c"]  # type: ignore[union-attr]
        assert (await engine.execute("me", session="a")).text == '"a"'
        evicted = await engine.execute("me", session="b")  # came back as a fresh interpreter
        assert evicted.is_error and "NameError" in evicted.text


async def test_a_running_execution_keeps_its_stubs_generation(
    tmp_path: Path, fragile_server: dict[str, object]
) -> None:
    config = parse_config(json.dumps({"mcpServers": {"fragile": fragile_server}}))
    watcher = (
        "import time\nfrom stubs import fragile\nfragile.echo(text='started')\ntime.sleep(5)\n"
        "import stubs.fragile as again\n"
        "[hasattr(again, 'later'), [t['tool'] for t in search_tools('later')]]"
    )
    async with _engine(tmp_path, config) as engine:
        assert engine.catalog is not None and engine.catalog.generation is not None
        before = engine.catalog.generation.name
        assert engine.hub is not None
        started = call_started(engine.hub)
        async with anyio.create_task_group() as tg:
            results: list[str] = []

            async def watch() -> None:
                results.append((await engine.execute(watcher, session="watcher")).text)

            tg.start_soon(watch)
            # Wait for the watcher to be running (its type check may take seconds), not a fixed time.
            with anyio.fail_after(120):
                await started.wait()
            grown = await engine.execute("from stubs import fragile\nfragile.grow(name='later')", session="grower")
            assert not grown.is_error, grown.text
            with anyio.fail_after(4):
                while engine.catalog.generation.name == before:  # noqa: ASYNC110
                    await anyio.sleep(0.05)
        # The execution that was running saw one generation throughout; its next one sees the new tool.
        assert results == ["[false, []]"]
        after = await engine.execute(watcher.replace("time.sleep(5)", ""), session="watcher")
        assert after.text == '[true, ["fragile.later"]]', after.text


async def test_scratch_is_private_to_an_engine_and_removed_with_it(tmp_path: Path) -> None:
    write = "open('/scratch/mine.txt', 'w').write('secret')\nimport os\nsorted(os.listdir('/scratch'))"
    async with _engine(tmp_path / "a", _config()) as first, _engine(tmp_path / "b", _config()) as second:
        assert (await first.execute(write, session="default")).text == '["mine.txt"]'
        seen = await second.execute("import os\nsorted(os.listdir('/scratch'))", session="default")
        assert seen.text == "[]", seen.text  # another serve process with the same session name sees nothing
        assert first.executor is not None
        root = first.executor.scratch_root
        assert (root / "default" / "mine.txt").exists()
    assert not root.exists()


async def test_an_error_after_long_output_is_never_cut_away(tmp_path: Path) -> None:
    async with _engine(tmp_path, _config(output_chars=1_000)) as engine:
        outcome = await engine.execute("for i in range(2_000):\n    print(f'row {i}')\n1 / 0", session="cut")
    assert outcome.is_error and outcome.text.startswith("row 0\n") and "[output cut:" in outcome.text
    assert outcome.text.rstrip().endswith("ZeroDivisionError: division by zero")
    assert len(outcome.text) < 1_500


async def test_max_sessions_refuses_a_new_session_when_every_one_is_running_code(tmp_path: Path) -> None:
    config = parse_config(json.dumps({"mcpServers": {n: s.model_dump() for n, s in demo_config().servers.items()},
                                      "codemode": {"max_sessions": 2}}))
    assert config.settings.max_sessions == 2
    busy = "from stubs import notes\nnotes.list_tags()\nimport time\ntime.sleep(60)"
    async with _engine(tmp_path, config) as engine:
        assert engine.hub is not None
        hub, calls = engine.hub, [anyio.Event(), anyio.Event()]
        real_call = hub.call_tool

        async def watched_call(*args: Any, **kwargs: Any) -> Any:
            next(e for e in calls if not e.is_set()).set()  # a spy: the real call follows
            return await real_call(*args, **kwargs)

        hub.call_tool = watched_call  # type: ignore[method-assign]
        async with anyio.create_task_group() as tg:
            for name in ("a", "b"):
                tg.start_soon(functools.partial(engine.execute, busy, session=name))
            with anyio.fail_after(120):  # both are running (their type checks may take seconds)
                for event in calls:
                    await event.wait()
            refused = await engine.execute("1 + 1", session="c")
            assert refused.is_error and refused.denied, refused.text
            assert "too many sessions: all 2 of this client's are running code; retry later" in refused.text
            assert sorted(engine.executor.sessions()) == ["a", "b"]  # type: ignore[union-attr]
            tg.cancel_scope.cancel()
        assert not (await engine.execute("1 + 1", session="c")).is_error  # an idle one makes room now


@pytest.mark.parametrize("size", [0, 3])
async def test_pool_size_interpreters_wait_ahead_of_demand(tmp_path: Path, size: int) -> None:
    config = Config(servers={}, settings=Settings(pool_size=size))
    async with _engine(tmp_path, config) as engine:
        executor = engine.executor
        assert executor is not None
        with anyio.fail_after(120):  # started in the background: wait for them (none to wait for at 0)
            while executor.pooled < size:  # noqa: ASYNC110
                await anyio.sleep(0.05)
        outcome = await engine.execute("1 + 1", session="first")
        assert outcome.text == "2"
        with anyio.fail_after(120):  # the one a session took is replaced
            while executor.pooled < size:  # noqa: ASYNC110
                await anyio.sleep(0.05)
        assert executor.pooled == size
