"""The skill store as a git working copy shared by every node (``codemode.skills_git``).

The store's layout is unchanged (:mod:`codemode.skills.store`); ``versions/`` is tracked, ``live/`` is not:
each node rebuilds its own ``live/`` from the tracked files, and only from those that pass the same checks as
a local promotion (:meth:`codemode.skills.service.Skills.refresh_live`). Every change a node makes under the
store's lock is one commit (a promotion's author is its reviewer), pushed at once. A push the remote rejects
means another node changed the store meanwhile: the node fetches, and if the other commits touched the same
skill its own commit is undone and :class:`SkillError` names the winner; otherwise it rebases and pushes
again. Nodes pull every ``pull_interval_s``.

What comes from the remote is data, not trusted: a tree holding anything but regular files at
``versions/<identifier>/v<N>.py`` and ``versions/<identifier>/state.json`` (a symlink, a submodule, a path
elsewhere, an oversized file) is refused whole and nothing of it is checked out. The git CLI runs with hooks
and symlinks off and without a terminal prompt.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import re
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from codemode.errors import ConfigError, SkillError
from codemode.skills.store import SkillStore

if TYPE_CHECKING:
    from codemode.config import Config

logger = logging.getLogger(__name__)

TRACKED = re.compile(r"versions/([^/]+)/(v[1-9][0-9]{0,8}\.py|state\.json)")
"""The only paths a shared store may hold."""
MAX_FILE_BYTES = 1_000_000
"""A skill version or state file larger than this is refused (a skill is a small module)."""
PUSH_ATTEMPTS = 5
GIT_TIMEOUT_S = 60.0
_SAFE = ["-c", "core.hooksPath=/dev/null", "-c", "core.symlinks=false", "-c", "advice.detachedHead=false"]


class GitSkillStore(SkillStore):
    """A :class:`SkillStore` whose root is a clone of ``remote`` (see the module docstring)."""

    def __init__(self, root: Path, *, remote: str, branch: str = "main") -> None:
        super().__init__(root)
        self.remote = remote
        self.branch = branch
        self.listeners: list[Callable[[], None]] = []
        """Called (under the lock) after the tracked files changed by a pull or an undone commit: the
        service rebuilds ``live/`` from them."""
        self._change: tuple[str, str] | None = None

    # -- git ---------------------------------------------------------------------------------------

    def _git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_COMMITTER_NAME": "codemode",
            "GIT_COMMITTER_EMAIL": f"codemode@{socket.gethostname()}", "LC_ALL": "C",
        }  # fmt: skip
        done = subprocess.run(["git", *_SAFE, *args], cwd=self.root, env=env, capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S)  # fmt: skip
        if check and done.returncode != 0:
            why = (done.stderr or done.stdout).strip()
            raise SkillError(f"skills remote {self.remote}: git {args[0]} failed: {why}")
        return done

    def _rev(self, ref: str) -> str | None:
        done = self._git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        return done.stdout.strip() or None

    def ensure(self) -> None:
        """Clone the remote into the store's folder on first use (creating the branch if the remote has
        none) and bring it up to date; raises :class:`ConfigError` when the remote cannot be reached."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self.locked():
            if not (self.root / ".git").is_dir():
                if any(p.name not in (".lock", "live") for p in self.root.iterdir()):
                    raise ConfigError(f"{self.root}: a local skill store; give skills_git its own skills_dir")
                self._git("init", "-q", "-b", self.branch)
                self._git("remote", "add", "origin", self.remote)
                exclude = self.root / ".git" / "info" / "exclude"
                exclude.parent.mkdir(parents=True, exist_ok=True)
                exclude.write_text("/live/\n/.lock\n")
            else:
                self._git("remote", "set-url", "origin", self.remote)  # the config may name a new one
            try:
                self._pull_locked()
            except SkillError as exc:
                raise ConfigError(str(exc)) from None

    def pull(self) -> bool:
        """Fetch the remote and check out its tree if it is acceptable; True when the tracked files changed."""
        with self.locked():
            return self._pull_locked()

    def _pull_locked(self) -> bool:
        if not self._fetch():
            return False  # the remote has no such branch yet: nothing to take
        head, theirs = self._rev("HEAD"), self._rev("FETCH_HEAD")
        if theirs is None or head == theirs:
            return False
        self._check_tree(theirs)
        if head is None or self._git("merge-base", "--is-ancestor", head, theirs, check=False).returncode == 0:
            self._git("reset", "-q", "--hard", theirs)  # a fast-forward (this node never keeps unpushed commits)
        else:
            self._git("rebase", "-q", theirs)
        self._changed()
        return True

    def _fetch(self) -> bool:
        done = self._git("fetch", "-q", "--no-tags", "origin", self.branch, check=False)
        if done.returncode == 0:
            return True
        if "couldn't find remote ref" in done.stderr:
            return False
        raise SkillError(f"skills remote {self.remote}: fetch failed: {done.stderr.strip()}")

    def _check_tree(self, commit: str) -> None:
        """Refuse a commit whose tree holds anything but the store's own files (before any checkout)."""
        listing = self._git("ls-tree", "-r", "-l", "-z", "--full-tree", commit).stdout
        for item in filter(None, listing.split("\0")):
            info, _, path = item.partition("\t")
            mode, kind, _sha, size = info.split()
            match = TRACKED.fullmatch(path)
            why = None
            if match is None or not match.group(1).isidentifier():
                why = "a path outside versions/<skill>/v<N>.py and state.json"
            elif kind != "blob" or mode != "100644":
                why = f"not a regular file (mode {mode})"
            elif int(size) > MAX_FILE_BYTES:
                why = f"larger than {MAX_FILE_BYTES} bytes"
            if why is not None:
                raise SkillError(f"skills remote {self.remote}: commit {commit[:12]} refused: {path!r} is {why}")

    # -- changes -----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, timeout_s: float = 10.0, *, change: str = "", author: str | None = None) -> Iterator[None]:
        """Hold the lock; with ``change``, what the block wrote becomes one commit by ``author``, pushed before
        the lock is released (:class:`SkillError` if another node changed the same skill meanwhile)."""
        with super().locked(timeout_s):
            try:
                yield
            except BaseException:
                if change:
                    self._discard()
                raise
            if change:
                self._commit(change, author or default_author())

    def _discard(self) -> None:
        if self._rev("HEAD") is not None:
            self._git("reset", "-q", "--hard", "HEAD", check=False)
        self._git("clean", "-q", "-fd", "--", "versions", check=False)

    def _commit(self, message: str, author: str) -> None:
        if not self.versions_dir.is_dir():
            return  # no skill yet (nothing this node does removes the folder)
        self._git("add", "-A", "--", "versions")
        if self._git("diff", "--cached", "--quiet", check=False).returncode == 0:
            return  # nothing changed (e.g. a re-check that found every mark as it was)
        self._git("commit", "-q", "--no-verify", "-m", message, f"--author={author}")
        for _ in range(PUSH_ATTEMPTS):
            pushed = self._git("push", "-q", "--no-verify", "origin", f"HEAD:refs/heads/{self.branch}", check=False)
            if pushed.returncode == 0:
                return
            if not self._fetch():
                raise SkillError(f"skills remote {self.remote}: push failed: {pushed.stderr.strip()}")
            theirs = self._rev("FETCH_HEAD")
            assert theirs is not None
            base = self._git("merge-base", "HEAD", theirs, check=False).stdout.strip()
            mine = self._skills_changed(base or None, "HEAD")
            clash = mine & self._skills_changed(base or None, theirs)
            try:
                self._check_tree(theirs)
            except SkillError:
                self._undo(base)
                raise
            if clash:
                folders = [f"versions/{n}" for n in clash]
                winner = self._git("log", "-1", "--format=%an: %s (%h)", theirs, "--", *folders).stdout.strip()
                self._undo(theirs)
                names = ", ".join(sorted(clash))
                raise SkillError(f"{names} changed on the shared skill store meanwhile ({winner}); "
                                 f"'{message}' was not applied: look at the store again and retry")  # fmt: skip
            if self._git("rebase", "-q", theirs, check=False).returncode != 0:
                self._git("rebase", "--abort", check=False)
                self._undo(theirs)
                raise SkillError(f"'{message}' could not be replayed on the shared skill store; not applied")
            self._changed()
        raise SkillError(f"skills remote {self.remote}: push kept being rejected; '{message}' not applied")

    def _undo(self, commit: str | None) -> None:
        """Drop this node's unpushed commit: back to ``commit`` (the remote's, already checked) or to nothing."""
        if commit:
            self._git("reset", "-q", "--hard", commit)
        else:
            self._git("update-ref", "-d", "HEAD", check=False)
            self._git("rm", "-q", "-r", "--cached", "--ignore-unmatch", ".", check=False)
            self._git("clean", "-q", "-fd", "--", "versions", check=False)
        self._changed()

    def _skills_changed(self, base: str | None, commit: str) -> set[str]:
        if base is None:
            args = ["ls-tree", "-r", "--name-only", commit]
        else:
            args = ["diff", "--name-only", base, commit]
        paths = self._git(*args).stdout.splitlines()
        return {p.split("/")[1] for p in paths if p.startswith("versions/") and p.count("/") >= 2}

    def _changed(self) -> None:
        for listener in self.listeners:
            listener()


def store_for(config: Config, root: Path) -> SkillStore:
    """The skill store of a config at ``root``: a shared git clone when ``skills_git`` is set, else plain files."""
    shared = config.settings.skills_git
    if shared is None:
        return SkillStore(root)
    return GitSkillStore(root, remote=shared.remote, branch=shared.branch)


def default_author() -> str:
    """``git config user.name <user.email>`` if set, else ``login <login@host>``: who a CLI review is by."""
    try:
        name, email = (
            subprocess.run(["git", "config", key], capture_output=True, text=True, timeout=10).stdout.strip()
            for key in ("user.name", "user.email")
        )
    except (OSError, subprocess.SubprocessError):
        name = email = ""
    login = _login()
    return f"{name or login} <{email or f'{login}@{socket.gethostname()}'}>"


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "codemode"
