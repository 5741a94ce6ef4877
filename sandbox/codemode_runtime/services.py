"""Services found and connected at run time, from inside the sandbox (stdlib only)::

    search_directory("memory")     # [{'name': 'memory', 'description': ..., 'mounted': False, 'params': [...], ...}]
    module = mount("memory")       # 'memory': the host started it; `from stubs import memory` works now
    unmount("memory")              # stopped; its stubs are gone from the next import on

What may be mounted is the host's decision (its config's ``codemode.mount`` setting); a refusal raises
``ToolDenied`` naming that setting. Secrets and file paths an entry needs come from the host, never from
``params``.
"""

from __future__ import annotations

import sys
from typing import Any

import codemode_runtime as _runtime
from codemode_runtime.protocol import OP_MOUNT, OP_SEARCH_DIRECTORY, OP_UNMOUNT


def search_directory(query: str = "") -> list[dict[str, Any]]:
    """Directory entries matching every word of ``query``: name, description, whether it is mounted, the
    parameters ``mount`` takes and the secrets the host must hold for it."""
    result = _runtime.request(OP_SEARCH_DIRECTORY, query=str(query))
    return list(result) if isinstance(result, list) else []


def mount(name: str, **params: Any) -> str:
    """Start the directory entry ``name`` and return the stubs module to import (``from stubs import X``).

    Raises:
        ToolDenied: the host's config does not allow mounting it, or a parameter is not the program's to give.
        ToolError: it is unknown or failed to start (the message says why).
    """
    result = _runtime.request(OP_MOUNT, name=str(name), params=params)
    _use(result)
    return str(result.get("module", name)) if isinstance(result, dict) else str(name)


def unmount(name: str) -> None:
    """Stop a service mounted at run time; ``import stubs.<module>`` fails from now on."""
    _use(_runtime.request(OP_UNMOUNT, name=str(name)))


class _MissingStubs:
    """Last on ``sys.meta_path``: ``import stubs.X`` for a server that is not connected (never was, or was
    unmounted) fails saying so, instead of with a bare ``No module named``."""

    @staticmethod
    def find_spec(name: str, path: object = None, target: object = None) -> None:
        head, _, server = name.partition(".")
        if head == "stubs" and server and "." not in server:
            raise ModuleNotFoundError(
                f"No module named {name!r}: no connected server has the stubs module {server!r} (it may have been "
                "unmounted); list_servers() shows the connected ones, search_directory() what can be mounted",
                name=name,
            )
        return None


if not any(isinstance(finder, _MissingStubs) for finder in sys.meta_path):
    sys.meta_path.append(_MissingStubs())


def _use(result: Any) -> None:
    # The host published a new stubs generation with (or without) the service: import from it at once.
    repl = sys.modules.get("codemode_runtime.repl")
    if isinstance(result, dict) and repl is not None:
        repl.use_stubs(result.get("stubs"))
