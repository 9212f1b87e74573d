"""Small helpers shared by the store modules."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa


def new_guid() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def aware(value: Any) -> Any:
    # SQLite hands datetimes back naive; everything promptlab stores is UTC.
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def as_dict(row: sa.Row | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {k: aware(v) for k, v in row._mapping.items()}
