"""A large OpenAPI document (500 operations, component refs, allOf, oneOf, nullable) compiles into stubs that
import and pass ``mypy --strict``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.bench_openapi import synthetic_spec
from codemode.compiler import compile_to_dir
from codemode.hub.openapi_ops import operations
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_500_operations_compile_import_and_typecheck(tmp_path: Path) -> None:
    pairs = operations(synthetic_spec(500), "big")
    assert len(pairs) == 500 and len({spec.name for spec, _ in pairs}) == 500
    report = compile_to_dir({"big": [spec for spec, _ in pairs]}, tmp_path / "stubs")
    assert report.tools == 500 and not report.warnings, report.warnings[:3]
    stub = (tmp_path / "stubs" / "big" / "create_resource7.py").read_text()
    assert "def create_resource7(" in stub and "body: NewResource7" in stub
    script = "import stubs.big as big\nprint(sum(callable(getattr(big, t)) for t in big.TOOLS))"
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'sandbox'}:{tmp_path}"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "500", proc.stderr[-2000:]
    mypy = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "-p", "stubs"],
        cwd=tmp_path, env={**os.environ, "MYPYPATH": str(REPO / "sandbox")}, capture_output=True, text=True,
    )  # fmt: skip
    assert mypy.returncode == 0, mypy.stdout[-3000:]
