"""Mounting services from the directory at run time: the real npm memory server, the real sandboxes."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from codemode.audit import AuditLog
from codemode.config import Config, Settings
from codemode.engine import Engine
from codemode.executors import ExecutorKind
from codemode.sessions import Owner
from tests.conftest import call_started

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(shutil.which("npx") is None, reason="needs npx")]

PROGRAM = """
found = search_directory("memory")
assert [e["name"] for e in found] == ["memory"] and found[0]["mounted"] is False, found
module = mount("memory")
from stubs import memory
memory.create_entities(entities=[{"name": "codemode", "entityType": "project", "observations": ["mounted"]}])
(module, search_directory("memory")[0]["mounted"], memory.read_graph()["entities"][0]["name"])
"""


def _engine(tmp_path: Path, executor: ExecutorKind = "wasm", mount: list[str] | None = None) -> Engine:
    config = Config(settings=Settings(mount=["*memory*"] if mount is None else mount))
    return Engine(config, executor=executor, stubs_dir=tmp_path / "stubs", skills_dir=tmp_path / "skills",
                  audit=AuditLog(tmp_path / "audit.jsonl"))  # fmt: skip


@pytest.fixture(autouse=True)
def _memory_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMORY_FILE_PATH", str(tmp_path / "memory.json"))  # a host-only path of the entry


@pytest.mark.parametrize("executor", ["wasm", "restricted"])
async def test_search_mount_call_then_unmount(tmp_path: Path, executor: ExecutorKind) -> None:
    async with _engine(tmp_path, executor) as engine:
        first = await engine.execute(PROGRAM, session="s")
        assert not first.is_error, first.text
        assert json.loads(first.text) == ["memory", True, "codemode"]
        assert (tmp_path / "memory.json").exists(), "the host's MEMORY_FILE_PATH reached the server"
        again = await engine.execute("from stubs import memory\nmemory.search_nodes(query='codemode')", session="s")
        assert not again.is_error and "mounted" in again.text
        other = await engine.execute("import stubs.memory\nunmount('memory')", session="other")
        assert not other.is_error, other.text
        gone = await engine.execute("import stubs.memory", session="s")
        assert gone.is_error and "No module named 'stubs.memory': no connected server" in gone.text
        assert "may have been unmounted" in gone.text
        assert engine.hub is not None and "memory" not in engine.hub.servers
    entries = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    audited = [(c["tool"], c["state"]) for e in entries for c in e["calls"] if c["server"] == "codemode"]
    assert audited == [("mount(memory)", "done"), ("unmount(memory)", "done")]


async def test_mount_refused_by_default_names_the_setting(tmp_path: Path) -> None:
    async with _engine(tmp_path, mount=[]) as engine:
        outcome = await engine.execute(
            "try:\n    mount('memory')\nexcept ToolDenied as e:\n    print(e.kind, e.message)", session="s"
        )
        assert not outcome.is_error
        assert outcome.text.startswith("denied mounting 'memory' is not allowed") and '"mount"' in outcome.text
        assert engine.hub is not None and engine.hub.servers == []
        unknown = await engine.execute("mount('nope')", session="s")
        assert unknown.is_error and "UnknownTool" in unknown.text and "entries: everything" in unknown.text
        unmounted = await engine.execute("unmount('memory')", session="s")
        assert unmounted.is_error and "was not mounted at run time" in unmounted.text
    entries = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert entries[0]["calls"][0]["tool"] == "mount(memory)" and entries[0]["calls"][0]["state"] == "refused"


async def test_unmount_fails_a_running_call_clearly(tmp_path: Path) -> None:
    async with _engine(tmp_path, mount=["everything"]) as engine:
        mounted = await engine.execute("mount('everything')", session="a")
        assert not mounted.is_error, mounted.text
        long = "from stubs import everything\neverything.trigger_long_running_operation(duration=30, steps=30)"
        results = {}
        assert engine.hub is not None
        call_out = call_started(engine.hub)

        async def run_long() -> None:
            results["long"] = await engine.execute(long, session="a")

        async with anyio.create_task_group() as tg:
            tg.start_soon(run_long)
            # The first type check of a generation can take seconds on a loaded machine: wait for the
            # call itself, not for a fixed time, then give the request a moment to reach the server.
            with anyio.fail_after(120):
                await call_out.wait()
            await anyio.sleep(0.5)
            unmounted = await engine.execute("unmount('everything')", session="b")
            assert not unmounted.is_error, unmounted.text
        text = results["long"].text
        assert results["long"].is_error and "ToolUnavailable" in text
        assert "the server was stopped during the call (unmounted" in text


async def test_a_service_that_does_not_start_is_not_left_mounted(tmp_path: Path) -> None:
    folder = tmp_path / "directory"
    folder.mkdir()
    broken = {
        "name": "io.example/server-broken",
        "packages": [
            {"registryType": "npm", "identifier": "@modelcontextprotocol/server-memory", "version": "2026.8.31",
             "runtimeArguments": [{"type": "named", "name": "--no-such-npx-flag", "value": "x"}]}
        ],
    }  # fmt: skip
    (folder / "broken.json").write_text(json.dumps(broken))
    (tmp_path / "config.json").write_text("{}")
    settings = Settings(mount=["broken"], directory=[str(folder)])
    config = Config(settings=settings, source=str(tmp_path / "config.json"))
    async with Engine(config, stubs_dir=tmp_path / "stubs", skills_dir=tmp_path / "skills",
                      audit=AuditLog(tmp_path / "audit.jsonl")) as engine:  # fmt: skip
        outcome = await engine.execute("mount('broken')")
        assert outcome.is_error and "ToolUnavailable" in outcome.text and "'broken' did not start" in outcome.text
        assert engine.hub is not None and engine.hub.servers == []
        assert engine.services is not None and engine.services.mounted == {}


async def test_a_mount_not_allowed_asks_the_person_when_it_can(tmp_path: Path) -> None:
    questions: list[str] = []

    def person(answer: str | None) -> Any:
        async def ask(question: str, choices: Sequence[str]) -> str | None:
            questions.append(question)
            return answer

        return ask

    program = "try:\n    print(mount('memory'))\nexcept ToolDenied as e:\n    print('refused:', e.message)"
    async with _engine(tmp_path, mount=[]) as engine:
        declined = await engine.execute(program, session="s", ask=person("deny"))
        assert "refused: mounting 'memory' is not allowed" in declined.text
        assert engine.hub is not None and engine.hub.servers == []
        approved = await engine.execute(program, session="s", ask=person("approve"))
        assert approved.text.strip() == "memory" and "memory" in engine.hub.servers
    assert len(questions) == 2 and "mount 'memory'" in questions[0]


async def test_a_client_cannot_unmount_what_another_mounted(tmp_path: Path) -> None:
    alice, bob = Owner("alice-key", "10.0.0.1", identity="alice"), Owner("bob-key", "10.0.0.2", identity="bob")
    async with _engine(tmp_path) as engine:
        mounted = await engine.execute("mount('memory')", session="s", owner=alice)
        assert not mounted.is_error, mounted.text
        refused = await engine.execute("unmount('memory')", session="s", owner=bob)
        assert refused.is_error and "'memory' was mounted by another client" in refused.text, refused.text
        used = await engine.execute("from stubs import memory\nmemory.read_graph()", session="s", owner=alice)
        assert not used.is_error, used.text
        # Mounted by both: each one's unmount ends its own use; the service stops with the last.
        assert not (await engine.execute("mount('memory')", session="s", owner=bob)).is_error
        assert not (await engine.execute("unmount('memory')", session="s", owner=alice)).is_error
        assert engine.hub is not None and "memory" in engine.hub.servers
        assert not (await engine.execute("from stubs import memory\nmemory.read_graph()", owner=bob)).is_error
        assert not (await engine.execute("unmount('memory')", session="s", owner=bob)).is_error
        assert "memory" not in engine.hub.servers
