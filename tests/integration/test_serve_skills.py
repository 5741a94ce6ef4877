"""Skills end to end: two ``codemode serve`` clients (the SDK client over stdio) and the review CLI between them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import pytest

import codemode
from tests.integration.test_serve import CODEMODE, _env, _text, serve_stdio
from tests.integration.test_skills import LOW

pytestmark = pytest.mark.anyio

SHIPPED = Path(__file__).resolve().parents[2] / "skills"
"""The example skills of this checkout (tests work on a copy)."""


def _config(tmp: Path) -> Path:
    src = str(Path(codemode.__file__).resolve().parents[1])
    servers = {
        name: {"command": sys.executable, "args": ["-m", f"codemode.demo.{name}"], "env": {"PYTHONPATH": src}}
        for name in ("inventory", "notes")
    }
    path = tmp / "codemode.json"
    path.write_text(json.dumps({"mcpServers": servers, "codemode": {"skills_dir": str(tmp / "skills")}}))
    return path


async def test_save_review_promote_use(tmp_path: Path) -> None:
    config = _config(tmp_path)
    async with serve_stdio(tmp_path, "--config", str(config)) as alice, serve_stdio(
        tmp_path, "--config", str(config)
    ) as bob:
        tools = await alice.list_tools()
        description = tools.tools[0].description or ""
        assert "Skills: 0 saved function(s)" in description and "save_skill(" in description
        await alice.call_tool("execute_python", {"code": LOW})
        saved = await alice.call_tool(
            "execute_python", {"code": 'save_skill(low_stock, example="low_stock(threshold=2)")'}
        )
        assert json.loads(_text(saved)) == {"name": "low_stock", "state": "draft", "version": 1, "tested": "passed"}
        use = {"code": "from skills import low_stock\nlow_stock(threshold=1)[:2]"}
        mine = await alice.call_tool("execute_python", use)
        assert not mine.is_error, _text(mine)
        refused = await bob.call_tool("execute_python", use)
        assert refused.is_error and "no skill named 'low_stock'" in _text(refused)

        listed = await anyio.run_process(
            [*CODEMODE, "skills", "list", "--json", "--config", str(config)],
            env=_env(tmp_path), check=True,
        )  # fmt: skip
        rows = json.loads(listed.stdout.decode())["skills"]
        assert [(r["name"], r["state"], r["last_test"]["ok"]) for r in rows] == [("low_stock", "draft", True)]
        await anyio.run_process(
            [*CODEMODE, "skills", "promote", "low_stock", "--config", str(config)],
            env=_env(tmp_path), check=True,
        )  # fmt: skip

        used = await bob.call_tool("execute_python", use)
        assert not used.is_error, _text(used)
        assert _text(used) == _text(mine)
        found = await bob.call_tool("execute_python", {"code": "[s['server'] for s in list_servers()]"})
        assert "skills" in json.loads(_text(found))

    history = await anyio.run_process(
        [*CODEMODE, "history", "--json", "-n", "50", "--config", str(config)],
        env=_env(tmp_path), check=True,
    )  # fmt: skip
    actions = [e["code"] for e in json.loads(history.stdout.decode()) if e.get("executor") == "skills"]
    assert "skills save low_stock" in actions and "skills promote low_stock" in actions


async def test_shipped_examples_pass_skills_test(tmp_path: Path) -> None:
    import shutil

    config = _config(tmp_path)
    shutil.copytree(SHIPPED, tmp_path / "skills")
    tested = await anyio.run_process(
        [*CODEMODE, "skills", "test", "--config", str(config)], env=_env(tmp_path), check=False
    )
    out = tested.stdout.decode()
    assert tested.returncode == 0, out + tested.stderr.decode()
    assert "low_stock_report v1: ok" in out and "urgent_notes v1: ok" in out
    shown = await anyio.run_process([*CODEMODE, "skills", "show", "urgent_notes", "--config", str(config)],
                                    env=_env(tmp_path), check=True)  # fmt: skip
    assert shown.stdout.decode().startswith("# version: 1\n")
    listed = await anyio.run_process([*CODEMODE, "skills", "list", "--config", str(config)],
                                     env=_env(tmp_path), check=True)  # fmt: skip
    assert "low_stock_report  promoted  v1" in listed.stdout.decode()
    refused = await anyio.run_process([*CODEMODE, "skills", "rollback", "urgent_notes", "--config", str(config)],
                                      env=_env(tmp_path), check=False)  # fmt: skip
    assert refused.returncode != 0 and "no earlier version" in refused.stderr.decode()
