"""Scripted workflows, each done two ways against the same real servers.

* **direct**: a client that exposes every upstream tool to the model; every call and every intermediate
  result passes through the model's context. The steps are what a model would do, scripted.
* **code mode**: the model reads the ``execute_python`` description and the stubs it uses, writes one
  program, and sees only the program's output.

Both are executed for real and must produce the same answer, so the token comparison is honest.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types

from codemode.calls.results import result_for_guest
from codemode.hub import Hub, ToolRef
from codemode.tokens import count_json, count_tokens

Direct = Callable[["Recorder"], Awaitable[Any]]


@dataclass
class Recorder:
    """The direct-calling client: calls tools through the hub and counts what the model would read."""

    hub: Hub
    calls: int = 0
    call_tokens: int = 0
    result_tokens: int = 0
    results: list[str] = field(default_factory=list)
    per_call: list[tuple[int, int]] = field(default_factory=list)
    """(call tokens, result tokens) of each call, in order: one model turn each."""

    async def __call__(self, server: str, tool: str, **args: Any) -> Any:
        self.calls += 1
        call_tokens = count_json({"name": tool, "arguments": args})
        self.call_tokens += call_tokens
        result = await self.hub.call_tool(ToolRef(server, tool), args)
        text = "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))
        result_tokens = count_tokens(text)
        self.result_tokens += result_tokens
        self.per_call.append((call_tokens, result_tokens))
        if result.is_error:
            raise RuntimeError(f"{server}.{tool}: {text}")
        return result_for_guest(result)  # the data a stub would return, so both sides compare alike


@dataclass(frozen=True)
class Task:
    """One workflow: its direct-calling script and its code-mode program (last expression = answer)."""

    name: str
    description: str
    servers: str
    """Which configuration: ``demo`` (bundled servers) or ``reference`` (filesystem + memory via npx)."""
    kinds: tuple[str, ...]
    direct: Direct
    program: str
    tools_read: tuple[str, ...]
    """The stubs a model would read (``describe``) before writing the program."""


# -- demo-server tasks ------------------------------------------------------------------------


async def _restock_direct(call: Recorder) -> Any:
    hits = (await call("notes", "search_notes", query="restock", tags=["restock"]))["hits"]
    skus: set[str] = set()
    for hit in hits:
        skus |= set((await call("notes", "get_note", note_id=hit["id"]))["meta"]["related_skus"])
    report = await call("inventory", "check_stock", skus=sorted(skus))
    return sorted(level["sku"] for level in report["levels"] if level["low"])


RESTOCK_PROGRAM = """\
from stubs import inventory, notes
hits = notes.search_notes(query="restock", tags=["restock"])["hits"]
skus = sorted({s for h in hits for s in notes.get_note(note_id=h["id"])["meta"]["related_skus"]})
sorted(level["sku"] for level in inventory.check_stock(skus=skus)["levels"] if level["low"])
"""


async def _prices_direct(call: Recorder) -> Any:
    rows = await call("inventory", "list_products", page_size=5000)
    by_category: dict[str, list[int]] = {}
    for row in rows:
        by_category.setdefault(row["category"], []).append(row["price_cents"])
    return {c: round(sum(v) / len(v)) for c, v in sorted(by_category.items())}


PRICES_PROGRAM = """\
from stubs import inventory
rows = inventory.list_products(page_size=5000)
by_category = {}
for row in rows:
    by_category.setdefault(row["category"], []).append(row["price_cents"])
{c: round(sum(v) / len(v)) for c, v in sorted(by_category.items())}
"""


async def _loop_direct(call: Recorder) -> Any:
    rows = await call("inventory", "list_products", category="garden", page_size=5000)
    empty = [r["sku"] for r in rows if r["stock"] == 0][:40]
    confirmations = [await call("inventory", "restock", sku=sku, quantity=10, reason="benchmark") for sku in empty]
    return len(empty), sum(1 for c in confirmations if "stock is now" in str(c))


LOOP_PROGRAM = """\
from stubs import inventory
rows = inventory.list_products(category="garden", page_size=5000)
empty = [r["sku"] for r in rows if r["stock"] == 0][:40]
done = [inventory.restock(sku=sku, quantity=10, reason="benchmark") for sku in empty]
(len(empty), sum(1 for c in done if "stock is now" in str(c)))
"""


async def _order_direct(call: Recorder) -> Any:
    hits = (await call("notes", "search_notes", query="VIP customer express"))["hits"]
    note = await call("notes", "get_note", note_id=hits[0]["id"])
    email = note["body"].split("(", 1)[1].split(")", 1)[0]
    products = await call("inventory", "list_products", category="kitchen", in_stock_only=True, page_size=3)
    order = await call(
        "inventory",
        "create_order",
        customer={"name": "Acme GmbH", "email": email,
                  "address": {"street": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"}},
        items=[{"sku": p["sku"], "quantity": 1} for p in products],
        shipping="express",
    )  # fmt: skip
    return order["status"], len(order["lines"]), order["customer_email"]


ORDER_PROGRAM = """\
from stubs import inventory, notes
hit = notes.search_notes(query="VIP customer express")["hits"][0]
email = notes.get_note(note_id=hit["id"])["body"].split("(", 1)[1].split(")", 1)[0]
products = inventory.list_products(category="kitchen", in_stock_only=True, page_size=3)
order = inventory.create_order(
    customer={"name": "Acme GmbH", "email": email,
              "address": {"street": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"}},
    items=[{"sku": p["sku"], "quantity": 1} for p in products],
    shipping="express",
)
(order["status"], len(order["lines"]), order["customer_email"])
"""


async def _small_direct(call: Recorder) -> Any:
    return len(await call("notes", "list_tags"))


SMALL_PROGRAM = """\
from stubs import notes
len(notes.list_tags())
"""

# -- reference-server tasks (filesystem + memory) ---------------------------------------------


async def _files_memory_direct(call: Recorder) -> Any:
    docs = await call("fs", "list_allowed_directories")
    root = _first_dir(docs)
    listing = await call("fs", "list_directory", path=root)
    totals: dict[str, int] = {}
    for name in _files(listing):
        data = json.loads(_file_text(await call("fs", "read_text_file", path=f"{root}/{name}")))
        totals[data["city"]] = totals.get(data["city"], 0) + data["amount"]
    await call(
        "memory",
        "create_entities",
        entities=[
            {"name": c, "entityType": "city", "observations": [f"invoiced {t}"]} for c, t in sorted(totals.items())
        ],
    )
    found = await call("memory", "search_nodes", query="invoiced")
    return sorted((e["name"], e["observations"][0]) for e in found["entities"])


FILES_MEMORY_PROGRAM = """\
import json
from stubs import fs, memory

def text_of(result):
    return result["content"] if isinstance(result, dict) else result

root = text_of(fs.list_allowed_directories()).splitlines()[-1].strip()
names = [l.split("] ", 1)[1] for l in text_of(fs.list_directory(path=root)).splitlines() if l.startswith("[FILE]")]
totals = {}
for name in names:
    data = json.loads(text_of(fs.read_text_file(path=f"{root}/{name}")))
    totals[data["city"]] = totals.get(data["city"], 0) + data["amount"]
memory.create_entities(entities=[
    {"name": c, "entityType": "city", "observations": [f"invoiced {t}"]} for c, t in sorted(totals.items())
])
sorted((e["name"], e["observations"][0]) for e in memory.search_nodes(query="invoiced")["entities"])
"""


def _content(result: Any) -> str:
    return str(result["content"]) if isinstance(result, dict) and "content" in result else str(result)


def _first_dir(result: Any) -> str:
    return _content(result).splitlines()[-1].strip()


def _files(result: Any) -> list[str]:
    return [ln.split("] ", 1)[1] for ln in _content(result).splitlines() if ln.startswith("[FILE]")]


def _file_text(result: Any) -> str:
    return _content(result)


TASKS: tuple[Task, ...] = (
    Task("restock-report", "Notes tagged restock → their SKUs → which are low on stock.", "demo",
         ("multi-step", "cross-server"), _restock_direct, RESTOCK_PROGRAM,
         ("notes.search_notes", "notes.get_note", "inventory.check_stock")),
    Task("average-prices", "Average price per category over the whole 3,000-product catalog.", "demo",
         ("large-intermediate",), _prices_direct, PRICES_PROGRAM, ("inventory.list_products",)),
    Task("restock-loop", "Restock every out-of-stock garden product (up to 40 calls).", "demo",
         ("loop",), _loop_direct, LOOP_PROGRAM, ("inventory.list_products", "inventory.restock")),
    Task("vip-order", "Find the VIP customer in the notes and place an express order.", "demo",
         ("multi-step", "cross-server"), _order_direct, ORDER_PROGRAM,
         ("notes.search_notes", "notes.get_note", "inventory.list_products", "inventory.create_order")),
    Task("count-tags", "How many tags are in use? (one call: code mode gains little here)", "demo",
         ("small",), _small_direct, SMALL_PROGRAM, ("notes.list_tags",)),
    Task("invoices-to-memory", "Sum invoice files per city (filesystem) and store them in the memory graph.",
         "reference", ("multi-step", "cross-server"), _files_memory_direct, FILES_MEMORY_PROGRAM,
         ("fs.list_allowed_directories", "fs.list_directory", "fs.read_text_file", "memory.create_entities",
          "memory.search_nodes")),
)  # fmt: skip
