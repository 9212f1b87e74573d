"""Gateway API keys: format, hashing, scopes, revocation, and the `promptlab keys` commands."""

from __future__ import annotations

import hashlib
import json

import pytest
from typer.testing import CliRunner

from promptlab.cli import app as cli
from promptlab.errors import ConfigError, NotFoundError
from promptlab.gateway.keys import ApiKeys, hash_secret, normalize_scopes, parse_token


def test_parse_token_accepts_only_the_issued_format():
    token = "pl_0123456789ab_" + "A" * 43
    assert parse_token(token) == ("0123456789ab", "A" * 43)
    for bad in ("", "pl_0123456789ab", "sk_0123456789ab_" + "A" * 43, token + "x", token[:-1],
                "pl_0123456789AB_" + "A" * 43, " " + token, None, 42):
        assert parse_token(bad) is None, bad


def test_scopes_are_validated_and_ordered():
    assert normalize_scopes(["feedback", "run", "RUN "]) == ("run", "feedback")
    assert normalize_scopes("admin") == ("admin",)
    with pytest.raises(ConfigError, match="unknown API key scope 'write'"):
        normalize_scopes(["run", "write"])
    with pytest.raises(ConfigError, match="at least one scope"):
        normalize_scopes([])


def test_created_keys_authenticate_and_only_the_hash_is_stored(lab):
    keys = ApiKeys(lab.store)
    record, token = keys.create("my-app", ["run", "feedback"])
    key_id, secret = parse_token(token)
    assert record.id == key_id and record.scopes == ("run", "feedback") and record.active
    row = lab.store.get_api_key(key_id)
    assert row["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest() == hash_secret(secret)
    assert secret not in json.dumps(lab.store.dump_table("api_keys"), default=str)
    assert keys.authenticate(token) == record
    assert keys.authenticate(token[:-1] + ("B" if token[-1] != "B" else "C")) is None
    assert keys.authenticate(f"pl_{'f' * 12}_{secret}") is None  # unknown id
    other_record, other = keys.create("other", ["feedback"])
    assert keys.authenticate(other).allows("feedback") and not keys.authenticate(other).allows("run")
    assert other_record.id != record.id and other != token


def test_admin_allows_every_scope(lab):
    record, token = ApiKeys(lab.store).create("ops", ["admin"])
    assert all(record.allows(scope) for scope in ("run", "feedback", "admin"))


def test_revocation_is_immediate_idempotent_and_listed(lab):
    keys = ApiKeys(lab.store)
    record, token = keys.create("old", ["run"])
    _, kept = keys.create("kept", ["run"])
    revoked = keys.revoke(record.id)
    assert revoked.revoked_at is not None and not revoked.active
    assert keys.authenticate(token) is None and keys.authenticate(kept) is not None
    again = keys.revoke(token)  # the whole token works too; the first time is kept
    assert again.revoked_at == revoked.revoked_at
    assert [k.name for k in keys.list()] == ["old", "kept"]
    assert [k.name for k in keys.list(include_revoked=False)] == ["kept"]
    assert "secret_hash" not in lab.store.list_api_keys()[0]
    with pytest.raises(NotFoundError, match="no API key 'nope'"):
        keys.revoke("nope")


@pytest.mark.parametrize("name", ["", "   ", "x" * 201, "tab\tname", None])
def test_bad_key_names_are_refused(lab, name):
    with pytest.raises(ConfigError, match="invalid API key name"):
        ApiKeys(lab.store).create(name, ["run"])


def test_cli_create_prints_the_key_once_then_list_and_revoke(lab):
    runner = CliRunner()
    url = lab.store.url
    created = runner.invoke(cli, ["keys", "create", "--name", "web", "--scope", "run", "--scope", "feedback",
                                  "--db", url])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    key_id, secret = parse_token(token)
    assert ApiKeys(lab.store).authenticate(token).scopes == ("run", "feedback")
    listed = runner.invoke(cli, ["keys", "list", "--db", url])
    assert listed.exit_code == 0 and key_id in listed.stdout and "run,feedback" in listed.stdout
    assert secret not in listed.output
    revoked = runner.invoke(cli, ["keys", "revoke", key_id, "--db", url])
    assert revoked.exit_code == 0 and f"revoked API key {key_id}" in revoked.stdout
    assert ApiKeys(lab.store).authenticate(token) is None
    bad = runner.invoke(cli, ["keys", "create", "--name", "x", "--scope", "write", "--db", url])
    assert bad.exit_code == 2 and "unknown API key scope 'write'" in bad.output
    missing = runner.invoke(cli, ["keys", "revoke", "nope", "--db", url])
    assert missing.exit_code == 2 and "no API key 'nope'" in missing.output
