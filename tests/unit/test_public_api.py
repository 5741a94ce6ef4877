"""The public surface: ``codemode.__all__`` is sorted, every name in it resolves, and it is exactly this."""

from __future__ import annotations

import importlib.metadata

import codemode

PUBLIC = [
    "BridgeError", "CallRecord", "CallState", "CodemodeError", "CompileError", "Config", "ConfigError", "Engine",
    "ExecutionCancelled", "Limits", "OutOfFuel", "Outcome", "PolicyDenied", "ProgramError", "SandboxCrashed",
    "SandboxError", "SandboxExited", "SandboxMemoryError", "SandboxStackOverflow", "SandboxTimeout",
    "SandboxUnavailable", "ScratchQuotaExceeded", "SkillError", "ToolCallError", "ToolCallTimeout", "ToolRef",
    "ToolSpec", "UpstreamError", "__version__", "load_config",
]  # fmt: skip


def test_exported_members() -> None:
    assert codemode.__all__ == sorted(codemode.__all__)
    assert sorted(codemode.__all__) == sorted(PUBLIC)
    for name in codemode.__all__:
        assert getattr(codemode, name) is not None, name


def test_the_version_is_defined_once() -> None:
    assert codemode.__version__ == importlib.metadata.version("codemode")


def test_every_sandbox_error_has_a_distinct_kind() -> None:
    from codemode.errors import SANDBOX_ERRORS, SandboxError

    kinds = [cls.kind for cls in SANDBOX_ERRORS.values()]
    assert len(kinds) == len(set(kinds)) and all(issubclass(c, SandboxError) for c in SANDBOX_ERRORS.values())
    assert {cls.__name__ for cls in SANDBOX_ERRORS.values()} <= set(PUBLIC)
