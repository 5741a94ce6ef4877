"""OpenAPI services as upstreams: the bundled petstore served for real on loopback, called from the sandbox."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from codemode.audit import AuditLog
from codemode.config import Config, Settings, parse_config
from codemode.engine import Engine
from tests.conftest import free_port, wait_for_port

pytestmark = pytest.mark.anyio

PROGRAM = """
from stubs import pets
created = pets.create_pet(body={"name": "Rex", "tag": "dog"})
pets.create_pet(body={"name": "Tom", "tag": "cat"})
listed = pets.list_pets(tag="dog", limit=5)
one = pets.get_pet(pet_id=created["id"], x_request_id="r-1")
try:
    pets.get_pet(pet_id=99)
except ToolError as e:
    missing = (e.kind, e.message)
print(json.dumps([created, listed, one, missing]))
"""


@pytest.fixture
async def petstore(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    port = free_port()
    monkeypatch.setenv("PETSTORE_KEY", "k-123")
    process = await anyio.open_process([sys.executable, "-m", "codemode.demo.petstore", "--port", str(port)])
    try:
        await wait_for_port(port, process, "petstore")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        await process.wait()


def _engine(tmp_path: Path, config: Config) -> Engine:
    return Engine(config, stubs_dir=tmp_path / "stubs", skills_dir=tmp_path / "skills",
                  audit=AuditLog(tmp_path / "audit.jsonl"))  # fmt: skip


async def test_configured_by_url_typed_calls_and_an_error_status(tmp_path: Path, petstore: str) -> None:
    text = json.dumps({"mcpServers": {"pets": {"type": "openapi", "spec": f"{petstore}/openapi.json",
                                               "headers": {"X-Api-Key": "${PETSTORE_KEY}"}}}})  # fmt: skip
    async with _engine(tmp_path, parse_config(text)) as engine:
        assert engine.hub is not None
        [status] = engine.hub.status()
        assert (status.state, status.transport, status.tool_count) == ("ready", "openapi", 4)
        stub = (engine.stubs_path / "pets" / "get_pet.py").read_text()
        assert "def get_pet(" in stub and "pet_id: int" in stub
        specs = {t.name: t for t in engine.hub.tools()["pets"]}
        assert specs["list_pets"].annotations == {"readOnlyHint": True}
        assert specs["delete_pet"].annotations == {
            "readOnlyHint": False,
            "destructiveHint": True,
            "idempotentHint": True,
        }
        outcome = await engine.execute("import json\n" + PROGRAM)
        assert not outcome.is_error, outcome.text
        created, listed, one, missing = json.loads(outcome.text)
        assert created == {"id": 1, "name": "Rex", "tag": "dog"}
        assert listed == {"pets": [created]} and one == created
        assert missing[0] == "tool" and missing[1].startswith("HTTP 404 from GET /pets/{petId}: ")
        assert "no pet 99" in missing[1]
        wrong = await engine.execute("from stubs import pets\npets.get_pet(pet_id='../openapi.json')")
        assert wrong.is_error and "HTTP 404" in wrong.text, "a path value stays inside its segment"


async def test_without_the_key_the_service_says_401(tmp_path: Path, petstore: str) -> None:
    text = json.dumps({"mcpServers": {"pets": {"type": "openapi", "spec": f"{petstore}/openapi.json"}}})
    async with _engine(tmp_path, parse_config(text)) as engine:
        outcome = await engine.execute("from stubs import pets\npets.list_pets()")
        assert outcome.is_error and "HTTP 401" in outcome.text and "X-Api-Key" in outcome.text


async def test_mounted_from_the_directory(tmp_path: Path, petstore: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PETSTORE_URL", petstore)
    async with _engine(tmp_path, Config(settings=Settings(mount=["petstore"]))) as engine:
        program = "m = mount('petstore')\nfrom stubs import petstore\n(m, petstore.create_pet(body={'name': 'Ada'}))"
        outcome = await engine.execute(program)
        assert not outcome.is_error, outcome.text
        assert json.loads(outcome.text) == ["petstore", {"id": 1, "name": "Ada"}]
        key = await engine.execute("mount('petstore', X_Api_Key='mine')")
        assert key.is_error and "takes no parameter" in key.text
