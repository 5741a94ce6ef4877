"""The audit's cost per execution record: the local JSON-lines log against PostgreSQL (spool + insert).

The engine's side of ``append`` is what an execution pays (the PostgreSQL sink only spools; its writer thread
inserts): both are measured, plus the CPU time of the whole process per record until the database holds them
all (the writer thread included). The two sinks alternate in rounds in the same run against a throwaway
PostgreSQL cluster on loopback (``tests/pg.py``); the medians of the rounds are printed.

    python -m benchmarks.bench_audit [--records 500] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from codemode import paths
from codemode.audit import AuditLog, AuditSink, ExecutionEntry
from codemode.audit_pg import PostgresAudit
from tests.conftest import free_port
from tests.pg import PgCluster, pg_bin

RESULTS = Path(__file__).parent / "results"


def _entries(n: int) -> list[ExecutionEntry]:
    code = "from stubs import inventory\nlow = [p for p in inventory.list_products() if p['stock'] < 5]\nlen(low)"
    return [ExecutionEntry(session="bench", code=code, executor="wasm", ok=True, duration_s=0.012,
                           output_chars=3, output="17") for _ in range(n)]  # fmt: skip


def _round(sink: AuditSink, n: int) -> dict[str, float]:
    entries = _entries(n)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for entry in entries:
        sink.append(entry)
    append_wall = time.perf_counter() - wall0
    if isinstance(sink, PostgresAudit):
        while sink.pending():  # the writer thread inserts; wait until the database holds every record
            time.sleep(0.001)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"append_us": append_wall / n * 1e6, "cpu_us": cpu / n * 1e6, "stored_wall_us": wall / n * 1e6}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    if pg_bin() is None:
        print("PostgreSQL's server binaries are not installed (scripts/setup installs them)")
        return 1
    cluster = PgCluster(free_port())
    cluster.start()
    tmp: Path | None = None
    try:
        # Under the state dir, where a node keeps its log and spool (creating files in a crowded /tmp can
        # cost ten times more than in a home directory on the same disk).
        paths.state_dir().mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="bench-audit-", dir=paths.state_dir()))
        local = AuditLog(tmp / "audit.jsonl")
        shared = PostgresAudit(cluster.new_database(), spool=tmp / "spool", retry_s=1.0)
        shared.open()
        runs: dict[str, list[dict[str, float]]] = {"local": [], "postgres": []}
        for _ in range(args.rounds):
            runs["local"].append(_round(local, args.records))
            runs["postgres"].append(_round(shared, args.records))
        shared.close()
    finally:
        cluster.destroy()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    result: dict[str, Any] = {"records": args.records, "rounds": args.rounds}
    for name, rounds in runs.items():
        result[name] = {key: round(statistics.median(r[key] for r in rounds), 1) for key in rounds[0]}
    print(f"per record, median of {args.rounds} rounds of {args.records}:")
    for name in runs:
        m = result[name]
        print(f"  {name:9s} append {m['append_us']:8.1f} µs   CPU {m['cpu_us']:8.1f} µs   stored after "
              f"{m['stored_wall_us']:8.1f} µs")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "audit.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
