"""Attack: the audit database's password leaking into an error or a log line.

The URL in ``codemode.audit_url`` carries a password; libpq echoes parts of a malformed URL (even all of it)
in its errors. Every message codemode makes of it goes through :func:`codemode.audit_pg.scrub`.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from codemode.audit import ExecutionEntry
from codemode.audit_pg import PostgresAudit
from codemode.errors import ConfigError
from tests.pg import PASSWORD, PgCluster

SECRET = "Hunter2-top-secret"
HOSTILE_URLS = [
    f"postgresql://codemode:{SECRET}@[::1/postgres",  # libpq quotes this whole URL back
    f"postgresql://codemode:{SECRET}%20x@127.0.0.1:1/postgres",  # ... and this password (decoded)
    f"postgresql://codemode:{SECRET}@127.0.0.1:1/postgres",  # nothing listens
    f"postgresql://codemode@127.0.0.1:1/postgres?password={SECRET}",
]


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_open_errors_never_show_the_password(url: str, tmp_path: Path) -> None:
    audit = PostgresAudit(url, spool=tmp_path / "spool", connect_timeout_s=2)
    with pytest.raises(ConfigError) as raised:
        audit.open()
    assert "audit database" in str(raised.value)
    assert SECRET not in str(raised.value) and SECRET not in audit.where


def test_a_wrong_password_is_not_shown(tmp_path: Path, pg_cluster: PgCluster) -> None:
    url = pg_cluster.url().replace(quote(PASSWORD, safe=""), SECRET)
    assert SECRET in url
    with pytest.raises(ConfigError) as raised:
        PostgresAudit(url, spool=tmp_path / "spool").open()
    assert "password authentication failed" in str(raised.value) and SECRET not in str(raised.value)


def test_the_outage_log_line_never_shows_the_password(
    tmp_path: Path, own_pg_cluster: PgCluster, caplog: pytest.LogCaptureFixture
) -> None:
    url = own_pg_cluster.url()
    audit = PostgresAudit(url, spool=tmp_path / "spool", writer=False)
    audit.open()
    own_pg_cluster.stop()
    caplog.set_level(logging.INFO)
    audit.append(ExecutionEntry(session="s", code="1", executor="wasm", ok=True, duration_s=0.0, output_chars=0))
    assert audit.flush() == 1  # kept, not dropped
    assert "audit database postgresql://codemode@127.0.0.1" in caplog.text
    assert PASSWORD not in caplog.text and url not in caplog.text
    assert "s3cr%3Aet" not in caplog.text


def test_serve_refusing_to_start_does_not_show_the_password(tmp_path: Path) -> None:
    url = HOSTILE_URLS[0]
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"mcpServers": {}, "codemode": {"audit_url": url}}))
    env = {**os.environ, "CODEMODE_STATE_DIR": str(tmp_path / "state")}
    served = subprocess.run([sys.executable, "-m", "codemode.cli", "serve", "--config", str(config)], input="",
                            capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert served.returncode != 0 and "audit database" in served.stderr, served.stderr
    assert SECRET not in served.stderr + served.stdout
