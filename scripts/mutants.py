"""Remove each host-side defence in turn (a mutant) and check that its test fails.

Each row of :data:`MUTANTS` is one textual replacement in the source and the tests that must catch it.
A mutant is applied to a throwaway copy of the repository (the working tree is never edited), the tests
run there, and the mutant is *caught* when they fail, *survived* when they pass. Before any mutant the
same tests run unmutated once: a test that fails anyway would catch everything and prove nothing.

    .venv/bin/python scripts/mutants.py                # every mutant
    .venv/bin/python scripts/mutants.py spill scratch  # the mutants whose id contains one of the words
    .venv/bin/python scripts/mutants.py --list         # the table, without running anything

Slow (each mutant runs real servers and the WASM sandbox): run it on demand, not on every commit. The table
with the reasoning behind each row is ``tests/MUTANTS.md``; the two must list the same ids.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_SKIP = shutil.ignore_patterns(".git", ".venv*", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache")


@dataclasses.dataclass(frozen=True)
class Mutant:
    id: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


G = "src/codemode/calls/gate.py"
BR = "src/codemode/bridge.py"
PR = "src/codemode/protocol.py"
BS = "src/codemode/hub/bounded_stdio.py"
MCP = "src/codemode/hub/mcp.py"
T_LANE = "tests/integration/test_hub_lane.py"
POOL = "src/codemode/executors/pool.py"
SCR = "src/codemode/executors/scratch.py"
EXE = "src/codemode/executors/wasm/executor.py"
INS = "src/codemode/executors/wasm/instance.py"
SN = "src/codemode/session_names.py"
SES = "src/codemode/sessions.py"
FR = "src/codemode/front.py"
INF = "src/codemode/compiler/inferred.py"
SHP = "src/codemode/calls/shapes.py"

T_GATE = "tests/unit/test_gate.py"
T_SECRETS = "tests/security/test_wasm_secrets.py::test_an_upstreams_stderr_stays_on_the_host"
T_SPILL = "tests/security/test_wasm_host_side.py"
T_EARLIER_DEADLINE = (
    "tests/integration/test_sandbox.py::test_an_earlier_jobs_deadline_neither_stops_nor_forgets_the_next_job"
)
T_OWN = "tests/security/test_session_ownership.py"
T_UP = "tests/security/test_bounds_upstream.py"
T_INFER = "tests/security/test_inferred_attacks.py::test_hostile_keys_and_sizes_stay_data_and_small"

MUTANTS: tuple[Mutant, ...] = (
    Mutant("gate-stderr-stripped", G,
           """return head + " (details are in the codemode host's server log)" if marker else message""",
           "return message", (T_SECRETS,)),
    Mutant("gate-known-tool", G, "        if call.spec is not None:\n            return await call_next(call)",
           "        if True:\n            return await call_next(call)", (T_GATE,)),
    Mutant("gate-call-count-quota", G, "if call.index < 0 or call.index >= limits.max_tool_calls:",
           "if call.index < 0:", (T_GATE,)),
    Mutant("gate-request-size", G, "if call.args_bytes > limits.max_request_bytes:", "if False:", (T_GATE,)),
    Mutant("gate-result-size", G, "        if size > limit:\n            # The tool ran",
           "        if False:\n            # The tool ran", (T_GATE,)),
    Mutant("bridge-call-shape", BR,
           "if not isinstance(server, str) or not isinstance(tool, str) or not isinstance(args, dict):",
           "if False:", ("tests/security/test_wasm_bridge.py",)),
    Mutant("bridge-cancelled", BR,
           "        if ctx.cancelled:\n            return encode_frame(error_reply(\"cancelled\", "
           "\"the execution was cancelled\"))\n        if size is None:",
           "        if False:\n            return encode_frame(error_reply(\"cancelled\", "
           "\"the execution was cancelled\"))\n        if size is None:",
           (f"{T_GATE}::test_a_cancelled_execution_sends_no_more_calls",)),
    Mutant("instance-call-outside-job", INS,
           "            if job is None:\n                return encode_frame(error_reply(\"bridge\", \"tool calls",
           "            if False:\n                return encode_frame(error_reply(\"bridge\", \"tool calls",
           ("tests/security/test_wasm_bridge.py::test_calls_outside_an_execution_are_refused",)),
    Mutant("frame-size", PR, "    if size > max_bytes:\n        raise FrameError",
           "    if False:\n        raise FrameError", ("tests/unit/test_protocol.py",)),
    Mutant("frame-bounded-unpack", PR, "unpack(raw, bounded=True,", "unpack(raw, bounded=False,",
           ("tests/unit/test_protocol.py::test_decode_frame_bounds_the_shape_before_parsing",)),
    Mutant("upstream-line-length", BS, "len(self._buffer) + end - start <= self.max_bytes", "True",
           (f"{T_UP}::test_the_line_reader_keeps_at_most_its_limit",)),
    Mutant("upstream-containers", BS, "if containers > MAX_RESULT_CONTAINERS:", "if False:",
           (f"{T_UP}::test_a_flood_of_empty_objects_is_refused_before_it_is_parsed",)),
    Mutant("upstream-depth", BS, "if openers_over(message, MAX_DEPTH):", "if False:",
           (f"{T_UP}::test_a_result_nested_10000_deep_fails_at_once_naming_the_limit",)),
    Mutant("upstream-content-blocks", BS, "if isinstance(content, list) and len(content) > MAX_CONTENT_BLOCKS:",
           "if False:", (f"{T_UP}::test_more_content_blocks_than_the_limit_are_refused_before_the_models_are_built",)),
    Mutant("lane-refusal-fails-call", BS, "if self.lane is not None and self.lane.fail(request, code",
           "if False and self.lane.fail(request, code",
           (f"{T_LANE}::test_an_answer_over_a_limit_fails_its_call_at_once",)),
    Mutant("lane-closed-pipe", BS, "                        lane.close()", "                        pass",
           (f"{T_LANE}::test_a_server_that_dies_mid_call_fails_the_call_and_comes_back",)),
    Mutant("lane-cancel-on-wire", "src/codemode/hub/lane.py", "await self._cancel(write, request_id)", "pass",
           (f"{T_LANE}::test_an_abandoned_call_is_cancelled_on_the_wire_and_its_late_answer_dropped",)),
    Mutant("lane-server-requests-to-session", BS, 'and "method" not in data and self.lane.settle',
           "and self.lane.settle", (f"{T_LANE}::test_a_request_of_the_server_with_a_lane_like_id_is_the_sessions",)),
    Mutant("lane-output-schema", MCP, "await client.session.validate_tool_result(tool, result)", "pass",
           (f"{T_LANE}::test_structured_content_is_checked_against_the_output_schema",)),
    Mutant("upstream-late-refusal-not-blamed", BS, "return request if request in self.in_flight else None",
           "if request in self.in_flight: return request",
           (f"{T_LANE}::test_a_refused_late_answer_is_not_blamed_on_the_call_in_flight",)),
    Mutant("hub-http-headers", MCP, "return _http_transport(cfg.url, cfg.headers)",
           "return _http_transport(cfg.url, {})", ("tests/integration/test_hub_http.py",)),
    Mutant("hub-sse-headers", MCP, "sse_client(url, headers=headers or None, httpx_client_factory=factory)",
           "sse_client(url, httpx_client_factory=factory)", ("tests/integration/test_hub_http.py",)),
    Mutant("spill-outputs-not-a-dir", POOL,
           'if not stat.S_ISDIR(os.stat("outputs", dir_fd=root, follow_symlinks=False).st_mode):',
           "if False:", (T_SPILL,)),
    Mutant("spill-tmp-nofollow", POOL, "os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW",
           "os.O_WRONLY | os.O_CREAT | os.O_TRUNC", (T_SPILL,)),
    Mutant("scratch-subdirectories", SCR, "if is_dir:\n                            todo[-1].append(entry.name)",
           "if False:\n                            todo[-1].append(entry.name)",
           ("tests/integration/test_sandbox.py::test_the_scratch_quota_counts_files_in_subdirectories",)),
    Mutant("scratch-file-count-at-end", EXE,
           "if size <= limits.scratch_bytes and count <= limits.scratch_files:", "if size <= limits.scratch_bytes:",
           ("tests/integration/test_sandbox.py::test_a_program_faster_than_the_scratch_poller_still_meets_the_quota",)),
    Mutant("scratch-file-count-poller", INS,
           "if size > limits.scratch_bytes or count > limits.scratch_files:", "if size > limits.scratch_bytes:",
           ("tests/integration/test_sandbox.py::test_the_poller_stops_a_program_making_too_many_files",)),
    Mutant("deadline-rearmed-for-the-running-job", INS, "            self._arm_deadline(clock.deadline)",
           "            pass", (T_EARLIER_DEADLINE,)),
    Mutant("deadline-of-the-running-job", INS, "if clock.expired():", "if True:", (T_EARLIER_DEADLINE,)),
    Mutant("session-dir-scoped", SN,
           "if owner == LOCAL_OWNER and (safe == name or not name) and not _OWNED.fullmatch(safe):", "if True:",
           (T_OWN,)),
    Mutant("handle-mac-checked", SN,
           "if not hmac.compare_digest(mac.encode(), self._mac(principal, nonce + tag).encode()):",
           "if False:", (T_OWN,)),
    Mutant("sessions-per-owner-cap", SES, "cap = self.max_sessions if owner.key == LOCAL_OWNER else self.per_owner",
           "cap = self.max_sessions", (T_OWN,)),
    Mutant("sessions-busy-not-evicted", SES,
           "idle = sorted((t, k) for t, k in held if not self._live[k].lock.locked())", "idle = sorted(held)",
           (T_OWN,)),
    Mutant("front-handle-verified", FR, "        if key is None:\n            raise CallerError(",
           "        if False:\n            raise CallerError(",
           ("tests/unit/test_front.py::test_callers",)),
    Mutant("front-mcp-session-scoped", FR, 'f"{principal}\\0{connection.session_id}"', 'f"{principal}"',
           ("tests/integration/test_serve_isolation.py::test_a_session_name_is_private_to_its_client",)),
    Mutant("infer-key-literal", INF, 'lines += [f"        {literal(key)}: {typed(key)}," for key in fields]',
           'lines += [f"        \\"{key}\\": {typed(key)}," for key in fields]', (T_INFER,)),
    Mutant("infer-key-cap", SHP, "if len(value) > MAX_KEYS or not all(usable_key(k) for k in value):",
           "if False:", (T_INFER,)),
    Mutant("task-only-refused", G, "if call.spec is not None and call.spec.requires_task:", "if False:",
           ("tests/integration/test_sandbox_everything.py::test_a_tool_that_requires_tasks_has_no_stub_and_says_why",)),
    Mutant("handle-own-session", "src/codemode/calls/handles.py",
           "kept = self._sessions.get(session, {}).get(handle_id)",
           "kept = next((o[handle_id] for o in self._sessions.values() if handle_id in o), None)",
           ("tests/security/test_handles_attacks.py::test_another_sessions_handle_is_refused",)),
    Mutant("fetch-negative-start", "src/codemode/calls/fetch.py",
           "if (start is not None and start < 0) or (stop is not None and stop < 0):", "if False:",
           ("tests/security/test_handles_attacks.py::test_hostile_numbers_in_a_fetch_are_refused",)),
    Mutant("fetch-max-bytes", "src/codemode/calls/fetch.py", "if not 1 <= max_bytes <= MAX_FETCH_BYTES:", "if False:",
           ("tests/security/test_handles_attacks.py::test_hostile_numbers_in_a_fetch_are_refused",)),
    Mutant("epoch-own-interpreter", "src/codemode/executors/wasm/epoch.py", "            if interrupted():",
           "            if True:",
           ("tests/security/test_wasm_resources.py::test_stopping_one_interpreter_leaves_the_others_running",)),
    Mutant("forwarded-for-trusted-only", "src/codemode/http_app.py",
           "proxy_headers=bool(trusted),\n        forwarded_allow_ips=trusted or [],",
           "proxy_headers=True,\n        forwarded_allow_ips=None,",
           ("tests/security/test_identity_attacks.py::test_a_forwarded_address_is_believed_only_from_a_trusted_proxy",)),
    Mutant("sse-refused-message-answered", MCP, "            return _sse_transport(cfg.url, cfg.headers)",
           "            return sse_client(cfg.url, headers=cfg.headers or None,"
           " httpx_client_factory=bounded_http_client)",
           ("tests/integration/test_hub_http.py::test_an_sse_server_that_refuses_its_messages_fails_the_start_at_once",)),
    Mutant("typecheck-memo-names", "src/codemode/preflight.py",
           "        key = _memo_key(_prelude_text(known), code)",
           "        key = _memo_key(_prelude_text(None), code)",
           ("tests/integration/test_typecheck.py::test_a_remembered_check_answers_only_the_same_program_with_the_same_names",)),
)  # fmt: skip


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _pytest(tree: Path, tests: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header", *tests]
    return subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, check=False)


def _last_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def stale(mutant: Mutant, root: Path = ROOT) -> str | None:
    """Why ``mutant``'s row no longer fits the code under ``root`` (its text not there exactly once, a test it
    names gone), or None."""
    found = (root / mutant.path).read_text(encoding="utf-8").count(mutant.old)
    if found != 1:
        return f"the text to mutate occurs {found} times in {mutant.path}, not once"
    for test in mutant.tests:
        file, _, name = test.partition("::")
        if not (root / file).is_file():
            return f"no test file {file}"
        pattern = rf"^(async )?def {re.escape(name.split('[')[0])}\("
        if name and not re.search(pattern, (root / file).read_text(encoding="utf-8"), re.M):
            return f"no test {test}"
    return None


def _apply(tree: Path, mutant: Mutant) -> None:
    path = tree / mutant.path  # a copy of ROOT, where main has checked the row
    path.write_text(path.read_text(encoding="utf-8").replace(mutant.old, mutant.new), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("words", nargs="*", help="run only mutants whose id contains one of these")
    parser.add_argument("--list", action="store_true", help="print the table and exit")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.words or any(word in m.id for word in args.words)]
    if args.list:
        for m in chosen:
            _say(f"{m.id:28} {m.path}  ->  {' '.join(m.tests)}")
        return 0
    for m in chosen:  # every row must still fit the code before anything slow runs
        if (why := stale(m)) is not None:
            raise SystemExit(f"{m.id}: {why}; update the table")
    survived: list[str] = []
    baseline: dict[tuple[str, ...], subprocess.CompletedProcess[str]] = {}
    with tempfile.TemporaryDirectory(prefix="codemode-mutants-") as tmp:
        for m in chosen:
            tree = Path(tmp) / m.id
            shutil.copytree(ROOT, tree, ignore=_SKIP, symlinks=True)
            if m.tests not in baseline:
                baseline[m.tests] = _pytest(tree, m.tests)
            clean = baseline[m.tests]
            if clean.returncode != 0:
                _say(f"{m.id:28} BROKEN    the tests fail unmutated: {_last_line(clean.stdout)}")
                survived.append(m.id)
                continue
            _apply(tree, m)
            mutated = _pytest(tree, m.tests)
            if mutated.returncode == 1:
                _say(f"{m.id:28} caught    {_last_line(mutated.stdout)}")
            elif mutated.returncode == 0:
                _say(f"{m.id:28} SURVIVED  {_last_line(mutated.stdout)}")
                survived.append(m.id)
            else:  # collection error or interrupted: the mutant broke the import, which proves nothing
                _say(f"{m.id:28} ERROR     pytest exit {mutated.returncode}: {_last_line(mutated.stdout)}")
                survived.append(m.id)
            shutil.rmtree(tree, ignore_errors=True)
    _say(f"{len(chosen) - len(survived)} of {len(chosen)} mutants caught" + (f"; not: {survived}" if survived else ""))
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
