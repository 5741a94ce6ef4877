"""The directory of services: the shipped entries, search, parameters, and the CLI over them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codemode.config import StdioServer
from codemode.directory import DEFAULT_DIR, MountError, load_directory, server_config
from codemode.directory.policy import mount_allowed, refusal

SHIPPED = {"everything", "filesystem", "git", "memory", "time"}


def test_the_shipped_directory_loads_whole() -> None:
    directory = load_directory()
    assert directory.rejected == []
    assert SHIPPED <= set(directory.entries)
    memory = directory.get("memory")
    assert memory is not None and directory.get("io.github.modelcontextprotocol/server-memory") is memory


def test_search_matches_every_word() -> None:
    directory = load_directory()
    assert [e.entry.short_name for e in directory.search("knowledge graph")] == ["memory"]
    assert directory.search("no such service anywhere") == []


def test_shipped_entries_are_pinned_npm_and_pypi_commands() -> None:
    directory = load_directory()
    memory = server_config(directory.entries["memory"].entry, {}, environ={})
    assert isinstance(memory, StdioServer)
    assert memory.command == "npx" and memory.args == ["-y", "@modelcontextprotocol/server-memory@2026.8.31"]
    pinned = (Path(__file__).parents[2] / "scripts" / "npm-servers.txt").read_text()
    for name in ("memory", "everything", "filesystem"):
        package = directory.entries[name].entry.packages[0]
        assert f"{package.identifier}@{package.version}" in pinned
    time = server_config(directory.entries["time"].entry, {"local_timezone": "Europe/Paris"}, environ={})
    assert isinstance(time, StdioServer) and time.args[-2:] == ["--local-timezone", "Europe/Paris"]


def test_host_values_come_from_the_host_only() -> None:
    fs = load_directory().entries["filesystem"].entry
    with pytest.raises(MountError, match=r"FILESYSTEM_ROOT.*host's environment"):
        server_config(fs, {}, environ={})
    config = server_config(fs, {}, environ={"FILESYSTEM_ROOT": "/srv/docs"})
    assert isinstance(config, StdioServer) and config.args[-1] == "/srv/docs"
    with pytest.raises(MountError, match="set by the host"):
        server_config(fs, {"FILESYSTEM_ROOT": "/"}, environ={"FILESYSTEM_ROOT": "/srv/docs"})


def test_parameters_are_checked() -> None:
    time = load_directory().entries["time"].entry
    with pytest.raises(MountError, match="takes no parameter 'shell'"):
        server_config(time, {"shell": "x"}, environ={})
    with pytest.raises(MountError, match="metacharacters or starts with '-'"):
        server_config(time, {"local_timezone": "--help"}, environ={})
    with pytest.raises(MountError, match="must be a string"):
        server_config(time, {"local_timezone": ["UTC"]}, environ={})


def test_mount_policy_globs() -> None:
    assert not mount_allowed("memory", "io.github.x/server-memory", [])
    assert mount_allowed("memory", "io.github.x/server-memory", ["*memory*"])
    assert mount_allowed("memory", "io.github.x/server-memory", ["io.github.x/*"])
    assert not mount_allowed("git", "io.github.x/mcp-server-git", ["*memory*"])
    assert '"mount"' in refusal("git")


def test_cli_directory_list_and_search(tmp_path: Path) -> None:
    env = {**os.environ, "CODEMODE_STATE_DIR": str(tmp_path / "state")}
    run = [sys.executable, "-m", "codemode.cli", "directory"]
    listed = subprocess.run([*run, "list"], env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and all(name in listed.stdout for name in SHIPPED), listed.stderr
    found = subprocess.run([*run, "search", "memory", "--json"], env=env, capture_output=True, text=True, timeout=60)
    data = json.loads(found.stdout)
    assert [e["name"] for e in data["entries"]] == ["memory"] and data["rejected"] == []
    missing = subprocess.run([*run, "search", "zzzz"], env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "no directory entry matches" in missing.stdout


def test_cli_reports_a_rejected_entry_and_lists_the_rest(tmp_path: Path) -> None:
    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / "good.json").write_text((DEFAULT_DIR / "memory.json").read_text())
    (folder / "bad.json").write_text('{"name": "x/y", "packages": [{"registryType": "docker"}]}')
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"mcpServers": {}, "codemode": {"directory": ["dir"], "mount": ["mem*"]}}))
    env = {**os.environ, "CODEMODE_STATE_DIR": str(tmp_path / "state")}
    result = subprocess.run(
        [sys.executable, "-m", "codemode.cli", "directory", "list", "--config", str(config)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0
    assert "memory" in result.stdout and "allowed" in result.stdout
    assert "bad.json" in result.stderr and "registryType" in result.stderr


def test_remote_entries_take_their_secret_headers_from_the_host(tmp_path: Path) -> None:
    remote = {
        "name": "io.example/server-remote",
        "remotes": [{"type": "streamable-http", "url": "https://mcp.example.com/mcp",
                     "headers": [{"name": "Authorization", "value": "Bearer {EXAMPLE_TOKEN}", "isSecret": True}]}],
    }  # fmt: skip
    (tmp_path / "remote.json").write_text(json.dumps(remote))
    directory = load_directory([tmp_path])
    entry = directory.entries["remote"].entry
    assert entry.secrets() == ["EXAMPLE_TOKEN"] and entry.params() == []
    with_token = server_config(entry, {}, environ={"EXAMPLE_TOKEN": "t0k"})
    assert with_token.type == "http" and with_token.headers == {"Authorization": "Bearer t0k"}  # type: ignore[union-attr]
    assert server_config(entry, {}, environ={}).headers == {}  # type: ignore[union-attr]
    with pytest.raises(MountError, match="'EXAMPLE_TOKEN' is set by the host"):
        server_config(entry, {"EXAMPLE_TOKEN": "mine"}, environ={})


def test_the_tool_description_mentions_mounting_only_when_allowed() -> None:
    from codemode.config import Settings
    from codemode.front import tool_description

    index = {"servers": []}
    assert "mount(" not in tool_description(index, Settings())
    assert "search_directory('query')" in tool_description(index, Settings(mount=["*memory*"]))
