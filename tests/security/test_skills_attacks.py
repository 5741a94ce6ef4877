"""Attacks on the skills loop from inside the sandbox: forged ``save_skill`` frames, escapes in a skill's
source, reading another session's draft. Each defence was checked by removing it and watching its test fail.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from codemode.audit import ExecutionEntry
from codemode.calls import Limits
from codemode.config import PolicySettings, SkillsSettings
from codemode.engine import Engine
from codemode.outcome import Outcome
from codemode.sessions import Owner
from tests.integration.test_skills import LOW, demo_here, snapshot
from tests.serve_http import CODEMODE

pytestmark = pytest.mark.anyio


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with Engine(demo_here(tmp_path / "store" / "skills"), executor="wasm") as engine:
        yield engine


def forged(name: str, source: str) -> str:
    """A program that sends its own ``save_skill`` frame, skipping the runtime's helper."""
    frame = {"op": "save_skill", "name": name, "source": source, "description": "x", "example": None}
    return f"from codemode_runtime import transport\ntransport.request({frame!r})"


@pytest.mark.parametrize("name", ["../evil", "..", "a/b", "/tmp/evil", "evil.py", "ev il", "évil\u200b"])
async def test_forged_names_write_nothing(engine: Engine, tmp_path: Path, name: str) -> None:
    before = snapshot(tmp_path)
    source = 'def evil() -> int:\n    """Doc."""\n    return 1\n'
    outcome = await engine.execute(forged(name, source), session="attacker")
    assert outcome.result is not None and outcome.result.value is not None, outcome.text
    reply = outcome.result.value
    assert reply["ok"] is True and reply["result"]["saved"] is False, reply
    assert "not a Python identifier" in " ".join(reply["result"]["reasons"])
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if "audit" not in k and "state" not in k} == {
        k: v for k, v in before.items() if "audit" not in k and "state" not in k
    }
    assert not [p for p in snapshot(tmp_path) if "evil" in p]


ESCAPES = {
    "import os": 'import os\ndef grab() -> str:\n    """Doc."""\n    return os.getcwd()\n',
    "import subprocess inside": 'def grab() -> str:\n    """Doc."""\n    import subprocess\n    return "x"\n',
    "__import__": 'def grab() -> str:\n    """Doc."""\n    return __import__("os").getcwd()\n',
    "dunder walk": 'def grab() -> int:\n    """Doc."""\n    return len(().__class__.__base__.__subclasses__())\n',
    "eval": 'def grab() -> int:\n    """Doc."""\n    return eval("1")\n',
    "importlib": 'import importlib\ndef grab() -> str:\n    """Doc."""\n    return str(importlib)\n',
    "relative import": 'from . import x\ndef grab() -> str:\n    """Doc."""\n    return "x"\n',
}


@pytest.mark.parametrize("case", sorted(ESCAPES))
async def test_escape_in_source_is_refused(engine: Engine, case: str) -> None:
    before = snapshot(engine.skills_dir) if engine.skills_dir.exists() else {}
    outcome = await engine.execute(forged("grab", ESCAPES[case]), session="attacker")
    assert outcome.result is not None, outcome.text
    reply = outcome.result.value
    assert reply["ok"] is True and reply["result"]["saved"] is False, reply
    assert snapshot(engine.skills_dir) == before


async def test_another_sessions_draft_is_out_of_reach(engine: Engine) -> None:
    await engine.execute(LOW, session="alice")
    saved = await engine.execute("save_skill(low_stock)", session="alice")
    assert saved.result is not None and saved.result.value["state"] == "draft", saved.text
    probe = """import os, importlib, sys
found = []
for root, dirs, files in os.walk("/"):
    if root.startswith(("/proc", "/sys", "/dev")):
        continue
    found += [os.path.join(root, f) for f in files if "low_stock" in f]
try:
    from skills import low_stock
    imported = True
except ImportError:
    imported = False
try:
    importlib.import_module("skills.low_stock")
    by_importlib = True
except ImportError:
    by_importlib = False
{"files": found, "imported": imported, "by_importlib": by_importlib}"""
    outcome = await engine.execute(probe, session="mallory")
    assert outcome.result is not None and outcome.result.value == {
        "files": [], "imported": False, "by_importlib": False
    }, outcome.text  # fmt: skip
    # The draft exists, and its own session imports it.
    mine = await engine.execute("from skills import low_stock\ncallable(low_stock)", session="alice")
    assert mine.result is not None and mine.result.value is True, mine.text


async def test_a_failed_save_tells_nothing_of_another_sessions_draft(engine: Engine) -> None:
    # Alice's draft, with a parameter name nobody else knows.
    draft = 'def transfer_plan(hidden_account_7: str) -> str:\n    """Doc."""\n    return hidden_account_7\n'
    saved = await engine.execute(forged("transfer_plan", draft), session="alice")
    assert saved.result is not None and saved.result.value["result"]["state"] == "draft", saved.text
    # The checks of a call to a skill name its parameters; of a name, the skills it clashes with.
    call = 'from skills import transfer_plan\ndef probe() -> str:\n    """Doc."""\n    return transfer_plan(x=1)\n'
    cased = 'def Transfer_Plan() -> int:\n    """Doc."""\n    return 1\n'
    # One store folder holds both names on a case-insensitive file system: refused, without naming the draft.
    clash = await engine.execute(forged("Transfer_Plan", cased), session="mallory")
    assert clash.result is not None and clash.result.value["result"]["reasons"] == [
        "the name 'Transfer_Plan' differs only in case from a skill another session is drafting: pick another"
    ], clash.text
    refused = await engine.execute(forged("probe", call), session="mallory")
    assert refused.result is not None
    assert refused.result.value["result"]["reasons"] == ["line 1: there is no skill named 'transfer_plan'"]
    # Alice's own next skill is checked against her draft: the same call names the parameter to her.
    mine = await engine.execute(forged("probe", call), session="alice")
    assert mine.result is not None
    assert "hidden_account_7" in " ".join(mine.result.value["result"]["reasons"]), mine.text


async def test_promoted_skill_runs_guarded_in_the_restricted_executor(tmp_path: Path) -> None:
    # A hand-edited live file (no checks passed) still runs as restricted code: the guards are the defence.
    async with Engine(demo_here(tmp_path / "skills"), executor="restricted") as engine:
        engine.skill_store.live_dir.mkdir(parents=True, exist_ok=True)
        (engine.skill_store.live_dir / "sneaky.py").write_text(
            "def sneaky() -> int:\n    return len(().__class__.__base__.__subclasses__())\n"
        )
        outcome = await engine.execute("from skills import sneaky\nsneaky()", session="s")
        assert outcome.is_error and "__class__" in outcome.text, outcome.text


def _save(name: str, source: str, example: str | None) -> str:
    frame = {"op": "save_skill", "name": name, "source": source, "description": "x", "example": example}
    return f"from codemode_runtime import transport\ntransport.request({frame!r})"


def _reply(outcome: Outcome) -> dict[str, Any]:
    assert outcome.result is not None and isinstance(outcome.result.value, dict), outcome.text
    reply = outcome.result.value
    assert reply["ok"] is True, reply
    result = reply["result"]
    assert isinstance(result, dict)
    return result


async def test_a_skill_source_over_its_size_limit_is_refused_before_it_is_parsed(engine: Engine) -> None:
    # 2 MB of a list literal held the host's event loop 13 s in ast.parse, and the draft was written.
    source = 'def big() -> int:\n    """Doc."""\n    return 1\n\nX = [' + "1," * 40_000 + "]\n"
    result = _reply(await engine.execute(_save("big", source, None), session="attacker"))
    assert result["saved"] is False and "a skill's is at most 65,536" in " ".join(result["reasons"]), result
    assert not [p for p in snapshot(engine.skills_dir) if "big" in p]


TAGS = 'from stubs import notes\n\ndef tags() -> list:\n    """Doc."""\n    return notes.list_tags()\n'


async def test_a_skill_example_runs_as_the_identity_that_saves_it(tmp_path: Path) -> None:
    # It ran as "local": a tool denied to alice ran in her skill's example, audited as local.
    policy = PolicySettings(identities={"alice": {"notes.list_tags": "deny"}})
    config = demo_here(tmp_path / "store" / "skills", policy=policy)
    async with Engine(config, executor="wasm") as engine:
        alice = Owner("alice-key", identity="alice")
        refused = _reply(await engine.execute(_save("tags", TAGS, "tags()"), session="s", owner=alice))
        assert refused["saved"] is False and "denied" in " ".join(refused["reasons"]).lower(), refused
        bob = Owner("bob-key", identity="bob")
        assert _reply(await engine.execute(_save("tags", TAGS, "tags()"), session="s", owner=bob))["saved"] is True


async def test_one_clients_skill_examples_do_not_spend_anothers_sessions(tmp_path: Path) -> None:
    # Every example ran as one shared owner: a client saving skills quickly spent the new-session rate of
    # all, and another client's save failed its example with that client's rate limit.
    config = demo_here(tmp_path / "store" / "skills", max_sessions=8)
    one = 'def {name}(n: int) -> int:\n    """Doc."""\n    return n\n'
    async with Engine(config, executor="wasm") as engine:
        bob = Owner("bob-key", "10.0.0.2", identity="bob")
        # 8 new sessions a minute per client on a server of 8 sessions: bob's own session, then one per example
        for i in range(7):
            reply = _reply(await engine.execute(_save(f"b{i}", one.format(name=f"b{i}"), f"b{i}(n=1)"), owner=bob))
            assert reply["saved"] is True, reply
        spent = _reply(await engine.execute(_save("b7", one.format(name="b7"), "b7(n=1)"), owner=bob))
        assert spent["saved"] is False and "new sessions per minute per client" in " ".join(spent["reasons"])
        alice = Owner("alice-key", "10.0.0.1", identity="alice")
        mine = _reply(await engine.execute(_save("a0", one.format(name="a0"), "a0(n=2)"), owner=alice))
        assert mine["saved"] is True and mine["tested"] == "passed", mine


SPIN = (
    'import time\n\ndef spin() -> int:\n    """Doc."""\n    t = time.monotonic()\n'
    "    while time.monotonic() - t < 100:\n        pass\n    return 1\n"
)


async def test_a_skill_example_runs_within_the_time_its_saving_program_has(engine: Engine) -> None:
    # The example ran with a whole wall-time limit of its own while the program waited, out of reach of its
    # deadline; an example saving a skill nested another. Now it has what the program has left.
    with anyio.fail_after(25):  # the example alone would spin 100 s
        outcome = await engine.execute(_save("spin", SPIN, "spin()"), session="s", limits=Limits(wall_s=3))
    assert outcome.result is not None
    if outcome.result.ok:  # the reply came before the program's grace ran out: the example was cut
        result = _reply(outcome)
        assert result["saved"] is False and "SandboxTimeout" in " ".join(result["reasons"]), result
    else:
        assert outcome.result.error is not None and "Timeout" in outcome.result.error.type, outcome.text


HOSTILE = "\x1b]0;pwned\x07\x1b[2J\u202eevil"
"""What a steered model could write into a skill: a title change, a screen clear, a bidi override (a \\r
comes back as a newline from the store: the source is saved with its lines normalised)."""


async def test_skill_review_commands_print_no_control_characters(tmp_path: Path) -> None:
    # `skills show`, `diff` and `list` printed a skill's source and description raw: its escapes reached the
    # reviewer's terminal, which could then show something other than the code being promoted.
    skills_dir = tmp_path / "store" / "skills"
    source = f'def shout(n: int) -> int:\n    """Adds one.{HOSTILE}"""\n    # {HOSTILE}\n    return n + {{}}\n'
    async with Engine(demo_here(skills_dir), executor="wasm") as engine:
        for version in (1, 2):
            code = source.format(version) + "save_skill(shout, example='shout(n=1)')"
            outcome = await engine.execute(code, session="s")
            assert outcome.result is not None and outcome.result.ok, outcome.text
            assert outcome.result.value["version"] == version, outcome.result.value
    config = tmp_path / "codemode.json"
    config.write_text(json.dumps({"mcpServers": {}, "codemode": {"skills_dir": str(skills_dir)}}))
    env = {**os.environ, "CODEMODE_STATE_DIR": str(tmp_path / "state")}
    shown: dict[str, str] = {}
    for action in (["show", "shout"], ["diff", "shout"], ["list"]):
        # Bytes, decoded here: text mode would turn a raw \r into \n before the test could see it.
        ran = await anyio.run_process([*CODEMODE, "skills", *action, "--config", str(config)], env=env, check=False)
        assert ran.returncode == 0, ran.stderr.decode()
        out = shown[action[0]] = ran.stdout.decode()
        raw = {c for c in out if not c.isprintable() and c not in "\n\t"}
        assert not raw, (action, raw)
        assert "\\x1b]0;pwned\\x07\\x1b[2J\\u202eevil" in out, (action, out)  # escaped, still readable
    assert "    # \\x1b]0;pwned\\x07\\x1b[2J\\u202eevil\n    return n + 2\n" in shown["show"], shown["show"]


def _save_loop(names: list[str]) -> str:
    """A program sending one ``save_skill`` frame per name (each a valid skill), every reply in a list."""
    return f"""from codemode_runtime import transport
replies = []
for name in {names!r}:
    source = 'def ' + name + '() -> int:\\n    \"\"\"Doc.\"\"\"\\n    return 1\\n'
    frame = {{"op": "save_skill", "name": name, "source": source, "description": "x", "example": None}}
    reply = transport.request(frame)
    result = reply.get("result") or {{}}
    replies.append(reply["error"]["message"] if not reply["ok"] else (result.get("version") or result["reasons"]))
replies"""


def _replies(outcome: Outcome) -> list[Any]:
    assert outcome.result is not None and isinstance(outcome.result.value, list), outcome.text
    return outcome.result.value


async def test_saves_count_toward_the_executions_tool_calls(engine: Engine) -> None:
    # save_skill was no call: one execution of a 200-call quota saved thousands of skills.
    limits = dataclasses.replace(engine.limits, max_tool_calls=3)
    outcome = await engine.execute(_save_loop([f"s{i}" for i in range(6)]), session="loop", limits=limits)
    replies = _replies(outcome)
    assert replies[:3] == [1, 1, 1], replies
    assert replies[3:] == ["this execution reached its limit of 3 tool calls"] * 3, replies
    assert engine.skill_store.names() == ["s0", "s1", "s2"]
    # The refused ones are counted like refused calls: the first recorded, the rest summed up.
    assert outcome.result is not None
    assert [c.state.value for c in outcome.result.calls] == ["done"] * 3 + ["refused"]


async def test_the_store_holds_at_most_its_caps(tmp_path: Path) -> None:
    # Drafts, versions and skills had no cap: the store (and what discovery lists) grew with every save.
    caps = SkillsSettings(max_skills=5, max_versions=2, max_drafts_per_session=4)
    async with Engine(demo_here(tmp_path / "store" / "skills", skills=caps), executor="wasm") as engine:
        first = _replies(await engine.execute(_save_loop(["v", "v", "v", "n0", "n1", "n2"]), session="a"))
        assert first[:2] == [1, 2] and first[3:5] == [1, 1], first
        assert first[2] == ["'v' has 2 versions, its limit (skills.max_versions is 2): ask an operator to make room"]
        assert first[5] == [
            "this session has 4 drafts awaiting review, its limit (skills.max_drafts_per_session is 4): "
            "wait for a review of them"
        ], first
        second = _replies(await engine.execute(_save_loop([f"b{i}" for i in range(5)]), session="b"))
        assert second[:2] == [1, 1], second
        refused = (
            "the skill store holds 5 skills, its limit (skills.max_skills is 5): save a new version of an existing "
            "skill, or ask an operator to make room"
        )
        assert second[2:] == [[refused]] * 3, second
        folders = sorted(p.name for p in engine.skill_store.versions_dir.iterdir())
        assert folders == ["b0", "b1", "n0", "n1", "v"]
        assert len(list(engine.skill_store.versions_dir.glob("*/v*.py"))) == 6


@pytest.mark.parametrize(
    ("description", "docstring", "example", "reason"),
    [
        ("d" * 2_001, "Doc.", None, "the description is 2,001 characters; a skill's is at most 2,000"),
        (None, "d" * 2_001, None, "the description (the docstring) is 2,001 characters; a skill's is at most 2,000"),
        ("x", "Doc.", "big(" + " " * 1_000 + ")", "the example is 1,005 characters; a skill's is at most 1,000"),
    ],
)
async def test_a_description_or_example_over_its_limit_is_refused(
    engine: Engine, description: str | None, docstring: str, example: str | None, reason: str
) -> None:
    # Each went into every version's header and the discovery index, up to the 4 MB a request may carry.
    source = f'def big() -> int:\n    """{docstring}"""\n    return 1\n'
    frame = {"op": "save_skill", "name": "big", "source": source, "description": description, "example": example}
    program = f"from codemode_runtime import transport\ntransport.request({frame!r})"
    result = _reply(await engine.execute(program, session="attacker"))
    assert result["saved"] is False and reason in result["reasons"], result
    assert not [p for p in snapshot(engine.skills_dir) if "big" in p]


RESTOCK = (
    "from stubs import inventory\n\ndef restock_one(sku: str) -> str:\n"
    '    """Restock one SKU by one."""\n    return inventory.restock(sku=sku, quantity=1, reason="test")\n'
)


async def test_skills_test_runs_an_example_as_the_identity_that_saved_it(tmp_path: Path) -> None:
    # `codemode skills test` ran every example as the local user: a remote client's skill that writes (its
    # example is not run at save time) then made, with the operator's rules, a call its saver is denied.
    policy = PolicySettings(identities={"alice": {"inventory.restock": "deny"}})
    async with Engine(demo_here(tmp_path / "store" / "skills", policy=policy), executor="wasm") as engine:
        alice = Owner("alice-key", "10.0.0.1", identity="alice")
        saved = _reply(await engine.execute(_save("restock_one", RESTOCK, 'restock_one(sku="GAR-00001")'), owner=alice))
        assert saved["saved"] is True and saved["tested"] == "untested", saved
        assert engine.skill_store.version("restock_one").identity == "alice"
        restocked: list[Any] = []
        engine.tool_observers.append(lambda ref, args, result: restocked.append(ref))
        ran: list[ExecutionEntry] = []
        engine.execution_observers.append(ran.append)
        tested = await engine.skills.test("restock_one")
        assert tested["ok"] is False and restocked == [], tested  # the call was refused: alice may not restock
        assert [e.identity for e in ran if e.executor == "wasm"] == ["alice"]
        # A version saved before the identity was recorded, by a remote client: not run unless asked.
        path = engine.skill_store.versions_dir / "restock_one" / "v1.py"
        path.write_text(path.read_text().replace('# identity: "alice"', "# identity: null"))
        refused = await engine.skills.test("restock_one")
        assert refused["ok"] is False and "identity was not recorded" in refused["detail"], refused
        assert (await engine.skills.test("restock_one", as_local=True))["ok"] is True
        assert len(restocked) == 1
