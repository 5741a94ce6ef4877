"""Quotas: per-session execution rate limits. Per-execution tool-call and resource limits live in
:class:`codemode.executors.Limits`, enforced by the executor and the bridge."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from codemode.errors import PolicyDenied


class RateLimiter:
    """At most ``per_minute`` executions per session in any sliding 60-second window."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}

    def check(self, session: str) -> None:
        """Record one execution for ``session``.

        Raises:
            PolicyDenied: the session already ran ``per_minute`` executions in the last 60 s.
        """
        now = self._clock()
        window = self._seen.setdefault(session, deque())
        while window and now - window[0] >= 60.0:
            window.popleft()
        if len(window) >= self.per_minute:
            wait = 60.0 - (now - window[0])
            raise PolicyDenied(
                f"rate limit: at most {self.per_minute} executions per minute per session; retry in {wait:.0f} s"
            )
        window.append(now)

    def forget(self, session: str) -> None:
        """Drop the history of a closed session."""
        self._seen.pop(session, None)
