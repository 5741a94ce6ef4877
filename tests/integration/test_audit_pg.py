"""The audit in a real PostgreSQL: the same records as the local log, none lost or doubled when a node dies
or the database fails, and ``codemode history``/``replay`` reading from it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from codemode.audit import AuditLog, AuditSink, ExecutionEntry
from codemode.audit_pg import TABLE, PostgresAudit
from codemode.config import Config
from codemode.engine import Engine
from codemode.hub import FakeUpstream, ToolSpec
from tests.pg import PgCluster

TEXT = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
REPO = Path(__file__).resolve().parents[2]


class Both:
    """Writes every record to two sinks: the engine sees one :class:`AuditSink` and cannot tell."""

    def __init__(self, first: AuditSink, second: AuditSink) -> None:
        self.sinks = (first, second)

    @property
    def where(self) -> str:
        return " + ".join(s.where for s in self.sinks)

    def open(self) -> None:
        for sink in self.sinks:
            sink.open()

    def append(self, entry: ExecutionEntry) -> None:
        for sink in self.sinks:
            sink.append(entry)

    def entries(self) -> Iterator[ExecutionEntry]:
        return self.sinks[0].entries()

    def recent(self, n: int = 20) -> list[ExecutionEntry]:
        return self.sinks[0].recent(n)

    def find(self, entry_id: str) -> ExecutionEntry | None:
        return self.sinks[0].find(entry_id)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


def _count(url: str, entry_id: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {TABLE} WHERE id = %s", (entry_id,)).fetchone()
    assert row is not None
    return int(row[0])


def _entry(code: str) -> ExecutionEntry:
    return ExecutionEntry(session="s", code=code, executor="wasm", ok=True, duration_s=0.01, output_chars=0)


@pytest.mark.anyio
async def test_records_equal_the_local_logs(tmp_path: Path, pg_url: str) -> None:
    local = AuditLog(tmp_path / "audit.jsonl")
    shared = PostgresAudit(pg_url, spool=tmp_path / "spool")
    echo = FakeUpstream("echo", [ToolSpec("echo", "say", input_schema=TEXT)], lambda tool, args: f"{tool}:{args}")
    async with Engine(Config(), upstreams={"echo": echo}, stubs_dir=tmp_path / "stubs", skills_dir=tmp_path / "skills",
                      audit=Both(local, shared)) as engine:  # fmt: skip
        await engine.execute("from stubs import echo\necho.say(text='hi')", session="a")
        await engine.execute("1 / 0", session="a")
        await engine.execute("print('\\x00 and \\udcff and é')\n#" + "x" * 70_000, session="b")
    want = [e.to_json() for e in local.entries()]
    assert len(want) == 3 and want[0]["calls"] and len(want[2]["code"]) == 64_000
    assert [e.to_json() for e in shared.entries()] == want
    assert [e.to_json() for e in shared.recent(2)] == want[1:]
    found = shared.find(want[1]["id"][:6])
    assert found is not None and found.to_json() == want[1]
    assert shared.pending() == 0


def test_an_insert_that_fails_once_loses_and_doubles_nothing(tmp_path: Path, pg_url: str) -> None:
    audit = PostgresAudit(pg_url, spool=tmp_path / "spool", writer=False)  # the flushes below are the only ones
    audit.open()
    with psycopg.connect(pg_url, autocommit=True) as conn:  # a real failure inside the insert's transaction
        conn.execute(textwrap.dedent(f"""
            CREATE SEQUENCE fail_seq;
            CREATE FUNCTION fail_first() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN IF nextval('fail_seq') = 1 THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$;
            CREATE TRIGGER fail_first BEFORE INSERT ON {TABLE} FOR EACH ROW EXECUTE FUNCTION fail_first();
        """))  # fmt: skip
    first, second = _entry("1"), _entry("2")
    audit.append(first)
    audit.append(second)
    assert audit.flush() == 2  # the transaction failed: both records are still spooled
    assert audit.flush() == 0
    assert (_count(pg_url, first.id), _count(pg_url, second.id)) == (1, 1)

    # A node that died after the commit and before removing the spool file sends it again: no second row.
    spooled = audit.spool / f"{first.id}.json"
    spooled.write_text(json.dumps(first.to_json(), ensure_ascii=True))
    assert audit.flush() == 0 and not spooled.exists()
    assert _count(pg_url, first.id) == 1
    audit.close()


NODE = """
import sys
from pathlib import Path
from codemode.audit import ExecutionEntry
from codemode.audit_pg import PostgresAudit

audit = PostgresAudit(sys.argv[1], spool=Path(sys.argv[2]), retry_s=0.05)
audit.open()
def entry(id):
    return ExecutionEntry(id=id, session="s", code=id, executor="wasm", ok=True, duration_s=0.0, output_chars=0)
audit.append(entry("before"))
assert audit.flush() == 0
print("in", flush=True)
sys.stdin.readline()  # the test stops the database now
for id in ("during1", "during2", "during3"):
    audit.append(entry(id))
print("appended", flush=True)
sys.stdin.readline()  # killed while its writer retries
"""


def test_a_node_killed_while_the_database_is_down(tmp_path: Path, own_pg_cluster: PgCluster) -> None:
    url = own_pg_cluster.new_database()
    spool = tmp_path / "spool"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    node = subprocess.Popen([sys.executable, "-c", NODE, url, str(spool)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)  # fmt: skip
    assert node.stdin is not None and node.stdout is not None
    try:
        assert node.stdout.readline() == "in\n"
        own_pg_cluster.stop()
        node.stdin.write("go\n")
        node.stdin.flush()
        assert node.stdout.readline() == "appended\n"
    finally:
        node.send_signal(signal.SIGKILL)
        node.wait()
    own_pg_cluster.start()

    # The next node on this machine sends what the dead one spooled, once.
    audit = PostgresAudit(url, spool=spool)
    audit.open()
    audit.close()
    assert audit.pending() == 0
    assert [e.id for e in audit.entries()] == ["before", "during1", "during2", "during3"]
    for entry_id in ("before", "during1", "during2", "during3"):
        assert _count(url, entry_id) == 1


def _cli(tmp_path: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CODEMODE_STATE_DIR": str(tmp_path / "state")}
    return subprocess.run([sys.executable, "-m", "codemode.cli", *args], env=env, input=stdin, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def test_history_and_replay_read_from_postgres(tmp_path: Path, pg_url: str) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"mcpServers": {}, "codemode": {"audit_url": pg_url}}))
    ran = _cli(tmp_path, "run", "--config", str(config), "-", stdin="print('from pg')\n6 * 7")
    assert ran.returncode == 0, ran.stderr
    history = _cli(tmp_path, "history", "--config", str(config), "--json")
    assert history.returncode == 0, history.stderr
    (entry,) = json.loads(history.stdout)
    assert entry["code"] == "print('from pg')\n6 * 7" and entry["ok"] is True
    assert [e.id for e in PostgresAudit(pg_url, spool=tmp_path / "other").entries()] == [entry["id"]]
    assert not (tmp_path / "state" / "audit.jsonl").exists()  # not the local log

    replay = _cli(tmp_path, "replay", "--config", str(config), entry["id"][:8])
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "same tool calls and output as recorded" in replay.stdout
    assert len(json.loads(_cli(tmp_path, "history", "--config", str(config), "--json").stdout)) == 2


def test_serve_refuses_to_start_without_its_audit_database(tmp_path: Path, pg_cluster: PgCluster) -> None:
    url = pg_cluster.url().replace(f":{pg_cluster.port}/", ":1/")  # nothing listens on port 1
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"mcpServers": {}, "codemode": {"audit_url": url}}))
    served = _cli(tmp_path, "serve", "--config", str(config), stdin="")
    assert served.returncode != 0
    assert "audit database postgresql://codemode@127.0.0.1:1/postgres" in served.stderr, served.stderr
    assert "Connection refused" in served.stderr
