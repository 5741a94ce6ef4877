"""The one rule for session names: they become directory names under the scratch root.

The front derives names from clients (``named-<what the model asked for>``, ``http-<hash>``), the engine
makes any string safe with :func:`safe_session_name`, and the executors refuse anything else with
:func:`check_session_name` before touching the disk.
"""

from __future__ import annotations

import re

_VALID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def safe_session_name(requested: str) -> str:
    """``requested`` made valid: other characters become ``_``, leading dots go, at most 128 characters."""
    name = _UNSAFE.sub("_", requested).lstrip(".")[:128]
    return name or "default"


def check_session_name(session: str) -> None:
    """Raise ``ValueError`` unless ``session`` is a valid name (no separators, no leading dot)."""
    if not _VALID.fullmatch(session):
        raise ValueError(f"invalid session name {session!r}: use letters, digits, '_', '.', '-' (max 128)")
