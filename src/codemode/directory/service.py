"""The engine's side of ``search_directory``, ``mount`` and ``unmount``: handlers for the gate's ops.

A mount is decided here, never in the sandbox: the entry must be in the directory and match the config's
``codemode.mount`` patterns; its parameters are checked against what the entry declares, and its secrets
and paths come from the host's environment. The service is started on the hub, the stubs recompiled into a
new generation (clients get ``list_changed`` through the catalog), and the execution switched to that
generation, so the program that mounted it can import it at once. Every mount, unmount and refusal is a
record in the execution's journal (``codemode.mount(NAME)``), which the audit log keeps.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import anyio

from codemode.calls.gate import Gate, Reply, RunContext, journaled
from codemode.catalog.catalog import Catalog
from codemode.config import AnyServer, Settings
from codemode.directory.launch import MountError, server_config
from codemode.directory.load import Directory, Located
from codemode.directory.policy import mount_allowed, refusal
from codemode.errors import CodemodeError
from codemode.hub.hub import Hub, upstream_for
from codemode.hub.upstream import UpstreamState
from codemode.policy.approvals import approve_mount
from codemode.protocol import OP_MOUNT, OP_SEARCH_DIRECTORY, OP_UNMOUNT

logger = logging.getLogger(__name__)


class Services:
    """Runtime mounting for one engine: its hub, catalog, settings and directory."""

    def __init__(self, hub: Hub, catalog: Catalog, settings: Settings, directory: Directory, *, log_dir: Path) -> None:
        self.hub = hub
        self.catalog = catalog
        self.settings = settings
        self.directory = directory
        self.log_dir = log_dir
        self.mounted: dict[str, Located] = {}
        """Services mounted at run time, by the name they have in the hub."""
        self.mounted_by: dict[str, set[str]] = {}
        """Runtime mount → the clients that mounted it: one client's unmount stops it only for its last one."""
        self.started_with: dict[str, AnyServer] = {}
        """Runtime mount → the config it runs with: a later mount must ask for the same one to share it."""
        self._lock = anyio.Lock()

    def register(self, gate: Gate) -> None:
        """Serve the guest's directory ops through ``gate``."""
        gate.ops[OP_SEARCH_DIRECTORY] = self._search
        gate.ops[OP_MOUNT] = self._mount
        gate.ops[OP_UNMOUNT] = self._unmount

    # -- the ops ---------------------------------------------------------------------------------

    async def _search(self, ctx: RunContext, message: dict[str, Any]) -> Reply:
        servers = set(self.hub.servers)
        found = self.directory.search(message["query"])
        return Reply(True, value=[e.to_json(mounted=e.entry.short_name in servers) for e in found[:50]])

    async def _mount(self, ctx: RunContext, message: dict[str, Any]) -> Reply:
        name = message["name"]
        return await journaled(ctx, f"mount({name[:64]})", lambda: self.mount(ctx, name, message["params"]))

    async def _unmount(self, ctx: RunContext, message: dict[str, Any]) -> Reply:
        name = message["name"]
        return await journaled(ctx, f"unmount({name[:64]})", lambda: self.unmount(ctx, name))

    # -- mounting --------------------------------------------------------------------------------

    async def mount(self, ctx: RunContext | None, name: str, params: dict[str, Any]) -> Reply:
        """Mount the directory entry ``name`` (see the module docstring). Never raises for a refusal."""
        located = self.directory.get(name)
        if located is None:
            known = ", ".join(sorted(self.directory.entries)) or "none"
            return Reply.refuse("unknown", f"no directory entry named {name!r} (entries: {known})")
        entry = located.entry
        short = entry.short_name
        if not mount_allowed(short, entry.name, self.settings.mount):
            # Not pre-allowed: the person decides when the client can be asked (clock paused meanwhile).
            what = f"{short!r} ({entry.description[:200]})" if entry.description else repr(short)
            timeout = self.settings.policy.approval_timeout_s
            if ctx is None or not await approve_mount(ctx, what, timeout_s=timeout):
                return Reply.refuse("denied", refusal(short))
        try:
            config = server_config(entry, params, root=located.root)
        except MountError as exc:
            return Reply.refuse("denied", str(exc))
        async with self._lock:
            if short in self.mounted:
                if self.started_with.get(short) != config:
                    # Sharing it would hand this program a server started with another's parameters
                    # (another time zone, label or account) while it believes its own took effect.
                    return Reply.refuse(
                        "denied", f"{short!r} is already mounted with other parameters; mount it with the same "
                        "ones, or once every client that mounted it has unmounted it"
                    )  # fmt: skip
                self.mounted_by.setdefault(short, set()).add(_client(ctx))
                return Reply(True, value=self._switch(ctx, short))
            if short in self.hub.servers:
                return Reply.refuse("denied", f"a configured server is already named {short!r}; use it directly")
            upstream = upstream_for(short, config, log_dir=self.log_dir)
            try:
                await self.hub.mount(short, upstream)
            except (CodemodeError, ValueError) as exc:
                return Reply.fail("upstream", f"mounting {short!r} failed: {exc}")
            if upstream.state is UpstreamState.FAILED:
                reason = (upstream.error or "it did not start").partition(" (stderr: ")[0]
                await self.hub.unmount(short)
                return Reply.fail("upstream", f"{short!r} did not start: {reason}")
            self.mounted[short] = located
            self.mounted_by[short] = {_client(ctx)}
            self.started_with[short] = config
            await self.catalog.refresh(f"mounted {short}")
            logger.info("mounted %s (%s)", short, entry.name)
            return Reply(True, value=self._switch(ctx, short))

    async def unmount(self, ctx: RunContext | None, name: str) -> Reply:
        """Stop a service mounted at run time. Never raises for a refusal."""
        located = self.directory.get(name)
        short = located.entry.short_name if located is not None else name
        async with self._lock:
            if short not in self.mounted:
                mounted = ", ".join(sorted(self.mounted)) or "none"
                return Reply.refuse(
                    "unknown", f"{name!r} was not mounted at run time (mounted: {mounted}); configured servers "
                    "are changed in the config file"
                )  # fmt: skip
            users = self.mounted_by.get(short, set())
            if ctx is not None:  # a program: its client's mount ends; the service, with the last client's
                mine = _client(ctx)
                if mine not in users:
                    return Reply.refuse(
                        "denied", f"{short!r} was mounted by another client: only the clients that mounted it end it"
                    )
                users.discard(mine)
                if users:
                    return Reply(True, value=self._switch(ctx, None))
            del self.mounted[short]
            self.mounted_by.pop(short, None)
            self.started_with.pop(short, None)
            await self.hub.unmount(short)
            await self.catalog.refresh(f"unmounted {short}")
            logger.info("unmounted %s", short)
            return Reply(True, value=self._switch(ctx, None))

    def _switch(self, ctx: RunContext | None, server: str | None) -> dict[str, Any]:
        """Move the execution to the current generation (pinned in place of its old one); its module name."""
        generation = self.catalog.generation
        new = generation.name if generation is not None else None
        if ctx is not None and new is not None and new != ctx.generation:
            self.catalog.store.pin(new)
            if ctx.generation is not None:
                self.catalog.store.unpin(ctx.generation)
            ctx.generation = new
        out: dict[str, Any] = {"stubs": new}
        if server is not None:
            module = next((s["module"] for s in self.catalog.index.get("servers", []) if s["name"] == server), server)
            out["module"] = module
        return out


def _client(ctx: RunContext | None) -> str:
    """Who mounts or unmounts: the execution's client, or the host itself (``codemode mount``, no execution)."""
    return ctx.client if ctx is not None else "host"
