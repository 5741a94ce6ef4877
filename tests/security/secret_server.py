"""An MCP server started with a secret in its environment, to prove the secret never reaches the sandbox.

``has_secret`` says whether the secret arrived (without revealing it); ``echo`` and ``fail`` give the guest
ordinary results and errors to inspect; ``crash`` exits mid-call
(and, given a marker file path, makes the next start fail with the secret in its stderr).
"""

from __future__ import annotations

import os
import sys

from mcp.server.mcpserver import MCPServer

MARKER = os.environ.get("CODEMODE_CRASH_MARKER")
"""Once ``crash`` has run, starting again fails, logging the secret to stderr as a careless server might."""
if MARKER and os.path.exists(MARKER):
    print(f"fatal: cannot connect with token {os.environ.get('CODEMODE_SECRET_TOKEN')}", file=sys.stderr, flush=True)
    sys.exit(1)

server = MCPServer("vault", version="0.0.1")


@server.tool(structured_output=False)
def has_secret() -> bool:
    """Whether CODEMODE_SECRET_TOKEN is set in this server's environment."""
    return os.environ.get("CODEMODE_SECRET_TOKEN", "").startswith("s3cr3t-")


@server.tool(structured_output=False)
def echo(text: str) -> str:
    """Echo the text back."""
    return text


@server.tool(structured_output=False)
def fail(reason: str) -> str:
    """Raise an error with the given reason."""
    raise ValueError(reason)


@server.tool(structured_output=False)
def crash() -> str:
    """Exit the server in the middle of the call (with ``CODEMODE_CRASH_MARKER`` set, for good: see below)."""
    if MARKER:
        open(MARKER, "w").close()
    os._exit(3)


if __name__ == "__main__":
    server.run()
