"""An OpenAPI service as an upstream: the document's operations are its tools, called over HTTP with httpx.

::

    upstream = OpenApiUpstream("pets", OpenApiServer(spec="http://127.0.0.1:8000/openapi.json"))

The document is read at start (a URL or a file, at most :data:`MAX_SPEC_BYTES`) and compiled into tools by
:mod:`codemode.hub.openapi_ops`. Requests go to ``baseUrl``; without it, to the document's first server, but
only when that is on the document's own origin (scheme, host, port), since the configured headers go with
every request and a document must not send them elsewhere (to a cloud metadata address, say). A document
read from a file was chosen by the operator: its absolute server URL is used as it is.

A call fills the path template (each value percent-encoded, ``.`` and ``..`` too, so it cannot leave its
segment), the query and the declared headers, sends ``body`` as JSON, adds the configured headers last (the
credentials: a program cannot override them, in any letter case), refuses a URL that is not on the base
URL's origin, and reads at most ``max_response_bytes`` of the answer. A 2xx answer is the result (JSON when
it parses, else text); any other status is a tool error with the status and an excerpt of the body.
"""

from __future__ import annotations

import importlib
import json
import logging
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import h11
import httpx2 as httpx
import mcp_types as types

from codemode.calls.results import ResultTooLarge
from codemode.config import OpenApiServer
from codemode.errors import ToolCallError, ToolCallTimeout, UpstreamError
from codemode.hub.models import ToolSpec
from codemode.hub.openapi_ops import Operation, SpecError, operations
from codemode.hub.upstream import UpstreamState

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

MAX_SPEC_BYTES = 64 * 1024 * 1024
"""The largest OpenAPI document read (the biggest public ones are ~10 MB of JSON)."""
ERROR_EXCERPT = 2000
"""Characters of a non-2xx body quoted in the tool error."""

logger = logging.getLogger(__name__)


class _TooLarge(ValueError):
    """A body over its byte limit (kept apart from the other ``ValueError``s a request can raise)."""


class OpenApiUpstream:
    """One OpenAPI service; see the module docstring. Implements :class:`~codemode.hub.upstream.Upstream`."""

    transport = "openapi"

    def __init__(self, name: str, config: OpenApiServer, *, client: httpx.AsyncClient | None = None) -> None:
        self.name = name
        self.config = config
        self.state = UpstreamState.DISABLED if config.disabled else UpstreamState.STARTING
        self.error: str | None = None
        self.tools: list[ToolSpec] = []
        self.server_version: str | None = None
        self.instructions: str | None = None
        self.on_change: Callable[[str], None] | None = None
        self._ops: dict[str, Operation] = {}
        self._base_url = ""
        self._client = client
        self._own_client = client is None

    @property
    def disabled(self) -> bool:
        return self.config.disabled

    def attach(self, tg: TaskGroup) -> None:
        """No background task: requests are made in the caller's task."""

    async def start(self) -> None:
        """Read the document and list its operations. Never raises: a failure lands in ``state``."""
        if self.config.disabled:
            return
        try:
            with anyio.fail_after(self.config.start_timeout_s):
                document, source_url = await self._read_spec()
            refused: list[str] = []
            pairs = await anyio.to_thread.run_sync(lambda: operations(document, self.name, refused))
            self._base_url = _base_url(self.config.base_url, document, source_url)
        except (OSError, TimeoutError, ValueError, httpx.HTTPError, httpx.InvalidURL, h11.ProtocolError) as exc:
            self.state = UpstreamState.FAILED
            self.error = f"cannot load the OpenAPI document {self.config.spec}: {type(exc).__name__}: {exc}"
            return
        for warning in refused:
            logger.warning("OpenAPI service %s: %s", self.name, warning)
        info = document.get("info")
        info = info if isinstance(info, dict) else {}
        self.server_version = str(info.get("version")) if info.get("version") is not None else None
        self.instructions = str(info.get("description") or info.get("title") or "") or None
        self.tools = [spec for spec, _ in pairs]
        self._ops = {spec.name: op for spec, op in pairs}
        self.state = UpstreamState.READY
        self.error = None

    async def _read_spec(self) -> tuple[dict[str, Any], str | None]:
        spec = self.config.spec
        if spec.startswith(("http://", "https://")):
            client = self._http()
            async with client.stream("GET", spec, headers=self.config.headers) as response:
                response.raise_for_status()
                raw = await _read_bounded(response, MAX_SPEC_BYTES, "the OpenAPI document")
            return _parse(raw, spec), spec
        path = anyio.Path(spec)
        if (await path.stat()).st_size > MAX_SPEC_BYTES:
            raise ValueError(f"{spec} is larger than {MAX_SPEC_BYTES:,} bytes")
        raw = await path.read_bytes()
        return _parse(raw, spec), None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.config.effective_call_timeout_s, follow_redirects=False)
        return self._client

    async def call_tool(
        self, tool: str, args: dict[str, Any], *, timeout_s: float | None = None
    ) -> types.CallToolResult:
        """Call one operation. A non-2xx answer is an ``is_error`` result, returned, not raised."""
        if self.state is not UpstreamState.READY:
            raise UpstreamError(self.name, self.error or f"the service is {self.state.value}")
        op = self._ops.get(tool)
        if op is None:
            raise ToolCallError(self.name, tool, "no such operation")
        try:
            request = self._request(op, args)
        except ValueError as exc:
            return _error(str(exc))
        try:
            going, service = _origin(request["url"]), _origin(self._base_url)
        except httpx.InvalidURL as exc:
            raise ToolCallError(self.name, tool, f"invalid request URL for {op.path!r}: {exc}") from None
        if going != service:
            # Defence in depth: the document's paths are checked at load, but no request may take the
            # configured credentials to a host other than the service's. (Origins only: a URL may hold a password.)
            raise ToolCallError(
                self.name,
                tool,
                f"refused: {op.path!r} leads to {_show(going)}, not the service's origin {_show(service)}",
            )
        limit = timeout_s if timeout_s is not None else self.config.effective_call_timeout_s
        try:
            with anyio.fail_after(limit):
                async with self._http().stream(**request) as response:
                    raw = await _read_bounded(response, self.config.max_response_bytes, "the response")
                    status = response.status_code
                    ctype = response.headers.get("content-type", "")
        except TimeoutError:
            raise ToolCallTimeout(self.name, tool, f"timed out after {limit:g} s") from None
        except _TooLarge as exc:
            raise ResultTooLarge(str(exc), self.name, tool) from None
        except (httpx.HTTPError, httpx.InvalidURL, h11.ProtocolError, ValueError) as exc:
            # h11 raises its own error for a body that breaks the declared framing (a configured
            # Content-Length), httpx a ValueError for a body it cannot encode: both are this call's failure.
            raise ToolCallError(self.name, tool, f"{type(exc).__name__}: {exc}") from exc
        text = raw.decode("utf-8", "replace")
        if not 200 <= status < 300:
            excerpt = text[:ERROR_EXCERPT] + ("…" if len(text) > ERROR_EXCERPT else "")
            return _error(f"HTTP {status} from {op.method.upper()} {op.path}: {excerpt}")
        structured: dict[str, Any] | None = None
        if "json" in ctype and text.strip():
            try:
                value = json.loads(text)
            except ValueError:
                value = None
            structured = value if isinstance(value, dict) else None
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structured_content=structured)

    def _request(self, op: Operation, args: dict[str, Any]) -> dict[str, Any]:
        path = op.path
        query: dict[str, str] = {}
        headers: dict[str, str] = {}
        for arg, value in args.items():
            param = op.params.get(arg)
            if param is None:
                if arg == "body" and op.has_body:
                    continue
                raise ValueError(f"unknown argument {arg!r}")
            text = value if isinstance(value, str) else json.dumps(value)
            if param.location == "path":
                # Quoted whole (no safe characters): "../admin" stays one segment, "..%2Fadmin"; a value of
                # dots only is quoted too, since the HTTP client resolves a "." or ".." segment away.
                quoted = urllib.parse.quote(text, safe="")
                if quoted and quoted.strip(".") == "":
                    quoted = quoted.replace(".", "%2E")
                path = path.replace("{" + param.name + "}", quoted)
            elif param.location == "query":
                query[param.name] = text
            else:
                if any(c in text for c in "\r\n\x00"):
                    raise ValueError(f"header {param.name!r} holds a line break")
                if not text.isascii():
                    raise ValueError(f"header {param.name!r} holds a character outside ASCII")
                headers[param.name] = text
        if "{" in path:
            raise ValueError(f"missing path parameters in {op.path}")
        # The configured credentials win over anything a program sent: HTTP header names ignore case, so a
        # program's "authorization" beside the configured "Authorization" would be sent too, and read first.
        configured = {name.lower() for name in self.config.headers}
        headers = {name: text for name, text in headers.items() if name.lower() not in configured}
        headers.update(self.config.headers)
        request: dict[str, Any] = {
            "method": op.method.upper(), "url": self._base_url.rstrip("/") + path, "params": query, "headers": headers,
        }  # fmt: skip
        if op.has_body and "body" in args:
            request["json"] = args["body"]
        return request

    async def restart(self) -> None:
        """Read the document again."""
        before = list(self.tools)
        self.state = UpstreamState.STARTING
        await self.start()
        if self.tools != before and self.on_change is not None:
            self.on_change(self.name)

    async def aclose(self) -> None:
        """Close the HTTP client. Idempotent."""
        self.state = UpstreamState.CLOSED
        client, self._client = self._client, None
        if client is not None and self._own_client:
            await client.aclose()


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)


async def _read_bounded(response: httpx.Response, limit: int, what: str) -> bytes:
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge(f"{what} is {int(declared):,} bytes; the limit is {limit:,}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise _TooLarge(f"{what} is over the {limit:,}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(raw: bytes, source: str) -> dict[str, Any]:
    text = raw.decode("utf-8")
    try:
        document = json.loads(text)
    except ValueError:
        try:
            yaml: Any = importlib.import_module("yaml")  # PyYAML comes with the stub code generator
        except ImportError:  # pragma: no cover
            raise SpecError(f"{source} is not JSON") from None
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SpecError(f"{source} is neither JSON nor YAML: {exc}") from None
    if not isinstance(document, dict):
        raise SpecError(f"{source} is not an OpenAPI document (not an object)")
    return document


def _base_url(configured: str | None, document: dict[str, Any], source_url: str | None) -> str:
    """Where requests go: ``configured``, else the document's first server, which must be on the origin the
    document was read from (``source_url``; None for a file, whose absolute server URL the operator chose)."""
    if configured:
        return configured
    servers = document.get("servers")
    url = servers[0].get("url") if isinstance(servers, list) and servers and isinstance(servers[0], dict) else None
    if source_url is None:
        if isinstance(url, str) and url.startswith(("http://", "https://")):
            return url
        raise SpecError("no baseUrl: set 'baseUrl' in the config (the document names no absolute server URL)")
    resolved = urllib.parse.urljoin(source_url, url if isinstance(url, str) and url else "/")
    try:
        same = _origin(resolved) == _origin(source_url)
    except httpx.InvalidURL:
        same = False
    if not same:
        raise SpecError(
            f"the document's server {resolved[:200]!r} is not on the origin it was read from "
            f"({source_url[:200]!r}), so the configured headers are not sent there: set 'baseUrl' in the config "
            "to the service's URL"
        )
    return resolved


def _show(origin: tuple[str, str, int | None]) -> str:
    scheme, host, port = origin
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")


def _origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port of ``url`` (port None for the scheme's default), as the HTTP client reads them."""
    parsed = httpx.URL(url)
    return parsed.scheme, parsed.host, parsed.port
