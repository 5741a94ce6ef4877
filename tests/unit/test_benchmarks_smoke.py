"""``python -m benchmarks --smoke`` runs end to end and writes well-formed results, summary and charts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def test_smoke_run_writes_results(tmp_path: Path) -> None:
    # A subprocess, as a user runs it: exercises the CLI, the Agg backend and the real catalogs.
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]

    from benchmarks.__main__ import SMOKE_CATALOGS, SMOKE_TASK

    tokens = _load(tmp_path / "tokens.json")
    assert tokens["benchmark"] == "tokens"
    assert tokens["tokens"] == "o200k proxy"
    rows = tokens["rows"]
    combined, catalogs = rows[0], rows[1:]
    assert combined["server"] == "combined"
    assert [r["server"] for r in catalogs] == sorted(SMOKE_CATALOGS)
    assert combined["tools"] == sum(r["tools"] for r in catalogs)
    assert combined["direct_tokens"] >= sum(r["direct_tokens"] for r in catalogs) * 0.99
    for row in rows:
        assert 0 < row["saving"] < 1, row
        assert row["worst_saving"] <= row["saving"], row
        assert row["code_mode_tokens"] == row["description_tokens"] + round(row["describe_median"] * row["k"])
        assert row["direct_tokens"] > row["code_mode_tokens"] > row["description_tokens"] > 0

    workflows = _load(tmp_path / "workflows.json")
    assert [t["task"] for t in workflows["tasks"]] == [SMOKE_TASK]
    task = workflows["tasks"][0]
    assert task["direct"]["answer"] == task["code_mode"]["answer"]
    assert task["direct"]["total"] > 0 and task["code_mode"]["total"] > 0

    compiled = _load(tmp_path / "compile.json")
    assert compiled["benchmark"] == "compile" and compiled["tools"] == 50
    assert compiled["cold_s"] > 0

    assert 0 < compiled["baseline_generator_s"]  # measured on the same catalog, not estimated

    for name in ("sandbox", "serve"):
        result = _load(tmp_path / f"{name}.json")
        assert result["benchmark"] == name
        for r in result["rows"]:
            assert {"metric", "value", "unit", "baseline", "baseline_value", "target"} <= set(r), r
            assert isinstance(r["value"], float) and isinstance(r["baseline_value"], float), r

    summary = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert summary.startswith("# codemode benchmarks")
    for heading in ("## tokens", "## workflows", "## compile", "## sandbox", "## serve"):
        assert heading in summary
    assert "| **combined** (3 servers) |" in summary
    assert "python: " in summary and "cpus: " in summary and "date: " in summary
    assert "Failed" not in summary

    for chart in ("tokens.png", "workflows.png"):
        data = (tmp_path / chart).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5_000, chart
