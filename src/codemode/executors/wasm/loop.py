"""How an instance thread reaches the event loop that owns its executor."""

from __future__ import annotations

import _thread
import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import anyio
import anyio.from_thread
import anyio.lowlevel

T = TypeVar("T")


@dataclass(frozen=True)
class LoopLink:
    """The event loop that owns the executor, as an instance thread reaches it.

    On asyncio the loop is used directly (a lighter hop than anyio's portal: this is per tool call);
    elsewhere (e.g. trio) through anyio's token.
    """

    token: anyio.lowlevel.EventLoopToken | None = None
    asyncio_loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def current(cls) -> LoopLink:
        """The running event loop (call on it)."""
        asyncio_loop = None
        with contextlib.suppress(RuntimeError):  # not asyncio: notify through anyio instead
            asyncio_loop = asyncio.get_running_loop()
        return cls(anyio.lowlevel.current_token(), asyncio_loop)

    def notify(self, setter: Callable[[], None]) -> None:
        """Call ``setter`` on the loop without waiting for it; never raises."""
        with contextlib.suppress(BaseException):  # the loop may be closing; nobody is waiting then
            if self.asyncio_loop is not None:
                # Fire and forget: the guest need not wait for the loop to wake (saves a round trip).
                self.asyncio_loop.call_soon_threadsafe(setter)
            else:
                anyio.from_thread.run_sync(setter, token=self.token)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and wait for its result (raises if the loop refuses it, and
        ``CancelledError`` if the loop cancels it, e.g. while shutting down)."""
        if self.asyncio_loop is None:
            return anyio.from_thread.run(lambda: coroutine, token=self.token)
        # Not run_coroutine_threadsafe: its futures are chained through a callback the loop runs one
        # iteration after the task ends, then a Condition. Here the task itself releases the caller.
        loop = self.asyncio_loop
        outcome: list[tuple[bool, Any]] = []  # (raised, the value or the exception)
        started: list[asyncio.Task[None]] = []  # held here: the loop keeps only a weak reference to a task
        finished = _thread.allocate_lock()
        finished.acquire()

        def end(raised: bool, value: Any) -> None:
            outcome.append((raised, value))
            finished.release()

        async def task() -> None:
            try:
                value = await coroutine
            except Exception as exc:  # handed to the caller: the task itself ends without one
                end(True, exc)
                return
            except BaseException as exc:  # cancelled (the loop is shutting down), or the process is stopping
                end(True, exc)
                raise
            end(False, value)

        def start() -> None:
            try:
                started.append(loop.create_task(task()))
            except BaseException as exc:
                coroutine.close()
                end(True, exc)
                raise

        try:
            loop.call_soon_threadsafe(start)
        except BaseException:
            coroutine.close()
            raise
        finished.acquire()
        raised, value = outcome[0]
        if raised:
            raise value
        return cast(T, value)


class Signal:
    """Set once from an instance thread (through :meth:`LoopLink.notify`), awaited once on the loop.

    On asyncio a bare future: an ``anyio.Event`` costs an asyncio Event and its waiter list on top.
    """

    __slots__ = ("_event", "_future")

    def __init__(self, link: LoopLink) -> None:
        loop = link.asyncio_loop
        self._future: asyncio.Future[None] | None = loop.create_future() if loop is not None else None
        self._event = anyio.Event() if loop is None else None

    def set(self) -> None:
        """On the loop."""
        if self._future is not None:
            if not self._future.done():  # a cancelled waiter cancelled it
                self._future.set_result(None)
        elif self._event is not None:
            self._event.set()

    async def wait(self) -> None:
        if self._future is not None:
            await self._future
        elif self._event is not None:
            await self._event.wait()
