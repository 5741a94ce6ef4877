"""``codemode policy explain`` as a user runs it: the real bundled demo server is started to read the tool."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.integration.test_cli import codemode, env  # noqa: F401  (env is a fixture)


def _config(tmp_path: Path) -> Path:
    cfg = {
        "mcpServers": {
            "inventory": {"command": sys.executable, "args": ["-m", "codemode.demo.inventory"],
                          "autoApprove": ["check_stock"]},
        },
        "codemode": {"policy": {"rules": {"inventory.*": "ask", "*.delete_*": "deny", "inventory.get_*": "allow"}}},
    }  # fmt: skip
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps(cfg))
    return path


def test_explain_names_the_decision_and_the_rule(env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    config = str(_config(tmp_path))
    found = codemode(env, "policy", "explain", "inventory.get_order", "--config", config, "--json")
    assert found.returncode == 0, found.stderr
    data = json.loads(found.stdout)
    assert {k: data[k] for k in ("tool", "decision", "rule", "lookup")} == {
        "tool": "inventory.get_order", "decision": "allow", "rule": "rules['inventory.get_*'] = 'allow'",
        "lookup": "found",
    }  # fmt: skip
    approved = codemode(env, "policy", "explain", "inventory.check_stock", "--config", config, "--offline")
    assert approved.stdout.splitlines()[:2] == [
        "inventory.check_stock: allow", "  rule: mcpServers['inventory'].autoApprove contains 'check_stock'"
    ]  # fmt: skip
    missing = codemode(env, "policy", "explain", "inventory.nope", "--config", config, "--json")
    assert json.loads(missing.stdout)["decision"] == "ask"
    assert json.loads(missing.stdout)["lookup"] == "the server has no such tool"
    bad = codemode(env, "policy", "explain", "nodot", "--config", config)
    assert bad.returncode == 2 and "give the tool as server.tool" in bad.stderr
