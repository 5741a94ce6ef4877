"""Config parsing: the mcpServers shapes users already have, and errors that name file, line and key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from codemode.config import (
    Config,
    HttpServer,
    OpenApiServer,
    Settings,
    SkillsGitSettings,
    StdioServer,
    demo_config,
    load_config,
    parse_config,
)
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


def test_a_missing_variable_in_a_list_points_at_the_lists_line() -> None:
    listed = '{"mcpServers": {\n  "gh": {\n    "command": "x",\n    "args": [\n      "--token", "${GH_TOKEN}"]}}}'
    with pytest.raises(ConfigError, match=r"f\.json:4: mcpServers\.gh\.args\.1: .*\$\{GH_TOKEN\} is not set"):
        parse_config(listed, source="f.json", environ={})  # a list index is not in the text: the list's line


def test_lines_count_from_the_files_first_character_and_the_first_error_is_named() -> None:
    text = '\n{"mcpServers": {\n  "gh": {"command": "", "env": {"T": "${T}"}}},\n "codemode": {"wall_s": 0}}'
    with pytest.raises(ConfigError, match=r"^f\.json:3: mcpServers\.gh\.env\.T: "):
        parse_config(text, source="f.json", environ={})
    with pytest.raises(ConfigError, match=r"^f\.json:3: mcpServers\.gh\.command: "):  # not codemode.wall_s
        parse_config(text, source="f.json", environ={"T": "t"})


def test_a_loaded_config_cannot_be_changed_in_place() -> None:
    cfg = parse_config(json.dumps({"mcpServers": {"s": {"command": "x"}}, "codemode": {"skills_git": {"remote": "r"}}}))
    settings = cfg.settings
    for model, field in (
        (cfg, "source"),
        (cfg.servers["s"], "command"),
        (settings, "wall_s"),
        (settings.skills, "auto_promote"),
        (settings.skills_git, "remote"),
        (settings.policy, "read_only"),
    ):
        with pytest.raises(ValidationError, match="frozen"):
            setattr(model, field, getattr(model, field))


def test_only_servers_not_disabled_are_enabled() -> None:
    cfg = parse_config(json.dumps({"mcpServers": {"a": {"command": "x", "disabled": True}, "b": {"command": "y"}}}))
    assert list(cfg.servers) == ["a", "b"] and list(cfg.enabled_servers) == ["b"]


def test_an_unreadable_config_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_bytes(b'{"mcpServers": {"\xff": {}}}')  # not UTF-8
    with pytest.raises(ConfigError, match=r"mcp\.json: cannot read config: 'utf-8' codec can't decode"):
        load_config(path)
    with pytest.raises(ConfigError, match=r": cannot read config: \[Errno 21\] Is a directory"):
        load_config(tmp_path)


def test_every_token_entry_is_checked() -> None:
    good = {"sha256:" + "a" * 64: "alice", "env:BOB_TOKEN": "bob"}
    assert parse_config(json.dumps({"mcpServers": {}, "codemode": {"tokens": good}})).settings.tokens == good
    for bad in ({"s3cret-token": "alice"}, {"env:BOB_TOKEN": "bob smith"}):
        with pytest.raises(ConfigError, match=r"codemode\.tokens"):
            parse_config(json.dumps({"mcpServers": {}, "codemode": {"tokens": {**good, **bad}}}))


# Each bounded number: the edge values accepted, and the first ones refused (a float's lower edge: 0 refused,
# a thousandth accepted).
_EDGES = [
    (("codemode", "wall_s"), (0.001, 1e9), (0, -1)),
    (("codemode", "memory_mb"), (17, 4096), (16, 0)),
    (("codemode", "output_chars"), (101, 10**9), (100, 0)),
    *((("codemode", name), (1, 10**6), (0, -1)) for name in (
        "result_handle_kb", "result_store_mb", "result_store_total_mb", "executions_per_minute", "max_sessions",
        "audit_max_mb")),
    *((("codemode", name), (0, 10**6), (-1,)) for name in ("max_tool_calls", "infer_results_after")),
    (("codemode", "session_idle_s"), (0.001, 1e9), (0, -1)),
    (("codemode", "pool_size"), (0, 256), (-1, 257)),
    (("codemode", "policy", "approval_timeout_s"), (0.001, 1e9), (0,)),
    (("codemode", "skills_git", "pull_interval_s"), (0.001, 1e9), (0,)),
    (("mcpServers", "s", "start_timeout_s"), (0.001, 1e9), (0,)),
    (("mcpServers", "s", "call_timeout_s"), (0.001, 1e9), (0,)),
]  # fmt: skip


def _with(path: tuple[str, ...], value: float) -> str:
    raw: dict[str, Any] = {"mcpServers": {"s": {"command": "x"}}, "codemode": {"skills_git": {"remote": "r"}}}
    node = raw
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return json.dumps(raw)


@pytest.mark.parametrize(("path", "accepted", "refused"), _EDGES, ids=[".".join(e[0][1:]) for e in _EDGES])
def test_every_bounded_number_has_the_edges_it_documents(
    path: tuple[str, ...], accepted: tuple[float, ...], refused: tuple[float, ...]
) -> None:
    for value in accepted:
        cfg = parse_config(_with(path, value))
        node: Any = cfg.servers["s"] if path[0] == "mcpServers" else cfg.settings
        for key in path[2:] if path[0] == "mcpServers" else path[1:]:
            node = getattr(node, key)
        assert node == value
    for value in refused:
        with pytest.raises(ConfigError, match=path[-1]):
            parse_config(_with(path, value))


def test_the_defaults_are_the_documented_ones() -> None:
    # As the README and the tool description state them.
    settings = Settings()
    assert (settings.wall_s, settings.memory_mb, settings.output_chars, settings.max_tool_calls) == (
        30,
        256,
        20_000,
        200,
    )
    assert (settings.result_handle_kb, settings.result_store_mb, settings.result_store_total_mb) == (256, 256, 1024)
    assert (settings.executions_per_minute, settings.session_idle_s, settings.pool_size) == (1000, 1800, 2)
    assert (settings.max_sessions, settings.infer_results_after, settings.audit_max_mb) == (32, 3, 64)
    assert settings.policy.approval_timeout_s == 300
    assert SkillsGitSettings(remote="r").pull_interval_s == 10
    server = StdioServer(command="x")
    assert (server.start_timeout_s, server.call_timeout_s, server.effective_call_timeout_s) == (30, 60, 60)
    assert OpenApiServer(spec="a.json").max_response_bytes == 10 * 1024 * 1024
    # The bundled demo servers import the SDK on a cold machine: they get twice the time to start.
    assert {s.start_timeout_s for s in demo_config().servers.values()} == {60}


@pytest.mark.parametrize(
    "server",
    [{"command": ""}, {"url": ""}, {"type": "openapi", "spec": ""}],
    ids=["command", "url", "spec"],
)
def test_an_empty_command_url_or_spec_is_refused(server: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=r"mcpServers\.s\."):
        parse_config(json.dumps({"mcpServers": {"s": server}}))


def test_a_shared_skill_store_needs_a_remote() -> None:
    with pytest.raises(ConfigError, match=r"skills_git\.remote"):
        parse_config(json.dumps({"mcpServers": {}, "codemode": {"skills_git": {"remote": ""}}}))


def test_trusted_proxies_are_addresses_or_networks() -> None:
    proxies = ["10.0.0.1/8", "::1", "192.168.1.7"]  # a network written with its host bits is still the network
    cfg = parse_config(json.dumps({"mcpServers": {}, "codemode": {"trusted_proxies": proxies}}))
    assert cfg.settings.trusted_proxies == proxies
    with pytest.raises(ConfigError, match=r"entry 1: 'proxy\.local' is not an IP address or network"):
        parse_config(json.dumps({"mcpServers": {}, "codemode": {"trusted_proxies": ["::1", "proxy.local"]}}))


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"rate_limits": {"fs.*": "10/fortnight"}}, r"'fs\.\*': rate '10/fortnight' must look like '10/min'"),
        ({"identities": {"bob smith": {}}}, r"identity 'bob smith' must be 1-64 letters"),
        ({"identities": {"bob": {"write_file": "deny"}}}, r"'write_file' must be a 'server\.tool' pattern"),
    ],
    ids=["rate", "identity", "identity-pattern"],
)
def test_policy_rates_identities_and_their_patterns_are_checked(policy: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(json.dumps({"mcpServers": {}, "codemode": {"policy": policy}}))
    fine = {"rate_limits": {"fs.*": "10/min"}, "identities": {"bob": {"fs.write_*": "deny"}}}
    assert parse_config(json.dumps({"mcpServers": {}, "codemode": {"policy": fine}})).settings.policy.identities


def test_server_keys_are_read_by_alias_or_by_name() -> None:
    for key in ("autoApprove", "auto_approve"):
        server = parse_config(json.dumps({"mcpServers": {"s": {"command": "x", key: ["t"]}}})).servers["s"]
        assert server.auto_approve == ["t"]


def test_the_smallest_openapi_spec_and_response_cap_are_accepted() -> None:
    smallest = {"type": "openapi", "spec": "a", "max_response_bytes": 1}
    api = parse_config(json.dumps({"mcpServers": {"api": smallest}})).servers["api"]
    assert isinstance(api, OpenApiServer) and (api.spec, api.max_response_bytes) == ("a", 1)
    for bad in ({"spec": ""}, {"max_response_bytes": 0}):
        with pytest.raises(ConfigError, match=r"mcpServers\.api\."):
            parse_config(json.dumps({"mcpServers": {"api": {**smallest, **bad}}}))


def test_malformed_json_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text('{"mcpServers": {\n  "a": {"command": "x" "args": []}\n}}')
    with pytest.raises(ConfigError, match=r"mcp\.json:2:\d+: invalid JSON"):
        load_config(path)


def test_vscode_jsonc_comments_and_trailing_commas_are_read_and_strings_kept(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(
        "{\n"
        "  // a key named in a comment (below) is not the key\n"
        '  "servers": { /* one\n'
        '     "a": {"bogus": 0} */\n'
        '    "api": {"url": "https://example.test/mcp", "headers": {"X": "q\\" // /* not a comment", "Y": "\\\\"},},\n'
        '    "a": {"command": "x", "args": ["1", "2",], // trailing\n'
        '          "bogus": 1},\n'
        "  },\n"
        "}\n"
    )
    # The one remaining error is placed on its own line: the commented-out "a" is not it, and comments shift nothing.
    with pytest.raises(ConfigError, match=r"mcp\.json:7: servers\.a\.bogus: unknown key"):
        load_config(path)
    path.write_text(path.read_text().replace('"bogus": 1', '"cwd": "/"'))
    cfg = load_config(path)
    assert list(cfg.servers) == ["api", "a"]
    assert cfg.servers["api"].headers == {"X": 'q" // /* not a comment', "Y": "\\"}  # type: ignore[union-attr]
    assert cfg.servers["a"].args == ["1", "2"]  # type: ignore[union-attr]
    # A JSON error after a comment keeps the file's own line and column.
    path.write_text('{"servers": {/* c */ "a": {"command": "x"},\n // note\n  "b": {"command": "y"} "c": 1}}')
    with pytest.raises(ConfigError, match=r"mcp\.json:3:25: invalid JSON: Expecting ',' delimiter"):
        load_config(path)
    path.write_text('{"servers": {},\n  /* never closed\n}')
    with pytest.raises(ConfigError, match=r"mcp\.json:2:3: invalid JSON: unterminated /\* comment"):
        load_config(path)
    path.write_text('{"servers": {"a": {"command": "x", "args": [,]}}}')  # a comma with nothing before it stays wrong
    with pytest.raises(ConfigError, match=r"mcp\.json:1:\d+: invalid JSON"):
        load_config(path)


def test_cursor_env_file_adds_a_dotenv_files_variables_and_env_wins(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / ".env").write_text(
        "# credentials\n"
        "\n"
        "TOKEN=from-file\n"
        "export REGION = eu-west-1  # inline comment\n"
        "PASS='p#ss $HOME \\n'\n"
        'MULTI="a\\nb \\"q\\""  # note\n'
        "HASH=abc#def\n"
        "EMPTY=\n"
    )
    path = tmp_path / "conf" / "mcp.json"
    entry = {"command": "x", "envFile": ".env", "env": {"TOKEN": "explicit", "OTHER": "${HOME_VAR}"}}
    path.write_text(json.dumps({"mcpServers": {"fs": entry}}))
    server = load_config(path, environ={"HOME_VAR": "h"}).servers["fs"]
    assert server.env == {  # type: ignore[union-attr]
        "TOKEN": "explicit",
        "REGION": "eu-west-1",
        "PASS": "p#ss $HOME \\n",
        "MULTI": 'a\nb "q"',
        "HASH": "abc#def",
        "EMPTY": "",
        "OTHER": "h",
    }


def test_an_env_file_that_cannot_be_used_names_the_file_and_server_but_no_value(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": {"fs": {"command": "x", "envFile": "missing.env"}}}))
    with pytest.raises(ConfigError, match=r"mcp\.json:1: mcpServers\.fs\.envFile: .*missing\.env not found"):
        load_config(path)
    (tmp_path / "bad.env").write_text("GOOD=1\nhunter2-secret-line\nK='unclosed hunter2\n")
    path.write_text(json.dumps({"mcpServers": {"fs": {"command": "x", "envFile": str(tmp_path / "bad.env")}}}))
    with pytest.raises(ConfigError, match=r"mcpServers\.fs\.envFile: .*bad\.env:2: expected KEY=VALUE") as info:
        load_config(path)
    assert "hunter2" not in str(info.value)
    (tmp_path / "bad.env").write_text("K='unclosed hunter2\n")
    with pytest.raises(ConfigError, match=r"bad\.env:1: expected KEY=VALUE") as info:
        load_config(path)
    assert "hunter2" not in str(info.value)
    path.write_text(json.dumps({"mcpServers": {"api": {"url": "https://example.test/mcp", "envFile": "x.env"}}}))
    with pytest.raises(ConfigError, match=r"mcpServers\.api\.envFile: only a stdio server"):
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


def _parse(settings: dict[str, object], servers: dict[str, object] | None = None) -> Config:
    return parse_config(json.dumps({"mcpServers": servers or {}, "codemode": settings}))


def test_the_defaults_are_the_documented_ones_and_every_opt_in_is_off() -> None:
    # A default limit or switch that moves is a change a reviewer must see here (the README lists them).
    settings = _parse({}).settings
    limits = (
        settings.wall_s,
        settings.memory_mb,
        settings.output_chars,
        settings.max_tool_calls,
        settings.executions_per_minute,
        settings.max_sessions,
        settings.session_idle_s,
    )
    assert limits == (30.0, 256, 20_000, 200, 1000, 32, 1800.0)
    assert (settings.result_handle_kb, settings.result_store_mb, settings.result_store_total_mb) == (256, 256, 1024)
    assert (settings.skills.auto_promote, settings.expose_skills, settings.metrics_public) == (False, False, False)
    assert (settings.expose_direct, settings.mount, settings.tokens) == ([], [], {})
    policy = settings.policy
    assert (policy.rules, policy.read_only, policy.destructive, policy.approval_timeout_s) == ({}, False, "ask", 300.0)
    server = StdioServer(command="x")
    assert (server.start_timeout_s, server.call_timeout_s) == (30.0, 60.0)
    assert OpenApiServer(spec="api.json").max_response_bytes == 10 * 1024 * 1024
    git = _parse({"skills_git": {"remote": "/srv/skills.git"}}).settings.skills_git
    assert git is not None and (git.branch, git.pull_interval_s) == ("main", 10.0)


@pytest.mark.parametrize(
    ("key", "lowest", "refused"),
    [("wall_s", 0.001, 0), ("memory_mb", 17, 16), ("output_chars", 101, 100), ("result_handle_kb", 1, 0),
     ("result_store_total_mb", 1, 0), ("max_tool_calls", 0, -1), ("executions_per_minute", 1, 0)],
)  # fmt: skip
def test_each_limit_refuses_the_first_value_past_its_bound(key: str, lowest: float, refused: float) -> None:
    assert getattr(_parse({key: lowest}).settings, key) == lowest
    with pytest.raises(ConfigError, match=rf"codemode\.{key}"):
        _parse({key: refused})


def test_timeouts_take_any_positive_value_and_refuse_zero() -> None:
    server = _parse({}, {"a": {"command": "x", "start_timeout_s": 0.5, "call_timeout_s": 0.5}}).servers["a"]
    assert (server.start_timeout_s, server.call_timeout_s) == (0.5, 0.5)
    for key in ("start_timeout_s", "call_timeout_s"):
        with pytest.raises(ConfigError, match=rf"mcpServers\.a\.{key}"):
            _parse({}, {"a": {"command": "x", key: 0}})
    assert _parse({"policy": {"approval_timeout_s": 0.5}}).settings.policy.approval_timeout_s == 0.5
    with pytest.raises(ConfigError, match=r"codemode\.policy\.approval_timeout_s"):
        _parse({"policy": {"approval_timeout_s": 0}})


def test_an_openapi_base_url_must_be_http() -> None:
    api = {"type": "openapi", "spec": "api.json"}
    assert _parse({}, {"api": {**api, "baseUrl": "https://api.example.com"}}).servers["api"].base_url is not None
    assert _parse({}, {"api": api}).servers["api"].base_url is None  # the document's own servers then
    for url in ("file:///etc/passwd", "ftp://x", "api.example.com"):
        with pytest.raises(ConfigError, match=r"mcpServers\.api\.baseUrl.*must start with http"):
            _parse({}, {"api": {**api, "baseUrl": url}})


@pytest.mark.parametrize("block", ["rules", "rate_limits"])
def test_a_policy_pattern_that_names_no_tool_is_refused_not_ignored(block: str) -> None:
    # A rule "fs" (no ".tool") would match no call: a deny written that way must fail loudly, not allow all.
    verdict = "deny" if block == "rules" else "1/min"
    assert _parse({"policy": {block: {"fs.*": verdict}}}).settings.policy
    for pattern in ("fs", ".write", "fs. write"):
        with pytest.raises(ConfigError, match=r"must be a 'server\.tool' pattern"):
            _parse({"policy": {block: {"fs.*": verdict, pattern: verdict}}})


def test_a_loaded_config_cannot_be_changed() -> None:
    config = _parse({"policy": {"rules": {"fs.*": "deny"}}}, {"a": {"command": "x"}})
    for model, field in ((config, "settings"), (config.settings.policy, "rules"), (config.servers["a"], "env"),
                         (config.settings, "wall_s"), (config.settings.skills, "auto_promote")):  # fmt: skip
        with pytest.raises(ValidationError, match="frozen"):
            setattr(model, field, None)


def test_a_missing_variable_is_placed_by_its_whole_key_path() -> None:
    # "TOKEN" also appears earlier in the server (an argument): the line is the env key's, not the first match.
    text = '{"mcpServers": {\n  "gh": {\n    "command": "x", "args": ["TOKEN"],\n    "env": {"TOKEN": "${GH}"}}}}'
    with pytest.raises(ConfigError, match=r"f\.json:4: mcpServers\.gh\.env\.TOKEN: "):
        parse_config(text, source="f.json", environ={})


@pytest.mark.parametrize(
    ("text", "servers"),
    [
        # A comment first in the file, and a // comment on the last line with no newline after it.
        ('// VS Code writes a header\n{"servers": {"a": {"command": "x"}}} // trailing', ["a"]),
        # A block comment whose opening '*' is also a closing '*/'s star: the comment goes on to the real '*/'.
        ('{"servers": {/*/ "b": {"command": "y"}, */ "a": {"command": "x"}}}', ["a"]),
        # An empty block comment, two touching, and comments between a trailing comma and what closes it.
        ('{"servers": {"a": {"command": "x", "args": ["1" /**//**/,]},/* x */}}', ["a"]),
        ('{"servers": {"a": {"command": "x", "args": ["1", /* x */]}, /**/}}', ["a"]),
    ],
)
def test_jsonc_comments_anywhere_are_blanked_and_no_more(text: str, servers: list[str]) -> None:
    cfg = parse_config(text, source="f.json")
    assert list(cfg.servers) == servers
    assert cfg.servers["a"].command == "x"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{"servers": {"a": {"command": "x', r"f\.json:1:\d+: invalid JSON: Unterminated string"),
        ("\n/* a comment never closed", r"f\.json:2:1: invalid JSON: unterminated /\* comment"),
        ("\n\n  /* and on line 3 */ /*", r"f\.json:3:23: invalid JSON: unterminated /\* comment"),
        # What is blanked is a trailing comma only: a closing bracket with no comma before it is left as it was.
        ("]", r"f\.json:1:1: invalid JSON: Expecting value"),
        (",}", r"f\.json:1:1: invalid JSON: Expecting value"),
    ],
)
def test_malformed_jsonc_is_a_config_error_at_the_files_own_line_and_column(text: str, where: str) -> None:
    with pytest.raises(ConfigError, match=where):
        parse_config(text, source="f.json")


def _env_file_server(tmp_path: Path, content: str | bytes) -> dict[str, str]:
    env = tmp_path / ".env"
    if isinstance(content, bytes):
        env.write_bytes(content)
    else:
        env.write_text(content)
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": {"fs": {"command": "x", "envFile": ".env"}}}))
    server = load_config(path).servers["fs"]
    assert isinstance(server, StdioServer)
    return server.env


def test_a_dotenv_double_quoted_value_keeps_an_unknown_escape_as_written(tmp_path: Path) -> None:
    assert _env_file_server(tmp_path, 'A="x\\qy\\tz"\nB="\\\\"\n') == {"A": "x\\qy\tz", "B": "\\"}


@pytest.mark.parametrize(
    "line",
    [
        'K="ends in a backslash\\',  # the backslash escapes nothing: the quote is never closed
        'K="ab\\"',  # the last quote is escaped: not closed either
        'K="closed"text after it',
        'K="closed"x',
        "K='closed' text",
    ],
)
def test_a_dotenv_quoted_value_that_does_not_close_cleanly_is_refused_without_quoting_it(
    tmp_path: Path, line: str
) -> None:
    refused = r"\.env:1: expected KEY=VALUE \(a quoted value must close on its line\)$"
    with pytest.raises(ConfigError, match=refused) as info:
        _env_file_server(tmp_path, line + "\n")
    assert line.partition("=")[2] not in str(info.value)


def test_an_env_file_that_is_a_folder_or_not_utf8_is_named_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    (tmp_path / "folder").mkdir()
    path.write_text(json.dumps({"mcpServers": {"fs": {"command": "x", "envFile": "folder"}}}))
    with pytest.raises(ConfigError, match=r"mcpServers\.fs\.envFile: cannot read .*folder: Is a directory$"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"mcpServers\.fs\.envFile: .*\.env is not UTF-8 text$"):
        _env_file_server(tmp_path, b"K=\xff\xfe secret\n")
    for name in ("", 5, None):
        path.write_text(json.dumps({"mcpServers": {"fs": {"command": "x", "envFile": name}}}))
        with pytest.raises(ConfigError, match=r"mcpServers\.fs\.envFile: must be the path of a dotenv file$"):
            load_config(path)


def test_a_misspelled_top_level_key_is_ignored_with_the_key_it_resembles(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="codemode.config"):
        parse_config('{"mcpServers": {},\n "mcpServer": {"a": {}}, "globalShortcut": "x"}', source="f.json")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "f.json:2: ignoring the top-level key 'globalShortcut' (not a codemode setting)",
        "f.json:2: ignoring the top-level key 'mcpServer' (not a codemode setting; did you mean 'mcpServers'?)",
    ]


def test_the_skill_store_bounds_default_to_the_documented_figures_and_refuse_zero() -> None:
    skills = Settings().skills
    assert (skills.max_skills, skills.max_versions, skills.max_drafts_per_session) == (500, 50, 20)
    for key in ("max_skills", "max_versions", "max_drafts_per_session"):
        assert getattr(Settings.model_validate({"skills": {key: 1}}).skills, key) == 1
        with pytest.raises(ValidationError, match=key):
            Settings.model_validate({"skills": {key: 0}})
