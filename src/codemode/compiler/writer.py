"""Incremental, atomic writing of a stubs tree.

A manifest (``.codemode-manifest.json``) records, per tool, a hash of its schema and of the compiler
version, the file it produced and its index entry. On a recompile, tools whose hash is unchanged are not
regenerated or rewritten; removed tools and servers are deleted (only files the manifest lists, never a
user's own files); a no-op recompile writes nothing. Every write is a temp file plus ``os.replace``.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codemode.compiler.inferred import Inferred
from codemode.compiler.limits import MAX_DESCRIPTION, MAX_NAME, clean_text, screen
from codemode.compiler.package import (
    INDEX_FILE,
    render_index,
    render_root_init,
    render_server_init,
    server_index_entry,
    server_modules,
    tool_names,
    unique_specs,
)
from codemode.compiler.render import ToolStub, build_stub, declares_result, generic_stub, render_stub, summary_of
from codemode.errors import CompileError
from codemode.files import write_atomic
from codemode.hub.models import ToolRef, ToolSpec

TASK_REQUIRED = (
    "not offered: it can only be called as a task (execution.taskSupport: required), which codemode does not "
    "support yet"
)
"""Why a tool that requires task augmentation has no stub (shown by ``list_servers()`` and ``search_tools()``)."""


def _compiler_version() -> str:
    # The generated text depends on the compiler's own code: hash it, so any change invalidates manifests.
    here = Path(__file__).parent
    digest = hashlib.sha256()
    names = ("flat.py", "inferred.py", "limits.py", "naming.py", "nested.py", "package.py", "render.py", "writer.py")
    for path in [*(here / name for name in names), here.parent / "calls" / "shapes.py"]:
        with contextlib.suppress(OSError):
            digest.update(path.read_bytes())
    return "2-" + digest.hexdigest()[:12]


COMPILER_VERSION = _compiler_version()
"""Changes whenever the compiler's code does, so stale manifests never keep stale stubs."""
MANIFEST = ".codemode-manifest.json"


@dataclass
class CompileReport:
    """What a compile did: paths relative to the stubs root."""

    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    tools: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "tools": self.tools,
            "written": self.written,
            "unchanged": len(self.unchanged),
            "deleted": self.deleted,
            "warnings": self.warnings,
        }


def tool_hash(spec: ToolSpec, module: str, python_name: str, inferred: Inferred | None = None) -> str:
    """What a stub depends on: the tool's wire definition, its names, its inferred result type, and the
    compiler version."""
    observed = None if inferred is None else [inferred.shape, inferred.count, sorted(inferred.digests)]
    payload = json.dumps([COMPILER_VERSION, spec.server, module, python_name, spec.to_json(), observed], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def compile_to_dir(
    servers: Mapping[str, Sequence[ToolSpec]],
    out_dir: Path,
    *,
    summaries: Mapping[str, str] | None = None,
    observed: Mapping[ToolRef, Inferred] | None = None,
) -> CompileReport:
    """Compile every server's tools into ``out_dir`` (a ``stubs`` package), incrementally.

    ``observed`` holds result types inferred from observed results; they type the result of tools that declare
    no output schema. Tools that can only be called as tasks get no stub: the index lists them under
    ``omitted`` with the reason.

    Raises:
        CompileError: ``out_dir`` cannot be created or written.
    """
    summaries = summaries or {}
    observed = observed or {}
    report = CompileReport()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CompileError(f"{out_dir}: cannot create stubs directory: {exc}") from exc
    old = _load_manifest(out_dir)
    old_tools: dict[str, dict[str, Any]] = old.get("tools", {})
    modules = server_modules(list(servers))
    new_tools: dict[str, dict[str, Any]] = {}
    index_servers: dict[str, dict[str, Any]] = {}
    wanted: dict[str, str] = {}  # relative path -> text, for files whose text we know

    for server in sorted(servers):
        module = modules[server]
        screened, screen_warnings = _screen_all(server, servers[server], report)
        listed = unique_specs(screened)
        omitted = [{"name": s.name, "reason": TASK_REQUIRED} for s in listed if s.requires_task]
        specs = [s for s in listed if not s.requires_task]
        report.tools += len(omitted)  # seen and decided on, like a skipped tool
        names = tool_names(specs)
        entries: list[dict[str, Any]] = []
        stubs_for_init: list[ToolStub] = []
        for spec in specs:
            python_name = names[spec.name]
            rel = f"{module}/{python_name}.py"
            key = f"{server}\x00{spec.name}"
            report.tools += 1
            try:
                inferred = None if declares_result(spec) else observed.get(spec.ref)
                entry = _compile_tool(
                    out_dir, spec, module, python_name, old_tools.get(key), screen_warnings.get(id(spec), []), report,
                    inferred,
                )  # fmt: skip
            except Exception as exc:
                report.warnings.append(f"{_label(spec)}: skipped, no stub written: {_reason(exc)}")
                continue
            new_tools[key] = {"hash": entry.pop("_hash"), "file": rel, "index": entry}
            entries.append(entry)
            stubs_for_init.append(_stub_from_entry(server, entry))
        summary = summary_of(summaries.get(server, "")[:MAX_DESCRIPTION])
        init = render_server_init(server, module, summary, stubs_for_init)
        try:  # the summary is the server's own text: a package that does not parse breaks every tool of it
            ast.parse(init)
        except (SyntaxError, ValueError) as exc:
            report.warnings.append(f"{clean_text(server)[:200]}: summary dropped, it broke the package: {exc}")
            summary = ""
            init = render_server_init(server, module, summary, stubs_for_init)
        wanted[f"{module}/__init__.py"] = init
        index_servers[server] = server_index_entry(server, module, summary, entries)
        if omitted:
            index_servers[server]["omitted"] = omitted

    wanted["__init__.py"] = render_root_init(modules)
    wanted[INDEX_FILE] = render_index(index_servers)
    for rel, text in wanted.items():
        _write(out_dir, rel, text, report)

    # Delete what an earlier compile produced and this one did not.
    produced = {t["file"] for t in new_tools.values()} | set(wanted)
    for rel in sorted(set(old.get("files", [])) - produced):
        if not _in_tree(out_dir, rel):
            # The manifest is a file on disk, not ours to trust: it names nothing outside the tree.
            report.warnings.append(f"{MANIFEST}: ignored {_shown(rel)}: not a file of the stubs tree")
            continue
        path = out_dir / rel
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            report.deleted.append(rel)
        with contextlib.suppress(OSError):
            if path.parent != out_dir and not any(path.parent.iterdir()):
                path.parent.rmdir()

    manifest = {"version": COMPILER_VERSION, "files": sorted(produced), "tools": new_tools}
    _write(out_dir, MANIFEST, json.dumps(manifest, sort_keys=True, separators=(",", ":")) + "\n", report, track=False)
    return report


def _screen_all(
    server: str, specs: Sequence[ToolSpec], report: CompileReport
) -> tuple[list[ToolSpec], dict[int, list[str]]]:
    """Every spec through :func:`screen` (before anything serialises or parses it); warnings by ``id``."""
    screened: list[ToolSpec] = []
    warnings: dict[int, list[str]] = {}
    for spec in specs:
        try:
            safe, found = screen(spec)
        except Exception as exc:
            report.tools += 1
            report.warnings.append(f"{_label(spec)}: skipped, unreadable definition: {_reason(exc)}")
            continue
        screened.append(safe)
        warnings[id(safe)] = found
    return screened, warnings


def _compile_tool(
    out_dir: Path,
    spec: ToolSpec,
    module: str,
    python_name: str,
    previous: dict[str, Any] | None,
    screen_warnings: list[str],
    report: CompileReport,
    inferred: Inferred | None = None,
) -> dict[str, Any]:
    """Write one tool's stub (unless unchanged); its index entry, with its manifest hash under ``_hash``.

    A stub that fails to render or does not parse as Python is replaced by the generic one.
    """
    digest = tool_hash(spec, module, python_name, inferred)
    rel = f"{module}/{python_name}.py"
    if _reusable(previous, digest, spec, python_name) and _in_tree(out_dir, rel) and (out_dir / rel).is_file():
        assert previous is not None
        entry = dict(previous["index"])
        report.unchanged.append(rel)
    else:
        stub = build_stub(spec, python_name, inferred)
        try:
            text = render_stub(stub)
            ast.parse(text, rel)
        except Exception as exc:
            reason = f"{_label(spec)}: stub not rendered, using a generic signature: {_reason(exc)}"
            stub = generic_stub(spec, python_name, reason)
            text = render_stub(stub)
            ast.parse(text, rel)
        entry = stub.index_entry()
        entry["warning"] = "\n".join([*screen_warnings, *([stub.warning] if stub.warning else [])]) or None
        _write(out_dir, rel, text, report)
    if entry.get("warning"):
        report.warnings.extend(str(entry["warning"]).split("\n"))
    entry["_hash"] = digest
    return entry


def _label(spec: ToolSpec) -> str:
    return f"{clean_text(str(spec.server))[:MAX_NAME]}.{clean_text(str(spec.name))[:MAX_NAME]}"


def _reason(exc: BaseException) -> str:
    text = " ".join(clean_text(f"{type(exc).__name__}: {exc}").split())
    return text if len(text) <= 300 else text[:299] + "…"


def load_index(out_dir: Path) -> dict[str, Any]:
    """The ``_index.json`` of a stubs tree (empty when the tree has not been compiled)."""
    try:
        data = json.loads((out_dir / INDEX_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"version": 1, "servers": []}
    except (OSError, ValueError) as exc:
        raise CompileError(f"{out_dir / INDEX_FILE}: unreadable index: {exc}") from exc
    return data if isinstance(data, dict) else {"version": 1, "servers": []}


def _stub_from_entry(server: str, entry: dict[str, Any]) -> ToolStub:
    # The package __init__ needs only names and summaries, which the index entry keeps.
    return ToolStub(
        server=server,
        tool=entry["name"],
        python_name=entry["python_name"],
        summary=entry["summary"],
        description="",
        args=[],
        result_type="Any",
        result_doc="",
    )


def _load_manifest(out_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    files = data.get("files")
    files = [rel for rel in files if isinstance(rel, str)] if isinstance(files, list) else []
    tools = data.get("tools")
    if data.get("version") != COMPILER_VERSION or not isinstance(tools, dict):
        # Another compiler version: keep the file list (so stale files still get deleted), drop the hashes.
        return {"files": files}
    return {"files": files, "tools": {k: v for k, v in tools.items() if isinstance(v, dict)}}


def _reusable(previous: dict[str, Any] | None, digest: str, spec: ToolSpec, python_name: str) -> bool:
    """Whether the manifest's record of a tool can stand for its stub: same hash, and an index entry that
    names this tool and this stub (a tampered manifest cannot pass other names into the package)."""
    if not previous or previous.get("hash") != digest:
        return False
    entry = previous.get("index")
    return (
        isinstance(entry, dict)
        and entry.get("name") == spec.name
        and entry.get("python_name") == python_name
        and isinstance(entry.get("summary"), str)
    )


def _in_tree(out_dir: Path, rel: Any) -> bool:
    """Whether ``rel`` names a file inside the stubs tree: a relative path of plain names (no ``..``, no
    absolute path, no NUL), no link among its directories."""
    if not isinstance(rel, str) or not rel or "\x00" in rel or "\\" in rel or rel.startswith("/"):
        return False
    parts = rel.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return False
    path = out_dir
    for part in parts[:-1]:
        path = path / part
        if path.is_symlink():
            return False
    return True


def _shown(rel: Any) -> str:
    return repr(clean_text(str(rel))[:200])


def _unlink_links(out_dir: Path, rel: str) -> None:
    """Remove links on the way to ``rel`` (the links themselves, never their targets): the tree is
    codemode's own, and a write must not follow one out of it."""
    path = out_dir
    for part in rel.split("/"):
        path = path / part
        if path.is_symlink():
            path.unlink()


def _write(out_dir: Path, rel: str, text: str, report: CompileReport, *, track: bool = True) -> None:
    path = out_dir / rel
    # Upstream text that still holds a lone surrogate is written escaped (valid in JSON and in a docstring).
    data = text.encode("utf-8", "backslashreplace")
    try:
        _unlink_links(out_dir, rel)
        if path.is_file() and path.read_bytes() == data:
            if track and rel not in report.unchanged:
                report.unchanged.append(rel)
            return
        write_atomic(path, data)
    except OSError as exc:
        raise CompileError(f"{path}: cannot write stub: {exc}") from exc
    if track:
        report.written.append(rel)


