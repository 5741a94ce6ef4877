"""The stub compiler: MCP tool schemas → a typed, stdlib-only Python package (``stubs/<server>/<tool>.py``).

``compile_server`` is pure (schemas in, file texts out); ``compile_to_dir`` writes a tree incrementally and
atomically; ``load_index`` reads the discovery index the guest helpers and the front use.
"""

from codemode.compiler.package import compile_server, server_modules, tool_names
from codemode.compiler.render import ToolStub, build_stub, render_stub
from codemode.compiler.writer import COMPILER_VERSION, CompileReport, compile_to_dir, load_index

__all__ = [
    "COMPILER_VERSION",
    "CompileReport",
    "ToolStub",
    "build_stub",
    "compile_server",
    "compile_to_dir",
    "load_index",
    "render_stub",
    "server_modules",
    "tool_names",
]
