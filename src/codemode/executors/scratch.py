"""The scratch directory's quota: WASI has none of its own, so the host measures and trims the tree.

A guest can nest directories through directory descriptors, past any path length the host could open and
deeper than any recursion: every walk here goes through descriptors, one per level, never by path from the
root and never by recursion. Nothing is resolved past one name (``O_NOFOLLOW``) nor climbed back up
(``..``), so a program still running cannot steer a walk, or a removal, out of its own tree.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

MAX_DEPTH = 128
"""Levels of directories a scratch tree may have. The host's walk holds one descriptor per level; a deeper
tree counts as over the quota, and :func:`shrink` removes the part below this depth whole."""

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_TOO_DEEP = -1
"""The size :func:`_walk` gives a directory it does not enter (at :data:`MAX_DEPTH`)."""


def _walk(root: Path) -> Generator[tuple[tuple[str, ...], str, bool, int], None, None]:
    """Every entry under ``root``, depth first, links not followed: (its directory's names below ``root``,
    its name, whether it is a directory, its size). A directory at
    :data:`MAX_DEPTH` is listed but not entered: it comes once more with size ``_TOO_DEEP``."""
    try:
        top = os.open(root, _DIR_FLAGS)
    except OSError:
        return
    fds: list[int] = [top]  # per level: its descriptor, and (below the root) its name in parts
    parts: list[str] = []
    todo: list[list[str]] = [[]]  # per level: the subdirectories still to visit
    try:
        while fds:
            if len(todo) == len(fds):  # the directory at fds[-1] is not listed yet
                todo.append([])
                with contextlib.suppress(OSError), os.scandir(fds[-1]) as entries:
                    for entry in entries:
                        try:
                            is_dir = entry.is_dir(follow_symlinks=False)
                            size = 0 if is_dir else entry.stat(follow_symlinks=False).st_size
                        except OSError:
                            is_dir, size = False, 0
                        if is_dir:
                            todo[-1].append(entry.name)
                        yield tuple(parts), entry.name, is_dir, size
            if not todo[-1]:
                todo.pop()
                os.close(fds.pop())
                if parts:
                    parts.pop()
                continue
            name = todo[-1].pop()
            if len(fds) > MAX_DEPTH:  # its subdirectory would be deeper than MAX_DEPTH
                yield tuple(parts), name, True, _TOO_DEEP
                continue
            try:
                fds.append(os.open(name, _DIR_FLAGS, dir_fd=fds[-1]))
            except OSError:
                continue
            parts.append(name)
    finally:
        for fd in fds:
            os.close(fd)


def tree_usage(root: Path, max_bytes: int, max_files: int) -> tuple[int, int]:
    """Bytes and entries under ``root`` (links not followed); stops counting once past either limit. A tree
    deeper than :data:`MAX_DEPTH` is over the entry limit, however few entries it has."""
    size = count = 0
    with contextlib.closing(_walk(root)) as walk:
        for _parts, _name, _is_dir, bytes_ in walk:
            if bytes_ == _TOO_DEEP:
                return size, max(count, max_files + 1)
            count += 1
            size += bytes_
            if size > max_bytes or count > max_files:
                break
    return size, count


def shrink(root: Path, max_bytes: int, max_files: int) -> list[str]:
    """Bring ``root`` under both limits and return the guest paths removed: what lies below
    :data:`MAX_DEPTH` first, then the largest files, then empty directories, deepest first."""
    files: list[tuple[int, tuple[str, ...]]] = []
    dirs: list[tuple[str, ...]] = []
    deep: list[tuple[str, ...]] = []
    with contextlib.closing(_walk(root)) as walk:
        for parts, name, is_dir, size in walk:
            if size == _TOO_DEEP:
                deep.append((*parts, name))
            elif is_dir:
                dirs.append((*parts, name))
            else:
                files.append((size, (*parts, name)))
    removed = [path for path in deep if _remove_at(root, path, remove_tree_at)]
    gone = set(removed)
    files = [(size, path) for size, path in files if not any(path[: len(d)] == d for d in gone)]
    dirs = [path for path in dirs if not any(path[: len(d)] == d for d in gone)]
    files.sort(reverse=True)
    total, count = sum(size for size, _ in files), len(files) + len(dirs)
    for size, path in files:
        if total <= max_bytes and count <= max_files:
            break
        if _remove_at(root, path, os.unlink):
            total, count = total - size, count - 1
            removed.append(path)
    for path in sorted(dirs, key=len, reverse=True):
        if count <= max_files:
            break
        if _remove_at(root, path, os.rmdir):  # only an empty one goes
            count -= 1
            removed.append(path)
    return ["/scratch/" + "/".join(path) for path in removed]


def _remove_at(root: Path, path: tuple[str, ...], remove: Callable[..., object]) -> bool:
    """``remove(name, dir_fd=…)`` for ``root/path``, its directory opened one name at a time."""
    try:
        fd = os.open(root, _DIR_FLAGS)
    except OSError:
        return False
    try:
        for name in path[:-1]:
            fd, parent = os.open(name, _DIR_FLAGS, dir_fd=fd), fd
            os.close(parent)
        remove(path[-1], dir_fd=fd)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def remove_tree_at(name: str, *, dir_fd: int) -> None:
    """Remove the directory ``name`` in ``dir_fd`` and all it holds, however deep, with two descriptors.

    Each pass empties one level: files are unlinked, and the subdirectories of a subdirectory are renamed up
    into the directory being emptied (a fresh name), so no walk goes down more than one level.
    """
    top = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    try:
        _empty(top)
    finally:
        os.close(top)
    os.rmdir(name, dir_fd=dir_fd)


def _empty(fd: int) -> None:
    fresh = (f".codemode-removing-{n}" for n in itertools.count())
    while True:
        with os.scandir(fd) as listing:
            entries = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in listing]
        if not entries:
            return
        done = 0  # a pass that removes and moves nothing would loop for ever: give up instead
        for name, is_dir in entries:
            if not is_dir:
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=fd)
                    done += 1
                continue
            with contextlib.suppress(OSError):
                sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
                try:
                    with os.scandir(sub) as listing:
                        inner = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in listing]
                    for child, child_is_dir in inner:
                        if child_is_dir:
                            done += _move_up(child, sub, fd, fresh)
                        else:
                            with contextlib.suppress(OSError):
                                os.unlink(child, dir_fd=sub)
                                done += 1
                finally:
                    os.close(sub)
                os.rmdir(name, dir_fd=fd)  # emptied now (one that gained entries meanwhile waits a pass)
                done += 1
        if not done:
            raise OSError(f"cannot empty the directory: {len(entries)} entries left")


def _move_up(name: str, src: int, dst: int, fresh: Iterator[str]) -> int:
    """Rename the directory ``name`` from ``src`` into ``dst`` under a name not taken there; 1 if moved."""
    for _ in range(100):  # a taken name (a guest may use ours) is skipped
        with contextlib.suppress(OSError):
            os.rename(name, next(fresh), src_dir_fd=src, dst_dir_fd=dst)
            return 1
    return 0


def remove_tree(path: Path) -> None:
    """``shutil.rmtree(path, ignore_errors=True)`` for a tree a guest made: no recursion, no path lengths."""
    with contextlib.suppress(OSError):
        parent = os.open(path.parent, _DIR_FLAGS)
        try:
            remove_tree_at(path.name, dir_fd=parent)
        finally:
            os.close(parent)
