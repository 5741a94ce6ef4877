"""The mutation tables stay in step with the code they mutate.

``scripts/mutants.py`` removes each defence by a textual replacement and ``scripts/mutation.py`` accepts
equivalent mutants by their line's text: both go stale silently when the code moves on (a replacement that no
longer applies stops the whole table; an acceptance of a line that is gone hides nothing but misleads). These
checks are cheap, so they run with every test run rather than with the slow mutation runs.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_codemode_{name}", ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


MUTANTS_SCRIPT = _script("mutants")
MUTANTS = MUTANTS_SCRIPT.MUTANTS


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.id)
def test_each_hand_made_mutant_applies_once_and_names_tests_that_exist(mutant: object) -> None:
    assert MUTANTS_SCRIPT.stale(mutant) is None


def test_the_hand_made_table_and_mutants_md_list_the_same_ids() -> None:
    text = (ROOT / "tests" / "MUTANTS.md").read_text(encoding="utf-8")
    table = text[text.index("| id | defence |") :].split("\n\n", 1)[0]  # the first table, to its blank line
    listed = re.findall(r"^\| ([a-z0-9]+(?:-[a-z0-9]+)+) \|", table, re.M)
    assert sorted(listed) == sorted(m.id for m in MUTANTS)


def test_every_accepted_mutant_names_a_line_that_exists() -> None:
    accepted = _script("mutation").ACCEPTED
    stale = []
    for entry in accepted:
        lines = {line.strip() for line in (ROOT / entry.path).read_text(encoding="utf-8").splitlines()}
        if entry.line not in lines:
            stale.append((entry.path, entry.line))
    assert stale == []
