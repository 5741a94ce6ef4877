"""Sessions are owned by clients: one test per way one client could take or exhaust another's sessions.

In process and fast: :class:`Sessions` with a recording ``close`` and a fake clock, :func:`session_dir`,
and :class:`Handles`. The same attacks against a real ``serve --http`` are in
``tests/integration/test_serve_isolation.py``.
"""

from __future__ import annotations

import base64
import dataclasses
import re
from collections.abc import Awaitable, Callable

import anyio
import pytest

from codemode.errors import PolicyDenied
from codemode.identity import ANONYMOUS
from codemode.session_names import (
    LOCAL_OWNER,
    Handles,
    check_session_name,
    local_session,
    safe_session_name,
    session_dir,
)
from codemode.sessions import LOCAL, Owner, Sessions

pytestmark = pytest.mark.anyio

ALICE, MALLORY = Owner("alice", "10.0.0.1"), Owner("mallory", "10.0.0.2")


class Clock:
    """A clock that moves only a hundredth of a second per reading unless moved on purpose."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 0.01
        return self.now


def _recorder(closed: list[str]) -> Callable[[str], Awaitable[None]]:
    async def close(key: str) -> None:
        closed.append(key)

    return close


def _sessions(closed: list[str], clock: Clock | None = None, **kwargs: int) -> Sessions:
    settings = {"max_sessions": 4, "idle_s": 1800, "per_minute": 1000, **kwargs}
    return Sessions(close=_recorder(closed), clock=clock or Clock(), **settings)  # type: ignore[arg-type]


async def _open(sessions: Sessions, owner: Owner, name: str) -> str:
    key = session_dir(owner.key, name)
    await sessions.admit(key, owner)
    return key


def test_a_name_reaches_only_its_owners_session() -> None:
    alices = session_dir("alice", "work")
    assert alices != session_dir("mallory", "work")
    assert session_dir(LOCAL_OWNER, "work") == "work"  # stdio and `codemode run` keep readable names
    # Nor can a name be made to look like another owner's directory, locally or remotely.
    assert session_dir(LOCAL_OWNER, alices) != alices
    assert session_dir("mallory", alices) != alices
    assert session_dir("alice", "a/b") != session_dir("alice", "a_b")  # names made safe stay distinct
    for name in ("work", "", "../..", "x" * 500, "\udcff", alices):
        check_session_name(session_dir("alice", name))
        check_session_name(session_dir(LOCAL_OWNER, name))
        # Whose a directory is, read back from its name (a skill saved there is run as the local user or not).
        assert local_session(session_dir("alice", name)) is False
        assert local_session(session_dir(LOCAL_OWNER, name)) is (name in ("work", ""))


def test_a_handle_cannot_be_made_up_or_borrowed() -> None:
    handles = Handles()
    handle = handles.mint(principal="")
    assert handles.owner(handle, principal="") == handles.owner(handle, principal="") is not None
    assert handles.mint(principal="") != handle
    nonce, mac = handle.removeprefix("cmh_").split(".")
    for forged in (f"cmh_{nonce}.", f"cmh_{nonce}", f"cmh_{nonce}x.{mac}", f"cmh_x.{mac}", "cmh_", "", nonce):
        assert handles.owner(forged, principal="") is None, forged
    assert handles.owner(handle, principal="another credential") is None
    assert Handles().owner(handle, principal="") is None  # another process (or a restart) did not mint it


async def test_opening_many_names_evicts_only_your_own_sessions() -> None:
    closed: list[str] = []
    sessions = _sessions(closed, max_sessions=4, new_per_minute=100)
    alices = await _open(sessions, ALICE, "mine")
    mallorys = [await _open(sessions, MALLORY, f"n{i}") for i in range(10)]
    assert alices in sessions and alices not in closed
    assert closed == mallorys[:7] and sessions.owned_by("mallory") == mallorys[7:]


async def test_a_client_holds_at_most_its_share() -> None:
    closed: list[str] = []
    sessions = _sessions(closed, max_sessions=32, new_per_minute=100)
    assert sessions.per_owner == 8
    for i in range(12):
        await _open(sessions, MALLORY, f"n{i}")
    assert len(sessions.owned_by("mallory")) == 8 and len(closed) == 4
    for i in range(40):  # the local owner (stdio, `codemode run`) is the process's only client: every slot
        await _open(sessions, LOCAL, f"l{i}")
    assert len(sessions.owned_by(LOCAL_OWNER)) == 24


async def test_a_client_minting_owners_still_holds_at_most_half_the_server() -> None:
    # A sessionless client gets a new owner with each call it makes without a handle, and keeps each one by
    # passing its handle back once: per owner it holds one session, but the sessions are all its own.
    closed: list[str] = []
    sessions = _sessions(closed, max_sessions=32, new_per_minute=1000, new_per_minute_per_peer=1000)
    assert sessions.per_client == 16
    for i in range(40):
        minted = Owner(f"m{i}", f"10.9.0.{i}", identity="mallory")  # from many addresses, one credential
        key = await _open(sessions, minted, "default")
        await sessions.admit(key, dataclasses.replace(minted, provisional=False))
    held = [key for i in range(40) if (key := session_dir(f"m{i}", "default")) in sessions]
    assert held == [session_dir(f"m{i}", "default") for i in range(24, 40)]  # its most recent 16
    assert len(closed) == 24 and len(sessions) == 16
    alices = [await _open(sessions, dataclasses.replace(ALICE, identity="alice"), f"a{i}") for i in range(8)]
    assert all(key in sessions for key in alices) and len(closed) == 24
    # Nobody authenticated (a loopback server without tokens): clients share the address, so each owner is
    # its own client and none closes another's session.
    closed.clear()
    sessions = _sessions(closed, max_sessions=32, new_per_minute=1000, new_per_minute_per_peer=1000)
    for i in range(20):
        await _open(sessions, Owner(f"x{i}", "127.0.0.1", identity=ANONYMOUS), "default")
    assert closed == [] and len(sessions) == 20


async def test_a_full_server_refuses_rather_than_evicting_another_client() -> None:
    closed: list[str] = []
    sessions = _sessions(closed, max_sessions=4)
    owners = [Owner(f"o{i}", f"10.0.1.{i}") for i in range(4)]
    for owner in owners:
        await _open(sessions, owner, "s")
    with pytest.raises(PolicyDenied, match="in use by other clients"):
        await _open(sessions, MALLORY, "s")
    assert closed == []


async def test_a_session_running_code_is_never_closed_to_make_room() -> None:
    closed: list[str] = []
    sessions = _sessions(closed, max_sessions=4, per_owner=2)
    busy = [session_dir("mallory", name) for name in ("a", "b")]
    for key in busy:
        state = await sessions.admit(key, MALLORY)
        await state.lock.acquire()
    with pytest.raises(PolicyDenied, match="running code"):
        await _open(sessions, MALLORY, "c")
    assert closed == []


async def test_provisional_sessions_make_room_but_claimed_ones_do_not() -> None:
    closed: list[str] = []
    sessions = _sessions(closed, max_sessions=3)
    first_calls = []
    for i in range(3):  # sessionless clients' first calls: each a new owner
        first_calls.append(await _open(sessions, Owner(f"h{i}", "10.0.2.1", provisional=True), "default"))
    await sessions.admit(first_calls[1], Owner("h1", "10.0.2.1"))  # h1 came back with its handle: claimed
    alices = await _open(sessions, ALICE, "mine")  # the server is full: the oldest unclaimed one makes room
    assert closed == [first_calls[0]]
    await _open(sessions, MALLORY, "x")
    assert closed == [first_calls[0], first_calls[2]]
    with pytest.raises(PolicyDenied):  # only claimed sessions left (Alice's, h1's, Mallory's)
        await _open(sessions, Owner("late", "10.0.3.1"), "s")
    assert first_calls[1] in sessions and alices in sessions


async def test_unclaimed_sessions_expire_sooner() -> None:
    closed: list[str] = []
    clock = Clock()
    sessions = _sessions(closed, clock, max_sessions=8)
    unclaimed = await _open(sessions, Owner("h0", "10.0.2.1", provisional=True), "default")
    await _open(sessions, ALICE, "mine")
    clock.now += sessions.provisional_idle_s + 1
    await sessions.expire_once()
    assert closed == [unclaimed]


async def test_the_execution_rate_is_per_client_not_per_name() -> None:
    closed: list[str] = []
    clock = Clock()
    sessions = _sessions(closed, clock, max_sessions=8, per_minute=3)
    for name in ("a", "b", "a"):
        await _open(sessions, MALLORY, name)
    with pytest.raises(PolicyDenied, match="at most 3 executions per minute per client"):
        await _open(sessions, MALLORY, "c")
    with pytest.raises(PolicyDenied, match="per client"):
        await _open(sessions, MALLORY, "a")
    await _open(sessions, ALICE, "a")  # another client is not held up
    clock.now += 60
    await _open(sessions, MALLORY, "c")


async def test_new_sessions_are_rate_limited_per_client_and_per_address() -> None:
    closed: list[str] = []
    clock = Clock()
    sessions = _sessions(closed, clock, max_sessions=8, new_per_minute=3, new_per_minute_per_peer=5)
    for i in range(3):
        await _open(sessions, MALLORY, f"n{i}")
    with pytest.raises(PolicyDenied, match="at most 3 new sessions per minute per client"):
        await _open(sessions, MALLORY, "n3")
    await _open(sessions, MALLORY, "n2")  # an existing session is not a new one
    # Starting over as new owners (a sessionless client without its handle) runs into the address's limit.
    await _open(sessions, Owner("h1", MALLORY.peer, provisional=True), "default")
    await _open(sessions, Owner("h2", MALLORY.peer, provisional=True), "default")
    with pytest.raises(PolicyDenied, match="at most 5 new sessions per minute from one address"):
        await _open(sessions, Owner("h3", MALLORY.peer, provisional=True), "default")
    await _open(sessions, ALICE, "mine")  # another address is not held up
    clock.now += 60
    await _open(sessions, Owner("h3", MALLORY.peer, provisional=True), "default")


async def test_closing_an_owner_closes_only_its_idle_sessions() -> None:
    closed: list[str] = []
    sessions = _sessions(closed, max_sessions=8)
    alices = await _open(sessions, ALICE, "mine")
    idle, busy = await _open(sessions, MALLORY, "idle"), session_dir("mallory", "busy")
    await (await sessions.admit(busy, MALLORY)).lock.acquire()
    await sessions.close_owner("mallory")
    assert closed == [idle] and busy in sessions and alices in sessions


async def test_the_per_client_cap_closes_the_clients_least_recently_used_session() -> None:
    closed: list[str] = []
    sessions = _sessions(closed, max_sessions=32, new_per_minute=100)
    keys = [await _open(sessions, MALLORY, f"n{i}") for i in range(8)]
    (await sessions.admit(keys[0], MALLORY)).last_used += 100  # used again (the engine stamps it): n1 is oldest
    await _open(sessions, MALLORY, "n8")
    await _open(sessions, MALLORY, "n9")
    assert closed == [keys[1], keys[2]] and keys[0] in sessions


async def test_new_sessions_default_to_eight_a_minute_on_a_small_server() -> None:
    closed: list[str] = []
    sessions = Sessions(max_sessions=4, idle_s=1800, per_minute=1000, close=_recorder(closed), clock=Clock())
    for i in range(8):
        await _open(sessions, MALLORY, f"n{i}")
    with pytest.raises(PolicyDenied, match="at most 8 new sessions per minute per client"):
        await _open(sessions, MALLORY, "n8")
    assert sessions.per_owner == 4
    # From one address: four times the per-client rate (new owners: a sessionless client without its handle).
    roomy = Sessions(max_sessions=8, idle_s=1800, per_minute=1000, close=_recorder(closed), clock=Clock())
    assert roomy.per_owner == 4
    for i in range(32):
        await _open(roomy, Owner(f"h{i}", MALLORY.peer, provisional=True), "default")
    with pytest.raises(PolicyDenied, match="at most 32 new sessions per minute from one address"):
        await _open(roomy, Owner("h32", MALLORY.peer, provisional=True), "default")


async def test_the_rate_window_is_a_sliding_minute() -> None:
    # Events age out one by one: a burst a minute ago does not count, the one 30 s ago still does.
    closed: list[str] = []
    clock = Clock()
    sessions = _sessions(closed, clock, max_sessions=8, per_minute=3)
    for name in ("a", "a"):
        await _open(sessions, MALLORY, name)
    clock.now += 30
    await _open(sessions, MALLORY, "a")
    clock.now += 29.5  # 59.5 s after the first two: still inside their minute
    with pytest.raises(PolicyDenied, match="at most 3 executions per minute per client; retry in 1 s"):
        await _open(sessions, MALLORY, "a")
    clock.now += 1  # the first two have aged out, the third has not
    await _open(sessions, MALLORY, "a")
    await _open(sessions, MALLORY, "a")
    with pytest.raises(PolicyDenied, match="per client"):
        await _open(sessions, MALLORY, "a")


async def test_unclaimed_sessions_are_kept_five_minutes() -> None:
    closed: list[str] = []
    clock = Clock()
    sessions = _sessions(closed, clock, max_sessions=8)
    unclaimed = await _open(sessions, Owner("h0", "10.0.2.1", provisional=True), "default")
    clock.now += 299
    await sessions.expire_once()
    assert closed == []
    clock.now += 1
    await sessions.expire_once()
    assert closed == [unclaimed]


async def test_rate_windows_of_clients_gone_quiet_are_forgotten() -> None:
    # Many one-off clients (new handles, new addresses) must not grow the host's memory without bound.
    closed: list[str] = []
    clock = Clock()
    sessions = _sessions(closed, clock, max_sessions=4, new_per_minute=100, new_per_minute_per_peer=100)
    for i in range(20):
        await _open(sessions, Owner(f"h{i}", f"10.0.4.{i}", provisional=True), "default")
    assert sessions.remembered() == 60
    clock.now += 59
    await sessions.expire_once()  # still inside their minute: forgetting them would reset their limits
    assert sessions.remembered() == 60
    clock.now += 1
    await sessions.expire_once()
    assert sessions.remembered() == 0


async def test_idle_sessions_are_closed_by_the_background_expiry() -> None:
    clock = Clock()
    expired = anyio.Event()

    async def close(key: str) -> None:
        expired.set()

    sessions = Sessions(max_sessions=4, idle_s=0.04, per_minute=1000, close=close, clock=clock)
    await sessions.admit(session_dir("alice", "s"), ALICE)
    clock.now += 1
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sessions.expire_idle)
            await expired.wait()
            tg.cancel_scope.cancel()
    assert session_dir("alice", "s") not in sessions


def test_a_handle_carries_a_144_bit_nonce_and_a_128_bit_mac() -> None:
    handles = Handles()
    handle = handles.mint(principal="")
    nonce, mac = handle.removeprefix("cmh_").split(".")
    assert len(base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))) == 18  # unguessable
    assert len(base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4))) == 16  # unforgeable
    assert re.fullmatch(r"h-[0-9a-f]{32}", handles.owner(handle, principal="") or "")  # 128 bits of owner key


def test_a_long_name_keeps_its_first_128_characters() -> None:
    assert safe_session_name("x" * 500) == "x" * 128
    assert re.fullmatch(r"x{80}\.[0-9a-f]{24}", session_dir("alice", "x" * 500))  # a remote owner's: 80 + digest
    check_session_name(safe_session_name("x" * 500))


def test_local_names_that_clean_to_the_same_stay_distinct() -> None:
    # On stdio `a/b` and `a_b` shared one interpreter (and its variables), as did two long names alike in
    # their first 128 characters; the schema promises that only calls with the same name share.
    pairs = [("a/b", "a_b"), ("x" * 128 + "1", "x" * 128 + "2"), ("..work", "work")]
    for one, other in pairs:
        assert session_dir(LOCAL_OWNER, one) != session_dir(LOCAL_OWNER, other), (one, other)
        check_session_name(session_dir(LOCAL_OWNER, one))
    assert session_dir(LOCAL_OWNER, "cli") == "cli"  # a valid local name stays readable
    assert session_dir(LOCAL_OWNER, "") == "default"


async def test_the_expiry_sweep_never_forgets_a_clients_recent_executions() -> None:
    closed: list[str] = []
    clock = Clock()
    sessions = _sessions(closed, clock, max_sessions=8, per_minute=2)
    await _open(sessions, MALLORY, "a")
    clock.now += 1
    await _open(sessions, MALLORY, "a")
    clock.now += 59.5  # the first has aged out, the second (59.5 s old) has not
    await _open(sessions, MALLORY, "a")
    clock.now += 0.7  # the sweep runs when the oldest remembered one is a minute old, the newest is not
    await sessions.expire_once()
    await _open(sessions, MALLORY, "a")
    with pytest.raises(PolicyDenied, match="at most 2 executions per minute per client"):
        await _open(sessions, MALLORY, "a")


def test_a_client_over_its_rate_is_told_when_the_oldest_event_ages_out() -> None:
    # The retry hint counts from the oldest event in the window (not the newest, not the clock's origin): a
    # client told "1 s" retries into another refusal, one told too long waits for nothing.
    from codemode.sessions import WINDOW_S, _Windows

    now = [1000.0]
    windows = _Windows(2, lambda: now[0])
    windows.add("client")
    now[0] += 10
    assert windows.wait_s("client") == 0.0  # one event of two: still allowed
    windows.add("client")
    now[0] += 5
    assert windows.wait_s("client") == WINDOW_S - 15
    assert windows.wait_s("another") == 0.0
    now[0] += WINDOW_S - 15  # the oldest has aged out: allowed again
    assert windows.wait_s("client") == 0.0


async def test_an_authenticated_clients_owners_share_its_rates_and_not_anothers_at_the_same_address() -> None:
    # Behind one proxy: alice's new MCP sessions and handles spend alice's counts, never bob's.
    closed: list[str] = []
    clock = Clock()
    sessions = _sessions(closed, clock, max_sessions=64, per_minute=4, new_per_minute=3, new_per_minute_per_peer=5)
    alice = [Owner(f"alice-{i}", "10.0.0.9", identity="alice") for i in range(6)]
    for owner in alice[:3]:
        await _open(sessions, owner, "default")
    with pytest.raises(PolicyDenied, match="at most 3 new sessions per minute per client"):
        await _open(sessions, alice[3], "default")
    await _open(sessions, alice[0], "default")  # the fourth execution of alice's across her owners
    with pytest.raises(PolicyDenied, match="at most 4 executions per minute per client"):
        await _open(sessions, alice[1], "default")
    bob = Owner("bob-0", "10.0.0.9", identity="bob")
    await _open(sessions, bob, "default")  # the same address, another client: nothing of alice's is his
    clock.now += 60
    await _open(sessions, alice[3], "default")


async def test_an_authenticated_client_minting_owners_meets_its_own_limit_of_new_sessions() -> None:
    closed: list[str] = []
    clock = Clock()
    sessions = _sessions(closed, clock, max_sessions=64, new_per_minute=1000, new_per_minute_per_peer=5)
    for i in range(5):
        await _open(sessions, Owner(f"h{i}", "10.0.0.9", provisional=True, identity="alice"), "default")
    with pytest.raises(PolicyDenied, match="at most 5 new sessions per minute from one client's handles"):
        await _open(sessions, Owner("h5", "10.0.0.9", provisional=True, identity="alice"), "default")
    await _open(sessions, Owner("b0", "10.0.0.9", provisional=True, identity="bob"), "default")
    await _open(sessions, Owner("anon", "10.0.0.9", provisional=True), "default")  # anonymous: the address's count
