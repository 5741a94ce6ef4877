"""OpenAPI compile speed: a 500-operation document → tools → stubs, cold, then a no-op recompile
(targets: ≤ 5 s cold, ≤ 100 ms no-op). Mount speed is ``benchmarks/bench_mount.py``.

The document is synthetic but shaped like real ones: 100 resources with five CRUD operations each, component
schemas reached through ``$ref``, ``allOf`` inheritance, a ``oneOf`` union and OpenAPI 3.0 ``nullable``.

    python -m benchmarks.bench_openapi [--operations 500] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from codemode.compiler import compile_to_dir
from codemode.hub.openapi_ops import operations


def synthetic_spec(n_operations: int = 500) -> dict[str, Any]:
    """An OpenAPI 3.0 document with ``n_operations`` operations (five per resource)."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {
        "Base": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"},
                 "created": {"type": "string", "format": "date-time"}}},
        "Error": {"type": "object", "properties": {"code": {"type": "integer"}, "message": {"type": "string"}}},
    }  # fmt: skip
    for r in range((n_operations + 4) // 5):
        name = f"Resource{r}"
        schemas[f"New{name}"] = {
            "type": "object",
            "required": ["title"],
            "properties": {
                "title": {"type": "string", "description": f"title of {name}"},
                "count": {"type": "integer", "nullable": True},
                "kind": {"type": "string", "enum": ["a", "b", "c"]},
                "owner": {"oneOf": [{"type": "string"}, {"$ref": "#/components/schemas/Base"}]},
                "tags": {"type": "array", "items": {"type": "string"}},
            },
        }
        schemas[name] = {"allOf": [{"$ref": "#/components/schemas/Base"}, {"$ref": f"#/components/schemas/New{name}"}]}
        one = {"$ref": f"#/components/schemas/{name}"}
        ok = {"200": {"description": "ok", "content": {"application/json": {"schema": one}}}}
        listed = {
            "type": "object",
            "properties": {"items": {"type": "array", "items": one}, "next": {"type": "string"}},
        }
        body = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/New{name}"}}},
        }
        item_id = [{"name": "itemId", "in": "path", "required": True, "schema": {"type": "string"}}]
        paths[f"/r{r}/items"] = {
            "get": {"operationId": f"list{name}", "summary": f"List {name}", "parameters": [
                {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                {"name": "cursor", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": listed}}}}},
            "post": {"operationId": f"create{name}", "requestBody": body, "responses": ok},
        }  # fmt: skip
        paths[f"/r{r}/items/{{itemId}}"] = {
            "parameters": item_id,
            "get": {"operationId": f"get{name}", "responses": ok},
            "put": {"operationId": f"update{name}", "requestBody": body, "responses": ok},
            "delete": {"operationId": f"delete{name}", "responses": {"204": {"description": "gone"}}},
        }
    spec = {"openapi": "3.0.3", "info": {"title": "synthetic", "version": "1"}, "paths": paths,
            "components": {"schemas": schemas}}  # fmt: skip
    count = sum(1 for item in paths.values() for k in item if k != "parameters")
    assert count >= n_operations
    return spec


def measure_compile(n_operations: int, runs: int) -> dict[str, float]:
    """Median seconds: document → tools → stubs into a fresh directory (cold), then again into it (no-op)."""
    document = json.loads(json.dumps(synthetic_spec(n_operations)))
    cold: list[float] = []
    noop: list[float] = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            tools = [spec for spec, _ in operations(document, "api")]
            compile_to_dir({"api": tools}, Path(tmp) / "stubs")
            cold.append(time.perf_counter() - started)
            started = time.perf_counter()
            tools = [spec for spec, _ in operations(document, "api")]
            report = compile_to_dir({"api": tools}, Path(tmp) / "stubs")
            noop.append(time.perf_counter() - started)
            assert not report.written, "a recompile of the same document must write nothing"
    return {"operations": len(tools), "cold_s": statistics.median(cold), "noop_s": statistics.median(noop)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--operations", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    result = measure_compile(args.operations, args.runs)
    print(
        f"openapi compile, {result['operations']} operations (median of {args.runs}): "
        f"cold {result['cold_s']:.2f} s (target <= 5 s), no-op {result['noop_s'] * 1000:.0f} ms (target <= 100 ms)"
    )


if __name__ == "__main__":
    main()
