"""Identities of ``serve --http`` (:mod:`codemode.identity`): the config's token table, and policy per identity."""

from __future__ import annotations

import json

import pytest

from codemode.config import parse_config
from codemode.errors import ConfigError
from codemode.hub.models import ToolRef
from codemode.identity import DEFAULT_IDENTITY, Identities, digest, identities_from, token_key
from codemode.policy import Verdict, rule_set

TOKEN = "a-token-of-some-length-0123456789"


def _config(**settings: object) -> str:
    return json.dumps({"mcpServers": {}, "codemode": settings})


def test_the_token_table_maps_digests_and_variables_to_identities() -> None:
    tokens = {token_key(TOKEN): "alice", "env:BOB_T": "bob", token_key(TOKEN + "-rotated"): "alice"}
    config = parse_config(_config(tokens=tokens))
    ids = identities_from(config.settings.tokens, env_token_var="HTTP_T",
                          environ={"BOB_T": "bob-secret-0123456789", "HTTP_T": "shared-secret-0123456789"})  # fmt: skip
    assert ids is not None and ids.names == ["alice", "bob", DEFAULT_IDENTITY]
    assert ids.identify(TOKEN) == ids.identify(TOKEN + "-rotated") == "alice"  # two tokens, one identity
    assert ids.identify("bob-secret-0123456789") == "bob"
    assert ids.identify("shared-secret-0123456789") == DEFAULT_IDENTITY
    for wrong in ("", TOKEN[:-1], TOKEN + "x", token_key(TOKEN), digest(TOKEN).hex()):  # a digest is no token
        assert ids.identify(wrong) is None
    assert identities_from({}, env_token_var="HTTP_T", environ={}) is None


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        ({TOKEN: "alice"}, "never the token itself"),
        ({"sha256:" + "A" * 64: "alice"}, "lowercase hex"),
        ({"sha256:abc": "alice"}, "64 lowercase hex"),
        ({"env:1X": "alice"}, "env:<VARIABLE>"),
        ({token_key(TOKEN): "local"}, "reserved"),
        ({token_key(TOKEN): "anonymous"}, "reserved"),
        ({token_key(TOKEN): "al ice"}, "letters, digits"),
    ],
)
def test_bad_token_entries_are_config_errors(tokens: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=r"codemode\.tokens") as error:
        parse_config(_config(tokens=tokens))
    assert message in str(error.value)
    assert TOKEN not in str(error.value)


def test_env_tokens_must_be_set_and_strong() -> None:
    with pytest.raises(ConfigError, match=r"\$BOB_T is not set"):
        identities_from({"env:BOB_T": "bob"}, env_token_var=None, environ={})
    with pytest.raises(ConfigError, match="at least 16 characters"):
        identities_from({"env:BOB_T": "bob"}, env_token_var=None, environ={"BOB_T": "short"})
    with pytest.raises(ConfigError, match="at least 16 characters"):
        identities_from({}, env_token_var="HTTP_T", environ={"HTTP_T": f" {TOKEN} "})


async def test_the_verifier_gives_the_sdk_the_identity_and_never_the_token() -> None:
    ids = Identities([(digest(TOKEN), "alice")])
    access = await ids.verify_token(TOKEN)
    assert access is not None and access.subject == "alice" and access.token == ""
    assert await ids.verify_token("nope-0123456789abcdef") is None


def test_an_identitys_rules_come_before_the_global_rules() -> None:
    policy = {
        "rules": {"fs.*": "allow", "fs.delete": "ask"},
        "identities": {"intern": {"fs.*": "deny"}, "admin": {"fs.delete": "allow"}, "ro": {"x.y": "allow"}},
    }
    config = parse_config(_config(policy=policy))
    delete, read = ToolRef("fs", "delete"), ToolRef("fs", "read")
    assert rule_set(config).decide(delete).verdict is Verdict.ASK
    assert rule_set(config).decide(read).verdict is Verdict.ALLOW
    assert rule_set(config, "admin").decide(delete).verdict is Verdict.ALLOW  # its own rule for the pattern
    assert rule_set(config, "intern").decide(read).verdict is Verdict.DENY
    assert rule_set(config, "intern").decide(delete).verdict is Verdict.DENY  # its rules first, however broad
    assert rule_set(config, "ro").decide(delete).verdict is Verdict.ASK  # no rule of its own matches: global
    assert rule_set(config, "nobody").decide(delete).verdict is Verdict.ASK
    with pytest.raises(ConfigError, match=r"server\.tool"):
        parse_config(_config(policy={"identities": {"intern": {"no-dot": "deny"}}}))
