"""Plain data the hub hands to the rest of codemode: tool identity and tool specs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

UNAVAILABLE = "unavailable: "
"""How the summary of a server that is down begins (:meth:`Hub.summaries`); the compiler reads it too."""


@dataclass(frozen=True, order=True)
class ToolRef:
    """Identity of one upstream tool: the server's configured name and the tool's wire name.

    Never joined into one string and re-parsed: ``a`` + ``b_c`` and ``a_b`` + ``c`` must stay apart.
    """

    server: str
    tool: str

    def __str__(self) -> str:
        return f"{self.server}.{self.tool}"


@dataclass(frozen=True)
class ToolSpec:
    """What ``tools/list`` said about one tool, as plain JSON-compatible data."""

    server: str
    name: str
    description: str = ""
    input_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    output_schema: dict[str, Any] | None = None
    title: str | None = None
    annotations: dict[str, Any] | None = None
    task_support: str | None = None
    """``execution.taskSupport`` (MCP 2025-11-25): ``"forbidden"`` (or None), ``"optional"`` or ``"required"``."""

    @property
    def requires_task(self) -> bool:
        """Whether the tool can only be called task-augmented, which codemode does not do: it gets no stub."""
        return self.task_support == "required"

    @property
    def ref(self) -> ToolRef:
        return ToolRef(self.server, self.name)

    def to_json(self) -> dict[str, Any]:
        """The MCP wire shape (camelCase keys), as a direct-calling client would see it."""
        out: dict[str, Any] = {"name": self.name}
        if self.title:
            out["title"] = self.title
        if self.description:
            out["description"] = self.description
        out["inputSchema"] = self.input_schema
        if self.output_schema is not None:
            out["outputSchema"] = self.output_schema
        if self.annotations:
            out["annotations"] = self.annotations
        # ``execution`` is not forwarded: a tool that requires tasks is never offered, the others need no flag.
        return out

    @classmethod
    def from_json(cls, server: str, data: dict[str, Any]) -> ToolSpec:
        """Build from the MCP wire shape (accepts camelCase or snake_case keys)."""
        return cls(
            server=server,
            name=str(data["name"]),
            description=str(data.get("description") or ""),
            input_schema=dict(data.get("inputSchema") or data.get("input_schema") or {"type": "object"}),
            output_schema=data.get("outputSchema", data.get("output_schema")),
            title=data.get("title"),
            annotations=data.get("annotations"),
            task_support=_task_support(data.get("execution")),
        )


def _task_support(execution: Any) -> str | None:
    if not isinstance(execution, dict):
        return None
    value = execution.get("taskSupport", execution.get("task_support"))
    return value if isinstance(value, str) and len(value) <= 32 else None
