# version: 1
# created: "2026-12-01T18:24:52Z"
# session: "examples"
# description: "The urgent notes (optionally with one tag), each with its id, title, tags and first body line."
# calls: ["stubs.notes.get_note", "stubs.notes.search_notes"]
# example: "urgent_notes(limit=3)"
# example_result: {"ok": true, "output": "[{\"id\": 3, \"title\": \"Low stock: electronics\", \"tags\": [\"restock\", \"electronics\"], \"summary\": \"Chargers and cables are low; check stock weekly and restock anything at or below 5.\"}, {\"id\": 5, \"title\": \"Toy safety recall\", \"tags\": [\"recall\", \"toys\"], \"summary\": \"Yo-yos from batch 7 are recalled; do not restock until cleared.\"}]", "when": "2026-12-01T18:24:52Z"}

from stubs import notes


def urgent_notes(tag: str | None = None, limit: int = 10) -> list[dict[str, object]]:
    """The urgent notes (optionally with one tag), each with its id, title, tags and first body line."""
    found = notes.search_notes(query="", tags=[tag] if tag else None, priority="urgent", limit=limit)
    out = []
    for hit in found["hits"]:
        note = notes.get_note(note_id=hit["id"])
        first = (note["body"].strip().splitlines() or [""])[0]
        out.append({"id": hit["id"], "title": hit["title"], "tags": hit["tags"], "summary": first})
    return out
