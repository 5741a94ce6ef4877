"""The upstream stdio reader's bookkeeping of the session's requests (``hub.bounded_stdio._Reader``): which
request a refused line is blamed on depends on it, so a stale or missing entry fails the wrong call."""

from __future__ import annotations

import mcp_types as types
from mcp.shared.message import SessionMessage

from codemode.hub.bounded_stdio import _Reader


def _request(request_id: int) -> types.JSONRPCRequest:
    return types.JSONRPCRequest(jsonrpc="2.0", id=request_id, method="tools/call", params={"name": "t"})


def test_a_request_is_in_flight_until_answered_or_cancelled() -> None:
    reader = _Reader("s")
    for request_id in (1, 2, 3):
        reader.sent(_request(request_id))
    assert reader.in_flight == {1, 2, 3}
    # The session's answer to a request of the server's (a ping) is neither: it changes nothing.
    reader.sent(types.JSONRPCResponse(jsonrpc="2.0", id=9, result={}))
    cancel = types.JSONRPCNotification(jsonrpc="2.0", method="notifications/cancelled", params={"requestId": 2})
    reader.sent(cancel)
    assert reader.in_flight == {1, 3}
    answer = reader.message(bytearray(b'{"jsonrpc":"2.0","id":1,"result":{"content":[]}}'))
    assert isinstance(answer, SessionMessage) and reader.in_flight == {3}
    error = reader.message(bytearray(b'{"jsonrpc":"2.0","id":3,"error":{"code":-1,"message":"no"}}'))
    assert isinstance(error, SessionMessage) and reader.in_flight == set()


def test_an_answer_that_is_not_json_rpc_fails_its_request_naming_why() -> None:
    reader = _Reader("s")
    reader.sent(_request(4))
    item = reader.message(bytearray(b'{"jsonrpc":"2.0","id":4,"result":5}'))
    assert isinstance(item, SessionMessage)
    refusal = item.message
    assert isinstance(refusal, types.JSONRPCError) and refusal.id == 4
    assert refusal.error.code == types.PARSE_ERROR
    assert refusal.error.message.startswith("the server sent a message that is not valid JSON-RPC (")
    assert reader.in_flight == set()
