"""Shared test fixtures: only asyncio as the anyio backend, paths of the repo."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fragile_server() -> dict[str, object]:
    """Config entry for the misbehaving test server."""
    return {"command": sys.executable, "args": [str(FIXTURES / "servers" / "fragile.py")]}
