"""Sessions and a pool of pre-started interpreters: the part both executors share.

An executor supplies ``_boot()`` (start one interpreter whose writable scratch directory is a fresh
``scratch_root/.pool/<id>``) and ``_dispose()`` (stop one); this class keeps a few booted ahead of need,
hands one to each new session, moves the session's scratch files into it, and drops it when the session
closes or the interpreter dies.
"""

from __future__ import annotations

import abc
import logging
import os
import stat
import uuid
from pathlib import Path
from typing import Generic, Protocol, TypeVar, Unpack

import anyio
import anyio.abc

from codemode.errors import SandboxError
from codemode.executors.base import Executor, ExecutorOptions
from codemode.executors.scratch import remove_tree
from codemode.session_names import check_session_name

log = logging.getLogger(__name__)


class Worker(Protocol):
    """One interpreter, as the pool sees it."""

    scratch: Path

    @property
    def dead(self) -> bool: ...


W = TypeVar("W", bound=Worker)


class PooledExecutor(Executor, Generic[W]):
    """An executor whose interpreters are pre-started and then owned one per session."""

    def __init__(self, **options: Unpack[ExecutorOptions]) -> None:
        super().__init__(**options)
        self._sessions: dict[str, W] = {}
        self._pool: list[W] = []
        self._all: set[W] = set()
        self._refilling = False
        self._task_group: anyio.abc.TaskGroup | None = None
        self._closed = False

    @abc.abstractmethod
    async def _boot(self) -> W:
        """Start one interpreter (its scratch dir from :meth:`_new_scratch`); raise ``SandboxError`` if it fails."""

    @abc.abstractmethod
    async def _dispose(self, worker: W) -> None:
        """Stop one interpreter and forget it."""

    def _new_scratch(self) -> Path:
        scratch = self.scratch_root / ".pool" / uuid.uuid4().hex[:12]
        scratch.mkdir(parents=True)
        return scratch

    async def _start_pool(self) -> None:
        for directory in (self.stubs_dir, self.skills_dir, self.scratch_root / ".pool"):
            directory.mkdir(parents=True, exist_ok=True)
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._refill)

    async def _stop_pool(self) -> None:
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()
            await self._task_group.__aexit__(None, None, None)
            self._task_group = None

    def _forget_all(self) -> None:
        for worker in self._pool:
            remove_tree(worker.scratch)
        self._pool.clear()
        self._sessions.clear()
        self._all.clear()

    async def _refill(self) -> None:
        if self._refilling:
            return
        self._refilling = True
        try:
            while not self._closed and len(self._pool) < self.pool_size:
                try:
                    worker = await self._boot()
                except SandboxError:
                    if not self._closed:  # a start cut short by aclose() is not worth a traceback
                        log.exception("could not pre-start an interpreter for the pool")
                    return
                if self._closed:
                    await self._dispose(worker)
                    return
                self._pool.append(worker)
        finally:
            self._refilling = False

    async def _worker_for(self, session: str) -> W:
        """The session's live interpreter, or a pooled (else freshly booted) one adopted by the session."""
        check_session_name(session)
        worker = self._sessions.get(session)
        if worker is not None and not worker.dead:
            return worker
        worker = self._pool.pop(0) if self._pool else await self._boot()
        if self._task_group is not None and not self._closed:
            self._task_group.start_soon(self._refill)
        self._adopt_scratch(worker, session)
        self._sessions[session] = worker
        return worker

    def _adopt_scratch(self, worker: W, session: str) -> None:
        # The interpreter opened its scratch dir at start; the host directory can be renamed under it.
        # Files a lost interpreter of this session left behind move into the new one.
        target = self.scratch_root / session
        if target.exists():
            for item in target.iterdir():
                item.rename(worker.scratch / item.name)
            target.rmdir()
        worker.scratch.rename(target)
        worker.scratch = target

    def _lose(self, session: str, worker: W) -> None:
        if self._sessions.get(session) is worker:
            del self._sessions[session]
        self._all.discard(worker)

    @property
    def pooled(self) -> int:
        return len(self._pool)

    def sessions(self) -> list[str]:
        return sorted(name for name, worker in self._sessions.items() if not worker.dead)

    async def close_session(self, session: str) -> None:
        check_session_name(session)
        worker = self._sessions.pop(session, None)
        if worker is not None:
            await self._dispose(worker)
        remove_tree(self.scratch_root / session)  # a guest's tree: any depth, any path length

    def save_output(self, session: str, name: str, text: str) -> str | None:
        """Keep ``text`` as ``outputs/<name>.txt`` in the session's scratch; return the path the program sees.

        None when this executor's programs cannot open scratch files (then nothing is written). The
        scratch dir is the guest's to shape, so nothing in it is trusted: ``outputs`` must be a real
        directory (a link or file there is removed), and the file is written relative to that directory's
        descriptor without following links.
        """
        if self.scratch_mount is None:
            return None
        check_session_name(session)
        session_dir = self.scratch_root / session
        session_dir.mkdir(parents=True, exist_ok=True)
        dir_flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
        root = os.open(session_dir, dir_flags)
        try:
            try:
                os.mkdir("outputs", dir_fd=root)
            except FileExistsError:
                if not stat.S_ISDIR(os.stat("outputs", dir_fd=root, follow_symlinks=False).st_mode):
                    os.unlink("outputs", dir_fd=root)
                    os.mkdir("outputs", dir_fd=root)
            outputs = os.open("outputs", dir_flags, dir_fd=root)
        finally:
            os.close(root)
        try:
            tmp = f".{name}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=outputs)
            with os.fdopen(fd, "w", encoding="utf-8", errors="surrogatepass") as fh:
                fh.write(text)
            os.replace(tmp, f"{name}.txt", src_dir_fd=outputs, dst_dir_fd=outputs)
        finally:
            os.close(outputs)
        return f"{self.scratch_mount}/outputs/{name}.txt"

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
