"""The WASM executor against the real demo servers: bridge round trips, sessions, limits and recovery."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import anyio
import pytest

from codemode.calls import default_gate
from codemode.executors import ExecutorKind, Limits, create_executor
from codemode.executors.pool import PooledExecutor
from codemode.executors.wasm import executor as wasm_executor
from codemode.executors.wasm import module
from codemode.executors.wasm.loop import LoopLink
from tests.conftest import Sandbox

pytestmark = pytest.mark.anyio


async def test_structured_and_text_results_round_trip(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        result = await ex.run(
            "from stubs import inventory, notes\n"
            "stock = inventory.check_stock(skus=['TOO-00000', 'NOPE'])\n"
            "rows = inventory.list_products(category='garden', page_size=5)\n"
            "msg = inventory.restock(sku='GAR-00001', quantity=3)\n"
            "{'missing': stock['missing'], 'levels': len(stock['levels']), 'rows': len(rows),"
            " 'garden': {r['category'] for r in rows} == {'garden'}, 'msg': msg}"
        )
        assert result.ok, result.error
        assert result.value["missing"] == ["NOPE"]
        assert result.value["levels"] == 1 and result.value["rows"] == 5 and result.value["garden"] is True
        assert isinstance(result.value["msg"], str) and "GAR-00001" in result.value["msg"]
        assert [(c.server, c.tool, c.ok) for c in result.calls] == [
            ("inventory", "check_stock", True),
            ("inventory", "list_products", True),
            ("inventory", "restock", True),
        ]


async def test_nested_typed_input_creates_a_real_order(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        result = await ex.run(
            "from stubs import inventory\n"
            "order = inventory.create_order(\n"
            "    customer={'name': 'Ada', 'email': 'ada@example.com',\n"
            "              'address': {'street': '1 Loop', 'city': 'Paris',\n"
            "                          'postal_code': '75001', 'country': 'FR'}},\n"
            "    items=[{'sku': 'KIT-00002', 'quantity': 1}], shipping='express')\n"
            "inventory.get_order(order_id=order['order_id'])['order_id'] == order['order_id']"
        )
        assert result.ok, result.error
        assert result.value is True


async def test_upstream_error_is_a_tool_error_with_server_and_tool(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        result = await ex.run(
            "from stubs import inventory\n"
            "try:\n"
            "    inventory.get_order(order_id='no-such-order')\n"
            "except ToolError as e:\n"
            "    caught = (e.server, e.tool, e.kind, bool(e.message))\n"
            "caught"
        )
        assert result.ok, result.error
        assert result.value == ["inventory", "get_order", "tool", True]
        uncaught = await ex.run("from stubs import inventory\ninventory.get_order(order_id='nope')")
        assert not uncaught.ok and uncaught.error is not None
        assert uncaught.error.type == "codemode_runtime.ToolError"
        assert "inventory.get_order" in uncaught.error.traceback and "<execution-" in uncaught.error.traceback
        assert "repl.py" not in uncaught.error.traceback  # trimmed to the user's code and the stub


async def test_large_result_of_several_megabytes(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        result = await ex.run(
            "from stubs import inventory\n"
            "import json\n"
            "rows = inventory.list_products(page_size=3000)\n"
            "(len(rows), len(json.dumps(rows)))"
        )
        assert result.ok, result.error
        count, size = result.value
        assert count == 3000 and size > 300_000
        echo = await ex.run("from stubs import notes\nbody = 'x' * 3_000_000\nlen(body)")
        assert echo.ok and echo.value == 3_000_000


async def test_session_state_persists_and_sessions_are_isolated(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor(pool_size=2) as ex:
        assert (await ex.run("import math\ndef double(x):\n    return 2 * x\ncounter = 1", session="a")).ok
        assert (await ex.run("counter += 1\ndouble(counter) + math.floor(0.5)", session="a")).value == 4
        other = await ex.run("counter", session="b")
        assert not other.ok and other.error is not None and other.error.type == "NameError"
        assert (await ex.run("_ * 10", session="a")).value == 40  # the last value is kept as _
        assert sorted(ex.sessions()) == ["a", "b"]
        await ex.close_session("a")
        fresh = await ex.run("counter", session="a")
        assert not fresh.ok and fresh.error is not None and fresh.error.type == "NameError"


async def _refilled(ex: PooledExecutor) -> None:
    """Wait until ``ex``'s pool holds its spares and no refill runs."""
    with anyio.fail_after(60):  # a few boots; a pool that never stops refilling fails here
        while ex._refilling or ex.pooled < ex.pool_size:  # noqa: ASYNC110  # no event marks the end of a refill
            await anyio.sleep(0.05)


async def test_the_pool_keeps_exactly_its_spares_and_a_closed_session_stops_its_interpreter(
    demo_sandbox: Sandbox,
) -> None:
    ex = demo_sandbox.executor(pool_size=2)
    assert isinstance(ex, PooledExecutor)
    async with ex:
        await _refilled(ex)
        assert ex.pooled == 2  # each spare is a whole interpreter: one more is memory nobody asked for
        assert (await ex.run("1", session="p")).ok
        await _refilled(ex)
        assert ex.pooled == 2
        (thread,) = (t for t in threading.enumerate() if t.name == f"codemode-wasm-{ex._sessions['p'].id}")
        await ex.close_session("p")
        await anyio.to_thread.run_sync(thread.join, 10.0)
        assert not thread.is_alive()  # not left running (with its memory) until the executor closes
        await ex.close_session("never-opened")
        shutil.rmtree(demo_sandbox.root / "scratch-wasm" / ".pool")  # the cache cleared under a running host
    assert ex.pooled == 0  # and it still closes


async def test_a_pool_makes_its_directories_refills_once_at_a_time_and_leaves_no_spare_behind(
    demo_sandbox: Sandbox, tmp_path: Path
) -> None:
    root = tmp_path / "fresh"  # none of the executor's directories exist yet
    ex = create_executor(
        "wasm", stubs_dir=root / "stubs", skills_dir=root / "skills", scratch_root=root / "scratch",
        gate=default_gate(demo_sandbox.hub), pool_size=1,
    )  # fmt: skip
    assert isinstance(ex, PooledExecutor)
    async with ex:
        assert (await ex.run("1 + 1", session="s")).value == 2
        await _refilled(ex)
        spare = ex._pool.pop()  # taken, as a new session takes it
        async with anyio.create_task_group() as tg:  # two sessions at once each start a refill
            tg.start_soon(ex._refill)
            tg.start_soon(ex._refill)
        assert ex.pooled == 1  # one refill at a time: a second one would boot a spare nobody asked for
        ex._pool.append(spare)
        assert len(list((root / "scratch" / ".pool").iterdir())) == 2
    assert list((root / "scratch" / ".pool").iterdir()) == []  # the spares' scratch went with them


async def test_a_failed_first_compile_is_the_cause_every_run_reports(
    demo_sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("CODEMODE_CACHE_DIR", str(blocker / "cache"))  # the module cannot be written there
    async with demo_sandbox.executor() as ex:
        assert ex.warming == "compiling python.wasm for this machine (first run only)"
        await ex.wait_ready()
        assert ex.warming is None
        for _ in range(2):  # each run says why it cannot run
            result = await ex.run("1 + 1")
            assert not result.ok and result.error is not None and not result.instance_lost
            assert result.error.type == "SandboxUnavailable"
            assert result.error.message.startswith("compiling python.wasm failed: SandboxError: exit status 1: ")
            assert "Not a directory" in result.error.message  # the compile's own last line of stderr


async def test_a_first_compile_without_a_progress_callback_leaves_the_executor_working(
    demo_sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = module.module_cache_path()  # compiled once for the suite
    monkeypatch.setenv("CODEMODE_CACHE_DIR", str(tmp_path / "cache"))
    target = module.module_cache_path()
    # The compile itself is module.py's (tested there and by a first serve): here it is a copy, so the test
    # is about what the executor does around it.
    copy = f"import os, shutil; os.makedirs({str(target.parent)!r}); shutil.copy({str(good)!r}, {str(target)!r})"
    monkeypatch.setattr(wasm_executor, "compile_command", lambda fuel=False: [sys.executable, "-c", copy])
    async with demo_sandbox.executor() as ex:  # a library's executor: nobody to tell about progress
        assert ex.warming is not None
        assert (await ex.run("1 + 1")).value == 2
        assert ex.warming is None and target.exists()


async def test_a_compile_that_exits_0_without_the_module_is_a_failed_compile(
    demo_sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEMODE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(wasm_executor, "compile_command", lambda fuel=False: [sys.executable, "-c", "pass"])
    async with demo_sandbox.executor() as ex:
        result = await ex.run("1 + 1")
    assert result.error is not None
    assert result.error.message == "compiling python.wasm failed: SandboxError: exit status 0"


async def test_output_value_and_stderr_are_captured(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        assert ex.warming is None  # the module is cached: nothing to wait for
        started = time.perf_counter()
        result = await ex.run("import sys\nprint('out')\nprint('err', file=sys.stderr)\n{'a': [1, 2]}")
        assert 0 < result.duration_s <= time.perf_counter() - started  # the run's own time
        assert (result.stdout, result.stderr) == ("out\n", "err\n")
        assert (result.calls, result.calls_over_quota, result.instance_lost) == ([], 0, False)
        assert (result.value, result.value_is_json) == ({"a": [1, 2]}, True)
        opaque = await ex.run("object()")
        assert opaque.ok and not opaque.value_is_json and opaque.value_repr is not None
        assert opaque.value_repr.startswith("<object object")
        assert not (await ex.run("x = 1")).has_value


async def test_timeout_kills_the_instance_and_the_session_recovers(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        assert (await ex.run("keep = 1", session="s")).ok
        result = await ex.run("while True:\n    pass", session="s", limits=Limits(wall_s=1.0))
        assert not result.ok and result.error is not None and result.error.type == "SandboxTimeout"
        assert result.instance_lost and "1 s wall-time limit" in result.error.message
        assert isinstance(ex, PooledExecutor) and ex.sessions() == [] and "s" not in ex._sessions  # forgotten
        after = await ex.run("keep", session="s")
        assert after.error is not None and after.error.type == "NameError"  # fresh interpreter
        assert (await ex.run("1 + 1", session="s")).value == 2


async def test_scratch_survives_a_lost_instance(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        assert (await ex.run("open('/scratch/keep.txt', 'w').write('kept')", session="s")).ok
        lost = await ex.run("while True:\n    pass", session="s", limits=Limits(wall_s=0.5))
        assert lost.instance_lost
        result = await ex.run("open('/scratch/keep.txt').read()", session="s")
        assert result.value == "kept"


async def test_cancelled_run_kills_the_instance(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        with anyio.move_on_after(0.5):
            await ex.run("while True:\n    pass", session="c")
        assert "c" not in ex.sessions()
        assert (await ex.run("2 * 21", session="c")).value == 42


async def test_tool_call_quota(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        result = await ex.run(
            "from stubs import notes\nfor _ in range(5):\n    notes.list_tags()",
            limits=Limits(max_tool_calls=3),
        )
        assert not result.ok and result.error is not None
        assert "limit of 3 tool calls" in result.error.message
        assert len(result.calls) == 4 and [c.ok for c in result.calls] == [True, True, True, False]


async def test_sleep_sleeps_and_is_interrupted_at_the_deadline(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        slept = await ex.run("import time\nt = time.monotonic()\ntime.sleep(0.2)\ntime.monotonic() - t")
        assert slept.ok and slept.value >= 0.19
        stuck = await ex.run("import time\ntime.sleep(1e9)", limits=Limits(wall_s=0.5))
        assert stuck.error is not None and stuck.error.type == "TimeoutError" and not stuck.instance_lost


async def test_a_program_that_slept_then_spins_is_stopped_at_its_deadline_not_after_a_waits_grace(
    demo_sandbox: Sandbox,
) -> None:
    # A wait at the deadline raises in the program and has WAIT_GRACE_S (1 s) to end; a CPU loop has none.
    # The loop runs 0.6 s past the deadline, then waits: only a program given the grace gets that far.
    code = (
        "import time\nt = time.monotonic()\ntime.sleep(0.05)\n"
        "while time.monotonic() - t < 1.6:\n    pass\n"
        "try:\n    time.sleep(0.01)\nexcept TimeoutError:\n    print('given the grace')"
    )
    async with demo_sandbox.executor() as ex:
        result = await ex.run(code, session="spins", limits=Limits(wall_s=1.0))
    assert result.error is not None and result.error.type == "SandboxTimeout" and result.instance_lost, result
    assert "given the grace" not in result.stdout


async def test_a_call_that_returns_with_time_left_leaves_the_programs_waits_alone(demo_sandbox: Sandbox) -> None:
    # Only a call ending at the deadline (within NEAR_DEADLINE_S of it) counts as a wait that timed out.
    code = (
        "import time, codemode_runtime\ntime.sleep(1.2)\n"
        "codemode_runtime.call('inventory', 'list_products', {})\ntime.sleep(0.01)\n'finished'"
    )
    async with demo_sandbox.executor() as ex:
        result = await ex.run(code, session="near", limits=Limits(wall_s=2.0))
    assert result.ok and result.value == "finished", result


async def test_an_earlier_jobs_deadline_neither_stops_nor_forgets_the_next_job(demo_sandbox: Sandbox) -> None:
    # An interpreter keeps one deadline alarm pending: the first job's, when the second job's is later. It
    # must not stop the second job, and must leave an alarm for the second job's own deadline.
    async with demo_sandbox.executor() as ex:
        quick = await ex.run("1 + 1", session="d", limits=Limits(wall_s=0.3))
        assert quick.ok
        code = "import time\ntime.sleep(0.6)\nprint('past the first deadline')\nwhile True:\n    pass"
        with anyio.fail_after(60):
            spun = await ex.run(code, session="d", limits=Limits(wall_s=1.5))
        assert spun.error is not None and spun.error.type == "SandboxTimeout" and "1.5 s" in spun.error.message
        assert spun.stdout == "past the first deadline\n"


async def test_scratch_quota_stops_the_program_and_makes_room(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        code = "chunk = b'x' * 1_000_000\nfor i in range(10_000):\n    open(f'/scratch/f{i}', 'wb').write(chunk)"
        result = await ex.run(code, session="q", limits=Limits(scratch_bytes=20_000_000))
        assert result.error is not None and result.error.type == "ScratchQuotaExceeded", result.error
        assert "/scratch/f" in result.error.message  # names what it removed
        assert result.error.message.startswith("/scratch went over its quota (19 MB, 10,000 files)")
        usage = "import os\nsum(os.path.getsize('/scratch/' + n) for n in os.listdir('/scratch'))"
        left = await ex.run(usage, session="q")
        # Half the quota is kept, no less: the removal stops at the first file that brings it under.
        assert left.ok and 9_000_000 < left.value <= 10_000_000, left


async def test_the_scratch_quota_counts_files_in_subdirectories(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        code = (
            "import os\nos.makedirs('/scratch/a/b')\n"
            "for i in range(6):\n    open(f'/scratch/a/b/f{i}', 'wb').write(b'x' * 1_000_000)"
        )
        result = await ex.run(code, session="deep", limits=Limits(scratch_bytes=4_000_000))
        assert result.error is not None and result.error.kind == "scratch_quota", result
        assert "/scratch/a/b/f" in result.error.message  # it removed files down there
    left = sum(p.stat().st_size for p in (demo_sandbox.root / "scratch-wasm" / "deep").rglob("*") if p.is_file())
    assert 1_000_000 < left <= 2_000_000  # trimmed on the host to half the quota, no further


async def test_the_poller_stops_a_program_making_too_many_files(demo_sandbox: Sandbox) -> None:
    # A program still running is stopped by the poller (not only measured when it ends).
    async with demo_sandbox.executor() as ex:
        code = "import time\nfor i in range(40):\n    open(f'/scratch/p{i}', 'w').write('x')\ntime.sleep(30)"
        result = await ex.run(code, session="many", limits=Limits(scratch_files=10, scratch_bytes=50 << 20, wall_s=60))
        assert result.error is not None and result.error.kind == "scratch_quota", result
        assert result.error.message.startswith(
            "/scratch went over its quota (50 MB, 10 files); the program was stopped"
        )
        kept = list((demo_sandbox.root / "scratch-wasm" / "many").iterdir())
        assert len(kept) == 5, kept  # trimmed to half the file quota, not further


async def test_the_poller_stops_a_program_growing_one_file(demo_sandbox: Sandbox) -> None:
    # No file is created after the first: only the poller sees the tree grow while the program runs.
    async with demo_sandbox.executor() as ex:
        code = (
            "import time\nf = open('/scratch/grows', 'wb')\n"
            "for _ in range(100):\n    f.write(b'x' * 1_000_000)\n    f.flush()\ntime.sleep(30)"
        )
        assert (await ex.run("1", session="grows")).ok
        await anyio.sleep(1.5)  # its poll (every 0.5 s) finds no job running: the next job must arm it again
        result = await ex.run(code, session="grows", limits=Limits(scratch_bytes=5_000_000, wall_s=60))
        assert result.error is not None and result.error.kind == "scratch_quota", result
        assert "the program was stopped" in result.error.message


async def test_the_scratch_poller_measures_twice_a_second_not_without_pause(
    demo_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from codemode.executors.wasm import instance

    measured: list[int] = []
    real = instance.tree_usage

    def counted(*args: Any) -> tuple[int, int]:
        measured.append(1)
        return real(*args)

    monkeypatch.setattr(instance, "tree_usage", counted)
    async with demo_sandbox.executor() as ex:
        result = await ex.run("import time\ntime.sleep(1.6)", limits=Limits(wall_s=10))
    assert result.ok, result.error
    # Every 0.5 s while the program runs: about three walks of /scratch, never a loop on the alarm thread.
    assert 1 <= len(measured) <= 6, len(measured)


async def test_a_tree_of_exactly_the_quota_is_left_running(demo_sandbox: Sandbox) -> None:
    # The poller (every 0.5 s) sees a tree of exactly the byte and file limits: within them, as at the end.
    code = "import time\nopen('/scratch/exact', 'wb').write(b'x' * 1_000_000)\ntime.sleep(1.2)\n'kept'"
    async with demo_sandbox.executor() as ex:
        result = await ex.run(code, session="exact", limits=Limits(scratch_bytes=1_000_000, scratch_files=1))
    assert result.ok and result.value == "kept", result


async def test_a_call_the_host_can_no_longer_serve_is_answered_not_trapped(
    demo_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = (
        "import codemode_runtime\ntry:\n    codemode_runtime.call('inventory', 'list_products', {})\n"
        "except CallCancelled as exc:\n    print(type(exc).__name__, exc.kind)"
    )
    async with demo_sandbox.executor() as ex:
        assert (await ex.run("1", session="gone")).ok  # its interpreter is up

        def gone(self: LoopLink, coro: Coroutine[Any, Any, Any]) -> Any:  # the event loop has shut down
            coro.close()
            raise RuntimeError("the event loop is closed")

        monkeypatch.setattr(LoopLink, "run", gone)
        result = await ex.run(code, session="gone")
        monkeypatch.undo()
    assert result.ok and result.stdout == "CallCancelled cancelled\n" and not result.instance_lost, result


async def test_bad_session_names_are_refused(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        for name in ("../x", ".hidden", "a/b", ""):
            with pytest.raises(ValueError, match="invalid session name"):
                await ex.run("1", session=name)


async def test_a_program_faster_than_the_scratch_poller_still_meets_the_quota(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        code = "for i in range(40):\n    open(f'/scratch/s{i}', 'w').write('x')\nimport os\nlen(os.listdir('/scratch'))"
        result = await ex.run(code, session="fast", limits=Limits(scratch_files=10))
        assert result.error is not None and result.error.kind == "scratch_quota", result
        assert "10 files" in result.error.message
        left = await ex.run("import os\nlen(os.listdir('/scratch'))", session="fast")
        assert left.ok and left.value <= 5  # trimmed to half the quota; the session itself lives on


@pytest.mark.parametrize("kind", ["wasm", "restricted"])
async def test_waiting_for_an_interpreter_is_not_the_programs_time(demo_sandbox: Sandbox, kind: ExecutorKind) -> None:
    # No interpreter started ahead: a new session's first execution waits for one to start, which under a
    # burst of new sessions can outlast the wall-time limit. The clock counts the program alone.
    async with demo_sandbox.executor(kind, pool_size=0) as ex:
        await ex.wait_ready()
        ctx = ex.gate.context(session="fresh", limits=Limits())
        result = await ex.run("1 + 1", context=ctx)
        counted = ctx.clock.wall_s - ctx.clock.remaining()
        assert result.value == 2, result.error
        assert counted < result.duration_s / 2, (counted, result.duration_s)  # the rest was the start


async def test_an_interpreter_that_cannot_boot_fails_the_run_with_the_cause(
    demo_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from codemode import paths

    # A runtime directory without the guest package: python.wasm starts, its boot import fails, it exits.
    monkeypatch.setattr(paths, "runtime_dir", lambda: tmp_path)
    async with demo_sandbox.executor() as ex:
        with anyio.fail_after(60):  # an interpreter whose failed boot is never reported would wait forever
            result = await ex.run("1 + 1")
    assert not result.ok and result.error is not None
    assert "the WASM interpreter failed to start" in result.error.message, result.error
    assert result.duration_s == 0.0  # no program ran


async def test_an_interpreter_still_booting_at_its_boot_deadline_is_stopped(
    demo_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from codemode.executors.wasm import instance

    # A boot deadline already past: the alarm stops the booting interpreter, and the run says so.
    monkeypatch.setattr(instance, "_BOOT_TIMEOUT_S", 0.0)
    async with demo_sandbox.executor() as ex:
        with anyio.fail_after(60):
            result = await ex.run("1 + 1")
    assert not result.ok and result.error is not None
    assert "the WASM interpreter failed to start" in result.error.message, result.error
    assert "interrupt" in result.error.message, result.error


async def test_a_closed_executor_refuses_runs_and_a_second_close_does_nothing(demo_sandbox: Sandbox) -> None:
    from codemode.errors import SandboxError

    ex = demo_sandbox.executor()
    async with ex:
        assert (await ex.run("1 + 1")).value == 2
    await ex.aclose()
    with pytest.raises(SandboxError, match="the executor is closed"):
        await ex.run("1 + 1")


async def test_an_interpreter_boots_and_runs_through_other_interpreters_interrupts(demo_sandbox: Sandbox) -> None:
    # Every interpreter shares one engine and so one epoch counter: each bump (another interpreter stopped)
    # reaches this one's store too, whose guard lets it run on, from its boot onwards.
    engine, _ = module.shared_module()
    done = threading.Event()

    def bump() -> None:
        while not done.is_set():
            engine.increment_epoch()
            time.sleep(0.001)

    bumper = threading.Thread(target=bump)
    bumper.start()
    try:
        async with demo_sandbox.executor(pool_size=0) as ex:
            result = await ex.run("sum(range(100_000))")
    finally:
        done.set()
        bumper.join()
    assert result.ok and result.value == 4_999_950_000, result


async def test_closing_an_executor_waits_for_its_interpreters_to_end(demo_sandbox: Sandbox) -> None:
    from tests.security.helpers import instance_threads

    before = instance_threads()
    async with demo_sandbox.executor() as ex:
        for session in ("a", "b"):
            assert (await ex.run("1 + 1", session=session)).ok
        ours = instance_threads() - before
    assert len(ours) >= 2  # both sessions' interpreters (and the pool's spare)
    assert [thread.name for thread in ours if thread.is_alive()] == []  # at once: aclose joined them


async def test_an_executor_built_without_a_pool_size_keeps_two_spares(demo_sandbox: Sandbox) -> None:
    ex = create_executor(
        "wasm", stubs_dir=demo_sandbox.stubs_dir, skills_dir=demo_sandbox.root / "skills",
        scratch_root=demo_sandbox.root / "scratch-default-pool", gate=default_gate(demo_sandbox.hub),
    )  # fmt: skip
    assert isinstance(ex, PooledExecutor)
    async with ex:
        await _refilled(ex)
        assert ex.pooled == 2  # ExecutorOptions.pool_size's documented default


async def test_a_first_compile_reports_its_start_and_its_own_duration(
    demo_sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = module.module_cache_path()
    monkeypatch.setenv("CODEMODE_CACHE_DIR", str(tmp_path / "cache"))
    target = module.module_cache_path()
    copy = f"import os, shutil; os.makedirs({str(target.parent)!r}); shutil.copy({str(good)!r}, {str(target)!r})"
    monkeypatch.setattr(wasm_executor, "compile_command", lambda fuel=False: [sys.executable, "-c", copy])
    said: list[str] = []
    started = time.perf_counter()
    ex = create_executor(
        "wasm", stubs_dir=demo_sandbox.stubs_dir, skills_dir=demo_sandbox.root / "skills",
        scratch_root=tmp_path / "scratch", gate=default_gate(demo_sandbox.hub), pool_size=0, progress=said.append,
    )  # fmt: skip
    async with ex:
        assert (await ex.run("1 + 1")).value == 2
    took = time.perf_counter() - started
    assert said[0] == f"compiling python.wasm for this machine in the background (first run only) → {target}"
    (done,) = [line for line in said if line.startswith("compiled python.wasm in ")]
    assert done.endswith(" s (cached for next time)")
    assert 0 <= float(done.removeprefix("compiled python.wasm in ").split()[0]) <= took + 0.05  # its own time, to .1 s


async def test_a_program_stopped_at_its_limit_keeps_its_stdout_and_stderr_apart(demo_sandbox: Sandbox) -> None:
    # A stopped guest cannot hand over its output: the host reads it from the two capture buffers the hello
    # named, each into its own stream.
    code = "import sys\nprint('to out')\nprint('to err', file=sys.stderr)\nwhile True:\n    pass"
    async with demo_sandbox.executor() as ex:
        result = await ex.run(code, limits=Limits(wall_s=1.0))
    assert result.instance_lost and result.error is not None and result.error.type == "SandboxTimeout"
    assert (result.stdout, result.stderr) == ("to out\n", "to err\n")


async def test_a_program_stopped_with_no_capture_buffers_known_ends_without_its_output(
    demo_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from codemode.executors.wasm import instance

    # A hello that named no (valid) capture buffers: a stopped run has no output to read, and still ends.
    nothing = property(lambda self: None, lambda self, value: None)  # reads None, ignores the hello's
    monkeypatch.setattr(instance.Instance, "capture", nothing, raising=False)
    code = "print('to out')\nwhile True:\n    pass"
    async with demo_sandbox.executor() as ex:
        with anyio.fail_after(60):
            result = await ex.run(code, limits=Limits(wall_s=1.0))
    assert result.instance_lost and result.error is not None and result.error.type == "SandboxTimeout"
    assert (result.stdout, result.stderr) == ("", "")


_EXIT_WITHOUT_CLOSE = """
import sys
from pathlib import Path

import anyio

from codemode.calls import default_gate
from codemode.executors import create_executor


class NoUpstreams:
    def tools(self): return {}
    def unavailable(self): return {}
    async def call_tool(self, ref, args): raise RuntimeError("no upstreams here")


async def main(stubs: Path, root: Path) -> None:
    ex = create_executor("wasm", stubs_dir=stubs, skills_dir=root, scratch_root=root / "scratch",
                         gate=default_gate(NoUpstreams()), pool_size=1)
    await ex.__aenter__()
    print((await ex.run("6 * 7")).value, flush=True)
    # returns without closing: the interpreters' threads are alive, one waiting for its next job


anyio.run(main, Path(sys.argv[1]), Path(sys.argv[2]))
"""


async def test_a_host_that_exits_without_closing_its_executor_does_not_hang(
    demo_sandbox: Sandbox, tmp_path: Path
) -> None:
    # The interpreters' threads must not keep a host process alive: a library user who forgets aclose (or a
    # host dying of an exception) still exits. The bound is a hang detector, not a speed check.
    script = tmp_path / "exit_without_close.py"
    script.write_text(_EXIT_WITHOUT_CLOSE, encoding="utf-8")
    argv = [sys.executable, str(script), str(demo_sandbox.stubs_dir), str(tmp_path)]
    try:
        with anyio.fail_after(60):
            done = await anyio.run_process(argv, check=False)
    except TimeoutError:
        pytest.fail("the host process did not exit after its program returned")
    assert (done.returncode, done.stdout) == (0, b"42\n"), done.stderr[-2000:]
