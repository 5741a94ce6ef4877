"""The audit in PostgreSQL (``codemode.audit_url``): the local log's records, shared by every node of a team.

A record is first written to a spool file of this machine (``<state>/audit-spool/<store>/<id>.json``,
atomically), then a writer thread inserts it keyed by its execution id (``INSERT … ON CONFLICT (id) DO
NOTHING``, in one transaction) and only then removes the file. A node that dies between the commit and the
removal leaves the file, which the next writer inserts again to no effect; a database that is down keeps the
files until it is back. So an execution is never lost nor recorded twice, and the engine never waits on the
network. The URL's password never appears in a message: :attr:`PostgresAudit.where` and :func:`scrub`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from codemode.audit import ExecutionEntry
from codemode.errors import ConfigError
from codemode.files import write_atomic

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger(__name__)

TABLE = "codemode_audit"
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    seq bigserial,
    id text PRIMARY KEY,
    time double precision NOT NULL,
    session text NOT NULL,
    config text NOT NULL,
    ok boolean NOT NULL,
    record text NOT NULL
);
CREATE INDEX IF NOT EXISTS {TABLE}_order ON {TABLE} (time, seq);
"""
# ``record`` is the JSON line itself, ASCII-escaped: text (not jsonb) keeps NULs and lone surrogates a program
# printed, and it reads back to exactly the local log's record.
INSERT = (
    f"INSERT INTO {TABLE} (id, time, session, config, ok, record) VALUES (%s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (id) DO NOTHING"
)
SCHEMA_LOCK = 0x636F6465  # nodes starting together create the table once (CREATE … IF NOT EXISTS can race)
BATCH = 200
"""Spooled records inserted per transaction."""
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def redact(url: str) -> str:
    """``url`` without its password (in the user part or a ``password=`` parameter)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<an unparsable PostgreSQL URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}@{hostport}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "password"])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _passwords(url: str) -> list[str]:
    found: list[str] = []
    try:
        parts = urlsplit(url)
        if parts.password:
            found.append(parts.password)
        found += [v for k, v in parse_qsl(parts.query) if k == "password" and v]
    except ValueError:
        pass
    userinfo = url.partition("://")[2].rpartition("@")[0]
    if ":" in userinfo:  # also the raw, still-quoted form
        found.append(userinfo.partition(":")[2])
    return [p for p in {*found, *(unquote(p) for p in found)} if p]


def scrub(message: str, url: str) -> str:
    """``message`` with ``url`` shown without its password and the password itself nowhere."""
    text = message.replace(url, redact(url))
    for secret in sorted(_passwords(url), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text.strip()


class PostgresAudit:
    """The :class:`~codemode.audit.AuditSink` in PostgreSQL, spooled locally (see the module docstring)."""

    def __init__(
        self, url: str, *, spool: Path, retry_s: float = 5.0, connect_timeout_s: int = 5, writer: bool = True
    ) -> None:
        self._url = url
        self._writer = writer
        """Send records from a thread of our own; without it only :meth:`flush` and :meth:`close` send them."""
        self.spool = spool / hashlib.sha256(redact(url).encode()).hexdigest()[:16]
        """This store's spool folder: records written here and not yet in the database."""
        self.retry_s = retry_s
        self.connect_timeout_s = connect_timeout_s
        self._lock = threading.Lock()  # one drain (and one use of the connection) at a time
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._down = False

    @property
    def where(self) -> str:
        return redact(self._url)

    def _error(self, exc: BaseException) -> ConfigError:
        return ConfigError(f"audit database {self.where}: {scrub(str(exc), self._url) or type(exc).__name__}")

    # -- writing -----------------------------------------------------------------------------------

    def open(self) -> None:
        """Connect and create the table if missing; raises :class:`ConfigError` naming the database (without
        its password) when it cannot be reached. Starts the writer, which first sends what an earlier run of
        this machine left in the spool."""
        with self._lock:
            try:
                self._connection()
            except Exception as exc:
                self._close_connection()
                raise self._error(exc) from None
        self._start()
        self._wake.set()

    def append(self, entry: ExecutionEntry) -> None:
        """Spool ``entry`` (atomically) and wake the writer. Never raises."""
        name = entry.id if _SAFE_NAME.fullmatch(entry.id) else hashlib.sha256(entry.id.encode()).hexdigest()
        try:
            write_atomic(self.spool / f"{name}.json", _record(entry))
        except OSError as exc:
            logger.error("audit spool %s: could not write execution %s: %s", self.spool, entry.id, exc)
            return
        self._start()
        self._wake.set()

    def pending(self) -> int:
        """Records spooled and not yet in the database."""
        return sum(1 for _ in self.spool.glob("*.json")) if self.spool.is_dir() else 0

    def flush(self) -> int:
        """Insert every spooled record now; returns how many are still pending (0 when all went in)."""
        with self._lock:
            files = sorted(self.spool.glob("*.json"), key=_mtime) if self.spool.is_dir() else []
            try:
                for start in range(0, len(files), BATCH):
                    self._insert(files[start : start + BATCH])
            except Exception as exc:  # psycopg.Error, or OSError from a dead socket
                self._close_connection()
                if not self._down:
                    logger.error(
                        "%s; records are kept in %s and retried every %g s", self._error(exc), self.spool, self.retry_s
                    )
                self._down = True
                return self.pending()
            if self._down:
                logger.warning("audit database %s: reachable again, spooled records sent", self.where)
            self._down = False
            return self.pending()

    def _insert(self, files: Sequence[Path]) -> None:
        rows: list[tuple[Any, ...]] = []
        taken: list[Path] = []
        for path in files:
            try:
                text = path.read_text(encoding="ascii")
                data = json.loads(text)
                rows.append((data["id"], data["time"], data["session"], data["config"], data["ok"], text))
            except FileNotFoundError:
                continue  # another process on this machine sent it
            except (ValueError, KeyError, TypeError) as exc:
                logger.error("audit spool %s: not a record (%s); set aside as .damaged", path, exc)
                path.replace(path.with_suffix(".damaged"))
                continue
            taken.append(path)
        if not rows:
            return
        conn = self._connection()
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(INSERT, rows)
        for path in taken:  # only after the commit: a death before here means a harmless second insert
            path.unlink(missing_ok=True)

    def _start(self) -> None:
        if self._writer and (self._thread is None or not self._thread.is_alive()):
            self._stop.clear()
            # A daemon: a process that exits without close() leaves its records spooled for the next run.
            self._thread = threading.Thread(target=self._run, name="codemode-audit-pg", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.retry_s)
            self._wake.clear()
            if self.pending():
                self.flush()

    def close(self) -> None:
        """Stop the writer, try once more to send what is spooled, and disconnect."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.flush()
        with self._lock:
            self._close_connection()

    def _connection(self) -> psycopg.Connection[Any]:
        import psycopg

        if self._conn is None or self._conn.closed:
            conn = psycopg.connect(self._url, autocommit=True, connect_timeout=self.connect_timeout_s)
            try:
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                    cur.execute(SCHEMA)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already broken: nothing to release
                pass

    # -- reading -----------------------------------------------------------------------------------

    def _select(self, query: str, params: Sequence[Any] = ()) -> list[ExecutionEntry]:
        self.flush()  # what this machine wrote is readable at once
        with self._lock:
            try:
                conn = self._connection()
                with conn.cursor() as cur:
                    cur.execute(query, params)
                    rows = cur.fetchall()
            except Exception as exc:
                self._close_connection()
                raise self._error(exc) from None
        entries: list[ExecutionEntry] = []
        for (record,) in rows:
            try:
                entries.append(ExecutionEntry.from_json(json.loads(record)))
            except (ValueError, TypeError) as exc:
                logger.warning("audit database %s: skipped a damaged record: %s", self.where, exc)
        return entries

    def entries(self) -> Iterator[ExecutionEntry]:
        """Every entry, oldest first."""
        yield from self._select(f"SELECT record FROM {TABLE} ORDER BY time, seq")

    def recent(self, n: int = 20) -> list[ExecutionEntry]:
        """The last ``n`` entries (all when ``n`` ≤ 0), newest last."""
        if n <= 0:
            return list(self.entries())
        newest = f"SELECT record, time, seq FROM {TABLE} ORDER BY time DESC, seq DESC LIMIT %s"
        return self._select(f"SELECT record FROM ({newest}) AS t ORDER BY time, seq", (n,))

    def find(self, entry_id: str) -> ExecutionEntry | None:
        """The entry whose id starts with ``entry_id`` (unique prefix), or None."""
        pattern = entry_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        found = self._select(f"SELECT record FROM {TABLE} WHERE id LIKE %s ORDER BY time, seq LIMIT 2", (pattern,))
        return found[0] if len(found) == 1 else None


def _record(entry: ExecutionEntry) -> str:
    return json.dumps(entry.to_json(), ensure_ascii=True, separators=(",", ":"))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
