"""A program (or a document) attacking an OpenAPI service's host side: path traversal, header injection,
overriding the configured credentials, an oversized answer, a reference to a remote schema. The service is
a real HTTP server on loopback; the calls come from programs in the WASM sandbox."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from codemode.audit import AuditLog
from codemode.config import parse_config
from codemode.engine import Engine
from tests.conftest import free_port, wait_for_port

pytestmark = pytest.mark.anyio


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    port = free_port()
    process = await anyio.open_process([sys.executable, "-m", "tests.fixtures.servers.echo_api", str(port)])
    try:
        await wait_for_port(port, process, "echo api")
        servers = {
            "api": {
                "type": "openapi",
                "spec": f"http://127.0.0.1:{port}/openapi.json",
                "headers": {"Authorization": "Bearer host-secret"},
                "max_response_bytes": 100_000,
            }
        }
        config = parse_config(json.dumps({"mcpServers": servers}))  # fmt: skip
        async with Engine(config, stubs_dir=tmp_path / "stubs", skills_dir=tmp_path / "skills",
                          audit=AuditLog(tmp_path / "audit.jsonl")) as engine:  # fmt: skip
            yield engine
    finally:
        process.terminate()
        await process.wait()


async def echo(engine: Engine, call: str) -> dict[str, object]:
    outcome = await engine.execute(f"from stubs import api\nimport json\nprint(json.dumps({call}))")
    assert not outcome.is_error, outcome.text
    data: dict[str, object] = json.loads(outcome.text)
    return data


async def test_a_path_value_cannot_leave_its_segment(engine: Engine) -> None:
    got = await echo(engine, "api.echo(name='../../openapi.json?x=1#frag')")
    assert got["raw_path"] == "/echo/..%2F..%2Fopenapi.json%3Fx%3D1%23frag" and got["query"] == {}


async def test_a_dot_segment_path_value_stays_in_its_segment(engine: Engine) -> None:
    # The HTTP client resolves "/echo/.." to "/": a value of dots only would climb out of its segment.
    assert (await echo(engine, "api.echo(name='..')"))["raw_path"] == "/echo/%2E%2E"
    assert (await echo(engine, "api.echo(name='.')"))["raw_path"] == "/echo/%2E"


async def test_the_configured_credentials_win_over_the_program(engine: Engine) -> None:
    got = await echo(engine, "api.echo(name='a', authorization='Bearer attacker', q='x')")
    headers = got["headers"]
    assert isinstance(headers, dict) and headers["authorization"] == "Bearer host-secret"
    assert got["query"] == {"q": "x"}


async def test_header_injection_is_refused(engine: Engine) -> None:
    outcome = await engine.execute("from stubs import api\napi.echo(name='a', x_note='ok\\r\\nX-Admin: 1')")
    assert outcome.is_error and "header 'X-Note' holds a line break" in outcome.text


async def test_a_header_value_outside_ascii_is_refused_as_such(engine: Engine) -> None:
    # It was an encoding error inside the HTTP client, reported as an oversized result.
    outcome = await engine.execute("from stubs import api\napi.echo(name='a', x_note='caf\u00e9')")
    assert outcome.is_error and "header 'X-Note' holds a character outside ASCII" in outcome.text


async def test_an_oversized_answer_fails_before_it_is_read_whole(engine: Engine) -> None:
    outcome = await engine.execute("from stubs import api\napi.big()")
    assert (
        outcome.is_error
        and "QuotaExceeded" in outcome.text
        and "the response is 2,000,000 bytes; the limit is 100,000" in outcome.text
    )


async def test_a_remote_schema_reference_is_not_followed(engine: Engine) -> None:
    assert engine.hub is not None
    [echo_spec] = [t for t in engine.hub.tools()["api"] if t.name == "echo"]
    assert "attacker.example" not in json.dumps(echo_spec.output_schema)
    assert "attacker.example" not in json.dumps(echo_spec.input_schema)
