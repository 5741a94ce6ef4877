"""The scratch quota on real directories, without a sandbox: measuring, trimming, and the check at the end.

WASI has no disk quota: the host measures the session's scratch tree (``tree_usage``), and when a program
went over, deletes the largest files (``shrink``) down to half the limits. The integration tests drive the
same functions through the WASM sandbox; these pin their numbers.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import mcp_types as types
import pytest

from codemode.calls import Limits
from codemode.calls.gate import Gate
from codemode.executors.base import RunResult
from codemode.executors.scratch import (
    MAX_DEPTH,
    _move_up,
    _remove_at,
    remove_tree,
    remove_tree_at,
    shrink,
    tree_usage,
)
from codemode.executors.wasm.executor import _check_scratch
from codemode.hub.models import ToolRef, ToolSpec


class NoUpstreams:
    def tools(self) -> dict[str, list[ToolSpec]]:
        return {}

    def unavailable(self) -> dict[str, str]:
        return {}

    async def call_tool(self, ref: ToolRef, args: dict[str, object]) -> types.CallToolResult:
        raise AssertionError("no tool is called here")


def _files(root: Path, sizes: dict[str, int]) -> None:
    for name, size in sizes.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)


def _left(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_usage_counts_every_entry_in_subdirectories_and_does_not_follow_links(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    _files(outside, {"big": 10_000})
    root = tmp_path / "scratch"
    _files(root, {"a": 10, "d/b": 20, "d/e/c": 30})
    (root / "link").symlink_to(outside / "big")
    (root / "dirlink").symlink_to(outside)
    link_bytes = os.lstat(root / "link").st_size + os.lstat(root / "dirlink").st_size
    # a, d, d/b, d/e, d/e/c, link, dirlink: seven entries; the links count as themselves, not their targets.
    assert tree_usage(root, 1 << 30, 1 << 30) == (60 + link_bytes, 7)
    assert tree_usage(root, 1 << 30, 7) == (60 + link_bytes, 7)  # at the limit it still counts it all
    assert tree_usage(root / "missing", 1, 1) == (0, 0)


def test_usage_goes_on_counting_at_exactly_the_limit(tmp_path: Path) -> None:
    # A tree of exactly the limit is within it; one byte more in a subdirectory scanned later is not.
    (tmp_path / "full").write_bytes(b"x" * 1000)
    (tmp_path / "later").mkdir()
    (tmp_path / "later" / "one").write_bytes(b"x")
    assert tree_usage(tmp_path, 1000, 100) == (1001, 3)
    assert tree_usage(tmp_path, 2000, 2) == (1001, 3)  # the same at exactly the file limit


def test_shrink_deletes_the_largest_files_until_under_both_limits(tmp_path: Path) -> None:
    _files(tmp_path, {"a": 60, "d/b": 30, "c": 20, "e": 5})
    assert shrink(tmp_path, 55, 10) == ["/scratch/a"]
    assert _left(tmp_path) == {"d/b", "c", "e"}
    assert shrink(tmp_path, 55, 4) == []  # already under both (three files and d): nothing goes
    assert shrink(tmp_path, 1000, 2) == ["/scratch/d/b", "/scratch/c"]
    assert _left(tmp_path) == {"e"}


def test_shrink_removes_empty_directories_deepest_first_when_they_alone_are_over(tmp_path: Path) -> None:
    # Directories count as entries: a tree of them alone must shrink too, or the session stays over for good.
    for i in range(6):
        (tmp_path / f"d{i}" / "inner").mkdir(parents=True)
    (tmp_path / "kept").write_bytes(b"x")
    removed = shrink(tmp_path, 1000, 5)  # 13 entries: the file, the six inner directories, then one outer
    assert removed[0] == "/scratch/kept" and len(removed) == 8, removed
    assert sorted(removed[1:7]) == [f"/scratch/d{i}/inner" for i in range(6)]
    assert removed[7] in {f"/scratch/d{i}" for i in range(6)}
    assert tree_usage(tmp_path, 1000, 100) == (0, 5)


def _nest(root: Path, levels: int, name: str = "a") -> int:
    """``levels`` directories one inside the other, made through descriptors as a guest can (no path is
    ever opened whole); returns the innermost one's descriptor."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(levels):
        os.mkdir(name, dir_fd=fd)
        fd, parent = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd), fd
        os.close(parent)
    return fd


def test_a_tree_deeper_than_the_walk_is_over_the_quota_and_cut_below_that_depth(tmp_path: Path) -> None:
    # 1,200 levels: os.walk and shutil.rmtree recursed once per level and raised RecursionError.
    os.close(_nest(tmp_path, 1200))
    (tmp_path / "small").write_bytes(b"x")
    assert tree_usage(tmp_path, 1 << 20, 10_000)[1] == 10_001  # few entries, but deeper than MAX_DEPTH: over
    removed = shrink(tmp_path, 1 << 19, 5_000)
    assert removed == ["/scratch/" + "/".join(["a"] * (MAX_DEPTH + 1))]
    assert tree_usage(tmp_path, 1 << 20, 10_000) == (1, MAX_DEPTH + 1)  # MAX_DEPTH directories and small


def test_files_past_the_hosts_path_length_are_counted(tmp_path: Path) -> None:
    # 25 names of 200 characters: the file's path is over 5,000 bytes, which no path-based walk can open.
    fd = _nest(tmp_path, 25, "b" * 200)
    out = os.open("big", os.O_WRONLY | os.O_CREAT, dir_fd=fd)
    os.write(out, b"x" * 4096)
    os.close(out)
    os.close(fd)
    assert tree_usage(tmp_path, 1 << 20, 10_000) == (4096, 26)
    assert shrink(tmp_path, 1000, 10_000) == ["/scratch/" + "/".join(["b" * 200] * 25) + "/big"]
    remove_tree(tmp_path / ("b" * 200))  # no path-based cleanup could


def test_remove_tree_takes_any_depth_with_two_descriptors(tmp_path: Path) -> None:
    session = tmp_path / "session"
    session.mkdir()
    os.close(_nest(session, 1200))
    os.close(_nest(session, 30, "b" * 200))
    (session / "f").write_bytes(b"x")
    remove_tree(session)
    assert list(tmp_path.iterdir()) == []
    remove_tree(session)  # gone already: nothing to do, no error


def _check(scratch: Path, empty: dict[Path, int], **limits: int) -> RunResult:
    ctx = Gate([], NoUpstreams()).context(session="s", limits=Limits(**limits))
    return _check_scratch(RunResult(ok=True, stdout="done"), scratch, ctx, empty)


def test_a_program_over_the_file_quota_fails_and_the_tree_is_cut_to_half(tmp_path: Path) -> None:
    _files(tmp_path, {f"f{size}": size for size in range(1, 7)})
    result = _check(tmp_path, {}, scratch_files=4)
    assert not result.ok and result.error is not None and result.error.kind == "scratch_quota"
    assert result.stdout == "done" and "4 files" in result.error.message
    assert "/scratch/f6, /scratch/f5, /scratch/f4, /scratch/f3" in result.error.message
    assert _left(tmp_path) == {"f1", "f2"}


def test_the_quota_message_names_at_most_ten_removed_files(tmp_path: Path) -> None:
    _files(tmp_path, {f"f{i:02}": 100 + i for i in range(12)})
    result = _check(tmp_path, {}, scratch_files=1)
    assert result.error is not None and "/scratch/f11, " in result.error.message
    named = result.error.message.split("make room: ", 1)[1].rstrip(".").split(", ")
    assert named == [f"/scratch/f{i:02}" for i in range(11, 1, -1)]  # the ten largest of the eleven removed


def test_a_program_over_the_byte_quota_fails_and_the_tree_is_cut_to_half(tmp_path: Path) -> None:
    _files(tmp_path, {"a": 60, "b": 30, "c": 20})
    result = _check(tmp_path, {}, scratch_bytes=100)
    assert not result.ok and result.error is not None and result.error.kind == "scratch_quota"
    assert _check(tmp_path / "x", {}, scratch_bytes=5 << 20).ok  # a missing tree is within any quota
    _files(tmp_path / "big", {"a": 6 << 20})
    big = _check(tmp_path / "big", {}, scratch_bytes=5 << 20)
    assert big.error is not None and big.error.message.startswith("/scratch went over its quota (5 MB, 10,000 files).")
    assert _left(tmp_path) == {"b", "c"}


def test_a_tree_within_the_quota_or_gone_leaves_the_result_alone(tmp_path: Path) -> None:
    _files(tmp_path, {"a": 50, "b": 50})
    assert _check(tmp_path, {}, scratch_bytes=100, scratch_files=2).ok  # the limits themselves are allowed
    assert _check(tmp_path / "gone", {}, scratch_bytes=1).ok  # a vanished dir is not an error of the program
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    os.utime(empty_dir, ns=(1, 1))  # so the file below changes its mtime even on a coarse clock
    seen: dict[Path, int] = {}
    assert _check(empty_dir, seen).ok and seen == {empty_dir: os.stat(empty_dir).st_mtime_ns}
    _files(empty_dir, {"x": 10})
    assert not _check(empty_dir, seen, scratch_bytes=5).ok and empty_dir not in seen


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_walk_stopped_deep_in_a_tree_closes_every_descriptor_it_held(tmp_path: Path) -> None:
    # The walk holds one descriptor per level; a count stopped at the limit, 40 levels down, must give them
    # all back, or each check of a guest's deep tree leaks 40 of the host's descriptors.
    os.close(_nest(tmp_path, 60))
    before = _open_fds()
    for _ in range(5):
        assert tree_usage(tmp_path, 1 << 20, 40) == (0, 41)
    assert _open_fds() == before


def test_past_the_cut_of_a_tree_too_deep_the_largest_files_and_empty_directories_still_go(tmp_path: Path) -> None:
    os.close(_nest(tmp_path, MAX_DEPTH + 2))
    _files(tmp_path, {"big": 5000, "small": 10})
    removed = shrink(tmp_path, 1000, 20)
    assert removed[0] == "/scratch/" + "/".join(["a"] * (MAX_DEPTH + 1))  # below the walk's depth, whole
    assert removed[1:3] == ["/scratch/big", "/scratch/small"]  # then the files, largest first (129 entries left)
    assert removed[3] == "/scratch/" + "/".join(["a"] * MAX_DEPTH)  # then empty directories, deepest first
    assert tree_usage(tmp_path, 1 << 20, 10_000) == (0, 20)


def test_a_directory_that_cannot_be_opened_costs_only_its_own_contents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A guest can swap a directory for a link between the listing and the open (O_NOFOLLOW refuses it): the
    # walk goes on to the rest of the tree, neither stopping there nor raising.
    _files(tmp_path, {"d1/f": 100, "d2/f": 200})
    real_open, failed = os.open, []

    def open_once_refused(path: object, flags: int, *args: object, dir_fd: int | None = None) -> int:
        if dir_fd is not None and not failed:
            failed.append(path)
            raise OSError(40, "Too many levels of symbolic links")
        return real_open(path, flags, *args, dir_fd=dir_fd)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", open_once_refused)
    size, count = tree_usage(tmp_path, 1 << 20, 100)
    assert failed and (size, count) == ({"d1": 200, "d2": 100}[str(failed[0])], 3)


class _Entry:
    def __init__(self, entry: os.DirEntry[str], vanished: bool) -> None:
        self.name, self._entry, self._vanished = entry.name, entry, vanished

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        return self._entry.is_dir(follow_symlinks=follow_symlinks)

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        if self._vanished:
            raise FileNotFoundError(2, "No such file or directory")
        return self._entry.stat(follow_symlinks=follow_symlinks)


def test_an_entry_gone_between_the_listing_and_its_stat_is_counted_and_the_rest_still_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _files(tmp_path, {"f1": 100, "f2": 200, "f3": 300})
    real_scandir = os.scandir

    @contextlib.contextmanager
    def scandir(fd: int) -> Iterator[list[_Entry]]:
        with real_scandir(fd) as listing:
            entries = sorted(listing, key=lambda e: e.name)
        yield [_Entry(e, e.name == "f1") for e in entries]

    monkeypatch.setattr(os, "scandir", scandir)
    assert tree_usage(tmp_path, 1 << 20, 100) == (500, 3)  # f1 counted as an entry of no size; f2, f3 read


def test_a_removal_under_a_root_that_is_gone_removes_nothing_and_raises_nothing(tmp_path: Path) -> None:
    # shrink removes what its walk found; the session's scratch may be closed (and removed) in between.
    assert _remove_at(tmp_path / "gone", ("f",), os.unlink) is False
    _files(tmp_path, {"f": 1})
    assert _remove_at(tmp_path, ("g",), os.unlink) is False  # the entry itself gone
    assert _remove_at(tmp_path, ("f",), os.unlink) is True and not (tmp_path / "f").exists()


def test_moving_a_directory_up_counts_one_when_moved_and_none_when_every_name_tried_is_taken(tmp_path: Path) -> None:
    # _empty gives up on a pass that moved and removed nothing; a move counted though it failed would let it
    # loop for ever on a tree it cannot empty.
    (tmp_path / "src" / "d").mkdir(parents=True)
    taken = [f"taken-{n}" for n in range(3)]
    _files(tmp_path / "dst", dict.fromkeys(taken, 1))  # files: no directory is renamed over one
    src, dst = (os.open(tmp_path / name, os.O_RDONLY | os.O_DIRECTORY) for name in ("src", "dst"))
    try:
        assert _move_up("d", src, dst, itertools.cycle(taken)) == 0
        assert (tmp_path / "src" / "d").is_dir()
        assert _move_up("d", src, dst, iter(["free"])) == 1
        assert (tmp_path / "dst" / "free").is_dir() and not (tmp_path / "src" / "d").exists()
    finally:
        os.close(src)
        os.close(dst)


def test_a_pass_that_only_removed_files_inside_a_subdirectory_is_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A guest racing the removal can take the names the directories are moved up to: a pass then only
    # unlinks the files beside them, and the next pass, with fresh names, finishes the job.
    _files(tmp_path / "session", {"a/f": 1, "a/b/g": 1})
    real_rename, refused = os.rename, []

    def rename_refused_for_a_while(*args: object, **kwargs: object) -> None:
        if len(refused) < 100:  # every name the first pass tries
            refused.append(args[1])
            raise FileExistsError(17, "File exists")
        real_rename(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "rename", rename_refused_for_a_while)
    remove_tree(tmp_path / "session")
    assert len(refused) == 100 and list(tmp_path.iterdir()) == []


def test_every_part_below_the_walks_depth_goes_not_only_the_first(tmp_path: Path) -> None:
    os.close(_nest(tmp_path, MAX_DEPTH + 2))
    os.close(_nest(tmp_path, MAX_DEPTH + 2, "b"))
    removed = shrink(tmp_path, 1 << 20, 10_000)
    assert sorted(removed) == ["/scratch/" + "/".join([name] * (MAX_DEPTH + 1)) for name in "ab"]
    assert tree_usage(tmp_path, 1 << 20, 10_000) == (0, 2 * MAX_DEPTH)


def test_a_tree_of_files_alone_is_removed(tmp_path: Path) -> None:
    _files(tmp_path / "session", {"f": 1, "g": 2})
    remove_tree(tmp_path / "session")
    assert list(tmp_path.iterdir()) == []


def test_a_tree_that_cannot_be_emptied_is_given_up_on_not_looped_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A directory that can neither be moved up nor removed (every rename refused, here): the pass that
    # achieves nothing ends the removal with an error instead of spinning on the host's thread for ever.
    _files(tmp_path / "session", {"a/b/f": 1})
    refused: list[object] = []

    def rename_refused(*args: object, **kwargs: object) -> None:
        refused.append(args[1])
        if len(refused) > 1000:  # ten passes: the mutant loops; stop it with an error no handler takes
            raise RuntimeError("still looping")
        raise FileExistsError(17, "File exists")

    monkeypatch.setattr(os, "rename", rename_refused)
    top = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(OSError, match="cannot empty the directory: 1 entries left"):
            remove_tree_at("session", dir_fd=top)
    finally:
        os.close(top)
    assert len(refused) == 100 and (tmp_path / "session" / "a" / "b" / "f").exists()


def test_the_walk_never_waits_on_a_fifo_where_a_directory_was_expected(tmp_path: Path) -> None:
    # Opening a FIFO for reading blocks until a writer comes; O_DIRECTORY refuses it at once. The timer
    # brings a writer only so that a blocked open would end, and is cancelled when the walk needed none.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writers: list[int] = []
    timer = threading.Timer(5.0, lambda: writers.append(os.open(fifo, os.O_RDWR)))
    timer.start()
    try:
        assert tree_usage(fifo, 1 << 20, 100) == (0, 0)
        assert writers == []
    finally:
        timer.cancel()
        timer.join()
        for fd in writers:
            os.close(fd)


def test_a_link_where_a_directory_was_is_never_followed(tmp_path: Path) -> None:
    # The scratch root or a directory on a removal's path swapped for a link: the walk counts nothing
    # through it, and nothing is removed through it.
    _files(tmp_path / "target", {"f": 100})
    (tmp_path / "link").symlink_to(tmp_path / "target", target_is_directory=True)
    assert tree_usage(tmp_path / "link", 1 << 20, 100) == (0, 0)
    assert shrink(tmp_path / "link", 0, 0) == []
    assert _remove_at(tmp_path, ("link", "f"), os.unlink) is False
    assert (tmp_path / "target" / "f").read_bytes() == b"x" * 100


def test_a_link_to_a_directory_in_a_removed_tree_goes_and_its_target_stays(tmp_path: Path) -> None:
    _files(tmp_path / "target", {"f": 1})
    _files(tmp_path / "session", {"d/g": 1})
    (tmp_path / "session" / "top").symlink_to(tmp_path / "target", target_is_directory=True)
    (tmp_path / "session" / "d" / "inner").symlink_to(tmp_path / "target", target_is_directory=True)
    remove_tree(tmp_path / "session")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"] and (tmp_path / "target" / "f").exists()


def test_each_pass_empties_a_whole_level(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A guest's 10,000 files must not cost 10,000 passes, each listing what is left (quadratic host work).
    _files(tmp_path / "session", {**{f"f{n}": 1 for n in range(50)}, **{f"d{n}/g": 1 for n in range(5)}})
    real_scandir, listings = os.scandir, []

    def counted(fd: int) -> object:
        listings.append(fd)
        return real_scandir(fd)

    monkeypatch.setattr(os, "scandir", counted)
    remove_tree(tmp_path / "session")
    assert list(tmp_path.iterdir()) == []
    assert len(listings) == 1 + 5 + 1  # the level, each subdirectory's own, then the empty level
