"""A directory entry plus mount parameters → the server config the hub starts (:mod:`codemode.config`).

Values come from three places, in this order of trust: the entry itself (fixed values and defaults), the
host (its environment: the only source of secrets, file paths and ``runtimeArguments``, which go to ``npx``
or ``uvx`` and so choose what is installed and run), and the program's mount parameters (only for the
package's own inputs the entry declares, checked like entry values and never starting with ``-``, so a value
cannot turn into an option). ``{NAME}`` placeholders in an entry's fixed values, remote headers and OpenAPI
``baseUrl``/headers are filled from the host's environment only.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

from codemode import paths
from codemode.config import AnyServer, HttpServer, OpenApiServer, StdioServer
from codemode.directory.models import _PLACEHOLDER, _SAFE_TEXT, Argument, Entry, EnvVar, Input, OpenApi, Package

MAX_PARAM_CHARS = 1000


class MountError(ValueError):
    """The entry cannot be started with these parameters; the message says which and why."""


def check_params(entry: Entry, params: Mapping[str, object]) -> dict[str, str]:
    """The program's parameters as strings, after checking each against the entry.

    Raises:
        MountError: an undeclared parameter, one the host alone may set (a secret or a path), or a value
            with shell metacharacters, a leading ``-``, or outside its ``choices``.
    """
    allowed = set(entry.params())
    host_only = _host_only(entry)
    out: dict[str, str] = {}
    for name, raw in params.items():
        if name in host_only:
            raise MountError(
                f"{name!r} is set by the host (its environment or config), never by a program: "
                f"mount {entry.short_name!r} without it"
            )
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise MountError(f"{entry.short_name!r} takes no parameter {name!r} (it takes: {known})")
        if isinstance(raw, bool):
            value = "true" if raw else "false"
        elif isinstance(raw, (str, int, float)):
            value = str(raw)
        else:
            raise MountError(f"parameter {name!r} must be a string, number or boolean")
        if len(value) > MAX_PARAM_CHARS or not _SAFE_TEXT.match(value) or value.startswith("-"):
            raise MountError(f"parameter {name!r}: {value[:80]!r} has shell metacharacters or starts with '-'")
        choices = _choices(entry, name)
        if choices is not None and value not in choices:
            raise MountError(f"parameter {name!r} must be one of {', '.join(choices)}")
        out[name] = value
    return out


def server_config(
    entry: Entry, params: Mapping[str, object], *, environ: Mapping[str, str] | None = None, root: Path | None = None
) -> AnyServer:
    """The config that starts ``entry`` (its first package, else its first remote, else its OpenAPI service;
    ``root`` is the directory a relative ``spec`` is in).

    Raises:
        MountError: see :func:`check_params`; or a required value (a secret the host does not have) is missing.
    """
    env = os.environ if environ is None else environ
    values = check_params(entry, params)
    if entry.packages:
        return _package(entry, entry.packages[0], values, env)
    if entry.remotes:
        remote = entry.remotes[0]
        headers = {h.name: v for h in remote.headers if h.value is not None and (v := _from_host(h.value, env))}
        return HttpServer(type="sse" if remote.type == "sse" else "http", url=remote.url, headers=headers)
    assert entry.openapi is not None  # an entry has something to run (checked when it was read)
    return _openapi(entry.openapi, env, root)


def _openapi(api: OpenApi, env: Mapping[str, str], root: Path | None) -> OpenApiServer:
    spec = api.spec if api.spec.startswith(("http://", "https://")) or root is None else str(root / api.spec)
    headers = {h.name: v for h in api.headers if h.value is not None and (v := _from_host(h.value, env)) is not None}
    base = _from_host(api.base_url, env) if api.base_url else None
    return OpenApiServer(spec=spec, baseUrl=base or None, headers=headers)


def _package(entry: Entry, package: Package, values: dict[str, str], env: Mapping[str, str]) -> StdioServer:
    runtime_args = _args(entry, package.runtime_arguments, values, env, host=True)
    package_args = _args(entry, package.package_arguments, values, env)
    server_env = {
        var.name: value
        for var in package.environment_variables
        if (value := _value(entry, var, var.name, values, env)) is not None
    }
    if package.registry_type == "npm":
        command = "npx"
        args = ["-y", *runtime_args, f"{package.identifier}@{package.version}", *package_args]
    else:
        venv_bin = _pypi_command(entry, package.identifier)
        if venv_bin is not None:
            command, args = venv_bin, [*package_args]
        else:
            command, args = "uvx", [*runtime_args, f"{package.identifier}=={package.version}", *package_args]
    return StdioServer(command=command, args=args, env=server_env, start_timeout_s=60.0)


def _args(
    entry: Entry, args: list[Argument], values: dict[str, str], env: Mapping[str, str], *, host: bool = False
) -> list[str]:
    out: list[str] = []
    for arg in args:
        value = _value(entry, arg, arg.param, values, env, host=host)
        if value is None:
            continue
        if arg.type == "named":
            assert arg.name is not None
            if value == "" and arg.value is None:
                # A bare flag only where the entry wrote one: from a program, it would make the next argument
                # this flag's value.
                raise MountError(f"parameter {arg.param!r} may not be empty (it is the value of {arg.name})")
            out += [arg.name, value] if value != "" else [arg.name]
        else:
            out.append(value)
    return out


def _value(
    entry: Entry, item: Input, name: str | None, values: dict[str, str], env: Mapping[str, str], *, host: bool = False
) -> str | None:
    """``item``'s value: fixed, else from the host's environment (a host-only item, or any with ``host``) or
    the program's parameters, else its default."""
    if item.value is not None:
        return _PLACEHOLDER.sub(lambda m: _fill(entry, m.group(1), values, env), item.value)
    host = host or item.host_only
    if host:
        value = env.get(name) if name else None
    else:
        value = values.get(name) if name else None
    if value is None:
        value = item.default
    if value is None and item.is_required:
        source = "the host's environment" if host else "a mount parameter"
        raise MountError(f"{entry.short_name!r} needs {name!r}, from {source}; it is not set")
    return value


def _fill(entry: Entry, name: str, values: dict[str, str], env: Mapping[str, str]) -> str:
    # A placeholder in an entry's fixed value is the host's to fill: programs only give declared inputs.
    if name in env:
        return env[name]
    raise MountError(f"{entry.short_name!r} needs {name!r} from the host's environment; it is not set")


def _from_host(text: str, env: Mapping[str, str]) -> str | None:
    """``text`` with its ``{NAME}`` placeholders filled from the host's environment, or None if one is unset."""
    if any(m not in env for m in _PLACEHOLDER.findall(text)):
        return None
    return _PLACEHOLDER.sub(lambda m: env[m.group(1)], text)


def _host_only(entry: Entry) -> set[str]:
    names: set[str] = set(entry.secrets())
    for package in entry.packages:
        # The runtime's own arguments (npx/uvx options such as --registry) pick the code that runs.
        names.update(arg.param for arg in package.runtime_arguments if arg.param)
        for item in package.inputs:
            key = item.name if isinstance(item, EnvVar) else item.param
            if key and item.host_only:
                names.add(key)
    return names


def _choices(entry: Entry, name: str) -> list[str] | None:
    for package in entry.packages[:1]:
        for item in package.inputs:
            key = item.name if isinstance(item, EnvVar) else item.param
            if key == name and item.choices:
                return item.choices
    return None


_VENV_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
_INTERPRETER = re.compile(
    r"^(?:sh|bash|dash|zsh|ksh|mksh|csh|tcsh|ash|fish|rbash|pwsh|busybox|env|xargs|sudo|doas|su|nohup|timeout|nice|"
    r"python[0-9.]*|pypy[0-9.]*|perl[0-9.]*|ruby[0-9.]*|node|nodejs|deno|bun|php[0-9.]*|lua[0-9.]*|tclsh[0-9.]*|"
    r"[gm]?awk|sed|git|ssh|uvx?|pipx?|pip[0-9.]*|npx|npm|corepack)$",
    re.IGNORECASE,
)
"""Programs that run code given as arguments (``sh -c``, ``python -c``, ``git -c core.pager=``...): never a
PyPI server's command, whatever its package arguments."""
_SYSTEM_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")
"""The operating system's programs (not ``/usr/local``, where ``pip`` puts a server installed system-wide)."""


def _pypi_command(entry: Entry, identifier: str) -> str | None:
    """The command of PyPI package ``identifier``: its own console script from its venv (None: none installed,
    ``uvx`` fetches it).

    Raises:
        MountError: ``identifier`` names an interpreter or a system program: ``uvx`` runs a program of that name
            from ``PATH`` when the package has none of its own, and the entry's arguments would be its code.
    """
    if _INTERPRETER.match(identifier) or shutil.which(identifier, path=os.pathsep.join(_SYSTEM_DIRS)):
        raise MountError(
            f"{entry.short_name!r}: the PyPI identifier {identifier!r} names an interpreter or a system program, "
            "not a server's own command: refused"
        )
    return _venv_command(identifier)


def _venv_command(identifier: str) -> str | None:
    """A PyPI server installed in its own venv (``scripts/setup`` makes them offline under ``.venv-servers``):
    the console script ``identifier`` that the package ``identifier`` installed there declares. Never a ``PATH``
    lookup, nor another program of a venv (its ``python``)."""
    roots = [Path(p) for p in os.environ.get("CODEMODE_SERVER_VENVS", "").split(os.pathsep) if p]
    checkout = paths.source_checkout()
    if checkout is not None:
        roots.append(checkout / ".venv-servers")
    if not _VENV_NAME.match(identifier):
        return None
    for root in roots:
        for venv in sorted(root.glob("*")) if root.is_dir() else []:
            candidate = venv / ("Scripts" if sys.platform == "win32" else "bin") / identifier
            if candidate.is_file() and os.access(candidate, os.X_OK) and _declares_script(venv, identifier):
                return str(candidate)
    return None


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


def _declares_script(venv: Path, package: str) -> bool:
    """Whether the distribution ``package`` is installed in ``venv`` and declares the console script ``package``."""
    wanted = _normalized(package)
    for info in (*venv.glob("lib/python*/site-packages/*.dist-info"), *venv.glob("Lib/site-packages/*.dist-info")):
        if _normalized(info.name.removesuffix(".dist-info").rpartition("-")[0]) != wanted:
            continue
        try:
            scripts = metadata.Distribution.at(info).entry_points.select(group="console_scripts")
        except (OSError, ValueError):
            return False
        return any(script.name == package for script in scripts)
    return False
