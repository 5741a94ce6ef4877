"""The engine's live sessions, each owned by one client: caps, eviction, idle expiry and rate limits.

Sessions are cheap to name (``execute_python``'s ``session`` argument) and each one boots an interpreter,
so what a client may spend is bounded, per client. Every session belongs to an :class:`Owner`: ``local``
over stdio and for ``codemode run``, an MCP session or a server-issued handle over HTTP (see
:mod:`codemode.front`). A name is scoped to its owner, and so is everything that can be spent:

* **Live sessions**: at most ``per_owner`` per owner (the local owner may use every slot), ``per_client`` per
  authenticated client whatever owners it holds (its token's identity; a sessionless client mints a new owner
  with each call it makes without a handle) and ``max_sessions`` in all. A new session makes room by closing its
  owner's own least recently used idle session (past ``per_client``, its client's). When the server is full and
  the owner has none idle, an idle *provisional* session of another owner is reclaimed, oldest first: the first
  interpreter of a sessionless client whose handle never came back. Otherwise the call is refused. A session
  another client has used twice is never closed for someone else; it only expires after ``idle_s`` (a
  provisional one after ``provisional_idle_s``).
* **Executions**: ``per_minute`` per owner in any sliding minute, whatever session names it uses; an authenticated
  client's owners (its MCP sessions, its handles) share one count.
* **New sessions** (each starts an interpreter): ``new_per_minute`` per owner (per authenticated client across
  its owners), and ``new_per_minute_per_peer`` per client across owners, because a sessionless client can always
  come back as a new owner: per identity when it authenticated, else per peer address (identities behind one
  proxy or NAT never spend each other's).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from codemode.errors import PolicyDenied
from codemode.identity import client_key
from codemode.session_names import LOCAL_OWNER

PROVISIONAL_IDLE_S = 300.0
"""How long a provisional session (a sessionless client's first interpreter) is kept if its handle never
comes back."""
WINDOW_S = 60.0


@dataclass(frozen=True)
class Owner:
    """The client an execution runs for.

    ``key`` must be unguessable for remote clients: whoever presents it reaches the owner's sessions.
    ``peer`` is where the client's requests come from (an IP address over HTTP). ``provisional`` marks a
    sessionless client's first call, whose handle may never come back. ``identity`` is who authenticated
    (:mod:`codemode.identity`): audited, and the key of its own policy rules.
    """

    key: str
    peer: str = "local"
    provisional: bool = False
    identity: str = "local"


LOCAL = Owner(LOCAL_OWNER)


@dataclass
class Session:
    """One live session as the engine tracks it."""

    owner: str
    provisional: bool
    """Created for a sessionless client's first call and not used since: may be reclaimed for others."""
    client: str = LOCAL_OWNER
    """Who holds it across owners (:func:`client_of`)."""
    lock: anyio.Lock = field(default_factory=lambda: anyio.Lock(fast_acquire=True))
    """Held by the execution running in the session. A free lock is taken without a trip through the event
    loop (an execution awaits its program right after anyway), which was one loop iteration per execution."""
    last_used: float = field(default_factory=time.monotonic)


class Sessions:
    """The live sessions, keyed by their directory name (see :func:`codemode.session_names.session_dir`).

    ``per_owner`` defaults to ``max(4, max_sessions // 4)``, ``new_per_minute`` to ``max(8, max_sessions)``
    and ``new_per_minute_per_peer`` to four times that.
    """

    def __init__(
        self,
        *,
        max_sessions: int,
        idle_s: float,
        per_minute: int,
        close: Callable[[str], Awaitable[None]],
        per_owner: int | None = None,
        per_client: int | None = None,
        new_per_minute: int | None = None,
        new_per_minute_per_peer: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_sessions = max_sessions
        self.per_owner = min(max_sessions, per_owner or max(4, max_sessions // 4))
        # Half the slots: however many owners one client mints and keeps (a sessionless client gets one per call
        # and claims each by passing its handle back once), another client still finds room.
        self.per_client = min(max_sessions, max(self.per_owner, per_client or max_sessions // 2))
        self.idle_s = idle_s
        self.provisional_idle_s = min(idle_s, PROVISIONAL_IDLE_S)
        self._close = close
        self._clock = clock
        new = new_per_minute or max(8, max_sessions)
        self._executions = _Windows(per_minute, clock)
        self._new_by_owner = _Windows(new, clock)
        self._new_by_peer = _Windows(new_per_minute_per_peer or 4 * new, clock)
        self._live: dict[str, Session] = {}
        self._admitting = anyio.Lock()

    def __contains__(self, key: str) -> bool:
        return key in self._live

    def remembered(self) -> int:
        """How many clients and addresses the rate windows hold (pruning keeps it to the last minute's)."""
        return sum(len(w) for w in (self._executions, self._new_by_owner, self._new_by_peer))

    def __len__(self) -> int:
        return len(self._live)

    def owned_by(self, owner: str) -> list[str]:
        """The keys of ``owner``'s live sessions."""
        return [key for key, state in self._live.items() if state.owner == owner]

    async def admit(self, key: str, owner: Owner) -> Session:
        """The session ``key`` of ``owner`` to run an execution in (created if new).

        Raises:
            PolicyDenied: the owner's rate limit or new-session limit is spent, or there is no room for a
                new session without closing another client's session or one that is running code.
        """
        state = self._live.get(key)
        if state is None:
            async with self._admitting:  # one new session at a time, so the caps hold
                state = self._live.get(key)
                if state is None:
                    return await self._create(key, owner)
        if state.owner != owner.key:  # keys are derived from the owner: this is a bug, not a client's doing
            raise RuntimeError(f"session {key} belongs to another owner")
        self._spend(self._executions, _rate_key(owner), "executions per minute per client", "")
        if not owner.provisional:
            state.provisional = False  # its handle came back: the client keeps it
        return state

    async def _create(self, key: str, owner: Owner) -> Session:
        rate, client = _rate_key(owner), client_of(owner)
        self._check(self._executions, rate, "executions per minute per client", "")
        hint = "; reuse a session instead of starting new ones (sessionless HTTP: pass back your session handle)"
        self._check(self._new_by_owner, rate, "new sessions per minute per client", hint)
        across = "from one client's handles" if client.startswith(AUTHENTICATED) else "from one address"
        self._check(self._new_by_peer, client, f"new sessions per minute {across}", hint)
        await self._make_room(owner)
        state = self._live[key] = Session(owner.key, owner.provisional, client, last_used=self._clock())
        self._new_by_owner.add(rate)
        self._new_by_peer.add(client)
        self._executions.add(rate)
        return state

    def _check(self, windows: _Windows, key: str, what: str, hint: str) -> None:
        wait = windows.wait_s(key)
        if wait:
            raise PolicyDenied(f"rate limit: at most {windows.limit} {what}; retry in {wait:.0f} s{hint}")

    def _spend(self, windows: _Windows, key: str, what: str, hint: str) -> None:
        self._check(windows, key, what, hint)
        windows.add(key)

    async def _make_room(self, owner: Owner) -> None:
        """Close one session if ``owner`` may not open another as things stand; never another's in use."""
        cap = self.max_sessions if owner.key == LOCAL_OWNER else self.per_owner
        if await self._keep_under(cap, lambda s: s.owner == owner.key, "this client's"):
            return
        client = client_of(owner)
        if client.startswith(AUTHENTICATED) and await self._keep_under(
            self.per_client, lambda s: s.client == client, "this client's (across its session handles)"
        ):
            return
        if len(self._live) < self.max_sessions:
            return
        idle_mine = sorted(
            (s.last_used, k) for k, s in self._live.items() if s.owner == owner.key and not s.lock.locked()
        )
        if idle_mine:
            await self.close(idle_mine[0][1])
            return
        unclaimed = sorted((s.last_used, k) for k, s in self._live.items() if s.provisional and not s.lock.locked())
        if unclaimed:
            await self.close(unclaimed[0][1])
            return
        raise PolicyDenied(
            f"too many sessions: all {self.max_sessions} are in use by other clients or running code; retry later"
        )

    async def _keep_under(self, cap: int, holds: Callable[[Session], bool], whose: str) -> bool:
        """With ``cap`` or more of the sessions ``holds`` picks, close their least recently used idle one and say
        so; refuse when every one of them is running code. False: under the cap, nothing closed."""
        held = [(state.last_used, key) for key, state in self._live.items() if holds(state)]
        if len(held) < cap:
            return False
        idle = sorted((t, k) for t, k in held if not self._live[k].lock.locked())
        if not idle:
            raise PolicyDenied(f"too many sessions: all {cap} of {whose} are running code; retry later")
        await self.close(idle[0][1])
        return True

    async def close(self, key: str) -> None:
        """Forget a session and have its interpreter closed."""
        self._live.pop(key, None)
        await self._close(key)

    async def close_owner(self, owner: str) -> None:
        """Close every session of ``owner`` not running code (one that is expires when idle)."""
        for key in self.owned_by(owner):
            state = self._live.get(key)
            if state is not None and not state.lock.locked():
                await self.close(key)

    async def expire_once(self) -> None:
        """Close the sessions idle for too long (never one running code); forget stale rate windows."""
        now = self._clock()
        for key, state in list(self._live.items()):
            limit = self.provisional_idle_s if state.provisional else self.idle_s
            if now - state.last_used > limit and not state.lock.locked():
                await self.close(key)
        for windows in (self._executions, self._new_by_owner, self._new_by_peer):
            windows.prune()

    async def expire_idle(self) -> None:
        """Run forever: :meth:`expire_once` every little while."""
        while True:
            await anyio.sleep(min(60.0, self.provisional_idle_s / 4))
            await self.expire_once()


AUTHENTICATED = "identity:"
"""The prefix of a client that authenticated: only such clients' sessions are counted together. Clients that did
not (a loopback server without tokens) share their address with each other, so they are told apart by owner."""


def _rate_key(owner: Owner) -> str:
    """Whose count an owner's executions and new sessions spend: its authenticated client's (however many MCP
    sessions or handles it opens), else its own (anonymous clients share an address; they are told apart by
    owner, and the address's count of new sessions bounds how many owners one can mint)."""
    client = client_of(owner)
    return client if client.startswith(AUTHENTICATED) else owner.key


def client_of(owner: Owner) -> str:
    """Who ``owner`` is across the owners one client can hold: the identity that authenticated, else (nobody
    did) the peer address. The local owner is one client of its own."""
    if owner.key == LOCAL_OWNER:
        return LOCAL_OWNER
    return client_key(owner.identity, owner.peer)


class _Windows:
    """At most ``limit`` events per key in any sliding minute."""

    def __init__(self, limit: int, clock: Callable[[], float]) -> None:
        self.limit = limit
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}

    def wait_s(self, key: str) -> float:
        """0 if one more event is allowed for ``key`` now, else how many seconds until it is."""
        window = self._seen.get(key)
        if window is None:
            return 0.0
        now = self._clock()
        while window and now - window[0] >= WINDOW_S:
            window.popleft()
        return max(WINDOW_S - (now - window[0]), 1.0) if len(window) >= self.limit else 0.0

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, key: str) -> None:
        self._seen.setdefault(key, deque()).append(self._clock())

    def prune(self) -> None:
        """Forget keys with no event in the last minute."""
        now = self._clock()
        for key, window in list(self._seen.items()):
            if not window or now - window[-1] >= WINDOW_S:
                del self._seen[key]
