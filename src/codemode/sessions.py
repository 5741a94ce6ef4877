"""The engine's live sessions: one lock each, a cap on how many, idle expiry and a rate limit.

Sessions are cheap to name (``execute_python``'s ``session`` argument), so without a cap a client could
make the host boot interpreters until it runs out of memory.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from codemode.errors import PolicyDenied
from codemode.policy import RateLimiter


@dataclass
class Session:
    """One live session as the engine tracks it."""

    lock: anyio.Lock = field(default_factory=anyio.Lock)
    last_used: float = field(default_factory=time.monotonic)


class Sessions:
    """At most ``max_sessions`` live sessions; the least recently used idle one is closed to make room."""

    def __init__(
        self, *, max_sessions: int, idle_s: float, per_minute: int, close: Callable[[str], Awaitable[None]]
    ) -> None:
        self.max_sessions = max_sessions
        self.idle_s = idle_s
        self._close = close
        self._rate = RateLimiter(per_minute)
        self._live: dict[str, Session] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._live

    async def admit(self, name: str) -> Session:
        """The session to run an execution in (created if new).

        Raises:
            PolicyDenied: every session slot is busy running code, or the session's rate limit is spent.
        """
        state = self._live.get(name)
        if state is None:
            await self._make_room()
            state = self._live.setdefault(name, Session())
        self._rate.check(name)
        return state

    async def _make_room(self) -> None:
        if len(self._live) < self.max_sessions:
            return
        idle = sorted((s.last_used, name) for name, s in self._live.items() if not s.lock.locked())
        if not idle:
            raise PolicyDenied(f"too many sessions: all {self.max_sessions} are running code; retry when one finishes")
        await self.close(idle[0][1])

    async def close(self, name: str) -> None:
        """Forget a session and have its interpreter closed."""
        self._live.pop(name, None)
        self._rate.forget(name)
        await self._close(name)

    async def expire_idle(self) -> None:
        """Run forever: close sessions idle for longer than ``idle_s`` (never one that is running code)."""
        while True:
            await anyio.sleep(min(60.0, self.idle_s / 4))
            now = time.monotonic()
            for name, state in list(self._live.items()):
                if now - state.last_used > self.idle_s and not state.lock.locked():
                    await self.close(name)
