"""The skill store shared through a git remote: promotions travel between nodes, concurrent promotions of
one skill have one winner and one clear error, promotions of different skills both land."""

from __future__ import annotations

import threading
from pathlib import Path

import anyio
import pytest

from codemode.audit import AuditLog
from codemode.config import Config, Settings, SkillsGitSettings
from codemode.engine import Engine
from codemode.errors import SkillError
from codemode.skills.service import Skills
from tests.gitremote import DOUBLE, Node, bare_remote, git, node

pytestmark = pytest.mark.anyio

ADA = "Ada Lovelace <ada@example.org>"
BOB = "Bob <bob@example.org>"


async def _save(skills: Skills, name: str = "double", source: str = DOUBLE, session: str = "s1") -> int:
    saved = await skills.save(session, name, source.replace("double", name))
    assert saved["saved"], saved
    return int(saved["version"])


async def test_a_promotion_on_one_node_is_seen_by_the_other_after_a_pull(tmp_path: Path) -> None:
    remote = bare_remote(tmp_path)
    a, b = node(tmp_path, remote, "a"), node(tmp_path, remote, "b")
    await _save(a)
    a.promote("double", reviewer=ADA)
    assert git(remote, "log", "-1", "--format=%an <%ae>|%s").strip() == f"{ADA}|promote double v1"
    assert not (b.store.live_dir / "double.py").exists()

    assert b.store.pull() is True
    assert b.store.skill("double").promoted == 1
    assert (b.store.live_dir / "double.py").read_text() == (a.store.live_dir / "double.py").read_text()
    assert '"name": "double"' in (b.store.live_dir / "_index.json").read_text()
    assert b.store.pull() is False  # nothing new


async def test_concurrent_promotions_of_one_skill_have_one_winner(tmp_path: Path) -> None:
    remote = bare_remote(tmp_path)
    a, b = node(tmp_path, remote, "a"), node(tmp_path, remote, "b")
    await _save(a)
    await _save(a, source=DOUBLE.replace("2 * x", "x + x"))
    b.store.pull()
    a.promote("double", 1, reviewer=ADA)
    lost = r"double changed on the shared skill store meanwhile \(Ada Lovelace: promote double v1"
    with pytest.raises(SkillError, match=lost):
        b.promote("double", 2, reviewer=BOB)  # b has not pulled a's promotion: its push is rejected
    assert b.store.skill("double").promoted == 1  # b now holds the winner's state, not its own
    assert "2 * x" in (b.store.live_dir / "double.py").read_text()
    assert git(remote, "log", "--format=%an", "-3").split("\n")[0] == "Ada Lovelace"


async def test_promotions_racing_in_two_threads_have_exactly_one_winner(tmp_path: Path) -> None:
    remote = bare_remote(tmp_path)
    a, b = node(tmp_path, remote, "a"), node(tmp_path, remote, "b")
    await _save(a)
    await _save(a, source=DOUBLE.replace("2 * x", "x + x"))
    b.store.pull()
    start = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def promote(skills: Node, version: int, who: str) -> None:
        start.wait()
        try:
            skills.promote("double", version, reviewer=who)
            outcomes[who] = "won"
        except SkillError as exc:
            outcomes[who] = str(exc)

    threads = [threading.Thread(target=promote, args=(a, 1, ADA)), threading.Thread(target=promote, args=(b, 2, BOB))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(o == "won" for o in outcomes.values()) == [False, True], outcomes
    loser = next(o for o in outcomes.values() if o != "won")
    assert "changed on the shared skill store meanwhile" in loser
    a.store.pull()
    b.store.pull()
    assert a.store.skill("double").promoted == b.store.skill("double").promoted


async def test_promotions_of_different_skills_both_land(tmp_path: Path) -> None:
    remote = bare_remote(tmp_path)
    a, b = node(tmp_path, remote, "a"), node(tmp_path, remote, "b")
    await _save(a, "double")
    await _save(a, "twice", session="s2")
    b.store.pull()
    a.promote("double", reviewer=ADA)
    b.promote("twice", reviewer=BOB)  # rejected once, rebased onto a's commit, pushed
    a.store.pull()
    for skills in (a, b):
        assert (skills.store.live_dir / "double.py").is_file() and (skills.store.live_dir / "twice.py").is_file()


async def test_two_engines_a_promotion_on_one_is_importable_on_the_other_within_the_interval(tmp_path: Path) -> None:
    remote = bare_remote(tmp_path)

    def engine(name: str) -> Engine:
        shared = SkillsGitSettings(remote=str(remote), pull_interval_s=0.2)
        config = Config(settings=Settings(skills_git=shared))
        home = tmp_path / name
        return Engine(config, executor="restricted", stubs_dir=home / "stubs", skills_dir=home / "skills",
                      audit=AuditLog(home / "audit.jsonl"))  # fmt: skip

    async with engine("a") as a, engine("b") as b:
        saved = await a.execute(f"{DOUBLE}\nsave_skill(double)", session="s")
        assert not saved.is_error, saved.text
        missing = await b.execute("from skills import double", session="t")
        assert missing.is_error and "no skill named 'double'" in missing.text
        await anyio.to_thread.run_sync(lambda: a.skills.promote("double", reviewer=ADA))
        with anyio.fail_after(30):  # b's pull loop brings it: wait for the file it publishes
            while not (b.skill_store.live_dir / "double.py").exists():  # noqa: ASYNC110
                await anyio.sleep(0.05)
        used = await b.execute("from skills import double\ndouble(21)", session="t")
        assert not used.is_error, used.text
        assert used.text == "42"
