"""API keys for the gateway: created once, stored hashed, checked in constant time, revocable.

A key looks like ``pl_<id>_<secret>``: ``id`` (12 hex digits) finds the stored row, ``secret``
(256 random bits, URL-safe base64) is never stored, only its SHA-256. A slow password hash is
not needed because the secret is random, not chosen by a person::

    keys = ApiKeys(lab.store)
    record, token = keys.create("my-app", scopes=["run", "feedback"])   # show token once
    keys.authenticate(token)          # -> ApiKey, or None for an unknown/wrong/revoked key
    keys.revoke(record.id)
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Mapping

from ..errors import ConfigError
from ..store import Store, utcnow

PREFIX = "pl"
#: ``run``: run actions and experiments, read generations, sessions, formatted prompts.
#: ``feedback``: log feedback. ``admin``: everything.
SCOPES = ("run", "feedback", "admin")
_TOKEN_RE = re.compile(r"^pl_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_NAME_RE = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret."""

    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, scope: str) -> bool:
        """True when the key carries ``scope`` (or ``admin``)."""
        return scope in self.scopes or "admin" in self.scopes

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "ApiKey":
        return cls(id=row["id"], name=row["name"], scopes=tuple(row["scopes"]),
                   created_at=row.get("created_at"), revoked_at=row.get("revoked_at"))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_token(token: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a well-formed key, else None (pure)."""
    match = _TOKEN_RE.match(token) if isinstance(token, str) else None
    return (match.group(1), match.group(2)) if match else None


def normalize_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Validated scopes, deduplicated in ``SCOPES`` order. Raises ConfigError naming a bad one."""
    if isinstance(scopes, str):
        scopes = [scopes]
    given = []
    for scope in scopes:
        clean = scope.strip().lower() if isinstance(scope, str) else scope
        if clean not in SCOPES:
            raise ConfigError(f"unknown API key scope {scope!r}; known scopes: {list(SCOPES)}")
        given.append(clean)
    if not given:
        raise ConfigError(f"an API key needs at least one scope out of {list(SCOPES)}")
    return tuple(s for s in SCOPES if s in given)


class ApiKeys:
    """Create, list, revoke and check the gateway's API keys in a store."""

    def __init__(self, store: Store):
        self._store = store

    def create(self, name: str, scopes: Iterable[str]) -> tuple[ApiKey, str]:
        """A new key: ``(record, token)``. The token is shown to the caller once and never stored.

        >>> record, token = ApiKeys(lab.store).create("my-app", ["run", "feedback"])
        """
        if not isinstance(name, str) or not _NAME_RE.match(name) or not name.strip():
            raise ConfigError(f"invalid API key name {name!r}: 1-200 printable characters")
        clean = normalize_scopes(scopes)
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        row = dict(id=key_id, name=name.strip(), scopes=list(clean), secret_hash=hash_secret(secret),
                   created_at=utcnow(), revoked_at=None)
        self._store.insert_api_key(row)
        return ApiKey.from_row(row), f"{PREFIX}_{key_id}_{secret}"

    def list(self, include_revoked: bool = True) -> list[ApiKey]:
        return [ApiKey.from_row(r) for r in self._store.list_api_keys(include_revoked)]

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key by id (the ``pl_<id>_...`` part, or the whole token). Raises NotFoundError."""
        parsed = parse_token(key_id)
        return ApiKey.from_row(self._store.revoke_api_key(parsed[0] if parsed else key_id, utcnow()))

    def authenticate(self, token: str) -> ApiKey | None:
        """The active key this token belongs to, or None (malformed, unknown, wrong secret, revoked)."""
        parsed = parse_token(token)
        if parsed is None:
            return None
        key_id, secret = parsed
        row = self._store.get_api_key(key_id)
        # Hash and compare even for an unknown id, so timing does not tell which ids exist.
        stored = row["secret_hash"] if row is not None else "0" * 64
        if not hmac.compare_digest(stored, hash_secret(secret)) or row is None:
            return None
        record = ApiKey.from_row(row)
        return record if record.active else None
