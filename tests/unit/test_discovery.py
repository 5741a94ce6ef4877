"""Guest discovery helpers over the committed demo stubs (they run in the sandbox; here, on the host)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.conftest import REPO


@pytest.fixture
def discovery(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("CODEMODE_STUBS_DIR", str(REPO / "stubs"))
    monkeypatch.syspath_prepend(str(REPO / "sandbox"))
    sys.modules.pop("codemode_runtime.discovery", None)
    yield importlib.import_module("codemode_runtime.discovery")
    sys.modules.pop("codemode_runtime.discovery", None)


def test_list_servers_and_tools(discovery: ModuleType) -> None:
    servers = {s["server"]: s for s in discovery.list_servers()}
    assert servers["inventory"]["tools"] == 5 and servers["notes"]["module"] == "notes"
    assert "Team knowledge base" in servers["notes"]["summary"]
    assert {"tool": "notes.list_tags", "summary": "All tags in use, with how many notes carry each."} in (
        discovery.list_tools("notes")
    )
    with pytest.raises(LookupError, match="no server 'nope'"):
        discovery.list_tools("nope")


def test_search_ranks_names_and_descriptions(discovery: ModuleType) -> None:
    assert discovery.search_tools("stock levels")[0]["tool"] == "inventory.check_stock"
    assert discovery.search_tools("write a note", limit=1)[0]["tool"] == "notes.create_note"
    assert discovery.search_tools("tags")[0]["tool"] == "notes.list_tags"
    assert discovery.search_tools("zzzz-nothing") == []
    assert len(discovery.search_tools("order", limit=1)) == 1


def test_describe_returns_signature_and_docs(discovery: ModuleType) -> None:
    text = discovery.describe("inventory.check_stock")
    assert "def check_stock(*, skus: list[str]) -> CheckStockResult:" in text
    assert "class StockLevel(TypedDict):" in text
    assert discovery.describe("notes.search_notes").startswith("# from stubs import notes")
    with pytest.raises(LookupError, match="no tool 'nope'"):
        discovery.describe("notes.nope")


def test_describe_is_compact_and_exact(discovery: ModuleType) -> None:
    text = discovery.describe("notes.create_note")
    source = (REPO / "stubs" / "notes" / "create_note.py").read_text()
    # No call body, no empty Args lines, no Calls line when the names are the MCP names.
    assert "_call(" not in text and ": -" not in text and "Args:" not in text and "Calls MCP tool" not in text
    assert "    related_skus: NotRequired[list[str]]  # Inventory SKUs this note is about" in text
    assert "def create_note(\n    *,\n    title: str," in text and "-> CreateNoteResult:" in text
    assert text.rstrip().endswith('"""') and "Returns: structured content" in text
    assert len(text) < len(source) * 0.6
    # The Args lines that do say something stay.
    assert "Args:\n        in_stock_only: (default: false)" in discovery.describe("inventory.list_products")
