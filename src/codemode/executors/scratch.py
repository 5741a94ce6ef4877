"""The scratch directory's quota: WASI has none of its own, so the host measures and trims the tree."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def tree_usage(root: Path, max_bytes: int, max_files: int) -> tuple[int, int]:
    """Bytes and entries under ``root`` (links not followed); stops counting once past either limit."""
    size = count = 0
    stack = [str(root)]
    while stack and size <= max_bytes and count <= max_files:
        with contextlib.suppress(OSError), os.scandir(stack.pop()) as entries:
            for entry in entries:
                count += 1
                with contextlib.suppress(OSError):
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    else:
                        size += entry.stat(follow_symlinks=False).st_size
    return size, count


def shrink(root: Path, max_bytes: int, max_files: int) -> list[str]:
    """Delete the largest files under ``root`` until it is under both limits; return their guest paths."""
    files: list[tuple[int, str]] = []
    for directory, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            with contextlib.suppress(OSError):
                files.append((os.lstat(path).st_size, path))
    files.sort(reverse=True)
    total, count = sum(size for size, _ in files), len(files)
    removed: list[str] = []
    for size, path in files:
        if total <= max_bytes and count <= max_files:
            break
        with contextlib.suppress(OSError):
            os.unlink(path)
            total, count = total - size, count - 1
            removed.append("/scratch/" + os.path.relpath(path, root))
    return removed
