"""The ``codemode`` command line. Thin: parse, call the public API, print.

Exit codes: 0 success, 1 the program or a check failed, 2 usage or configuration error, 3 an upstream or
sandbox fault. ``--debug`` shows tracebacks; otherwise a ``CodemodeError`` is one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from codemode._version import __version__
from codemode.calls.results import printable, upstream_text
from codemode.config import Config, load_config
from codemode.errors import CodemodeError, ConfigError
from codemode.hub import Hub
from codemode.session_names import NODE_NAME

if TYPE_CHECKING:
    from codemode.identity import Identities

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_FAULT = 0, 1, 2, 3

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, Handler] = {}


def _command(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        _COMMANDS[name] = fn
        return fn

    return register


def _config(args: argparse.Namespace) -> Config:
    return load_config(getattr(args, "config", None))


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=False, default=str))


def _table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    # Cells hold upstream text (errors with a server's stderr, descriptions): escaped, on one line each.
    rows = [[printable(str(c)).replace("\n", "\\n") for c in row] for row in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


# -- commands ----------------------------------------------------------------------------------


@_command("servers")
def _servers(args: argparse.Namespace) -> int:
    config = _config(args)

    async def go() -> list[dict[str, Any]]:
        async with Hub(config) as hub:
            return [s.to_json() for s in hub.status()]

    rows = anyio.run(go)
    if args.json:
        _print_json(rows)
    else:
        print(
            _table(
                [
                    [r["name"], r["state"], r["transport"], str(r["tools"]), upstream_text(r["error"] or "")]
                    for r in rows
                ],
                ["SERVER", "STATE", "TRANSPORT", "TOOLS", "ERROR"],
            )
        )
    return EXIT_OK if all(r["state"] in ("ready", "disabled") for r in rows) else EXIT_FAULT


@_command("tools")
def _tools(args: argparse.Namespace) -> int:
    config = _config(args)
    if args.server and args.server not in config.servers:
        raise ConfigError(f"{config.source}: no server named {args.server!r} (have: {', '.join(config.servers)})")

    async def go() -> list[dict[str, Any]]:
        async with Hub(config) as hub:
            out: list[dict[str, Any]] = []
            for server, specs in hub.tools().items():
                if args.server and server != args.server:
                    continue
                out += [{"server": server, **spec.to_json()} for spec in specs]
            return out

    rows = anyio.run(go)
    if args.json:
        _print_json(rows)
    else:
        print(
            _table(
                [[r["server"], r["name"], upstream_text(_summary(r.get("description", "")))] for r in rows],
                ["SERVER", "TOOL", "SUMMARY"],
            )
        )
    return EXIT_OK


_printable = printable


def _summary(text: str, width: int = 80) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def _progress(message: str) -> None:
    # Progress names servers, paths and their errors: escaped, as everything codemode writes to a terminal.
    print(f"codemode: {printable(message)}", file=sys.stderr, flush=True)


def _warm_wasm_cache() -> None:
    """Compile python.wasm for this machine now (once, several seconds), so a first ``serve`` does not."""
    import wasmtime

    from codemode.executors.wasm.module import engine_config, load_module, module_cache_path

    if not module_cache_path().exists():
        load_module(wasmtime.Engine(engine_config()), _progress)


@_command("compile")
def _compile(args: argparse.Namespace) -> int:
    from codemode.compiler import compile_to_dir
    from codemode.paths import stubs_dir_for

    config = _config(args)
    out = Path(args.out) if args.out else stubs_dir_for(config)

    async def go() -> tuple[Any, list[dict[str, Any]]]:
        async with Hub(config) as hub:
            report = await anyio.to_thread.run_sync(lambda: compile_to_dir(hub.tools(), out, summaries=hub.summaries()))
            return report, [s.to_json() for s in hub.status()]

    report, status = anyio.run(go)
    _warm_wasm_cache()
    failed = [s for s in status if s["state"] not in ("ready", "disabled")]
    if args.json:
        _print_json({"out": str(out), **report.to_json(), "servers": status})
    else:
        print(f"{out}: {len(report.written)} written, {len(report.unchanged)} unchanged, {len(report.deleted)} deleted")
        for warning in report.warnings:
            print(f"warning: {upstream_text(warning)}", file=sys.stderr)
        for s in failed:
            print(f"warning: server {s['name']} not compiled: {upstream_text(s['error'] or '')}", file=sys.stderr)
    return EXIT_FAULT if failed else EXIT_OK


def _read_program(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    try:
        return Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{name}: no such file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


@_command("run")
def _run(args: argparse.Namespace) -> int:
    from codemode.engine import Engine

    config = _config(args)
    code = _read_program(args.file)

    async def go() -> Any:
        async with Engine(config, executor=args.executor, progress=_progress) as engine:
            return await engine.execute(code, session="cli")

    outcome = anyio.run(go)
    if args.json:
        result = outcome.result
        _print_json({"id": outcome.id, "ok": not outcome.is_error, "text": outcome.text,
                     "error_kind": result.error.kind if result is not None and result.error is not None else None,
                     "calls": [c.to_json() for c in outcome.calls],
                     "result": result.to_json() if result is not None else None})  # fmt: skip
    elif outcome.text:
        print(outcome.text, file=sys.stderr if outcome.is_error else sys.stdout)
    return EXIT_FAILED if outcome.is_error else EXIT_OK


@_command("check")
def _check(args: argparse.Namespace) -> int:
    from codemode.preflight import checker_for

    code = _read_program(args.file)
    with tempfile.TemporaryDirectory(prefix="codemode-check-") as scratch:
        stubs = _stubs_to_check(args, Path(scratch))
        diagnostics = checker_for(stubs).check(code)
    name = "<stdin>" if args.file == "-" else args.file
    for diagnostic in diagnostics:
        print(diagnostic.render(name))
    return EXIT_FAILED if diagnostics else EXIT_OK


def _stubs_to_check(args: argparse.Namespace, scratch: Path) -> Path:
    """The stubs tree ``check`` uses: ``--stubs``, else the config's newest generation, else a fresh compile
    of the configured servers into ``scratch``."""
    from codemode.catalog.store import GenerationStore
    from codemode.compiler import compile_to_dir
    from codemode.paths import stubs_dir_for

    if args.stubs:
        stubs = Path(args.stubs)
        if not (stubs / "__init__.py").is_file():
            raise ConfigError(f"{stubs}: not a stubs package (no __init__.py); see `codemode compile --out`")
        return stubs
    config = _config(args)
    generation = GenerationStore(stubs_dir_for(config)).current()
    if generation is not None:
        return generation.path

    async def go() -> None:
        async with Hub(config) as hub:
            await anyio.to_thread.run_sync(lambda: compile_to_dir(hub.tools(), scratch, summaries=hub.summaries()))

    anyio.run(go)
    return scratch


@_command("typing")
def _typing(args: argparse.Namespace) -> int:
    from codemode.preflight import write_typing_dir

    out = Path(args.out)
    with tempfile.TemporaryDirectory(prefix="codemode-check-") as scratch:
        write_typing_dir(_stubs_to_check(args, Path(scratch)), out)
    print(f"{out}: stubs/ and codemode_runtime/ for an editor's type checker, e.g.")
    print(f'  mypy (pyproject.toml):      [tool.mypy] mypy_path = "{out}"')
    print(f'  pyright (pyrightconfig.json): {{"extraPaths": ["{out}"]}}')
    return EXIT_OK


def _parse_http(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise ConfigError(f"--http: expected [HOST:]PORT, got {value!r}") from None
    return host.removeprefix("[").removesuffix("]") or "127.0.0.1", number


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _http_identities(config: Config, host: str, *, insecure: bool) -> Identities | None:
    """The bearer tokens ``serve --http`` requires (``codemode.tokens`` and ``$http_token_env``), or None where
    serving without one is allowed.

    Raises:
        ConfigError: a non-loopback address without a token (and without ``--insecure-no-auth``), a token too
            short to resist guessing, or an ``env:`` token whose variable is unset.
    """
    from codemode.identity import identities_from

    var = config.settings.http_token_env
    identities = identities_from(config.settings.tokens, env_token_var=var)
    if identities is not None:
        names = ", ".join(identities.names)
        _progress(f"every HTTP request must carry 'Authorization: Bearer <token>' of an identity: {names}")
        return identities
    if _is_loopback(host):
        _progress(f"${var} is not set: any local process that can reach {host} can run code through this server")
        return None
    if insecure:
        _progress(
            f"WARNING: serving {host} WITHOUT AUTHENTICATION (--insecure-no-auth): anyone who can reach this port "
            "can run code and call every configured tool with its credentials. Only do this behind a proxy that "
            f"authenticates every request, or set ${var}."
        )
        return None
    raise ConfigError(
        f"--http {host}: refusing to serve a non-loopback address without authentication. Set ${var} to a bearer "
        "token that clients send as 'Authorization: Bearer <token>' (e.g. "
        f"export {var}=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')), or give identities their "
        "tokens in codemode.tokens (`codemode token NAME`), or bind 127.0.0.1; --insecure-no-auth serves anyway "
        "(only behind an authenticating proxy)"
    )


@_command("serve")
def _serve(args: argparse.Namespace) -> int:
    from codemode import live
    from codemode.engine import Engine
    from codemode.front import build_server, serve_stdio
    from codemode.session_names import Handles

    config = _config(args)
    http = _parse_http(args.http) if args.http else None
    identities = _http_identities(config, http[0], insecure=args.insecure_no_auth) if http is not None else None
    node = os.environ.get("CODEMODE_NODE") or None
    if node is not None and not NODE_NAME.fullmatch(node):
        raise ConfigError(f"$CODEMODE_NODE={node!r}: a node name is 1-32 lowercase letters, digits and '-'")

    async def go() -> None:
        engine_cm = Engine(config, executor=args.executor, progress=_progress)
        async with engine_cm as engine, anyio.create_task_group() as tg:
            if args.config:  # edits of the file apply while serving
                tg.start_soon(live.watch, engine, Path(args.config))
            handles = Handles(node=node)
            server = build_server(
                engine, verifier=identities, handles=handles, discovery_tools=args.discovery_tools,
                expose_skills=args.expose_skills or config.settings.expose_skills,
            )  # fmt: skip
            if http is None:
                await serve_stdio(server)
            else:
                from codemode.http_app import http_app, serve_http

                app = http_app(
                    server, engine, handles=handles, auth=identities is not None,
                    metrics_public=config.settings.metrics_public, host=http[0],
                )  # fmt: skip
                host = f"[{http[0]}]" if ":" in http[0] else http[0]
                _progress(f"serving streamable HTTP on http://{host}:{http[1]}/mcp (also /healthz, /metrics)")
                await serve_http(app, host=http[0], port=http[1], trusted_proxies=engine.settings.trusted_proxies)
            tg.cancel_scope.cancel()

    anyio.run(go)
    return EXIT_OK


@_command("token")
def _token(args: argparse.Namespace) -> int:
    from codemode.identity import check_identity, new_token, token_key

    try:
        check_identity(args.identity)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    token = new_token()
    print(f"TOKEN={token}")
    print(f'config: "codemode": {{"tokens": {{"{token_key(token)}": "{args.identity}"}}}}')
    print("give the token to that client (Authorization: Bearer <token>); the config keeps only its digest")
    return EXIT_OK


@_command("bench")
def _bench(args: argparse.Namespace) -> int:
    from codemode.paths import source_checkout

    checkout = source_checkout()
    if checkout is None or not (checkout / "benchmarks" / "__main__.py").is_file():
        raise ConfigError("the benchmarks live in the source checkout; run `codemode bench` from a clone")
    sys.path.insert(0, str(checkout))
    from benchmarks.__main__ import main as bench_main

    argv = [*(["--smoke"] if args.smoke else []), *(["--only", *args.only] if args.only else [])]
    argv += ["--out", args.out] if args.out else []
    return bench_main(argv)


@_command("skills")
def _skills(args: argparse.Namespace) -> int:
    from codemode.skills import commands

    return commands.run(args, _config(args))


@_command("demo")
def _demo(args: argparse.Namespace) -> int:
    from codemode.demo.walkthrough import run_demo

    return anyio.run(run_demo, args.executor)


def _same_config(recorded: str, source: str) -> bool:
    """Whether an audit entry's config is ``source`` (entries of older versions hold the path as it was typed,
    relative to wherever that command ran: taken from here)."""
    return recorded == source or os.path.abspath(recorded) == os.path.abspath(source)


@_command("history")
def _history(args: argparse.Namespace) -> int:
    from codemode.audit import audit_log

    config = _config(args)
    # Only this config's executions from the per-user default log, which every config shares; a shared
    # audit database is the whole team's: every node's executions, whatever its config file is called.
    if args.config and not config.settings.audit_url:
        mine = [e for e in audit_log(config).recent(0) if _same_config(e.config, config.source)]
        entries = mine[-args.n :] if args.n > 0 else mine  # the last n of this config's, not of everyone's
    else:
        entries = audit_log(config).recent(args.n)
    if args.json:
        _print_json([e.to_json() for e in entries])
        return EXIT_OK
    rows = [
        [
            e.id,
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.time)),
            _printable(e.identity[:16]),
            _printable(e.session[:16]),
            "ok" if e.ok else f"error: {e.error_kind}" if e.error_kind else "error",
            f"{e.duration_s * 1000:.0f} ms",
            str(len(e.calls)),
            _printable(_summary(_decisions(e.calls), 60)),
            _printable(_summary(e.code.replace("\n", "; "), 50)),
        ]
        for e in entries
    ]
    print(_table(rows, ["ID", "TIME", "WHO", "SESSION", "RESULT", "DURATION", "CALLS", "APPROVALS/DENIALS", "CODE"]))
    return EXIT_OK


@_command("policy")
def _policy(args: argparse.Namespace) -> int:
    from codemode.hub.models import ToolRef
    from codemode.policy import rule_set

    config = _config(args)
    name: str = args.tool
    # Server names may hold dots: the longest configured server the name starts with is the server.
    server = max((s for s in config.servers if name.startswith(s + ".")), key=len, default=None)
    if server is None:
        server, dot, tool = name.partition(".")
        if not dot or not server or not tool:
            raise ConfigError(f"{name!r}: give the tool as server.tool (e.g. fs.write_file)")
    else:
        tool = name[len(server) + 1 :]
    ref = ToolRef(server, tool)
    annotations: dict[str, Any] | None = None
    found = "not looked up (--offline)"
    if not args.offline and server in config.enabled_servers:

        async def look_up() -> tuple[dict[str, Any] | None, str]:
            async with Hub(config) as hub:
                for spec in hub.tools().get(server, []):
                    if spec.name == tool:
                        return spec.annotations, "found"
                why = hub.unavailable().get(server)
                return None, f"server unavailable: {why}" if why else "the server has no such tool"

        annotations, found = anyio.run(look_up)
    elif not args.offline:
        found = "no such server in the config"
    decision = rule_set(config).decide(ref, annotations)
    if args.json:
        _print_json({"tool": str(ref), **decision.to_json(), "annotations": annotations, "lookup": found})
        return EXIT_OK
    print(f"{ref}: {decision.verdict.value}")
    print(f"  rule: {decision.rule}")
    hints = ", ".join(f"{k}={v}" for k, v in (annotations or {}).items() if k.endswith("Hint")) or "none"
    print(f"  annotations: {hints} ({found})")
    return EXIT_OK


def _decisions(calls: Sequence[Any]) -> str:
    """The policy's approvals and denials in one execution, e.g. ``fs.write_file approved; fs.move_file denied``."""
    said: list[str] = []
    for call in calls:
        note = call.policy
        if note is None or note.decision == "allow":
            continue
        what = "denied" if note.decision == "deny" else note.approval or "asked"
        text = f"{call.server}.{call.tool} {what}"
        if text not in said:
            said.append(text)
    return "; ".join(said) or "-"


@_command("replay")
def _replay(args: argparse.Namespace) -> int:
    import difflib

    from codemode.audit import audit_log
    from codemode.engine import Engine
    from codemode.executors import ExecutorKind
    from codemode.identity import LOCAL_IDENTITY
    from codemode.sessions import LOCAL, Owner

    config = _config(args)
    log = audit_log(config)
    entry = log.find(args.id)
    if entry is None:
        raise ConfigError(f"{log.where}: no single execution with id {args.id!r} (see codemode history)")
    # The entry's config path is never loaded unasked: the log is written from what clients sent (a shared
    # audit database, by every node), and a config starts whatever commands its servers name.
    if not args.config and entry.config and not _same_config(entry.config, config.source):
        raise ConfigError(
            f"execution {entry.id} ran with config {entry.config!r}; replay loads only a config you "
            f"name: pass --config {entry.config!r} (or another config file) to replay it"
        )
    if entry.to_json().get("code_truncated"):
        raise ConfigError(f"execution {entry.id}: its code was too long to be stored whole; cannot replay")
    # As whom it ran, so the policy rules scoped to that identity (its denials, its approvals) decide again; an
    # owner of its own, since the local owner's privileges (every session slot) are not a remote client's.
    owner = LOCAL
    if entry.identity != LOCAL_IDENTITY:
        owner = Owner(f"replay-{entry.id}", identity=entry.identity)
        _progress(f"replaying as identity {entry.identity!r}, as it ran: that identity's policy rules apply")

    # A recorded executor that is not one of the sandboxes (a skill tool's entry, a damaged record) runs in WASM.
    executor: ExecutorKind = args.executor or ("restricted" if entry.executor == "restricted" else "wasm")

    async def go() -> Any:
        async with Engine(config, executor=executor, progress=_progress) as engine:
            return await engine.execute(entry.code, session=f"replay-{entry.id}", owner=owner)

    outcome = anyio.run(go)
    before = [*(f"call {c.server}.{c.tool}" for c in entry.calls), *entry.output.splitlines()]
    after = [*(f"call {c.server}.{c.tool}" for c in outcome.calls), *outcome.text.splitlines()]
    print(f"replayed {entry.id} as {outcome.id} ({'error' if outcome.is_error else 'ok'})")
    diff = list(difflib.unified_diff(before, after, f"recorded {entry.id}", f"replayed {outcome.id}", lineterm=""))
    print(_printable("\n".join(diff)) if diff else "same tool calls and output as recorded")
    return EXIT_OK if not diff else EXIT_FAILED


@_command("directory")
def _directory(args: argparse.Namespace) -> int:
    from codemode.directory import directory_for

    config = _config(args)
    directory = directory_for(config)
    found = directory.search(args.query or "") if args.action == "search" else list(directory.entries.values())
    for rejected in directory.rejected:
        print(f"codemode: directory entry rejected: {rejected}", file=sys.stderr)
    allowed = config.settings.mount
    if args.json:
        _print_json({"entries": [e.to_json() for e in found], "rejected": [vars(r) for r in directory.rejected]})
    elif found:
        rows = [
            (e.entry.short_name, e.to_json()["kind"], e.entry.version,
             _mountable(e.entry.short_name, e.entry.name, allowed), e.entry.description[:70])
            for e in found
        ]  # fmt: skip
        print(_table(rows, ["name", "kind", "version", "mount", "description"]))
    else:
        print(f"no directory entry matches {args.query!r}" if args.query else "the directory is empty")
    return EXIT_OK if found or args.action == "list" else EXIT_FAILED


def _mountable(short: str, full: str, patterns: list[str]) -> str:
    from codemode.directory.policy import mount_allowed

    return "allowed" if mount_allowed(short, full, patterns) else "-"


@_command("mount")
def _mount(args: argparse.Namespace) -> int:
    from codemode.config_edit import add_server, directory_of, server_entry

    path = _config_file(args)
    name, entry = server_entry(args.target, directory_of(path))
    name = args.name or name
    add_server(path, name, entry)
    print(f"added server {name!r} to {path} (a running `codemode serve --config {path}` picks it up)")
    return EXIT_OK


@_command("unmount")
def _unmount(args: argparse.Namespace) -> int:
    from codemode.config_edit import remove_server

    path = _config_file(args)
    remove_server(path, args.name)
    print(f"removed server {args.name!r} from {path}")
    return EXIT_OK


def _config_file(args: argparse.Namespace) -> Path:
    if not args.config:
        raise ConfigError("this command edits a config file: pass --config FILE")
    return Path(args.config)


# -- parser ------------------------------------------------------------------------------------

EXIT_CODES = f"""exit status (every command):
  {EXIT_OK}    ok
  {EXIT_FAILED}    the program failed (run), or a replay differs from its record (replay)
  {EXIT_USAGE}    usage or configuration error (bad option, unreadable or invalid config, unknown id)
  {EXIT_FAULT}    codemode or an upstream server failed (a server did not start, a compile failed)
  130  interrupted (Ctrl-C)"""


class _Raw(argparse.RawDescriptionHelpFormatter):
    """Keeps the exit-status table's lines as written."""


def _count(value: str) -> int:
    """``-n``: a whole number, 0 or more (argparse makes a refusal a usage error, exit 2)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (all) or more, not {number}")
    return number


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand (``codemode COMMAND --help``)."""
    parser = argparse.ArgumentParser(
        prog="codemode",
        description="One MCP tool, execute_python, in place of hundreds: typed stubs, a WASM sandbox, skills.",
        epilog=EXIT_CODES,
        formatter_class=_Raw,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("--version", action="version", version=f"codemode {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help: str, *, config: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, epilog=EXIT_CODES, formatter_class=_Raw)
        if config:
            p.add_argument("--config", metavar="FILE", help="mcpServers JSON file (default: the bundled demo servers)")
        # Also accepted after the command; SUPPRESS keeps the global flag's value when it is not given here.
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        return p

    p = add("servers", "list the configured upstream servers and their state")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = add("tools", "list upstream tools")
    p.add_argument("--server", metavar="S", help="only this server")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = add("compile", "compile upstream tool schemas into typed Python stubs (incremental)")
    p.add_argument("--out", metavar="DIR", help="stubs directory (default: the config's stubs directory)")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p = add("run", "run a Python program in the sandbox against the configured servers")
    p.add_argument("file", metavar="FILE|-", help="program file, or - for standard input")
    p.add_argument("--executor", choices=["wasm", "restricted"], help="sandbox (default: wasm)")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    p = add("check", "type check a program against the stubs before running it (FILE:LINE: message)")
    p.add_argument("file", metavar="FILE|-", help="program file, or - for standard input")
    p.add_argument("--stubs", metavar="DIR", help="stubs package to check against (default: the config's stubs)")
    p = add("typing", "write the stubs and the guest runtime into DIR for an editor's mypy/pyright (no MYPYPATH)")
    p.add_argument("out", metavar="DIR", nargs="?", default=".codemode-typing", help="default: .codemode-typing")
    p.add_argument("--stubs", metavar="DIR", help="stubs package to use (default: the config's stubs)")
    p = add("serve", "serve the execute_python MCP tool (stdio by default)")
    p.add_argument(
        "--http", metavar="[HOST:]PORT",
        help="serve streamable HTTP instead (default host 127.0.0.1; any other address needs $CODEMODE_HTTP_TOKEN)",
    )  # fmt: skip
    p.add_argument(
        "--insecure-no-auth", action="store_true",
        help="with --http on a non-loopback address: serve without a bearer token (only behind an authenticating "
        "proxy)",
    )  # fmt: skip
    p.add_argument("--executor", choices=["wasm", "restricted"], help="sandbox (default: wasm)")
    p.add_argument(
        "--discovery-tools", action="store_true",
        help="also offer search_tools and describe as MCP tools (for clients that do better with them)",
    )  # fmt: skip
    p.add_argument(
        "--expose-skills", action="store_true",
        help="also offer each promoted skill as its own MCP tool (named after it, arguments from its signature; "
        "it runs in the sandbox like execute_python); the list follows `codemode skills promote/reject/rollback` "
        "(setting: codemode.expose_skills)",
    )  # fmt: skip
    p = add("token", "make a bearer token for an identity of serve --http and print its codemode.tokens entry",
            config=False)  # fmt: skip
    p.add_argument("identity", metavar="NAME", help="the identity the token authenticates as (audited, in policy)")
    # The walkthrough is written around the demo servers' tools: it takes no --config.
    p = add("demo", "walk through the whole loop on the bundled demo servers", config=False)
    p.add_argument("--executor", choices=["wasm", "restricted"], help="sandbox (default: wasm)")
    bench_help = "run the benchmarks (tokens, workflows, compile, sandbox, serve): JSON, markdown and charts"
    p = sub.add_parser("bench", help=bench_help, description=bench_help + " (same as python -m benchmarks)")
    p.add_argument("--smoke", action="store_true", help="small sizes, fast")
    p.add_argument("--only", nargs="+", metavar="NAME", help="tokens, workflows, compile, sandbox, serve")
    p.add_argument("--out", metavar="DIR", help="results directory (default benchmarks/results)")
    p = add("directory", "list or search the directory of services a program may mount")
    p.add_argument("action", choices=["list", "search"])
    p.add_argument("query", nargs="?", default="", help="words to look for (search)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = add("mount", "add a server to the config file: a directory entry name, a URL, or a server.json/OpenAPI file")
    p.add_argument("target", metavar="NAME|URL|FILE")
    p.add_argument("--name", help="the server's name in the config (default: from the target)")
    p = add("unmount", "remove a server from the config file")
    p.add_argument("name")
    from codemode.skills import commands as skill_commands

    skill_commands.add_parser(sub, add)
    p = add("history", "show recent executions from the audit log")
    p.add_argument("-n", type=_count, default=20, help="how many, newest last (default 20; 0 for all of them)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = add("policy", "policy tools: `policy explain server.tool` prints the decision and the rule that made it")
    policy_sub = p.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    p = policy_sub.add_parser("explain", help="the decision for one tool and the rule that made it")
    p.add_argument("tool", metavar="SERVER.TOOL", help="e.g. fs.write_file")
    p.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="mcpServers JSON file")
    p.add_argument("--offline", action="store_true", help="do not start the server to read the tool's annotations")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = add("replay", "re-run an execution from the audit log against live servers and show the difference")
    p.description = (
        "re-run an execution from the audit log against live servers and show the difference\n\n"
        "It runs as the identity it ran as (an HTTP client's token identity, or local), so that identity's policy\n"
        "rules decide its tool calls again; a call that would ask for approval is refused (nobody is asked).\n"
        "It uses the config given with --config (default: the bundled demo servers), never a config file the\n"
        "audit entry names: an execution that ran with another config is refused with the --config to pass."
    )
    p.add_argument("id", help="execution id (a unique prefix is enough)")
    p.add_argument("--executor", choices=["wasm", "restricted"], help="sandbox (default: as recorded)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.ERROR, format="%(levelname)s %(name)s: %(message)s"
    )
    if not args.debug:  # what the config file's reader ignores is the user's to see (a misspelt "codemode")
        logging.getLogger("codemode.config").setLevel(logging.WARNING)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    try:
        return _COMMANDS[args.command](args)
    except ConfigError as exc:
        if args.debug:
            raise
        print(f"codemode: {printable(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except CodemodeError as exc:
        if args.debug:
            raise
        print(f"codemode: {printable(str(exc))}", file=sys.stderr)
        return EXIT_FAULT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `codemode tools --json | head`: the reader left; say nothing more (and nothing at exit either).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
