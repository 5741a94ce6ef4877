"""The skills loop on the host: save (from the sandbox), test, promote, reject, roll back, re-check.

Every action is written to the audit log. The engine owns one :class:`Skills`; the CLI makes one over an
engine too (``test`` runs examples in the sandbox). Saving checks everything before it writes: a refused
skill changes no file.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio

from codemode.errors import SkillError
from codemode.files import write_atomic
from codemode.skills.gitstore import GitSkillStore
from codemode.skills.store import Skill, SkillState, SkillStore, Version
from codemode.skills.validate import Report, check

ExampleRunner = Callable[[str], Awaitable[tuple[bool, str]]]
"""Runs a program in a fresh throwaway session: (ok, what it printed or the error)."""
Auditor = Callable[[str, str, bool, str], None]
"""(action, skill name, ok, detail) → one audit entry."""

logger = logging.getLogger(__name__)

RESULT_CHARS = 400
"""How much of an example's output is kept in the header."""
MAX_SOURCE_BYTES = 64 * 1024
"""The largest skill source taken (UTF-8): a skill is a function, and its source is parsed on the host's
event loop (``ast.parse`` of 2 MB of a list literal took 6 s and a GB there)."""


class Skills:
    """One store plus what checking needs: the current stubs index and the read-only tools."""

    def __init__(
        self,
        store: SkillStore,
        *,
        index: Callable[[], Mapping[str, Any]],
        read_only: Callable[[], set[tuple[str, str]]],
        run_example: ExampleRunner | None,
        audit: Auditor,
        auto_promote: bool = False,
    ) -> None:
        self.store = store
        self.index = index
        self.read_only = read_only
        self.run_example = run_example
        self.audit = audit
        self.auto_promote = auto_promote
        self.unimportable: dict[str, str] = {}
        """Promoted skills of a shared store that fail this node's checks → why (not in ``live/``)."""
        if isinstance(store, GitSkillStore):  # files other nodes wrote are checked before they are importable
            store.listeners.append(self.refresh_live)

    # -- checking ----------------------------------------------------------------------------------

    def _context(self, exclude: str, session: str | None) -> tuple[dict[str, str], dict[str, bool], set[str]]:
        """The sources of the other skills a program of ``session`` can import, and whether each may write.

        What that session imports: its own latest draft of a skill, else the promoted version. Another
        session's draft is not there: importable by nobody else, its name and its signature stay its own (a
        check against it would answer with them). Without a session (a review, a re-check of promoted
        skills), only promoted versions. Third: the names of the skills left out for that reason.
        """
        sources: dict[str, str] = {}
        writes: dict[str, bool] = {}
        hidden: set[str] = set()
        for skill in self.store.skills():
            if skill.name == exclude or skill.state is SkillState.RETIRED:
                continue
            own = [v for v, by in skill.drafts.items() if session is not None and by == session]
            number = max(own) if own else skill.promoted
            if number is None:
                hidden.add(skill.name)
                continue
            try:
                version = self.store.version(skill.name, number)
            except SkillError:
                continue
            sources[skill.name] = version.source
            calls = version.meta.get("calls") or []
            writes[skill.name] = any(
                not (c.startswith("stubs.") and tuple(c.split(".")[1:3]) in self.read_only()) for c in calls
            )
        return sources, writes, hidden

    def check(
        self,
        name: str,
        source: str,
        *,
        description: str | None = None,
        example: str | None = None,
        session: str | None = None,
    ) -> Report:
        """The static checks of ``source`` as skill ``name`` against the current stubs (nothing written), and
        against the skills ``session`` can import (the promoted ones without a session)."""
        sources, writes, hidden = self._context(name, session)
        return check(
            name, source, index=self.index(), skills=sources, read_only=self.read_only(),
            skill_writes=writes, description=description, example=example, hidden_skills=hidden,
        )  # fmt: skip

    async def _example(self, name: str, source: str, example: str) -> tuple[bool, str]:
        if self.run_example is None:
            return False, "no sandbox to run the example in"
        ok, text = await self.run_example(f"{source}\n\n{example.strip()}\n")
        return ok, text[:RESULT_CHARS]

    # -- saving ------------------------------------------------------------------------------------

    async def save(
        self, session: str, name: str, source: str, *, description: str | None = None, example: str | None = None
    ) -> dict[str, Any]:
        """Check and store a new version of ``name`` as a draft of ``session``.

        Returns ``{"saved": True, "name", "state", "version", "tested"}`` or ``{"saved": False, "reasons"}``.
        """
        size = len(source.encode("utf-8", "surrogatepass"))
        if size > MAX_SOURCE_BYTES:  # before any parse
            reason = f"the source is {size:,} bytes; a skill's is at most {MAX_SOURCE_BYTES:,}"
            self.audit("save", name, False, reason)  # refused like any other save that fails its checks
            return {"saved": False, "reasons": [reason]}
        report = self.check(name, source, description=description, example=example, session=session)
        report.reasons += self._conflict(name, session)
        result: dict[str, Any] | None = None
        tested = "untested" if report.writes or not example else "passed"
        if report.ok and example and not report.writes:
            ok, text = await self._example(name, source, example)
            result = {"ok": ok, "output": text, "when": _now()}
            if not ok:
                report.reasons.append(f"the example {example.strip()} failed: {text}")
        if not report.ok:
            self.audit("save", name, False, "; ".join(report.reasons))
            return {"saved": False, "reasons": report.reasons}
        meta = {
            "created": _now(), "description": report.description, "calls": report.calls,
            "example": example, "example_result": result,
        }  # fmt: skip

        def write() -> tuple[Version | None, list[str]]:
            with self.store.locked(change=f"save {name} (draft of session {session})", author=_node_author(session)):
                conflict = self._conflict(name, session)  # another save may have landed while the example ran
                if conflict:
                    return None, conflict
                version = self.store.add_version(name, source, meta, session=session)
                skill = self.store.skill(name)
                if result is not None:
                    skill.tests[version.version] = result
                    self.store.write_state(skill)
                if self.auto_promote:
                    self._promote(skill, version.version)
                return version, []

        # In a worker thread: the lock may be held by another save, and a shared store commits and pushes.
        version, conflict = await anyio.to_thread.run_sync(write)
        if version is None:
            self.audit("save", name, False, "; ".join(conflict))
            return {"saved": False, "reasons": conflict}
        state = self.store.skill(name).state.value if self.auto_promote else SkillState.DRAFT.value
        self.audit("save", name, True, f"v{version.version} from {session} ({tested})")
        return {"saved": True, "name": name, "state": state, "version": version.version, "tested": tested}

    def _conflict(self, name: str, session: str) -> list[str]:
        try:
            skill = self.store.skill(name)
        except SkillError as exc:
            if str(exc).startswith("no skill named"):
                return []
            return [f"the store's files for {name!r} are damaged: {exc}"]
        others = {s for v, s in skill.drafts.items() if s != session}
        if skill.state is SkillState.DRAFT and others:
            return [f"{name!r} is a draft saved by another session, awaiting review: pick another name"]
        return []

    # -- review ------------------------------------------------------------------------------------

    async def test(self, name: str, version: int | None = None) -> dict[str, Any]:
        """Type-check a version (the promoted one, else the latest) against the current stubs and run its
        example; the result is kept with the skill."""
        skill = self.store.skill(name)
        number = version or skill.promoted or skill.latest
        saved = self.store.version(name, number)
        report = self.check(name, saved.source, description=saved.description or None, example=saved.example)
        ok, detail = report.ok, "; ".join(report.reasons)
        if report.ok and saved.example:
            ok, detail = await self._example(name, saved.source, saved.example)
        elif report.ok:
            detail = "static checks passed; no example to run"
        with self.store.locked(change=f"test {name} v{number}", author=_node_author("test")):
            skill = self.store.skill(name)
            skill.tests[number] = {"ok": ok, "output": detail, "when": _now()}
            if number == skill.promoted:
                skill.broken = None if report.ok else detail
            self.store.write_state(skill)
        self.audit("test", name, ok, f"v{number}: {detail}")
        return {"name": name, "version": number, "ok": ok, "detail": detail}

    def promote(self, name: str, version: int | None = None, *, reviewer: str | None = None) -> Skill:
        """Make a version (default: the latest) the one every session imports; refuses one that fails to check.
        ``reviewer`` (``Name <email>``) is the author of the promotion's commit in a shared git store."""
        label = version or self.store.skill(name).latest  # the commit's message (the lock decides the rest)
        with self.store.locked(change=f"promote {name} v{label}", author=reviewer):
            skill = self.store.skill(name)
            number = version or skill.latest
            saved = self.store.version(name, number)
            report = self.check(name, saved.source, description=saved.description or None)
            if not report.ok:
                self.audit("promote", name, False, "; ".join(report.reasons))
                raise SkillError(f"{name} v{number} does not check: " + "; ".join(report.reasons))
            self._promote(skill, number)
        self.audit("promote", name, True, f"v{number}")
        return skill

    def _promote(self, skill: Skill, number: int) -> None:
        skill.state = SkillState.PROMOTED
        skill.promoted = number
        skill.broken = None
        skill.drafts.pop(number, None)
        self.store.write_state(skill)
        self.store.publish(skill)
        self.write_index()

    def reject(self, name: str, *, reviewer: str | None = None) -> Skill:
        """Drop the pending draft; with none, retire the skill (no session imports it any more)."""
        with self.store.locked(change=f"reject {name}", author=reviewer):
            skill = self.store.skill(name)
            if skill.drafts:
                dropped = max(skill.drafts)
                skill.drafts.pop(dropped)
                if skill.promoted is None:
                    skill.state = SkillState.RETIRED
                detail = f"draft v{dropped} rejected"
            else:
                skill.state, skill.promoted, detail = SkillState.RETIRED, None, "retired"
            self.store.write_state(skill)
            self.store.publish(skill)
            self.write_index()
        self.audit("reject", name, True, detail)
        return skill

    def rollback(self, name: str, to: int | None = None, *, reviewer: str | None = None) -> Skill:
        """Promote an earlier version again (default: the one before the promoted one)."""
        skill = self.store.skill(name)
        current = skill.promoted or skill.latest
        earlier = [v for v in skill.versions if v < current]
        target = to if to is not None else (earlier[-1] if earlier else None)
        if target is None or target not in skill.versions:
            self.audit("rollback", name, False, f"no version {target} to roll back to")
            raise SkillError(f"{name}: no earlier version to roll back to (versions: {skill.versions})")
        self.promote(name, target, reviewer=reviewer)
        self.audit("rollback", name, True, f"v{current} -> v{target}")
        return self.store.skill(name)

    def recheck(self) -> list[str]:
        """Check every promoted skill against the current stubs; mark the broken ones (with the reason)
        and clear marks that no longer hold. Returns the names whose mark changed."""
        changed: list[str] = []
        change = "re-check promoted skills against this node's stubs"
        with self.store.locked(change=change, author=_node_author("recheck")):
            for skill in self.store.skills():
                if skill.promoted is None:
                    continue
                saved = self.store.version(skill.name, skill.promoted)
                report = self.check(skill.name, saved.source, description=saved.description or None)
                broken = None if report.ok else "; ".join(report.reasons)
                if broken != skill.broken:
                    skill.broken = broken
                    self.store.write_state(skill)
                    changed.append(skill.name)
            if isinstance(self.store, GitSkillStore):
                self.refresh_live()
            else:
                self.write_index()
        return changed

    def refresh_live(self) -> None:
        """Rebuild ``live/`` from the store's files, for files this node did not write (a shared git store):
        a promoted version becomes importable only if it passes the checks a promotion makes here; every
        other file in ``live/`` goes. Callers hold the store's lock."""
        wanted: dict[str, str] = {}
        self.unimportable = {}
        for skill in self.store.skills():
            if skill.state is not SkillState.PROMOTED or skill.promoted is None:
                continue
            saved = self.store.version(skill.name, skill.promoted)
            report = self.check(skill.name, saved.source, description=saved.description or None)
            if not report.ok:
                problem = f"{skill.name} v{skill.promoted} is not importable here: " + "; ".join(report.reasons)
                logger.error("shared skill store: %s", problem)
                self.unimportable[skill.name] = problem
                continue
            wanted[skill.name] = saved.text()
        live = self.store.live_dir
        live.mkdir(parents=True, exist_ok=True)
        changed = False
        for path in live.iterdir():
            if path.suffix == ".py" and path.stem not in wanted:
                path.unlink()
                changed = True
        for name, text in wanted.items():
            path = live / f"{name}.py"
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                write_atomic(path, text)
                changed = True
        if changed:
            os.utime(live)  # the revision: sessions forget the skills they imported
        self.write_index(only=set(wanted))

    def write_index(self, *, only: set[str] | None = None) -> None:
        """``live/_index.json``: the promoted skills as discovery shows them (name, signature, description,
        broken). Written with every change of the promoted set; the guest reads it, never the store."""
        entries = []
        for skill in self.store.skills():
            if skill.state is not SkillState.PROMOTED or skill.promoted is None:
                continue
            if only is not None and skill.name not in only:
                continue
            saved = self.store.version(skill.name, skill.promoted)
            report = self.check(skill.name, saved.source, description=saved.description or None)
            entries.append({
                "name": skill.name, "version": skill.promoted, "signature": report.signature,
                "description": saved.description or report.description, "calls": report.calls,
                "broken": skill.broken,
            })  # fmt: skip
        write_atomic(self.store.live_dir / "_index.json", json.dumps({"skills": entries}, indent=1) + "\n")

    def promoted_count(self) -> int:
        """How many skills every session can import (the ``execute_python`` description says it)."""
        return sum(1 for s in self.store.skills() if s.state is SkillState.PROMOTED)

    def listing(self) -> list[dict[str, Any]]:
        """``codemode skills list``: every skill with its state, version, description and last test."""
        rows = []
        for skill in self.store.skills():
            shown = skill.promoted or skill.latest
            try:
                version: Version | None = self.store.version(skill.name, shown)
            except SkillError:
                version = None
            test = skill.tests.get(shown)
            rows.append({
                "name": skill.name, "state": "broken" if skill.broken else skill.state.value,
                "version": shown, "versions": skill.versions, "pending_drafts": sorted(skill.drafts),
                "description": version.description if version else "", "broken": skill.broken,
                "last_test": test,
            })  # fmt: skip
        return rows


def _node_author(what: str) -> str:
    """The author of a commit no person made (a session's draft, a test, a re-check)."""
    import socket

    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in what)[:40]
    return f"codemode {safe} <codemode@{socket.gethostname()}>"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
