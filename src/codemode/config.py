"""Configuration: the ``mcpServers`` JSON that Claude Desktop, Claude Code and VS Code users already have.

Accepted shapes, in one file::

    {"mcpServers": {"fs": {"command": "npx", "args": ["-y", "..."], "env": {"TOKEN": "${GH_TOKEN}"}},
                    "api": {"type": "http", "url": "https://...", "headers": {"Authorization": "Bearer ${KEY}"}}},
     "codemode": {"call_timeout_s": 60}}

VS Code's ``{"servers": {...}}`` is read the same way, and so are its comments and trailing commas (JSONC). A
stdio server's ``envFile`` (Cursor) adds a dotenv file's variables to its ``env``. ``${VAR}`` and
``${VAR:-default}`` are expanded from the environment in commands, arguments, env values, URLs and headers; a
missing variable is a ``ConfigError`` naming it. Every error names the file, and where it can, the line and the key.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from codemode.errors import ConfigError

logger = logging.getLogger(__name__)
_SERVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_VSCODE_VAR = re.compile(
    r"\$\{(env|input|config|command):([^}]*)\}|\$\{(userHome|workspaceFolder|workspaceFolderBasename|pathSeparator|/)\}"
)
_KNOWN_TOP_LEVEL = {"codemode", "inputs", "$schema"}
_DOTENV_LINE = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)")
_DOTENV_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


class _ServerBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    start_timeout_s: float = Field(default=30.0, gt=0)
    """How long the server may take to start and answer ``initialize`` + ``tools/list``."""
    call_timeout_s: float = Field(default=60.0, gt=0)
    """How long one ``tools/call`` may take."""
    disabled: bool = False
    description: str | None = None
    # Keys other clients write that mean nothing to codemode but must not make the file invalid.
    auto_approve: list[str] | None = Field(default=None, alias="autoApprove")
    always_allow: list[str] | None = Field(default=None, alias="alwaysAllow")
    timeout: float | None = None
    """Claude Desktop style timeout in milliseconds; used as ``call_timeout_s`` when given."""

    @property
    def effective_call_timeout_s(self) -> float:
        return self.timeout / 1000.0 if self.timeout else self.call_timeout_s


class StdioServer(_ServerBase):
    """A server started as a child process speaking MCP over stdin/stdout."""

    type: Literal["stdio"] = "stdio"
    command: str = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None


class HttpServer(_ServerBase):
    """A remote server over streamable HTTP (or the legacy SSE transport)."""

    type: Literal["http", "streamable-http", "streamableHttp", "sse"] = "http"
    url: str = Field(min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {value!r}")
        return value


class OpenApiServer(_ServerBase):
    """An HTTP API described by an OpenAPI 3.0/3.1 document: one tool per operation (:mod:`codemode.hub.openapi`)."""

    type: Literal["openapi"] = "openapi"
    spec: str = Field(min_length=1)
    """The document: an http(s) URL, or a file path (relative to the working directory)."""
    base_url: str | None = Field(default=None, alias="baseUrl")
    """Where operations are sent; default: the document's first ``servers`` URL."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Sent with every request (credentials: ``${VAR}`` from the host's environment)."""
    max_response_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    """A response body larger than this fails the call (``too_large``) before it is parsed."""

    @field_validator("base_url")
    @classmethod
    def _http_base(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"baseUrl must start with http:// or https://, got {value!r}")
        return value


ServerConfig = Annotated[StdioServer | HttpServer | OpenApiServer, Field(discriminator="type")]
AnyServer = StdioServer | HttpServer | OpenApiServer


class SkillsSettings(BaseModel):
    """The ``skills`` block of the settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    auto_promote: bool = False
    """Promote every skill on save (unattended use): no person reviews it first."""
    max_skills: int = Field(default=500, ge=1)
    """Skills the store holds (retired ones too: their files stay); a save of a new name past it is refused."""
    max_versions: int = Field(default=50, ge=1)
    """Versions one skill keeps (every version stays on disk); a save past it is refused."""
    max_drafts_per_session: int = Field(default=20, ge=1)
    """Drafts awaiting review one session may have in the store at once."""


class SkillsGitSettings(BaseModel):
    """``codemode.skills_git``: the skill store is a clone of a git remote shared by every node."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    remote: str = Field(min_length=1)
    """A URL or path ``git`` can fetch from and push to."""
    branch: str = Field(default="main", pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")
    pull_interval_s: float = Field(default=10.0, gt=0)
    """A promotion on another node is importable here within this long."""


def _check_pattern(pattern: str) -> None:
    if "." not in pattern or pattern.startswith(".") or any(c.isspace() for c in pattern):
        raise ValueError(f"{pattern!r} must be a 'server.tool' pattern (globs allowed: 'fs.*', '*.delete_*')")


class PolicySettings(BaseModel):
    """``codemode.policy``: which tool calls run, which are refused, which wait for a person.

    See :mod:`codemode.policy.rules` for how a call is decided.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: dict[str, Literal["allow", "deny", "ask"]] = Field(default_factory=dict)
    """``server.tool`` glob → verdict; the most specific pattern wins."""
    read_only: bool = False
    """Deny every tool not annotated ``readOnlyHint``."""
    destructive: Literal["allow", "deny", "ask"] = "ask"
    """The verdict for a tool annotated ``destructiveHint`` that no rule names."""
    rate_limits: dict[str, str] = Field(default_factory=dict)
    """``server.tool`` glob → ``"10/min"`` (per s, min or hour; counted across sessions)."""
    approval_timeout_s: float = Field(default=300.0, gt=0)
    """How long a program waits for the person's answer before the call is refused."""
    identities: dict[str, dict[str, Literal["allow", "deny", "ask"]]] = Field(default_factory=dict)
    """Identity (see ``codemode.tokens``) → rules of its own, like ``rules``. For that identity's calls the most
    specific of its own rules decides when one matches; otherwise ``rules`` and the rest decide as usual."""

    @field_validator("rules", "rate_limits")
    @classmethod
    def _patterns(cls, value: dict[str, str]) -> dict[str, str]:
        for pattern in value:
            _check_pattern(pattern)
        return value

    @field_validator("identities")
    @classmethod
    def _identity_rules(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        from codemode.identity import IDENTITY_NAME

        for identity, rules in value.items():
            if not IDENTITY_NAME.fullmatch(identity):
                raise ValueError(f"identity {identity!r} must be 1-64 letters, digits, '_', '.', '@' or '-'")
            for pattern in rules:
                _check_pattern(pattern)
        return value

    @field_validator("rate_limits")
    @classmethod
    def _rates(cls, value: dict[str, str]) -> dict[str, str]:
        from codemode.policy.quotas import parse_rate

        for pattern, rate in value.items():
            try:
                parse_rate(rate)
            except ValueError as exc:
                raise ValueError(f"{pattern!r}: {exc}") from None
        return value


class Settings(BaseModel):
    """codemode's own settings (the optional ``"codemode"`` key of the config file)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stubs_dir: str | None = None
    """Where compiled stubs go; default: a per-config directory in the cache."""
    skills_dir: str | None = None
    skills: SkillsSettings = Field(default_factory=SkillsSettings)
    skills_git: SkillsGitSettings | None = None
    executor: Literal["wasm", "restricted"] = "wasm"
    wall_s: float = Field(default=30.0, gt=0)
    memory_mb: int = Field(default=256, gt=16)
    output_chars: int = Field(default=20_000, gt=100)
    result_handle_kb: int = Field(default=256, ge=1)
    """A tool result larger than this many KB (as JSON) stays on the host and reaches the program as a
    ``ResultHandle`` that fetches parts as they are read."""
    result_store_mb: int = Field(default=256, ge=1)
    """Results a session keeps on the host at most (MB, as JSON); older ones are dropped past it."""
    result_store_total_mb: int = Field(default=1024, ge=1)
    """Results all sessions keep on the host together at most (MB, as JSON)."""
    max_tool_calls: int = Field(default=200, ge=0)
    executions_per_minute: int = Field(default=1000, ge=1)
    session_idle_s: float = Field(default=1800.0, gt=0)
    pool_size: int = Field(default=2, ge=0, le=256)
    """Interpreters started ahead of demand (about 8 MB each while idle): a new session takes one at once instead
    of starting its own (a third of a second). A node many clients reach at once wants more."""
    max_sessions: int = Field(default=32, ge=1)
    """Live interpreters at most. Past it a client's own least recently used idle session is closed, never
    another client's (see :mod:`codemode.sessions`)."""
    http_token_env: str = Field(default="CODEMODE_HTTP_TOKEN", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """The environment variable holding the bearer token ``serve --http`` requires on every request. Set, it is
    enforced on any address; unset, ``serve --http`` only binds a loopback address (unless ``tokens`` has one).
    Its token authenticates as the identity ``default``."""
    tokens: dict[str, str] = Field(default_factory=dict)
    """``serve --http`` bearer tokens → identity names: ``{"sha256:<hex digest>": "alice", "env:BOB_TOKEN":
    "bob"}`` (see :mod:`codemode.identity`; the file never holds a token itself)."""
    trusted_proxies: list[str] = Field(default_factory=list)
    """Addresses or networks (``"127.0.0.1"``, ``"10.0.0.0/8"``) of the load balancers in front of ``serve
    --http`` whose ``X-Forwarded-For`` is believed: the client address that per-address limits count and the
    audit records is then the one the proxy saw. Empty (the default): the header is ignored, since any client
    could write it."""
    metrics_public: bool = False
    """Serve ``/metrics`` without a token (for a scraper that cannot send one, on a network you trust)."""
    mount: list[str] = Field(default_factory=list)
    """Directory entries a program may mount without asking: short or full names, or glob patterns such as
    ``"*memory*"`` (default: none)."""
    directory: list[str] | None = None
    """Folders of directory entries (``server.json`` files); default: the pinned entries codemode ships."""
    typecheck: Literal["off", "warn", "strict"] = "warn"
    """Type check each program against the stubs before it runs (:mod:`codemode.preflight`): ``warn`` runs it
    anyway with the errors at the top of the result, ``strict`` refuses to run a program with errors, ``off``
    skips the check."""
    infer_results_after: int = Field(default=3, ge=0)
    """Type the result of a tool that declares no output schema after this many observed results (keys and types
    only, never values; conflicting results widen the type): a new stubs generation carries it. 0 turns it off."""
    audit_log: str | None = None
    audit_url: str | None = Field(default=None, pattern=r"^postgres(ql)?://")
    """A PostgreSQL URL (``postgresql://user:password@host/db``): the audit goes there instead of the local log
    (:mod:`codemode.audit_pg`); the records are the same."""
    audit_max_mb: int = Field(default=64, ge=1)
    """The audit log is rotated past this size (``audit.jsonl.1`` … ``.3`` are kept)."""
    policy: PolicySettings = Field(default_factory=PolicySettings)
    expose_skills: bool = False
    """``serve`` also offers each promoted skill as an MCP tool (as ``serve --expose-skills`` does)."""
    expose_direct: list[str] = Field(default_factory=list)
    """Hybrid mode: ``server.tool`` globs (and/or ``"auto"``) of upstream tools ``serve`` also offers as
    ordinary MCP tools beside ``execute_python`` (see :mod:`codemode.direct`)."""

    @field_validator("tokens")
    @classmethod
    def _token_keys(cls, value: dict[str, str]) -> dict[str, str]:
        from codemode.identity import check_identity, check_token_key

        for key, identity in value.items():
            check_token_key(key)
            check_identity(identity)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for i, entry in enumerate(value):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"entry {i}: {entry!r} is not an IP address or network") from None
        return value

    @field_validator("expose_direct", mode="before")
    @classmethod
    def _one_pattern(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value  # "expose_direct": "auto" means ["auto"]

    @field_validator("expose_direct")
    @classmethod
    def _direct_patterns(cls, patterns: list[str]) -> list[str]:
        for i, pattern in enumerate(patterns):
            server, dot, tool = pattern.partition(".")
            if pattern != "auto" and not (dot and server.strip() and tool.strip()):
                raise ValueError(
                    f"entry {i}: {pattern!r} is not 'auto' or a 'server.tool' glob (e.g. 'fs.read_*', 'memory.*')"
                )
        return patterns


class Config(BaseModel):
    """A whole configuration: upstream servers plus codemode settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    servers: dict[str, ServerConfig] = Field(default_factory=dict)
    settings: Settings = Field(default_factory=Settings)
    source: str = "<embedded demo>"
    """Where this config came from (a path, or ``<embedded demo>``)."""

    @property
    def enabled_servers(self) -> dict[str, AnyServer]:
        return {name: cfg for name, cfg in self.servers.items() if not cfg.disabled}


def demo_config() -> Config:
    """The embedded default: the bundled demo servers, started with the running interpreter."""
    servers: dict[str, AnyServer] = {
        name: StdioServer(command=sys.executable, args=["-m", f"codemode.demo.{name}"], start_timeout_s=60.0)
        for name in ("inventory", "notes")
    }
    return Config(servers=servers)


def load_config(path: str | os.PathLike[str] | None, *, environ: dict[str, str] | None = None) -> Config:
    """Load a config file, or the embedded demo config when ``path`` is None.

    Raises:
        ConfigError: the file is missing, not JSON, or does not describe valid servers. The message names
            the file and, where known, the line and key.
    """
    if path is None:
        return demo_config()
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read config: {exc}") from exc
    # The absolute path: executions are audited under it, and `history --config`/`replay` match on it from
    # whatever directory they run in.
    source = os.path.abspath(file)
    return parse_config(text, source=source, environ=os.environ.copy() if environ is None else environ)


def parse_config(text: str, *, source: str = "<string>", environ: dict[str, str] | None = None) -> Config:
    """Parse config JSON text. See :func:`load_config`."""
    env = os.environ.copy() if environ is None else environ
    # From here on `text` is the JSON without comments: key lines are looked up in it (a key named in a comment
    # is not the key), and its offsets are the file's, so line:column of any error stay right.
    text = _strip_jsonc(text, source)
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a JSON object with an 'mcpServers' key")
    key = "mcpServers" if "mcpServers" in raw else "servers" if "servers" in raw else None
    if key is None:
        raise ConfigError(f"{source}: no 'mcpServers' (or VS Code 'servers') object found")
    for other in sorted(set(raw) - {key, *_KNOWN_TOP_LEVEL}):
        # Claude Desktop and VS Code files carry their own settings (globalShortcut, ...): not ours to judge.
        line = _line_of(text, [other])
        near = difflib.get_close_matches(other, ["codemode", "mcpServers", "servers"], n=1, cutoff=0.75)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        logger.warning("%s:%d: ignoring the top-level key %r (not a codemode setting%s)", source, line, other, hint)
    servers_raw = raw[key]
    if not isinstance(servers_raw, dict):
        raise ConfigError(f"{source}:{_line_of(text, [key])}: {key!r} must be an object of servers")

    servers: dict[str, Any] = {}
    for name, entry in servers_raw.items():
        where = f"{source}:{_line_of(text, [key, name])}"
        if not _SERVER_NAME.match(name):
            raise ConfigError(f"{where}: server name {name!r} must be 1-64 letters, digits, '_', '-' or '.'")
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: server {name!r} must be an object")
        entry = dict(entry)
        kind = entry.get("type", entry.get("transport"))
        entry.pop("transport", None)
        if kind is None:
            kind = "http" if "url" in entry else "stdio"
        if kind not in ("stdio", "http", "streamable-http", "streamableHttp", "sse", "openapi"):
            raise ConfigError(
                f"{where}: server {name!r}: unknown transport {kind!r} (use 'stdio', 'http'/'streamable-http', 'sse' "
                "or 'openapi')"
            )
        entry["type"] = kind
        try:
            entry = _expand_vscode(entry, env, Path(source), path=[key, name], where=source, text=text)
            servers[name] = entry = _expand(entry, env, path=[key, name])
        except _MissingVar as exc:
            line = _line_of(text, [key, name, *exc.path[2:]])
            raise ConfigError(
                f"{source}:{line}: {'.'.join(exc.path)}: environment variable ${{{exc.var}}} is not set"
            ) from None
        if "envFile" in entry:
            where = f"{source}:{_line_of(text, [key, name, 'envFile'])}"
            _merge_env_file(entry, Path(source).parent, where=where, path=f"{key}.{name}.envFile")

    settings_raw = raw.get("codemode", {})
    try:
        return Config.model_validate({"servers": servers, "settings": settings_raw, "source": source})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"]]
        if loc and loc[0] == "servers":
            path = [key, *loc[1:]]
            # The discriminated union adds the tag ('stdio'/'http') to the location; drop it.
            if len(path) > 2 and path[2] in ("stdio", "http", "streamable-http", "streamableHttp", "sse", "openapi"):
                path.pop(2)
        elif loc and loc[0] == "settings":
            path = ["codemode", *loc[1:]]
        else:
            path = loc
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        raise ConfigError(f"{source}:{_line_of(text, path)}: {'.'.join(path)}: {msg}") from None


class _MissingVar(Exception):
    def __init__(self, var: str, path: list[str]) -> None:
        super().__init__(var)
        self.var = var
        self.path = path


def _expand(value: Any, env: dict[str, str], path: list[str]) -> Any:
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            var, default = match.group(1), match.group(2)
            if var in env:
                return env[var]
            if default is not None:
                return default
            raise _MissingVar(var, path)

        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [_expand(v, env, [*path, str(i)]) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _expand(v, env, [*path, str(k)]) for k, v in value.items()}
    return value


def _expand_vscode(value: Any, env: dict[str, str], file: Path, *, path: list[str], where: str, text: str) -> Any:
    """VS Code's predefined variables in an ``mcp.json``: ``${env:X}``, ``${userHome}``, ``${workspaceFolder}``
    (the folder holding ``.vscode/``), ``${workspaceFolderBasename}``, ``${pathSeparator}``/``${/}``. Input
    and command variables need VS Code itself to prompt or run something: they are reported clearly."""
    if isinstance(value, str):
        if "${" not in value:
            return value

        def sub(match: re.Match[str]) -> str:
            scope, arg, name = match.group(1), match.group(2), match.group(3)
            if scope == "env":
                if arg in env:
                    return env[arg]
                raise _MissingVar(arg, path)
            if scope is not None:
                raise ConfigError(
                    f"{where}:{_line_of(text, path)}: {'.'.join(path)}: ${{{scope}:{arg}}} needs VS Code to prompt "
                    f"or run something; put the value in the file, or use ${{env:NAME}} with an environment variable"
                )
            workspace = file.parent.parent if file.parent.name == ".vscode" else file.parent
            return {
                "userHome": str(Path.home()),
                "workspaceFolder": str(workspace.resolve()),
                "workspaceFolderBasename": workspace.resolve().name,
                "pathSeparator": os.sep,
                "/": os.sep,
            }[name]

        return _VSCODE_VAR.sub(sub, value)
    if isinstance(value, list):
        return [_expand_vscode(v, env, file, path=[*path, str(i)], where=where, text=text) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _expand_vscode(v, env, file, path=[*path, str(k)], where=where, text=text) for k, v in value.items()}
    return value


def _strip_jsonc(text: str, source: str) -> str:
    """``text`` with JSONC's ``//`` and ``/* */`` comments and trailing commas blanked out (VS Code's settings
    files allow both). Every removed character becomes a space and newlines stay, so offsets, lines and columns
    are the file's. Strings are skipped whole (escapes included): ``"https://x"`` keeps its ``//``."""
    out = list(text)
    i, n = 0, len(text)
    last = ""  # the last significant character outside comments: a comma after '{', '[', ':' or ',' is an error
    comma = -1  # a comma that is trailing if the next significant character closes an object or array
    while i < n:
        c = text[i]
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            last, comma = c, -1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            out[i:end] = " " * (end - i)
            i = end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                line, column = text.count("\n", 0, i) + 1, i - text.rfind("\n", 0, i)
                raise ConfigError(f"{source}:{line}:{column}: invalid JSON: unterminated /* comment")
            out[i : end + 2] = [ch if ch in "\r\n" else " " for ch in text[i : end + 2]]
            i = end + 2
        elif c.isspace():
            i += 1
        else:
            if c in "}]" and comma >= 0:
                out[comma] = " "
            comma = i if c == "," and last not in ("{", "[", ":", ",", "") else -1
            last = c
            i += 1
    return "".join(out)


def _merge_env_file(entry: dict[str, Any], folder: Path, *, where: str, path: str) -> None:
    """Cursor's ``envFile``: read the dotenv file (relative to the config's folder) into ``entry["env"]``;
    explicit ``env`` entries win. Values are secrets: no message quotes one."""
    name = entry.pop("envFile")
    if entry.get("type") != "stdio":
        raise ConfigError(f"{where}: {path}: only a stdio server has an environment to add a file to")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: {path}: must be the path of a dotenv file")
    file = folder / Path(name).expanduser()
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(f"{where}: {path}: {file} not found") from None
    except OSError as exc:
        raise ConfigError(f"{where}: {path}: cannot read {file}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: {path}: {file} is not UTF-8 text") from None
    values: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _DOTENV_LINE.fullmatch(line)
        value = _dotenv_value(match.group(2)) if match else None
        if match is None or value is None:
            # The line is not quoted back: it may hold a secret.
            raise ConfigError(
                f"{where}: {path}: {file}:{number}: expected KEY=VALUE (a quoted value must close on its line)"
            )
        values[match.group(1)] = value
    explicit = entry.get("env", {})
    if isinstance(explicit, dict):  # anything else is reported by validation, as without an envFile
        entry["env"] = {**values, **explicit}


def _dotenv_value(raw: str) -> str | None:
    """The value of one dotenv line: ``'literal'``, ``"with \\n escapes"``, or bare up to a `` #`` comment.
    None when a quote is not closed or text follows it."""
    if raw[:1] in ("'", '"'):
        quote, i, chars = raw[0], 1, []
        while i < len(raw) and raw[i] != quote:
            if quote == '"' and raw[i] == "\\" and i + 1 < len(raw):
                chars.append(_DOTENV_ESCAPES.get(raw[i + 1], raw[i : i + 2]))
                i += 2
            else:
                chars.append(raw[i])
                i += 1
        rest = raw[i + 1 :].strip()
        return "".join(chars) if i < len(raw) and (not rest or rest.startswith("#")) else None
    return re.split(r"\s#", raw, maxsplit=1)[0].strip()


def _line_of(text: str, keys: list[str]) -> int:
    """Best-effort line number of a nested key: find each key's quoted name after the previous one."""
    pos = 0
    for key in keys:
        found = text.find(json.dumps(str(key)), pos)
        if found < 0:
            break
        pos = found
    return text.count("\n", 0, pos) + 1
