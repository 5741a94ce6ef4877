"""The guest's side of the protocol in both executors, against the demo servers: the error classes a program
catches (through RestrictedPython's guards too), the tracebacks it shows, and a guest of another version."""

from __future__ import annotations

import pytest

from codemode import protocol
from codemode.executors import ExecutorKind, Limits
from tests.conftest import Sandbox
from tests.security.helpers import assert_healthy, run, run_value

pytestmark = pytest.mark.anyio

EXECUTORS: list[ExecutorKind] = ["wasm", "restricted"]

GHOST_STUB = '''\
from codemode_runtime import call as _call


def vanish() -> object:
    """A stub for a tool no server has."""
    return _call("notes", "vanish", {})
'''

CLASSIFY = """
from stubs import ghost, notes

def classify(thunk):
    try:
        thunk()
    except QuotaExceeded as e:
        return ['QuotaExceeded', e.kind, e.retryable]
    except UnknownTool as e:
        return ['UnknownTool', e.kind, e.retryable]
    except (ToolTimeout, ToolUnavailable, ToolDenied, ApprovalPending, CallCancelled, BridgeError) as e:
        return ['a subclass', e.kind, e.retryable]
    except ToolError as e:
        return ['ToolError', e.kind, e.retryable, e.server, e.tool]

[
    classify(lambda: notes.get_note(note_id=999)),
    classify(lambda: notes.search_notes(query='x' * 5_000_000)),
    classify(lambda: ghost.vanish()),
    classify(lambda: notes.list_tags()),
]
"""
"""Four calls under a quota of three: a tool error, arguments too large, an unknown tool, the quota."""

RAISED = """
def raised(cls):
    try:
        raise cls('notes', 'get_note', 'made up')
    except ToolTimeout as e:
        return ['ToolTimeout', e.kind, e.retryable, isinstance(e, ToolError)]
    except ToolError as e:
        return [isinstance(e, cls), e.kind, e.retryable, e.message]

[raised(c) for c in (ToolTimeout, ToolUnavailable, ToolDenied, ApprovalPending, QuotaExceeded, UnknownTool,
                     CallCancelled, BridgeError, ToolError)]
"""


@pytest.fixture(scope="module", autouse=True)
def _ghost_stub(demo_sandbox: Sandbox) -> None:
    (demo_sandbox.stubs_dir / "ghost.py").write_text(GHOST_STUB, encoding="utf-8")


@pytest.mark.parametrize("kind", EXECUTORS)
async def test_the_host_refusals_are_caught_as_their_classes(demo_sandbox: Sandbox, kind: ExecutorKind) -> None:
    async with demo_sandbox.executor(kind) as ex:
        caught = await run_value(ex, CLASSIFY, limits=Limits(wall_s=20, max_tool_calls=3))
        assert caught == [
            ["ToolError", "tool", False, "notes", "get_note"],
            ["QuotaExceeded", "too_large", False],
            ["UnknownTool", "unknown", False],
            ["QuotaExceeded", "quota", False],
        ]
        await assert_healthy(ex)


@pytest.mark.parametrize("kind", EXECUTORS)
async def test_every_class_can_be_raised_and_caught(demo_sandbox: Sandbox, kind: ExecutorKind) -> None:
    async with demo_sandbox.executor(kind) as ex:
        # Nothing here waits; a wide limit so that a loaded machine (a parallel suite) does not time it out.
        assert await run_value(ex, RAISED, limits=Limits(wall_s=30)) == [
            ["ToolTimeout", "timeout", True, True],
            [True, "upstream", True, "made up"],
            [True, "denied", False, "made up"],
            [True, "awaiting", True, "made up"],
            [True, "quota", False, "made up"],
            [True, "unknown", False, "made up"],
            [True, "cancelled", False, "made up"],
            [True, "bridge", False, "made up"],
            [True, "tool", False, "made up"],
        ]


@pytest.mark.parametrize("kind", EXECUTORS)
async def test_tracebacks_name_the_users_line_and_the_stub(demo_sandbox: Sandbox, kind: ExecutorKind) -> None:
    async with demo_sandbox.executor(kind) as ex:
        result = await run(
            ex, "from stubs import notes\ndef find(q):\n    return notes.search_notes(query=q)\nfind('x' * 5_000_000)"
        )
        assert not result.ok and result.error is not None
        assert result.error.type == "codemode_runtime.QuotaExceeded"
        lines = result.error.traceback.splitlines()
        assert lines[0] == "Traceback (most recent call last):"
        assert lines[1] == '  File "<execution-1>", line 4, in <module>'
        assert lines[3] == '  File "<execution-1>", line 3, in find'
        assert lines[4] == "    return notes.search_notes(query=q)"
        assert any(line.startswith('  File "/stubs/notes/search_notes.py", line ') for line in lines)
        assert lines[-1].startswith("codemode_runtime.QuotaExceeded: notes.search_notes: arguments are 5,000,")
        assert "codemode_runtime/" not in result.error.traceback  # the runtime's own frames are hidden

        unknown = await run(ex, "from stubs import ghost\nghost.vanish()")
        assert unknown.error is not None and unknown.error.type == "codemode_runtime.UnknownTool"
        assert '  File "/stubs/ghost.py", line 6, in vanish' in unknown.error.traceback
        assert unknown.error.traceback.endswith(
            "codemode_runtime.UnknownTool: notes.vanish: server 'notes' has no tool 'vanish'\n"
        )


@pytest.mark.parametrize("kind", EXECUTORS)
async def test_a_huge_error_keeps_what_was_raised_and_its_end(demo_sandbox: Sandbox, kind: ExecutorKind) -> None:
    # The traceback kept its last 20,000 characters: a long message pushed out its own type, and the model
    # saw a wall of E's ending in END, with no "ValueError" and no sign of a cut.
    async with demo_sandbox.executor(kind) as ex:
        result = await run(ex, 'def f():\n    raise ValueError("E" * 50_000 + " END")\nf()')
        assert result.error is not None and result.error.type == "ValueError"
        trace = result.error.traceback
        assert trace.startswith("Traceback (most recent call last):\n") and len(trace) <= 20_000, len(trace)
        assert '  File "<execution-1>", line 2, in f' in trace
        assert "\nValueError: EEEE" in trace and trace.rstrip().endswith("E END")
        assert " characters cut] … " in trace
        deep = await run(ex, "def g(n):\n    return g(n + 1) if n < 300 else 1 / 0\ng(0)")
        assert deep.error is not None and deep.error.traceback.rstrip().endswith("ZeroDivisionError: division by zero")


@pytest.mark.parametrize("kind", EXECUTORS)
async def test_a_guest_of_another_protocol_version_does_not_start(
    demo_sandbox: Sandbox, kind: ExecutorKind, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The host is made to speak version 3: the guest's hello (version 2) is then the stale side.
    monkeypatch.setattr(protocol, "PROTOCOL_VERSION", 3)
    async with demo_sandbox.executor(kind) as ex:
        result = await run(ex, "1 + 1")
    assert not result.ok and result.error is not None and result.error.kind == "unavailable"
    assert "failed to start" in result.error.message
    assert (
        "the guest runtime speaks protocol 2, this host speaks protocol 3: they come from different codemode "
        "releases; reinstall codemode"
    ) in result.error.message
