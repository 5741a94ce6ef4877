"""The skill store: plain files that read well under git, every version kept.

::

    <root>/
      live/NAME.py                 the promoted version of each skill: the only files sandboxes see (/skills)
      versions/NAME/v1.py, v2.py   every saved version: a metadata header, then the module
      versions/NAME/state.json     {"state": ..., "promoted": V, "drafts": {V: session}, "tests": {V: ...}}
      .lock                        held while a save or a state change is written

A version file starts with ``# key: <JSON>`` lines (version, created, session, description, calls,
example, example_result, identity); the module follows. Files are written to a temporary name and renamed, so a
reader never sees half a file. A file that cannot be read is reported by name in :attr:`SkillStore.problems`
and leaves every other skill listed.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codemode.errors import SkillError
from codemode.files import write_atomic

HEADER_KEYS = ("version", "created", "session", "description", "calls", "example", "example_result", "identity")
"""The metadata header of a version file, in order (``identity``: who saved it, :mod:`codemode.identity`; a
version saved before it was recorded has none)."""


class SkillState(enum.StrEnum):
    """Where a skill is in review."""

    DRAFT = "draft"
    """Saved, importable only in the session that saved it."""
    PROMOTED = "promoted"
    """Reviewed: importable in every session from its next execution."""
    RETIRED = "retired"
    """Rejected or withdrawn: importable nowhere."""


@dataclass
class Version:
    """One saved version of a skill."""

    name: str
    version: int
    source: str
    """The module (without the header)."""
    meta: dict[str, Any]

    @property
    def description(self) -> str:
        return str(self.meta.get("description") or "")

    @property
    def identity(self) -> str | None:
        """Who saved it (its example runs as them), or None when that was not recorded."""
        identity = self.meta.get("identity")
        return identity if isinstance(identity, str) else None

    @property
    def example(self) -> str | None:
        example = self.meta.get("example")
        return example if isinstance(example, str) else None

    def text(self) -> str:
        """The file's text: the header, then the module."""
        head = "".join(f"# {key}: {json.dumps(self.meta.get(key), ensure_ascii=False)}\n" for key in HEADER_KEYS)
        return head + "\n" + self.source


@dataclass
class Skill:
    """A skill: its versions and where it stands."""

    name: str
    state: SkillState
    versions: list[int]
    promoted: int | None = None
    drafts: dict[int, str] = field(default_factory=dict)
    """Draft version → the session that saved it."""
    tests: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Version → its last test (``{"ok", "when", "detail"}``)."""
    broken: str | None = None
    """Why the promoted version no longer checks against the current stubs (a derived mark)."""

    @property
    def latest(self) -> int:
        return self.versions[-1]


def parse_version(name: str, path: Path) -> Version:
    """Read a version file; raises :class:`SkillError` naming the file when it is not one."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SkillError(f"{path}: cannot be read ({exc})") from None
    meta: dict[str, Any] = {}
    lines = text.splitlines(True)
    for index, line in enumerate(lines):
        if not line.startswith("# "):
            source = "".join(lines[index:]).lstrip("\n")
            break
        key, sep, value = line[2:].partition(": ")
        if not sep or key not in HEADER_KEYS:
            raise SkillError(f"{path}: line {index + 1} is not a `# key: value` header line")
        try:
            meta[key] = json.loads(value)
        except ValueError:
            raise SkillError(f"{path}: line {index + 1}: the value of {key!r} is not JSON") from None
    else:
        source = ""
    if not isinstance(meta.get("version"), int) or not source.strip():
        raise SkillError(f"{path}: the header has no version or the module is empty")
    return Version(name, meta["version"], source, meta)


class SkillStore:
    """The files of one store (see the module docstring). Safe across processes: writes hold ``.lock``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.live_dir = root / "live"
        self.versions_dir = root / "versions"
        self.problems: list[str] = []
        """Files that could not be read at the last :meth:`skills` call, each with the reason."""

    @contextlib.contextmanager
    def locked(self, timeout_s: float = 10.0, *, change: str = "", author: str | None = None) -> Iterator[None]:
        """Hold the store's lock (two saves of one name never interleave, in one process or several).
        ``change`` and ``author`` describe what the block writes (a shared store commits it; see
        :mod:`codemode.skills.gitstore`)."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise SkillError(f"{self.root}: the skill store is locked by another writer") from None
                    time.sleep(0.01)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def revision(self) -> str:
        """Changes whenever the promoted set changes (the guest forgets imported skills then)."""
        try:
            stat = self.live_dir.stat()
        except FileNotFoundError:
            return "0"
        return f"{stat.st_mtime_ns}-{stat.st_ino}"

    # -- reading -----------------------------------------------------------------------------------

    def names(self) -> list[str]:
        if not self.versions_dir.is_dir():
            return []
        return sorted(p.name for p in self.versions_dir.iterdir() if p.is_dir() and p.name.isidentifier())

    def skills(self) -> list[Skill]:
        """Every readable skill; unreadable files are listed in :attr:`problems` (by name), not raised."""
        self.problems = []
        found: list[Skill] = []
        for name in self.names():
            try:
                found.append(self.skill(name))
            except SkillError as exc:
                self.problems.append(str(exc))
        return found

    def skill(self, name: str) -> Skill:
        """One skill's state; raises :class:`SkillError` when it does not exist or its files are damaged."""
        folder = self._folder(name)
        versions = sorted(
            int(p.stem[1:]) for p in folder.glob("v*.py") if p.stem[1:].isdigit()
        ) if folder.is_dir() else []  # fmt: skip
        if not versions:
            raise SkillError(f"no skill named {name!r}")
        path = folder / "state.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            state = SkillState(data["state"])
            promoted = data.get("promoted")
            drafts = {int(k): str(v) for k, v in data.get("drafts", {}).items()}
            tests = {int(k): dict(v) for k, v in data.get("tests", {}).items()}
            broken = data.get("broken")
            if promoted is not None and promoted not in versions:
                raise ValueError(f"promoted version {promoted} has no file")
        except FileNotFoundError:
            raise SkillError(f"{path}: missing") from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SkillError(f"{path}: damaged ({exc})") from None
        return Skill(name, state, versions, promoted, drafts, tests, broken if isinstance(broken, str) else None)

    def version(self, name: str, version: int | None = None) -> Version:
        """A saved version (the latest when ``version`` is None)."""
        skill = self.skill(name)
        number = skill.latest if version is None else version
        if number not in skill.versions:
            raise SkillError(f"{name} has no version {number} (versions: {', '.join(map(str, skill.versions))})")
        return parse_version(name, self._folder(name) / f"v{number}.py")

    # -- writing (callers hold :meth:`locked`) --------------------------------------------------------

    def add_version(self, name: str, source: str, meta: dict[str, Any], *, session: str) -> Version:
        """Write a new draft version of ``name``; returns it (its number is the next one)."""
        folder = self._folder(name)
        skill = self.skill(name) if folder.is_dir() and any(folder.glob("v*.py")) else None
        number = (skill.latest + 1) if skill else 1
        version = Version(name, number, source, {**meta, "version": number, "session": session})
        write_atomic(folder / f"v{number}.py", version.text())
        if skill is None:
            skill = Skill(name, SkillState.DRAFT, [number])
        else:
            skill.versions.append(number)
            if skill.state is SkillState.RETIRED:
                skill.state = SkillState.DRAFT
        skill.drafts[number] = session
        self.write_state(skill)
        return version

    def write_state(self, skill: Skill) -> None:
        data = {
            "state": skill.state.value,
            "promoted": skill.promoted,
            "drafts": {str(k): v for k, v in sorted(skill.drafts.items())},
            "tests": {str(k): v for k, v in sorted(skill.tests.items())},
            "broken": skill.broken,
        }
        write_atomic(self._folder(skill.name) / "state.json", json.dumps(data, indent=2, ensure_ascii=False) + "\n")

    def publish(self, skill: Skill) -> None:
        """Make ``live/NAME.py`` the promoted version (or remove it when there is none)."""
        live = self.live_dir / f"{skill.name}.py"
        if skill.state is SkillState.PROMOTED and skill.promoted is not None:
            version = parse_version(skill.name, self._folder(skill.name) / f"v{skill.promoted}.py")
            write_atomic(live, version.text())
        else:
            with contextlib.suppress(FileNotFoundError):
                live.unlink()
        # The directory's mtime is the revision: touch it even when a file was only replaced.
        os.utime(self.live_dir)

    def _folder(self, name: str) -> Path:
        if not name.isidentifier():
            raise SkillError(f"{name!r} is not a valid skill name (a Python identifier)")
        return self.versions_dir / name
