"""Which of an upstream's notifications reach the SDK's session: the few codemode acts on.

Each notification cost ~70 us of the host's CPU on its way through the SDK (pydantic, the session's dispatcher
and a task each, a second parse) to be discarded there: a server writing log messages in a loop (100 MB a
second, for next to nothing) held the event loop, and every other server's and client's calls with it. The
transports drop the rest once the stdlib has parsed them: the stdio reader (:mod:`.bounded_stdio`) and the
HTTP client's event streams (:mod:`.bounded_http`).
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

import mcp_types as types
from mcp.shared.dispatcher import coerce_request_id

HEEDED_NOTIFICATIONS = frozenset({"notifications/tools/list_changed", "notifications/subscriptions/acknowledged"})
"""The notifications codemode acts on (beside a ``notifications/cancelled`` naming a request in flight): a
changed tool list, announced on its own (handshake-era protocols) or on the ``subscriptions/listen`` stream."""


def ignored(message: Any, *in_flight: Container[types.RequestId]) -> bool:
    """Whether a parsed JSON-RPC message is a notification codemode does not act on, to be dropped before the
    SDK sees it: log messages, progress, resource updates, cancellations of nothing in ``in_flight`` (the ids
    of requests still unanswered, the session's or the server's) ..."""
    if not isinstance(message, dict) or "method" not in message or "id" in message:
        return False  # a request or an answer (or not JSON-RPC: the SDK reports that)
    method = message["method"]
    if not isinstance(method, str) or method in HEEDED_NOTIFICATIONS:
        return False  # not a method name (a list is not even hashable): the SDK refuses it
    if method != "notifications/cancelled":
        return True
    params = message.get("params")
    request = params.get("requestId") if isinstance(params, dict) else None
    if not isinstance(request, int | str) or isinstance(request, bool):
        return True
    # A request of the server's being answered, or the tool-change subscription (a request of the session's).
    request = coerce_request_id(request)
    return not any(request in ids for ids in in_flight)
