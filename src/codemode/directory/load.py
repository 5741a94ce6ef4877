"""Reading a directory of entries: each ``*.json`` file validated on its own, a bad one rejected with its
file and reason while the rest loads."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from codemode.directory.models import Entry

if TYPE_CHECKING:
    from codemode.config import Config

MAX_ENTRY_BYTES = 256 * 1024
"""An entry is a few kilobytes; a larger file is refused before it is parsed."""

DEFAULT_DIR = Path(__file__).parent / "entries"
"""The pinned entries shipped with codemode (they run offline once ``scripts/setup`` fetched them)."""


@dataclass(frozen=True)
class Rejected:
    """A file that is not a valid entry, and why."""

    file: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.reason}"


@dataclass(frozen=True)
class Located:
    """An entry and the directory it was read from (relative paths in it resolve there)."""

    entry: Entry
    file: Path
    root: Path

    def to_json(self, *, mounted: bool = False) -> dict[str, Any]:
        """What ``search_directory`` and ``codemode directory --json`` show of it."""
        e = self.entry
        kind = "openapi" if e.openapi else e.packages[0].registry_type if e.packages else "remote"
        return {
            "name": e.short_name,
            "registry_name": e.name,
            "description": e.description,
            "version": e.version,
            "kind": kind,
            "mounted": mounted,
            "params": e.params(),
            "secrets": e.secrets(),
        }


@dataclass
class Directory:
    """Every valid entry by its short name, and the files rejected."""

    entries: dict[str, Located] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)

    def get(self, name: str) -> Located | None:
        """The entry by short name (``memory``) or full registry name."""
        found = self.entries.get(name)
        if found is not None:
            return found
        return next((e for e in self.entries.values() if e.entry.name == name), None)

    def search(self, query: str) -> list[Located]:
        """Entries whose name or description holds every word of ``query`` (all entries for an empty one)."""
        words = query.lower().split()

        def text(located: Located) -> str:
            e = located.entry
            return f"{located.entry.short_name} {e.name} {e.title or ''} {e.description}".lower()

        return [e for e in self.entries.values() if all(w in text(e) for w in words)]


def directory_for(config: Config) -> Directory:
    """The directory a config uses: its ``codemode.directory`` folders (relative to the config file), or the
    shipped one."""
    folders = config.settings.directory
    if folders is None:
        return load_directory()
    base = Path(config.source).parent if Path(config.source).is_file() else Path.cwd()
    return load_directory([base / folder for folder in folders])


def load_directory(roots: list[Path] | None = None) -> Directory:
    """Read every ``*.json`` entry under ``roots`` (default: the shipped directory). Never raises for a bad
    entry: it lands in :attr:`Directory.rejected`; the first entry of a short name wins."""
    directory = Directory()
    for root in roots if roots is not None else [DEFAULT_DIR]:
        try:
            files = sorted(root.glob("*.json"))
        except OSError as exc:
            directory.rejected.append(Rejected(str(root), f"cannot list the directory: {exc}"))
            continue
        for file in files:
            try:
                located = read_entry(file, root)
            except _Bad as exc:
                directory.rejected.append(Rejected(str(file), str(exc)))
                continue
            name = located.entry.short_name
            if name in directory.entries:
                other = directory.entries[name].file
                directory.rejected.append(Rejected(str(file), f"the name {name!r} is already taken by {other}"))
                continue
            directory.entries[name] = located
    return directory


class _Bad(Exception):
    pass


def read_entry(file: Path, root: Path) -> Located:
    """One entry file of the directory ``root``, validated (raises ``_Bad`` with the reason)."""
    real_root = root.resolve()
    if not _inside(file.resolve(), real_root):
        raise _Bad(f"resolves outside the directory {root} (a symlink?)")
    try:
        if file.stat().st_size > MAX_ENTRY_BYTES:
            raise _Bad(f"larger than {MAX_ENTRY_BYTES:,} bytes")
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise _Bad(f"cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise _Bad(f"line {exc.lineno}: invalid JSON: {exc.msg}") from None
    if not isinstance(raw, dict):
        raise _Bad("not a JSON object")
    try:
        entry = Entry.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise _Bad(f"{where}: {msg}" if where else msg) from None
    if entry.openapi is not None and not entry.openapi.spec.startswith(("http://", "https://")):
        spec = entry.openapi.spec
        if os.path.isabs(spec) or not _inside((real_root / spec).resolve(), real_root):
            raise _Bad(f"openapi.spec {spec!r} is a path outside the directory")
    return Located(entry, file, real_root)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents
