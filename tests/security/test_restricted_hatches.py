"""Stdlib callables that write attributes or module dicts by caller-chosen names, against the restricted executor.

Each attempt, left open, hands the program a real module (``os``) or rebinds a builtin the guards call.
"""

from __future__ import annotations

import pytest

from codemode.executors.restricted import RestrictedExecutor
from codemode.executors.restricted_child.guards import SAFE_STDLIB
from tests.unit.test_restricted import anyio_backend, executor, hub, stubs_dir

__all__ = ["anyio_backend", "executor", "hub", "stubs_dir"]

RUN = "\n#--- next run\n"
"""Splits an attack into runs: a namespace's ``__builtins__`` is looked up again by the next run."""

HATCHES: list[tuple[str, str]] = [
    (
        # update_wrapper merges uuid's globals (the real os and builtins) into the program's namespace.
        "import functools, uuid\ndef f():\n    pass\n"
        "functools.update_wrapper(f, uuid.uuid4, updated=('__globals__',))" + RUN + "from os import getpid\ngetpid()",
        "update_wrapper_globals",
    ),
    (
        "import functools, uuid\ndef f():\n    pass\n"
        "functools.wraps(uuid.uuid4, updated=('__globals__',))(f)" + RUN + "from os import getpid\ngetpid()",
        "wraps_globals",
    ),
    (
        # global_enum writes the members into sys.modules[cls.__module__]: builtins.isinstance, which the
        # guards call, then denies that anything is a module, and safe_value hands out any module.
        "import enum, json, dataclasses\nreal, MT = isinstance, type(json)\n"
        "def fake(self, obj, cls):\n    return False if cls is MT else real(obj, cls)\n"
        "M = dataclasses.make_dataclass('M', [], namespace={'__call__': fake})\n"
        "E = enum.Enum('E', [('isinstance', ())], module='builtins', type=M)\nenum.global_enum(E)\n"
        "json.codecs.sys.modules['os'].getpid()",
        "global_enum_builtins",
    ),
]


INTACT = (
    "import json\ntry:\n    json.codecs\nexcept ImportError:\n    pass\n"
    "else:\n    raise AssertionError('json.codecs')\n"
    "try:\n    from os import getpid\nexcept ImportError:\n    pass\nelse:\n    raise AssertionError('os')\n"
    "isinstance(1, int) and isinstance(json, type(json)) and 1 + 1"
)
"""After an attempt: the guards still refuse a foreign module, and ``isinstance`` is the real one."""

# One attempt per callable that writes attributes or module dicts by caller-chosen names or targets:
# (code, expected error type, id).
PER_CALLABLE: list[tuple[str, str, str]] = [
    ("import functools, json\nfunctools.update_wrapper(json, json.dumps)", "TypeError", "update_wrapper_module_target"),
    (
        "import functools, json\ndef f():\n    pass\nfunctools.update_wrapper(f, json, assigned=('codecs',))",
        "TypeError",
        "update_wrapper_assigned",
    ),
    (
        "import functools, json\ndef f():\n    pass\nfunctools.wraps(json, updated=('__dict__', '__globals__'))(f)",
        "TypeError",
        "wraps_updated",
    ),
    (
        # The default __dict__ update copies public, non-module names only.
        "import functools, json\ndef f():\n    pass\nfunctools.update_wrapper(f, json)\nf.codecs",
        "AttributeError",
        "update_wrapper_dict_skips_modules",
    ),
    ("import functools, fractions\nfunctools.total_ordering(fractions.Fraction)", "TypeError", "total_ordering_stdlib"),
    ("import enum\nenum.global_enum", "AttributeError", "global_enum_dropped"),
    ("from enum import global_enum", "ImportError", "global_enum_from_import"),
    (
        "import dataclasses\ndataclasses.make_dataclass('C', ['a'], namespace={'__call__': print})",
        "TypeError",
        "make_dataclass_namespace_dunder",
    ),
    (
        "import dataclasses\ndataclasses.make_dataclass('C', ['a'], namespace={'_getattr_': print})",
        "TypeError",
        "make_dataclass_namespace_sunder",
    ),
    ("import dataclasses, json\ndataclasses.dataclass(json.JSONEncoder)", "TypeError", "dataclass_stdlib_class"),
    ("import collections\ncollections.namedtuple('P', 'x y', module='builtins')", "TypeError", "namedtuple_module"),
    ("import typing\ntyping.NamedTuple('N', [('a', int)], module='builtins')", "TypeError", "NamedTuple_module"),
    ("import typing\ntyping.TypedDict('T', {'a': int}, module='builtins')", "TypeError", "TypedDict_module"),
    (
        "import decimal, operator\noperator.setitem(decimal.getcontext().traps, decimal.Inexact, True)",
        "TypeError",
        "operator_setitem",
    ),
    (
        "import decimal, operator\noperator.delitem(decimal.getcontext().traps, decimal.Inexact)",
        "TypeError",
        "operator_delitem",
    ),
    ("import copy\ncopy.dispatch_table", "AttributeError", "copy_dispatch_table"),
    ("import copyreg", "ImportError", "copyreg"),
]


@pytest.mark.parametrize(("code", "error_type"), [c[:2] for c in PER_CALLABLE], ids=[c[2] for c in PER_CALLABLE])
async def test_per_callable_attempt_is_refused(executor: RestrictedExecutor, code: str, error_type: str) -> None:
    result = await executor.run(code)
    assert not result.ok, f"the attempt succeeded: {result.value_repr!r}"
    assert result.error is not None and result.error.type == error_type, result.error
    intact = await executor.run(INTACT)
    assert intact.ok and intact.value == 2, intact.error


LEGITIMATE = [
    (
        "import functools\ndef f(x):\n    'doc'\n    return x\n@functools.wraps(f)\ndef g(x):\n    return f(x) + 1\n"
        "(g.__name__, g.__doc__, g(1), functools.update_wrapper(lambda: 0, f).__name__)",
        ["f", "doc", 2, "f"],
    ),
    ("import functools\n@functools.lru_cache\ndef sq(n):\n    return n * n\nsq(4)", 16),
    (
        "import functools\n@functools.total_ordering\nclass V:\n    def __init__(self, v):\n        self.v = v\n"
        "    def __lt__(self, o):\n        return self.v < o.v\n"
        "    def __eq__(self, o):\n        return self.v == o.v\n"
        "V(2) >= V(1)",
        True,
    ),
    (
        "import dataclasses\n"
        "C = dataclasses.make_dataclass('C', ['a', ('b', int, 2)], namespace={'total': lambda s: s.a + s.b})\n"
        "c = C(1)\nc.a = 5\n(c.total(), dataclasses.asdict(dataclasses.replace(c, b=3)))",
        [7, {"a": 5, "b": 3}],
    ),
    ("import collections\nP = collections.namedtuple('P', 'x y')\nP(1, 2).x + P(1, 5).y", 6),
    ("import typing\nN = typing.NamedTuple('N', [('a', int)])\nN(3).a", 3),
    (
        # The node is random (multicast bit set), the same for getnode() and uuid1().
        "import uuid\nnode = uuid.getnode()\nu = uuid.uuid1()\n"
        "[u.version, u.node == node, node >> 40 & 1, uuid.uuid1(node=5).node, uuid.uuid4().version]",
        [1, True, 1, 5, 4],
    ),
    ("import time\nt = time.monotonic()\ntime.sleep(0.05)\n[time.monotonic() - t >= 0.05, hasattr(time, 'tzset')]",
     [True, False]),
    (
        "import operator\nd = {}\noperator.setitem(d, 'k', 1)\nl = [1, 2]\noperator.delitem(l, 0)\n(d, l)",
        [{"k": 1}, [2]],
    ),
]


@pytest.mark.parametrize(("code", "value"), LEGITIMATE, ids=[c.splitlines()[0][:40] for c, _ in LEGITIMATE])
async def test_wrapped_callables_still_work(executor: RestrictedExecutor, code: str, value: object) -> None:
    result = await executor.run(code)
    assert result.ok, result.error
    assert result.value == value


RISKY = frozenset(
    {
        # setattr/update by caller-chosen names or targets
        "update_wrapper", "wraps", "total_ordering", "global_enum", "make_dataclass", "dataclass", "namedtuple",
        "setitem", "delitem",
        # unguarded getattr / eval / exec
        "attrgetter", "methodcaller", "Formatter", "get_type_hints", "singledispatch", "singledispatchmethod",
        # subprocess (fork + exec of ifconfig, ip, arp) to read the host's MAC address, then handing it out
        "getnode", "uuid1", "_get_command_stdout",
    }
)  # fmt: skip
"""Qualified names of the stdlib originals that must not be reachable; their wrappers are ``_checked_*``."""

WALK = (
    f"import {', '.join(sorted(SAFE_STDLIB))}\n"
    f"todo = [{', '.join(f'({m!r}, {m})' for m in sorted(SAFE_STDLIB))}]\n"
    "Module, seen, found = type(json), [], {}\n"
    "while todo:\n"
    "    path, module = todo.pop(0)\n"
    "    if any(module is m for m in seen):\n        continue\n"
    "    seen.append(module)\n"
    "    for name in dir(module):\n"
    "        try:\n            value = getattr(module, name)\n        except Exception:\n            continue\n"
    "        if isinstance(value, Module):\n            todo.append((path + '.' + name, value))\n"
    "        qualname = getattr(value, '__qualname__', None) if callable(value) else None\n"
    "        found[path + '.' + name] = qualname if isinstance(qualname, str) else ''\n"
    "found"
)


async def test_no_risky_callable_is_reachable(executor: RestrictedExecutor) -> None:
    """Walk every module a program can reach (the whitelist and the modules reachable from it)."""
    result = await executor.run(WALK)
    assert result.ok, result.error
    found: dict[str, str] = result.value
    assert len(found) > 500 and "collections.abc.Mapping" in found and "json.decoder.JSONDecoder" in found
    reachable = {path: qualname for path, qualname in found.items() if qualname in RISKY}
    assert not reachable, reachable
    assert not [path for path in found if path.rsplit(".", 1)[-1] in {"dispatch_table", "global_enum"}]
    wrapped = (
        "functools.update_wrapper", "functools.wraps", "functools.total_ordering", "dataclasses.dataclass",
        "dataclasses.make_dataclass", "collections.namedtuple", "operator.setitem", "operator.delitem",
        "uuid.uuid1",
    )  # fmt: skip
    assert found["uuid.getnode"] == "_random_getnode"
    for path in wrapped:
        assert found[path].startswith(("_checked_", "_guarded_")), (path, found[path])


@pytest.mark.parametrize("code", [c for c, _ in HATCHES], ids=[i for _, i in HATCHES])
async def test_hatch_is_closed(executor: RestrictedExecutor, code: str) -> None:
    for part in code.split(RUN):
        result = await executor.run(part)
        if not result.ok:
            break
    assert not result.ok, f"the attack succeeded: {result.value_repr!r}"
    assert result.error is not None, result
    assert result.error.type in {"AttributeError", "TypeError", "ImportError"}, result.error
    assert not result.instance_lost
    after = await executor.run("isinstance(1, int) and 1 + 1")
    assert after.ok and after.value == 2
