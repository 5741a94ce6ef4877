"""Programs parked on the host while a protocol 2026-07-28 client answers an approval.

Such a client has no back-channel for ``elicitation/create`` during a call. Instead, ``execute_python``
starts the program in the engine's task group and, when the gate needs the person's answer, returns an
``InputRequiredResult`` carrying the question and a ``request_state`` naming the parked program and that one
question (the SDK seals it: the client cannot forge or alter it). The client retries with its answer and the
same ``request_state``; the program, still blocked inside its tool call, goes on from there, so nothing runs
twice and its variables are intact. Each question has its own ticket, used up by its answer: the SDK's seal
binds a ``request_state`` to the call's arguments, not to one question, so without it an answer to the
program's first question, sent again, would answer its second. A program nobody resumes within
``approval_timeout_s`` is ended (:meth:`ParkedRun.abandon`), and the audit log keeps its journal.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from codemode.outcome import Outcome

STATE_SEPARATOR = "."
"""Between a run's id and its question's ticket in a ``request_state`` (neither contains it: both are
``secrets.token_urlsafe``)."""


@dataclass
class ParkedRun:
    """One program running for a sessionless client, and the question it waits on, if any."""

    id: str
    owner: str
    principal: str = ""
    """The credential that started it (``""``: none)."""
    caller: Any = None
    """The front's record of the client it runs for (its session handle goes back with the result)."""
    question: tuple[str, tuple[str, ...]] | None = None
    ticket: str = ""
    """The pending question's own random ticket (``""``: none pending); its answer uses it up."""
    outcome: Outcome | None = None
    failure: BaseException | None = None
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    _changed: anyio.Event = field(default_factory=anyio.Event)
    _answered: anyio.Event = field(default_factory=anyio.Event)
    _answer: str | None = None

    @property
    def finished(self) -> bool:
        return self.outcome is not None or self.failure is not None

    async def next_event(self) -> None:
        """Wait until the program asks a question or ends."""
        if self.question is None and not self.finished:
            await self._changed.wait()
        self._changed = anyio.Event()

    @property
    def request_state(self) -> str:
        """What names the pending question (the run and its ticket) in an ``InputRequiredResult``."""
        return f"{self.id}{STATE_SEPARATOR}{self.ticket}"

    def answer(self, value: str | None) -> None:
        """The client's answer to the pending question (None: declined); its ticket answers nothing again."""
        self._answer, self.question, self.ticket = value, None, ""
        self._answered.set()

    def abandon(self) -> None:
        """Nobody answered in time: end the program (the engine audits it as cancelled, with its journal)."""
        self.scope.cancel()

    async def __call__(self, question: str, choices: Sequence[str]) -> str | None:
        """The gate's :class:`~codemode.calls.gate.Asker` for this program."""
        self._answered = anyio.Event()
        self.question, self.ticket = (question, tuple(choices)), secrets.token_urlsafe(16)
        self._changed.set()
        await self._answered.wait()
        return self._answer

    def _ended(self) -> None:
        self._changed.set()


class ParkingLot:
    """The parked programs of one server, by id."""

    def __init__(self, spawn: Callable[[Callable[[], Coroutine[Any, Any, None]]], None]) -> None:
        self._spawn = spawn
        self._runs: dict[str, ParkedRun] = {}

    def __len__(self) -> int:
        return len(self._runs)

    def start(
        self, owner: str, execute: Callable[[ParkedRun], Awaitable[Outcome]], *, principal: str = "", caller: Any = None
    ) -> ParkedRun:
        """Start ``execute`` in the background; it asks its questions through the run it is given."""
        run = ParkedRun(secrets.token_urlsafe(16), owner, principal, caller)
        self._runs[run.id] = run

        async def go() -> None:
            try:
                with run.scope:
                    run.outcome = await execute(run)
                if run.outcome is None:
                    run.failure = TimeoutError("the program was ended: nobody answered its approval in time")
            except Exception as exc:  # reported to whoever waits on the run; the engine already logged it
                run.failure = exc
            finally:
                self._runs.pop(run.id, None)  # whoever waits holds the run itself
                run._ended()

        self._spawn(go)
        return run

    def pending(self, state: str, owner: str, *, principal: str = "", fresh: bool = False) -> ParkedRun | None:
        """The parked run whose pending question ``state`` (a :attr:`ParkedRun.request_state`) names, if
        ``owner`` started it (another client's run is as good as unknown). None when that question is not the
        one pending: already answered (its answer came before, or is sent again), or the run ended.
        Answer the run before any ``await``, so that no other answer can use the same question.

        ``fresh``: the caller is a sessionless client that presented no handle (the SDK's retry repeats the
        first call's arguments, which had none); it may resume a run started with the same credential, since
        the id reached it inside a ``request_state`` the SDK sealed (and bound to that credential)."""
        run_id, _, ticket = state.partition(STATE_SEPARATOR)
        run = self._runs.get(run_id)
        if run is None or run.question is None or not run.ticket:
            return None
        if not hmac.compare_digest(run.ticket.encode(), ticket.encode()):
            return None
        return run if run.owner == owner or (fresh and run.principal == principal) else None
