"""The compiled python.wasm cache: a damaged file is recompiled with a message, never a crash.

Real wasmtime, the real python.wasm, a cache directory of the test's own (``CODEMODE_CACHE_DIR``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import wasmtime

from codemode.executors.wasm import module

pytestmark = pytest.mark.slow


def _damage(how: str, data: bytes) -> bytes:
    if how == "truncated":
        return data[: len(data) // 2]
    return b"\x7fELF" + bytes(range(256)) * 64  # starts like the real thing, then nonsense


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_a_damaged_module_cache_is_recompiled_with_a_message(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = wasmtime.Engine(module.engine_config())
    good = module.module_cache_path()
    module.load_module(engine)  # the machine's cache, compiled once if it is not there yet
    monkeypatch.setenv("CODEMODE_CACHE_DIR", str(tmp_path))
    cache = module.module_cache_path()
    assert cache != good and cache.is_relative_to(tmp_path)
    cache.parent.mkdir(parents=True)
    shutil.copyfile(good, cache)
    cache.write_bytes(_damage(how, cache.read_bytes()))
    said: list[str] = []
    loaded = module.load_module(engine, said.append)
    assert said[0].startswith(f"the cached python.wasm module {cache} could not be loaded (") and said[0].endswith(
        "); recompiling it"), said
    assert said[1].startswith("compiling python.wasm for this machine") and said[2].startswith("compiled python.wasm")
    assert any(export.name == "_start" for export in loaded.exports)
    assert cache.read_bytes() == good.read_bytes()  # rewritten whole: the next start deserializes it
    again: list[str] = []
    module.load_module(engine, again.append)
    assert again == []
