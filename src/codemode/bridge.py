"""The host half of the bridge: the one choke point every tool call from a sandbox passes through.

A program's stub call arrives here as a JSON frame. The bridge checks it (shape, size, a known tool, the
execution's call quota and remaining time), calls the tool through the hub, records the call, and turns
the MCP result into plain data for the guest. It never raises: every failure becomes an error frame that
the guest raises as ``ToolError``. Nothing but the tool's result crosses into the guest; env, headers and
tokens stay here.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from codemode.errors import CodemodeError
from codemode.executors.base import KnownTools, Limits, ToolCallRecord, ToolHandler
from codemode.hub.models import ToolRef
from codemode.protocol import HEADER as HEADER
from codemode.protocol import MAGIC_OFFSET as MAGIC_OFFSET
from codemode.protocol import FrameError as FrameError
from codemode.protocol import decode_frame as decode_frame
from codemode.protocol import encode_frame as encode_frame
from codemode.protocol import error_reply as error_reply

if TYPE_CHECKING:
    import mcp_types as types


@dataclass
class Ledger:
    """The tool calls of one execution: its limits, its deadline and what has been called so far."""

    limits: Limits
    deadline: float
    calls: list[ToolCallRecord] = field(default_factory=list)
    cancelled: bool = False


def result_for_guest(result: types.CallToolResult) -> Any:
    """The data a stub returns: structured content if any, else the text parsed as JSON when it is JSON.

    Several content blocks become a list (servers that return one block per row); non-text blocks are
    passed as their JSON form (``{"type": "image", "mimeType": ..., "data": ...}``).
    """
    if result.structured_content is not None:
        return result.structured_content
    items = [_content_item(block) for block in result.content]
    if len(items) == 1:
        return items[0]
    return items


def _content_item(block: types.ContentBlock) -> Any:
    # Duck-typed on ``type`` so the executors need not import the (slow-to-import) MCP types.
    text = getattr(block, "text", None)
    if block.type == "text" and isinstance(text, str):
        head = text[:64].lstrip()  # look at the start only: a large text is not copied just to be checked
        if head[:1] in ("{", "[", '"') or (len(text) <= 64 and (head in ("true", "false", "null") or _is_number(head))):
            try:
                return json.loads(text)
            except ValueError:
                return text
        return text
    return block.model_dump(mode="json", by_alias=True, exclude_none=True)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _for_guest(message: str) -> str:
    # Host diagnostics (an upstream's stderr tail) stay on the host: a server may log a token there.
    head, marker, _ = message.partition(" (stderr: ")
    return head + " (details are in the codemode host's server log)" if marker else message


def _error_text(result: types.CallToolResult) -> str:
    texts = [b.text for b in result.content if b.type == "text" and isinstance(getattr(b, "text", None), str)]
    return "\n".join(texts).strip() or "the tool reported an error without a message"


class Bridge:
    """Validates and serves tool calls for every executor."""

    def __init__(self, tool_handler: ToolHandler, known_tools: KnownTools) -> None:
        self._handler = tool_handler
        self._known = known_tools

    async def call(self, ledger: Ledger, message: dict[str, Any], size: int | None = None) -> bytes:
        """Serve one ``{"op": "call", "server", "tool", "args"}`` request; return the reply frame. Never raises.

        ``size`` is the request frame's size when the caller knows it (saves re-encoding large arguments).
        """
        try:
            reply = await self._call(ledger, message, size)
            frame = encode_frame(reply)
        except Exception as exc:  # e.g. a result that is not JSON-encodable; a host bug must not trap the guest
            return encode_frame(error_reply("bridge", f"{type(exc).__name__}: {exc}"))
        if len(frame) > ledger.limits.max_result_bytes + HEADER.size + 32:
            message_text = f"the result is {len(frame):,} bytes; the limit is {ledger.limits.max_result_bytes:,}"
            if ledger.calls:
                ledger.calls[-1] = dataclasses.replace(ledger.calls[-1], ok=False, error=message_text)
            return encode_frame(error_reply("too_large", message_text))
        return frame

    async def _call(self, ledger: Ledger, message: dict[str, Any], size: int | None) -> dict[str, Any]:
        server, tool, args = message.get("server"), message.get("tool"), message.get("args", {})
        if not isinstance(server, str) or not isinstance(tool, str) or not isinstance(args, dict):
            return error_reply("bridge", "a call needs string 'server' and 'tool' and an object 'args'")
        if ledger.cancelled:
            return error_reply("cancelled", "the execution was cancelled")
        args_bytes = (
            size if size is not None else len(json.dumps(args, ensure_ascii=False, separators=(",", ":")).encode())
        )
        ref = ToolRef(server, tool)
        refusal = self._refuse(ledger, ref, args_bytes)
        if refusal is not None:
            ledger.calls.append(ToolCallRecord(server, tool, args_bytes, 0.0, False, refusal["error"]["message"]))
            return refusal
        started = time.perf_counter()
        reply = await self._invoke(ledger, ref, args)
        error = None if reply["ok"] else str(reply["error"]["message"])
        ledger.calls.append(ToolCallRecord(server, tool, args_bytes, time.perf_counter() - started, reply["ok"], error))
        return reply

    def _refuse(self, ledger: Ledger, ref: ToolRef, args_bytes: int) -> dict[str, Any] | None:
        limits = ledger.limits
        if len(ledger.calls) >= limits.max_tool_calls:
            return error_reply("quota", f"this execution reached its limit of {limits.max_tool_calls} tool calls")
        if args_bytes > limits.max_request_bytes:
            return error_reply(
                "too_large", f"arguments are {args_bytes:,} bytes; the limit is {limits.max_request_bytes:,}"
            )
        if ref not in self._known():
            servers = sorted({r.server for r in self._known()})
            if ref.server not in servers:
                return error_reply("unknown", f"no server named {ref.server!r} (connected: {', '.join(servers)})")
            return error_reply("unknown", f"server {ref.server!r} has no tool {ref.tool!r}")
        return None

    async def _invoke(self, ledger: Ledger, ref: ToolRef, args: dict[str, Any]) -> dict[str, Any]:
        remaining = ledger.deadline - time.monotonic()
        if remaining <= 0:
            return error_reply("timeout", "the execution's wall-time limit was reached")
        try:
            with anyio.fail_after(remaining):
                result = await self._handler(ref, args)
        except TimeoutError:
            return error_reply("timeout", f"no answer before the execution's {ledger.limits.wall_s:g} s limit")
        except CodemodeError as exc:
            return error_reply("upstream", _for_guest(str(exc)))
        except Exception as exc:  # a host bug must not trap the guest; report it as the call's failure
            return error_reply("upstream", f"{type(exc).__name__}: {exc}")
        if result.is_error:
            return error_reply("tool", _error_text(result))
        return {"ok": True, "result": result_for_guest(result)}
