"""MCP tool results as the data a stub returns inside the sandbox, checked for size before conversion."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from codemode.errors import ToolCallError

if TYPE_CHECKING:
    import mcp_types as types

MAX_CONTENT_BLOCKS = 10_000
"""The most content blocks one result may have: each costs the MCP SDK ~1.3 KB as a model (a million empty
blocks, 26 MB on the wire, would cost 1.3 GB), so the stdio transport counts them before the models are
built (``hub.bounded_stdio``) and :func:`result_for_guest` again for every transport."""


MAX_RESULT_CONTAINERS = 250_000
"""The most arrays and objects one upstream message may hold, counted on its bytes before it is parsed: the
SDK's parser makes each a Python dict or list (~200 bytes), so 26 MB of ``{},{},…`` would cost 1.8 GB.
Tighter than the guest frames' ``MAX_CONTAINERS`` (whose parser costs ~70 bytes a container)."""


class ResultTooLarge(ToolCallError):
    """An upstream's result over a size, count or depth limit; the call fails with ``too_large``.

    Raised by the hub (a message refused at the transport) and by :func:`result_for_guest`; the gate turns
    it into the guest's ``too_large`` error with this message, which names the limit.
    """

    def __init__(self, message: str, server: str = "", tool: str = "") -> None:
        super().__init__(server, tool, message)
        if not server:
            self.args = (message,)

    def __str__(self) -> str:
        return f"{self.server}.{self.tool}: {self.message}" if self.server else self.message


def result_for_guest(result: types.CallToolResult, max_bytes: int | None = None) -> Any:
    """The data a stub returns: structured content if any, else the text parsed as JSON when it is JSON.

    Several content blocks become a list (servers that return one block per row); non-text blocks are
    passed as their JSON form (``{"type": "image", "mimeType": ..., "data": ...}``).

    Checked before any conversion: at most :data:`MAX_CONTENT_BLOCKS` blocks, and with ``max_bytes`` (the
    execution's ``Limits.max_result_bytes``) no text or data of one block, nor of all of them, over it
    (characters, each at least a byte: a refusal here is never wrong). The structured content's size is
    measured once, as the guest's frame is encoded (``ShapeResultStep``); its depth was held to 200 levels
    at the transport (``hub.bounded_stdio``, or the SDK's own parser for HTTP).

    Raises:
        ResultTooLarge: the result is over one of those limits.
    """
    if len(result.content) > MAX_CONTENT_BLOCKS:
        raise ResultTooLarge(
            f"the result has {len(result.content):,} content blocks; the limit is {MAX_CONTENT_BLOCKS:,}"
        )
    if result.structured_content is not None:
        return result.structured_content
    if max_bytes is not None:
        _check_sizes(result.content, max_bytes)
    items = [_content_item(block) for block in result.content]
    if len(items) == 1:
        return items[0]
    return items


MAX_ERROR_CHARS = 20_000
"""The most of an ``isError`` result's text passed on as the error's message."""


def error_text(result: types.CallToolResult) -> str:
    """The text of an ``isError`` result (what the tool said went wrong), at most :data:`MAX_ERROR_CHARS`."""
    texts: list[str] = []
    size = 0
    for block in result.content[:MAX_CONTENT_BLOCKS]:
        text = getattr(block, "text", None)
        if block.type == "text" and isinstance(text, str):
            texts.append(text[: MAX_ERROR_CHARS - size + 1])
            size += len(texts[-1]) + 1
            if size > MAX_ERROR_CHARS:
                break
    return server_text("\n".join(texts).strip()) or "the tool reported an error without a message"


def server_text(text: str) -> str:
    """Text an upstream wrote that becomes an error message (a tool's error, a JSON-RPC error's message): at most
    :data:`MAX_ERROR_CHARS`, its control characters escaped (they reach terminals: ``history``, a client's log)."""
    if len(text) > MAX_ERROR_CHARS:
        text = text[:MAX_ERROR_CHARS] + f" … [cut at {MAX_ERROR_CHARS:,} characters]"
    return upstream_text(text)


_IMITATED_NOTE = re.compile(r"[\[\uff3b\u3010\u3014\u27e6](?=\s*codemode\b)", re.IGNORECASE)
"""The opening bracket of a note in codemode's own voice (``[codemode: ...]``, which the front and the engine
add to results), as text from elsewhere may imitate it: spaced, in capitals, or with a look-alike bracket."""


def upstream_text(text: str) -> str:
    """Text an upstream wrote (a description, a server's instructions, an error) as a client or a terminal is
    shown it: :func:`printable`, and any imitation of codemode's notes attributed to its writer (``[codemode:
    x]`` becomes ``[upstream: codemode: x]``), so a note in codemode's voice is always codemode's own."""
    text = printable(text)
    if "codemode" not in text.lower():  # saves the search in nearly every text
        return text
    return _IMITATED_NOTE.sub(r"\g<0>upstream: ", text)


def printable(text: str) -> str:
    """``text`` safe for a terminal: control characters (an escape sequence could rewrite the screen) shown
    escaped; newlines and tabs stay."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in "\n\t" else repr(c)[1:-1] for c in text)


def _check_sizes(blocks: list[types.ContentBlock], max_bytes: int) -> None:
    total = 0
    for block in blocks:
        size = _payload_chars(block)
        if size > max_bytes:
            raise ResultTooLarge(
                f"a {block.type} block of the result is {size:,} characters; the limit is {max_bytes:,} bytes"
            )
        total += size
        if total > max_bytes:
            raise ResultTooLarge(f"the result's content is over {total:,} characters; the limit is {max_bytes:,} bytes")


def _payload_chars(block: types.ContentBlock) -> int:
    # The text or base64 data a block carries (an embedded resource's, too); duck-typed like _content_item.
    size = 0
    for holder in (block, getattr(block, "resource", None)):
        for name in ("text", "data", "blob"):
            value = getattr(holder, name, None)
            if isinstance(value, str):
                size += len(value)
    return size


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
