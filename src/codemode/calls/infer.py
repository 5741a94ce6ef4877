"""The gate step that watches results of tools without an output schema and infers their type.

Each successful result's shape (keys and types, never values: :mod:`codemode.calls.shapes`) goes to the
:class:`~codemode.catalog.observed.ShapeBook`; when the book publishes a type, ``on_change`` is told, and the
engine saves the book and compiles a new stubs generation in the background (never on the call's path).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from codemode.calls.gate import Call, Next, Reply
from codemode.calls.shapes import shape_of_result
from codemode.catalog.observed import Change, ShapeBook
from codemode.compiler.render import declares_result
from codemode.hub.models import ToolRef

logger = logging.getLogger(__name__)

OnChange = Callable[[ToolRef, Change], None]


class InferResultStep:
    """Observes the shape of each answered call of a tool that declares no output schema."""

    def __init__(self, book: ShapeBook, on_change: OnChange) -> None:
        self.book = book
        self.on_change = on_change

    async def __call__(self, call: Call, call_next: Next) -> Reply:
        reply = await call_next(call)
        spec = call.spec
        if not reply.ok or reply.raw is None or spec is None or declares_result(spec) or self.book.threshold <= 0:
            return reply
        try:
            change = self.book.observe(call.ref, shape_of_result(reply.raw, reply.value))
            if change.dirty or change.publish:
                self.on_change(call.ref, change)
        except Exception:  # an observation is never worth failing the call it watched
            logger.exception("%s: observing the result's shape failed", call.ref)
        return reply


__all__ = ["InferResultStep"]
