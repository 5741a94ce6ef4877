"""Promoted skills as MCP tools (``codemode serve --expose-skills``): which, under what name, and the program
a call runs.

A skill is offered under its own name; where that name is one the front already offers (``execute_python``,
a discovery or direct tool) it is prefixed (``skill_NAME``). A skill is left out, with the reason, when it is
broken against the current stubs, its name is not a plain public identifier (a hand-placed store folder can
be named anything, ``__init__`` included), or its signature has no JSON schema (:mod:`.schema`).

A call never builds code from the client's values: the arguments are checked against the schema, encoded
as one JSON string, and that string's ``repr`` is the only thing placed in the program —
``NAME(**json.loads('<json>'))`` — so a value can hold quotes, newlines or code and still arrive as data.
"""

from __future__ import annotations

import json
import keyword
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codemode.errors import SkillError
from codemode.skills.schema import BadArguments, SkillSchema, Unexpressible, skill_schema
from codemode.skills.service import Skills
from codemode.skills.store import SkillState

PREFIX = "skill_"
"""What a skill's tool name gets when its own name is taken."""
MAX_ARGUMENTS_BYTES = 256 * 1024
"""A call's arguments as JSON at most: with the ``repr`` (ASCII JSON, at most twice as long) the program stays
well under the execution's code limit."""
MAX_DESCRIPTION_CHARS = 4_000


@dataclass(frozen=True)
class SkillTool:
    """One promoted skill offered as the MCP tool ``name``."""

    name: str
    skill: str
    version: int
    description: str
    schema: SkillSchema
    read_only: bool
    """Every tool it calls (and every skill it calls) is annotated read-only."""

    def key(self) -> tuple[str, str, int, str, str, bool]:
        """What a client sees of it: when this changes, the tool list changed."""
        return (
            self.name, self.skill, self.version, self.description,
            json.dumps(self.schema.input_schema, sort_keys=True), self.read_only,
        )  # fmt: skip

    def program(self, arguments: Mapping[str, Any]) -> str:
        """The program a call with ``arguments`` runs: ``from skills import NAME`` and the call, its last value.

        Raises:
            BadArguments: too large, or not what the schema accepts (one problem per argument).
        """
        try:
            size = len(json.dumps(arguments, ensure_ascii=True, default=_not_json))
        except (TypeError, ValueError, RecursionError) as exc:
            raise BadArguments([f"the arguments are not JSON data ({type(exc).__name__})"]) from None
        if size > MAX_ARGUMENTS_BYTES:
            raise BadArguments([f"the arguments are {size:,} bytes of JSON (limit {MAX_ARGUMENTS_BYTES:,})"])
        checked = self.schema.validate(dict(arguments))
        payload = json.dumps(checked, ensure_ascii=True)
        return f"import json as _json\nfrom skills import {self.skill}\n{self.skill}(**_json.loads({payload!r}))\n"


def _not_json(value: object) -> object:
    raise TypeError(type(value).__name__)


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a skill tool's name (None: it can)."""
    if not (name.isidentifier() and name.isascii()):
        return "not a Python identifier"
    if name.startswith("_"):
        return "starts with _ (a dunder or private name is never offered)"
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return "a Python keyword"
    return None


def exposed(skills: Skills, *, stubs: Path, reserved: Collection[str]) -> tuple[dict[str, SkillTool], dict[str, str]]:
    """The promoted skills to offer, by tool name, and the promoted skills left out with why.

    ``reserved`` are the names the front offers already. Reads the store and the stub files; never imports
    or runs a skill.
    """
    found: list[tuple[str, int, str, SkillSchema, bool]] = []
    left_out: dict[str, str] = {}
    for skill in skills.store.skills():
        if skill.state is not SkillState.PROMOTED or skill.promoted is None:
            continue
        problem = name_problem(skill.name)
        if problem is not None:
            left_out[skill.name] = f"the name {problem}"
            continue
        if skill.broken:
            left_out[skill.name] = f"broken: {skill.broken}"
            continue
        try:
            saved = skills.store.version(skill.name, skill.promoted)
            report = skills.check(skill.name, saved.source, description=saved.description or None)
            if not report.ok:
                left_out[skill.name] = "does not check: " + "; ".join(report.reasons)
                continue
            schema = skill_schema(skill.name, saved.source, stubs=stubs)
        except (SkillError, Unexpressible, OSError) as exc:
            left_out[skill.name] = f"no JSON schema for its signature: {exc}"
            continue
        description = (saved.description or report.description)[:MAX_DESCRIPTION_CHARS]
        found.append((skill.name, skill.promoted, description, schema, not report.writes))
    taken = set(reserved)
    tools: dict[str, SkillTool] = {}
    clashing = []
    for name, version, description, schema, read_only in sorted(found):
        if name in taken:
            clashing.append((name, version, description, schema, read_only))
            continue
        taken.add(name)
        tools[name] = SkillTool(name, name, version, description, schema, read_only)
    for name, version, description, schema, read_only in clashing:
        prefixed = PREFIX + name
        if prefixed in taken:
            left_out[name] = f"both {name!r} and {prefixed!r} are names of other tools"
            continue
        taken.add(prefixed)
        tools[prefixed] = SkillTool(prefixed, name, version, description, schema, read_only)
    return dict(sorted(tools.items())), left_out
