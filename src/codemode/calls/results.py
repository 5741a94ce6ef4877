"""MCP tool results as the data a stub returns inside the sandbox."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import mcp_types as types


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


def error_text(result: types.CallToolResult) -> str:
    """The text of an ``isError`` result (what the tool said went wrong)."""
    texts = [b.text for b in result.content if b.type == "text" and isinstance(getattr(b, "text", None), str)]
    return "\n".join(texts).strip() or "the tool reported an error without a message"


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
