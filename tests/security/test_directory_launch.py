"""A directory entry's PyPI package becomes a command line: only the package's own console script runs.

The launcher looked the identifier up in every server venv (any program there: its ``python``) and then on
``PATH``, so an entry naming ``sh`` or ``python`` with a ``-c`` argument and a program's mount parameter
after it was ``sh -c '<the program's text>'`` on the host. Each test fails with its check removed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from codemode.config import StdioServer
from codemode.directory import MountError, load_directory, server_config
from codemode.directory.models import Entry
from tests.conftest import REPO


def entry(identifier: str) -> Entry:
    """A PyPI entry whose package arguments are ``-c`` and then the program's ``script`` parameter."""
    return Entry.model_validate({
        "name": "io.example/evil",
        "packages": [{
            "registryType": "pypi", "identifier": identifier, "version": "1.0.0",
            "packageArguments": [
                {"type": "positional", "value": "-c"}, {"type": "positional", "valueHint": "script"},
            ],
        }],
    })  # fmt: skip


@pytest.mark.parametrize("identifier", ["sh", "bash", "python", "python3", "perl", "env", "cat", "ls"])
def test_an_interpreter_or_system_program_is_refused(identifier: str) -> None:
    with pytest.raises(MountError, match=f"identifier '{identifier}' names an interpreter or a system program"):
        server_config(entry(identifier), {"script": "touch /tmp/pwned"}, environ={})


def fake_venv(root: Path, name: str, script: str, declared_by: str | None) -> Path:
    """A venv with an executable ``bin/<script>``, declared as a console script by ``declared_by`` (or none)."""
    bin_dir = root / name / "bin"
    bin_dir.mkdir(parents=True)
    program = bin_dir / script
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    if declared_by is not None:
        info = root / name / "lib" / "python3.11" / "site-packages" / f"{declared_by.replace('-', '_')}-1.0.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {declared_by}\nVersion: 1.0.0\n")
        (info / "entry_points.txt").write_text(f"[console_scripts]\n{script} = {declared_by.replace('-', '_')}:main\n")
    return program


def test_only_a_script_its_own_package_declares_runs_from_a_venv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venvs = tmp_path / "venvs"
    stray = fake_venv(venvs, "tools", "mcp-helper", declared_by=None)  # in a venv, but no package declares it
    other = fake_venv(venvs, "other", "mcp-other", declared_by="something-else")  # another package's script
    own = fake_venv(venvs, "mine", "mcp-mine", declared_by="mcp-mine")
    monkeypatch.setenv("CODEMODE_SERVER_VENVS", str(venvs))
    for identifier, program in (("mcp-helper", stray), ("mcp-other", other)):
        config = server_config(entry(identifier), {"script": "x"}, environ={})
        assert isinstance(config, StdioServer)
        assert config.command == "uvx", (program, config.command)
        assert config.args[0] == f"{identifier}==1.0.0"
    config = server_config(entry("mcp-mine"), {"script": "x"}, environ={})
    assert isinstance(config, StdioServer) and config.command == str(own) and config.args == ["-c", "x"]


def test_no_path_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A program of that name on PATH (not a system one) is not the package: uvx fetches the pinned package.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mcp-planted").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "mcp-planted").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("CODEMODE_SERVER_VENVS", str(tmp_path / "none"))
    config = server_config(entry("mcp-planted"), {"script": "x"}, environ={})
    assert isinstance(config, StdioServer)
    assert config.command == "uvx", config.command


def test_the_shipped_pypi_servers_still_run_from_their_venvs() -> None:
    git = REPO / ".venv-servers" / "git" / "bin" / "mcp-server-git"
    if not git.is_file():
        pytest.skip("scripts/setup has not installed .venv-servers")
    config = server_config(load_directory().entries["git"].entry, {}, environ={"GIT_REPOSITORY": "/srv/repo"})
    assert isinstance(config, StdioServer) and config.command == str(git), json.dumps(config.model_dump())
