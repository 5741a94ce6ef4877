"""The ``codemode`` command line, run as a user would: real demo servers, the real WASM sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CODEMODE = [sys.executable, "-m", "codemode.cli"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "CODEMODE_STATE_DIR": str(tmp_path / "state")}


def codemode(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CODEMODE, *args], env=env, input=stdin, capture_output=True, text=True, timeout=300)


def test_help_on_every_command(env: dict[str, str]) -> None:
    for command in ("servers", "tools", "compile", "run", "serve", "demo", "bench", "history", "replay", "directory",
                    "mount", "unmount"):
        result = codemode(env, command, "--help")
        assert result.returncode == 0 and "usage: codemode " + command in result.stdout, command


def test_run_prints_output_and_exit_status(env: dict[str, str], tmp_path: Path) -> None:
    program = tmp_path / "prog.py"
    program.write_text("from stubs import notes\ntags = notes.list_tags()\nprint('tags:', len(tags))\nsorted(tags)[:2]")
    ok = codemode(env, "run", str(program))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("tags: ") and ok.stdout.strip().endswith("]")
    failed = codemode(env, "run", "-", stdin="def f():\n    return 1 / 0\nf()\n")
    assert failed.returncode == 1
    assert "ZeroDivisionError" in failed.stderr and 'File "<execution-1>", line 2, in f' in failed.stderr
    as_json = json.loads(codemode(env, "run", "-", "--json", stdin="21 * 2").stdout)
    assert as_json["ok"] is True and as_json["result"]["value"] == 42
    restricted = codemode(env, "run", "-", "--executor", "restricted", stdin="sorted([3, 1, 2])")
    assert restricted.returncode == 0 and restricted.stdout.strip() == "[1, 2, 3]"
    missing = codemode(env, "run", str(tmp_path / "nope.py"))
    assert missing.returncode == 2 and "nope.py: no such file" in missing.stderr


def test_history_and_replay(env: dict[str, str]) -> None:
    code = "from stubs import inventory\ninventory.check_stock(skus=['TOO-00000'])['levels'][0]['sku']"
    assert codemode(env, "run", "-", stdin=code).returncode == 0
    history = json.loads(codemode(env, "history", "--json").stdout)
    assert history and history[-1]["code"] == code and history[-1]["ok"] is True
    calls = history[-1]["calls"]
    assert [(c["server"], c["tool"]) for c in calls] == [("inventory", "check_stock")]
    table = codemode(env, "history").stdout
    assert history[-1]["id"] in table and "inventory" in table
    replay = codemode(env, "replay", history[-1]["id"][:8])
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "same tool calls and output as recorded" in replay.stdout
    unknown = codemode(env, "replay", "does-not-exist")
    assert unknown.returncode == 2 and "no single execution" in unknown.stderr


def test_servers_tools_compile_as_json(env: dict[str, str], tmp_path: Path) -> None:
    servers = json.loads(codemode(env, "servers", "--json").stdout)
    assert {(s["name"], s["state"]) for s in servers} == {("inventory", "ready"), ("notes", "ready")}
    tools = json.loads(codemode(env, "tools", "--server", "notes", "--json").stdout)
    assert {t["name"] for t in tools} >= {"search_notes", "get_note", "create_note", "list_tags"}
    report = json.loads(codemode(env, "compile", "--out", str(tmp_path / "stubs"), "--json").stdout)
    assert report["written"] and (tmp_path / "stubs" / "notes" / "get_note.py").is_file()
    again = json.loads(codemode(env, "compile", "--out", str(tmp_path / "stubs"), "--json").stdout)
    assert again["written"] == [] and again["deleted"] == []


def test_bad_config_is_a_clear_usage_error(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "mcp.json"
    bad.write_text('{\n  "mcpServers": {\n    "x": {"command": 42}\n  }\n}\n')
    result = codemode(env, "servers", "--config", str(bad))
    assert result.returncode == 2
    assert str(bad) in result.stderr and "mcpServers.x.command" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_error_naming_what_the_user_gave_reaches_the_terminal_escaped(env: dict[str, str]) -> None:
    # A path (or a server's error) with an escape sequence in it rewrote the terminal's title and screen.
    result = codemode(env, "servers", "--config", "/nonexistent/x\x1b]0;pwned\x07\x1b[2J.json")
    assert result.returncode == 2 and "config file not found" in result.stderr
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert "x\\x1b]0;pwned\\x07" in result.stderr  # still readable, escaped


def test_ignored_top_level_keys_are_reported_without_debug(env: dict[str, str], tmp_path: Path) -> None:
    # Shown only with --debug: a misspelt "codemode" block (its limits) was dropped in silence.
    config = tmp_path / "claude_desktop_config.json"
    config.write_text('{"mcpServers": {},\n "codmode": {"wall_s": 5},\n "globalShortcut": "Ctrl+Space"}\n')
    result = codemode(env, "servers", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert f"{config}:2: ignoring the top-level key 'codmode'" in result.stderr, result.stderr
    assert "did you mean 'codemode'?" in result.stderr
    assert f"{config}:3: ignoring the top-level key 'globalShortcut' (not a codemode setting)" in result.stderr


def test_demo_walks_the_whole_loop(env: dict[str, str]) -> None:
    result = codemode(env, "demo")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    out = result.stdout
    landmarks = [
        "stubs/inventory/check_stock.py",
        "def check_stock(*, skus: list[str])",
        "need restocking",
        "notes.search_notes",
        "inventory.check_stock",
        "direct tool calling:",
    ]
    for landmark in landmarks:
        assert landmark in out, landmark
    # The description it shows counts the shipped skills it then imports (it said 0).
    promoted = len(list((Path(__file__).parents[2] / "skills" / "live").glob("*.py")))
    assert promoted and f"Skills: {promoted} saved function(s)" in out, out
    direct = int(out.split("direct tool calling:")[1].split("tokens")[0].replace(",", ""))
    code_mode = int(out.split("code mode:")[1].split("tokens")[0].replace(",", ""))
    assert 0 < code_mode < direct


def test_one_exit_status_rule_is_documented_and_kept(env: dict[str, str]) -> None:
    for args in (("--help",), ("history", "--help"), ("run", "--help")):
        shown = codemode(env, *args).stdout
        assert "exit status (every command):" in shown and "2    usage or configuration error" in shown, args
    # Options a command cannot honour are refused, not ignored: a usage error.
    demo = codemode(env, "demo", "--config", "mcp.json")
    assert demo.returncode == 2 and "unrecognized arguments: --config" in demo.stderr
    negative = codemode(env, "history", "-n", "-1")
    assert negative.returncode == 2 and "must be 0 (all) or more" in negative.stderr


def test_history_n_counts_and_zero_means_all(env: dict[str, str]) -> None:
    for value in ("1", "2", "3"):
        assert codemode(env, "run", "-", stdin=value).returncode == 0
    assert [e["code"] for e in json.loads(codemode(env, "history", "-n", "2", "--json").stdout)] == ["2", "3"]
    assert [e["code"] for e in json.loads(codemode(env, "history", "-n", "0", "--json").stdout)] == ["1", "2", "3"]


def test_history_config_matches_the_file_however_named_and_counts_its_own(env: dict[str, str], tmp_path: Path) -> None:
    # `--config cfg.json` from its folder and `--config /abs/cfg.json` found nothing of each other's, and
    # `-n 1` took the last entry of every config before keeping this one's (none, after another config ran).
    config = tmp_path / "cfg.json"
    config.write_text('{"mcpServers": {}}')
    here = {"env": env, "capture_output": True, "text": True, "timeout": 300, "cwd": tmp_path}
    for value in ("1", "2"):
        assert subprocess.run([*CODEMODE, "run", "--config", "cfg.json", "-"], input=value, **here).returncode == 0
    assert codemode(env, "run", "-", stdin="3").returncode == 0  # the demo config's
    listed = codemode(env, "history", "--config", str(config), "-n", "1", "--json")
    assert [e["code"] for e in json.loads(listed.stdout)] == ["2"], listed.stdout
    both = subprocess.run([*CODEMODE, "history", "--config", "./cfg.json", "--json"], **here)
    assert [e["code"] for e in json.loads(both.stdout)] == ["1", "2"], both.stdout


def test_a_server_description_in_the_config_is_what_the_model_reads(env: dict[str, str], tmp_path: Path) -> None:
    described = "The team's meeting notes, newest first"
    servers = {
        name: {"command": sys.executable, "args": ["-m", f"codemode.demo.{name}"], "start_timeout_s": 60}
        for name in ("inventory", "notes")
    }
    servers["notes"]["description"] = described
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": servers}))
    code = "{s['server']: s['summary'] for s in list_servers()}"
    result = codemode(env, "run", "-", "--config", str(config), "--json", stdin=code)
    summaries = json.loads(result.stdout)["result"]["value"]
    assert summaries["notes"] == described, summaries
    assert summaries["inventory"] and summaries["inventory"] != described  # the server's own instructions


def test_replay_shows_the_difference_and_fails(env: dict[str, str]) -> None:
    code = "import time\nprint(time.time_ns())"  # a different line every run
    assert codemode(env, "run", "-", stdin=code).returncode == 0
    recorded = json.loads(codemode(env, "history", "--json").stdout)[-1]
    replay = codemode(env, "replay", recorded["id"])
    assert replay.returncode == 1, replay.stdout + replay.stderr
    lines = replay.stdout.splitlines()
    assert f"--- recorded {recorded['id']}" in lines
    assert f"-{recorded['output'].strip()}" in lines
    added = [line for line in lines if line.startswith("+") and not line.startswith("+++")]
    assert len(added) == 1 and added[0][1:].isdigit() and added[0][1:] != recorded["output"].strip()


def test_memory_mb_and_audit_log_are_read_from_the_config_file(env: dict[str, str], tmp_path: Path) -> None:
    audit = tmp_path / "elsewhere" / "audit.jsonl"
    config = tmp_path / "codemode.json"
    config.write_text(json.dumps({"mcpServers": {}, "codemode": {"memory_mb": 48, "audit_log": str(audit)}}))
    fits = codemode(env, "run", "--config", str(config), "-", stdin="len(bytearray(16 * 2**20))")
    assert fits.returncode == 0 and fits.stdout.strip() == str(16 * 2**20), fits.stderr
    # 64 MB fits the default 256 MB limit; under the file's 48 MB the interpreter's own allocator refuses it.
    over = codemode(env, "run", "--config", str(config), "-", stdin="len(bytearray(64 * 2**20))")
    assert over.returncode == 1 and over.stderr.rstrip().endswith("MemoryError"), over.stderr
    entries = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [e["ok"] for e in entries] == [True, False]
    assert [e["id"] for e in entries] == [e["id"] for e in json.loads(
        codemode(env, "history", "--config", str(config), "--json").stdout)]
    assert not (tmp_path / "state" / "audit.jsonl").exists()  # not the default place
