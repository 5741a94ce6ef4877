"""The host half of the bridge: a ``call`` frame from the guest in, the reply frame out.

The bridge only translates. It checks the frame's shape, turns it into a call on the execution's gate
(:mod:`codemode.calls.gate`, where every check, record and decision lives), and returns the reply frame.
It never raises: every failure becomes an error frame that the guest raises as ``ToolError``. Nothing but
the tool's result crosses into the guest; env, headers and tokens stay here.
"""

from __future__ import annotations

import json
from typing import Any

from codemode.calls.gate import RunContext
from codemode.hub.models import ToolRef
from codemode.protocol import GUEST, ProtocolError, check, encode_frame, error_reply


async def serve_call(ctx: RunContext, message: dict[str, Any], size: int | None = None) -> bytes:
    """Serve one ``{"op": "call", "server", "tool", "args"}`` request for ``ctx``; return the reply frame.

    ``size`` is the request frame's size when the caller knows it (saves re-encoding large arguments).
    Never raises.
    """
    try:
        server, tool, args = message.get("server"), message.get("tool"), message.get("args", {})
        if not isinstance(server, str) or not isinstance(tool, str) or not isinstance(args, dict):
            return encode_frame(error_reply("bridge", "a call needs string 'server' and 'tool' and an object 'args'"))
        if ctx.cancelled:
            return encode_frame(error_reply("cancelled", "the execution was cancelled"))
        if size is None:
            size = len(json.dumps(args, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))
        reply = await ctx.gate.call(ctx, ToolRef(server, tool), args, size)
        return reply.frame()
    except Exception as exc:  # e.g. a result that is not JSON-encodable; a host bug must not trap the guest
        return encode_frame(error_reply("bridge", f"{type(exc).__name__}: {exc}"))


def serve_local_op(ctx: RunContext, message: dict[str, Any]) -> bytes | None:
    """Serve a request whose op has a local handler on the gate (``fetch``) on this thread, or return None
    when it has none (then :func:`serve_op` serves it on the event loop). Never raises."""
    name = message.get("op")
    handler = ctx.gate.local_ops.get(name) if isinstance(name, str) else None
    if handler is None:
        return None
    try:
        check(message, GUEST)
        if ctx.cancelled:
            return encode_frame(error_reply("cancelled", "the execution was cancelled"))
        return handler(ctx, message).frame()
    except ProtocolError as exc:
        return encode_frame(error_reply("bridge", str(exc)))
    except Exception as exc:  # a host bug must not trap the guest
        return encode_frame(error_reply("bridge", f"{type(exc).__name__}: {exc}"))


async def serve_op(ctx: RunContext, message: dict[str, Any]) -> bytes:
    """Serve one guest request other than ``call`` (``mount``, ``search_directory``, ``fetch``...) by the
    handler the engine registered for its op on the gate; return the reply frame. Never raises."""
    local = serve_local_op(ctx, message)
    if local is not None:
        return local
    try:
        op = check(message, GUEST)
        handler = ctx.gate.ops.get(op.name)
        if handler is None:
            return encode_frame(error_reply("unknown", f"{op.name}() is not available in this codemode host"))
        if ctx.cancelled:
            return encode_frame(error_reply("cancelled", "the execution was cancelled"))
        return (await handler(ctx, message)).frame()
    except ProtocolError as exc:
        return encode_frame(error_reply("bridge", str(exc)))
    except Exception as exc:  # a host bug must not trap the guest
        return encode_frame(error_reply("bridge", f"{type(exc).__name__}: {exc}"))
