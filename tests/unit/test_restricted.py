"""The RestrictedPython executor: real child processes, real demo servers behind the bridge."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from codemode.calls import default_gate
from codemode.calls.results import result_for_guest
from codemode.compiler import compile_to_dir
from codemode.config import demo_config
from codemode.errors import SandboxError
from codemode.executors import Limits, create_executor
from codemode.executors.restricted import RestrictedExecutor
from codemode.hub import Hub, ToolRef


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    # Module scope so the hub (two demo server processes) starts once for the whole file.
    return "asyncio"


@pytest.fixture(scope="module")
async def hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Hub]:
    async with Hub(demo_config(), log_dir=tmp_path_factory.mktemp("logs")) as running:
        yield running


@pytest.fixture(scope="module")
def stubs_dir(hub: Hub, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("compiled") / "stubs"
    compile_to_dir(hub.tools(), out, summaries=hub.summaries())
    return out


def make_executor(hub: Hub, stubs_dir: Path, tmp_path: Path, limits: Limits | None = None) -> RestrictedExecutor:
    return RestrictedExecutor(
        stubs_dir=stubs_dir,
        skills_dir=tmp_path / "skills",
        scratch_root=tmp_path / "scratch",
        gate=default_gate(hub),
        limits=limits,
        pool_size=1,
    )


@pytest.fixture
async def executor(hub: Hub, stubs_dir: Path, tmp_path: Path) -> AsyncIterator[RestrictedExecutor]:
    async with make_executor(hub, stubs_dir, tmp_path, Limits(wall_s=10)) as ex:
        yield ex


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_create_executor_builds_a_restricted_one(hub: Hub, stubs_dir: Path, tmp_path: Path) -> None:
    ex = create_executor(
        "restricted", stubs_dir=stubs_dir, skills_dir=tmp_path / "sk", scratch_root=tmp_path / "sc",
        gate=default_gate(hub),
    )  # fmt: skip
    async with ex:
        result = await ex.run("6 * 7")
    assert ex.kind == "restricted" and result.ok and result.value == 42 and result.value_is_json


async def test_final_expression_value_and_stdout(executor: RestrictedExecutor) -> None:
    result = await executor.run("print('hello', 1, sep='-')\n{'a': [1, 2]}")
    assert result.ok, result.error
    assert result.stdout == "hello-1\n"
    assert result.has_value and result.value_is_json and result.value == {"a": [1, 2]}
    pair = await executor.run("(1, 'two')")
    assert pair.value_is_json and pair.value == [1, "two"]  # tuples travel as JSON arrays
    shown = await executor.run("{1, 2}")
    assert shown.has_value and not shown.value_is_json and shown.value_repr == "{1, 2}"


async def test_state_persists_and_sessions_are_isolated(executor: RestrictedExecutor) -> None:
    assert (await executor.run("x = 41", session="a")).ok
    assert (await executor.run("x += 1\nx", session="a")).value == 42
    other = await executor.run("x", session="b")
    assert not other.ok and other.error is not None and other.error.type == "NameError"
    assert executor.sessions() == ["a", "b"]
    assert executor.pid("a") != executor.pid("b")


async def test_ordinary_code_runs(executor: RestrictedExecutor) -> None:
    code = """
import math, json, collections, dataclasses
from collections import defaultdict

total = 0
for i in range(5):
    total += i
counts = defaultdict(int)
for word in "a b a c b a".split():
    counts[word] += 1
people = [{"name": "bo", "age": 31}, {"name": "al", "age": 25}]
by_age = sorted(people, key=lambda p: p["age"])
getter = getattr({"k": "v"}, "get")
squares = {str(n): n * n for n in range(4) if n % 2 == 0}
pairs = [[a, b] for a, b in zip("xy", [1, 2])]
first, *rest = [1, 2, 3]

class Counter:
    def __init__(self, start):
        self.value = start
    def bump(self, by=1):
        self.value += by
        return self.value

@dataclasses.dataclass
class Point:
    x: int
    y: int = 0

try:
    1 / 0
except ZeroDivisionError as exc:
    caught = f"caught {type(exc).__name__}"

c = Counter(10)
c.bump()
{
    "total": total, "counts": dict(counts), "youngest": by_age[0]["name"], "get": getter("k"),
    "squares": squares, "pairs": pairs, "rest": rest, "bumped": c.bump(5), "caught": caught,
    "point": dataclasses.asdict(Point(3)), "f": f"{math.pi:.2f}", "json": json.dumps([1]),
    "hasattr": hasattr(c, "value"), "mx": max([3, 9, 2]), "rev": list(reversed([1, 2])),
}
"""
    result = await executor.run(code)
    assert result.ok, result.error
    assert result.value == {
        "total": 10, "counts": {"a": 3, "b": 2, "c": 1}, "youngest": "al", "get": "v", "squares": {"0": 0, "2": 4},
        "pairs": [["x", 1], ["y", 2]], "rest": [2, 3], "bumped": 16, "caught": "caught ZeroDivisionError",
        "point": {"x": 3, "y": 0}, "f": "3.14", "json": "[1]", "hasattr": True, "mx": 9, "rev": [2, 1],
    }  # fmt: skip


async def test_stub_call_returns_the_real_data(executor: RestrictedExecutor, hub: Hub) -> None:
    skus = ["TOO-00000", "GAR-00001"]
    result = await executor.run(f"from stubs import inventory\ninventory.check_stock(skus={skus!r})")
    assert result.ok, result.error
    expected = result_for_guest(await hub.call_tool(ToolRef("inventory", "check_stock"), {"skus": skus}))
    assert result.value == expected
    assert [c.tool for c in result.calls] == ["check_stock"] and result.calls[0].ok


async def test_upstream_tool_error_is_a_tool_error(executor: RestrictedExecutor) -> None:
    code = """
from stubs import inventory
try:
    inventory.get_order(order_id="no-such-order")
    outcome = None
except ToolError as err:
    outcome = [err.kind, err.message]
outcome
"""
    result = await executor.run(code)
    assert result.ok, result.error
    assert result.value[0] == "tool" and "no-such-order" in result.value[1]
    assert result.calls and not result.calls[0].ok


async def test_a_crashed_child_is_reported_and_replaced(executor: RestrictedExecutor) -> None:
    assert (await executor.run("1")).ok
    pid = executor.pid("default")
    assert pid is not None

    async def crash_soon() -> None:
        await anyio.sleep(0.3)
        os.kill(pid, signal.SIGSEGV)

    async with anyio.create_task_group() as tg:
        tg.start_soon(crash_soon)
        result = await executor.run("while True:\n    pass")
    assert not result.ok and result.error is not None and result.instance_lost
    assert result.error.type == "SandboxCrashed" and "SIGSEGV" in result.error.message
    assert (await executor.run("3")).value == 3 and executor.pid("default") != pid


async def test_cancelled_run_kills_the_child(executor: RestrictedExecutor) -> None:
    assert (await executor.run("1")).ok
    pid = executor.pid("default")
    assert pid is not None
    with anyio.move_on_after(0.5) as scope:
        await executor.run("while True:\n    pass")
    assert scope.cancelled_caught
    assert not _alive(pid) and executor.sessions() == []
    assert (await executor.run("5")).value == 5


async def test_skills_are_imported_through_the_guards(executor: RestrictedExecutor) -> None:
    skills = executor.skills_dir
    (skills / "pricing.py").write_text("def with_tax(cents, rate=0.2):\n    return round(cents * (1 + rate))\n")
    (skills / "sneaky.py").write_text("import os\nHOME = os.environ\n")
    ok = await executor.run("from skills import pricing\npricing.with_tax(100)")
    assert ok.ok and ok.value == 120, ok.error
    bad = await executor.run("import skills.sneaky")
    assert bad.error is not None and bad.error.type == "ImportError" and "'os'" in bad.error.message


async def test_close_session_and_aclose_leave_no_processes(hub: Hub, stubs_dir: Path, tmp_path: Path) -> None:
    ex = make_executor(hub, stubs_dir, tmp_path)
    async with ex:
        for name in ("one", "two"):
            assert (await ex.run("1", session=name)).ok
        pids: list[Any] = [ex.pid("one"), ex.pid("two")]
        assert (tmp_path / "scratch" / "one").is_dir()
        await ex.close_session("one")
        assert not _alive(pids[0]) and not (tmp_path / "scratch" / "one").exists()
        assert ex.sessions() == ["two"]
        pool_pids = [child.pid for child in ex._pool]
    assert not any(_alive(pid) for pid in [pids[1], *pool_pids])
    with pytest.raises(SandboxError, match=r"^the executor is closed$"):
        await ex.run("1")
