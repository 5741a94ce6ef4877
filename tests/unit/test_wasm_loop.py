"""The hop between an instance thread and the event loop: a call's result, its failure, a loop that goes away."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

from codemode.executors.wasm.loop import LoopLink, Signal

pytestmark = pytest.mark.anyio


async def _answer(value: Any) -> Any:
    await anyio.lowlevel.checkpoint()
    return value


async def _fail() -> None:
    await anyio.lowlevel.checkpoint()
    raise ValueError("refused")


async def test_a_thread_gets_the_coroutines_result_or_its_exception() -> None:
    link = LoopLink.current()
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[Any]] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        tasks.append(asyncio.Task(coro, loop=loop, **kwargs))
        return tasks[-1]

    loop.set_task_factory(factory)
    try:
        assert await anyio.to_thread.run_sync(link.run, _answer(b"reply")) == b"reply"
        # A value that is an exception is a value, not a failure.
        error = ValueError("a value")
        assert await anyio.to_thread.run_sync(link.run, _answer(error)) is error
        with pytest.raises(ValueError, match="refused"):
            await anyio.to_thread.run_sync(link.run, _fail())
    finally:
        loop.set_task_factory(None)
    # The failure went to the thread: its task must not keep it too (asyncio would log it as never retrieved).
    assert len(tasks) == 3 and all(task.done() and task.exception() is None for task in tasks)


def test_a_call_in_flight_when_the_loop_shuts_down_is_cancelled_and_one_after_is_refused() -> None:
    outcomes: list[BaseException] = []
    links: list[LoopLink] = []
    linked, started = threading.Event(), threading.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    def instance_thread() -> None:
        linked.wait()
        try:
            links[0].run(forever())
        except BaseException as exc:
            outcomes.append(exc)

    async def main() -> None:
        links.append(LoopLink.current())
        linked.set()
        await asyncio.get_running_loop().run_in_executor(None, started.wait)
        # Returning with the call in flight: asyncio.run cancels its task on the way out.

    caller = threading.Thread(target=instance_thread)
    caller.start()
    asyncio.run(main())
    caller.join(10)
    assert not caller.is_alive() and len(outcomes) == 1 and isinstance(outcomes[0], asyncio.CancelledError)
    late = forever()
    with pytest.raises(RuntimeError, match="closed"):
        links[0].run(late)
    assert late.cr_frame is None  # closed, not left to warn that it was never awaited


async def test_a_signal_set_after_its_waiter_was_cancelled_is_a_no_op() -> None:
    link = LoopLink.current()
    signal = Signal(link)
    with anyio.move_on_after(0.01):
        await signal.wait()
    signal.set()  # the loop runs setters unguarded: this must not raise InvalidStateError
    done = Signal(link)
    link.notify(done.set)
    with anyio.fail_after(10):
        await done.wait()
