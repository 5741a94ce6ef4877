"""``codemode skills list|show|diff|test|promote|reject|rollback``: review from the command line.

Only ``test`` starts the servers and a sandbox (it runs examples); the others read the store and the last
compiled stubs. Every action is written to the audit log.
"""

from __future__ import annotations

import argparse
import difflib
import json
from typing import Any

import anyio

from codemode import paths
from codemode.audit import ExecutionEntry, audit_log
from codemode.calls.results import printable
from codemode.catalog.store import GenerationStore
from codemode.compiler import load_index
from codemode.config import Config
from codemode.errors import SkillError
from codemode.skills.gitstore import GitSkillStore, default_author, store_for
from codemode.skills.service import Skills


def add_parser(sub: Any, add: Any) -> None:
    """Register ``skills`` and its actions on the CLI's subparsers (``add`` adds the common flags)."""
    p: argparse.ArgumentParser = add("skills", "review saved skills: list, show, diff, test, promote, reject, rollback")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)  # --config also after the action
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="mcpServers JSON file")
    review = argparse.ArgumentParser(add_help=False)
    review.add_argument(
        "--reviewer", metavar="'NAME <EMAIL>'",
        help="who reviews (a shared git store's commit author); default: git's user.name/email",
    )  # fmt: skip
    a = actions.add_parser("list", parents=[common], help="every skill: state, version, description, last test")
    a.add_argument("--json", action="store_true", help="machine-readable output")
    a = actions.add_parser("show", parents=[common], help="a version's file (header and module)")
    a.add_argument("name")
    a.add_argument("--version", type=int, metavar="V", help="default: the promoted one, else the latest")
    a = actions.add_parser("diff", parents=[common], help="the difference between two versions (default: the last two)")
    a.add_argument("name")
    a.add_argument("versions", nargs="*", type=int, metavar="V")
    a = actions.add_parser("test", parents=[common], help="type-check against the current stubs and run the example")
    a.add_argument("name", nargs="?", help="default: every skill")
    a.add_argument("--executor", choices=["wasm", "restricted"], help="sandbox (default: wasm)")
    a.add_argument(
        "--as-local",
        action="store_true",
        help="run the example of a version a remote client saved before identities were recorded as the local "
        "user (read it first: the local user's policy rules apply to its calls)",
    )
    a = actions.add_parser("promote", parents=[common, review], help="make a version importable in every session")
    a.add_argument("name")
    a.add_argument("--version", type=int, metavar="V", help="default: the latest")
    a = actions.add_parser(
        "reject", parents=[common, review], help="drop the pending draft (with none: retire the skill)"
    )
    a.add_argument("name")
    a = actions.add_parser("rollback", parents=[common, review], help="promote an earlier version again")
    a.add_argument("name")
    a.add_argument("--to", type=int, metavar="V", help="default: the version before the promoted one")


def offline(config: Config) -> Skills:
    """A :class:`Skills` over the config's store, checking against the last compiled stubs (no servers)."""
    generation = GenerationStore(paths.stubs_dir_for(config)).current()
    index: dict[str, Any] = load_index(generation.path) if generation is not None else {"servers": []}
    log = audit_log(config)

    def audit(action: str, name: str, ok: bool, detail: str) -> None:
        log.append(
            ExecutionEntry(
                session="cli", code=f"skills {action} {name}", executor="skills", ok=ok, duration_s=0.0,
                output_chars=0, error=None if ok else detail, error_kind=None if ok else "refused",
                output=detail, config=config.source,
            )
        )  # fmt: skip
        log.close()  # a command is one action: a shared audit gets its record before the process ends

    store = store_for(config, paths.skills_dir_for(config))
    if isinstance(store, GitSkillStore):
        store.ensure()  # the shared store as it is now
    return Skills(store, index=lambda: index, read_only=set, run_example=None, audit=audit)


def run(args: argparse.Namespace, config: Config) -> int:
    """Carry out ``args.action``; returns the exit code (1: a test failed)."""
    if args.action == "test":
        return _test(args, config)
    skills = offline(config)
    if args.action == "list":
        rows = skills.listing()
        if args.json:
            print(json.dumps({"skills": rows, "problems": skills.store.problems}, indent=2))
        else:
            _print_list(rows, skills.store.problems)
        return 0
    name = args.name
    if args.action == "show":
        skill = skills.store.skill(name)
        # A skill's text is a model's writing: escapes in it must not rewrite the reviewer's terminal.
        print(printable(skills.store.version(name, args.version or skill.promoted or skill.latest).text()), end="")
        skills.audit("show", name, True, "")
    elif args.action == "diff":
        _diff(skills, name, args.versions)
    elif args.action == "promote":
        skill = skills.promote(name, args.version, reviewer=args.reviewer or default_author())
        print(f"{name}: v{skill.promoted} promoted: every session imports it from its next execution")
    elif args.action == "reject":
        skill = skills.reject(name, reviewer=args.reviewer or default_author())
        print(f"{name}: {skill.state.value}" + (f" (v{skill.promoted} stays promoted)" if skill.promoted else ""))
    elif args.action == "rollback":
        skill = skills.rollback(name, args.to, reviewer=args.reviewer or default_author())
        print(f"{name}: v{skill.promoted} promoted again")
    return 0


def _print_list(rows: list[dict[str, Any]], problems: list[str]) -> None:
    if not rows:
        print("no skills saved yet: call save_skill(fn) in a program")
    for row in rows:
        test = row["last_test"]
        tested = "never" if not test else ("passed" if test.get("ok") else "FAILED") + f" {test.get('when', '')}"
        drafts = ", ".join(f"v{v}" for v in row["pending_drafts"])
        pending = f" (pending drafts: {drafts})" if drafts else ""
        print(printable(f"{row['name']}  {row['state']}  v{row['version']}{pending}  test: {tested}"))
        if row["description"]:
            print(printable(f"    {row['description'].splitlines()[0]}"))
        if row["broken"]:
            print(printable(f"    broken: {row['broken']}"))
    for problem in problems:
        print(printable(f"damaged: {problem}"))


def _diff(skills: Skills, name: str, versions: list[int]) -> None:
    skill = skills.store.skill(name)
    if len(versions) not in (0, 2):
        raise SkillError("diff takes two versions, or none for the last two")
    if not versions:
        if len(skill.versions) < 2:
            raise SkillError(f"{name} has one version only")
        versions = skill.versions[-2:]
    old, new = (skills.store.version(name, v) for v in versions)
    print(printable("".join(difflib.unified_diff(
        old.text().splitlines(True), new.text().splitlines(True), f"{name} v{old.version}", f"{name} v{new.version}"
    ))), end="")  # fmt: skip
    skills.audit("diff", name, True, f"v{old.version} v{new.version}")


def _test(args: argparse.Namespace, config: Config) -> int:
    from codemode.engine import Engine

    async def go() -> list[dict[str, Any]]:
        async with Engine(config, executor=args.executor) as engine:
            names = [args.name] if args.name else [s.name for s in engine.skill_store.skills()]
            return [await engine.skills.test(n, as_local=args.as_local) for n in names]

    results = anyio.run(go)
    for result in results:
        mark = "ok" if result["ok"] else "FAILED"
        print(printable(f"{result['name']} v{result['version']}: {mark}: {result['detail'][:500]}"))
    return 0 if all(r["ok"] for r in results) else 1
