"""Who is calling ``codemode serve --http``: bearer tokens mapped to identity names.

``codemode.tokens`` maps where a token comes from to the identity it authenticates::

    "tokens": {"sha256:9f86d081884c7d65…": "alice", "env:BOB_TOKEN": "bob"}

A ``sha256:`` key is the hex SHA-256 digest of the token, so the config file holds no secret (``codemode
token NAME`` makes a token and prints its key); an ``env:`` key names an environment variable holding the
token itself. Several keys may map to one identity (rotating a token). The token in ``http_token_env``, when
set, authenticates as :data:`DEFAULT_IDENTITY`.

Only digests are kept: a plaintext token is hashed as it is read and never stored, logged or audited. A
presented token is hashed and compared with every known digest by ``hmac.compare_digest``, without stopping
at a match, so the time taken says neither which identity matched nor how much of a digest did.

The identity owns the sessions it opens (the SDK binds an MCP session to the ``AccessToken``'s principal,
and handles are signed for it), appears in every audit record, and selects ``policy.identities`` rules.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from codemode.errors import ConfigError

if TYPE_CHECKING:  # the SDK's server package costs half a second to import: the gate needs only client_key
    from mcp.server.auth.provider import AccessToken

DEFAULT_IDENTITY = "default"
"""The identity of the ``http_token_env`` token."""
LOCAL_IDENTITY = "local"
"""stdio and ``codemode run``: the one user of the process."""
ANONYMOUS = "anonymous"
"""HTTP served on loopback without any token."""
RESERVED = frozenset({LOCAL_IDENTITY, ANONYMOUS})
CLIENT_ID = "codemode-http"
"""The ``client_id`` of every token this verifier accepts; the identity is the token's ``subject``."""
MIN_TOKEN_CHARS = 16

IDENTITY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_DIGEST_KEY = re.compile(r"^sha256:[0-9a-f]{64}$")
_ENV_KEY = re.compile(r"^env:[A-Za-z_][A-Za-z0-9_]*$")


def digest(token: str) -> bytes:
    """The SHA-256 digest a token is known by."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def token_key(token: str) -> str:
    """The ``codemode.tokens`` key of ``token`` (``sha256:<hex>``): what goes in the config instead of it."""
    return "sha256:" + digest(token).hex()


def new_token() -> str:
    """A fresh random bearer token (256 bits)."""
    return secrets.token_urlsafe(32)


def check_token_key(key: str) -> None:
    """Raise ``ValueError`` unless ``key`` is ``sha256:<64 lowercase hex>`` or ``env:<VARIABLE>``."""
    if not (_DIGEST_KEY.fullmatch(key) or _ENV_KEY.fullmatch(key)):
        raise ValueError(
            # The key is not echoed: a mistaken entry may be the token itself.
            "a key is 'sha256:<64 lowercase hex digits of the token's SHA-256>' or 'env:<VARIABLE>' (never the "
            "token itself; `codemode token NAME` prints a new token and its key)"
        )


def check_identity(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` can be an identity (letters, digits, ``_.@-``; not reserved)."""
    if not IDENTITY_NAME.fullmatch(name):
        raise ValueError(f"identity {name!r} must be 1-64 letters, digits, '_', '.', '@' or '-'")
    if name in RESERVED:
        raise ValueError(f"identity {name!r} is reserved (it names unauthenticated callers)")


class Identities:
    """The SDK ``TokenVerifier`` of ``serve --http``: a presented bearer token → its identity, or None.

    The SDK's ``BearerAuthBackend`` calls :meth:`verify_token` on every request; ``None`` gets 401.

    ::

        ids = Identities([(digest("s3cret-token-0123456789"), "alice")])
        assert ids.identify("s3cret-token-0123456789") == "alice"
        assert ids.identify("guess") is None
    """

    def __init__(self, entries: Iterable[tuple[bytes, str]]) -> None:
        self._entries = [(bytes(d), name) for d, name in entries]
        if not self._entries:
            raise ValueError("no tokens: serve without authentication instead")

    @property
    def names(self) -> list[str]:
        """The identities that can authenticate, sorted."""
        return sorted({name for _, name in self._entries})

    def identify(self, token: str) -> str | None:
        """The identity ``token`` authenticates, or None. Constant time in the token and the match."""
        presented = digest(token)
        found: str | None = None
        for known, name in self._entries:  # every digest is compared: no early exit on a match
            if hmac.compare_digest(presented, known):
                found = name
        return found

    async def verify_token(self, token: str) -> AccessToken | None:
        from mcp.server.auth.provider import AccessToken

        identity = self.identify(token)
        if identity is None:
            return None
        # token="" keeps the plaintext out of every object the SDK hands on (request scope, contexts).
        return AccessToken(token="", client_id=CLIENT_ID, scopes=[], subject=identity)


def identities_from(
    tokens: Mapping[str, str], *, env_token_var: str | None, environ: Mapping[str, str] | None = None
) -> Identities | None:
    """The verifier for ``codemode.tokens`` plus the ``http_token_env`` token, or None when there is no token.

    Raises:
        ConfigError: an ``env:`` variable is unset, or a token is too short or padded with spaces.
    """
    env = os.environ if environ is None else environ
    entries: list[tuple[bytes, str]] = []
    for key, identity in tokens.items():
        if key.startswith("sha256:"):
            entries.append((bytes.fromhex(key.removeprefix("sha256:")), identity))
            continue
        var = key.removeprefix("env:")
        token = env.get(var, "")
        if not token:
            raise ConfigError(f"codemode.tokens: {key} (identity {identity!r}): ${var} is not set")
        _check_strength(token, f"${var}")
        entries.append((digest(token), identity))
    if env_token_var is not None and env.get(env_token_var):
        token = env[env_token_var]
        _check_strength(token, f"${env_token_var}")
        entries.append((digest(token), DEFAULT_IDENTITY))
    return Identities(entries) if entries else None


def _check_strength(token: str, where: str) -> None:
    if len(token) < MIN_TOKEN_CHARS or token != token.strip():
        raise ConfigError(
            f"{where}: the HTTP bearer token must be at least {MIN_TOKEN_CHARS} characters without surrounding "
            "spaces (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )


def client_key(identity: str, peer: str) -> str:
    """Who a client is across the sessions, handles and owners it holds: the identity that authenticated, else
    (nobody did) its peer address. What one client may hold of what all share is counted by this key."""
    if identity not in (ANONYMOUS, LOCAL_IDENTITY):
        return f"identity:{identity}"
    return f"peer:{peer}"
