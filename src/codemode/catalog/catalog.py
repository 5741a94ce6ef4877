"""The stub catalog: hub tools → compiled stubs → a published generation → its index → listeners.

One path, under one lock, for the first compile and every live change: two servers changing their tools
at once are compiled one after the other into successive generations, never into one directory at the
same time. A compile that fails is logged, leaves the previous generation in use, and is kept in
:attr:`Catalog.error` so the engine can tell the model.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import anyio

from codemode.catalog.store import Generation, GenerationStore
from codemode.compiler import CompileReport, compile_to_dir, load_index
from codemode.compiler.inferred import Inferred
from codemode.hub.models import ToolRef, ToolSpec

logger = logging.getLogger(__name__)

Listener = Callable[["Catalog"], Awaitable[None]]


class ToolSource(Protocol):
    """What the catalog needs from the hub."""

    def tools(self) -> dict[str, list[ToolSpec]]: ...

    def summaries(self) -> dict[str, str]: ...


class Catalog:
    """The compiled stubs of a hub, published as generations under ``root``."""

    def __init__(
        self,
        root: Path,
        source: ToolSource,
        *,
        progress: Callable[[str], None] | None = None,
        visible: Callable[[ToolSpec], bool] | None = None,
        observed: Callable[[], Mapping[ToolRef, Inferred]] | None = None,
    ) -> None:
        self.store = GenerationStore(root)
        self._source = source
        self._visible = visible
        """Which tools get a stub (the policy hides denied ones, so the model does not plan around them)."""
        self._observed = observed or (lambda: {})
        """Result types inferred from observed results (:mod:`codemode.catalog.observed`)."""
        self._progress = progress or (lambda _msg: None)
        self._lock = anyio.Lock()
        self.generation: Generation | None = None
        self.index: dict[str, Any] = {"version": 1, "servers": []}
        self.report: CompileReport | None = None
        self.error: str | None = None
        """Why the last recompile failed (the previous generation is still in use), or None."""
        self.listeners: list[Listener] = []
        """Awaited after each new generation (the engine refreshes its executor, the front its tool list)."""

    @property
    def root(self) -> Path:
        return self.store.root

    @property
    def path(self) -> Path:
        """The current generation's tree (``root`` before anything was published)."""
        return self.generation.path if self.generation is not None else self.root

    async def refresh(self, reason: str = "start") -> Generation | None:
        """Compile the hub's current tools into a new generation and tell the listeners.

        Never raises for a compile failure: it is logged, kept in :attr:`error`, and the current generation
        stays. Returns the new generation, or None if it failed.
        """
        async with self._lock:
            try:
                tools = self._source.tools()
                if self._visible is not None:
                    keep = self._visible
                    tools = {server: [s for s in specs if keep(s)] for server, specs in tools.items()}
                summaries = self._source.summaries()
                observed = self._observed()
                generation, report = await anyio.to_thread.run_sync(
                    lambda: self.store.publish(
                        lambda tree: compile_to_dir(tools, tree, summaries=summaries, observed=observed),
                        unchanged=lambda report: not (report.written or report.deleted),
                    )
                )
            except Exception as exc:
                self.error = f"recompiling the stubs ({reason}) failed: {type(exc).__name__}: {exc}"
                logger.exception("catalog %s: %s", self.root, self.error)
                return None
            self.error = None
            if generation == self.generation:
                self.report = report
                return generation  # nothing changed: no new generation, nobody to tell
            self.generation, self.report = generation, report
            self.index = load_index(generation.path)
            self._progress(
                f"compiled {sum(len(t) for t in tools.values())} tools from {len(tools)} server(s) into "
                f"{generation.path} ({len(report.written)} written, {len(report.unchanged)} unchanged)"
            )
            for listener in list(self.listeners):
                try:
                    await listener(self)
                except Exception:
                    logger.exception("catalog %s: a listener failed after %s", self.root, generation.name)
            return generation
