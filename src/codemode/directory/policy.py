"""Which directory entries a program may mount: the config's ``codemode.mount`` globs (default: none)."""

from __future__ import annotations

from fnmatch import fnmatchcase


def mount_allowed(short: str, full: str, patterns: list[str]) -> bool:
    """Whether an entry (by its short or full registry name) matches one of ``patterns``."""
    return any(fnmatchcase(short, p) or fnmatchcase(full, p) for p in patterns)


def refusal(short: str) -> str:
    """The refusal message: it names the setting that would allow the mount."""
    return (
        f'mounting {short!r} is not allowed: add {short!r} (or a pattern such as "*{short}*") to the '
        '"codemode": {"mount": [...]} setting of the config file'
    )
