"""Every security test must leave no interpreter thread and no extra child process behind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.security.helpers import child_processes, instance_threads, wait_for_no_instance_threads


@pytest.fixture(autouse=True)
def _no_host_leaks() -> Iterator[None]:
    threads_before = instance_threads()
    children_before = child_processes()
    yield
    leaked = wait_for_no_instance_threads(5.0) - threads_before
    assert not leaked, f"interpreter threads still running after the executor closed: {leaked}"
    children_after = child_processes()
    assert len(children_after) <= len(children_before), (children_before, children_after)
