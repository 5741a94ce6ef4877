"""Discovery helpers available in every sandbox session: what servers and tools exist, and how to call them.

They read the compiler's ``_index.json`` (stdlib only, runs inside the sandbox)::

    list_servers()                 # [{'server': 'notes', 'module': 'notes', 'tools': 4, 'summary': ...}]
    search_tools("stock levels")   # ranked over names, descriptions and argument names
    describe("inventory.check_stock")  # the signature and docstring, as source text
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

STUBS_ROOT = os.environ.get("CODEMODE_STUBS_DIR", "/stubs")
"""What the host mounts: a stubs tree, or a directory of generations of one (``g000001/`` ...)."""
STUBS_DIR = STUBS_ROOT
"""The tree in use: the root, or the generation the host named for the current execution."""

SKILLS_ROOT = "/skills"
"""The promoted skills (the restricted child and the host's own copy of this module point elsewhere; empty:
no skills)."""

_WORD = re.compile(r"[a-z0-9]+")
_cache: dict[str, Any] = {}


def use_dir(path: str) -> None:
    """Read the stubs (and their index) from ``path`` from now on."""
    global STUBS_DIR
    STUBS_DIR = path
    _cache.clear()


def _stamp(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _index() -> dict[str, Any]:
    """The stubs index, with the promoted skills as one more "server" (``skills``) when there are any."""
    path = os.path.join(STUBS_DIR, "_index.json")
    skills_path = os.path.join(SKILLS_ROOT, "_index.json") if SKILLS_ROOT else ""
    stamp = (_stamp(path), _stamp(skills_path) if skills_path else None)
    if stamp[0] is None:
        return {"servers": []}
    if _cache.get("stamp") != stamp:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        skills = _skills_server(skills_path) if stamp[1] is not None else None
        if skills is not None:
            data["servers"] = [*data.get("servers", []), skills]
        _cache["data"] = data
        _cache["stamp"] = stamp
        _cache.pop("docs", None)
    found: dict[str, Any] = _cache["data"]
    return found


def _skills_server(path: str) -> dict[str, Any] | None:
    """The promoted skills (the store's ``_index.json``) as a server entry marked ``skill``."""
    try:
        with open(path, encoding="utf-8") as fh:
            entries = json.load(fh).get("skills", [])
    except (OSError, ValueError):
        return None
    if not entries:
        return None
    tools = []
    for e in entries:
        description = e.get("description") or ""
        summary = description.strip().split("\n")[0]
        if e.get("broken"):
            summary = f"[BROKEN: {e['broken']}] {summary}"
        tools.append({
            "name": e["name"], "python_name": e["name"], "signature": e.get("signature", e["name"] + "(...)"),
            "summary": summary, "description": description, "args": [], "skill": True, "broken": e.get("broken"),
        })  # fmt: skip
    return {
        "name": "skills", "module": "skills", "tool_count": len(tools), "skill": True, "tools": tools,
        "summary": "Saved, reviewed functions: `from skills import NAME`, then call NAME(...).",
    }  # fmt: skip


def list_servers() -> list[dict[str, Any]]:
    """Connected servers: name, Python module to import, tool count and a one-line summary; ``omitted`` lists
    the server's tools that have no stub and why (e.g. tools that can only be called as tasks)."""
    return [
        {
            "server": s["name"], "module": s["module"], "tools": s["tool_count"], "summary": s.get("summary", ""),
            **({"omitted": [{"tool": o["name"], "why": o["reason"]} for o in s["omitted"]]}
               if s.get("omitted") else {}),
        }
        for s in _index().get("servers", [])
    ]  # fmt: skip


def list_tools(server: str) -> list[dict[str, str]]:
    """Every tool of one server (by server name or module name): its Python name and summary."""
    for s in _index().get("servers", []):
        if server in (s["name"], s["module"]):
            return [{"tool": f"{s['module']}.{t['python_name']}", "summary": t["summary"]} for t in s["tools"]]
    raise LookupError(f"no server {server!r}; see list_servers()")


def _tokens(text: str) -> list[str]:
    words = _WORD.findall(re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text).lower())
    return [w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words]


def _docs() -> list[tuple[dict[str, Any], dict[str, Any], dict[str, float]]]:
    docs = _cache.get("docs")
    if docs is None:
        docs = []
        for s in _index().get("servers", []):
            for t in s["tools"]:
                weights: dict[str, float] = {}
                fields = (
                    (f"{t['python_name']} {t['name']}", 3.0),
                    (s["module"], 1.0),
                    (t.get("description") or t.get("summary", ""), 1.0),
                    (" ".join(a["name"] + " " + a.get("description", "") for a in t.get("args", [])), 0.7),
                )
                for text, weight in fields:
                    for tok in _tokens(text):
                        weights[tok] = weights.get(tok, 0.0) + weight
                docs.append((s, t, weights))
            for o in s.get("omitted") or []:
                # No stub, but a search for it says why instead of finding nothing.
                weights = {tok: 3.0 for tok in _tokens(o["name"])}
                docs.append((s, {"python_name": o["name"], "omitted": o["reason"]}, weights))
        _cache["docs"] = docs
    result: list[tuple[dict[str, Any], dict[str, Any], dict[str, float]]] = docs
    return result


def search_tools(query: str, limit: int = 10) -> list[dict[str, Any]]:
    """Tools ranked by relevance to ``query`` (names weigh most, then descriptions and argument names).

    Each hit: ``{'tool': 'server.tool', 'signature': ..., 'summary': ..., 'score': ...}``.
    """
    terms = _tokens(query)
    docs = _docs()
    if not terms or not docs:
        return []
    df = {term: sum(1 for _, _, w in docs if term in w) for term in set(terms)}
    scored = []
    for s, t, weights in docs:
        score = 0.0
        for term in terms:
            tf = weights.get(term, 0.0)
            if tf:
                idf = math.log(1 + (len(docs) - df[term] + 0.5) / (df[term] + 0.5))
                score += idf * tf / (tf + 1.2)
        if score > 0:
            scored.append((score, f"{s['module']}.{t['python_name']}", t))
    scored.sort(key=lambda x: (-x[0], x[1]))
    return [
        {"tool": name, "omitted": t["omitted"], "score": round(score, 3)} if t.get("omitted") else {
            "tool": name, "signature": t["signature"], "summary": t["summary"], "score": round(score, 3),
            **({"kind": "skill", "broken": t.get("broken")} if t.get("skill") else {}),
        }
        for score, name, t in scored[: max(0, limit)]
    ]  # fmt: skip


def describe(tool: str) -> str:
    """The stub source of ``'server.tool'`` (signature, types and docstring), as the model should call it."""
    module, _, name = tool.partition(".")
    for s in _index().get("servers", []):
        if module in (s["name"], s["module"]):
            for t in s["tools"]:
                if name in (t["python_name"], t["name"]) and t.get("skill"):
                    return _describe_skill(t)
                if name in (t["python_name"], t["name"]):
                    path = os.path.join(STUBS_DIR, s["module"], t["python_name"] + ".py")
                    try:
                        with open(path, encoding="utf-8") as fh:
                            source = fh.read()
                    except OSError:
                        return f"def {t['signature']}:\n    {t.get('description', '')!r}"
                    body = source.split("from codemode_runtime import call as _call", 1)[-1].strip()
                    same_name = t["python_name"] == t["name"] and s["module"] == s["name"]
                    return f"# from stubs import {s['module']}\n{compact(body, keep_origin=not same_name)}"
            for o in s.get("omitted") or []:
                if name == o["name"]:
                    raise LookupError(f"{module}.{name}: {o['reason']}")
            raise LookupError(f"no tool {name!r} on server {module!r}; see list_tools({module!r})")
    raise LookupError(f"no server {module!r}; see list_servers()")


def _describe_skill(tool: dict[str, Any]) -> str:
    name = tool["python_name"]
    try:
        with open(os.path.join(SKILLS_ROOT, name + ".py"), encoding="utf-8") as fh:
            lines = fh.read().splitlines(True)
    except OSError:
        lines = [f"def {tool['signature']}: ...\n"]
    body = "".join(line for line in lines if not line.startswith("# ")).strip()
    mark = f"# BROKEN: {tool['broken']}\n" if tool.get("broken") else ""
    return f"# skill: from skills import {name}\n{mark}{body}"


def compact(source: str, *, keep_origin: bool = True) -> str:
    """A stub's source as the model should read it, in as few tokens as stay exact: no call body, no
    ``Args`` line that says nothing (``x: -``), a field's docstring as a comment on its line, one blank line
    between definitions, and the ``Calls MCP tool`` line only when the names differ from the MCP ones."""
    lines = source.splitlines()
    defs = [i for i, line in enumerate(lines) if line.startswith("def ")]
    head, function = (lines[: defs[-1]], lines[defs[-1] :]) if defs else (lines, [])
    out: list[str] = []
    i = 0
    while i < len(head):
        line = head[i]
        if line.strip() == '"""' and out and out[-1].startswith("    "):
            # A field's docstring ('    """' / text / '    """' under the field): a comment on its line.
            end = i + 1
            while end < len(head) and head[end].strip() != '"""':
                end += 1
            text = " ".join(part.strip() for part in head[i + 1 : end] if part.strip())
            if text:
                out[-1] += f"  # {text}"
            i = end + 1
            continue
        if line.strip() or (out and out[-1].strip()):
            out.append(line)
        i += 1
    quotes = 0
    for line in function:
        if re.match(r"^\s+\w+: -$", line) or (not keep_origin and line.strip().startswith("Calls MCP tool ")):
            continue
        if not line.strip() and out and not out[-1].strip():
            continue
        out.append(line)
        quotes += line.count('"""')
        if quotes >= 2:
            break  # the end of the docstring: the call body follows
    text = "\n".join(out)
    text = re.sub(r"\n\s*Args:\n(?=\s*\n)", "\n", text)
    return re.sub(r"\n\s*\n(\s*\"\"\")$", r"\n\1", text)


__all__ = ["compact", "describe", "list_servers", "list_tools", "search_tools"]
