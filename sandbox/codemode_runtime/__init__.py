"""The guest runtime: what generated stubs call inside the sandbox. Imports only the stdlib.

``call(server, tool, args)`` sends one request to the host over the installed transport and returns the
tool's result: its structured content, or its text content parsed as JSON when it is JSON, else the text
as a ``str``; an image, audio or resource block is its JSON form, a dict with its ``"type"`` (the stubs type it
as ``ImageContent``, ``AudioContent``, ``EmbeddedResource`` or ``ResourceLink``); several content blocks come
back as a list. Keys whose value is ``None`` are dropped before sending,
so an omitted optional argument is not sent as ``null``.

A failed call raises :class:`ToolError` or, when the failure has a kind a program may want to handle on
its own, one of its subclasses (the kinds and their retryable flags are in
:mod:`codemode_runtime.protocol`)::

    ToolError                 tool (the upstream tool said so), and any kind this runtime does not know
    ├── ToolTimeout           timeout     retryable: no answer before the execution's time limit
    ├── ToolUnavailable       upstream    retryable: the server is down
    ├── ApprovalPending       awaiting    retryable: the call waits for a person's approval
    ├── ToolDenied            denied      a policy refused the call
    ├── QuotaExceeded         quota, too_large: the execution's call quota, or a size limit
    ├── UnknownTool           unknown     no such server or tool
    ├── CallCancelled         cancelled   the execution is being stopped
    └── BridgeError           bridge      a malformed request, or a fault in the host's bridge
"""

from __future__ import annotations

from typing import Any

from codemode_runtime import transport as _transport
from codemode_runtime.protocol import (
    KIND_AWAITING,
    KIND_BRIDGE,
    KIND_CANCELLED,
    KIND_DENIED,
    KIND_QUOTA,
    KIND_TIMEOUT,
    KIND_TOO_LARGE,
    KIND_TOOL,
    KIND_UNKNOWN,
    KIND_UPSTREAM,
    KINDS,
    OP_CALL,
)


class ToolError(Exception):
    """A tool call failed. ``kind`` says why (see the module docstring for the tree); ``retryable`` says
    whether the same call may succeed later; ``server``, ``tool`` and ``message`` say what failed."""

    default_kind: str = KIND_TOOL
    """The kind a class stands for when ``kind`` is not given."""

    def __init__(self, server: str, tool: str, message: str, kind: str | None = None) -> None:
        super().__init__(f"{server}.{tool}: {message}")
        self.server = server
        self.tool = tool
        self.message = message
        self.kind = self.default_kind if kind is None else kind
        self.retryable = KINDS.get(self.kind, False)


class ToolTimeout(ToolError):
    """The tool did not answer before the execution's wall-time limit (retryable, in a later execution)."""

    default_kind = KIND_TIMEOUT


class ToolUnavailable(ToolError):
    """The tool's server is down or failed to answer (retryable: the host restarts dead servers)."""

    default_kind = KIND_UPSTREAM


class ApprovalPending(ToolError):
    """The call needs a person's approval that has not been given yet (retryable)."""

    default_kind = KIND_AWAITING


class ToolDenied(ToolError):
    """A policy refused the call."""

    default_kind = KIND_DENIED


class QuotaExceeded(ToolError):
    """The execution's tool-call quota is spent (kind ``quota``), or the arguments or the result are over
    their size limit (kind ``too_large``)."""

    default_kind = KIND_QUOTA


class UnknownTool(ToolError):
    """No server or tool by that name."""

    default_kind = KIND_UNKNOWN


class CallCancelled(ToolError):
    """The execution is being stopped; the call was not made."""

    default_kind = KIND_CANCELLED


class BridgeError(ToolError):
    """The host could not read the request (e.g. arguments that are not an object), or its bridge failed."""

    default_kind = KIND_BRIDGE


_ERROR_CLASSES: dict[str, type[ToolError]] = {
    KIND_TOOL: ToolError,
    KIND_TIMEOUT: ToolTimeout,
    KIND_UPSTREAM: ToolUnavailable,
    KIND_AWAITING: ApprovalPending,
    KIND_DENIED: ToolDenied,
    KIND_QUOTA: QuotaExceeded,
    KIND_TOO_LARGE: QuotaExceeded,
    KIND_UNKNOWN: UnknownTool,
    KIND_CANCELLED: CallCancelled,
    KIND_BRIDGE: BridgeError,
}
"""The class :func:`call` raises for each kind; a kind missing here raises a plain :class:`ToolError`."""


def call(server: str, tool: str, args: dict[str, Any]) -> Any:
    """Call ``tool`` on ``server`` through the host bridge and return its result.

    Raises:
        ToolError: the call failed; the subclass matches the failure's ``kind``.
        TypeError: an argument cannot be sent (it is not JSON).
    """
    request = {"op": OP_CALL, "server": server, "tool": tool, "args": {k: v for k, v in args.items() if v is not None}}
    reply = _transport.request(request)
    if reply.get("ok"):
        return reply.get("result")
    error = reply.get("error") or {}
    message = str(error.get("message", "the bridge refused the call"))
    kind = str(error.get("kind", KIND_BRIDGE))
    raise _ERROR_CLASSES.get(kind, ToolError)(server, tool, message, kind)


def request(op: str, **fields: Any) -> Any:
    """Send one request other than a tool call (``mount``, ``search_directory``...) and return its result.

    Raises:
        ToolError: the host refused or failed it (``server`` is ``"codemode"``, ``tool`` the op).
    """
    reply = _transport.request({"op": op, **fields})
    if reply.get("ok"):
        return reply.get("result")
    error = reply.get("error") or {}
    message = str(error.get("message", "the host refused the request"))
    kind = str(error.get("kind", KIND_BRIDGE))
    raise _ERROR_CLASSES.get(kind, ToolError)("codemode", op, message, kind)


from codemode_runtime.discovery import describe, list_servers, list_tools, search_tools  # noqa: E402
from codemode_runtime.services import mount, search_directory, unmount  # noqa: E402
from codemode_runtime.skills import SkillError, save_skill  # noqa: E402

PROGRAM_NAMES = (
    "ApprovalPending",
    "BridgeError",
    "CallCancelled",
    "QuotaExceeded",
    "SkillError",
    "ToolDenied",
    "ToolError",
    "ToolTimeout",
    "ToolUnavailable",
    "UnknownTool",
    "describe",
    "list_servers",
    "list_tools",
    "mount",
    "save_skill",
    "search_directory",
    "search_tools",
    "unmount",
)
"""The names every program finds in its namespace without an import (both executors put them there)."""

__all__ = [
    "PROGRAM_NAMES",
    "ApprovalPending",
    "BridgeError",
    "CallCancelled",
    "QuotaExceeded",
    "SkillError",
    "ToolDenied",
    "ToolError",
    "ToolTimeout",
    "ToolUnavailable",
    "UnknownTool",
    "call",
    "describe",
    "list_servers",
    "list_tools",
    "mount",
    "request",
    "save_skill",
    "search_directory",
    "search_tools",
    "unmount",
]
