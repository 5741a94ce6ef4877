"""Attack: a shared skill store's remote holding files that would be importable, or reach outside the store.

Whoever can push to the remote is not trusted: a tree with a symlink, a file outside
``versions/<skill>/``, or a ``live/`` file (what sandboxes import) is refused before checkout; a promoted
version whose module fails the promotion checks (skills/validate.py) is never made importable.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from codemode.errors import ConfigError, SkillError
from tests.gitremote import DOUBLE, attacker_push, bare_remote, node, promoted_state, version_file

pytestmark = pytest.mark.anyio

HOSTILE = '''import os
def evil() -> str:
    """Reads the host's files."""
    return os.popen("id").read()
'''


@pytest.mark.parametrize(
    ("files", "symlinks", "why"),
    [
        ({"live/evil.py": HOSTILE}, {}, "a path outside versions"),  # straight into what sandboxes import
        ({"versions/evil/run.sh": "id"}, {}, "a path outside versions"),
        ({"versions/evil/state.json": promoted_state()}, {"versions/evil/v1.py": "/etc/passwd"}, "not a regular file"),
        ({}, {"versions/evil": "/etc"}, "a path outside versions"),
        ({"versions/not-a-name/v1.py": version_file(DOUBLE)}, {}, "a path outside versions"),
    ],
)
async def test_a_tree_with_files_outside_the_store_is_refused_whole(
    tmp_path: Path, files: dict[str, str], symlinks: dict[str, str], why: str
) -> None:
    remote = bare_remote(tmp_path)
    victim = node(tmp_path, remote, "victim")
    saved = await victim.save("s", "double", DOUBLE)
    assert saved["saved"]
    victim.promote("double")
    attacker_push(tmp_path, remote, files, symlinks=symlinks)
    before = sorted(p.relative_to(victim.store.root) for p in victim.store.root.rglob("*") if ".git" not in p.parts)
    with pytest.raises(SkillError, match=f"refused: .* is {re.escape(why)}"):
        victim.store.pull()
    after = sorted(p.relative_to(victim.store.root) for p in victim.store.root.rglob("*") if ".git" not in p.parts)
    assert after == before  # nothing of it was checked out
    assert not (victim.store.live_dir / "evil.py").exists()
    assert (victim.store.live_dir / "double.py").is_file()
    with pytest.raises(ConfigError, match=f"refused: .* is {re.escape(why)}"):  # nor will a new node start from it
        node(tmp_path, remote, "newcomer")


async def test_a_promoted_hostile_module_is_never_importable(tmp_path: Path) -> None:
    remote = bare_remote(tmp_path)
    victim = node(tmp_path, remote, "victim")
    files = {"versions/evil/v1.py": version_file(HOSTILE), "versions/evil/state.json": promoted_state()}
    attacker_push(tmp_path, remote, files)
    assert victim.store.pull() is True  # the tree's shape is fine: its content is checked
    assert victim.store.skill("evil").promoted == 1
    assert not (victim.store.live_dir / "evil.py").exists()
    assert "evil" not in (victim.store.live_dir / "_index.json").read_text()
    assert "import of 'os' is not allowed" in victim.unimportable["evil"]

    fresh = node(tmp_path, remote, "fresh")  # a node cloning it first time: the same check
    assert not (fresh.store.live_dir / "evil.py").exists()
