# version: 1
# created: "2026-12-01T18:24:52Z"
# session: "examples"
# description: "Products with at most ``threshold`` units in stock (optionally one category), lowest stock first.\n\nEach row: sku, name, category, stock, warehouse. One tool call for the whole catalog."
# calls: ["stubs.inventory.list_products"]
# example: "low_stock_report(threshold=2, category='garden')"
# example_result: {"ok": true, "output": "[{\"sku\": \"GAR-00025\", \"name\": \"deluxe hose\", \"category\": \"garden\", \"stock\": 0, \"warehouse\": \"lyon\"}, {\"sku\": \"GAR-00049\", \"name\": \"smart sprinkler\", \"category\": \"garden\", \"stock\": 0, \"warehouse\": \"lyon\"}, {\"sku\": \"GAR-00073\", \"name\": \"classic shovel\", \"category\": \"garden\", \"stock\": 0, \"warehouse\": \"lyon\"}, {\"sku\": \"GAR-00079\", \"name\": \"eco planter\", \"category\": \"garden\", \"stock\": 0, \"warehouse\": \"", "when": "2026-12-01T18:24:52Z"}

from stubs import inventory


def low_stock_report(threshold: int = 5, category: str | None = None) -> list[dict[str, object]]:
    """Products with at most ``threshold`` units in stock (optionally one category), lowest stock first.

    Each row: sku, name, category, stock, warehouse. One tool call for the whole catalog.
    """
    rows = inventory.list_products(category=category, page_size=5000)
    low = [
        {k: p[k] for k in ("sku", "name", "category", "stock", "warehouse")}
        for p in rows
        if p["stock"] <= threshold
    ]
    return sorted(low, key=lambda r: (r["stock"], r["sku"]))
