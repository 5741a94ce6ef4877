"""The directory of services a program may find and mount at run time (entries in the MCP registry's
``server.json`` format, plus OpenAPI entries); see :mod:`codemode.directory.models`."""

from __future__ import annotations

from codemode.directory.launch import MountError, check_params, server_config
from codemode.directory.load import DEFAULT_DIR, Directory, Located, Rejected, directory_for, load_directory
from codemode.directory.models import Entry

__all__ = [
    "DEFAULT_DIR",
    "Directory",
    "Entry",
    "Located",
    "MountError",
    "Rejected",
    "check_params",
    "directory_for",
    "load_directory",
    "server_config",
]
