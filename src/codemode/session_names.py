"""The rules for session names: whose a session is, what it is called on disk, and sessionless handles.

A session belongs to an owner (see :class:`codemode.sessions.Owner`) and has a name the owner chose, so
two clients naming their session ``work`` get two interpreters. :func:`session_dir` turns the pair into the
directory name the executors use under the scratch root; the executors refuse anything else with
:func:`check_session_name` before touching the disk.

Sessionless HTTP clients (protocol 2026-07-28) carry no identity of their own. The front gives each one a
:class:`Handles` token with its first result; passed back, the token names the same owner again. Tokens
are signed with a key that lives only in this process, so a client cannot make one up, and one minted for
one authenticated principal does not verify for another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

LOCAL_OWNER = "local"
"""The owner of stdio and ``codemode run`` sessions: the one client of its process."""
HANDLE_PREFIX = "cmh_"
"""How a session handle starts (a session name of the form ``<handle>/<name>`` picks a named session)."""

_VALID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_OWNED = re.compile(r".*\.[0-9a-f]{24}")
_NONCE_BYTES = 18  # 144 bits: unguessable
_MAC_BYTES = 16
NODE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
"""A node's name in a cluster (``$CODEMODE_NODE``), as it appears in the handles it issues."""


def safe_session_name(requested: str) -> str:
    """``requested`` made valid: other characters become ``_``, leading dots go, at most 128 characters."""
    name = _UNSAFE.sub("_", requested).lstrip(".")[:128]
    return name or "default"


def session_dir(owner: str, name: str) -> str:
    """The directory name of ``owner``'s session ``name``: distinct for distinct (owner, name) pairs.

    The local owner's valid names stay as they are (``cli``, ``demo``); any other name, and any other owner's,
    gets a digest of owner and name appended (``work.3f9c…``), so neither a name nor a lookalike of another
    client's can reach that client's interpreter, and two names that clean to the same (``a/b`` and ``a_b``,
    two long names alike in their first 128 characters) stay two sessions. The owner itself (a secret for
    HTTP clients) never appears.
    """
    safe = safe_session_name(name)
    if owner == LOCAL_OWNER and (safe == name or not name) and not _OWNED.fullmatch(safe):
        return safe
    digest = hashlib.sha256(f"{owner}\0{name}".encode("utf-8", "surrogatepass")).hexdigest()[:24]
    return f"{safe[:80]}.{digest}"


def local_session(session: str) -> bool:
    """Whether the directory name ``session`` (from :func:`session_dir`) can be the local owner's: any other
    owner's carries a digest (a local name that looks like one is counted as not local)."""
    return not _OWNED.fullmatch(session)


def check_session_name(session: str) -> None:
    """Raise ``ValueError`` unless ``session`` is a valid name (no separators, no leading dot)."""
    if not _VALID.fullmatch(session):
        raise ValueError(f"invalid session name {session!r}: use letters, digits, '_', '.', '-' (max 128)")


class Handles:
    """Mints and checks session handles: ``cmh_<nonce>.<mac>[.<node>]``, the mac binding the nonce (and the
    node) to a principal.

    A handle names the node that minted it when ``node`` is set (``$CODEMODE_NODE`` in ``serve``), so a load
    balancer can send a sessionless client back to the node that holds its interpreter by looking at the
    request alone; the tag is covered by the mac, and a node refuses a handle tagged for another.

    ::

        handles = Handles()
        handle = handles.mint(principal="")
        assert handles.owner(handle, principal="") == handles.owner(handle, principal="")
        assert handles.owner(handle, principal="someone else") is None
    """

    def __init__(self, key: bytes | None = None, *, node: str | None = None) -> None:
        if node is not None and not NODE_NAME.fullmatch(node):
            raise ValueError(f"node name {node!r}: use 1-32 lowercase letters, digits and '-'")
        self._key = key if key is not None else secrets.token_bytes(32)
        self.node = node

    def mint(self, *, principal: str) -> str:
        """A new handle for a client authenticated as ``principal`` (``""`` when nobody is)."""
        nonce = secrets.token_urlsafe(_NONCE_BYTES)
        tag = f".{self.node}" if self.node else ""
        return f"{HANDLE_PREFIX}{nonce}.{self._mac(principal, nonce + tag)}{tag}"

    def owner(self, handle: str, *, principal: str) -> str | None:
        """The owner key ``handle`` stands for, or None if this process did not mint it for ``principal``."""
        if not handle.startswith(HANDLE_PREFIX):
            return None
        nonce, dot, rest = handle[len(HANDLE_PREFIX) :].partition(".")
        mac, _, node = rest.partition(".")
        if not dot or not nonce or (node or None) != self.node:
            return None
        tag = f".{node}" if node else ""
        if not hmac.compare_digest(mac.encode(), self._mac(principal, nonce + tag).encode()):
            return None
        return "h-" + hashlib.sha256(nonce.encode()).hexdigest()[:32]

    def _mac(self, principal: str, nonce: str) -> str:
        message = f"{principal}\0{nonce}".encode("utf-8", "surrogatepass")
        digest = hmac.new(self._key, message, hashlib.sha256).digest()[:_MAC_BYTES]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
