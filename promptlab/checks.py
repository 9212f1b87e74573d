"""Argument checks shared by the resources: a wrong type is a promptlab error naming the
argument, never a TypeError from deep inside (every public method raises the error tree)."""

from __future__ import annotations

from typing import Any, Iterable

from .errors import ConfigError, InvalidInputError


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


def user_id(ext_user_id: Any = None, extUserId: Any = None) -> str | None:  # noqa: N803 (the seed's spelling)
    """The external user id given as ``ext_user_id`` or as the seed SDK's ``extUserId`` (the
    gateway accepts both too); both given and different is an error."""
    for name, value in (("ext_user_id", ext_user_id), ("extUserId", extUserId)):
        if value is not None and not isinstance(value, str):
            raise InvalidInputError(f"{name} must be a string, not {type(value).__name__}")
    if ext_user_id is not None and extUserId is not None and ext_user_id != extUserId:
        raise InvalidInputError("ext_user_id and extUserId disagree; give one of them")
    return ext_user_id if ext_user_id is not None else extUserId


def one_of(value: Any, alias: Any, name: str, alias_name: str) -> Any:
    """``value`` or its seed spelling ``alias`` (e.g. ``experiment`` / ``experiment_guid``)."""
    if value is not None and alias is not None and value != alias:
        raise ConfigError(f"{name} and {alias_name} disagree; give one of them")
    return value if value is not None else alias


__all__ = ["count_or_none", "version_or_none", "items", "user_id", "one_of"]
