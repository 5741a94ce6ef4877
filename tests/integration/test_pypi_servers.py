"""Programs in the sandbox calling third-party PyPI servers (their own venvs, ``mcp<2``, older protocol)."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from codemode.audit import AuditLog
from codemode.config import parse_config
from codemode.engine import Engine
from tests.conftest import REPO

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
VENVS = REPO / ".venv-servers"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    (path / "README.md").write_text("hello\n")
    subprocess.run(["git", "-C", str(path), "add", "README.md"], check=True)
    return path


async def test_time_and_git_servers_from_the_sandbox(tmp_path: Path, repo: Path) -> None:
    servers = {
        "time": {"command": str(VENVS / "time" / "bin" / "mcp-server-time"), "args": ["--local-timezone", "UTC"]},
        "git": {"command": str(VENVS / "git" / "bin" / "mcp-server-git"), "args": ["--repository", str(repo)]},
    }
    config = parse_config(json.dumps({"mcpServers": servers}))
    async with Engine(config, stubs_dir=tmp_path / "stubs", skills_dir=tmp_path / "skills",
                      audit=AuditLog(tmp_path / "audit.jsonl")) as engine:  # fmt: skip
        assert engine.hub is not None
        assert {s.name: s.state for s in engine.hub.status()} == {"time": "ready", "git": "ready"}
        program = (
            "from stubs import git, time as clock\n"
            "now = clock.get_current_time(timezone='UTC')\n"
            f"status = git.git_status(repo_path={str(repo)!r})\n"
            "[now, 'README.md' in str(status)]"
        )
        outcome = await engine.execute(program, session="pypi")
        assert not outcome.is_error, outcome.text
        result = outcome.result
        assert result is not None and result.value[1] is True
        now = result.value[0]
        assert isinstance(now, dict) and now["timezone"] == "UTC", now
        assert datetime.fromisoformat(now["datetime"]).utcoffset() == timedelta(0), now
        assert [(c.server, c.tool, c.ok) for c in result.calls] == [
            ("time", "get_current_time", True),
            ("git", "git_status", True),
        ]
