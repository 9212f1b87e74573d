"""Argument checks shared by the resources: a wrong type is a promptlab error naming the
argument, never a TypeError from deep inside (every public method raises the error tree)."""

from __future__ import annotations

from typing import Any, Iterable

from .errors import ConfigError


def count_or_none(value: Any, name: str) -> int | None:
    """``value`` if it is None or a positive integer (a limit, a batch size)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer or None, not {value!r}")
    return value


def version_or_none(value: Any, name: str = "version") -> int | str | None:
    """An action version: None, "latest" or a positive integer (a string of digits is accepted)."""
    if value is None or value == "latest":
        return value
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer or 'latest', not {value!r}")
    return value


def items(value: Any, name: str, *, allow_str: bool = False) -> list[Any]:
    """``value`` as a list: it must be iterable (a lone string counts as one item if allowed)."""
    if isinstance(value, str) and allow_str:
        return [value]
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ConfigError(f"{name} must be a list, not {type(value).__name__}")
    return list(value)


__all__ = ["count_or_none", "version_or_none", "items"]
