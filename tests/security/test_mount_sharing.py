"""A service several clients mount is one process: a second client must not be handed the first one's server
while believing its own parameters took effect. The real time server (``.venv-servers``) and the WASM sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from codemode.audit import AuditLog
from codemode.config import Config, Settings
from codemode.engine import Engine
from codemode.sessions import Owner

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]
ALICE = Owner("alice-key", "10.0.0.1", identity="alice")
BOB = Owner("bob-key", "10.0.0.2", identity="bob")
MOUNT = (
    "try:\n    print(mount('time', local_timezone={zone!r}))\nexcept ToolDenied as e:\n    print('refused:', e.message)"
)


async def test_a_second_mount_with_other_parameters_is_refused_not_silently_shared(tmp_path: Path) -> None:
    if not (REPO / ".venv-servers" / "time" / "bin" / "mcp-server-time").is_file():
        pytest.skip("scripts/setup has not installed .venv-servers")
    config = Config(settings=Settings(mount=["time"]))
    async with Engine(config, stubs_dir=tmp_path / "stubs", skills_dir=tmp_path / "skills",
                      audit=AuditLog(tmp_path / "audit.jsonl")) as engine:  # fmt: skip
        paris = await engine.execute(MOUNT.format(zone="Europe/Paris"), session="a", owner=ALICE)
        assert paris.text.strip() == "time", paris.text
        tokyo = await engine.execute(MOUNT.format(zone="Asia/Tokyo"), session="b", owner=BOB)
        assert tokyo.text.strip() == (
            "refused: 'time' is already mounted with other parameters; mount it with the same ones, or once every "
            "client that mounted it has unmounted it"
        ), tokyo.text
        assert engine.services is not None and engine.services.mounted_by["time"] == {"identity:alice"}
        # The same parameters share the running server; once its last client unmounts, others may start it anew.
        same = await engine.execute(MOUNT.format(zone="Europe/Paris"), session="b", owner=BOB)
        assert same.text.strip() == "time", same.text
        for owner, session in ((ALICE, "a"), (BOB, "b")):
            assert not (await engine.execute("unmount('time')", session=session, owner=owner)).is_error
        again = await engine.execute(MOUNT.format(zone="Asia/Tokyo"), session="b", owner=BOB)
        assert again.text.strip() == "time", again.text
        local = await engine.execute("from stubs import time\nprint(time.convert_time.__doc__)", session="b", owner=BOB)
        assert "Use 'Asia/Tokyo' as local timezone" in local.text, local.text
