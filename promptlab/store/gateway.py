"""HTTP gateway: API keys, stored hashed (issue 9).

Tables are defined here on the shared ``schema.metadata``; ``TABLES`` lists them for the
migration that creates them. ``GatewaySQL`` holds this area's SQL and is mixed into ``Store``,
so it can use ``self.read()``, ``self.write()``, ``self._upsert()``, ``self._insert_for()``
and ``self.dialect``.

A key's secret is never stored: only the SHA-256 of its random part (``secret_hash``). The row
is found by the key's public id, so checking a key is one primary-key read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

import sqlalchemy as sa

from ..errors import ConfigError, NotFoundError
from . import schema as t
from ._util import as_dict

api_keys = sa.Table(
    "api_keys",
    t.metadata,
    sa.Column("id", t.SafeString(32), primary_key=True),  # the public part of the key: pl_<id>_<secret>
    sa.Column("name", t.SafeString(200), nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),  # ["run", "feedback", ...]
    sa.Column("secret_hash", t.SafeString(64), nullable=False),  # sha256 hex of the secret part
    sa.Column("created_at", t.Time, nullable=False),
    sa.Column("revoked_at", t.Time),
)

TABLES: list[sa.Table] = [api_keys]

#: What listing a key returns: everything but the hash.
KEY_FIELDS = ("id", "name", "scopes", "created_at", "revoked_at")


class GatewaySQL:
    def insert_api_key(self, row: Mapping[str, Any]) -> None:
        """Store a new key (``id``, ``name``, ``scopes``, ``secret_hash``, ``created_at``)."""
        with self.write() as conn:
            exists = conn.execute(sa.select(api_keys.c.id).where(api_keys.c.id == row["id"])).first()
            if exists:  # 48 random bits: practically never, but never overwrite a key
                raise ConfigError(f"an API key with id {row['id']!r} already exists")
            conn.execute(api_keys.insert().values(**row))

    def get_api_key(self, key_id: str) -> dict[str, Any] | None:
        """The key's row including ``secret_hash`` (for verification), or None."""
        with self.read() as conn:
            return as_dict(conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).first())

    def list_api_keys(self, include_revoked: bool = True) -> list[dict[str, Any]]:
        """Every key, oldest first, without the hash."""
        query = sa.select(*(api_keys.c[f] for f in KEY_FIELDS)).order_by(api_keys.c.created_at, api_keys.c.id)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        with self.read() as conn:
            return [as_dict(r) for r in conn.execute(query)]

    def revoke_api_key(self, key_id: str, when: datetime) -> dict[str, Any]:
        """Mark a key revoked (idempotent: the first revocation time is kept); returns its row
        without the hash. Raises NotFoundError for an unknown id."""
        with self.write() as conn:
            found = conn.execute(sa.select(api_keys.c.id).where(api_keys.c.id == key_id)).first()
            if found is None:
                raise NotFoundError("API key", key_id, "list them with `promptlab keys list`")
            conn.execute(api_keys.update().where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                         .values(revoked_at=when))
            row = conn.execute(sa.select(*(api_keys.c[f] for f in KEY_FIELDS))
                               .where(api_keys.c.id == key_id)).first()
        return as_dict(row)
