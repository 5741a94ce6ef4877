"""Writing files so that a reader never sees half of one: every file codemode writes goes through here."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from codemode.executors.scratch import remove_tree


def write_atomic(path: Path, data: bytes | str, *, keep_mode: bool = False) -> None:
    """Write ``data`` (text is UTF-8) to ``path`` through a temporary file beside it and ``os.replace``.

    A crash or a failed write leaves the old file (or none) and no temporary file behind. ``keep_mode``
    gives the new file the permission bits of the one it replaces (a config file a person made private).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        if keep_mode and path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def remove_orphans(base: Path, prefix: str = "") -> None:
    """Remove the directories ``base/{prefix}{pid}-…`` (owned by this user) of processes that are gone.

    A process killed by a signal never runs its cleanup; per-process work directories are named by pid so
    the next process can remove them."""
    for old in base.glob(f"{prefix}*"):
        pid = old.name.removeprefix(prefix).partition("-")[0]
        if not pid.isdigit() or _pid_alive(int(pid)):
            continue
        with contextlib.suppress(OSError):
            if old.is_dir() and old.stat().st_uid == os.getuid():
                remove_tree(old)  # guests' scratch trees among them: any depth


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process (EPERM): alive
        return True
    return True
