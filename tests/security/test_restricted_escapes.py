"""Escape attempts against the RestrictedPython executor: the classics, resource bombs, the host environment.

RestrictedPython is the weaker fallback (WASM is the boundary); these attempts hold it to what it does
promise. The fixtures (real demo servers behind the bridge) come from the executor's functional tests.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from codemode.executors import Limits
from codemode.executors.restricted import RestrictedExecutor
from codemode.hub import Hub
from tests.unit.test_restricted import _alive, anyio_backend, executor, hub, make_executor, stubs_dir

__all__ = ["anyio_backend", "executor", "hub", "stubs_dir"]  # fixtures, shared with the functional tests


ESCAPES: list[tuple[str, str]] = [
    ("().__class__.__bases__[0].__subclasses__()", "SyntaxError"),
    ("getattr((), '__class__')", "AttributeError"),
    ("def f():\n    pass\nf.__globals__", "SyntaxError"),
    ("def f():\n    pass\ngetattr(f, '__globals__')", "AttributeError"),
    ("'{0.__class__}'.format(1)", "NotImplementedError"),
    ("str.format('{0.__class__.__bases__}', 1)", "NotImplementedError"),
    ("'{x.__class__}'.format_map({'x': 1})", "NotImplementedError"),
    ("import string\nstring.Formatter().format('{0.__class__}', 1)", "AttributeError"),
    ("def g():\n    yield 1\ngen = g()\ngen.gi_frame.f_back", "SyntaxError"),
    ("def g():\n    yield 1\ngetattr(g(), 'gi_frame')", "AttributeError"),
    ("import os", "ImportError"),
    ("import subprocess", "ImportError"),
    ("from json import codecs", "ImportError"),
    ("from stubs import inventory\ninventory.sys.modules", "ImportError"),
    ("open('/etc/passwd')", "NameError"),
    ("__import__('subprocess')", "SyntaxError"),
    ("eval('1')", "SyntaxError"),
    ("globals()", "NameError"),
    ("type('X', (), {'__reduce_ex__': None})", "TypeError"),
    ("type(type(1))('X', (), {})", "TypeError"),
    ("import enum\nenum.EnumType.mro()", "AttributeError"),
    ("import operator\noperator.attrgetter('__class__')(1)", "AttributeError"),
    ("import typing\ntyping.get_type_hints", "AttributeError"),
    (
        # copy's rebuild-from-__reduce_ex__ would be an unguarded setattr on any object.
        "import copy, dataclasses\ndef red(self, proto):\n    return (dataclasses.Field, (None,) * 8, None)\n"
        "C = dataclasses.make_dataclass('C', ['a'], namespace={'__reduce_ex__': red})\ncopy.copy(C(1))",
        "TypeError",
    ),
    (
        # dataclass exec()s source built from field names.
        "import enum, dataclasses\nE = enum.Enum('E', {'__annotations__': {'a=print(1)': int}})\n"
        "dataclasses.dataclass(E)",
        "TypeError",
    ),
]


@pytest.mark.parametrize(("code", "error_type"), ESCAPES, ids=[c.splitlines()[-1][:40] for c, _ in ESCAPES])
async def test_classic_escapes_are_blocked(executor: RestrictedExecutor, code: str, error_type: str) -> None:
    result = await executor.run(code)
    assert not result.ok and result.error is not None
    assert result.error.type == error_type, result.error
    assert not result.instance_lost
    after = await executor.run("1 + 1")
    assert after.ok and after.value == 2


async def test_infinite_loop_times_out_and_the_next_run_works(hub: Hub, stubs_dir: Path, tmp_path: Path) -> None:
    async with make_executor(hub, stubs_dir, tmp_path, Limits(wall_s=1)) as ex:
        assert (await ex.run("x = 1")).ok
        pid = ex.pid("default")
        assert pid is not None
        result = await ex.run("while True:\n    pass")
        assert not result.ok and result.error is not None and result.error.type == "SandboxTimeout"
        assert "1 s wall-time limit" in result.error.message and result.instance_lost
        assert result.duration_s >= 1.0 and not _alive(pid)  # not cut short; how fast is benchmarks' business
        after = await ex.run("x")
        assert after.error is not None and after.error.type == "NameError"  # a fresh interpreter
        assert (await ex.run("2 + 2")).value == 4


@pytest.mark.parametrize("bomb", ["x = 'a' * 10**10", "l = []\nwhile True:\n    l.append(bytearray(10**6))"])
async def test_memory_bomb_is_a_clear_error(hub: Hub, stubs_dir: Path, tmp_path: Path, bomb: str) -> None:
    async with make_executor(hub, stubs_dir, tmp_path, Limits(wall_s=20, memory_bytes=128 << 20)) as ex:
        result = await ex.run(bomb)
        assert not result.ok and result.error is not None
        assert result.error.type == "SandboxMemoryError" and "128 MB memory limit" in result.error.message
        assert result.instance_lost
        assert (await ex.run("sum(range(10))")).value == 45


async def test_child_has_no_host_environment(
    hub: Hub, stubs_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEMODE_TEST_SECRET", "hunter2-token")
    async with make_executor(hub, stubs_dir, tmp_path) as ex:
        assert (await ex.run("1")).ok
        pid = ex.pid("default")
        assert pid is not None
        environ = (await anyio.Path(f"/proc/{pid}/environ").read_bytes()).decode()
    assert "hunter2-token" not in environ and "CODEMODE_TEST_SECRET" not in environ
    keys = {item.split("=", 1)[0] for item in environ.split("\0") if item}
    assert keys == {"PATH", "LANG", "CODEMODE_STUBS_DIR"}


async def test_child_resource_limits(executor: RestrictedExecutor) -> None:
    assert (await executor.run("1")).ok
    limits = await anyio.Path(f"/proc/{executor.pid('default')}/limits").read_text()
    rows = {line[:26].strip(): line[26:].split() for line in limits.splitlines()[1:]}
    assert rows["Max open files"][0] == "64"
    assert rows["Max core file size"][0] == "0"
    assert rows["Max file size"][0] == str(64 << 20)
    address_space = int(rows["Max address space"][0])
    assert Limits().memory_bytes < address_space < Limits().memory_bytes + (200 << 20)
    assert rows["Max cpu time"][0] != "unlimited"


async def test_huge_output_hits_the_output_limit(executor: RestrictedExecutor) -> None:
    with anyio.fail_after(10):
        result = await executor.run("for i in range(10**6):\n    print('x' * 1000)")  # 1 GB
    assert not result.ok and result.error is not None
    assert result.error.type.endswith("OutputLimitExceeded")
    assert len(result.stdout) <= Limits().output_chars
    assert (await executor.run("'still here'")).value == "still here"
