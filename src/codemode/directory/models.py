"""Directory entries: the MCP registry's ``server.json`` format (the subset codemode can run), validated.

An entry names a service and how to start it: ``packages`` (``registryType`` npm or pypi, a pinned
``identifier`` and ``version``, ``runtimeArguments``/``packageArguments`` and ``environmentVariables``)
or ``remotes`` (a streamable-HTTP or SSE URL with headers). Everything a program may fill in at mount time
is declared here; anything else is refused. Validation is strict because an entry ends up as a command
line: shell metacharacters, unpinned versions, unknown registry types and environment variables that
change how a runtime loads code (``NODE_OPTIONS``, ``LD_PRELOAD``...) make the entry invalid.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_SAFE_TEXT = re.compile(r"^[^;&|`$<>\\\n\r\x00'\"(){}*?!~]*$")
"""What a command-line value may contain: no shell metacharacters, quotes, globs or newlines (codemode
never runs a shell, but an entry that needs them is hostile or broken, and is refused either way)."""
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]{0,63})\}")
_NPM_NAME = re.compile(r"^(@[a-z0-9][a-z0-9._\-]*/)?[a-z0-9][a-z0-9._\-]*$")
_PYPI_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
_PINNED = re.compile(r"^[0-9][A-Za-z0-9.+\-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_FORBIDDEN_ENV = frozenset(
    {
        "PATH", "PATHEXT", "COMSPEC", "HOME", "XDG_CONFIG_HOME", "NODE_OPTIONS", "NODE_PATH", "NODE_EXTRA_CA_CERTS",
        "NODE_TLS_REJECT_UNAUTHORIZED", "NODE_REPL_EXTERNAL_MODULE", "BASH_ENV", "ENV", "IFS", "SHELL",
        "PROMPT_COMMAND", "GCONV_PATH", "PERL5OPT", "PERL5LIB", "PERLLIB", "RUBYOPT", "RUBYLIB", "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "CLASSPATH", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
    }
)  # fmt: skip
_FORBIDDEN_ENV_PREFIXES = ("LD_", "DYLD_", "NPM_CONFIG_", "UV_", "PIP_", "GIT_", "PYTHON")
"""With :data:`_FORBIDDEN_ENV`, compared upper-cased (npm reads ``npm_config_*`` in any case, Windows every
name): variables that change which code a runtime loads, where ``npx``/``uvx`` fetch it (``UV_INDEX_URL``,
``npm_config_registry``), whom they trust, or what ``git`` runs (``GIT_SSH_COMMAND``). An entry may not
declare them."""
_HARMLESS_ENV = frozenset({"PYTHONUNBUFFERED", "PYTHONIOENCODING", "PYTHONUTF8", "PYTHONDONTWRITEBYTECODE"})
"""Output settings servers' entries do set, exempt from the ``PYTHON`` prefix."""
_ENTRY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*(/[A-Za-z0-9][A-Za-z0-9._\-]*)?$")
_SHORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def _safe(value: str, what: str) -> str:
    if not _SAFE_TEXT.match(_PLACEHOLDER.sub("", value)):
        raise ValueError(f"{what} {value!r} contains shell metacharacters, quotes or a newline")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class Input(_Model):
    """A value the entry needs: an argument or an environment variable (registry ``Input`` fields)."""

    description: str = ""
    is_required: bool = Field(default=False, alias="isRequired")
    is_secret: bool = Field(default=False, alias="isSecret")
    """Only ever taken from the host (its environment or config), never from a program."""
    default: str | None = None
    value: str | None = None
    """A fixed value (may hold ``{placeholders}`` filled from ``variables`` or mount parameters)."""
    choices: list[str] | None = None
    format: Literal["string", "number", "boolean", "filepath"] = "string"
    """A ``filepath`` is never taken from a program: it would let one point a server at any host file."""

    @property
    def host_only(self) -> bool:
        """Filled from the host only (a secret or a path), never by a mount parameter."""
        return self.is_secret or self.format == "filepath"

    @field_validator("default", "value")
    @classmethod
    def _no_metachars(cls, value: str | None) -> str | None:
        return None if value is None else _safe(value, "value")


class Argument(Input):
    """A runtime or package argument: ``positional`` (``valueHint`` names it) or ``named`` (``--flag``)."""

    type: Literal["positional", "named"]
    name: str | None = None
    value_hint: str | None = Field(default=None, alias="valueHint")
    is_repeated: bool = Field(default=False, alias="isRepeated")

    @field_validator("name")
    @classmethod
    def _flag(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^--?[A-Za-z0-9][A-Za-z0-9_\-]*$", value):
            raise ValueError(f"named argument {value!r} is not a --flag")
        return value

    @model_validator(mode="after")
    def _named_has_name(self) -> Argument:
        if self.type == "named" and not self.name:
            raise ValueError("a named argument needs 'name'")
        return self

    @property
    def param(self) -> str | None:
        """The mount parameter that fills it, if a program may: its ``valueHint`` (or flag without dashes)."""
        hint = self.value_hint or (self.name.lstrip("-").replace("-", "_") if self.name else None)
        return hint if hint and _ENV_NAME.match(hint) else None


class EnvVar(Input):
    name: str

    @field_validator("name")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError(f"environment variable name {value!r} is not a valid name")
        upper = value.upper()
        if upper in _FORBIDDEN_ENV or (upper.startswith(_FORBIDDEN_ENV_PREFIXES) and upper not in _HARMLESS_ENV):
            raise ValueError(
                f"environment variable {value!r} changes how a runtime loads code or where it fetches it from; "
                "not allowed"
            )
        return value


class Transport(_Model):
    type: Literal["stdio", "streamable-http", "sse"] = "stdio"


class Package(_Model):
    """One way to run the server locally from a package registry."""

    registry_type: str = Field(alias="registryType")
    identifier: str
    version: str
    transport: Transport = Field(default_factory=Transport)
    runtime_hint: str | None = Field(default=None, alias="runtimeHint")
    runtime_arguments: list[Argument] = Field(default_factory=list, alias="runtimeArguments")
    package_arguments: list[Argument] = Field(default_factory=list, alias="packageArguments")
    environment_variables: list[EnvVar] = Field(default_factory=list, alias="environmentVariables")

    @field_validator("registry_type")
    @classmethod
    def _known_registry(cls, value: str) -> str:
        if value not in ("npm", "pypi"):
            raise ValueError(f"unknown registryType {value!r} (codemode runs 'npm' and 'pypi' packages)")
        return value

    @field_validator("version")
    @classmethod
    def _pinned(cls, value: str) -> str:
        if not _PINNED.match(value):
            raise ValueError(f"version {value!r} is not a pinned version (e.g. 2026.8.31)")
        return value

    @field_validator("runtime_hint")
    @classmethod
    def _hint(cls, value: str | None) -> str | None:
        if value not in (None, "npx", "uvx"):
            raise ValueError(f"runtimeHint {value!r} is not one of npx, uvx")
        return value

    @model_validator(mode="after")
    def _identifier(self) -> Package:
        pattern = _NPM_NAME if self.registry_type == "npm" else _PYPI_NAME
        if not pattern.match(self.identifier):
            raise ValueError(f"identifier {self.identifier!r} is not a valid {self.registry_type} package name")
        if self.transport.type != "stdio":
            raise ValueError(f"package transport {self.transport.type!r}: codemode starts packages over stdio")
        return self

    @property
    def inputs(self) -> list[Argument | EnvVar]:
        return [*self.runtime_arguments, *self.package_arguments, *self.environment_variables]


class Header(Input):
    name: str

    @field_validator("name")
    @classmethod
    def _header_name(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z0-9\-]{1,64}$", value):
            raise ValueError(f"header name {value!r} is not valid")
        return value


class Remote(_Model):
    type: Literal["streamable-http", "sse"]
    url: str
    headers: list[Header] = Field(default_factory=list)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s]+$", value):
            raise ValueError(f"remote url {value!r} must be http(s)://")
        return _safe(value, "url")


class OpenApi(_Model):
    """codemode's extension: an OpenAPI service (``spec``: a URL, or a file inside the directory).

    ``{NAME}`` placeholders in ``baseUrl`` and header values are filled from the host's environment only;
    a header whose variable is not set is left out, a ``baseUrl`` falls back to the document's servers."""

    spec: str
    base_url: str | None = Field(default=None, alias="baseUrl")
    headers: list[Header] = Field(default_factory=list)

    @field_validator("spec", "base_url")
    @classmethod
    def _no_metachars(cls, value: str | None) -> str | None:
        return None if value is None else _safe(value, "value")


class Entry(_Model):
    """One directory entry (a ``server.json``)."""

    name: str
    description: str = ""
    version: str = ""
    title: str | None = None
    packages: list[Package] = Field(default_factory=list)
    remotes: list[Remote] = Field(default_factory=list)
    openapi: OpenApi | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _ENTRY_NAME.match(value) or len(value) > 200:
            raise ValueError(f"name {value!r} must be 'namespace/name' of letters, digits, '.', '_' or '-'")
        return value

    @model_validator(mode="after")
    def _runnable(self) -> Entry:
        if not (self.packages or self.remotes or self.openapi):
            raise ValueError("the entry has no 'packages', 'remotes' or 'openapi': nothing to run")
        # The short name becomes a server's name (its log file, its stubs' module): held to the config's rule.
        if not _SHORT_NAME.match(self.short_name):
            raise ValueError(f"its short name {self.short_name!r} is not a valid server name")
        return self

    @property
    def short_name(self) -> str:
        """The name a program mounts it by: ``io.github.x/server-memory`` → ``memory``."""
        last = self.name.rsplit("/", 1)[-1]
        for prefix in ("mcp-server-", "server-", "mcp-"):
            if last.startswith(prefix) and len(last) > len(prefix):
                last = last[len(prefix) :]
                break
        return last

    def secrets(self) -> list[str]:
        """The names of the values that must come from the host (environment variables and headers)."""
        names = [i.name for p in self.packages for i in p.environment_variables if i.is_secret]
        names += [
            m for r in self.remotes for h in r.headers if h.is_secret for m in _PLACEHOLDER.findall(h.value or "")
        ]
        if self.openapi is not None:
            names += [m for h in self.openapi.headers if h.is_secret for m in _PLACEHOLDER.findall(h.value or "")]
        return names

    def params(self) -> list[str]:
        """Mount parameters a program may give (the package's non-secret arguments and environment variables;
        never a ``runtimeArguments`` one: those are ``npx``/``uvx`` options, such as ``--registry``)."""
        out: list[str] = []
        for package in self.packages[:1]:
            items: list[Argument | EnvVar] = [*package.package_arguments, *package.environment_variables]
            for item in items:
                name = item.name if isinstance(item, EnvVar) else item.param
                if name and not item.host_only and item.value is None and name not in out:
                    out.append(name)
        return out
