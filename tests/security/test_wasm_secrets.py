"""Secrets given to upstream servers (config ``env``) or held by the host process never reach the guest."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from codemode.calls import default_gate
from codemode.compiler import compile_to_dir
from codemode.config import parse_config
from codemode.executors import Executor, Limits, create_executor
from codemode.hub import Hub
from tests.conftest import free_port
from tests.security.helpers import assert_healthy, run, run_value

pytestmark = pytest.mark.anyio

SERVER_SECRET = f"s3cr3t-server-{uuid.uuid4().hex}"
HOST_SECRET = f"s3cr3t-host-{uuid.uuid4().hex}"
HEADER_SECRET = f"s3cr3t-header-{uuid.uuid4().hex}"
SECRETS = (SERVER_SECRET, HOST_SECRET, HEADER_SECRET)
SERVER = Path(__file__).with_name("secret_server.py")


@pytest.fixture(scope="module")
def _host_secret() -> Iterator[None]:
    previous = os.environ.get("CODEMODE_SECRET_TOKEN")
    os.environ["CODEMODE_SECRET_TOKEN"] = HOST_SECRET
    yield
    if previous is None:
        os.environ.pop("CODEMODE_SECRET_TOKEN", None)
    else:
        os.environ["CODEMODE_SECRET_TOKEN"] = previous


@pytest.fixture(scope="module")
async def vault(_host_secret: None, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Hub, Path]]:
    """A hub whose servers carry the secret in their env (the vault, and the demo notes server)."""
    root = tmp_path_factory.mktemp("vault")
    config = parse_config(
        json.dumps(
            {
                "mcpServers": {
                    "vault": {"command": sys.executable, "args": [str(SERVER)],
                              "env": {"CODEMODE_SECRET_TOKEN": SERVER_SECRET}},
                    "fragile": {"command": sys.executable, "args": [str(SERVER)],
                                "env": {"CODEMODE_SECRET_TOKEN": SERVER_SECRET,
                                        "CODEMODE_CRASH_MARKER": str(root / "crashed")}},
                    "notes": {"command": sys.executable, "args": ["-m", "codemode.demo.notes"],
                              "env": {"CODEMODE_SECRET_TOKEN": SERVER_SECRET, "API_KEY": "${CODEMODE_SECRET_TOKEN}"}},
                    "remote": {"type": "http", "url": f"http://127.0.0.1:{free_port()}/mcp", "start_timeout_s": 2,
                               "headers": {"Authorization": f"Bearer {HEADER_SECRET}"}},
                }
            }
        )
    )  # fmt: skip
    async with Hub(config, log_dir=root / "logs") as hub:
        compile_to_dir(hub.tools(), root / "stubs", summaries=hub.summaries())
        (root / "skills").mkdir()
        yield hub, root


def _executor(vault: tuple[Hub, Path]) -> Executor:
    hub, root = vault
    return create_executor(
        "wasm",
        stubs_dir=root / "stubs",
        skills_dir=root / "skills",
        scratch_root=root / "scratch",
        gate=default_gate(hub),
        pool_size=1,
    )


def _assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text
    assert "s3cr3t-" not in text


async def test_the_server_really_has_the_secret(vault: tuple[Hub, Path]) -> None:
    async with _executor(vault) as ex:
        assert await run_value(ex, "from stubs import vault\nvault.has_secret()") is True
        await assert_healthy(ex)


async def test_guest_environment_holds_no_secret(vault: tuple[Hub, Path]) -> None:
    code = (
        "import os, sys\n"
        "env = dict(os.environ)\n"
        "envb = {k.decode(): v.decode() for k, v in os.environb.items()}\n"
        "[env, envb, os.getenv('CODEMODE_SECRET_TOKEN'), os.getenv('API_KEY'), sys.argv, sys.orig_argv]"
    )
    async with _executor(vault) as ex:
        result = await run(ex, code)
        assert result.ok, result.error
        env, envb, token, api_key, _argv, _orig = result.value
        assert env == envb == {"CODEMODE_STUBS_DIR": "/stubs", "CODEMODE_RECURSION_LIMIT": "600", "HOME": "/scratch"}
        assert token is None and api_key is None
        _assert_no_secret(json.dumps(result.value))
        for path in ("/proc/self/environ", "/proc/1/environ", "/proc/self/cmdline"):
            outcome = await run(ex, f"open({path!r}, 'rb').read()")
            assert outcome.error is not None and outcome.error.type == "FileNotFoundError"
        await assert_healthy(ex)


async def test_no_file_under_any_mount_holds_a_secret(vault: tuple[Hub, Path]) -> None:
    reversed_secrets = [secret[::-1] for secret in SECRETS]  # the program's own text must not hold them
    code = textwrap.dedent(f"""
        import os
        secrets = [s[::-1] for s in {reversed_secrets!r}]
        hits = []
        scanned = 0
        for top in ('/runtime', '/stubs', '/skills', '/scratch', '/usr'):
            for base, dirs, files in os.walk(top):
                for name in files:
                    path = os.path.join(base, name)
                    try:
                        data = open(path, 'rb').read()
                    except OSError:
                        continue
                    scanned += 1
                    if any(s.encode() in data for s in secrets) or b's3cr3t-' in data:
                        hits.append(path)
        [hits, scanned]
    """)
    async with _executor(vault) as ex:
        hits, scanned = await run_value(ex, code, limits=Limits(wall_s=30))
        assert hits == [] and scanned > 10
        await assert_healthy(ex)


async def test_tool_results_errors_and_discovery_hold_no_secret(vault: tuple[Hub, Path]) -> None:
    code = (
        "from stubs import vault, notes\nimport codemode_runtime\nout = []\n"
        "out.append(vault.echo(text='hello'))\n"
        "for call in (lambda: vault.fail(reason='boom'), lambda: codemode_runtime.call('remote', 'x', {}),\n"
        "             lambda: codemode_runtime.call('vault', 'nope', {}), lambda: vault.crash(),\n"
        "             lambda: vault.echo(text='after the crash')):\n"
        "    try:\n        out.append(call())\n    except ToolError as e:\n        out.append([e.kind, e.message])\n"
        "out.append(list_servers())\nout.append(describe('vault.echo'))\nout.append(search_tools('secret'))\n"
        "out.append(notes.list_tags())\nout"
    )
    async with _executor(vault) as ex:
        result = await run(ex, code, limits=Limits(wall_s=30))
        assert result.ok, result.error
        text = json.dumps(result.value) + result.stdout + result.stderr
        _assert_no_secret(text)
        assert result.value[0] == "hello"
        await assert_healthy(ex)


async def test_an_upstreams_stderr_stays_on_the_host(vault: tuple[Hub, Path]) -> None:
    # `fragile` dies mid-call and cannot start again, logging its secret to stderr; the host keeps the last
    # lines of that log in the server's error, so the next call's error is where a leak would happen.
    code = (
        "from stubs import fragile\nout = []\n"
        "for call in (fragile.crash, lambda: fragile.echo(text='again')):\n"
        "    try:\n        out.append(call())\n    except ToolError as e:\n        out.append([e.kind, e.message])\n"
        "out"
    )
    async with _executor(vault) as ex:
        crashed, again = await run_value(ex, code, limits=Limits(wall_s=30))
        assert SERVER_SECRET in (vault[1] / "logs" / "fragile.log").read_text()  # the host did hold it
        assert crashed[0] == again[0] == "upstream", [crashed, again]
        assert "details are in the codemode host's server log" in again[1], again
        _assert_no_secret(json.dumps([crashed, again]))
        await assert_healthy(ex)
    # Else the hub's retrier keeps starting `fragile` (which fails at once): a child process that may be alive
    # at the next test's end, which the leak check would count.
    await vault[0].unmount("fragile")


async def test_host_objects_are_not_reachable_to_search_for_secrets(vault: tuple[Hub, Path]) -> None:
    code = (
        "import gc, sys\nneedle = 's3cr3t-'\nfound = []\n"
        "for o in gc.get_objects():\n"
        "    if isinstance(o, dict):\n"
        "        for k, v in list(o.items()):\n"
        "            if isinstance(v, str) and v.startswith(needle) and v != needle:\n                found.append(k)\n"
        "found"
    )
    async with _executor(vault) as ex:
        assert await run_value(ex, code) == []
        await assert_healthy(ex)
