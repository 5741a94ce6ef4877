"""Shared-skill-store test helpers: a bare remote, nodes over it, and an attacker's plain clone of it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from codemode.skills.gitstore import GitSkillStore
from codemode.skills.service import Skills

DOUBLE = '''def double(x: int) -> int:
    """Twice ``x``."""
    return 2 * x
'''


def git(cwd: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(cwd)}  # fmt: skip
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def bare_remote(tmp_path: Path) -> Path:
    remote = tmp_path / "remote.git"
    remote.mkdir()
    git(remote, "init", "-q", "--bare", "-b", "main")
    return remote


class Node(Skills):
    """The skills service of one node, over its clone of the remote."""

    store: GitSkillStore


def node(tmp_path: Path, remote: Path, name: str) -> Node:
    """One node's store (a clone of ``remote``) and the service over it; no stubs (the skills call none)."""
    store = GitSkillStore(tmp_path / name, remote=str(remote), branch="main")
    skills = Node(store, index=lambda: {"servers": []}, read_only=set, run_example=None, audit=lambda *a: None)
    store.ensure()
    return skills


def attacker_push(
    tmp_path: Path, remote: Path, files: dict[str, str], *, symlinks: dict[str, str] | None = None
) -> None:
    """Commit ``files`` (path → text) and ``symlinks`` (path → target) to the remote from a plain clone."""
    work = tmp_path / "attacker"
    if not work.exists():
        git(tmp_path, "clone", "-q", str(remote), str(work))
    for path, text in files.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(text)
    for path, target in (symlinks or {}).items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).symlink_to(target)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "attack")
    git(work, "push", "-q", "origin", "HEAD:main")


def promoted_state() -> str:
    return json.dumps({"state": "promoted", "promoted": 1, "drafts": {}, "tests": {}, "broken": None})


def version_file(source: str) -> str:
    meta = {"version": 1, "created": "2026-12-01T00:00:00Z", "session": "s", "description": "x", "calls": [],
            "example": None, "example_result": None}  # fmt: skip
    head = "".join(f"# {k}: {json.dumps(v)}\n" for k, v in meta.items())
    return head + "\n" + source
