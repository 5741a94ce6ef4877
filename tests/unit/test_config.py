"""Config parsing: the mcpServers shapes users already have, and errors that name file, line and key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codemode.config import HttpServer, StdioServer, demo_config, load_config, parse_config
from codemode.errors import ConfigError


def test_claude_desktop_shape() -> None:
    cfg = parse_config(
        json.dumps(
            {
                "mcpServers": {
                    "fs": {"command": "npx", "args": ["-y", "pkg"], "env": {"A": "1"}, "cwd": "/tmp"},
                    "api": {"url": "https://example.test/mcp", "headers": {"X": "y"}},
                }
            }
        )
    )
    fs = cfg.servers["fs"]
    api = cfg.servers["api"]
    assert isinstance(fs, StdioServer) and fs.args == ["-y", "pkg"] and fs.env == {"A": "1"} and fs.cwd == "/tmp"
    assert isinstance(api, HttpServer) and api.type == "http" and api.headers == {"X": "y"}


def test_vscode_shape_and_transport_names() -> None:
    cfg = parse_config(
        json.dumps(
            {
                "servers": {
                    "a": {"type": "stdio", "command": "x"},
                    "b": {"type": "streamable-http", "url": "http://127.0.0.1:1/mcp"},
                    "c": {"transport": "sse", "url": "http://127.0.0.1:1/sse"},
                },
                "inputs": [],
            }
        )
    )
    assert [s.type for s in cfg.servers.values()] == ["stdio", "streamable-http", "sse"]


def test_env_expansion_with_default() -> None:
    text = json.dumps(
        {"mcpServers": {"gh": {"command": "gh-mcp", "env": {"TOKEN": "${GH_TOKEN}", "MODE": "${MODE:-ro}"}}}}
    )
    cfg = parse_config(text, environ={"GH_TOKEN": "s3cret"})
    server = cfg.servers["gh"]
    assert isinstance(server, StdioServer)
    assert server.env == {"TOKEN": "s3cret", "MODE": "ro"}


def test_missing_env_var_names_it_and_the_key() -> None:
    text = '{"mcpServers": {\n  "gh": {\n    "command": "x",\n    "env": {"TOKEN": "${GH_TOKEN}"}}}}'
    with pytest.raises(ConfigError, match=r"f\.json:4: mcpServers\.gh\.env\.TOKEN: .*\$\{GH_TOKEN\} is not set"):
        parse_config(text, source="f.json", environ={})


def test_malformed_json_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text('{"mcpServers": {\n  "a": {"command": "x",}\n}}')
    with pytest.raises(ConfigError, match=r"mcp\.json:2:\d+: invalid JSON"):
        load_config(path)


def test_unknown_key_names_line_and_key() -> None:
    text = '{"mcpServers": {\n  "a": {\n    "command": "x",\n    "bogus": 1}}}'
    with pytest.raises(ConfigError, match=r"f\.json:4: mcpServers\.a\.bogus: unknown key"):
        parse_config(text, source="f.json")


def test_unknown_transport() -> None:
    with pytest.raises(ConfigError, match="unknown transport 'websocket'"):
        parse_config('{"mcpServers": {"a": {"type": "websocket", "url": "ws://x"}}}')


def test_missing_command() -> None:
    with pytest.raises(ConfigError, match=r"mcpServers\.a\.command: required key is missing"):
        parse_config('{"mcpServers": {"a": {"args": []}}}')


def test_bad_url_scheme() -> None:
    with pytest.raises(ConfigError, match=r"mcpServers\.a\.url"):
        parse_config('{"mcpServers": {"a": {"url": "ftp://x"}}}')


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.json")


def test_not_an_object_and_no_servers_key() -> None:
    with pytest.raises(ConfigError, match="top level must be a JSON object"):
        parse_config("[]")
    with pytest.raises(ConfigError, match="no 'mcpServers'"):
        parse_config("{}")


def test_codemode_settings_validated() -> None:
    cfg = parse_config('{"mcpServers": {}, "codemode": {"wall_s": 5, "executor": "restricted"}}')
    assert cfg.settings.wall_s == 5 and cfg.settings.executor == "restricted"
    with pytest.raises(ConfigError, match=r"codemode\.executor"):
        parse_config('{"mcpServers": {}, "codemode": {"executor": "docker"}}')


def test_claude_desktop_timeout_ms_and_ignored_client_keys() -> None:
    cfg = parse_config('{"mcpServers": {"a": {"command": "x", "timeout": 5000, "autoApprove": ["t"]}}}')
    assert cfg.servers["a"].effective_call_timeout_s == 5.0


def test_demo_config_has_two_servers() -> None:
    assert sorted(demo_config().servers) == ["inventory", "notes"]


def test_other_clients_top_level_keys_are_ignored_with_a_note(caplog: pytest.LogCaptureFixture) -> None:
    text = '{"globalShortcut": "Ctrl+Space", "mcpServers": {"a": {"command": "x"}}}'
    with caplog.at_level("WARNING"):
        config = parse_config(text, source="claude_desktop_config.json")
    assert list(config.servers) == ["a"]
    assert "claude_desktop_config.json:1: ignoring the top-level key 'globalShortcut'" in caplog.text


def test_vscode_variables(tmp_path: Path) -> None:
    folder = tmp_path / "proj" / ".vscode"
    folder.mkdir(parents=True)
    entry = {"command": "${userHome}/bin/srv", "args": ["${workspaceFolder}/data", "${env:TOKEN}",
                                                       "${workspaceFolderBasename}"]}  # fmt: skip
    (folder / "mcp.json").write_text(json.dumps({"servers": {"a": entry}}))
    server = load_config(folder / "mcp.json", environ={"TOKEN": "t0k"}).servers["a"]
    assert server.command == str(Path.home() / "bin" / "srv")  # type: ignore[union-attr]
    assert server.args == [str(tmp_path / "proj" / "data"), "t0k", "proj"]  # type: ignore[union-attr]
    (folder / "mcp.json").write_text(json.dumps({"servers": {"a": {"command": "x", "args": ["${env:NOPE}"]}}}))
    with pytest.raises(ConfigError, match=r"NOPE"):
        load_config(folder / "mcp.json", environ={})
    (folder / "mcp.json").write_text(json.dumps({"servers": {"a": {"command": "x", "env": {"K": "${input:key}"}}}}))
    with pytest.raises(ConfigError, match=r"servers\.a\.env\.K: \$\{input:key\} needs VS Code"):
        load_config(folder / "mcp.json", environ={})


def test_expose_direct_globs_and_auto() -> None:
    def direct(value: object) -> list[str]:
        text = json.dumps({"mcpServers": {}, "codemode": {"expose_direct": value}})
        return parse_config(text).settings.expose_direct

    assert direct(["fs.read_*", "auto", "memory.*"]) == ["fs.read_*", "auto", "memory.*"]
    assert direct("auto") == ["auto"]
    assert parse_config('{"mcpServers": {}}').settings.expose_direct == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["fs"], "entry 0: 'fs' is not 'auto' or a 'server.tool' glob"),
        (["auto", ".read"], "entry 1: '.read' is not 'auto'"),
        (["fs."], "entry 0: 'fs.' is not 'auto'"),
        ([3], "codemode.expose_direct.0: Input should be a valid string"),
        ({"fs": "*"}, "codemode.expose_direct: Input should be a valid list"),
    ],
)
def test_expose_direct_errors_name_the_entry_and_line(value: object, message: str) -> None:
    text = '{"mcpServers": {},\n "codemode": {\n  "expose_direct": ' + json.dumps(value) + "}}"
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="mcp.json")
    assert str(info.value).startswith("mcp.json:3: codemode.expose_direct")
    assert message in str(info.value)
