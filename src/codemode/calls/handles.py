"""Results kept on the host: big tool results stay here and the program reads them through a handle.

A result over ``Limits.handle_bytes`` is put in the :class:`ResultStore` under its session and the guest
gets a descriptor (``{id, type, length, size, preview, room}``) that ``codemode_runtime.handles`` wraps in
a ``ResultHandle``; the guest then reads parts of it with the ``fetch`` op (:mod:`codemode.calls.fetch`).

A handle id is 128 random bits, and it is only ever looked up among its own session's results: an id
from another session (or made up) finds nothing. The store has two byte budgets, counted in the results'
JSON size: one per session and one for the whole host. A new result evicts its session's least recently
read results first, then the host's; a fetch of an evicted handle fails saying so. Closing a session
drops its results.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

DEFAULT_SESSION_BYTES = 256 * 1024 * 1024
DEFAULT_TOTAL_BYTES = 1024 * 1024 * 1024


@dataclass
class Kept:
    """One result kept for a session."""

    id: str
    session: str
    value: Any
    size: int
    """The result's size as JSON (what the budgets count)."""
    keys: dict[int, list[str]] = field(default_factory=dict)
    """An object node's keys in order, by ``id()`` of the node, made on its first sliced read (an object
    read a chunk at a time would otherwise be walked from its start for every chunk)."""
    sizes: dict[int, int] = field(default_factory=dict)
    """Nodes' JSON sizes by ``id()``, measured once (the kept value never changes, so ids stay valid)."""

    def size_of(self, node: Any) -> int:
        """``node``'s JSON size (a part of :attr:`value`), measured once."""
        if node is self.value:
            return self.size
        found = self.sizes.get(id(node))
        if found is None:
            from codemode.calls.fetch import json_size

            found = self.sizes[id(node)] = json_size(node)
        return found

    def keys_of(self, node: dict[str, Any]) -> list[str]:
        """``list(node)``, made once per node (the kept value never changes)."""
        found = self.keys.get(id(node))
        if found is None:
            found = self.keys[id(node)] = list(node)
        return found


class ResultStore:
    """Results kept on the host, per session, within a per-session and a host-wide byte budget.

    Thread-safe: results are kept on the event loop and read on the WASM executor's instance threads.
    """

    def __init__(self, *, session_bytes: int = DEFAULT_SESSION_BYTES, total_bytes: int = DEFAULT_TOTAL_BYTES) -> None:
        if session_bytes <= 0 or total_bytes <= 0:
            raise ValueError("the result store's budgets must be positive")
        self.session_bytes = min(session_bytes, total_bytes)
        self.total_bytes = total_bytes
        self._lru: OrderedDict[tuple[str, str], Kept] = OrderedDict()
        """Every kept result, least recently used first."""
        self._sessions: dict[str, dict[str, Kept]] = {}
        self._used: dict[str, int] = {}
        self._client: dict[str, str] = {}
        """Session → the client that keeps results in it (one client may hold many sessions)."""
        self.used = 0
        """Bytes kept on the whole host."""
        self.evicted = 0
        """How many results were dropped to make room (for tests and status)."""
        self._lock = threading.Lock()

    def keep(self, session: str, value: Any, size: int, *, client: str = "") -> Kept | None:
        """Keep ``value`` (``size`` bytes as JSON) for ``client``'s ``session`` and return its entry, or None when
        it is larger than a session may keep at all. Older results are evicted to make room: the session's own
        past its budget; past the host's, those of the client keeping the most, so that no client's results
        push out another's while it keeps more itself."""
        if size > self.session_bytes:
            return None
        with self._lock:
            return self._keep(session, value, size, client)

    def _keep(self, session: str, value: Any, size: int, client: str) -> Kept:
        own = self._sessions.setdefault(session, {})
        self._client.setdefault(session, client)
        while own and self._used.get(session, 0) + size > self.session_bytes:
            self._drop(next(k for k in self._lru if k[0] == session))
        while self._lru and self.used + size > self.total_bytes:
            self._drop(self._largest_clients_oldest(client, size))
        kept = Kept("h-" + secrets.token_urlsafe(16), session, value, size)
        self._sessions.setdefault(session, own)[kept.id] = kept
        self._lru[(session, kept.id)] = kept
        self._used[session] = self._used.get(session, 0) + size
        self.used += size
        return kept

    def _largest_clients_oldest(self, keeping: str, size: int) -> tuple[str, str]:
        """The least recently used result of the client keeping the most bytes (the keeping client counted with
        the result it keeps)."""
        held = {keeping: size}
        for session, used in self._used.items():
            client = self._client.get(session, "")
            held[client] = held.get(client, 0) + used
        # On a tie the keeping client gives way: another's results go only while it would keep less.
        largest = max(held, key=lambda c: (held[c], c == keeping))
        found = next((key for key in self._lru if self._client.get(key[0], "") == largest), None)
        return found if found is not None else next(iter(self._lru))

    def get(self, session: str, handle_id: str) -> Kept | None:
        """The result ``handle_id`` of ``session`` (marked as just used), or None: unknown, evicted, or
        another session's."""
        with self._lock:
            kept = self._sessions.get(session, {}).get(handle_id)
            if kept is not None:
                self._lru.move_to_end((session, handle_id))
            return kept

    def session_used(self, session: str) -> int:
        """Bytes kept for ``session``."""
        return self._used.get(session, 0)

    def forget(self, session: str) -> None:
        """Drop every result of ``session`` (it closed)."""
        with self._lock:
            for handle_id in list(self._sessions.get(session, {})):
                self._drop((session, handle_id), evicted=False)
            self._sessions.pop(session, None)
            self._used.pop(session, None)
            self._client.pop(session, None)

    def _drop(self, key: tuple[str, str], *, evicted: bool = True) -> None:
        kept = self._lru.pop(key)
        own = self._sessions.get(kept.session, {})
        own.pop(kept.id, None)
        self._used[kept.session] = self._used.get(kept.session, 0) - kept.size
        self.used -= kept.size
        if evicted:
            self.evicted += 1
