"""Incremental, atomic writing of a stubs tree.

A manifest (``.codemode-manifest.json``) records, per tool, a hash of its schema and of the compiler
version, the file it produced and its index entry. On a recompile, tools whose hash is unchanged are not
regenerated or rewritten; removed tools and servers are deleted (only files the manifest lists, never a
user's own files); a no-op recompile writes nothing. Every write is a temp file plus ``os.replace``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
from codemode.compiler.render import ToolStub, build_stub, render_stub, summary_of
from codemode.errors import CompileError
from codemode.hub.models import ToolSpec


def _compiler_version() -> str:
    # The generated text depends on the compiler's own code: hash it, so any change invalidates manifests.
    here = Path(__file__).parent
    digest = hashlib.sha256()
    for name in ("flat.py", "naming.py", "nested.py", "package.py", "render.py", "writer.py"):
        with contextlib.suppress(OSError):
            digest.update((here / name).read_bytes())
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


def tool_hash(spec: ToolSpec, module: str, python_name: str) -> str:
    """What a stub depends on: the tool's wire definition, its names, and the compiler version."""
    payload = json.dumps([COMPILER_VERSION, spec.server, module, python_name, spec.to_json()], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def compile_to_dir(
    servers: Mapping[str, Sequence[ToolSpec]],
    out_dir: Path,
    *,
    summaries: Mapping[str, str] | None = None,
) -> CompileReport:
    """Compile every server's tools into ``out_dir`` (a ``stubs`` package), incrementally.

    Raises:
        CompileError: ``out_dir`` cannot be created or written.
    """
    summaries = summaries or {}
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
        specs = unique_specs(servers[server])
        names = tool_names(specs)
        entries: list[dict[str, Any]] = []
        stubs_for_init: list[ToolStub] = []
        for spec in specs:
            python_name = names[spec.name]
            digest = tool_hash(spec, module, python_name)
            rel = f"{module}/{python_name}.py"
            key = f"{server}\x00{spec.name}"
            previous = old_tools.get(key)
            report.tools += 1
            if previous and previous.get("hash") == digest and (out_dir / rel).is_file():
                entry = previous["index"]
                report.unchanged.append(rel)
                if entry.get("warning"):
                    report.warnings.append(entry["warning"])
            else:
                stub = build_stub(spec, python_name)
                entry = stub.index_entry()
                if stub.warning:
                    report.warnings.append(stub.warning)
                _write(out_dir, rel, render_stub(stub), report)
            new_tools[key] = {"hash": digest, "file": rel, "index": entry}
            entries.append(entry)
            stubs_for_init.append(_stub_from_entry(server, entry))
        summary = summary_of(summaries.get(server, ""))
        wanted[f"{module}/__init__.py"] = render_server_init(server, module, summary, stubs_for_init)
        index_servers[server] = server_index_entry(server, module, summary, entries)

    wanted["__init__.py"] = render_root_init(modules)
    wanted[INDEX_FILE] = render_index(index_servers)
    for rel, text in wanted.items():
        _write(out_dir, rel, text, report)

    # Delete what an earlier compile produced and this one did not.
    produced = {t["file"] for t in new_tools.values()} | set(wanted)
    for rel in sorted(set(old.get("files", [])) - produced):
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
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != COMPILER_VERSION:
        # Another compiler version: keep the file list (so stale files still get deleted), drop the hashes.
        return {"files": data.get("files", [])} if isinstance(data, dict) else {}
    return data


def _write(out_dir: Path, rel: str, text: str, report: CompileReport, *, track: bool = True) -> None:
    path = out_dir / rel
    data = text.encode("utf-8")
    try:
        if path.is_file() and path.read_bytes() == data:
            if track and rel not in report.unchanged:
                report.unchanged.append(rel)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise CompileError(f"{path}: cannot write stub: {exc}") from exc
    if track:
        report.written.append(rel)
