"""Live configuration: ``codemode serve`` follows edits of its config file without a restart.

The file is polled (its mtime, size and inode; no platform watcher needed). A valid edit is applied as a
difference: servers removed are unmounted, servers added are mounted, a server whose entry changed is
unmounted and mounted again; each lands in the hub like a runtime mount, so the stubs are recompiled and the
clients hear ``list_changed``. The ``codemode.mount`` allow-list follows the file too; other settings need a
restart (the log says so). A bad edit (not JSON, an unknown key, a missing variable) is reported and the
running set is kept. Services a program mounted at run time are left alone.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from codemode.config import Config, load_config
from codemode.errors import CodemodeError, ConfigError
from codemode.hub.hub import upstream_for

if TYPE_CHECKING:
    from codemode.engine import Engine

logger = logging.getLogger(__name__)

POLL_S = 1.0


@dataclass
class Applied:
    """What one reload did."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    """Servers that could not be (un)mounted, and why."""
    error: str | None = None
    """Why the file was not applied at all (the running set is unchanged)."""


async def apply(engine: Engine, new: Config) -> Applied:
    """Bring the engine's configured servers to ``new``'s (see the module docstring). Never raises."""
    hub = engine.hub
    assert hub is not None
    old = engine.config
    result = Applied()
    for name in old.servers.keys() - new.servers.keys():
        result.removed.append(name)
    for name in new.servers.keys() - old.servers.keys():
        result.added.append(name)
    for name in old.servers.keys() & new.servers.keys():
        if old.servers[name] != new.servers[name]:
            result.changed.append(name)
    for name in sorted([*result.removed, *result.changed]):
        try:
            await hub.unmount(name)
        except CodemodeError as exc:
            result.failed[name] = str(exc)
    for name in sorted([*result.added, *result.changed]):
        try:
            await hub.mount(name, upstream_for(name, new.servers[name], log_dir=engine.log_dir))
        except (CodemodeError, ValueError) as exc:
            result.failed[name] = str(exc)
    if engine.services is not None:
        engine.services.settings = new.settings  # the mount allow-list is live
    if new.settings.model_dump(exclude={"mount"}) != old.settings.model_dump(exclude={"mount"}):
        logger.warning("%s: settings other than codemode.mount take effect at the next start", new.source)
    engine.config = new
    return result


async def watch(engine: Engine, path: Path, *, poll_s: float = POLL_S) -> None:
    """Apply every edit of ``path`` until cancelled."""
    stamp = _stamp(path)
    while True:
        await anyio.sleep(poll_s)
        now = _stamp(path)
        if now == stamp:
            continue
        stamp = now
        result = await reload(engine, path)
        if result.error is not None:
            logger.error("config not applied, the running servers are kept: %s", result.error)
        else:
            logger.warning(
                "config %s applied: added %s, removed %s, changed %s%s", path, result.added or "none",
                result.removed or "none", result.changed or "none",
                f"; failed: {result.failed}" if result.failed else "",
            )  # fmt: skip


async def reload(engine: Engine, path: Path) -> Applied:
    """Read ``path`` and apply it; a file that does not load leaves everything as it is."""
    try:
        new = await anyio.to_thread.run_sync(load_config, path)
    except ConfigError as exc:
        return Applied(error=str(exc))
    return await apply(engine, new)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino
