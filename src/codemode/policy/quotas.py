"""Quotas: per-session execution rate limits and per-tool call rate limits (``codemode.policy.rate_limits``).
Per-execution tool-call and resource limits live in :class:`codemode.calls.types.Limits`, enforced by the
executor and the gate."""

from __future__ import annotations

import fnmatch
import re
import time
from collections import deque
from collections.abc import Callable, Mapping

from codemode.errors import PolicyDenied
from codemode.policy.rules import is_glob

_WINDOWS = {"s": 1.0, "sec": 1.0, "second": 1.0, "min": 60.0, "minute": 60.0, "h": 3600.0, "hour": 3600.0}
RATE_FORMAT = re.compile(r"^\s*(\d+)\s*/\s*(" + "|".join(_WINDOWS) + r")\s*$")


def parse_rate(text: str) -> tuple[int, float]:
    """``"10/min"`` → ``(10, 60.0)``.

    Raises:
        ValueError: not ``<count>/<s|sec|second|min|minute|h|hour>`` with a count of at least 1.
    """
    match = RATE_FORMAT.match(text)
    if match is None or int(match.group(1)) < 1:
        raise ValueError(f"rate {text!r} must look like '10/min' (a count >= 1 per s, min or hour)")
    return int(match.group(1)), _WINDOWS[match.group(2)]


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


class ToolRateLimiter:
    """``rate_limits``: at most N calls per window for the tools a pattern matches, counted together across
    every session (the limit protects the upstream), the most specific pattern deciding which count a tool
    joins (as for rules). Only calls that are about to run are counted."""

    def __init__(self, limits: Mapping[str, str], *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        parsed = [(pattern, *parse_rate(rate)) for pattern, rate in limits.items()]
        # Exact names first, then globs with more literal characters.
        parsed.sort(key=lambda p: (not is_glob(p[0]), len(re.sub(r"[*?\[\]]", "", p[0]))), reverse=True)
        self._patterns = [(re.compile(fnmatch.translate(p)), p, n, w) for p, n, w in parsed]
        self._seen: dict[str, deque[float]] = {}
        self._which: dict[str, tuple[str, int, float] | None] = {}

    def __bool__(self) -> bool:
        return bool(self._patterns)

    def check(self, name: str) -> str | None:
        """Count one call of ``name`` (``server.tool``); returns why it is refused, or None (counted)."""
        if name not in self._which:
            self._which[name] = next(((p, n, w) for rx, p, n, w in self._patterns if rx.match(name)), None)
        which = self._which[name]
        if which is None:
            return None
        pattern, count, window = which
        now = self._clock()
        seen = self._seen.setdefault(pattern, deque())
        while seen and now - seen[0] >= window:
            seen.popleft()
        if len(seen) >= count:
            wait = window - (now - seen[0])
            return (
                f"rate limit for {pattern!r}: at most {count} calls per {window:g} s "
                f"(codemode.policy.rate_limits); retry in {wait:.0f} s"
            )
        seen.append(now)
        return None
