"""The ``codemode`` command line. Thin: parse, call the public API, print.

Exit codes: 0 success, 1 the program or a check failed, 2 usage or configuration error, 3 an upstream or
sandbox fault. ``--debug`` shows tracebacks; otherwise a ``CodemodeError`` is one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

import anyio

from codemode.config import Config, load_config
from codemode.errors import CodemodeError, ConfigError
from codemode.hub import Hub

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
                [[r["name"], r["state"], r["transport"], str(r["tools"]), r["error"] or ""] for r in rows],
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
                [[r["server"], r["name"], _summary(r.get("description", ""))] for r in rows],
                ["SERVER", "TOOL", "SUMMARY"],
            )
        )
    return EXIT_OK


def _summary(text: str, width: int = 80) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


# -- parser ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand (``codemode COMMAND --help``)."""
    parser = argparse.ArgumentParser(
        prog="codemode",
        description="One MCP tool, execute_python, in place of hundreds: typed stubs, a WASM sandbox, skills.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("--config", metavar="FILE", help="mcpServers JSON file (default: the bundled demo servers)")
        return p

    p = add("servers", "list the configured upstream servers and their state")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = add("tools", "list upstream tools")
    p.add_argument("--server", metavar="S", help="only this server")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    for extra in _EXTRA_PARSERS:
        extra(sub, add)
    return parser


_EXTRA_PARSERS: list[Callable[[Any, Callable[[str, str], argparse.ArgumentParser]], None]] = []


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.ERROR, format="%(levelname)s %(name)s: %(message)s"
    )
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    try:
        return _COMMANDS[args.command](args)
    except ConfigError as exc:
        if args.debug:
            raise
        print(f"codemode: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CodemodeError as exc:
        if args.debug:
            raise
        print(f"codemode: {exc}", file=sys.stderr)
        return EXIT_FAULT
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
