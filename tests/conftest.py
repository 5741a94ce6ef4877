"""Shared test fixtures: asyncio as the anyio backend, a private state dir, the demo servers + stubs."""

from __future__ import annotations

import importlib
import os
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import anyio.abc
import pytest

from codemode.calls import default_gate
from codemode.compiler import compile_to_dir
from codemode.config import demo_config
from codemode.executors import Executor, ExecutorKind, Limits, create_executor
from codemode.hub import Hub
from tests.pg import PgCluster, pg_bin

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", autouse=True)
def _private_state_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Audit logs, scratch and compiled stubs go to a temp dir; the compiled WASM module cache stays shared.
    os.environ["CODEMODE_STATE_DIR"] = str(tmp_path_factory.mktemp("state"))


def call_started(hub: Hub, tool: str | None = None) -> anyio.Event:
    """An event set when the hub starts an upstream call (of ``tool``, or any): a spy, the real call follows.

    Tests that act while a call is out wait for this, not for a fixed time: the type check before a run
    can take seconds on a loaded machine.
    """
    started = anyio.Event()
    real_call = hub.call_tool

    async def watched(ref: Any, args: Any, **kwargs: Any) -> Any:
        if tool is None or ref.tool == tool:
            started.set()
        return await real_call(ref, args, **kwargs)

    hub.call_tool = watched  # type: ignore[method-assign]
    return started


@pytest.fixture
def fragile_server() -> dict[str, object]:
    """Config entry for the misbehaving test server."""
    return {"command": sys.executable, "args": [str(FIXTURES / "servers" / "fragile.py")]}


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for_port(port: int, process: anyio.abc.Process, what: str, timeout_s: float = 120) -> None:
    """Wait until something listens on ``port``; fail at once if ``process`` (the server) exits first."""
    with anyio.fail_after(timeout_s):
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                assert process.returncode is None, f"{what} exited early"
                await anyio.sleep(0.1)


@dataclass
class Sandbox:
    """The bundled demo servers, their compiled stubs, and a way to make executors over them."""

    hub: Hub
    root: Path

    @property
    def stubs_dir(self) -> Path:
        return self.root / "stubs"

    def executor(self, kind: ExecutorKind = "wasm", limits: Limits | None = None, pool_size: int = 1) -> Executor:
        """A new executor (use with ``async with``) whose tool calls go to the real demo servers."""
        hub = self.hub
        return create_executor(
            kind,
            stubs_dir=self.stubs_dir,
            skills_dir=self.root / "skills",
            scratch_root=self.root / f"scratch-{kind}",
            gate=default_gate(hub),
            limits=limits,
            pool_size=pool_size,
        )


@pytest.fixture(scope="module")
async def demo_sandbox(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Sandbox]:
    """Demo servers started for real, stubs compiled into a temp dir (one per test module)."""
    root = tmp_path_factory.mktemp("sandbox")
    async with Hub(demo_config()) as hub:
        compile_to_dir(hub.tools(), root / "stubs", summaries=hub.summaries())
        (root / "skills").mkdir()
        yield Sandbox(hub, root)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL cluster shared by the session's tests (each takes its own database: ``pg_url``)."""
    cluster = _new_pg_cluster()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    """The URL (with its password) of a fresh, empty database."""
    return pg_cluster.new_database()


@pytest.fixture
def own_pg_cluster() -> Iterator[PgCluster]:
    """A cluster of the test's own, which it may stop and start."""
    cluster = _new_pg_cluster()
    try:
        yield cluster
    finally:
        cluster.destroy()


def _new_pg_cluster() -> PgCluster:
    if pg_bin() is None:
        pytest.skip("PostgreSQL's server binaries (initdb) are not installed: run scripts/setup")
    cluster = PgCluster(free_port())
    cluster.start()
    return cluster


def import_guest(monkeypatch: pytest.MonkeyPatch, module: str) -> Iterator[ModuleType]:
    """Import the guest package's ``module`` on the host, fresh (its earlier copies dropped before and after):
    the body of a fixture that tests guest code outside the sandbox."""
    monkeypatch.setenv("CODEMODE_STUBS_DIR", str(REPO / "stubs"))
    monkeypatch.syspath_prepend(str(REPO / "sandbox"))
    _drop_guest_modules()
    yield importlib.import_module(module)
    _drop_guest_modules()


def _drop_guest_modules() -> None:
    for name in [m for m in sys.modules if m == "codemode_runtime" or m.startswith("codemode_runtime.")]:
        del sys.modules[name]
