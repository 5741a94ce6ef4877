"""A peer that is not installed is reported and skipped, never estimated."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchmarks import peers
from benchmarks.bench_tokens import table

TOOLS = {"one": [{"name": "ping", "description": "Ping.", "inputSchema": {"type": "object"}}]}


def test_missing_peers_are_skipped_with_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "venv"
    empty.mkdir()
    # An interpreter that cannot import fastmcp: Python in isolated mode with no site-packages.
    (empty / "python").write_text(f'#!/bin/sh\nexec {sys.executable} -I -S "$@"\n')
    (empty / "python").chmod(0o755)
    monkeypatch.setenv("CODEMODE_PEERS_PYTHON", str(empty / "python"))
    monkeypatch.setenv("CODEMODE_PEERS_NODE_MODULES", str(tmp_path / "node_modules"))
    fastmcp = peers.fastmcp(TOOLS)
    assert fastmcp.catalogs == {} and fastmcp.skipped is not None and "not installed" in fastmcp.skipped
    cloudflare = peers.cloudflare(TOOLS)
    assert cloudflare.catalogs == {} and cloudflare.skipped is not None and "not installed" in cloudflare.skipped


def test_table_says_which_peer_was_not_measured() -> None:
    row = {"server": "one", "package": "p", "version": "1", "tools": 1, "direct_tokens": 10, "code_mode_tokens": 20,
           "saving": -1.0, "worst_saving": -1.0, "winner": "direct", "auto": "direct", "auto_tokens": 10,
           "fastmcp_tokens": 30}  # fmt: skip
    result = {"tokens": "o200k proxy", "k": 3, "rows": [row],
              "peers": {"fastmcp": {"version": "4.1.6", "skipped": None},
                        "cloudflare": {"version": None, "skipped": "not installed (no node on PATH)"}}}  # fmt: skip
    text = table(result)
    assert "FastMCP code mode 4.1.6" in text and "Cloudflare codemode (not measured)" in text
    assert "| 30 | — |" in text
    assert "cloudflare: not installed (no node on PATH); its column is empty." in text
