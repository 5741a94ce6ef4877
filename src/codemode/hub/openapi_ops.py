"""An OpenAPI 3.0/3.1 document → one :class:`ToolSpec` per operation, plus what it takes to call it. Pure.

Each operation becomes a tool named after its ``operationId`` in snake_case (else its method and path). Its
input schema is an object of the path, query and header parameters by name, plus ``body`` for a JSON
request body; its output schema is the JSON schema of its first 2xx response when that is an object. Schemas
under ``#/components/schemas`` stay references, moved to the tool's own ``$defs`` (only what it reaches), so
the stub compiler handles ``$ref``/``allOf``/``oneOf`` as it does for MCP schemas. Only local ``#/``
references are followed; any other is replaced by an unconstrained schema. GET and HEAD are read-only,
DELETE destructive, PUT idempotent: policy reads these like MCP annotations.

The document is not trusted: a path key that does not start with ``/`` (``"@evil.example/x"`` appended to
the base URL moves the request, credentials and all, to another host) skips its operations, and a header
parameter that is not a valid header name or that frames the message or the connection (:data:`FRAMING_HEADERS`:
``Host`` reaches another virtual host, ``Transfer-Encoding`` or ``Content-Length`` let a body smuggle a second
request through a proxy) is dropped; each with a warning.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from codemode.compiler.limits import dicts
from codemode.compiler.naming import identifier, unique
from codemode.hub.models import ToolSpec

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
_SCHEMA_REF = "#/components/schemas/"
_MAX_REF_HOPS = 32
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
"""An HTTP header name (RFC 9110 ``token``); any other fails every call in the HTTP client."""
FRAMING_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer", "keep-alive", "expect"}
)
"""Header parameters a document may not declare (nor any ``Proxy-*``): the HTTP client owns them."""


class SpecError(ValueError):
    """The document is not an OpenAPI 3 document codemode can use; the message says where."""


@dataclass(frozen=True)
class Param:
    name: str
    location: str
    """``path``, ``query`` or ``header``."""


@dataclass(frozen=True)
class Operation:
    """What calling one tool takes: the method, the path template, where each argument goes."""

    method: str
    path: str
    params: dict[str, Param] = field(default_factory=dict)
    """Argument name → the parameter it fills."""
    has_body: bool = False


def snake(name: str) -> str:
    """``listPets`` → ``list_pets``; ``GET /pets/{id}`` → ``get_pets_id``."""
    return identifier(_CAMEL.sub("_", name).lower(), fallback="op")


def operations(
    document: dict[str, Any], server: str, warnings: list[str] | None = None
) -> list[tuple[ToolSpec, Operation]]:
    """Every operation of ``document`` as a tool of ``server``, in document order.

    What is refused (see the module doc) is left out, with one line per operation appended to ``warnings``.

    Raises:
        SpecError: not an OpenAPI 3.x document (a Swagger 2 one, or no ``paths``).
    """
    version = document.get("openapi")
    if not isinstance(version, str) or not version.startswith("3."):
        raise SpecError(f"not an OpenAPI 3.x document (openapi: {version!r}); Swagger 2 is not supported")
    paths = document.get("paths")
    if not isinstance(paths, dict):
        raise SpecError("the document has no 'paths' object")
    components = document.get("components", {})
    schemas = components.get("schemas", {}) if isinstance(components, dict) else {}
    schemas = schemas if isinstance(schemas, dict) else {}
    warnings = warnings if warnings is not None else []
    taken: set[str] = set()
    out: list[tuple[ToolSpec, Operation]] = []
    for path, item in paths.items():
        item = _deref(document, item)
        if not isinstance(path, str) or not isinstance(item, dict):
            continue
        shared = item.get("parameters", [])
        for method in METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            if not path.startswith("/"):
                warnings.append(f"{method.upper()} {path[:200]!r}: skipped, a path must start with '/'")
                continue
            op_id = op.get("operationId")
            base = snake(op_id) if isinstance(op_id, str) and op_id else snake(f"{method}_{path}")
            name = unique(base, taken)
            out.append(_tool(document, schemas, server, name, method, path, op, shared, warnings))
    return out


def _tool(
    document: dict[str, Any], schemas: dict[str, Any], server: str, name: str, method: str, path: str,
    op: dict[str, Any], shared: Any, warnings: list[str],
) -> tuple[ToolSpec, Operation]:  # fmt: skip
    properties: dict[str, Any] = {}
    required: list[str] = []
    params: dict[str, Param] = {}
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for raw in [*(shared if isinstance(shared, list) else []), *op.get("parameters", [])]:
        param = _deref(document, raw)
        if not isinstance(param, dict) or not isinstance(param.get("name"), str):
            continue
        if param.get("in") == "header" and (refused := _refused_header(param["name"])):
            header: str = param["name"]
            warnings.append(f"{method.upper()} {path[:200]!r}: header parameter {header[:200]!r} {refused}")
            continue
        if param.get("in") in ("path", "query", "header"):
            merged[(param["name"], param["in"])] = param  # an operation's own parameter overrides the path's
    taken: set[str] = {"body"}
    for (wire, location), param in merged.items():
        arg = unique(snake(wire.replace("-", "_")), taken)
        schema = dict(_schema(param.get("schema", {})))
        if param.get("description") and "description" not in schema:
            schema["description"] = str(param["description"])
        properties[arg] = schema
        if param.get("required") or location == "path":
            required.append(arg)
        params[arg] = Param(wire, location)
    has_body = False
    body = _deref(document, op.get("requestBody"))
    if isinstance(body, dict):
        content = body.get("content", {})
        media = _json_media(content)
        if media is not None:
            has_body = True
            schema = dict(_schema(media.get("schema", {})))
            if body.get("description") and "description" not in schema:
                schema["description"] = str(body["description"])
            properties["body"] = schema
            if body.get("required"):
                required.append("body")
    input_schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        input_schema["required"] = required
    output = _output(document, op)
    defs = _reachable(schemas, [input_schema, output or {}])
    if defs:
        input_schema["$defs"] = defs
        if output is not None:
            output = {**output, "$defs": defs}
    annotations: dict[str, Any] = {"readOnlyHint": method in ("get", "head")}
    if method == "delete":
        annotations["destructiveHint"] = True
    if method in ("put", "delete"):
        annotations["idempotentHint"] = True
    summary = str(op.get("summary") or "")
    description = str(op.get("description") or "")
    text = "\n\n".join(t for t in (summary, description) if t) + f"\n\n{method.upper()} {path}"
    spec = ToolSpec(
        server=server, name=name, description=text.strip(), input_schema=input_schema, output_schema=output,
        title=summary or None, annotations=annotations,
    )  # fmt: skip
    return spec, Operation(method, path, params, has_body)


def _refused_header(name: str) -> str | None:
    """Why a document may not declare a header parameter ``name`` (None when it may)."""
    if not _TOKEN.fullmatch(name):
        return "dropped: not a valid header name"
    if name.lower() in FRAMING_HEADERS or name.lower().startswith("proxy-"):
        return "dropped: it frames the message or the connection, only the HTTP client sets it"
    return None


def _output(document: dict[str, Any], op: dict[str, Any]) -> dict[str, Any] | None:
    responses = op.get("responses")
    if not isinstance(responses, dict):
        return None
    for code in sorted(str(c) for c in responses):
        if code.startswith("2"):
            response = _deref(document, responses.get(code, responses.get(int(code) if code.isdigit() else code)))
            media = _json_media(response.get("content", {})) if isinstance(response, dict) else None
            if media is None:
                return None
            schema = _schema(media.get("schema", {}))
            # An MCP output schema describes structured content, which is an object.
            return schema if schema.get("type") == "object" or "properties" in schema else None
    return None


def _json_media(content: Any) -> dict[str, Any] | None:
    if not isinstance(content, dict):
        return None
    for media_type, media in content.items():
        if isinstance(media_type, str) and ("json" in media_type or media_type == "*/*") and isinstance(media, dict):
            return media
    return None


def _deref(document: dict[str, Any], node: Any) -> Any:
    """Follow ``$ref`` chains to a non-reference object (local ``#/`` pointers only; None if unresolvable)."""
    for _ in range(_MAX_REF_HOPS):
        if not isinstance(node, dict) or "$ref" not in node:
            return node
        node = _pointer(document, node["$ref"])
    return None


def _pointer(document: dict[str, Any], ref: Any) -> Any:
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return None
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _schema(schema: Any) -> dict[str, Any]:
    """A copy with component references moved to ``#/$defs/`` and anything non-local made unconstrained."""
    if not isinstance(schema, dict):
        return {}
    result = copy.deepcopy(schema)
    for node in dicts(result):
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref.startswith(_SCHEMA_REF):
                node["$ref"] = "#/$defs/" + ref[len(_SCHEMA_REF) :]
            else:
                node.pop("$ref")  # a file, URL or other component: never fetched
                node.setdefault("description", "(an external reference, not checked)")
        if node.pop("nullable", False) is True and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]  # OpenAPI 3.0 → JSON Schema
    return result


def _reachable(schemas: dict[str, Any], roots: list[dict[str, Any]]) -> dict[str, Any]:
    """The component schemas ``roots`` reach through ``#/$defs/`` references, converted like any schema."""
    found: dict[str, Any] = {}
    stack: list[Any] = list(roots)
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                name = ref[len("#/$defs/") :].replace("~1", "/").replace("~0", "~")
                if name not in found and name in schemas:
                    found[name] = _schema(schemas[name])
                    stack.append(found[name])
            stack.extend(v for k, v in node.items() if k != "$defs")
        elif isinstance(node, list):
            stack.extend(node)
    return found
