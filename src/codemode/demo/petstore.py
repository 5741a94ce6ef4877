"""A tiny OpenAPI service for the directory's OpenAPI entry and its tests: ``python -m codemode.demo.petstore
--port 8765`` serves ``/openapi.json`` and its four operations on loopback (in memory, nothing persists).

When ``$PETSTORE_KEY`` is set, every operation needs the header ``X-Api-Key`` with that value.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

SPEC = Path(__file__).parents[1] / "directory" / "entries" / "specs" / "petstore.json"


def app(key: str | None = None) -> Starlette:
    """The service (``key``: the API key required, if any)."""
    pets: dict[int, dict[str, Any]] = {}
    spec = json.loads(SPEC.read_text(encoding="utf-8"))

    def refused(request: Request) -> Response | None:
        if key is not None and request.headers.get("x-api-key") != key:
            return JSONResponse({"error": "a valid X-Api-Key header is required"}, status_code=401)
        return None

    async def openapi(request: Request) -> Response:
        port = request.url.port or 80
        return JSONResponse({**spec, "servers": [{"url": f"http://{request.url.hostname}:{port}"}]})

    async def list_or_create(request: Request) -> Response:
        if (denied := refused(request)) is not None:
            return denied
        if request.method == "POST":
            body = await request.json()
            if not isinstance(body, dict) or not isinstance(body.get("name"), str):
                return JSONResponse({"error": "body needs a string 'name'"}, status_code=422)
            pet = {"id": len(pets) + 1, "name": body["name"], **({"tag": body["tag"]} if "tag" in body else {})}
            pets[pet["id"]] = pet
            return JSONResponse(pet, status_code=201)
        tag = request.query_params.get("tag")
        found = [p for p in pets.values() if tag is None or p.get("tag") == tag]
        limit = request.query_params.get("limit")
        return JSONResponse({"pets": found[: int(limit)] if limit and limit.isdigit() else found})

    async def one(request: Request) -> Response:
        if (denied := refused(request)) is not None:
            return denied
        raw = request.path_params["pet_id"]
        pet = pets.get(int(raw)) if raw.isdigit() else None
        if pet is None:
            return JSONResponse({"error": f"no pet {raw}"}, status_code=404)
        if request.method == "DELETE":
            del pets[pet["id"]]
            return Response(status_code=204)
        return JSONResponse(pet, headers={"x-request-id": request.headers.get("x-request-id", "")})

    return Starlette(
        routes=[
            Route("/openapi.json", openapi),
            Route("/pets", list_or_create, methods=["GET", "POST"]),
            Route("/pets/{pet_id}", one, methods=["GET", "DELETE"]),
        ]
    )


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    uvicorn.run(app(os.environ.get("PETSTORE_KEY")), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
