"""Resource exhaustion inside the WASM sandbox: CPU, wall time, memory, recursion, output, disk, threads.

Every breach must end with its specific error, quickly, without hurting the host: the executor keeps
serving (``assert_healthy``), no interpreter thread or child process outlives it (autouse fixture).
"""

from __future__ import annotations

import gc
import logging
import os
import re
import threading
import uuid
from pathlib import Path

import anyio
import pytest

from codemode.executors import Executor, Limits
from codemode.executors.pool import PooledExecutor
from codemode.executors.wasm import instance as instance_module
from tests.conftest import Sandbox
from tests.security.helpers import (
    ATTACK,
    assert_error,
    assert_healthy,
    child_processes,
    instance_threads,
    run,
    run_value,
    wait_for_no_instance_threads,
)

pytestmark = pytest.mark.anyio


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def test_infinite_loop_hits_the_wall_time_limit(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        result = await run(ex, "while True:\n    pass", limits=Limits(wall_s=1))
        assert_error(result, "SandboxTimeout", "1 s wall-time limit")
        assert result.instance_lost
        await assert_healthy(ex)


async def test_a_runs_own_trap_is_its_result_not_an_idle_interpreters_warning(
    demo_sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    # Only an interpreter that dies with no run to blame is logged; a run's trap is already in its result.
    caplog.set_level(logging.WARNING, logger="codemode.executors.wasm.instance")
    async with demo_sandbox.executor() as ex:
        result = await run(ex, "while True:\n    pass", limits=Limits(wall_s=1))
        assert_error(result, "SandboxTimeout")
    assert not wait_for_no_instance_threads(10)  # the lost interpreter's thread has logged what it would
    assert [r.getMessage() for r in caplog.records if "ended while idle" in r.getMessage()] == []


async def test_huge_sleep_is_cut_at_the_wall_time_limit(demo_sandbox: Sandbox) -> None:
    # The wait fails at the deadline (TimeoutError in the program) and the interpreter is kept.
    async with demo_sandbox.executor() as ex:
        for code in ("import time\ntime.sleep(1e9)", "import select\nselect.select([], [], [], 1e9)"):
            result = await run(ex, code, limits=Limits(wall_s=1))
            assert_error(result, "TimeoutError")
            assert not result.instance_lost
        await assert_healthy(ex)


METERED = Limits(fuel=40_000_000_000)
"""An executor that counts fuel (opt-in: the default one is bounded by its wall time alone)."""


async def test_busy_loop_runs_out_of_fuel(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor(limits=METERED) as ex:
        result = await run(ex, "x = 0\nwhile True:\n    x += 1", limits=Limits(fuel=20_000_000, wall_s=10))
        assert_error(result, "OutOfFuel", "20,000,000 fuel units")  # the fuel, not the 10 s wall time
        assert result.instance_lost
        await assert_healthy(ex)


async def test_a_metered_executors_own_budget_applies_when_a_run_sets_none(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor(limits=Limits(fuel=30_000_000)) as ex:
        assert await run_value(ex, "1 + 1") == 2
        assert_error(await run(ex, "while True:\n    pass"), "OutOfFuel", "30,000,000 fuel units")
        await assert_healthy(ex)


async def test_a_run_cannot_ask_an_executor_without_fuel_for_a_budget(demo_sandbox: Sandbox) -> None:
    # Silently running without the budget asked for would drop a limit: the caller is told instead.
    async with demo_sandbox.executor() as ex:
        with pytest.raises(ValueError, match="needs an executor that counts fuel"):
            await ex.run("1", limits=Limits(fuel=10_000_000))
        assert await run_value(ex, "1 + 1") == 2


async def test_fuel_is_per_execution_not_cumulative_bypassable(demo_sandbox: Sandbox) -> None:
    # Catching the trap is impossible from Python: `except BaseException` does not see it.
    code = "try:\n    while True:\n        pass\nexcept BaseException:\n    pass\n'survived'"
    async with demo_sandbox.executor(limits=METERED) as ex:
        assert_error(await run(ex, code, limits=Limits(fuel=20_000_000)), "OutOfFuel")
        assert_error(await run(ex, code, limits=Limits(wall_s=1)), "SandboxTimeout")
        await assert_healthy(ex)


async def test_string_and_bytes_bombs_raise_memory_errors(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        overflow = await run(ex, "x = 'a' * 10**10")  # wasm32: the size does not even fit an index
        assert not overflow.ok and overflow.error is not None
        assert overflow.error.type in ("OverflowError", "MemoryError"), overflow.error
        for code in ("x = 'a' * (2**31 - 1)", "x = bytearray(2**31 - 1)", "x = [0] * (2**28)"):
            assert_error(await run(ex, code), "MemoryError")
        await assert_healthy(ex)


async def test_growing_memory_stops_at_the_store_limit_not_the_host(demo_sandbox: Sandbox) -> None:
    rss_before = _rss_bytes()
    code = "def bomb():\n    hoard = []\n    while True:\n        hoard.append(bytearray(10**6))\nbomb()"
    async with demo_sandbox.executor(limits=Limits(memory_bytes=64 * 1024 * 1024)) as ex:
        result = await run(ex, code, limits=Limits(memory_bytes=64 * 1024 * 1024, wall_s=10))
        assert not result.ok and result.error is not None
        assert result.error.type in ("MemoryError", "SandboxMemoryError"), result.error
        grown = await run_value(ex, "import sys\nlen(bytearray(8 * 1024 * 1024))")
        assert grown == 8 * 1024 * 1024  # the hoard was freed with the frame: the session is usable
        assert _rss_bytes() - rss_before < 200 * 1024 * 1024
        await assert_healthy(ex)


async def test_recursion_bomb_is_a_recursion_error(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        result = await run(ex, "def f():\n    f()\nf()")
        assert_error(result, "RecursionError", "maximum recursion depth exceeded")
        assert not result.instance_lost
        await assert_healthy(ex)


async def test_deep_nesting_in_the_parser_json_and_repr(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        assert_error(await run(ex, "eval('(' * 100_000 + ')' * 100_000)"), "MemoryError", "too complex to parse")
        assert_error(await run(ex, "import json\njson.loads('[' * 100_000 + ']' * 100_000)"), "RecursionError")
        nested = "import sys\nsys.setrecursionlimit(10**6)\nl = []\nfor _ in range(10**5):\n    l = [l]\nrepr(l)"
        assert_error(await run(ex, nested), "RecursionError")
        deep_source = await run(ex, "exec('x = ' + '-' * 1_000_000 + '1')")
        assert not deep_source.ok and deep_source.error is not None
        assert deep_source.error.type in ("RecursionError", "MemoryError", "SyntaxError"), deep_source.error
        await assert_healthy(ex)


async def test_raised_recursion_limit_is_still_bounded(demo_sandbox: Sandbox) -> None:
    code = "import sys\nsys.setrecursionlimit(10**7)\ndef f(n):\n    return f(n + 1)\nf(0)"
    async with demo_sandbox.executor() as ex:
        result = await run(ex, code, limits=Limits(wall_s=1))
        assert not result.ok and result.error is not None
        assert result.error.type in ("SandboxTimeout", "MemoryError", "RecursionError", "SandboxMemoryError")
        await assert_healthy(ex)


async def test_a_gigabyte_of_print_stops_at_the_output_cap_quickly(demo_sandbox: Sandbox) -> None:
    code = "for _ in range(100_000):\n    print('x' * 10_000)"  # 1 GB
    async with demo_sandbox.executor() as ex:
        result = await run(ex, code, limits=Limits(output_chars=100_000, wall_s=10))  # not SandboxTimeout: stopped
        assert_error(result, "codemode_runtime.repl.OutputLimitExceeded", "more than 100,000 characters to stdout")
        assert len(result.stdout) == 100_000 and not result.instance_lost
        swallowed = "try:\n" + "".join(f"    {line}\n" for line in code.splitlines()) + "except Exception:\n    pass"
        assert_error(
            await run(ex, swallowed, limits=Limits(output_chars=100_000)), "codemode_runtime.repl.OutputLimitExceeded"
        )
        err = await run(
            ex, "import sys\nwhile True:\n    sys.stderr.write('e' * 10_000)", limits=Limits(output_chars=50_000)
        )
        assert_error(err, "codemode_runtime.repl.OutputLimitExceeded", "to stderr")
        assert len(err.stderr) == 50_000
        await assert_healthy(ex)


async def test_raw_descriptor_flood_never_reaches_the_host_unbounded(demo_sandbox: Sandbox) -> None:
    code = "import os\nfor _ in range(1000):\n    os.write(1, b'x' * 10**6)\n    os.write(2, b'y' * 10**6)\n'done'"
    rss_before = _rss_bytes()
    async with demo_sandbox.executor() as ex:
        result = await run(ex, code, limits=Limits(output_chars=100_000, wall_s=2))
        assert result.ok or (result.error is not None and result.error.type == "SandboxTimeout"), result.error
        assert len(result.stdout) <= 100_000 and len(result.stderr) <= 100_000
        assert _rss_bytes() - rss_before < 200 * 1024 * 1024
        await assert_healthy(ex)


async def test_huge_scratch_file_is_not_capped_but_goes_with_the_session(demo_sandbox: Sandbox) -> None:
    # Observed: /scratch has no size quota; a program may write as much as its wall time allows.
    session = f"disk-{uuid.uuid4().hex[:6]}"
    code = (
        "with open('/scratch/big', 'wb') as f:\n    for _ in range(30):\n        f.write(b'x' * 10**7)\n"
        "import os\nos.path.getsize('/scratch/big')"
    )
    async with demo_sandbox.executor() as ex:
        assert await run_value(ex, code, session=session, limits=Limits(wall_s=20)) == 300_000_000
        host_file = demo_sandbox.root / "scratch-wasm" / session / "big"
        assert host_file.stat().st_size == 300_000_000
        await assert_healthy(ex, (session,))
        await ex.close_session(session)
        assert not host_file.exists()


async def test_thread_bomb_starts_nothing(demo_sandbox: Sandbox) -> None:
    before = threading.active_count()
    code = (
        "import threading, _thread\nfailures = 0\nfor _ in range(10_000):\n    try:\n"
        "        threading.Thread(target=lambda: None).start()\n    except RuntimeError:\n        failures += 1\n"
        "    try:\n        _thread.start_new_thread(lambda: None, ())\n"
        "    except RuntimeError:\n        failures += 1\n"
        "[failures, threading.active_count()]"
    )
    async with demo_sandbox.executor() as ex:
        assert await run_value(ex, code, limits=Limits(wall_s=10)) == [20_000, 1]
        assert threading.active_count() <= before + 3  # instance + pool spare + alarm, nothing per attempt
        await assert_healthy(ex)


async def test_cancelling_a_run_kills_only_that_instance(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        assert isinstance(ex, PooledExecutor)

        async def spin() -> None:
            await ex.run("while True:\n    pass", session=ATTACK, limits=Limits(wall_s=30))

        async with anyio.create_task_group() as tg:
            tg.start_soon(spin)
            with anyio.fail_after(30):
                while ATTACK not in ex._sessions:  # noqa: ASYNC110  # no event marks a session's adoption
                    await anyio.sleep(0.01)
            worker = ex._sessions[ATTACK]
            await anyio.sleep(0.3)
            tg.cancel_scope.cancel()
        await anyio.to_thread.run_sync(worker.join, 10.0)
        assert worker.dead  # its program stopped with the run, not at its 30 s limit
        await assert_healthy(ex)


async def test_a_run_cancelled_before_its_interpreter_takes_it_never_starts(demo_sandbox: Sandbox) -> None:
    # Cancelled before the interpreter's thread picked the job up (a client gone at once, a loaded host): the
    # job must not start when it is picked up, else it runs to its wall limit and the lost interpreter then
    # idles for good, a thread and its memory that nothing will stop.
    async with demo_sandbox.executor(pool_size=1) as ex:
        with anyio.fail_after(60):
            while ex.pooled < 1:  # noqa: ASYNC110 (the pool offers no event to wait on)
                await anyio.sleep(0.02)
        (thread,) = instance_threads()
        with anyio.CancelScope() as scope:
            scope.cancel()
            await ex.run("while True:\n    pass", session=ATTACK, limits=Limits(wall_s=30))
        await anyio.to_thread.run_sync(thread.join, 20.0)
        assert not thread.is_alive(), "the cancelled job ran, and its interpreter lives on"
        await assert_healthy(ex)


async def test_stopping_one_interpreter_leaves_the_others_running(demo_sandbox: Sandbox) -> None:
    # Every interpreter runs on one shared engine, whose epoch counter is shared: an interrupt (a timeout, a
    # cancel) bumps it for all. Only the interpreter it was meant for may stop; the busy one beside it must
    # finish its work with its session intact.
    busy = "total = 0\nfor i in range(12_000_000):\n    total += i\ntotal + kept"
    expected = sum(range(12_000_000)) + 41
    async with demo_sandbox.executor() as ex:
        assert (await ex.run("kept = 41", session="busy")).ok
        finished: list[str] = []
        results: dict[str, object] = {}

        async def worker() -> None:
            results["busy"] = await ex.run(busy, session="busy", limits=Limits(wall_s=120))
            finished.append("busy")

        async def timed_out() -> None:
            results["loop"] = await run(ex, "while True:\n    pass", limits=Limits(wall_s=1))
            finished.append("loop")

        async def cancelled() -> None:
            with anyio.move_on_after(0.5):
                await ex.run("while True:\n    pass", session="cancelled", limits=Limits(wall_s=30))
            finished.append("cancelled")

        async with anyio.create_task_group() as tg:
            tg.start_soon(worker)
            tg.start_soon(timed_out)
            tg.start_soon(cancelled)
        # The busy program was still running when the others were stopped...
        assert finished.index("busy") == 2, finished
        assert_error(results["loop"], "SandboxTimeout")  # type: ignore[arg-type]
        # ...and was not stopped with them.
        busy_result = results["busy"]
        assert busy_result.ok and busy_result.value == expected, busy_result  # type: ignore[attr-defined]
        assert (await ex.run("kept + 1", session="busy")).value == 42
        await assert_healthy(ex)


async def test_no_threads_or_processes_survive_a_barrage(demo_sandbox: Sandbox) -> None:
    children = child_processes()
    attacks = [
        ("while True:\n    pass", Limits(wall_s=1)),
        ("import os\nos._exit(1)", Limits(wall_s=5)),
        ("import os\nos.abort()", Limits(wall_s=5)),
        ("x = bytearray(2**31 - 1)", Limits(wall_s=5)),
        ("import time\ntime.sleep(100)", Limits(wall_s=1)),
    ]
    async with demo_sandbox.executor(pool_size=2) as ex:
        kept = 0
        for i, (code, limits) in enumerate(attacks):
            kept += not (await ex.run(code, session=f"barrage-{i}", limits=limits)).instance_lost
        await assert_healthy(ex)
        # Alive: the sessions that kept their instance (the MemoryError one, the sleeper), the attack session
        # and two pool spares. Lost instances' threads end on their own.
        for _ in range(100):
            if len(instance_threads()) <= kept + 3:
                break
            await anyio.sleep(0.05)
        assert len(instance_threads()) <= kept + 3, (kept, instance_threads())
    assert not wait_for_no_instance_threads(5.0)
    assert child_processes() <= children


async def test_recursion_through_c_code_ends_with_the_sandboxs_own_error(demo_sandbox: Sandbox) -> None:
    # Each level re-enters the interpreter from C (the sort key): python.wasm's C stack, not Python's
    # recursion limit, runs out first. The host names it; the program cannot catch it.
    code = "import sys\nsys.setrecursionlimit(10**6)\ndef f(x):\n    return sorted([1, 2], key=f)\nf(0)"
    async with demo_sandbox.executor() as ex:
        result = await run(ex, code, limits=Limits(wall_s=20))
        assert result.error is not None and result.error.message == (
            "the interpreter aborted: wasm trap (memory out of bounds), most often recursion through C code "
            "(a __getattr__, a sort key, eval) too deep for the interpreter's C stack. The session's interpreter "
            "was lost; its variables are gone and the next execution starts fresh."), result.error
        assert result.error.type == "SandboxCrashed" and result.instance_lost
        await assert_healthy(ex)


async def test_an_abort_at_the_memory_limit_is_the_sandboxs_memory_error(demo_sandbox: Sandbox) -> None:
    # CPython aborts (exit status 1) when an allocation fails where it cannot raise MemoryError; which
    # allocation that is varies, so the program fills the store to the limit and then ends the way CPython does.
    fill = ("import os\nhoard = []\nfor size in (2**20, 2**16):\n    try:\n        while True:\n"
            "            hoard.append(bytearray(size))\n    except MemoryError:\n        pass\n")
    limits = Limits(memory_bytes=64 * 1024 * 1024, wall_s=20)
    async with demo_sandbox.executor(limits=limits) as ex:
        result = await run(ex, fill + "os._exit(1)", limits=limits)
        assert result.error is not None and result.error.type == "SandboxMemoryError", result.error
        assert re.fullmatch(
            r"the interpreter aborted at the memory limit \(6[0-4] MB in use; limit 64 MB\): the interpreter exited "
            r"with status 1\. The session's interpreter was lost; its variables are gone and the next execution "
            r"starts fresh\.", result.error.message), result.error.message
        # The same exit far from the limit is the program's own doing, not the memory limit.
        assert_error(await run(ex, "import os\nos._exit(1)", limits=limits), "SandboxExited", "exit status 1")
        await assert_healthy(ex)


NEST = """
import os
def nest(top, levels, name):
    os.mkdir(top)
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(levels):  # through descriptors: past any path length, deeper than any recursion
        os.mkdir(name, dir_fd=fd)
        fd, parent = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd), fd
        os.close(parent)
    return fd
"""
"""Guest helper: ``nest(top, levels, name)`` makes ``levels`` directories one in another under ``top``."""


def _scratch(ex: Executor, session: str) -> Path:
    assert isinstance(ex, PooledExecutor)
    return ex.scratch_root / session


def _host_entries(scratch: Path) -> int:
    # Counted on the host through descriptors, as the quota's own walk does not go past its depth.
    count, stack = 0, [os.open(scratch, os.O_RDONLY | os.O_DIRECTORY)]
    while stack:
        fd = stack.pop()
        with os.scandir(fd) as entries:
            for entry in entries:
                count += 1
                if entry.is_dir(follow_symlinks=False):
                    stack.append(os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd))
        os.close(fd)
    return count


async def test_a_tree_too_deep_to_walk_is_over_the_quota_and_the_session_goes_on(demo_sandbox: Sandbox) -> None:
    # 1,200 levels: the host's os.walk and rmtree recursed once per level and raised RecursionError; the run
    # stopped for the quota then never returned, later runs raised and close_session raised.
    session = f"deep-{uuid.uuid4().hex[:6]}"
    code = NEST + "os.close(nest('/scratch/deep', 1200, 'a'))\nimport time\ntime.sleep(5)"
    async with demo_sandbox.executor() as ex:
        with anyio.fail_after(60):
            result = await run(ex, code, session=session, limits=Limits(wall_s=20))
        assert_error(result, "ScratchQuotaExceeded", "/scratch went over its quota")
        assert result.duration_s < 20  # stopped by the watch, not by the wall time
        scratch = _scratch(ex, session)
        assert _host_entries(scratch) <= 130  # cut below the walk's depth
        assert (await run(ex, "1 + 1", session=session)).value == 2
        await ex.close_session(session)
        assert not scratch.exists()


async def test_a_file_past_the_hosts_path_length_still_counts_against_the_quota(demo_sandbox: Sandbox) -> None:
    # 25 names of 200 characters: the file's host path is over 5,000 bytes, where a path walk cannot reach.
    session = f"long-{uuid.uuid4().hex[:6]}"
    code = NEST + (
        "fd = nest('/scratch/h', 25, 'b' * 200)\n"
        "w = os.open('big', os.O_WRONLY | os.O_CREAT, dir_fd=fd)\n"
        "for _ in range(40):\n    os.write(w, b'x' * (1 << 20))\n"
        "os.close(w)\n'written'"
    )
    async with demo_sandbox.executor() as ex:
        result = await run(ex, code, session=session, limits=Limits(scratch_bytes=10 << 20))
        assert_error(result, "ScratchQuotaExceeded", "10 MB")
        assert "big" in result.error.message  # the file named as removed
        assert (await run(ex, "1 + 1", session=session)).value == 2
        await ex.close_session(session)


async def test_directories_alone_over_the_quota_are_trimmed_too(demo_sandbox: Sandbox) -> None:
    # shrink removed files only: a tree of directories stayed over its quota and every later run failed.
    session = f"dirs-{uuid.uuid4().hex[:6]}"
    code = "import os\nfor i in range(150):\n    os.mkdir(f'/scratch/d{i}')"
    async with demo_sandbox.executor() as ex:
        result = await run(ex, code, session=session, limits=Limits(scratch_files=100))
        assert_error(result, "ScratchQuotaExceeded", "100 files")
        scratch = _scratch(ex, session)
        assert _host_entries(scratch) <= 50
        after = await run(ex, "import os\nlen(os.listdir('/scratch'))", session=session)
        assert after.ok and after.value <= 50, after


async def test_a_run_stopped_for_its_quota_ends_even_when_the_cleanup_fails(
    demo_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whatever the trim of an over-quota /scratch meets (a file system error, a tree no walk foresaw), the run
    # that was stopped must still end: nothing else would complete it, and its client would wait for good.
    def failing_shrink(*args: object) -> list[str]:
        raise OSError(5, "Input/output error", "/scratch/x")

    monkeypatch.setattr(instance_module, "shrink", failing_shrink)
    async with demo_sandbox.executor() as ex:
        code = "import time\nfor i in range(40):\n    open(f'/scratch/p{i}', 'w').write('x')\ntime.sleep(30)"
        with anyio.fail_after(60):
            result = await run(ex, code, limits=Limits(scratch_files=10, wall_s=30))
        assert result.error is not None and result.error.type == "SandboxError", result.error
        assert result.error.message.startswith("the sandbox ended; its cleanup failed (OSError(5, "), result.error
        assert ATTACK not in ex.sessions()
        assert await run_value(ex, "1 + 1") == 2


async def test_a_lost_interpreters_memory_is_given_back_at_once_not_at_a_later_collection(
    demo_sandbox: Sandbox,
) -> None:
    # A trapped run's traceback holds the instance thread's frame, and with it the store, in a reference
    # cycle: only an explicit close gives the guest's memory back before the cyclic GC happens to run (a
    # server losing interpreters would hold each one's memory until then). The GC is off here to make
    # "later" never.
    hoard = "hoard = b'x' * 120_000_000\nwhile True:\n    pass"
    async with demo_sandbox.executor() as ex:
        assert (await run(ex, "1", session="hoard")).ok
        instance = ex._sessions["hoard"]  # type: ignore[attr-defined]
        gc.collect()
        gc.disable()
        try:
            before = _rss_bytes()
            result = await run(ex, hoard, session="hoard", limits=Limits(wall_s=3))
            assert_error(result, "SandboxTimeout")
            instance.join(30)
            assert not instance._thread.is_alive()
            held = _rss_bytes() - before
        finally:
            gc.enable()
        assert held < 60 * 1024 * 1024, f"{held / 2**20:.0f} MB still held after the interpreter ended"
        await assert_healthy(ex)
