"""Mutation testing of the security seams with cosmic-ray: every mutant a tool can make, not a hand-picked few.

``scripts/mutants.py`` removes 27 named defences by hand; this script lets cosmic-ray mutate every comparison,
condition, boolean, constant, flag and loop in the security-relevant modules (:data:`MODULES`) and runs, for
each mutant, only the tests that cover that module, so one module takes minutes, not hours:

    pip install -e ".[mutation]"
    .venv/bin/python scripts/mutation.py --list                  # the modules and their tests
    .venv/bin/python scripts/mutation.py --module protocol       # one module (repeat --module for more)
    .venv/bin/python scripts/mutation.py                         # all of them (hours on 2 cores)
    .venv/bin/python scripts/mutation.py --module gate --limit 40  # a bounded sample, evenly spread
    .venv/bin/python scripts/mutation.py --module instance --keep .mutation/trees  # stop it, run it again later

Each module runs in a throwaway copy of the repository (cosmic-ray edits files in place; the working tree is
never touched). Its tests first run unmutated there, under coverage with one context per test: a test failing
anyway would kill every mutant and prove nothing, and the coverage says which tests run each line. A mutant
then runs first the tests that execute its line, quickest first; only when they all pass does it run the
module's other tests (the whole selection when coverage cannot say, e.g. for a module-level line). A kill is
always a test that failed and a survivor has passed every test of its module, as before, but most mutants die
in seconds instead of after the module's slow files. The report (``--report``, default
``.mutation/report.md``) gives killed/survived per module and the diff of every survivor. A survivor listed in
:data:`ACCEPTED` (an equivalent mutant, with the reason; the same list is in ``tests/MUTANTS.md``) is reported
as accepted. Exit 1 when any other mutant survives.

A test that hangs under a mutant is stopped after a bound (pytest-timeout; five times the slowest test, at
least a minute) and the mutant counted killed, as cosmic-ray counts a whole command that times out. With
``--keep DIR`` the copy and its session stay in ``DIR/<module>``: the same command later goes on with the
mutants not yet run, after bringing the copy's tests up to the checkout and running its survivors again
(refused if a mutated source has changed since, as its mutants would no longer be that source's).

A checkout does not outlive a sitting here, so what a run killed is also written to a ledger that is committed,
``tests/mutation-ledger/<module>.json``: the mutated sources' SHA-256 and each killed or accepted mutant's place
(file, operator, occurrence, line; an accepted one's diff too). A later run of the same sources, in a fresh
copy, counts those as killed ("in an earlier sitting") or accepted (when :data:`ACCEPTED` still lists the diff)
without running them again, and runs the rest, every other survivor included; the ledger is written again
after every run, stopped ones too. A source that changed voids its module's ledger (every mutant
runs again). ``--no-ledger`` ignores it; ``--export`` writes it from the runs kept in ``--keep DIR``.
CI: ``.ci/mutation`` (started by hand, never by ``.ci/run``).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import difflib
import hashlib
import json
import os
import random
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
_SKIP = shutil.ignore_patterns(
    ".git", ".venv*", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".mutation", "node_modules"
)


@dataclasses.dataclass(frozen=True)
class Target:
    """Source files to mutate and the tests that must kill their mutants."""

    sources: tuple[str, ...]
    tests: tuple[str, ...]


S = "src/codemode/"
# The host calls and the instance that runs them share their tests; two modules so two runs can share the cores.
_WASM_HOST_TESTS = (
    "tests/security/test_wasm_hostcall_pointers.py", "tests/security/test_wasm_bridge.py",
    "tests/security/test_wasm_host_side.py", "tests/security/test_wasm_resources.py",
    "tests/security/test_bounds.py", "tests/security/test_bounds_frames.py",  # refused and large frames
    "tests/security/test_wasm_escapes.py",  # the refused symlink's errno
    "tests/integration/test_sandbox.py::test_large_result_of_several_megabytes",  # a fetch served on the thread
    "tests/integration/test_policy_parked.py::test_a_forged_request_state_resumes_nothing",  # stop() mid-run
    "tests/security/test_protocol_guest.py::test_a_guest_of_another_protocol_version_does_not_start[wasm]",
    "tests/integration/test_wait_timeouts.py::test_computing_at_the_limit_still_loses_the_interpreter[wasm]",
    "tests/integration/test_wait_timeouts.py::test_a_paused_clock_still_gives_the_wait_its_grace",
    "tests/integration/test_sandbox.py::test_the_poller_stops_a_program_making_too_many_files",
    "tests/integration/test_sandbox.py::test_scratch_quota_stops_the_program_and_makes_room",  # shrink's targets
    "tests/integration/test_sandbox.py::test_the_scratch_quota_counts_files_in_subdirectories",
    "tests/integration/test_sandbox.py::test_the_poller_stops_a_program_growing_one_file",
    "tests/integration/test_sandbox.py::"
    "test_a_program_that_slept_then_spins_is_stopped_at_its_deadline_not_after_a_waits_grace",
    "tests/integration/test_sandbox.py::test_a_tree_of_exactly_the_quota_is_left_running",
    "tests/integration/test_sandbox.py::test_an_earlier_jobs_deadline_neither_stops_nor_forgets_the_next_job",
    "tests/integration/test_sandbox.py::test_a_call_the_host_can_no_longer_serve_is_answered_not_trapped",
    "tests/integration/test_sandbox.py::test_a_call_that_returns_with_time_left_leaves_the_programs_waits_alone",
    "tests/integration/test_sandbox.py::test_an_interpreter_that_cannot_boot_fails_the_run_with_the_cause",
    "tests/integration/test_sandbox.py::test_an_interpreter_still_booting_at_its_boot_deadline_is_stopped",
    # every interpreter shares one engine's epoch: another's interrupt must not stop this one's boot
    "tests/integration/test_sandbox.py::test_an_interpreter_boots_and_runs_through_other_interpreters_interrupts",
    "tests/integration/test_wait_timeouts.py::"
    "test_a_timed_out_wait_raises_in_the_program_and_keeps_the_session[wasm]",
    "tests/integration/test_wait_timeouts.py::"
    "test_a_call_answered_at_the_deadline_is_a_wait_even_when_the_deadline_alarm_comes_late",
    "tests/integration/test_wait_timeouts.py::"
    "test_a_deadline_passed_while_the_clock_was_paused_is_armed_again_on_resume",
    "tests/integration/test_sandbox.py::test_a_program_stopped_at_its_limit_keeps_its_stdout_and_stderr_apart",
    "tests/integration/test_sandbox.py::test_a_program_stopped_with_no_capture_buffers_known_ends_without_its_output",
    "tests/integration/test_sandbox.py::test_the_scratch_poller_measures_twice_a_second_not_without_pause",
    # a daemon=False instance thread: the host process never exits (the test's 60 s bound)
    "tests/integration/test_sandbox.py::test_a_host_that_exits_without_closing_its_executor_does_not_hang")

MODULES: dict[str, Target] = {
    # The frame checks are pure functions; test_bounds_frames.py drives the same ones through the sandbox.
    "protocol": Target((f"{S}protocol.py",), ("tests/unit/test_protocol.py",)),
    "bridge": Target((f"{S}bridge.py",), (
        "tests/unit/test_bridge.py", "tests/unit/test_gate.py", "tests/security/test_wasm_bridge.py")),
    "gate": Target((f"{S}calls/gate.py",), (
        "tests/unit/test_gate.py", "tests/unit/test_handles.py", "tests/unit/test_policy_rules.py",
        "tests/security/test_wasm_secrets.py::test_an_upstreams_stderr_stays_on_the_host")),
    # The upstream reader's bounds and the lane's calls share the reader; both suites kill its mutants.
    "upstream": Target((f"{S}hub/bounded_stdio.py", f"{S}hub/lane.py"), (
        "tests/security/test_bounds_upstream.py", "tests/integration/test_hub_lane.py",
        "tests/unit/test_upstream_reader.py",
        "tests/integration/test_hub.py::test_no_orphan_process_when_the_hub_is_cancelled",
        "tests/security/test_bounds_upstream_misbehaviour.py")),
    "hostcalls": Target((f"{S}executors/wasm/hostcalls.py",), _WASM_HOST_TESTS),
    "instance": Target((f"{S}executors/wasm/instance.py",), _WASM_HOST_TESTS),
    # The one thread every deadline and scratch watch runs on.
    "alarm": Target((f"{S}executors/wasm/alarm.py",), (
        "tests/unit/test_alarm.py",
        "tests/integration/test_sandbox.py::test_timeout_kills_the_instance_and_the_session_recovers",
        "tests/integration/test_sandbox.py::test_an_earlier_jobs_deadline_neither_stops_nor_forgets_the_next_job",
        "tests/integration/test_sandbox.py::test_the_poller_stops_a_program_growing_one_file",
        "tests/integration/test_wait_timeouts.py::test_a_paused_clock_still_gives_the_wait_its_grace",
        "tests/integration/test_wait_timeouts.py::"
        "test_a_deadline_passed_while_the_clock_was_paused_is_armed_again_on_resume")),
    # The first compile (test_first_serve.py) runs in a session of its own: a client killing serve's group spares it.
    "limits": Target((f"{S}executors/base.py", f"{S}executors/wasm/executor.py"), (
        "tests/unit/test_guest_results.py", "tests/unit/test_scratch.py", "tests/security/test_wasm_resources.py",
        "tests/integration/test_sandbox.py", "tests/integration/test_first_serve.py",
        "tests/integration/test_wait_timeouts.py")),
    "spill-scratch": Target((f"{S}executors/pool.py", f"{S}executors/scratch.py"), (
        "tests/unit/test_scratch.py", "tests/security/test_wasm_host_side.py", "tests/integration/test_sandbox.py")),
    "sessions": Target((f"{S}sessions.py", f"{S}session_names.py"), (
        "tests/security/test_session_ownership.py", "tests/unit/test_front.py")),
    "config": Target((f"{S}config.py",), (
        "tests/unit/test_config.py", "tests/unit/test_audit_policy.py",
        "tests/security/test_wasm_secrets.py::test_guest_environment_holds_no_secret",
        "tests/security/test_wasm_secrets.py::test_tool_results_errors_and_discovery_hold_no_secret")),
    # Fast files first: pytest -x stops at the first failure, and test_compiler.py type-checks two 1,000-tool trees.
    "compiler": Target((f"{S}compiler/naming.py", f"{S}compiler/render.py", f"{S}compiler/writer.py"), (
        "tests/unit/test_compiler_parts.py", "tests/security/test_hostile_schemas.py", "tests/unit/test_compiler.py")),
}  # fmt: skip

# The operators kept: each flips a decision a defence makes (a condition negated, a bound moved by one, a
# flag set widened or narrowed, a loop skipped, an exception type swapped). Cosmic-ray's full set also swaps
# every arithmetic operator for every other and renames variables: hundreds of mutants per module that
# mostly crash at once and say nothing about a defence.
KEPT_OPERATORS = (
    "core/ReplaceComparisonOperator_(Eq_NotEq|NotEq_Eq|Lt_LtE|LtE_Lt|Gt_GtE|GtE_Gt|Is_IsNot|IsNot_Is)",
    "core/ReplaceBinaryOperator_(Add_Sub|Sub_Add|BitOr_BitAnd|BitAnd_BitOr)",
    "core/ReplaceUnaryOperator_Delete_Not",
    "core/(AddNot|ReplaceTrueWithFalse|ReplaceFalseWithTrue|ReplaceAndWithOr|ReplaceOrWithAnd)",
    "core/(ReplaceBreakWithContinue|ReplaceContinueWithBreak|ExceptionReplacer|NumberReplacer|ZeroIterationForLoop)",
)


@dataclasses.dataclass(frozen=True)
class Accepted:
    """A surviving mutant that changes no security outcome: where it is, and why it is harmless."""

    path: str
    operator: str
    line: str  # the unmutated source line, stripped
    why: str
    mutated: str = ""  # the mutated line, stripped, when only one of the operator's mutants on the line is meant


# Keep in step with "Equivalent mutants accepted (cosmic-ray)" in tests/MUTANTS.md.
_SES, _SN, _GATE = f"{S}sessions.py", f"{S}session_names.py", f"{S}calls/gate.py"
_INST, _WEX = f"{S}executors/wasm/instance.py", f"{S}executors/wasm/executor.py"
_CONFIG, _WRITER, _RENDER = f"{S}config.py", f"{S}compiler/writer.py", f"{S}compiler/render.py"
_IN_TREE = 'if not isinstance(rel, str) or not rel or "\\x00" in rel or "\\\\" in rel or rel.startswith("/"):'
_PARAGRAPH = 'text = " ".join((description or "").strip().split("\\n\\n", 1)[0].split())'
_TAG = 'if len(path) > 2 and path[2] in ("stdio", "http", "streamable-http", "streamableHttp", "sse", "openapi"):'

_BS, _HC = f"{S}hub/bounded_stdio.py", f"{S}executors/wasm/hostcalls.py"
_PREFIX = "if job is not None and prefix.endswith(CALL_PREFIX) and len(prefix) == 2 * HEADER.size + len(CALL_PREFIX):"
_DETAIL = ('detail = str(errors()[0].get("msg", "")) if callable(errors) and errors() else str(exc)[:200]')
_SAMPLE = 'return value if len(value) <= 4096 else f"\\0str:{len(value)}:{value[:2048]}:{value[-2048:]}"'
_TICK = ("a boundary at exact equality of two float clock readings: the event ages out (or the session expires) "
         "one clock tick sooner or later, which no client can time and which changes no limit")
ACCEPTED: tuple[Accepted, ...] = (
    Accepted(_SES, "core/ReplaceComparisonOperator_Gt_GtE",
             "if now - state.last_used > limit and not state.lock.locked():", _TICK),
    Accepted(_SES, "core/ReplaceComparisonOperator_GtE_Gt", "while window and now - window[0] >= WINDOW_S:", _TICK),
    Accepted(_SES, "core/ReplaceComparisonOperator_GtE_Gt", "if not window or now - window[-1] >= WINDOW_S:", _TICK),
    Accepted(_SES, "core/NumberReplacer", "await anyio.sleep(min(60.0, self.provisional_idle_s / 4))",
             "the expiry sweep's period (60 s at most): an idle session is closed a second sooner or later, never "
             "one that is running code, and the idle limits themselves are tested"),
    Accepted(_SES, "core/ReplaceTrueWithFalse", "lock: anyio.Lock = field(default_factory=lambda: "
             "anyio.Lock(fast_acquire=True))",
             "fast_acquire only skips a trip through the event loop when the lock is free: the same exclusion"),
    Accepted(_SN, "core/ReplaceOrWithAnd", "if not dot or not nonce or (node or None) != self.node:",
             "`not dot or not nonce` → `and`: a handle without a dot has an empty MAC and one with an empty nonce "
             "has none ever issued (the key never leaves the process): the HMAC check just below refuses both"),
    Accepted(_SES, "core/ReplaceTrueWithFalse", "@dataclass(frozen=True)",
             "Owner unfrozen: nothing assigns to an Owner's fields, so nothing changes"),
    Accepted(_SES, "core/ReplaceTrueWithFalse", "return True",
             "_keep_under saying it closed nothing when it closed one: the checks after it then run on a host with "
             "one session fewer, where the owner, its client and the host are each under their caps (each was at "
             "most at its cap before), so none closes another or refuses"),
    Accepted(_SN, "core/NumberReplacer", "self._key = key if key is not None else secrets.token_bytes(32)",
             "a 31- or 33-byte HMAC key instead of 32: still far past guessing, and never leaves the process"),
    Accepted(_GATE, "core/NumberReplacer", _SAMPLE,
             "which long strings the journal's argument digest samples (over 256 KB of arguments): the digest "
             "is audit information, still deterministic; no decision reads it"),
    Accepted(_GATE, "core/ExceptionReplacer", "except (TypeError, ValueError):",
             "the digest's fallback to repr(): arguments are decoded JSON (string keys, no cycles, default=repr), "
             "so json.dumps never raises TypeError there"),
    Accepted(_GATE, "core/ReplaceComparisonOperator_LtE_Lt", _SAMPLE,
             "a string of exactly 4,096 characters then sampled: its head and tail (2,048 each) are the whole "
             "string, so the digest still depends on every character", _SAMPLE.replace("<= 4096", "< 4096")),
    Accepted(_GATE, "core/ReplaceFalseWithTrue", "_frame: bytes | None = field(default=None, repr=False)",
             "a Reply's repr then shows its encoded frame: the same data as its value, which the repr shows "
             "anyway; nothing logs a Reply"),
    Accepted(_GATE, "core/AddNot", "if TYPE_CHECKING:",
             "the annotation-only import (mcp_types) then runs at import: a dependency already loaded"),
    Accepted(_GATE, "core/NumberReplacer", "index: int = -1",
             "the index of a call the journal never saw, -2 instead of -1: the quota step refuses any "
             "negative index"),
    Accepted(_GATE, "core/ReplaceComparisonOperator_GtE_Gt",
             "text = isinstance(reply.value, str) and len(reply.value) >= BLOB_MIN",
             "a text of exactly BLOB_MIN characters then measured from its frame instead of estimated: the "
             "estimate counts JSON escapes the frame's raw blob does not, so it is never below the frame's size "
             "and both are checked against the same limits"),
    Accepted(_INST, "core/NumberReplacer", "_BOOT_FUEL = 50_000_000_000",
             "one fuel unit more or less of the 50-billion boot budget (the boot takes a fraction of it)"),
    Accepted(_INST, "core/ReplaceAndWithOr", "if not self.ready.is_set() and self.job is None and not self.dead:",
             "`and` → `or` in _boot_timeout: an interpreter that booted and waits for a job is then interrupted "
             "at its boot deadline; it waits in the host call that hands out jobs, which checks no flag, and the "
             "next job clears the flag and sets a fresh epoch deadline before any guest code runs: the session "
             "is kept (seen by hand: a session's variable read after idling past a 10 s boot deadline)"),
    Accepted(_INST, "core/NumberReplacer", "self.id = uuid.uuid4().hex[:8]",
             "an instance id of 7 or 9 hex digits: it names the thread and log lines, nothing looks it up"),
    *(Accepted(_WEX, operator, "if len(empty) > 4096:  # sessions come and go: forget old directories now and then",
               "when the cache of scratch dirs last seen empty is cleared (every insert, or one entry sooner or "
               "later): at most one scandir more per run, the same quota decision, the cache still bounded")
      for operator in ("core/AddNot", "core/NumberReplacer", "core/ReplaceComparisonOperator_Gt_GtE")),
    *(Accepted(_CONFIG, operator, _TAG,
               "where a server's validation error is placed: parse_config checks the transport before pydantic, so "
               "every error under a server has its name, the union tag and a field (a path of 4 or more); the "
               "mutant changes only paths of length 2 or 3, which cannot occur", mutated)
      for operator, mutated in (("core/ReplaceAndWithOr", ""), ("core/ReplaceComparisonOperator_Gt_GtE", ""),
                                ("core/NumberReplacer", _TAG.replace("> 2", "> 3")),
                                ("core/NumberReplacer", _TAG.replace("> 2", "> 1")))),
    *(Accepted(_CONFIG, operator, line, "where _line_of starts looking, or whether a key at the text's first "
               "character counts: a config is a JSON object, so its first character is a brace or whitespace, "
               "never a key's quote", mutated)
      for operator, line, mutated in (("core/NumberReplacer", "pos = 0", "pos = 1"),
                                      ("core/NumberReplacer", "if found < 0:", "if found < 1:"),
                                      ("core/ReplaceComparisonOperator_Lt_LtE", "if found < 0:", ""))),
    Accepted(_CONFIG, "core/ReplaceBreakWithContinue", "break",
             "_line_of skipping a key it cannot find instead of stopping: only a list index is never found, and "
             "a missing variable's path ends at its string, so no key follows one (the line is the same)"),
    Accepted(_CONFIG, "core/NumberReplacer", "line = _line_of(text, [key, name, *exc.path[2:]])",
             "`path[2:]` → `path[1:]` repeats the server's name: found again at the same place, the same line",
             "line = _line_of(text, [key, name, *exc.path[ 1:]])"),
    Accepted(_CONFIG, "core/ReplaceAndWithOr", 'elif loc and loc[0] == "settings":',
             "`and` → `or`: a validation error's location starts with servers (handled above) or settings; "
             "source is a string codemode passes, so no other location reaches this branch"),
    *(Accepted(_CONFIG, operator, line, "where a comment's end was found: find() starts at least two characters "
               "past the comment's opening, so a found end is never 0 (nor 1), and only -1 means none", mutated)
      for operator, line, mutated in (
          ("core/ReplaceComparisonOperator_Lt_LtE", "end = n if end < 0 else end", ""),
          ("core/NumberReplacer", "end = n if end < 0 else end", "end = n if end < 1 else end"),
          ("core/ReplaceComparisonOperator_Lt_LtE", "if end < 0:", ""),
          ("core/NumberReplacer", "if end < 0:", "if end < 1:"))),
    *(Accepted(_CONFIG, operator, 'if c in "}]" and comma >= 0:', "a trailing comma at the text's first "
               "character: a comma is recorded only after a significant character, so never at index 0", mutated)
      for operator, mutated in (("core/ReplaceComparisonOperator_GtE_Gt", ""),
                                ("core/NumberReplacer", 'if c in "}]" and comma >= 1:'))),
    *(Accepted(_CONFIG, "core/NumberReplacer", line, "'no pending comma' as -2 instead of -1: every test of it is "
               "`>= 0`, so any negative means none", mutated)
      for line, mutated in (
          ("comma = -1  # a comma that is trailing if the next significant character closes an object or array",
           "comma = - 2  # a comma that is trailing if the next significant character closes an object or array"),
          ("last, comma = c, -1", "last, comma = c, - 2"),
          ('comma = i if c == "," and last not in ("{", "[", ":", ",", "") else -1',
           'comma = i if c == "," and last not in ("{", "[", ":", ",", "") else - 2'))),
    *(Accepted(_CONFIG, "core/NumberReplacer", line, "the 'did you mean' hint of an ignored top-level key: "
               "n=2 still puts the closest match first, and with n=1 the list has one entry, so near[-1] is near[0] "
               "(the hint is tested)", mutated)
      for line, mutated in (
          ('near = difflib.get_close_matches(other, ["codemode", "mcpServers", "servers"], n=1, cutoff=0.75)',
           'near = difflib.get_close_matches(other, ["codemode", "mcpServers", "servers"], n= 2, cutoff=0.75)'),
          ('hint = f"; did you mean {near[0]!r}?" if near else ""',
           'hint = f"; did you mean {near[ -1]!r}?" if near else ""'))),
    *(Accepted(_CONFIG, "core/NumberReplacer", 'return re.split(r"\\s#", raw, maxsplit=1)[0].strip()',
               "a bare dotenv value is what comes before its first ` #`: however many further splits are made "
               "(maxsplit 2, or 0: all), the first part is the same", mutated)
      for mutated in ('return re.split(r"\\s#", raw, maxsplit= 2)[0].strip()',
                      'return re.split(r"\\s#", raw, maxsplit= 0)[0].strip()')),
    Accepted(_CONFIG, "core/NumberReplacer", "url: str = Field(min_length=1)",
             "the url's minimum length 0 or 2: the validator just below refuses any url not starting with "
             "http:// or https://, so the length bound never decides"),
    *(Accepted(f"{S}executors/pool.py", operator, "if not self._closed:  # a start cut short by aclose() is not "
               "worth a traceback", "whether a failed pre-start is logged with its traceback: logging only, the "
               "pool is refilled (or not) the same way") for operator in ("core/AddNot",
                                                                           "core/ReplaceUnaryOperator_Delete_Not")),
    Accepted(f"{S}executors/pool.py", "core/ReplaceAndWithOr", "if self._task_group is not None and not self._closed:",
             "`and` → `or` in _worker_for: the task group is None only before the executor is entered, where the "
             "boot just above has already failed (no engine), or after aclose, which sets closed: no refill starts"),
    Accepted(f"{S}executors/pool.py", "core/NumberReplacer",
             'scratch = self.scratch_root / ".pool" / uuid.uuid4().hex[:12]',
             "a spare's scratch directory named by 11 or 13 hex digits instead of 12: 44 bits and more, no clash "
             "among a pool's few spares, and each is renamed to its session's name when taken"),
    Accepted(f"{S}executors/pool.py", "core/ReplaceTrueWithFalse", "scratch.mkdir(parents=True)",
             "parents=False: _start_pool has made .pool already; only a .pool deleted under a running host "
             "differs, and then the spares' own directories are gone with it"),
    Accepted(f"{S}executors/scratch.py", "core/NumberReplacer", "MAX_DEPTH = 128",
             "the walk's depth bound at 127 or 129 levels instead of 128: a bound either way (the tests read the "
             "constant), one descriptor per level, far below the process's limit"),
    Accepted(f"{S}executors/scratch.py", "core/NumberReplacer", "_TOO_DEEP = -1",
             "the too-deep sentinel as -2: compared only with itself, and no size is negative", "_TOO_DEEP = - 2"),
    Accepted(f"{S}executors/scratch.py", "core/ReplaceTrueWithFalse",
             "yield tuple(parts), name, True, _TOO_DEEP",
             "the is_dir flag of a too-deep entry: both readers test its size (_TOO_DEEP) first and never read it"),
    Accepted(f"{S}executors/scratch.py", "core/ReplaceFalseWithTrue", "is_dir, size = False, 0",
             "an entry that vanished before its stat taken as a directory: the walk then fails to open it and goes "
             "on, counting it once with no size, as before (test_an_entry_gone_between_the_listing_and_its_stat_…)",
             "is_dir, size = True, 0"),
    *(Accepted(f"{S}executors/scratch.py", "core/NumberReplacer",
               "for _ in range(100):  # a taken name (a guest may use ours) is skipped",
               "99 or 101 tries for a free name: the names come from an endless counter, so one is free at once "
               "unless the tree holds that many of them", mutated)
      for mutated in ("for _ in range( 99):  # a taken name (a guest may use ours) is skipped",
                      "for _ in range( 101):  # a taken name (a guest may use ours) is skipped")),
    Accepted(f"{S}executors/scratch.py", "core/NumberReplacer", "done += 1",
             "_empty's progress counted by two instead of one: the count is only ever compared with zero, and no "
             "step takes from it", "done += 2"),
    Accepted(f"{S}executors/scratch.py", "core/ReplaceFalseWithTrue",
             "inner = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in listing]",
             "a link to a directory one level down then counts as a directory: it is renamed up a level (rename "
             "moves the link, never its target) and unlinked at the next pass as the link it is, so nothing the "
             "link points at is touched; the top level's own is_dir, which decides what is opened, is not this one",
             "inner = [(entry.name, entry.is_dir(follow_symlinks=True)) for entry in listing]"),
    Accepted(f"{S}executors/base.py", "core/NumberReplacer", "keep = (trace_cap - 60) // 2",
             "the room kept for a cut traceback's note, 59 characters instead of 60: the note (' … [N characters "
             "cut] … ') is at most 33 characters for any traceback a frame can carry, and guest_text caps the "
             "whole at trace_cap anyway", "keep = (trace_cap - 59) // 2"),
    Accepted(f"{S}executors/base.py", "core/NumberReplacer", "calls_over_quota: int = 0",
             "the default of RunResult.calls_over_quota: every RunResult is built with the journal's count"),
    Accepted(_WEX, "core/NumberReplacer",
             "def __init__(self, *, recursion_limit: int = 600, **options: Unpack[ExecutorOptions]) -> None:",
             "the guest's recursion limit at 599 or 601 frames instead of 600: a bound either way, and the "
             "stack-overflow attacks recurse far past it"),
    Accepted(_WEX, "core/NumberReplacer", "await anyio.to_thread.run_sync(instance.join, 5.0)",
             "how long disposing of a stopped interpreter waits for its thread (4 or 6 s): it was stopped first"),
    Accepted(f"{S}executors/scratch.py", "core/ReplaceBreakWithContinue", "break",
             "shrink's loop going on once the tree is within both limits: every later file meets the same test "
             "and is skipped, so the same files are removed"),
    Accepted(_WEX, "core/NumberReplacer",
             'tail = errors.read()[-2000:].decode("utf-8", "replace").strip().splitlines()[-1:]',
             "the window of a failed compile's stderr searched for its last line, a byte wider or narrower: the "
             "last line of a traceback is far shorter"),
    Accepted(f"{S}executors/pool.py", "core/NumberReplacer",
             "worker = self._pool.pop(0) if self._pool else await self._boot()",
             "a session takes the newest spare instead of the oldest: every spare is booted the same way, idle "
             "and unused", "worker = self._pool.pop( -1) if self._pool else await self._boot()"),
    Accepted(_WEX, "core/ReplaceTrueWithFalse", "shutil.rmtree(scratch, ignore_errors=True)",
             "a failed boot removing the scratch directory it has just made: it exists, so rmtree removes it "
             "either way"),
    Accepted(f"{S}executors/pool.py", "core/ReplaceBinaryOperator_BitOr_BitAnd",
             "dir_flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW",
             "`O_RDONLY & O_DIRECTORY` drops O_DIRECTORY and keeps O_NOFOLLOW: a link swapped in is still refused "
             "(tested); only a FIFO swapped in between the check and the open differs, which WASI cannot make and "
             "a guest that has finished cannot race", "dir_flags = os.O_RDONLY & os.O_DIRECTORY | os.O_NOFOLLOW"),
    Accepted(f"{S}executors/pool.py", "core/ReplaceTrueWithFalse", "session_dir.mkdir(parents=True, exist_ok=True)",
             "parents=False: the scratch root exists while the executor is open (_start_pool made it)"),
    Accepted(_INST, "core/ReplaceAndWithOr",
             _PREFIX,
             "`job is not None and` → `or`: a job always runs here (with none, read_limit is frame_limit and a larger "
             "frame is refused before), so the prefix test is skipped: any large frame has its JSON part read first; "
             "one that is not a call is then read whole as before, one whose JSON part does not parse is "
             "'malformed' either way, and a call is refused on its size either way",
             _PREFIX.replace("not None and", "not None or")),
    Accepted(f"{S}executors/base.py", "core/NumberReplacer", "duration_s: float = 0.0",
             "RunResult's default duration: every result the host makes sets its own (result_from_guest, "
             "failed, the malformed result); the default serves results built by hand (the tests')"),
    Accepted(_INST, "core/ReplaceAndWithOr",
             _PREFIX,
             "`endswith(CALL_PREFIX) and len(prefix) ==` → `or`: a job always runs here (see the acceptance above) "
             "and a frame over read_limit is always longer than the prefix, so every large frame has its JSON part "
             "read first: one that is not a call is then read whole as before, one whose JSON part does not parse "
             "is 'malformed' either way, and a call is refused on its size either way",
             _PREFIX.replace("CALL_PREFIX) and len", "CALL_PREFIX) or len")),
    Accepted(_INST, "core/NumberReplacer", "wasmtime.Store.set_epoch_deadline(caller, 1)  # type: ignore[arg-type]",
             "a job's first epoch deadline 0 instead of 1: as at boot, the guard is called at the first check, "
             "finds no interrupt and sets the next deadline one tick on: one callback more, the same stops",
             "wasmtime.Store.set_epoch_deadline(caller, 0)  # type: ignore[arg-type]"),
    Accepted(f"{S}executors/wasm/hostcalls.py", "core/NumberReplacer", "if wait_ns > 0:",
             "`> 0` → `> 1`: a wait of exactly one nanosecond answers at once instead of waiting 1 ns",
             "if wait_ns > 1:"),
    Accepted(_INST, "core/ReplaceFalseWithTrue", "self.timed_out = False",
             "the flag's first value (Instance.__init__; the same line in _next_job is killed by every wait test): "
             "every job starts by setting it to False before anything reads it, and the boot waits for nothing"),
    Accepted(f"{S}executors/wasm/hostcalls.py", "core/ReplaceComparisonOperator_GtE_Gt", "if position >= end:",
             "`>=` → `>`: the loop over a frame's buffers stops one buffer later; that buffer's slice is empty "
             "(lo == hi) and skipped, so the same bytes are read"),
    Accepted(_INST, "core/ReplaceBinaryOperator_Sub_Add",
             "job.result = result_from_guest(payload, job.ctx, time.perf_counter() - job.started)",
             "the instance's figure of the run's duration: WasmExecutor._run replaces duration_s on every result "
             "with its own measure before anything reads it (tested: a run's own duration)"),
    Accepted(f"{S}executors/wasm/hostcalls.py", "core/ReplaceComparisonOperator_Lt_LtE", "if lo < hi:",
             "a zero-length slice of a large frame's buffer is then read too: b'' where its address is in memory, "
             "and a refused frame where a forged buffer of length 0 points outside it (stricter; the runtime "
             "never sends such a buffer)"),
    Accepted(f"{S}executors/wasm/hostcalls.py", "core/NumberReplacer", "if ptr < 0 or ptr + count > size:",
             "`ptr < 0` → `ptr < -1` in fd_pread: ptr comes from an unsigned iovec field (_IOVEC, '<II') and is "
             "never negative, so neither test is ever true", "if ptr < -1 or ptr + count > size:"),
    Accepted(f"{S}executors/wasm/hostcalls.py", "core/NumberReplacer", "if ptr < 0 or ptr + count > size:",
             "`ptr < 0` → `ptr < 1` in fd_pread: a buffer at guest address 0 refused too (stricter; no guest buffer "
             "lives at C's NULL)", "if ptr < 1 or ptr + count > size:"),
    Accepted(f"{S}executors/wasm/hostcalls.py", "core/NumberReplacer",
             "if ptr < 0 or length < 0 or ptr + length > size:",
             "`length < 0` → `length < -1` in _read: every length it is given is an unsigned field (u32) or 8 or "
             "48 times a count, never exactly -1", "if ptr < 0 or length < -1 or ptr + length > size:"),
    Accepted(_INST, "core/ReplaceAndWithOr",
             "if isinstance(capture, list) and len(capture) == 2 and all(type(a) is int for a in capture):",
             "the capture check's second `and` → `or`: the hello is taken once, at boot, from the runtime on the "
             "read-only /runtime before any program runs (a later one is refused), and it always sends two ints"),
    Accepted(_WEX, "core/NumberReplacer",
             "raise SandboxError(f\"exit status {returncode}{': ' + tail[0] if tail else ''}\")",
             "`tail[0]` → `tail[-1]`: tail is `splitlines()[-1:]`, at most one line, so both name the same one",
             "raise SandboxError(f\"exit status {returncode}{': ' + tail[ -1] if tail else ''}\")"),
    Accepted(f"{S}executors/base.py", "core/ReplaceComparisonOperator_LtE_Lt",
             "return value if len(value) <= cap else value[:cap]",
             "`<=` → `<`: a text of exactly `cap` characters is then sliced to its own length, the same text"),
    Accepted(_INST, "core/NumberReplacer", "_THREAD_STACK = 16 * 1024 * 1024",
             "the instance thread's native stack 15 or 17 MB instead of 16: wasm's own stack is capped far below "
             "either (module.MAX_WASM_STACK), so a guest's deepest recursion ends the same (the recursion tests)"),
    Accepted(_INST, "core/NumberReplacer", "store.set_epoch_deadline(1)",
             "a first epoch deadline of 0 instead of 1: the guard is called at the first check, finds no "
             "interrupt and sets the next deadline one tick on (EpochGuard): one callback more, the same stops",
             "store.set_epoch_deadline( 0)"),
    Accepted(_INST, "core/ReplaceComparisonOperator_LtE_Lt", "if json_size <= limit:",
             "`<=` → `<`: a call whose JSON part is exactly the read limit is read whole, as any large frame is, "
             "within frame_limit (28.5 MB at the defaults), and the gate refuses it on its size the same"),
    Accepted(f"{S}executors/wasm/hostcalls.py", "core/NumberReplacer", "if ptr < 0 or ptr + len(data) > size:",
             "a host write at guest address 0 refused too: stricter, not looser, and no guest buffer lives at 0 "
             "(C's NULL)", "if ptr < 1 or ptr + len(data) > size:"),
    Accepted(f"{S}executors/wasm/hostcalls.py", "core/NumberReplacer",
             "if not 0 <= length <= min(allocated, cap_chars * 4):",
             "an empty capture buffer then skipped instead of read: \"\" either way",
             "if not 1 <= length <= min(allocated, cap_chars * 4):"),
    Accepted(_WEX, "core/NumberReplacer", "errors.seek(0)",
             "a failed compile's stderr read from its second byte: the last line is the same unless the whole "
             "stderr is one character", "errors.seek( 1)"),
    Accepted(f"{S}executors/wasm/hostcalls.py", "core/ReplaceComparisonOperator_Gt_GtE", "if wait_ns > 0:",
             "a zero-length wait then takes the waiting path: it returns at once (wake.wait(0)); only a program "
             "already told its time is up sees sleep(0) raise too, as any other wait of it does"),
    Accepted(f"{S}executors/base.py", "core/NumberReplacer", "ERROR_MESSAGE_CHARS = 10_000",
             "a program error's message cut at 9,999 or 10,001 characters instead of 10,000: bounded either way"),
    Accepted(f"{S}executors/base.py", "core/NumberReplacer", "ERROR_TYPE_CHARS = 200",
             "a program error's type name cut at 199 or 201 characters instead of 200: bounded either way (the "
             "cut itself is tested with a forged type name of 1,000 characters)"),
    Accepted(_WRITER, "core/ReplaceTrueWithFalse",
             '_write(out_dir, MANIFEST, json.dumps(manifest, sort_keys=True, separators=(",", ":")) + "\\n", report, '
             'track=False)',
             "the stubs manifest's keys unsorted: they are built in a fixed order anyway (a compile of the same "
             "tools in reverse gives the same bytes, tested), and it is only read back with json.loads"),
    Accepted(_WRITER, "core/ReplaceTrueWithFalse",
             "payload = json.dumps([COMPILER_VERSION, spec.server, module, python_name, spec.to_json(), observed], "
             "sort_keys=True)",
             "the reuse hash over unsorted keys only changes more often (an equal definition in another key order "
             "is recompiled to the same bytes): a stub is never reused when it should not be"),
    Accepted(_WRITER, "core/ReplaceOrWithAnd", _IN_TREE,
             "_in_tree's first clauses joined by `and`: an empty name is still refused by the part check below, and "
             "no caller passes a non-string (_load_manifest keeps only strings)",
             _IN_TREE.replace("str) or not rel", "str) and not rel", 1)),
    Accepted(_WEX, "core/NumberReplacer", "await anyio.to_thread.run_sync(instance.join, 10.0)",
             "how long aclose waits for each instance thread to end (9 or 11 s): they were all stopped first"),
    Accepted(f"{S}hub/lane.py", "core/ReplaceFalseWithTrue",
             'line = (json.dumps(message, ensure_ascii=False, separators=(",", ":")) + "\\n").encode(',
             "ensure_ascii=True writes the same JSON with non-ASCII characters as \\u escapes: the server reads "
             "the same arguments"),
    Accepted(_INST, "core/ReplaceComparisonOperator_LtE_Lt",
             "if self.job is job and job.ctx.clock.remaining() <= NEAR_DEADLINE_S:", _TICK),
    Accepted(f"{S}executors/wasm/hostcalls.py", "core/NumberReplacer",
             "events = [_EVENT.pack(userdata, 0, 0, 0, 0)]",
             "the flags of a clock event: WASI defines them for fd events only (hang-up), and libc's sleep reads "
             "none of a clock event's fields but its error"),
    Accepted(_BS, "core/NumberReplacer", "return next(iter(self.in_flight)) if self.in_flight else lane[0]",
             "`lane[0]` → `lane[-1]`: the branch is taken only when exactly one call is waiting",
             "return next(iter(self.in_flight)) if self.in_flight else lane[ -1]"),
    Accepted(_BS, "core/NumberReplacer", "MAX_MESSAGE_BYTES = 128 * 1024 * 1024",
             "the line limit moved by under 1% (127, 129, 1023 or 1025 in its product): the reader's boundary is "
             "tested exactly on a small limit (a line of exactly the limit kept, one byte more refused), and lines "
             "far over this one are refused"),
    Accepted(_BS, "core/NumberReplacer", "LIMIT_EXCEEDED = -32050",
             "an implementation-defined error code that is only compared with this same constant (hub.mcp, "
             "bounded_http): a refusal is still recognised and named"),
    Accepted(_BS, "core/NumberReplacer", "_WRITER_FLUSH_TIMEOUT = 0.5",
             "how long shutdown lets the last writes flush before it stops the server (1.5 s, or none): what a "
             "server being stopped still receives, no limit and no process left running"),
    Accepted(_BS, "core/NumberReplacer", "_EDGE = 4096",
             "the window of a refused line's head and tail kept to find its id, one byte wider or narrower: the "
             "id is within a line's first or last few hundred bytes, and the window is bounded either way"),
    Accepted(_BS, "core/NumberReplacer",
             'return self._refuse(line, f"a message that is not JSON ({str(exc)[:200]})", types.PARSE_ERROR, exc=exc)',
             "the cut of the parser's message at 199 or 201 characters: json's and the recursion error's messages "
             "name a position, never the content, and are far shorter"),
    Accepted(_BS, "core/ReplaceFalseWithTrue",
             "parsed = types.jsonrpc_message_adapter.validate_python(data, by_name=False)",
             "by_name=True also accepts field names where they differ from aliases: the JSON-RPC envelope models "
             "have no aliases (params, result and error data are plain dicts), so the same messages validate"),
    *(Accepted(_BS, operator, _DETAIL, why, mutated) for operator, why, mutated in (
        ("core/ReplaceAndWithOr", "`and` → `or`: validate_python raises pydantic's ValidationError, whose errors "
         "is callable, so both read errors()", ""),
        ("core/NumberReplacer", "the else branch's cut: only a ValueError without errors() reaches it, which "
         "validate_python does not raise", _DETAIL.replace("[:200]", "[: 201]")),
        ("core/NumberReplacer", "the else branch's cut: only a ValueError without errors() reaches it, which "
         "validate_python does not raise", _DETAIL.replace("[:200]", "[: 199]")))),
    Accepted(_BS, "core/NumberReplacer",
             "read_stream_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)",
             "a one-message buffer between the reader and the session: the reader may hold one parsed message more "
             "before it waits on the session, so a flooding server's cost is two messages at most instead of one, "
             "each still under every limit (a bound kept, not lifted); killed in one run, not in the next",
             "read_stream_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception]( 1)"),
    Accepted(_BS, "core/NumberReplacer",
             "write_stream, write_stream_reader = anyio.create_memory_object_stream[SessionMessage](0)",
             "a one-message buffer between the session and the writer: the writer still records a request as in "
             "flight before it writes it, so its answer (or refusal) still finds it",
             "write_stream, write_stream_reader = anyio.create_memory_object_stream[SessionMessage]( 1)"),
    *(Accepted(_BS, operator, line, "whether a failed read of the server's stdout is logged as an error: "
               "logging only, the session ends the same way")
      for operator, line in (("core/ReplaceFalseWithTrue", "shutting_down = False"),
                             ("core/AddNot", "if not shutting_down:"),
                             ("core/ReplaceUnaryOperator_Delete_Not", "if not shutting_down:"),
                             ("core/ReplaceTrueWithFalse", "shutting_down = True"))),
    Accepted(_BS, "core/ExceptionReplacer", "except (anyio.BrokenResourceError, ConnectionError):",
             "a read error on the server's stdout pipe: a pipe ends with EOF when the server exits, so the "
             "handler is for a fault no server can cause; the session would end the same way"),
    *(Accepted(_BS, "core/ReplaceTrueWithFalse",
               "text = session_message.message.model_dump_json(by_alias=True, exclude_unset=True)", why, mutated)
      for why, mutated in (
        ("by_alias=False: the JSON-RPC envelope models have no aliases, the same bytes are written",
         "text = session_message.message.model_dump_json(by_alias=False, exclude_unset=True)"),
        ("exclude_unset=False writes unset fields with their defaults (`\"params\": null`): the same message "
         "to every server tested (TypeScript, Python, raw JSON lines); no bound reads it",
         "text = session_message.message.model_dump_json(by_alias=True, exclude_unset=False)"))),
    Accepted(_BS, "core/ExceptionReplacer", "except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):",
             "the writer's error on a dead server's pipe then ends its task instead of closing the read side: the "
             "reader's EOF has already ended the session, and the hub takes either as the server's death"),
    Accepted(_BS, "core/ExceptionReplacer", "except OSError as exc:  # a broken pipe is a closed connection, as the "
             "session's writer treats it",
             "a lane call written to a dead server's pipe fails as OSError, not BrokenResourceError: the call fails "
             "either way with a ToolCallError naming the server, and the reader's EOF marks it died"),
    Accepted(_BS, "core/ReplaceAndWithOr",
             'elif isinstance(message, types.JSONRPCNotification) and message.method == "notifications/cancelled":',
             "`and` → `or`: answers and requests are taken by the branches above, so only notifications get here; "
             "any other notification carries no requestId and discards nothing"),
    Accepted(_BS, "core/ReplaceOrWithAnd", "if stdout_done.is_set() or shutting_down:",
             "`or` → `and`: a server that exited with its stdout closed is then also 'stopped': its (empty) group "
             "is signalled and its finished pipe closed again, with a spurious warning; the left-process case, "
             "the one that matters, runs as before (tested)"),
    Accepted(_BS, "core/NumberReplacer", "_EXIT_POLL_S = 0.1",
             "how often the exit watcher polls: a server that died with its stdout held open is seen 1 s later; "
             "the call still fails as the server's death, long before its timeout (tested)"),
    *(Accepted(_BS, "core/NumberReplacer", "_EXIT_DRAIN_S = 1.0",
               "how long a dead server's stdout may stay open before what it left behind is stopped: 2 s, or none "
               "(what is still in the pipe, at most a pipe buffer, may be cut: only from a server that has "
               "already exited); the leftover is stopped either way (tested)", mutated)
      for mutated in ("_EXIT_DRAIN_S = 2.0", "_EXIT_DRAIN_S = 0.0")),
    Accepted(_BS, "core/AddNot", "if flush_scope.cancelled_caught:",
             "a cancel-shielded checkpoint taken or skipped: a scheduling point, no state changes"),
    Accepted(f"{S}hub/lane.py", "core/NumberReplacer", "_CANCEL_WRITE_S = 1.0",
             "how long a cancel notice may take to write (2 s instead of 1): it is a courtesy, written at once "
             "when the server reads; 0 is killed (the notice is never written)",
             "_CANCEL_WRITE_S = 2.0"),
    Accepted(f"{S}hub/lane.py", "core/ReplaceAndWithOr",
             "if self._waiting.pop(request_id, None) is not None and not self._closed:",
             "`and` → `or`: a cancel notice then also goes to a closed pipe (its write error is swallowed) or for "
             "a call just answered (a server ignores a cancel for a request it has answered, as the protocol says)"),
    Accepted(_RENDER, "core/ReplaceBinaryOperator_Sub_Add",
             "if stripped.endswith('\"') and (len(stripped) - 1 - len(stripped[:-1].rstrip(\"\\\\\"))) % 2 == 0:",
             "either `-` → `+` in the count of backslashes before a last quote: a - b and a + b have the same "
             "parity, and only the parity is read"),
    Accepted(f"{S}compiler/naming.py", "core/ReplaceComparisonOperator_LtE_Lt",
             'if text.isascii() or max(text) <= "\\uffff":',
             "`<=` → `<`: a text whose highest character is exactly U+FFFF is then written by ascii() instead of "
             "json.dumps, the same value in other quotes (both read back as the same string)"),
    Accepted(_RENDER, "core/ReplaceTrueWithFalse", "@dataclass(frozen=True)",
             "Arg unfrozen: nothing assigns to an Arg's fields or hashes one, so nothing changes"),
    Accepted(_RENDER, "core/ReplaceFalseWithTrue", "has_default: bool = False",
             "the default of Arg.has_default: _build always passes it, and nothing reads the field"),
    Accepted(_WRITER, "core/ReplaceAndWithOr", "if path.parent != out_dir and not any(path.parent.iterdir()):",
             "`and` → `or`: rmdir then also tries a directory that is not empty and fails (suppressed); the root "
             "is never empty (its __init__ and index were just written): the same directories are removed"),
    Accepted(_RENDER, "core/NumberReplacer", _PARAGRAPH,
             "`split(\"\\n\\n\", 1)[0]` → `split(…, 2)[0]`: the first part is the same whatever the split's limit",
             _PARAGRAPH.replace('", 1)', '", 2)')),
    Accepted(_RENDER, "core/NumberReplacer", "return out[0] + '\"\"\"'",
             "`out[0]` → `out[-1]` when `out` holds exactly one line: the same line",
             "return out[ -1] + '\"\"\"'"),
    *(Accepted(_WRITER, "core/NumberReplacer", line,
               f"the {what} cut one hex digit shorter or longer: any change to the compiler (this mutant included) "
               "changes the version, and a tool's hash is compared only with its own record; 44 to 84 bits of "
               "SHA-256 stay far past an accidental match")
      for line, what in (('return "2-" + digest.hexdigest()[:12]', "compiler version's digest"),
                         ("return hashlib.sha256(payload.encode()).hexdigest()[:20]", "tool hash"))),
    # Twelfth round (stop 31): hostcalls and instance.
    Accepted(_HC, "core/ReplaceComparisonOperator_Lt_LtE", "if ptr < 0 or ptr + len(data) > size:",
             "`ptr < 0` → `ptr <= 0` in _write: a host write at guest address 0 (C's NULL, where no guest buffer "
             "lives) refused too: stricter", "if ptr <= 0 or ptr + len(data) > size:"),
    Accepted(_HC, "core/ReplaceComparisonOperator_Lt_LtE", "if ptr < 0 or ptr + count > size:",
             "`ptr < 0` → `ptr <= 0` in fd_pread: a buffer at guest address 0 refused too: stricter",
             "if ptr <= 0 or ptr + count > size:"),
    Accepted(_HC, "core/ReplaceBreakWithContinue", "break",
             "GuestFrame.read walks on past the frame's end instead of stopping: every later buffer's slice is "
             "empty (lo >= end >= hi) and skipped, so the same bytes (at most 1,024 buffers walked)"),
    Accepted(_HC, "core/NumberReplacer", "base = ctypes.cast(memory.data_ptr(caller), ctypes.c_void_p).value or 0",
             "the fallback for a NULL memory address: a wasm memory's data pointer is never NULL"),
    Accepted(_HC, "core/NumberReplacer",
             "source = ctypes.cast(ctypes.c_char_p(pending), ctypes.c_void_p).value or 0",
             "the fallback for a NULL bytes address: a bytes object's buffer (even b'') is never NULL"),
    Accepted(_HC, "core/NumberReplacer", "waits.append((max(remaining, 0), userdata))",
             "a deadline already past counts as -1 ns instead of 0: the poll answers at once either way; only "
             "which of two expired subscriptions is reported first can change, both are expired",
             "waits.append((max(remaining, -1), userdata))"),
    Accepted(_HC, "core/NumberReplacer", "guest.wake.wait(wait_ns / 1e9)",
             "nanoseconds to seconds divided by 1e9 ± 1: a sleep one part in a billion shorter or longer"),
    Accepted(_INST, "core/ReplaceAndWithOr",
             'elif message.get("ready") and not self.ready.is_set():  # the boot\'s hello, once',
             "a later hello is read again (its capture addresses, ready set again) instead of ignored: the guest "
             "named its capture addresses at boot already, so a second hello gives it nothing more, and it still "
             "goes on to _next_job, which never blocks once stopping (the exit-frame attack test)"),
    Accepted(_INST, "core/ReplaceAndWithOr", "if self.memory is not None and store is not None:",
             "`and` → `or`: with either one None, data_len raises inside contextlib.suppress and `used` stays None, "
             "as when the condition is false"),
    Accepted(_INST, "core/NumberReplacer", "_EXIT_GRACE_S = 0.5",
             "how long a stopped idle guest has to take its exit frame before it is interrupted (-0.5: at once; "
             "1.5: a second later): the instance ends either way, and a stopping instance's trap is not logged"),
    Accepted(_INST, "core/NumberReplacer", "_SCRATCH_POLL_S = 0.5",
             "the scratch watch every 1.5 s instead of 0.5 s: a tuning figure; the quotas are checked again at each "
             "run's end (the -0.5 variant, a hot loop, is killed)", "_SCRATCH_POLL_S = 1.5"),
    # Thirteenth round (stop 32).
    Accepted(_INST, "core/ReplaceComparisonOperator_Lt_LtE", "if when < self._deadline_alarm:",
             "`<` → `<=`: a deadline alarm already pending for that very instant is armed a second time; _deadline "
             "is idempotent (the second finds the job timed out, or interrupts again, or re-arms once), and an "
             "infinite deadline (a paused clock) is never queued (Alarm.at, test_alarm.py)"),
    Accepted(_INST, "core/ReplaceUnaryOperator_Delete_Not",
             "elif job is None and trap is not None and not isinstance(trap, wasmtime.ExitTrap) and not self.stopping:",
             "which idle deaths are logged (a log line, no decision): a guest runs only inside a job (between jobs it "
             "is blocked in the host call that waits for the next one) or after its exit frame (stopping), so an "
             "interpreter that is neither running a job nor stopping never traps; the run's own trap not being "
             "logged is tested (test_a_runs_own_trap_is_its_result_not_an_idle_interpreters_warning)"),
    Accepted(_HC, "core/ReplaceComparisonOperator_LtE_Lt", "if not 0 <= length <= min(allocated, cap_chars * 4):",
             "`0 <=` → `0 <`: an empty capture buffer is refused instead of read; either way its text is \"\"",
             "if not 0 < length <= min(allocated, cap_chars * 4):"),
    Accepted(f"{S}executors/wasm/alarm.py", "core/ReplaceComparisonOperator_Gt_GtE",
             "while not self._heap or self._heap[0][0] > time.monotonic():", _TICK.replace("the event ages out (or "
             "the session expires)", "a deadline's callback runs")),
)


_ANNOTATION = "inside a type annotation"
_NOT_MUTANTS = ("Filtered operator", _ANNOTATION, None)
_LEDGER = "killed in an earlier sitting (tests/mutation-ledger)"
_LEDGER_ACCEPTED = "accepted in an earlier sitting (tests/mutation-ledger)"
LEDGER_DIR = ROOT / "tests" / "mutation-ledger"


@dataclasses.dataclass
class Mutant:
    """One cosmic-ray work item and its result."""

    path: str
    operator: str
    line_no: int
    line: str
    outcome: str  # killed, survived, accepted, incompetent, skipped, pending
    diff: str
    why: str = ""
    job_id: str = ""
    occurrence: int = -1
    earlier: bool = False
    """Killed in an earlier sitting (the ledger), not run again this time."""


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _pytest_argv(tests: tuple[str, ...] | list[str], timeout: float | None = None) -> list[str]:
    # A mutant that hangs one test is a kill once that test passes its timeout (pytest-timeout's thread method
    # ends the process with exit 1, whatever the hang), not after the whole command's timeout of several minutes.
    bound = [f"--timeout={timeout:.0f}", "--timeout-method=thread"] if timeout else []
    return [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header", *bound, *tests]


def _fresh_basetemp(tree: Path) -> str:
    """pytest's ``--basetemp`` option for a run in ``tree``: a temporary directory of the tree's own, emptied.

    A mutant of the scratch code leaves the 1,200-level trees its tests nest behind; in pytest's shared
    temporary root, pytest's own cleanup (``shutil.rmtree``, one recursion per level) then failed at the end
    of every later session on the machine, and each of those failures counted as a kill. ``rm -rf`` takes any
    depth."""
    basetemp = tree.parent / f".{tree.name}-pytest"
    subprocess.run(["rm", "-rf", str(basetemp)], check=False)
    return f"--basetemp={basetemp}"


def _pytest(tests: tuple[str, ...] | list[str], tree: Path, timeout: float | None = None) -> int:
    """Run ``tests`` in ``tree`` (its own temporary directory, emptied first); pytest's exit code."""
    return subprocess.run([*_pytest_argv(tests, timeout), _fresh_basetemp(tree)], cwd=tree, check=False).returncode


_PLAN, _PRISTINE = ".mutation-plan.json", ".mutation-pristine"
_DURATION = re.compile(r"^(\d+\.\d+)s (?:setup|call|teardown)\s+(\S.*)$")


def _clean_run(tree: Path, target: Target, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The module's tests unmutated, under coverage with the test's node id as each line's context."""
    argv = [*_pytest_argv(target.tests), f"--cov={tree / 'src' / 'codemode'}", "--cov-context=test",
            "--cov-report=", "--durations=0", "--durations-min=0"]
    return subprocess.run([*argv, _fresh_basetemp(tree)], cwd=tree,
                          env={**env, "COVERAGE_FILE": str(tree / ".coverage")}, capture_output=True, text=True,
                          check=False)


def _own_lines(path: Path) -> dict[int, range]:
    """For each source line, the lines whose tests it needs: those of the statement that owns it (a compound
    statement owns its header), or the whole function for a line of a function's header, whose defaults and
    decorators run at import but act in the function's calls."""
    owner: dict[int, range] = {}
    nodes = sorted((n for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(n, ast.stmt)),
                   key=lambda n: n.lineno)
    for node in nodes:  # outer statements first: an inner one then claims its own lines
        start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))])
        body = getattr(node, "body", None)
        end = body[0].lineno - 1 if isinstance(body, list) and body else (node.end_lineno or node.lineno)
        span = range(start, max(start, end) + 1)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            span = range(start, (node.end_lineno or end) + 1)
        for line in range(start, max(start, end) + 1):
            owner[line] = span
    return owner


def _write_plan(tree: Path, target: Target, clean_stdout: str) -> tuple[int, int]:
    """Map each line of the sources to the tests that run it; keep the sources as they were."""
    from coverage import CoverageData

    seconds: dict[str, float] = {}
    for row in clean_stdout.splitlines():
        if found := _DURATION.match(row.strip()):
            seconds[found[2]] = seconds.get(found[2], 0.0) + float(found[1])
    data = CoverageData(basename=str(tree / ".coverage"))
    data.read()
    lines: dict[str, dict[str, list[str]]] = {}
    for source in target.sources:
        by_line = data.contexts_by_lineno(str((tree / source).resolve()))
        # The empty context is the import, before any test: a module-level line (a constant, a default) is
        # read by every test, so "*" sends its mutants to the whole selection.
        lines[source] = {str(n): sorted({c.split("|")[0] or "*" for c in ctx}) for n, ctx in by_line.items()}
        (tree / _PRISTINE / source).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(tree / source, tree / _PRISTINE / source)
    # Each test's bound in a mutant's run: several times the slowest test, so a slow machine is not a kill.
    per_test = max(60.0, 5 * max(seconds.values(), default=0.0))
    plan = {"sources": list(target.sources), "tests": list(target.tests), "lines": lines, "seconds": seconds,
            "per_test_timeout": per_test}
    (tree / _PLAN).write_text(json.dumps(plan), encoding="utf-8")
    return len(seconds), sum(len(v) for v in lines.values())


def _changed_lines(tree: Path, source: str) -> set[int]:
    before = (tree / _PRISTINE / source).read_text(encoding="utf-8").splitlines()
    after = (tree / source).read_text(encoding="utf-8").splitlines()
    changed: set[int] = set()
    for tag, i1, i2, _, _ in difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes():
        if tag != "equal":
            changed.update(range(i1 + 1, max(i1, i2) + 1) or (i1,))
    return changed


def covering(tree: Path) -> int:
    """The test command of one mutant: the tests that run its line, quickest first, then the others (every test
    quickest first when the plan cannot say; the whole selection as the modules lists it when pytest could not
    take the node ids)."""
    plan = json.loads((tree / _PLAN).read_text(encoding="utf-8"))
    bound = float(plan["per_test_timeout"])
    chosen: set[str] = set()
    for source in plan["sources"]:
        changed = _changed_lines(tree, source)
        if not changed:
            continue
        owner = _own_lines(tree / _PRISTINE / source)
        for line in changed:
            for n in owner.get(line, range(line, line + 1)):
                chosen.update(plan["lines"][source].get(str(n), ()))
    quickest = sorted(plan["seconds"], key=lambda test: (plan["seconds"][test], test))
    if chosen - {"*"}:  # a function header's "*" (its import) goes with the tests of the function's calls
        first = [test for test in quickest if test in chosen]
        _say(f"tests that run the mutated line: {len(first)}")
        # Only a failed test (exit 1) is a kill here: a node id pytest could not take (4, 5) proves nothing,
        # and the whole selection below still sees an import the mutant broke.
        done = _pytest(first, tree, bound) if first else 0
        if done == 1:
            return 1
        rest = [test for test in quickest if test not in chosen]
        if done == 0:  # they pass: the others must too, for a survivor (each test once, not twice)
            _say(f"the other tests: {len(rest)}")
            done = _pytest(rest, tree, bound) if rest else 0
            if done in (0, 1):
                return done
    elif quickest:  # a module-level line, read by every test, or a line no test runs: every test, quickest first
        _say(f"every test, quickest first: {len(quickest)}")
        done = _pytest(quickest, tree, bound)
        if done in (0, 1):
            return done
    _say("the whole selection")
    return _pytest(plan["tests"], tree, bound)


def _config(tree: Path, target: Target, timeout: float) -> str:
    command = shlex.join(["env", f"PYTHONPATH={tree / 'src'}", sys.executable, str(tree / "scripts" / "mutation.py"),
                          "--covering", str(tree)])
    keep = "|".join(f"(?:{pattern})" for pattern in KEPT_OPERATORS)
    lines = [
        "[cosmic-ray]",
        f"module-path = {json.dumps(list(target.sources))}",
        f"timeout = {timeout:.0f}",
        "excluded-modules = []",
        f"test-command = {json.dumps(command)}",
        "",
        "[cosmic-ray.distributor]",
        'name = "local"',
        "",
        "[cosmic-ray.filters.operators-filter]",
        # The filter skips what matches: everything that is not one of the kept operators.
        f"exclude-operators = {json.dumps([f'^(?!(?:{keep})$)'])}",
        "",
    ]
    return "\n".join(lines)


def _tool(name: str) -> str:
    found = Path(sys.executable).parent / name
    if not found.exists():
        raise SystemExit(f"{name} not found beside {sys.executable}: pip install -e '.[mutation]'")
    return str(found)


def _run(argv: list[str], cwd: Path) -> None:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:2])} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def _place(item: Any) -> tuple[str, str, int]:
    mutation = item.mutations[0]
    return str(mutation.module_path), str(mutation.operator_name), int(mutation.occurrence)


def _limit(session: Path, limit: int, seed: int) -> int:
    """Keep ``limit`` pending work items spread over the module (a seeded sample), skip the rest."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    with use_db(str(session), WorkDB.Mode.open) as db:
        # Sorted by place, not by job id (a fresh uuid per init), so one seed picks the same mutants every run.
        pending = [item.job_id for item in sorted(db.pending_work_items, key=_place)]
        if len(pending) <= limit:
            return 0
        keep = set(random.Random(seed).sample(pending, limit))
        for job_id in pending:
            if job_id not in keep:
                db.set_result(job_id, WorkResult(output="over --limit", worker_outcome=WorkerOutcome.SKIPPED))
        return len(pending) - limit


def _annotation_lines(path: Path) -> set[tuple[int, int, int, int]]:
    spans: set[tuple[int, int, int, int]] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        notes: list[ast.expr | None] = []
        if isinstance(node, ast.arg):
            notes.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            notes.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            notes.append(node.annotation)
        for note in notes:
            if note is not None and note.end_lineno is not None and note.end_col_offset is not None:
                spans.add((note.lineno, note.col_offset, note.end_lineno, note.end_col_offset))
    return spans


def _skip_annotations(tree: Path, session: Path) -> int:
    """Skip mutants inside type annotations: with postponed evaluation they never run (``bytes | None``)."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    spans: dict[str, set[tuple[int, int, int, int]]] = {}
    skipped = 0
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item in list(db.pending_work_items):
            mutation = item.mutations[0]
            path = str(mutation.module_path)
            found = spans.setdefault(path, _annotation_lines(tree / path))
            row, col = mutation.start_pos  # 1-based row, 0-based column, like ast
            if any((r0, c0) <= (row, col) < (r1, c1) for r0, c0, r1, c1 in found):
                db.set_result(item.job_id, WorkResult(output=_ANNOTATION, worker_outcome=WorkerOutcome.SKIPPED))
                skipped += 1
    return skipped


def _accepted(path: str, operator: str, line: str, diff: str) -> Accepted | None:
    added = [row[1:].strip() for row in diff.splitlines() if row.startswith("+") and not row.startswith("+++")]
    for entry in ACCEPTED:
        if entry.path == path and entry.operator == operator and entry.line == line:
            if not entry.mutated or entry.mutated in added:
                return entry
    return None


def _results(tree: Path, session: Path) -> list[Mutant]:
    dump = subprocess.run([_tool("cosmic-ray"), "dump", str(session)], cwd=tree, capture_output=True, text=True,
                          check=True)
    sources: dict[str, list[str]] = {}
    mutants: list[Mutant] = []
    for raw in dump.stdout.splitlines():
        item, result = json.loads(raw)
        mutation = item["mutations"][0]
        path = mutation["module_path"]
        text = sources.setdefault(path, (tree / path).read_text(encoding="utf-8").splitlines())
        line_no = mutation["start_pos"][0]
        line = text[line_no - 1].strip()
        if result is None:
            outcome, diff = "pending", ""
        elif result["worker_outcome"] == "skipped" and result.get("output") in _NOT_MUTANTS:
            continue  # an operator not kept, a type annotation, a "pragma: no mutate" line: not counted at all
        elif result["worker_outcome"] == "skipped" and result.get("output") == _LEDGER:
            outcome, diff = "killed", ""
        elif result["worker_outcome"] == "skipped" and result.get("output") == _LEDGER_ACCEPTED:
            outcome, diff = "survived", result.get("diff") or ""  # accepted below, when ACCEPTED still lists it
        elif result["worker_outcome"] in ("skipped", "no-test"):
            outcome, diff = "skipped", ""
        else:
            outcome = {"killed": "killed", "survived": "survived"}.get(result.get("test_outcome") or "", "incompetent")
            diff = result.get("diff") or ""
        earlier = result is not None and result.get("output") in (_LEDGER, _LEDGER_ACCEPTED)
        mutant = Mutant(path, mutation["operator_name"], line_no, line, outcome, diff, job_id=item["job_id"],
                        occurrence=int(mutation["occurrence"]), earlier=earlier)
        if outcome == "survived" and (entry := _accepted(path, mutant.operator, line, diff)) is not None:
            mutant.outcome, mutant.why = "accepted", entry.why
        mutants.append(mutant)
    return mutants


def _digests(root: Path, target: Target) -> dict[str, str]:
    return {source: hashlib.sha256((root / source).read_bytes()).hexdigest() for source in target.sources}


def _key(path: str, operator: str, occurrence: int, line_no: int) -> tuple[str, str, int, int]:
    return path, operator, occurrence, line_no


def _ledger_text(data: dict[str, Any]) -> str:
    # One mutant per line: a later sitting's ledger differs from this one by the lines of its new kills.
    head = {k: v for k, v in data.items() if k not in ("killed", "accepted")}
    parts = [json.dumps(head, indent=1)[:-2] + ","]
    for field in ("killed", "accepted"):
        rows = ",\n".join(f"  {json.dumps(row, ensure_ascii=False)}" for row in data[field])
        parts.append(f' "{field}": [\n{rows}\n ]' if rows else f' "{field}": []')
    return parts[0] + "\n" + ",\n".join(parts[1:]) + "\n}\n"


def write_ledger(name: str, target: Target, mutants: list[Mutant], ledger_dir: Path = LEDGER_DIR) -> Path:
    """Record the module's killed and accepted mutants (with the sources they are mutants of); atomic, stable."""
    killed = sorted({_key(m.path, m.operator, m.occurrence, m.line_no) for m in mutants if m.outcome == "killed"})
    accepted = sorted([*_key(m.path, m.operator, m.occurrence, m.line_no), m.diff]
                      for m in mutants if m.outcome == "accepted")
    data = {"module": name, "sources": _digests(ROOT, target), "killed": [list(k) for k in killed],
            "accepted": accepted}
    ledger_dir.mkdir(parents=True, exist_ok=True)
    path = ledger_dir / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(_ledger_text(data), encoding="utf-8")
    tmp.replace(path)
    return path


def _apply_ledger(name: str, target: Target, session: Path, ledger_dir: Path = LEDGER_DIR) -> int:
    """Mark the mutants the ledger saw killed or accepted, of these very sources, as such; return how many."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    path = ledger_dir / f"{name}.json"
    if not path.exists():
        return 0
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("sources") != _digests(ROOT, target):
        _say(f"{name}: a source changed since {path.name} was written: every mutant runs again")
        return 0
    killed = {_key(*row) for row in data.get("killed", [])}
    accepted = {_key(*row[:4]): str(row[4]) for row in data.get("accepted", [])}
    marked = 0
    texts: dict[str, list[str]] = {}

    def lines(source: str) -> list[str]:
        return texts.setdefault(source, (ROOT / source).read_text(encoding="utf-8").splitlines())

    with use_db(str(session), WorkDB.Mode.open) as db:
        for item in list(db.pending_work_items):
            mutation = item.mutations[0]
            where = _key(str(mutation.module_path), str(mutation.operator_name), int(mutation.occurrence),
                         int(mutation.start_pos[0]))
            if where in killed:
                db.set_result(item.job_id, WorkResult(output=_LEDGER, worker_outcome=WorkerOutcome.SKIPPED))
                marked += 1
            elif where in accepted and _accepted(where[0], where[1], lines(where[0])[where[3] - 1].strip(),
                                                 accepted[where]) is not None:  # still listed in ACCEPTED
                db.set_result(item.job_id, WorkResult(output=_LEDGER_ACCEPTED, diff=accepted[where],
                                                      worker_outcome=WorkerOutcome.SKIPPED))
                marked += 1
    return marked


def _resume(tree: Path, target: Target, session: Path) -> int:
    """Bring a kept run's copy up to the checkout's tests; its survivors run again. Refused if a source changed."""
    for source in target.sources:
        kept = tree / _PRISTINE / source
        if not kept.exists() or kept.read_bytes() != (ROOT / source).read_bytes():
            raise SystemExit(f"{source} changed since the run kept in {tree} began: its mutants are not this "
                             "source's. Remove that directory to start again.")
    # The checkout's files over the copy: the tests added since, and a source left mutated by a run that was
    # stopped mid-mutant put back (its mutant has no result, so it runs again).
    shutil.copytree(ROOT, tree, ignore=_SKIP, symlinks=True, dirs_exist_ok=True)
    again = [m.job_id for m in _results(tree, session) if m.outcome == "survived"]
    with sqlite3.connect(session) as db:  # cosmic-ray's WorkDB can set a result but not remove one
        db.executemany("DELETE FROM work_results WHERE job_id = ?", [(job,) for job in again])
    return len(again)


def run_module(name: str, target: Target, workdir: Path, limit: int | None, seed: int,
               ledger: bool = True) -> list[Mutant]:
    """Mutate one module in a copy of the repository and return every mutant with its outcome.

    A copy already in ``workdir`` (``--keep``) is a run stopped before its end: it goes on from its session, and
    its survivors run again against the tests written since."""
    tree = workdir / name
    config, session = tree / "cosmic-ray.toml", tree / "session.sqlite"
    resumed = session.exists()
    if resumed:
        again = _resume(tree, target, session)
        _say(f"{name}: going on with the run kept in {tree}; its {again} survivors run again")
    else:
        shutil.rmtree(tree, ignore_errors=True)  # a copy whose session was never made: nothing to keep
        shutil.copytree(ROOT, tree, ignore=_SKIP, symlinks=True)
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    started = time.monotonic()
    clean = _clean_run(tree, target, env)
    took = time.monotonic() - started
    if clean.returncode != 0:
        # pytest's usage errors (the mutation extra not installed: no --cov) go to stderr, not stdout
        said = (clean.stdout + clean.stderr)[-3000:]
        raise SystemExit(f"{name}: the tests fail unmutated, every mutant would be 'killed':\n{said}")
    tests, lines = _write_plan(tree, target, clean.stdout)
    # A mutant that makes the tests hang is killed by the timeout (a hang is noticed too); a generous multiple
    # of the clean run keeps a slow but passing mutant from being counted as killed.
    timeout = max(120.0, 5 * took)
    config.write_text(_config(tree, target, timeout), encoding="utf-8")
    dropped = 0
    if not resumed:
        made = session.with_suffix(".partial")
        made.unlink(missing_ok=True)
        _run([_tool("cosmic-ray"), "init", str(config), str(made)], tree)
        _run([_tool("cr-filter-operators"), str(made), str(config)], tree)
        _run([_tool("cr-filter-pragma"), str(made)], tree)
        _skip_annotations(tree, made)
        earlier = _apply_ledger(name, target, made) if ledger else 0
        if earlier:
            _say(f"{name}: {earlier} mutants killed or accepted in an earlier sitting (the ledger) are not run again")
        dropped = _limit(made, limit, seed) if limit is not None else 0
        made.rename(session)  # only a session whose filters all ran is one to go on from
    pending = sum(1 for m in _results(tree, session) if m.outcome == "pending")
    over = f" ({dropped} over --limit)" if dropped else ""
    _say(f"{name}: clean run {took:.1f} s ({tests} tests, {lines} lines covered); {pending} mutants to run{over}")
    done = subprocess.run([_tool("cosmic-ray"), "exec", str(config), str(session)], cwd=tree, check=False,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if done.returncode != 0:  # stopped (an interrupt) or broken: report what ran; a kept copy goes on next time
        _say(f"{name}: cosmic-ray exec stopped with exit {done.returncode}; the mutants not yet run are reported "
             "as not run")
    mutants = _results(tree, session)
    if ledger and limit is None:  # a sample's kills are kills too, but a sampled run is not the one to extend
        _say(f"{name}: ledger {write_ledger(name, target, mutants).relative_to(ROOT)}")
    return mutants


def _count(mutants: list[Mutant], outcome: str) -> int:
    return sum(1 for m in mutants if m.outcome == outcome)


def report(by_module: dict[str, list[Mutant]], seconds: float) -> str:
    """The markdown report: a table per module, then every survivor's diff."""
    out = ["# Mutation report (cosmic-ray)", "",
           f"Modules: {', '.join(by_module)}; {seconds / 60:.1f} min. Operators: {', '.join(KEPT_OPERATORS)}.", "",
           "| module | files | killed | of which in an earlier sitting | survived | accepted (equivalent) | "
           "incompetent | not run |",
           "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, mutants in by_module.items():
        not_run = _count(mutants, "skipped") + _count(mutants, "pending")
        earlier = sum(1 for m in mutants if m.earlier)
        out.append(f"| {name} | {' '.join(MODULES[name].sources)} | {_count(mutants, 'killed')} | {earlier} | "
                   f"{_count(mutants, 'survived')} | {_count(mutants, 'accepted')} | "
                   f"{_count(mutants, 'incompetent')} | {not_run} |")
    for title, outcome in (("Surviving mutants", "survived"), ("Accepted equivalent mutants", "accepted")):
        rows = [(name, m) for name, mutants in by_module.items() for m in mutants if m.outcome == outcome]
        if not rows:
            continue
        out += ["", f"## {title}", ""]
        for name, m in rows:
            out += [f"### {name}: {m.path}:{m.line_no} {m.operator}", ""]
            if m.why:
                out += [m.why, ""]
            out += ["```diff", m.diff.strip(), "```", ""]
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--module", action="append", choices=sorted(MODULES), help="a module to mutate (repeatable)")
    parser.add_argument("--limit", type=int, help="run at most this many mutants per module (a seeded sample)")
    parser.add_argument("--seed", type=int, default=17, help="the sample's seed (with --limit)")
    parser.add_argument("--report", type=Path, default=ROOT / ".mutation" / "report.md")
    parser.add_argument("--list", action="store_true", help="print the modules and their tests and exit")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep each module's copy and session in DIR/<module>; run again, it goes on from there "
                             "(a long module over several sittings)")
    parser.add_argument("--no-ledger", action="store_true",
                        help="run every mutant, ignoring (and not writing) tests/mutation-ledger")
    parser.add_argument("--export", action="store_true",
                        help="write the ledger of each module kept in --keep DIR from its session, run nothing")
    parser.add_argument("--covering", type=Path, help=argparse.SUPPRESS)  # one mutant's test command
    args = parser.parse_args(argv)
    if args.covering is not None:
        return covering(args.covering)
    chosen = args.module or list(MODULES)
    if args.list:
        for name in chosen:
            _say(f"{name:14} {' '.join(MODULES[name].sources)}\n{'':14} tests: {' '.join(MODULES[name].tests)}")
        return 0
    if args.export:
        if args.keep is None:
            parser.error("--export needs --keep DIR")
        for name in chosen:
            tree = args.keep.resolve() / name
            if not (tree / "session.sqlite").exists():
                continue
            if _digests(tree / _PRISTINE, MODULES[name]) != _digests(ROOT, MODULES[name]):
                raise SystemExit(f"{name}: a source changed since the run kept in {tree}: its kills are not this "
                                 "source's")
            _say(f"{name}: ledger {write_ledger(name, MODULES[name], _results(tree, tree / 'session.sqlite'))}")
        return 0
    started = time.monotonic()
    by_module: dict[str, list[Mutant]] = {}
    with contextlib.ExitStack() as stack:
        workdir = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="codemode-mutation-")))
        for name in chosen:
            by_module[name] = run_module(name, MODULES[name], workdir.resolve(), args.limit, args.seed,
                                         ledger=not args.no_ledger)
            mutants = by_module[name]
            _say(f"{name}: {_count(mutants, 'killed')} killed, {_count(mutants, 'survived')} survived, "
                 f"{_count(mutants, 'accepted')} accepted, {_count(mutants, 'incompetent')} incompetent")
    text = report(by_module, time.monotonic() - started)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text, encoding="utf-8")
    _say(f"report: {args.report}")
    return 1 if any(m.outcome == "survived" for mutants in by_module.values() for m in mutants) else 0


if __name__ == "__main__":
    sys.exit(main())
