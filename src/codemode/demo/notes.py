"""Demo MCP server: a team knowledge base of notes with tags (stdio). Deterministic data, in memory."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

Priority = Literal["low", "normal", "high", "urgent"]


class NoteMeta(BaseModel):
    author: str = "unknown"
    priority: Priority = "normal"
    related_skus: list[str] = Field(default_factory=list, description="Inventory SKUs this note is about")


class Note(BaseModel):
    id: int
    title: str
    body: str
    tags: list[str]
    meta: NoteMeta


class NoteSummary(BaseModel):
    id: int
    title: str
    tags: list[str]
    priority: Priority
    score: float = Field(description="Relevance score, higher is better")


class SearchResult(BaseModel):
    query: str
    total: int
    hits: list[NoteSummary]


_SEED: list[tuple[str, str, list[str], NoteMeta]] = [
    (
        "Restock before spring",
        "Garden items sell out in March. Reorder hoses and planters early.",
        ["restock", "garden"],
        NoteMeta(author="ana", priority="high", related_skus=["GAR-00001", "GAR-00007", "GAR-00013"]),
    ),
    (
        "Kitchen supplier change",
        "From next month kettles come from the Lyon warehouse.",
        ["supplier", "kitchen"],
        NoteMeta(author="ben", related_skus=["KIT-00002", "KIT-00008"]),
    ),
    (
        "Low stock: electronics",
        "Chargers and cables are low; check stock weekly and restock anything at or below 5.",
        ["restock", "electronics"],
        NoteMeta(author="ana", priority="urgent", related_skus=["ELE-00003", "ELE-00009", "ELE-00015", "ELE-00021"]),
    ),
    (
        "Customer VIP list",
        "Orders for Acme GmbH (orders@acme.example) ship express at no charge.",
        ["customers"],
        NoteMeta(author="cy", priority="normal"),
    ),
    (
        "Toy safety recall",
        "Yo-yos from batch 7 are recalled; do not restock until cleared.",
        ["recall", "toys"],
        NoteMeta(author="ben", priority="urgent", related_skus=["TOY-00004"]),
    ),
]

NOTES: dict[int, Note] = {
    i + 1: Note(id=i + 1, title=t, body=b, tags=tags, meta=m) for i, (t, b, tags, m) in enumerate(_SEED)
}

server = MCPServer(
    "notes",
    instructions="Team knowledge base: search, read and write notes with tags and priorities.",
    version="1.0.0",
)


def _score(note: Note, words: list[str]) -> float:
    text = f"{note.title} {note.body} {' '.join(note.tags)}".lower()
    return float(sum(text.count(w) for w in words)) + (0.5 if any(w in note.title.lower() for w in words) else 0)


READ_ONLY = ToolAnnotations(read_only_hint=True)
"""Tools that only read: a skill calling only these has its example run when it is saved."""


@server.tool(annotations=READ_ONLY)
def search_notes(
    query: str,
    tags: list[str] | None = None,
    priority: Priority | None = None,
    limit: Annotated[int, Field(ge=1, le=100)] = 10,
) -> SearchResult:
    """Full-text search over notes; filter by tags (all must match) and priority. Best matches first."""
    words = [w for w in query.lower().split() if w]
    hits: list[NoteSummary] = []
    for note in NOTES.values():
        if tags and not set(tags) <= set(note.tags):
            continue
        if priority is not None and note.meta.priority != priority:
            continue
        score = _score(note, words) if words else 1.0
        if score > 0:
            hits.append(
                NoteSummary(id=note.id, title=note.title, tags=note.tags, priority=note.meta.priority, score=score)
            )
    hits.sort(key=lambda h: (-h.score, h.id))
    return SearchResult(query=query, total=len(hits), hits=hits[:limit])


@server.tool(annotations=READ_ONLY)
def get_note(note_id: int) -> Note:
    """Read one note in full, including its metadata (author, priority, related SKUs)."""
    note = NOTES.get(note_id)
    if note is None:
        raise ToolError(f"no note with id {note_id}")
    return note


@server.tool()
def create_note(title: str, body: str, tags: list[str] | None = None, meta: NoteMeta | None = None) -> Note:
    """Create a note and return it with its new id."""
    if not title.strip():
        raise ToolError("title must not be empty")
    note = Note(
        id=max(NOTES, default=0) + 1, title=title, body=body, tags=sorted(set(tags or [])), meta=meta or NoteMeta()
    )
    NOTES[note.id] = note
    return note


@server.tool(structured_output=False, annotations=READ_ONLY)
def list_tags() -> dict[str, int]:
    """All tags in use, with how many notes carry each."""
    counts: dict[str, int] = {}
    for note in NOTES.values():
        for tag in note.tags:
            counts[tag] = counts.get(tag, 0) + 1
    return dict(sorted(counts.items()))


def main() -> None:
    """Run the server over stdio."""
    server.run()


if __name__ == "__main__":
    main()
