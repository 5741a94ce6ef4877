"""Peers measured from their real packages: FastMCP's code mode and Cloudflare's codemode, at pinned versions.

Each peer runs in its own process (FastMCP in the interpreter that has the ``peers`` extra, Cloudflare's in
Node), is given the captured catalogs, and returns what it would put in a model's context; the token
benchmark counts it with the same tokenizer as everything else. A peer that is not installed (or not at its
pinned version) is reported as such and its column is skipped: nothing is estimated in its place.

Where they are looked for:

* FastMCP: ``$CODEMODE_PEERS_PYTHON``, else ``.venv-servers/peers/bin/python``, else this interpreter; it
  must import ``fastmcp`` at :data:`FASTMCP_VERSION` (``pip install -e '.[peers]'`` pins it).
* Cloudflare: ``$CODEMODE_PEERS_NODE_MODULES``, else ``.venv-servers/peers/node_modules``; it must hold
  ``@cloudflare/codemode`` at :data:`CLOUDFLARE_VERSION` (``scripts/setup`` installs it there), and ``node``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
PEERS_DIR = ROOT / ".venv-servers" / "peers"
FASTMCP_VERSION = "4.1.6"
CLOUDFLARE_PACKAGE = "@cloudflare/codemode"
CLOUDFLARE_VERSION = "0.5.6"
TIMEOUT_S = 600


@dataclass
class PeerRun:
    """One peer's output for a set of catalogs, or why there is none."""

    name: str
    version: str | None = None
    catalogs: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    """Why the peer was not measured (not installed, another version, it failed)."""


def fastmcp_python() -> str:
    """The interpreter to run FastMCP's helper with."""
    chosen = os.environ.get("CODEMODE_PEERS_PYTHON")
    if chosen:
        return chosen
    venv = PEERS_DIR / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def cloudflare_dir() -> Path:
    """Where ``@cloudflare/codemode`` is looked for."""
    modules = os.environ.get("CODEMODE_PEERS_NODE_MODULES")
    return (Path(modules) if modules else PEERS_DIR / "node_modules") / CLOUDFLARE_PACKAGE


def _run(name: str, command: list[str], catalogs: dict[str, list[dict[str, Any]]], pinned: str) -> PeerRun:
    try:
        proc = subprocess.run(
            command, input=json.dumps(catalogs), capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return PeerRun(name, skipped=f"could not run: {exc}")
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no error output"]
        if "ModuleNotFoundError" in proc.stderr and "fastmcp" in proc.stderr:
            return PeerRun(name, skipped=f"not installed ({command[0]} has no fastmcp; pip install -e '.[peers]')")
        return PeerRun(name, skipped=f"failed: {tail[0]}")
    data = json.loads(proc.stdout)
    version = str(data["version"])
    if version != pinned:
        return PeerRun(name, version, skipped=f"installed {version}, but the benchmark is pinned to {pinned}")
    return PeerRun(name, version, data["catalogs"])


def fastmcp(catalogs: dict[str, list[dict[str, Any]]]) -> PeerRun:
    """FastMCP's code mode: its tool definitions, and ``get_schema`` of each tool alone, per catalog."""
    command = [fastmcp_python(), str(HERE / "fastmcp_peer.py")]
    return _run("fastmcp", command, catalogs, FASTMCP_VERSION)


def cloudflare(catalogs: dict[str, list[dict[str, Any]]]) -> PeerRun:
    """Cloudflare's codemode: its one code tool (TypeScript declarations of every tool inside), per catalog."""
    package = cloudflare_dir()
    node = shutil.which("node")
    if node is None:
        return PeerRun("cloudflare", skipped="not installed (no node on PATH)")
    if not (package / "package.json").exists():
        missing = f"not installed ({package} is missing; bash scripts/setup --peers installs it)"
        return PeerRun("cloudflare", skipped=missing)
    return _run("cloudflare", [node, str(HERE / "cloudflare_peer.mjs"), str(package)], catalogs, CLOUDFLARE_VERSION)
