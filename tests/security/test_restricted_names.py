"""Names a program hands to library code, against the restricted executor.

Found by attack (each ran to the host before its fix, as root: the host's environment read from
``/proc/<host pid>/environ``, ``/etc/passwd`` read, a file written outside the sandbox, ``RLIMIT_AS`` lifted):

- a ``str`` subclass whose ``startswith`` lies passed ``setattr``'s ``_`` check, so a program's object held its
  own ``__reduce_ex__``; ``copy`` checked only the class's, and rebuilt "a copy" by calling the program's
  function on the real ``json`` module with ``setattr`` of the program's choosing: ``json.__class__`` became a
  dataclass type of the program's whose field was ``__builtins__``, which ``dataclasses.asdict`` then read;
- ``make_dataclass`` field names starting with ``_`` (the same escape without the ``str`` subclass), and a
  ``str`` subclass lying in ``isidentifier`` put the program's text into the source ``dataclasses`` executes;
- ``Enum('E', {'__format__': f})`` gave a class a dunder method, which a class statement cannot.

Each layer is tested on its own too (in a child set up as the executor's, with the layer before it assumed
gone): the ``copy`` guard, the modules handed out as copies.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from codemode.executors import restricted
from codemode.executors.restricted import RestrictedExecutor
from tests.unit.test_restricted import anyio_backend, executor, hub, stubs_dir

__all__ = ["anyio_backend", "executor", "hub", "stubs_dir"]

MARKER = "{marker}"
"""Replaced by a path outside the sandbox: each attack, if it got the real ``open``, writes there."""

ESCAPE_TAIL = (
    "b = dataclasses.asdict(json)['__builtins__']\n"
    f"b['open']({MARKER!r}, 'w').write(str(b['__import__']('os').getpid()))\n"
)

ATTACKS: list[tuple[str, str, str, str]] = [
    (
        "import copy, dataclasses, json\n"
        "Spy = dataclasses.make_dataclass('Spy', ['__builtins__'], bases=(type(json),), eq=False, repr=False)\n"
        "R = dataclasses.make_dataclass('R', ['__reduce_ex__'])\n"
        "copy.copy(R(lambda proto: (lambda: json, (), (None, {'__class__': Spy}))))\n" + ESCAPE_TAIL,
        "TypeError",
        "make_dataclass() field: invalid name '__builtins__'",
        "make_dataclass_dunder_fields",
    ),
    (
        "import copy, dataclasses, json\n"
        "class S(str):\n    def startswith(self, *args):\n        return False\n"
        "class Holder:\n    pass\n"
        "def unguarded_setattr(target, name, value):\n"
        "    h = Holder()\n"
        "    setattr(h, S('__reduce_ex__'), lambda proto: (lambda: target, (), (None, {name: value})))\n"
        "    copy.copy(h)\n"
        "@dataclasses.dataclass\nclass Plain:\n    x: int = 0\n"
        "field = dataclasses.fields(Plain)[0]\n"
        "unguarded_setattr(field, 'name', '__builtins__')\n"
        "class Spy(type(json)):\n    pass\n"
        "unguarded_setattr(Spy, '__dataclass_fields__', {'x': field})\n"
        "unguarded_setattr(json, '__class__', Spy)\n" + ESCAPE_TAIL,
        "AttributeError",
        '"__reduce_ex__" is an invalid attribute name',
        "str_subclass_lies_to_setattr",
    ),
    (
        "class S(str):\n    def startswith(self, *args):\n        return False\n"
        "class Holder:\n    pass\nh = Holder()\nh.x = 1\ndelattr(h, S('__class__'))",
        "AttributeError",
        '"__class__" is an invalid attribute name',
        "str_subclass_lies_to_delattr",
    ),
    (
        "class S(str):\n    def startswith(self, *args):\n        return False\ngetattr(1, S('__class__'))",
        "TypeError",
        "an attribute name must be a str",
        "str_subclass_as_attribute_name",
    ),
    (
        # The name lands in the source of the generated __init__, executed with the real builtins.
        "import dataclasses\n"
        "class S(str):\n    def isidentifier(self):\n        return True\n"
        "name = S('a=().__class__.__base__.__subclasses__().__len__()')\n"
        "dataclasses.make_dataclass('C', [name])()",
        "TypeError",
        "make_dataclass() field: invalid name",
        "make_dataclass_str_subclass_field",
    ),
    (
        "import dataclasses\nclass S(str):\n    pass\ndataclasses.make_dataclass(S('C'), ['a'])",
        "TypeError",
        "the class name must be a str",
        "make_dataclass_str_subclass_class_name",
    ),
    (
        "import enum\ndef fmt(self, spec):\n    return 'mine'\n"
        "E = enum.Enum('E', {'A': 'x', '__format__': fmt}, type=str)\nformat(E.A, '')",
        "TypeError",
        "Enum() member: invalid name '__format__'",
        "enum_functional_dunder",
    ),
    (
        "import enum\nenum.Enum('E', '_missing_ A')",
        "TypeError",
        "Enum() member: invalid name '_missing_'",
        "enum_functional_sunder",
    ),
    (
        "import enum\nclass S(str):\n    def split(self):\n        return ['A']\nenum.Enum('E', S('__reduce_ex__'))",
        "TypeError",
        "the names must be a str, a list or a mapping",
        "enum_functional_str_subclass",
    ),
    (
        "import dataclasses, json\ndataclasses.asdict(json)",
        "TypeError",
        "asdict() only takes instances",
        "asdict_of_a_module",
    ),
    (
        "import dataclasses, decimal\ndataclasses.astuple(decimal.getcontext())",
        "TypeError",
        "astuple() only takes instances",
        "astuple_of_a_stdlib_object",
    ),
    (
        "import dataclasses, fractions\ndataclasses.replace(fractions.Fraction(1, 2))",
        "TypeError",
        "replace() only takes instances",
        "replace_of_a_stdlib_object",
    ),
]


@pytest.mark.parametrize(("code", "error_type", "message"), [a[:3] for a in ATTACKS], ids=[a[3] for a in ATTACKS])
async def test_a_name_that_lies_or_a_dunder_through_a_library_is_refused(
    executor: RestrictedExecutor, tmp_path: Path, code: str, error_type: str, message: str
) -> None:
    marker = tmp_path / "escaped"
    result = await executor.run(code.replace(MARKER, str(marker)))
    assert not marker.exists(), "the program wrote a file on the host"
    assert not result.ok, f"the attempt succeeded: {result.value_repr!r}"
    assert result.error is not None and result.error.type == error_type, result.error
    assert message in result.error.message, result.error  # refused by this defence, not a later one
    intact = await executor.run("import json\nisinstance(json, type(json)) and 1 + 1")
    assert intact.ok and intact.value == 2, intact.error


LEGITIMATE = [
    (
        "import dataclasses, enum, copy\n"
        "C = dataclasses.make_dataclass('C', ['a', ('b', int), ('c', int, 3)])\n"
        "E = enum.Enum('E', 'RED GREEN')\nF = enum.Enum('F', [('A', 1), ('B', 2)])\nG = enum.Enum('G', {'X': 'x'})\n"
        "c = C(1, 2)\n"
        "[dataclasses.asdict(c), list(dataclasses.astuple(dataclasses.replace(c, a=9))), E.GREEN.value, F.B.value,\n"
        " G.X.value, copy.deepcopy(c) == c, copy.copy([1, {'k': 3}])]",
        [{"a": 1, "b": 2, "c": 3}, [9, 2, 3], 2, 2, "x", True, [1, {"k": 3}]],
    ),
    (
        "import copy, datetime, decimal, collections, statistics\n"
        "d = copy.deepcopy({'t': datetime.date(2026, 1, 2), 'n': decimal.Decimal('1.5'),\n"
        "                   'o': collections.OrderedDict(a=1), 'nd': statistics.NormalDist(1, 2)})\n"
        "[str(d['t']), str(d['n']), dict(d['o']), d['nd'].mean]",
        ["2026-01-02", "1.5", {"a": 1}, 1.0],
    ),
    ("import collections.abc\nisinstance({}, collections.abc.Mapping)", True),
    ("import json\nimport json.decoder\njson.decoder.JSONDecodeError.__name__", "JSONDecodeError"),
]


@pytest.mark.parametrize(("code", "value"), LEGITIMATE, ids=["dataclass_enum_copy", "deepcopy_stdlib", "abc", "sub"])
async def test_the_guarded_libraries_still_work(executor: RestrictedExecutor, code: str, value: object) -> None:
    result = await executor.run(code)
    assert result.ok, result.error
    assert result.value == value


def _in_a_child(body: str) -> str:
    """Run ``body`` in a process set up as the restricted child is (its package loaded, the stdlib whitelist
    imported and copied, the guards installed), without the compile-time guard: a layer tested alone."""
    probe = (
        "import runpy, sys, importlib\n"
        f"runpy.run_path({str(restricted.CHILD_SCRIPT)!r}, run_name='probe')['_load_package']()\n"
        "from restricted_child import guards, modules\n"
        "for name in sorted(guards.SAFE_STDLIB):\n    importlib.import_module(name)\n"
        "modules.build_safe_modules()\n" + body
    )
    done = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_copy_refuses_an_object_holding_its_own_reduce_or_rebuilt_by_foreign_code() -> None:
    # As if some future hole let a program set an attribute named __reduce_ex__ on its object, or call
    # copy's rebuild step with a function of its own.
    out = _in_a_child(
        "import copy, json\n"
        "class Holder:\n    pass\n"
        "outcomes = []\n"
        "for name in ('__reduce_ex__', '__reduce__', '__getattribute__'):\n"
        "    h = Holder()\n"
        "    h.__dict__[name] = lambda *a: (lambda: json, (), (None, {'planted': 1}))\n"
        "    try:\n        copy.copy(h)\n    except TypeError as exc:\n        outcomes.append('refused')\n"
        "    else:\n        outcomes.append('copied')\n"
        "try:\n    copy._reconstruct(Holder(), None, lambda: json, (), (None, {'planted': 1}))\n"
        "except TypeError:\n    outcomes.append('refused')\n"
        "print(outcomes, hasattr(json, 'planted'))\n"
    )
    assert out.split() == ["['refused',", "'refused',", "'refused',", "'refused']", "False"]


def test_a_program_holds_copies_of_stdlib_modules_never_the_modules() -> None:
    # Whatever a program could one day write on a module it holds lands on a copy without __builtins__.
    out = _in_a_child(
        "import json, collections, collections.abc, dataclasses\n"
        "names = sorted(guards.SAFE_STDLIB) + ['collections.abc', 'json.decoder']\n"
        "held = [guards.safe_module(sys.modules[name]) for name in names]\n"
        "late = guards.safe_module(importlib.import_module('json.tool'))\n"
        "print(all(h is not sys.modules[n] for h, n in zip(held, names)), late is not sys.modules['json.tool'],\n"
        "      any('__builtins__' in vars(h) for h in held + [late]),\n"
        "      guards.guarded_getattr(guards.safe_module(json), 'decoder') is guards.safe_module(json.decoder),\n"
        "      guards.safe_module(dataclasses).asdict is modules._checked_asdict)\n"
    )
    assert out.split() == ["True", "True", "False", "True", "True"]
