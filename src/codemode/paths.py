"""Where codemode keeps things on disk: state, compiled stubs, skills, and the guest runtime."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from codemode.config import Config

_SRC_ROOT = Path(__file__).resolve().parents[2]
"""The checkout root when running from source (``src/codemode/paths.py`` → root)."""


def state_dir() -> Path:
    """Per-user state: ``$CODEMODE_STATE_DIR``, default ``~/.cache/codemode``."""
    env = os.environ.get("CODEMODE_STATE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "codemode"


def cache_dir() -> Path:
    """Machine-wide caches shared by every state dir (the compiled WASM module): ``$CODEMODE_CACHE_DIR``,
    default ``~/.cache/codemode``."""
    env = os.environ.get("CODEMODE_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "codemode"


def source_checkout() -> Path | None:
    """The repository root when codemode runs from a source checkout, else None."""
    root = _SRC_ROOT
    return root if (root / "pyproject.toml").is_file() and (root / "sandbox").is_dir() else None


def runtime_dir() -> Path:
    """The directory that holds the guest package ``codemode_runtime`` (mounted read-only in the sandbox)."""
    checkout = source_checkout()
    if checkout is not None:
        return checkout / "sandbox"
    return Path(__file__).resolve().parent / "_guest"


def load_guest_module(name: str, alias: str) -> ModuleType:
    """A private host-side copy of ``codemode_runtime/<name>.py`` (stdlib only), registered as nothing.

    The host reuses guest code instead of restating it: the frame format, the discovery helpers.
    """
    path = runtime_dir() / "codemode_runtime" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(alias, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def config_key(config: Config) -> str:
    """A short stable key for a configuration, so different configs never share compiled stubs."""
    payload = config.model_dump_json(exclude={"source"})
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def stubs_dir_for(config: Config) -> Path:
    """Where the stubs of ``config`` are compiled: the setting, else a per-config state directory."""
    if config.settings.stubs_dir:
        return Path(config.settings.stubs_dir).expanduser()
    return state_dir() / "configs" / config_key(config) / "stubs"


def skills_dir_for(config: Config) -> Path:
    """The skill store of ``config``: the setting, else the checkout's ``skills/``, else a state directory."""
    if config.settings.skills_dir:
        return Path(config.settings.skills_dir).expanduser()
    checkout = source_checkout()
    if checkout is not None and config.source == "<embedded demo>":
        return checkout / "skills"
    return state_dir() / "configs" / config_key(config) / "skills"


def scratch_root() -> Path:
    """Parent of the per-session scratch directories."""
    return state_dir() / "scratch"


def log_dir() -> Path:
    """Where upstream servers' stderr is written, one file per server."""
    return state_dir() / "logs"
