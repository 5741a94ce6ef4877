"""The audit log: one JSON line per execution, appended atomically, read back by ``codemode history``.

The engine writes to an :class:`AuditSink`: this local log by default, or PostgreSQL shared by several
nodes when ``codemode.audit_url`` is set (:mod:`codemode.audit_pg`); both store the same records.

Each line is written with a single ``write`` on a file opened ``O_APPEND``, so concurrent executions (and
concurrent ``codemode serve`` processes) never interleave half lines. A failing sink logs and never breaks
an execution.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from codemode import paths
from codemode.calls.types import CallRecord

if TYPE_CHECKING:
    from codemode.config import Config

logger = logging.getLogger(__name__)

MAX_CODE_CHARS = 1_000_000
"""The longest program codemode runs (the engine refuses longer ones)."""
STORED_CODE_CHARS = 64_000
"""Programs longer than this are stored as their head and full hash (``code_truncated``): such an entry
cannot be replayed, but one line never holds a megabyte of program."""
ROTATIONS = 3
"""Rotated files kept beside the live log (``audit.jsonl.1`` is the newest)."""


def new_execution_id() -> str:
    """A short random id for an execution (12 hex digits)."""
    return os.urandom(6).hex()  # the 48 random bits uuid4().hex[:12] kept, without building a UUID


def audit_path(config: Config) -> Path:
    """The audit log of a config: the setting, else ``<state>/audit.jsonl``."""
    if config.settings.audit_log:
        return Path(config.settings.audit_log).expanduser()
    return paths.state_dir() / "audit.jsonl"


def audit_log(config: Config) -> AuditSink:
    """The audit sink of a config: PostgreSQL when ``audit_url`` is set, else the local log."""
    if config.settings.audit_url:
        from codemode.audit_pg import PostgresAudit

        return PostgresAudit(config.settings.audit_url, spool=paths.state_dir() / "audit-spool")
    return AuditLog(audit_path(config), max_bytes=config.settings.audit_max_mb * 1024 * 1024)


class AuditSink(Protocol):
    """Where execution records go and are read back from; the engine knows no more than this."""

    @property
    def where(self) -> str:
        """The store, for messages (a path, or a URL without its password)."""
        ...

    def open(self) -> None:
        """Check the store can be written (raises :class:`~codemode.errors.ConfigError` naming it if not)."""
        ...

    def append(self, entry: ExecutionEntry) -> None:
        """Record one entry. Never raises: a record that cannot be written now is kept and retried."""
        ...

    def entries(self) -> Iterator[ExecutionEntry]:
        """Every entry, oldest first."""
        ...

    def recent(self, n: int = 20) -> list[ExecutionEntry]:
        """The last ``n`` entries, newest last."""
        ...

    def find(self, entry_id: str) -> ExecutionEntry | None:
        """The entry whose id starts with ``entry_id`` (unique prefix), or None."""
        ...

    def close(self) -> None:
        """Write what is pending, if the store allows, and release connections."""
        ...


@dataclass(frozen=True)
class ExecutionEntry:
    """One ``execute_python`` (or ``codemode run``) execution."""

    session: str
    code: str
    executor: str
    ok: bool
    duration_s: float
    output_chars: int
    calls: list[CallRecord] = field(default_factory=list)
    """The side-effect journal: every tool call, with its state (``in_flight`` if the execution ended
    while it was out)."""
    calls_over_quota: int = 0
    """Refused calls past the quota, counted rather than listed."""
    error: str | None = None
    error_kind: str | None = None
    """The closed kind of the failure (``program``, ``timeout``, ``memory`` ... or ``refused``)."""
    output: str = ""
    """What the model was shown (already capped at the output limit)."""
    config: str = ""
    identity: str = "local"
    """Who ran it: the authenticated identity over HTTP (:mod:`codemode.identity`), ``local`` over stdio."""
    peer: str = "local"
    """Where from: the client's address over HTTP (behind a proxy listed in ``trusted_proxies``, the address
    the proxy forwarded), ``local`` over stdio."""
    id: str = field(default_factory=lambda: new_execution_id())
    time: float = field(default_factory=time.time)

    @property
    def code_sha256(self) -> str:
        return hashlib.sha256(self.code.encode("utf-8", "surrogatepass")).hexdigest()

    def to_json(self) -> dict[str, Any]:
        # Shallow: every field but ``calls`` is a plain value (asdict's deep copy was most of an append's cost).
        data = {name: getattr(self, name) for name in _ENTRY_FIELDS}
        data["calls"] = [c.to_json() for c in self.calls]
        data["code_sha256"] = self.code_sha256
        if len(self.code) > STORED_CODE_CHARS:
            data["code"] = self.code[:STORED_CODE_CHARS]
            data["code_truncated"] = True
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExecutionEntry:
        # Lines written before the journal existed call the list ``tool_calls``.
        calls = [CallRecord.from_json(c) for c in data.get("calls", data.get("tool_calls", []))]
        keep = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "calls"}
        return cls(calls=calls, **keep)


_ENTRY_FIELDS = tuple(f.name for f in fields(ExecutionEntry))
_LINE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
"""One encoder for every line: ``json.dumps`` with these options builds a new one per call."""


class AuditLog:
    """Append-only JSONL file of :class:`ExecutionEntry`."""

    def __init__(self, path: Path, *, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.path = path
        self.max_bytes = max_bytes

    @property
    def where(self) -> str:
        return str(self.path)

    def open(self) -> None:
        """Nothing to check: a local file is created on the first append."""

    def close(self) -> None:
        """Nothing held open between appends."""

    def append(self, entry: ExecutionEntry) -> None:
        """Append one entry as one line, rotating the file past ``max_bytes``. Never raises: a broken sink
        is logged."""
        # A program may print lone surrogates: as JSON escapes (\udcff) the line stays valid UTF-8 and
        # reads back to the same string.
        text = _LINE.encode(entry.to_json()) + "\n"
        line = text.encode("utf-8", "backslashreplace")
        try:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            except FileNotFoundError:  # its directory is made on the first append, not checked on each
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                if os.fstat(fd).st_size + len(line) > self.max_bytes and os.fstat(fd).st_size > 0:
                    os.close(fd)
                    self._rotate()
                    fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as exc:
            logger.error("audit log %s: could not append: %s", self.path, exc)

    def _rotate(self) -> None:
        # Renames are atomic: a concurrent writer appends either to the old file (now .1) or the new one.
        for n in range(ROTATIONS - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{n + 1}"))
        if self.path.exists():
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))

    def entries(self) -> Iterator[ExecutionEntry]:
        """Every readable entry, oldest first, the rotated files' too (a damaged line is skipped, not fatal)."""
        for path in reversed(self._files()):
            yield from self._read(path)

    def recent(self, n: int = 20) -> list[ExecutionEntry]:
        """The last ``n`` entries, newest last: the newest file first, older ones only while entries are missing
        (one client's executions can rotate another's out of the current file)."""
        found: list[ExecutionEntry] = []
        for path in self._files():
            found[:0] = self._read(path)
            if 0 < n <= len(found):
                break
        return found[-n:] if n > 0 else found

    def _files(self) -> list[Path]:
        """The log and its rotations, newest first."""
        rotated = [self.path.with_name(f"{self.path.name}.{k}") for k in range(1, ROTATIONS + 1)]
        return [self.path, *rotated]

    def _read(self, path: Path) -> Iterator[ExecutionEntry]:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                for number, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        yield ExecutionEntry.from_json(json.loads(line))
                    except (ValueError, TypeError) as exc:
                        logger.warning("audit log %s:%d: skipped a damaged line: %s", path, number, exc)
        except FileNotFoundError:
            return

    def find(self, entry_id: str) -> ExecutionEntry | None:
        """The entry whose id starts with ``entry_id`` (unique prefix), or None."""
        matches = [e for e in self.entries() if e.id.startswith(entry_id)]
        return matches[-1] if len(matches) == 1 else None
