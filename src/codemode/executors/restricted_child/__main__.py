"""The restricted child's script, run by path: ``python -I <this file> RUNTIME STUBS SKILLS MEMORY_BYTES``.

``-I`` keeps this directory off ``sys.path`` (and so are its modules: a top-level ``skills`` or ``guards``
there would be importable by name). The directory is loaded as the package ``restricted_child`` from its
file location instead, and :func:`restricted_child.main.main` takes over.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

PACKAGE = "restricted_child"


def _load_package() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    # Run as a directory (``python <dir>``), Python would have put it first on sys.path.
    sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != here]
    spec = importlib.util.spec_from_file_location(
        PACKAGE, os.path.join(here, "__init__.py"), submodule_search_locations=[here]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the package in {here}")
    package = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = package
    spec.loader.exec_module(package)


if __name__ == "__main__":
    _load_package()
    importlib.import_module(f"{PACKAGE}.main").main(sys.argv)
