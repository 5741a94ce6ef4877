"""``codemode mount`` / ``unmount`` edit a config file in place: one entry changes, the rest stays byte for byte."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codemode.config import load_config
from codemode.config_edit import add_server, remove_server, server_entry
from codemode.directory import DEFAULT_DIR, load_directory
from codemode.errors import ConfigError

USER = """{
    "mcpServers": {
        "notes":   {"command": "python3", "args": ["-m", "codemode.demo.notes"]},
        "remote": { "url": "https://example.com/mcp",
                    "headers": {"Authorization": "Bearer ${TOKEN}"} }
    },
    "codemode": {"wall_s": 10}
}
"""


def test_add_then_remove_leaves_the_rest_untouched(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(USER)
    name, entry = server_entry("memory", load_directory())
    assert (name, entry["type"], entry["command"]) == ("memory", "stdio", "npx")
    add_server(path, name, entry)
    text = path.read_text()
    assert text.startswith(USER.split('        "remote"')[0]) and '"Bearer ${TOKEN}"} }' in text
    config = load_config(path, environ={"TOKEN": "t"})
    assert list(config.servers) == ["notes", "remote", "memory"] and config.settings.wall_s == 10
    remove_server(path, "memory")
    assert path.read_text() == USER
    remove_server(path, "notes")
    assert '"notes"' not in path.read_text() and list(load_config(path, environ={"TOKEN": "t"}).servers) == ["remote"]
    remove_server(path, "remote")
    assert json.loads(path.read_text())["mcpServers"] == {}
    add_server(path, "api", {"type": "openapi", "spec": "http://127.0.0.1:1/openapi.json"})
    assert list(load_config(path).servers) == ["api"]
    assert [p.name for p in tmp_path.iterdir()] == ["mcp.json"], "no temporary file left behind"


def test_vscode_files_and_new_files(tmp_path: Path) -> None:
    vscode = tmp_path / "vs.json"
    vscode.write_text('{"servers": {}, "inputs": []}')
    add_server(vscode, "t", {"type": "http", "url": "https://x.example/mcp"})
    assert json.loads(vscode.read_text()) == {"servers": {"t": {"type": "http", "url": "https://x.example/mcp"}},
                                              "inputs": []}  # fmt: skip
    fresh = tmp_path / "new" / "mcp.json"
    add_server(fresh, "t", {"type": "http", "url": "https://x.example/mcp"})
    assert list(load_config(fresh).servers) == ["t"]


def test_refusals_leave_the_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(USER)
    with pytest.raises(ConfigError, match="already configured"):
        add_server(path, "notes", {"command": "x"})
    with pytest.raises(ConfigError, match="unknown key"):
        add_server(path, "bad", {"command": "x", "shell": True})
    with pytest.raises(ConfigError, match="no server named 'nope'"):
        remove_server(path, "nope")
    assert path.read_text() == USER
    with pytest.raises(ConfigError, match="not a directory entry"):
        server_entry("no-such-thing", load_directory())
    with pytest.raises(ConfigError, match="FILESYSTEM_ROOT"):
        server_entry("filesystem", load_directory())


def test_targets_urls_and_files(tmp_path: Path) -> None:
    directory = load_directory()
    assert server_entry("https://api.example.com/v1/openapi.json", directory) == (
        "api", {"type": "openapi", "spec": "https://api.example.com/v1/openapi.json"})  # fmt: skip
    assert server_entry("https://tools.example.com/mcp", directory) == (
        "tools", {"type": "http", "url": "https://tools.example.com/mcp"})  # fmt: skip
    name, entry = server_entry(str(DEFAULT_DIR / "specs" / "petstore.json"), directory)
    assert (name, entry["type"]) == ("petstore", "openapi")
    entry_file = tmp_path / "time.json"
    entry_file.write_text((DEFAULT_DIR / "time.json").read_text())
    name, entry = server_entry(str(entry_file), directory)
    assert name == "time" and entry["args"][-2:] == ["--local-timezone", "UTC"]


def test_cli_mount_and_unmount(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(USER)
    env = {**os.environ, "CODEMODE_STATE_DIR": str(tmp_path / "state")}
    run = [sys.executable, "-m", "codemode.cli"]
    added = subprocess.run([*run, "mount", "memory", "--config", str(path)], env=env, capture_output=True, text=True)
    assert added.returncode == 0 and "added server 'memory'" in added.stdout, added.stderr
    removed = subprocess.run([*run, "unmount", "memory", "--config", str(path)], env=env, capture_output=True,
                             text=True)  # fmt: skip
    assert removed.returncode == 0 and path.read_text() == USER
    missing = subprocess.run([*run, "unmount", "memory"], env=env, capture_output=True, text=True)
    assert missing.returncode == 2 and "pass --config FILE" in missing.stderr
