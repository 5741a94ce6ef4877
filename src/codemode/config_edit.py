"""``codemode mount`` / ``codemode unmount``: add or remove one server in a config file, in place.

Only the text of that one entry changes: the file is spliced, not re-serialised, so the user's formatting,
key order and other entries stay as they were. The new text is checked (it parses, the new server is a valid
server) before the file is replaced atomically (a temporary file in the same folder, then a rename), so a
running ``codemode serve`` never reads half a file.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from pathlib import Path
from typing import Any

from codemode.config import AnyServer, load_config, parse_config
from codemode.directory.launch import MountError, server_config
from codemode.directory.load import Directory, directory_for, load_directory, read_entry
from codemode.errors import ConfigError
from codemode.files import write_atomic

_DECODER = json.JSONDecoder()
_WS = re.compile(r"\s*")


def directory_of(path: Path) -> Directory:
    """The directory the config file at ``path`` uses (its variables need not be set to find it)."""
    if not path.exists():
        return load_directory()
    return directory_for(load_config(path, environ=_Placeholders()))


def server_entry(target: str, directory: Directory) -> tuple[str, dict[str, Any]]:
    """The config entry (and a default name) for a directory entry name, a URL or a file.

    A URL ending in ``.json``/``.yaml``/``.yml`` is an OpenAPI document, any other an MCP server over
    streamable HTTP. A file is a directory entry (``server.json``) or an OpenAPI document.

    Raises:
        ConfigError: the target is none of these, or its entry cannot be started without a program's
            parameters (the message says which).
    """
    if target.startswith(("http://", "https://")):
        url = urllib.parse.urlsplit(target)
        host = url.hostname or ""
        label = "" if re.fullmatch(r"[0-9.:]+|localhost", host) else host.split(".")[0]
        if url.path.endswith((".json", ".yaml", ".yml")):
            return label or "api", {"type": "openapi", "spec": target}
        return label or "remote", {"type": "http", "url": target}
    located = directory.get(target)
    if located is not None:
        return located.entry.short_name, _dump(_config_of(located.entry, located.root))
    path = Path(target)
    if not path.is_file():
        known = ", ".join(sorted(directory.entries)) or "none"
        raise ConfigError(f"{target}: not a directory entry ({known}), a URL or a file")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{target}: cannot read it as JSON: {exc}") from None
    if isinstance(raw, dict) and "openapi" in raw and "paths" in raw:
        return re.sub(r"[^A-Za-z0-9_.\-]+", "-", path.stem), {"type": "openapi", "spec": str(path.resolve())}
    try:
        located = read_entry(path, path.parent)
    except Exception as exc:
        raise ConfigError(f"{target}: not a valid directory entry: {exc}") from None
    return located.entry.short_name, _dump(_config_of(located.entry, located.root))


def _config_of(entry: Any, root: Path) -> AnyServer:
    try:
        # Secrets stay ${VAR} references in the file; nothing from this process's environment is written.
        return server_config(entry, {}, environ=_Placeholders(only_set=True), root=root)
    except MountError as exc:
        raise ConfigError(str(exc)) from None


class _Placeholders(dict[str, str]):
    """An environment that answers ``${NAME}`` for a variable instead of its value (every variable, or only
    those this process has: an optional value the host does not set is left out of the entry)."""

    def __init__(self, *, only_set: bool = False) -> None:
        super().__init__()
        self.only_set = only_set

    def get(self, key: str, default: Any = None) -> Any:
        return "${" + key + "}" if key in self else default

    def __contains__(self, key: object) -> bool:
        return not self.only_set or key in os.environ

    def __getitem__(self, key: str) -> str:
        return "${" + key + "}"


def _dump(config: AnyServer) -> dict[str, Any]:
    data: dict[str, Any] = config.model_dump(by_alias=True, exclude_defaults=True, exclude_none=True)
    return {"type": config.type, **data}


def add_server(path: Path, name: str, entry: dict[str, Any], *, replace: bool = False) -> None:
    """Add ``name`` to the file's servers (creating the file if needed).

    Raises:
        ConfigError: the file is not a config, ``name`` is taken (unless ``replace``), or the entry is invalid.
    """
    parse_config(json.dumps({"mcpServers": {name: entry}}), source=f"the new server {name!r}", environ=_Placeholders())
    text = path.read_text(encoding="utf-8") if path.exists() else '{\n  "mcpServers": {}\n}\n'
    _, start, end, members = _servers(text, path)
    if name in members:
        if not replace:
            raise ConfigError(f"{path}: a server named {name!r} is already configured (unmount it first)")
        text = _remove(text, path, name)
        _, start, end, members = _servers(text, path)
    if members:
        last = max(m[2] for m in members.values())
        first_key = min(m[0] for m in members.values())
        indent = text[text.rfind("\n", 0, first_key) + 1 : first_key]
        indent = indent if not indent.strip() else "    "
        body = json.dumps(entry, indent=2).replace("\n", "\n" + indent)
        new = text[:last] + f",\n{indent}{json.dumps(name)}: {body}" + text[last:]
    else:
        line_start = text.rfind("\n", 0, start) + 1
        outer = text[line_start : line_start + len(text[line_start:]) - len(text[line_start:].lstrip(" \t"))]
        indent = outer + "  "
        body = json.dumps(entry, indent=2).replace("\n", "\n" + indent)
        new = text[: start + 1] + f"\n{indent}{json.dumps(name)}: {body}\n{outer}" + text[end - 1 :]
    _write(path, new)


def remove_server(path: Path, name: str) -> None:
    """Remove ``name`` from the file's servers.

    Raises:
        ConfigError: the file is missing or not a config, or has no such server.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config: {exc}") from None
    _write(path, _remove(text, path, name))


def _remove(text: str, path: Path, name: str) -> str:
    _, start, end, members = _servers(text, path)
    if name not in members:
        raise ConfigError(f"{path}: no server named {name!r} (configured: {', '.join(members) or 'none'})")
    key_start, _, value_end = members[name]
    ordered = sorted(members.values())
    position = ordered.index(members[name])
    if position + 1 < len(ordered):  # up to the next member's key
        return text[:key_start] + text[ordered[position + 1][0] :]
    if position > 0:  # the last one: from the previous member's end (its comma goes too)
        return text[: ordered[position - 1][2]] + text[value_end:]
    return text[: start + 1] + text[end - 1 :]  # the only one: the object is left empty


def _servers(text: str, path: Path) -> tuple[str, int, int, dict[str, tuple[int, int, int]]]:
    """The servers key, its object's span, and each member's (key start, value start, value end)."""
    try:
        top = _members(text, _WS.match(text, 0).end())  # type: ignore[union-attr]
    except (ValueError, IndexError) as exc:
        raise ConfigError(f"{path}: not a JSON object: {exc}") from None
    key = "mcpServers" if "mcpServers" in top else "servers" if "servers" in top else None
    if key is None:
        raise ConfigError(f"{path}: no 'mcpServers' (or VS Code 'servers') object found")
    _, start, end = top[key]
    if text[start] != "{":
        raise ConfigError(f"{path}: {key!r} is not an object")
    return key, start, end, _members(text, start)


def _members(text: str, pos: int) -> dict[str, tuple[int, int, int]]:
    if text[pos] != "{":
        raise ValueError("expected '{'")
    out: dict[str, tuple[int, int, int]] = {}
    pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
    if text[pos] == "}":
        return out
    while True:
        key_start = pos
        key, pos = _DECODER.raw_decode(text, pos)
        pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
        if text[pos] != ":":
            raise ValueError(f"expected ':' at {pos}")
        value_start = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
        _, value_end = _DECODER.raw_decode(text, value_start)
        out[str(key)] = (key_start, value_start, value_end)
        pos = _WS.match(text, value_end).end()  # type: ignore[union-attr]
        if text[pos] == "}":
            return out
        if text[pos] != ",":
            raise ValueError(f"expected ',' or '}}' at {pos}")
        pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]


def _write(path: Path, text: str) -> None:
    json.loads(text)  # never write a file that does not parse
    write_atomic(path, text, keep_mode=True)
