"""Demo MCP server: a shop's inventory and orders (stdio). Deterministic data, in memory."""

from __future__ import annotations

import random
from typing import Annotated, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

Category = Literal["tools", "garden", "kitchen", "electronics", "toys", "office"]
Shipping = Literal["standard", "express", "pickup"]

_CATEGORIES: tuple[Category, ...] = ("tools", "garden", "kitchen", "electronics", "toys", "office")
_WORDS = ("steel", "compact", "pro", "eco", "mini", "smart", "classic", "deluxe", "travel", "heavy-duty")
_NOUNS = {
    "tools": ("hammer", "drill", "wrench", "saw", "screwdriver"),
    "garden": ("hose", "rake", "planter", "shovel", "sprinkler"),
    "kitchen": ("kettle", "pan", "knife", "blender", "grater"),
    "electronics": ("charger", "cable", "speaker", "lamp", "adapter"),
    "toys": ("puzzle", "kite", "robot", "blocks", "yo-yo"),
    "office": ("stapler", "notebook", "chair", "desk lamp", "binder"),
}


class Product(BaseModel):
    sku: str
    name: str
    category: Category
    price_cents: int
    stock: int
    warehouse: str


def _catalog(n: int = 3000) -> dict[str, Product]:
    rng = random.Random(20261124)
    products: dict[str, Product] = {}
    for i in range(n):
        category = _CATEGORIES[i % len(_CATEGORIES)]
        name = f"{rng.choice(_WORDS)} {rng.choice(_NOUNS[category])}"
        sku = f"{category[:3].upper()}-{i:05d}"
        stock = rng.choice((0, 0, 1, 2, 3, 5, 8, 13, 21, 40, 75, 120))
        products[sku] = Product(
            sku=sku,
            name=name,
            category=category,
            price_cents=rng.randrange(199, 49_999),
            stock=stock,
            warehouse=rng.choice(("berlin", "lyon", "porto")),
        )
    return products


PRODUCTS = _catalog()


class Address(BaseModel):
    street: str
    city: str
    postal_code: str
    country: str = Field(description="ISO 3166-1 alpha-2 country code, e.g. DE")


class Customer(BaseModel):
    name: str
    email: str
    address: Address | None = Field(default=None, description="Shipping address; required unless pickup")


class LineItem(BaseModel):
    sku: str
    quantity: Annotated[int, Field(ge=1, le=1000)]


class OrderLine(BaseModel):
    sku: str
    name: str
    quantity: int
    unit_price_cents: int


class Order(BaseModel):
    order_id: str
    status: Literal["confirmed", "backordered"]
    customer_email: str
    shipping: Shipping
    lines: list[OrderLine]
    total_cents: int
    note: str | None = None


class StockLevel(BaseModel):
    sku: str
    stock: int
    warehouse: str
    low: bool = Field(description="True when stock is at or below the reorder threshold (5)")


class StockReport(BaseModel):
    levels: list[StockLevel]
    missing: list[str] = Field(description="SKUs that do not exist")


ORDERS: dict[str, Order] = {}

server = MCPServer(
    "inventory",
    instructions="Shop back office: product catalog, stock levels and orders.",
    version="1.0.0",
)


READ_ONLY = ToolAnnotations(read_only_hint=True)
"""Tools that only read: a skill calling only these has its example run when it is saved."""


@server.tool(structured_output=False, annotations=READ_ONLY)
def list_products(
    category: Category | None = None,
    in_stock_only: bool = False,
    name_contains: str | None = None,
    page: Annotated[int, Field(ge=1)] = 1,
    page_size: Annotated[int, Field(ge=1, le=5000)] = 100,
) -> list[dict[str, object]]:
    """List catalog products, optionally filtered by category, stock and name.

    Returns one JSON object per product (sku, name, category, price_cents, stock, warehouse), sorted by SKU.
    """
    rows = [
        p
        for p in PRODUCTS.values()
        if (category is None or p.category == category)
        and (not in_stock_only or p.stock > 0)
        and (name_contains is None or name_contains.lower() in p.name.lower())
    ]
    start = (page - 1) * page_size
    return [p.model_dump() for p in rows[start : start + page_size]]


@server.tool(annotations=READ_ONLY)
def check_stock(skus: list[str]) -> StockReport:
    """Check current stock for a list of SKUs. Unknown SKUs are reported in `missing`."""
    levels = [
        StockLevel(sku=s, stock=PRODUCTS[s].stock, warehouse=PRODUCTS[s].warehouse, low=PRODUCTS[s].stock <= 5)
        for s in skus
        if s in PRODUCTS
    ]
    return StockReport(levels=levels, missing=[s for s in skus if s not in PRODUCTS])


@server.tool()
def create_order(
    customer: Customer,
    items: list[LineItem],
    shipping: Shipping = "standard",
    note: str | None = None,
) -> Order:
    """Place an order for a customer. Fails if a SKU is unknown or the shipping address is missing.

    Items with too little stock are accepted and the order is marked `backordered`.
    """
    if not items:
        raise ToolError("an order needs at least one item")
    if shipping != "pickup" and customer.address is None:
        raise ToolError(f"shipping {shipping!r} needs customer.address")
    lines: list[OrderLine] = []
    backordered = False
    for item in items:
        product = PRODUCTS.get(item.sku)
        if product is None:
            raise ToolError(f"unknown sku {item.sku!r}")
        backordered |= product.stock < item.quantity
        lines.append(
            OrderLine(sku=product.sku, name=product.name, quantity=item.quantity, unit_price_cents=product.price_cents)
        )
    order = Order(
        order_id=f"ORD-{len(ORDERS) + 1:04d}",
        status="backordered" if backordered else "confirmed",
        customer_email=customer.email,
        shipping=shipping,
        lines=lines,
        total_cents=sum(line.quantity * line.unit_price_cents for line in lines),
        note=note,
    )
    ORDERS[order.order_id] = order
    return order


@server.tool(annotations=READ_ONLY)
def get_order(order_id: str) -> Order:
    """Fetch an order by id (as returned by create_order)."""
    order = ORDERS.get(order_id)
    if order is None:
        raise ToolError(f"no order {order_id!r}")
    return order


@server.tool(structured_output=False)
def restock(sku: str, quantity: Annotated[int, Field(ge=1)], reason: str | None = None) -> str:
    """Add stock for one SKU and return a one-line confirmation."""
    product = PRODUCTS.get(sku)
    if product is None:
        raise ToolError(f"unknown sku {sku!r}")
    product.stock += quantity
    return f"{sku}: stock is now {product.stock}" + (f" ({reason})" if reason else "")


def main() -> None:
    """Run the server over stdio."""
    server.run()


if __name__ == "__main__":
    main()
