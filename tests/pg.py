"""A throwaway PostgreSQL cluster for tests: initdb + pg_ctl in a temp dir on a free loopback port.

PostgreSQL refuses to run as root, so under root the cluster runs as the ``postgres`` (else ``nobody``) user.
Password authentication over TCP is on, so URLs carry a real password (the redaction tests need one).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from urllib.parse import quote

PASSWORD = "s3cr:et@/pw%Zq"
"""Awkward on purpose: it must be quoted in a URL, so the raw and quoted forms both get tested."""
USER = "codemode"


def pg_bin() -> Path | None:
    """The folder of PostgreSQL's server binaries (Debian keeps them off PATH), or None."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        return Path(candidate).parent
    return None


class PgCluster:
    """One cluster; :meth:`stop` and :meth:`start` it again to make the database go away and come back."""

    def __init__(self, port: int) -> None:
        bindir = pg_bin()
        assert bindir is not None
        self.bin = bindir
        self.port = port
        self.base = Path(tempfile.mkdtemp(prefix="codemode-pg-"))
        self.data = self.base / "data"
        self.run_dir = self.base / "run"
        self.log = self.base / "postgres.log"
        self._as: list[str] = []
        if os.geteuid() == 0:
            name = "postgres" if _user_exists("postgres") else "nobody"
            self._as = ["runuser", "-u", name, "--"]
            os.chmod(self.base, 0o755)
            entry = pwd.getpwnam(name)
            for folder in (self.data, self.run_dir):
                folder.mkdir(mode=0o700)
                os.chown(folder, entry.pw_uid, entry.pw_gid)
            self.log.touch()
            os.chown(self.log, entry.pw_uid, entry.pw_gid)
            pwfile = self.run_dir / "pw"
            pwfile.write_text(PASSWORD + "\n")
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        else:
            self.run_dir.mkdir()
            pwfile = self.run_dir / "pw"
            pwfile.write_text(PASSWORD + "\n")
        self._run("initdb", "-D", str(self.data), "-U", USER, f"--pwfile={pwfile}", "--auth-local=trust",
                  "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8", "--locale=C")  # fmt: skip
        pwfile.unlink()

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self._as, str(self.bin / tool), *args], check=True, capture_output=True, cwd=self.base)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.run_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")

    def stop(self) -> None:
        """Stop at once (``immediate``: as if the machine lost the database)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")  # a generated identifier
        return self.url(name)

    def destroy(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.base, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
