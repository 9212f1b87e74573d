"""Small helpers shared by the store modules."""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator

import sqlalchemy as sa

from ..errors import ConfigError


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


def is_conflict(exc: BaseException) -> bool:
    """Whether a promptlab error is the store refusing a duplicate key (a concurrent writer)."""
    return bool(getattr(exc, "conflict", False))


@contextmanager
def named_conflict(message: str) -> Iterator[None]:
    """Turn the store's duplicate-key error inside into ConfigError(``message``)."""
    try:
        yield
    except ConfigError as exc:
        if is_conflict(exc):
            raise ConfigError(message) from None
        raise
