"""Capture real tool catalogs: start pinned MCP servers from npm and PyPI and save what ``tools/list`` returns.

The JSON files in ``benchmarks/catalogs/`` are committed, so the benchmarks that read them run offline; this
script only refreshes them. Every server gets dummy credentials (never real ones): listing tools needs none.

    python -m benchmarks.capture_catalogs              # all pinned servers, two at a time
    python -m benchmarks.capture_catalogs --only github --only notion
    python -m benchmarks.capture_catalogs --list       # the pinned servers, nothing started

npm servers run through ``npx -y NAME@VERSION``; each PyPI server gets its own venv under ``.venv-servers/<name>``
(many pin ``mcp<2``, which cannot share a venv with ours). One line per server: its tool count or why it failed.
The exit status is 1 when any selected server failed; the others' catalogs are written all the same.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import PaginatedRequestParams

ROOT = Path(__file__).resolve().parents[1]
CATALOGS = Path(__file__).resolve().parent / "catalogs"
SERVER_VENVS = ROOT / ".venv-servers"
# A fixed path rather than mkdtemp: a few servers echo their arguments (a db path, a folder) into tool
# descriptions, and a random name there would make every capture differ.
SCRATCH = Path(tempfile.gettempdir()) / "codemode-capture-catalogs"

START_TIMEOUT = 90.0
# Downloads are kept out of the start timeout: the first npx fetch of a big package (Azure's ships a .NET
# build) or a pip install of boto3 takes minutes on a cold cache.
INSTALL_TIMEOUT = 900.0
MAX_PAGES = 200

Registry = Literal["npm", "pypi"]

# Dummy values shared by the AWS Labs servers: boto3 needs some credentials and a region to build clients.
AWS_ENV = {"AWS_ACCESS_KEY_ID": "dummy", "AWS_SECRET_ACCESS_KEY": "dummy", "AWS_REGION": "us-east-1"}


@dataclass(frozen=True)
class Server:
    """One pinned server. ``{scratch}`` in args and env values stands for a fresh per-server scratch folder."""

    name: str
    registry: Registry
    package: str
    version: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    # The executable to run when it is not named like the package (npm bin, or PyPI console script).
    command: str | None = None
    # Extra pip requirements for PyPI servers whose own pins are too loose to install today.
    extra_requirements: tuple[str, ...] = ()

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}" if self.registry == "npm" else f"{self.package}=={self.version}"


SERVERS: tuple[Server, ...] = (
    # --- npm ---
    Server("everything", "npm", "@modelcontextprotocol/server-everything", "2026.8.31", args=("stdio",)),
    Server(
        "memory",
        "npm",
        "@modelcontextprotocol/server-memory",
        "2026.8.31",
        env={"MEMORY_FILE_PATH": "{scratch}/memory.jsonl"},
    ),
    Server("filesystem", "npm", "@modelcontextprotocol/server-filesystem", "2026.8.31", args=("{scratch}",)),
    Server("sequential-thinking", "npm", "@modelcontextprotocol/server-sequential-thinking", "2026.8.31"),
    Server(
        "github",
        "npm",
        "@modelcontextprotocol/server-github",
        "2025.4.8",
        env={"GITHUB_PERSONAL_ACCESS_TOKEN": "dummy"},
    ),
    Server(
        "slack",
        "npm",
        "@modelcontextprotocol/server-slack",
        "2025.4.25",
        env={"SLACK_BOT_TOKEN": "xoxb-dummy", "SLACK_TEAM_ID": "T00000000"},
    ),
    Server(
        "postgres", "npm", "@modelcontextprotocol/server-postgres", "0.6.2", args=("postgresql://127.0.0.1:9/dummy",)
    ),
    Server(
        "google-maps", "npm", "@modelcontextprotocol/server-google-maps", "0.6.2", env={"GOOGLE_MAPS_API_KEY": "dummy"}
    ),
    Server("brave-search", "npm", "@modelcontextprotocol/server-brave-search", "0.6.2", env={"BRAVE_API_KEY": "dummy"}),
    # The optional capabilities add their tools to the catalog; none of them starts a browser to list.
    Server("playwright", "npm", "@playwright/mcp", "0.0.83", args=("--caps=vision,pdf,devtools",)),
    Server("notion", "npm", "@notionhq/notion-mcp-server", "2.5.2", env={"NOTION_TOKEN": "dummy"}),
    # "all" exposes every Azure command as its own tool; the default groups them into one tool per namespace.
    Server("azure", "npm", "@azure/mcp", "2.0.5", args=("server", "start", "--mode", "all")),
    Server("kubernetes", "npm", "mcp-server-kubernetes", "4.1.7"),
    Server("context7", "npm", "@upstash/context7-mcp", "4.1.1"),
    Server("firecrawl", "npm", "firecrawl-mcp", "3.26.0", env={"FIRECRAWL_API_KEY": "fc-dummy"}),
    Server("chrome-devtools", "npm", "chrome-devtools-mcp", "1.11.0"),
    # HOME moved: it writes its config file there on start.
    Server(
        "desktop-commander",
        "npm",
        "@wonderwhy-er/desktop-commander",
        "0.2.52",
        env={"HOME": "{scratch}", "npm_config_ignore_scripts": "true"},
    ),
    Server("sentry", "npm", "@sentry/mcp-server", "0.39.0", env={"SENTRY_ACCESS_TOKEN": "dummy"}),
    # --- PyPI ---
    # A fixed zone: the tool descriptions name the machine's local one.
    Server("time", "pypi", "mcp-server-time", "2026.10.19", args=("--local-timezone", "UTC")),
    Server("git", "pypi", "mcp-server-git", "2026.10.19"),
    Server("fetch", "pypi", "mcp-server-fetch", "2026.10.24"),
    # These two leave mcp unpinned but use the v1 server API that mcp 2 removed.
    Server(
        "sqlite",
        "pypi",
        "mcp-server-sqlite",
        "2025.4.25",
        args=("--db-path", "{scratch}/test.db"),
        extra_requirements=("mcp<2",),
    ),
    Server(
        "duckdb",
        "pypi",
        "mcp-server-duckdb",
        "1.1.0",
        args=("--db-path", "{scratch}/test.duckdb"),
        extra_requirements=("mcp<2",),
    ),
    Server("motherduck", "pypi", "mcp-server-motherduck", "1.1.0", args=("--db-path", ":memory:", "--read-write")),
    Server(
        "atlassian",
        "pypi",
        "mcp-atlassian",
        "0.23.1",
        env={
            "JIRA_URL": "http://127.0.0.1:9/jira",
            "JIRA_USERNAME": "dummy",
            "JIRA_API_TOKEN": "dummy",
            "CONFLUENCE_URL": "http://127.0.0.1:9/wiki",
            "CONFLUENCE_USERNAME": "dummy",
            "CONFLUENCE_API_TOKEN": "dummy",
        },
    ),
    Server(
        "grafana",
        "pypi",
        "mcp-grafana",
        "2.1.1",
        env={"GRAFANA_URL": "http://127.0.0.1:9", "GRAFANA_API_KEY": "dummy"},
    ),
    Server("excel", "pypi", "excel-mcp-server", "2.2.2", args=("stdio",), env={"EXCEL_FILES_PATH": "{scratch}"}),
    Server("word", "pypi", "office-word-mcp-server", "1.1.11", command="word_mcp_server"),
    Server(
        "clickhouse",
        "pypi",
        "mcp-clickhouse",
        "0.7.0",
        env={"CLICKHOUSE_HOST": "127.0.0.1", "CLICKHOUSE_USER": "dummy", "CLICKHOUSE_PASSWORD": "dummy"},
    ),
    Server("aws-eks", "pypi", "awslabs.eks-mcp-server", "0.2.1", env=AWS_ENV),
    Server("aws-ecs", "pypi", "awslabs.ecs-mcp-server", "0.1.37", env=AWS_ENV, command="ecs-mcp-server"),
    Server("aws-dynamodb", "pypi", "awslabs.dynamodb-mcp-server", "2.1.8", env=AWS_ENV),
    Server("aws-cloudwatch", "pypi", "awslabs.cloudwatch-mcp-server", "0.3.1", env=AWS_ENV),
    Server("aws-dataprocessing", "pypi", "awslabs.aws-dataprocessing-mcp-server", "0.2.2", env=AWS_ENV),
    Server("aws-iam", "pypi", "awslabs.iam-mcp-server", "1.1.2", env=AWS_ENV),
    Server("aws-billing", "pypi", "awslabs.billing-cost-management-mcp-server", "0.0.42", env=AWS_ENV),
    Server(
        "google-workspace",
        "pypi",
        "workspace-mcp",
        "2.2.1",
        args=("--tool-tier", "complete"),
        env={"GOOGLE_OAUTH_CLIENT_ID": "dummy", "GOOGLE_OAUTH_CLIENT_SECRET": "dummy"},
    ),
)

# Tried and left out (these versions, on a machine that reaches only the package registries):
#   @modelcontextprotocol/server-gitlab@2025.4.25: input schemas without "type", which the SDK's Tool model rejects
#   @modelcontextprotocol/server-redis@2025.4.25: connects to Redis before it answers initialize
#   @supabase/mcp-server-supabase@0.13.0: fetches from the Supabase API to build its tool list
#   @heroku/mcp-server@1.2.8: imports a module its pinned SDK no longer ships
#   @stripe/mcp@0.3.3: only proxies to Stripe's hosted server
#   @azure-devops/mcp@2.10.0: needs keytar's native build, whose prebuilt binary comes from outside the registry
#   awslabs.aws-api-mcp-server==1.5.6: downloads AWS's service reference before it starts


@dataclass
class Outcome:
    server: Server
    tools: int = 0
    error: str | None = None


def _expand(text: str, scratch: Path) -> str:
    return text.replace("{scratch}", str(scratch))


def _describe(exc: BaseException) -> str:
    """One line, unwrapping the exception groups that anyio task groups raise."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, TimeoutError):
        return "timed out"
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:300]


def _tail(log: Path, lines: int = 2) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    kept = [ln.strip() for ln in text.splitlines() if ln.strip()][-lines:]
    return f" [stderr: {' | '.join(kept)[:300]}]" if kept else ""


def _server_env(server: Server, scratch: Path) -> dict[str, str]:
    # Only what a server needs to run, not this shell's environment, so no real token leaks into a capture.
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    if server.registry == "npm":
        # Servers that move HOME (to keep their config files out of the real one) must still hit the npx cache.
        env["npm_config_cache"] = os.environ.get("npm_config_cache", str(Path.home() / ".npm"))
        env["npm_config_update_notifier"] = "false"
    else:
        # Some servers join a Python set into a schema default (mcp-atlassian's field lists); a fixed hash seed
        # keeps that order, and so the file, the same from one capture to the next.
        env["PYTHONHASHSEED"] = "0"
    env.update({k: _expand(v, scratch) for k, v in server.env.items()})
    return env


async def _run(argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None) -> None:
    with anyio.fail_after(INSTALL_TIMEOUT):
        result = await anyio.run_process(list(argv), check=False, stderr=subprocess.STDOUT, env=env)
    if result.returncode != 0:
        await anyio.Path(log).write_bytes(result.stdout)
        raise RuntimeError(f"{argv[0]} exited {result.returncode}")


def _installed_version(venv: Path, package: str) -> str | None:
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    shown = subprocess.run(
        [str(python), "-m", "pip", "show", package], capture_output=True, text=True, check=False
    ).stdout
    for line in shown.splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    return None


async def _install(server: Server, scratch: Path, log: Path) -> list[str]:
    """Fetch the pinned package if needed and return the argv that starts the server."""
    args = [_expand(a, scratch) for a in server.args]
    if server.registry == "npm":
        env = _server_env(server, scratch)
        # Filling the npx cache here keeps the download out of the start timeout.
        await _run(["npm", "exec", "--yes", f"--package={server.spec}", "--", "node", "-e", "0"], log, env)
        if server.command is None:
            return ["npx", "-y", server.spec, *args]
        return ["npx", "-y", f"--package={server.spec}", "--", server.command, *args]
    venv = SERVER_VENVS / server.name
    if await anyio.to_thread.run_sync(_installed_version, venv, server.package) != server.version:
        await _run([shutil.which("python3") or sys.executable, "-m", "venv", str(venv)], log)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        await _run([*pip, f"{server.package}=={server.version}", *server.extra_requirements], log)
    return [str(venv / "bin" / (server.command or server.package)), *args]


async def _list_tools(argv: list[str], env: dict[str, str], scratch: Path, log: Path) -> list[dict[str, Any]]:
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=env, cwd=scratch)
    tools: list[dict[str, Any]] = []
    with log.open("a", encoding="utf-8") as errlog:
        # Leaving these blocks (normally, on error, on timeout or on Ctrl-C) stops the server's whole process tree.
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            cursor: str | None = None
            for _ in range(MAX_PAGES):
                page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor) if cursor else None)
                tools.extend(t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
    return tools


def render(server: Server, tools: list[dict[str, Any]], captured: str) -> str:
    doc = {
        "server": server.name,
        "package": server.package,
        "version": server.version,
        "registry": server.registry,
        "captured": captured,
        "tools": tools,
    }
    return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


async def capture(server: Server, captured: str) -> Outcome:
    scratch = SCRATCH / server.name
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    log = SCRATCH / f"{server.name}.log"
    log.unlink(missing_ok=True)
    try:
        argv = await _install(server, scratch, log)
    except Exception as exc:
        return Outcome(server, error=f"install failed: {_describe(exc)}{_tail(log)}")
    try:
        with anyio.fail_after(START_TIMEOUT):
            tools = await _list_tools(argv, _server_env(server, scratch), scratch, log)
    except Exception as exc:
        return Outcome(server, error=f"{_describe(exc)}{_tail(log)}")
    if not tools:
        # An empty list usually means the server wanted a real backend; an empty catalog is no use to a benchmark.
        return Outcome(server, error=f"listed no tools{_tail(log)}")
    CATALOGS.mkdir(parents=True, exist_ok=True)
    await anyio.Path(CATALOGS / f"{server.name}.json").write_text(render(server, tools, captured), encoding="utf-8")
    return Outcome(server, tools=len(tools))


def _report(outcome: Outcome) -> None:
    s = outcome.server
    result = f"{outcome.tools} tools" if outcome.error is None else f"FAILED: {outcome.error}"
    sys.stdout.write(f"{s.name:<20} {s.spec:<55} {result}\n")
    sys.stdout.flush()


async def capture_all(servers: Sequence[Server], jobs: int) -> list[Outcome]:
    captured = datetime.date.today().isoformat()
    limiter = anyio.CapacityLimiter(jobs)
    outcomes: list[Outcome] = []

    async def one(server: Server) -> None:
        async with limiter:
            outcome = await capture(server, captured)
        _report(outcome)
        outcomes.append(outcome)

    async with anyio.create_task_group() as tg:
        for server in servers:
            tg.start_soon(one, server)
    order = {s.name: i for i, s in enumerate(servers)}
    return sorted(outcomes, key=lambda o: order[o.server.name])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", metavar="NAME", help="capture just this server (repeatable)")
    parser.add_argument("--list", action="store_true", help="print the pinned servers and exit")
    parser.add_argument("--jobs", type=int, default=2, help="servers started at once (default 2)")
    opts = parser.parse_args(argv)

    by_name = {s.name: s for s in SERVERS}
    if opts.list:
        for s in SERVERS:
            sys.stdout.write(f"{s.name:<20} {s.registry:<5} {s.spec}\n")
        return 0
    unknown = [n for n in opts.only or () if n not in by_name]
    if unknown:
        parser.error(f"unknown server(s): {', '.join(unknown)} (see --list)")
    selected = [by_name[n] for n in dict.fromkeys(opts.only)] if opts.only else list(SERVERS)

    # Servers that print banners on stdout make the SDK log each stray line with a traceback; harmless for a
    # listing, and it would bury the one-line-per-server report.
    logging.getLogger("mcp.client.stdio").setLevel(logging.CRITICAL)
    outcomes = anyio.run(capture_all, selected, max(1, opts.jobs))
    ok = [o for o in outcomes if o.error is None]
    sys.stdout.write(
        f"{len(ok)}/{len(outcomes)} servers, {sum(o.tools for o in ok)} tools written to {CATALOGS.relative_to(ROOT)}\n"
    )
    return 0 if len(ok) == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
