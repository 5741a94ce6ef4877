"""How an instance thread reaches the event loop that owns its executor."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

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
        """Run ``coroutine`` on the loop and wait for its result (raises if the loop refuses it)."""
        if self.asyncio_loop is not None:
            return asyncio.run_coroutine_threadsafe(coroutine, self.asyncio_loop).result()
        return anyio.from_thread.run(lambda: coroutine, token=self.token)
