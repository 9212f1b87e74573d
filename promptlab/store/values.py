"""The value boundary before SQL: what any text or JSON value becomes in the store, identically
on SQLite and PostgreSQL.

Why: PostgreSQL refuses a NUL character in text, both stores (and every UTF-8 file or HTTP
response) choke on lone surrogates, and ``json.dumps`` writes ``NaN`` that PostgreSQL refuses
and that SQLite keeps as invalid JSON. A model's answer must never be lost because of its bytes,
and a bad value must fail the same clear way on both stores, before anything is sent or paid.

- Text columns (``SafeText`` / ``SafeString``): a NUL is stored as U+E000 followed by ``0`` and
  U+E000 itself as U+E000 twice; reading undoes it, so text round-trips exactly. A lone
  surrogate (never valid Unicode text) is replaced by U+FFFD.
- JSON columns (the engines' ``json_serializer``): ASCII JSON (a NUL is the escape ``\\u0000``,
  which both stores keep), lone surrogates replaced by U+FFFD, and NaN/Infinity, sets and other
  objects refused with InvalidInputError naming where the value is.
- ``check_json(value, "input")`` is the same check for the API, before a call is made.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from typing import Any

import sqlalchemy as sa

from ..errors import InvalidInputError

_ESCAPE = "\ue000"
_ESCAPED = re.compile("\ue000(.)", re.DOTALL)
_SURROGATE = re.compile("[\ud800-\udfff]")


def escape_text(text: str) -> str:
    """Text as stored: NUL and the escape character made safe; lone surrogates replaced."""
    if not text.isascii():
        if _SURROGATE.search(text):
            text = _SURROGATE.sub("\ufffd", text)
        if _ESCAPE in text:
            text = text.replace(_ESCAPE, _ESCAPE + _ESCAPE)
    if "\x00" in text:
        text = text.replace("\x00", _ESCAPE + "0")
    return text


def unescape_text(text: str) -> str:
    """The text ``escape_text`` stored."""
    if _ESCAPE not in text:
        return text
    return _ESCAPED.sub(lambda m: "\x00" if m.group(1) == "0" else m.group(1), text)


class SafeText(sa.types.TypeDecorator):
    """Text that round-trips any Python string the same on SQLite and PostgreSQL."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if isinstance(value, str):
            return escape_text(value)
        if value is not None:  # SQLite would keep bytes or a number as such, PostgreSQL refuse them
            raise InvalidInputError(f"a text field was given {type(value).__name__} {str(value)[:40]!r}; "
                                    "pass a string")
        return value

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return unescape_text(value) if isinstance(value, str) else value


class SafeString(SafeText):
    """``SafeText`` with a length (VARCHAR)."""

    impl = sa.String
    cache_ok = True


def problem(value: Any, where: str = "value", depth: int = 0) -> str | None:
    """Why ``value`` cannot be stored as JSON (naming where in it), or None."""
    if depth > 100:
        return f"{where} is nested more than 100 levels deep"
    if value is None or isinstance(value, (str, bool, int)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where} is {value!r}, which is not valid JSON; use null"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where} has a key {key!r} of type {type(key).__name__}; JSON keys are strings"
            found = problem(item, f"{where}[{key!r}]", depth + 1)
            if found:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = problem(item, f"{where}[{index}]", depth + 1)
            if found:
                return found
        return None
    kind = type(value).__name__
    hint = "; pass a list" if isinstance(value, (set, frozenset)) else \
        "; use an ISO string" if isinstance(value, (datetime.date, datetime.time)) else ""
    article = "an" if kind[:1].lower() in "aeiou" else "a"
    return f"{where} is {article} {kind}, which cannot be stored as JSON{hint}"


def check_json(value: Any, where: str) -> None:
    """Raise InvalidInputError naming the first part of ``value`` that cannot be stored as JSON."""
    found = problem(value, where)
    if found:
        raise InvalidInputError(found)


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {k: _replace_surrogates(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_replace_surrogates(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """The JSON text both stores keep for ``value`` (the engines' ``json_serializer``)."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        raise InvalidInputError(problem(value) or "a value cannot be stored as JSON") from None
    if "\\ud" in text:  # a surrogate escape: keep only well-formed pairs
        text = json.dumps(_replace_surrogates(value), allow_nan=False)
    return text


__all__ = ["SafeText", "SafeString", "escape_text", "unescape_text", "check_json", "problem", "dumps"]
