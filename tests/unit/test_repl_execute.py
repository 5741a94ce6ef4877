"""The guest session's run: a program's final expression is its value, whichever way the source is split."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import import_guest


@pytest.fixture
def repl(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    yield from import_guest(monkeypatch, "codemode_runtime.repl")


PROGRAMS = [
    ("1 + 1", 2),
    ("x = 1\nx + 1", 2),
    ("x = 5", None),
    ("for i in range(3):\n    pass\ni", 2),
    ("for i in range(3):\n    j = i", None),
    ("def f(*a):\n    return a\nf(\n1,\n2)", (1, 2)),  # the last line at column 0 is inside the call
    ("a = [1]\n*a, 2", (1, 2)),  # a starred expression is an expression statement, not an eval expression
    ("s = '''\nabc'''\ns", "\nabc"),
    ("s = '''\nabc'''", None),
    ("x = 1 + \\\n2\nx", 3),
    ("x = 1 + \\\n2", None),  # "2" is an expression, but its line continues the one before
    ("x = \\\ny = 2", None),  # so is "y = 2": x = y = 2
    ("x = 1; x", 1),
    ("x = 2 * 3", None),
    ("import math\nmath.floor(2.5)\n\n# done\n", 2),
    ("if True:\n    v = 1\nelse:\n    v = 2", None),
    ("class A:\n    n = 3\n\nA.n", 3),
    ("# nothing", None),
    ("", None),
    ("from __future__ import annotations\ndef f(x: Nope) -> None: ...\nf.__annotations__['x']", "Nope"),
    ("print('a')\nprint('b')", None),
    # Lines that start like a statement are compiled as one straight away; the rest are tried as expressions.
    ("x: int = 3", None),
    ("x: int = 3\nx", 3),
    ("a, b = 1, 2", None),
    ("a, b = 1, 2\na, b", (1, 2)),
    ("x = 1\nx += 1", None),
    ("x = 1\nx >>= 1\nx", 0),
    ("x = 1\nx == 1", True),
    ("x = 1\nx <= 1", True),
    ("x = 1\nx,", (1,)),
    ("lambda_ = 3\nlambda_", 3),
    ("if_ = 2\nif_", 2),
    ("fromage = 4\nfromage", 4),
    ("match = 5\nmatch", 5),
    ("é = 6\né", 6),
    ("import math", None),
    ("def g():\n    return 1", None),
    ("for i in range(2):\n    i", None),
    ("d = {}\nd['k'] = 1", None),
    ("x = 1 if True else 2", None),
]


@pytest.mark.parametrize(("code", "value"), PROGRAMS)
def test_a_programs_value_is_its_final_expression(repl: ModuleType, code: str, value: Any) -> None:
    result = repl.Session().run(code, 1000)
    assert "error" not in result, result
    assert result.get("value") == value and result.get("has_value", False) == (value is not None)


@pytest.mark.parametrize(("code", "value"), PROGRAMS)
def test_splitting_the_source_runs_what_the_syntax_tree_runs(repl: ModuleType, code: str, value: Any) -> None:
    split, tree = repl.Session(), repl.Session()
    assert split._execute(code, "<x>") == tree._execute_tree(code, "<x>")
    names = {k: v for k, v in split.namespace.items() if k != "__builtins__" and not callable(v)}
    assert names == {k: v for k, v in tree.namespace.items() if k != "__builtins__" and not callable(v)}


@pytest.mark.parametrize(
    ("code", "line"),
    [
        ("a = 1\n\nb = 2\n1 / 0", 4),
        ("1 / 0\nx = 1", 1),
        ("x = 1\nfor i in [0]:\n    1 / i", 3),
        ("x = 1\r\n1 / 0", 2),
        ("a = 1\rb = 2\n1 / 0", 3),
    ],
)
def test_tracebacks_name_the_programs_own_lines(repl: ModuleType, code: str, line: int) -> None:
    error = repl.Session().run(code, 1000)["error"]
    assert error["type"] == "ZeroDivisionError" and f'"<execution-1>", line {line}' in error["traceback"]


@pytest.mark.parametrize(
    ("code", "kind"), [("x = (\n", "SyntaxError"), ("  1", "IndentationError"), ("x = 1\n  y", "IndentationError")]
)
def test_a_syntax_error_is_reported_as_before(repl: ModuleType, code: str, kind: str) -> None:
    error = repl.Session().run(code, 1000)["error"]
    assert error["type"] == kind


def test_a_lambda_alone_is_an_expression_not_an_annotation(repl: ModuleType) -> None:
    # "lambda:" reads like a name and an annotation: it must still be the program's value.
    result = repl.Session().run("lambda: 0", 1000)
    assert result.get("has_value") and result["value_repr"].startswith("<function <lambda>"), result


def test_a_future_import_reaches_the_whole_program(repl: ModuleType) -> None:
    # compile() here would lend the program the runtime's own future imports: a compiler that does not.
    session = repl.Session(lambda source, filename, mode: compile(source, filename, mode, dont_inherit=True))
    result = session.run("from __future__ import annotations\ndef f(x: Nope) -> None: ...", 1000)
    assert "error" not in result, result
