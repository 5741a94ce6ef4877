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
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import anyio

from codemode.config import SkillsSettings
from codemode.errors import SkillError
from codemode.files import write_atomic
from codemode.identity import LOCAL_IDENTITY
from codemode.session_names import local_session
from codemode.skills.gitstore import GitSkillStore
from codemode.skills.store import Skill, SkillState, SkillStore, Version
from codemode.skills.validate import Report, check


class ExampleRunner(Protocol):
    """Runs a program in a fresh throwaway session: (ok, what it printed or the error)."""

    async def __call__(self, code: str, *, identity: str | None = None) -> tuple[bool, str]:
        """Run ``code`` as ``identity`` (None: as the program saving the skill, else as the local user)."""
        ...


Auditor = Callable[[str, str, bool, str], None]
"""(action, skill name, ok, detail) → one audit entry."""

logger = logging.getLogger(__name__)

RESULT_CHARS = 400
"""How much of an example's output is kept in the header."""
MAX_SOURCE_BYTES = 64 * 1024
"""The largest skill source taken (UTF-8): a skill is a function, and its source is parsed on the host's
event loop (``ast.parse`` of 2 MB of a list literal took 6 s and a GB there)."""
MAX_DESCRIPTION_CHARS = 2_000
"""The longest description taken (given, or the docstring): it goes into every version's header, the
discovery index and, exposed, a tool's description."""
MAX_EXAMPLE_CHARS = 1_000
"""The longest example taken: a call expression, kept in every version's header."""


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
        limits: SkillsSettings | None = None,
    ) -> None:
        self.store = store
        self.limits = limits or SkillsSettings()
        """The store's caps (skills, versions of one, drafts of one session): one program saved thousands."""
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

    async def _example(self, name: str, source: str, example: str, identity: str | None = None) -> tuple[bool, str]:
        if self.run_example is None:
            return False, "no sandbox to run the example in"
        ok, text = await self.run_example(f"{source}\n\n{example.strip()}\n", identity=identity)
        return ok, text[:RESULT_CHARS]

    # -- saving ------------------------------------------------------------------------------------

    async def save(
        self,
        session: str,
        name: str,
        source: str,
        *,
        description: str | None = None,
        example: str | None = None,
        identity: str = LOCAL_IDENTITY,
    ) -> dict[str, Any]:
        """Check and store a new version of ``name`` as a draft of ``session``, saved by ``identity`` (recorded:
        ``codemode skills test`` runs its example as them).

        Returns ``{"saved": True, "name", "state", "version", "tested"}`` or ``{"saved": False, "reasons"}``.
        """
        reason = _oversized(source, description, example)
        if reason is None:
            over = await anyio.to_thread.run_sync(self._over_limits, name, session)  # reads every skill's state
            reason = "; ".join(over) if over else None
        if reason is not None:  # before any parse, and before an example runs
            self.audit("save", name, False, reason)  # refused like any other save that fails its checks
            return {"saved": False, "reasons": [reason]}
        report = self.check(name, source, description=description, example=example, session=session)
        report.reasons += self._conflict(name, session)
        if len(report.description) > MAX_DESCRIPTION_CHARS:
            report.reasons.append(
                f"the description (the docstring) is {len(report.description):,} characters; a skill's is at most "
                f"{MAX_DESCRIPTION_CHARS:,}"
            )
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
            "example": example, "example_result": result, "identity": identity,
        }  # fmt: skip

        def write() -> tuple[Version | None, list[str]]:
            with self.store.locked(change=f"save {name} (draft of session {session})", author=_node_author(session)):
                # Another save may have landed while the example ran (the caps are checked again under the lock).
                conflict = self._conflict(name, session) or self._over_limits(name, session)
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

    def _over_limits(self, name: str, session: str) -> list[str]:
        """Why one more version of ``name`` from ``session`` would take the store past its caps (empty: it would
        not)."""
        limits = self.limits
        skills = self.store.skills()
        mine = next((s for s in skills if s.name == name), None)
        reasons: list[str] = []
        if mine is None and (count := len(self.store.names())) >= limits.max_skills:
            reasons.append(
                f"the skill store holds {count:,} skills, its limit (skills.max_skills is {limits.max_skills:,}): "
                "save a new version of an existing skill, or ask an operator to make room"
            )
        if mine is not None and len(mine.versions) >= limits.max_versions:
            reasons.append(
                f"{name!r} has {len(mine.versions):,} versions, its limit (skills.max_versions is "
                f"{limits.max_versions:,}): ask an operator to make room"
            )
        drafts = sum(1 for skill in skills for by in skill.drafts.values() if by == session)
        if drafts >= limits.max_drafts_per_session:
            reasons.append(
                f"this session has {drafts:,} drafts awaiting review, its limit (skills.max_drafts_per_session is "
                f"{limits.max_drafts_per_session:,}): wait for a review of them"
            )
        return reasons

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

    async def test(self, name: str, version: int | None = None, *, as_local: bool = False) -> dict[str, Any]:
        """Type-check a version (the promoted one, else the latest) against the current stubs and run its
        example as the identity that saved it (its policy rules apply); the result is kept with the skill.

        A version a remote client saved before identities were recorded is not run (``ok`` False, nothing kept)
        unless ``as_local``: its example would run with the local user's rules, not its saver's.
        """
        skill = self.store.skill(name)
        number = version or skill.promoted or skill.latest
        saved = self.store.version(name, number)
        identity = saved.identity
        if identity is None and not local_session(str(saved.meta.get("session"))) and not as_local:
            detail = (
                f"v{number} was saved by a remote client whose identity was not recorded: its example is not run "
                "as the local user (read the skill, then `codemode skills test --as-local`, or save it again from its "
                "client)"
            )
            self.audit("test", name, False, detail)
            return {"name": name, "version": number, "ok": False, "detail": detail}
        report = self.check(name, saved.source, description=saved.description or None, example=saved.example)
        ok, detail = report.ok, "; ".join(report.reasons)
        if report.ok and saved.example:
            ok, detail = await self._example(name, saved.source, saved.example, identity or LOCAL_IDENTITY)
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


def _oversized(source: str, description: object, example: object) -> str | None:
    """Why ``source``, ``description`` or ``example`` is too large to be taken (None: none is)."""
    size = len(source.encode("utf-8", "surrogatepass"))
    if size > MAX_SOURCE_BYTES:
        return f"the source is {size:,} bytes; a skill's is at most {MAX_SOURCE_BYTES:,}"
    for what, text, limit in (
        ("description", description, MAX_DESCRIPTION_CHARS),
        ("example", example, MAX_EXAMPLE_CHARS),
    ):
        if isinstance(text, str) and len(text) > limit:
            return f"the {what} is {len(text):,} characters; a skill's is at most {limit:,}"
    return None


def _node_author(what: str) -> str:
    """The author of a commit no person made (a session's draft, a test, a re-check)."""
    import socket

    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in what)[:40]
    return f"codemode {safe} <codemode@{socket.gethostname()}>"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
