"""Metadata filters: MongoDB-style conditions on a document's metadata, evaluated in Python.

A filter is a dict. Plain keys compare a metadata field for equality (every key must match,
the seed's ``{"user-id": "00379-28829999a", "tenant-id": "aa882-bb873"}``); an operator dict
compares with operators; ``$and`` / ``$or`` combine filters::

    {"tenant-id": "aa882"}                                   # equality
    {"year": {"$gte": 2020, "$lt": 2025}}                    # operators on one field (all hold)
    {"product": {"$in": ["billing", "sso"]}}
    {"$or": [{"tenant-id": "aa882"}, {"public": True}]}

Operators: ``$eq $ne $in $nin $gt $gte $lt $lte`` on fields, ``$and $or`` at any level.
Semantics follow MongoDB where it matters to a user:

- a missing field matches ``$ne`` and ``$nin`` and nothing else;
- a list-valued field matches ``$eq``/``$in`` when any element does (``{"tags": "faq"}``
  matches ``{"tags": ["faq", "billing"]}``), and ``$ne``/``$nin`` only when no element does;
- ordering operators compare numbers with numbers and strings with strings (ISO dates sort
  as strings); a field of another type does not match instead of raising;
- ``True`` is not equal to ``1``;
- a key with dots (``"author.name"``) reaches into nested metadata when no field has that
  literal name.

``compile_filter`` validates once and returns a predicate; invalid filters raise
``InvalidInputError`` naming the offending key. Nothing here touches SQL: values never reach
a query string.
"""

from __future__ import annotations

import json
from numbers import Real
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ..errors import InvalidInputError

Predicate = Callable[[Mapping[str, Any]], bool]

FIELD_OPERATORS = ("$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte")
LOGICAL_OPERATORS = ("$and", "$or")
_MISSING = object()


def compile_filter(metadata_filter: Mapping[str, Any] | None) -> Predicate:
    """A predicate ``metadata -> bool`` for ``metadata_filter`` (None or {} match everything).

    >>> match = compile_filter({"tenant-id": "aa882", "year": {"$gte": 2020}})
    >>> match({"tenant-id": "aa882", "year": 2023}), match({"tenant-id": "bb", "year": 2023})
    (True, False)
    """
    if metadata_filter is None:
        return _always
    if not isinstance(metadata_filter, Mapping):
        raise InvalidInputError(
            f"metadata_filter must be a dict, not {type(metadata_filter).__name__}")
    return _compile_mapping(metadata_filter, "metadata_filter")


def matches(metadata: Mapping[str, Any], metadata_filter: Mapping[str, Any] | None) -> bool:
    """Whether one document's metadata satisfies the filter."""
    return compile_filter(metadata_filter)(metadata)


def validate_filter(metadata_filter: Mapping[str, Any] | None) -> None:
    """Raise ``InvalidInputError`` if the filter is malformed."""
    compile_filter(metadata_filter)


def filter_key(metadata_filter: Mapping[str, Any] | None) -> str:
    """A canonical string for a (valid) filter, for caching its result."""
    return json.dumps(metadata_filter or {}, sort_keys=True, default=repr)


# -- compilation --------------------------------------------------------------------------


def _always(_metadata: Mapping[str, Any]) -> bool:
    return True


def _compile_mapping(spec: Mapping[str, Any], where: str) -> Predicate:
    parts: list[Predicate] = []
    for key, value in spec.items():
        if not isinstance(key, str):
            raise InvalidInputError(f"{where}: keys must be strings, not {key!r}")
        path = f"{where}[{key!r}]"
        if key in LOGICAL_OPERATORS:
            parts.append(_compile_logical(key, value, path))
        elif key.startswith("$"):
            raise InvalidInputError(
                f"{where}: unknown operator {key!r} at this level; use a field name, or one of "
                f"{', '.join(LOGICAL_OPERATORS)} (field operators {', '.join(FIELD_OPERATORS)} go "
                "inside a field: {\"year\": {\"$gte\": 2020}})")
        else:
            parts.append(_compile_field(key, value, path))
    if not parts:
        return _always
    if len(parts) == 1:
        return parts[0]
    return lambda metadata: all(part(metadata) for part in parts)


def _compile_logical(op: str, value: Any, path: str) -> Predicate:
    if not isinstance(value, (list, tuple)) or not value:
        raise InvalidInputError(f"{path}: {op} needs a non-empty list of filters, got {value!r}")
    subs = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise InvalidInputError(f"{path}[{i}]: each {op} item must be a dict, got {item!r}")
        subs.append(_compile_mapping(item, f"{path}[{i}]"))
    if op == "$and":
        return lambda metadata: all(sub(metadata) for sub in subs)
    return lambda metadata: any(sub(metadata) for sub in subs)


def _is_operator_dict(value: Any, path: str) -> bool:
    if not isinstance(value, Mapping) or not value:
        return False
    dollar = [k for k in value if isinstance(k, str) and k.startswith("$")]
    if dollar and len(dollar) != len(value):
        raise InvalidInputError(
            f"{path}: do not mix operators ({', '.join(dollar)}) with plain keys in one condition")
    return bool(dollar)


def _compile_field(key: str, value: Any, path: str) -> Predicate:
    if not _is_operator_dict(value, path):
        _check_literal(value, path)
        return _field_test(key, _eq_test(value))
    tests = [_operator_test(op, operand, f"{path}[{op!r}]") for op, operand in value.items()]
    return _field_test(key, lambda found: all(test(found) for test in tests))


def _field_test(key: str, test: Callable[[Any], bool]) -> Predicate:
    return lambda metadata: test(lookup(metadata, key))


def _operator_test(op: str, operand: Any, path: str) -> Callable[[Any], bool]:
    if op == "$eq":
        _check_literal(operand, path)
        return _eq_test(operand)
    if op == "$ne":
        _check_literal(operand, path)
        eq = _eq_test(operand)
        return lambda found: not eq(found)
    if op in ("$in", "$nin"):
        if not isinstance(operand, (list, tuple, set, frozenset)):
            raise InvalidInputError(f"{path}: {op} needs a list of values, got "
                                    f"{type(operand).__name__} {operand!r}")
        for item in operand:
            _check_literal(item, path)
        tests = [_eq_test(item) for item in operand]
        if op == "$in":
            return lambda found: any(test(found) for test in tests)
        return lambda found: not any(test(found) for test in tests)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if isinstance(operand, bool) or not isinstance(operand, (Real, str)):
            raise InvalidInputError(f"{path}: {op} compares with a number or a string, got "
                                    f"{type(operand).__name__} {operand!r}")
        return _order_test(op, operand)
    raise InvalidInputError(f"{path}: unknown operator {op!r}; use one of {', '.join(FIELD_OPERATORS)}")


def _check_literal(value: Any, path: str) -> None:
    # Anything JSON can hold may be compared for equality; other objects (sets, classes, ...)
    # are almost certainly a mistake and would never equal stored JSON metadata.
    if value is None or isinstance(value, (str, bool, Real)):
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_literal(item, path)
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidInputError(f"{path}: keys must be strings, not {k!r}")
            _check_literal(v, path)
        return
    raise InvalidInputError(f"{path}: cannot compare metadata with {type(value).__name__} {value!r}")


# -- evaluation ---------------------------------------------------------------------------


def lookup(metadata: Mapping[str, Any], key: str) -> Any:
    """The value of ``key`` in ``metadata`` (dotted paths reach nested dicts); ``_MISSING``."""
    if key in metadata:
        return metadata[key]
    if "." in key:
        current: Any = metadata
        for part in key.split("."):
            if not isinstance(current, Mapping) or part not in current:
                return _MISSING
            current = current[part]
        return current
    return _MISSING


def canonical(value: Any) -> Any:
    """A hashable form of a metadata value in which equal values are equal: ``True`` and ``1``
    differ (bool is an int in Python, not in metadata), ``1`` and ``1.0`` do not."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, Real):
        return ("n", float(value))
    if isinstance(value, str):
        return ("s", value)
    if value is None:
        return ("z", None)
    if isinstance(value, (list, tuple)):
        return ("l", tuple(canonical(v) for v in value))
    if isinstance(value, Mapping):
        return ("d", tuple(sorted((str(k), canonical(v)) for k, v in value.items())))
    return ("o", repr(value))


def _same(a: Any, b: Any) -> bool:
    return canonical(a) == canonical(b)


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def _eq_test(expected: Any) -> Callable[[Any], bool]:
    want = canonical(expected)
    contained = not _is_list(expected)

    def test(found: Any) -> bool:
        if found is _MISSING:
            return False
        if canonical(found) == want:
            return True
        # A list field matches a scalar it contains (MongoDB array semantics).
        return contained and _is_list(found) and any(
            not _is_list(item) and canonical(item) == want for item in found)

    return test


def _comparable(found: Any, operand: Any) -> bool:
    if isinstance(found, bool):
        return False
    if isinstance(operand, str):
        return isinstance(found, str)
    return isinstance(found, Real)


_ORDER = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}


def _order_test(op: str, operand: Any) -> Callable[[Any], bool]:
    compare = _ORDER[op]

    def test(found: Any) -> bool:
        if isinstance(found, list):
            return any(_comparable(item, operand) and compare(item, operand) for item in found)
        return _comparable(found, operand) and compare(found, operand)

    return test


# -- whole-collection evaluation -----------------------------------------------------------


class MetadataTable:
    """Many documents' metadata, indexed for filtering them all at once.

    For each filtered key an inverted index (canonical value -> document numbers, with list
    elements indexed too) is built on first use, so an equality or ``$in`` filter costs a few
    dictionary lookups instead of a Python call per document, and ordering operators visit each
    distinct value once. Results equal ``compile_filter``'s predicate applied to every document.
    """

    def __init__(self, metadatas: Sequence[Mapping[str, Any]]):
        self.metadatas = metadatas
        self.size = len(metadatas)
        self._columns: dict[str, dict[Any, np.ndarray]] = {}

    def column(self, key: str) -> dict[Any, np.ndarray]:
        found = self._columns.get(key)
        if found is None:
            postings: dict[Any, list[int]] = {}
            for i, metadata in enumerate(self.metadatas):
                value = lookup(metadata or {}, key)
                if value is _MISSING:
                    continue
                postings.setdefault(canonical(value), []).append(i)
                if _is_list(value):
                    for item in value:
                        if not _is_list(item):
                            postings.setdefault(canonical(item), []).append(i)
            found = {k: np.unique(np.asarray(v, dtype=np.int64)) for k, v in postings.items()}
            self._columns[key] = found
        return found

    def docs(self, indices: Iterable[np.ndarray]) -> np.ndarray:
        mask = np.zeros(self.size, dtype=bool)
        for index in indices:
            mask[index] = True
        return mask


MaskFn = Callable[[MetadataTable], np.ndarray]


def compile_mask(metadata_filter: Mapping[str, Any] | None) -> MaskFn:
    """Like ``compile_filter``, but evaluates a whole ``MetadataTable`` to a boolean array.

    >>> table = MetadataTable([{"tenant": "a"}, {"tenant": "b"}, {}])
    >>> compile_mask({"tenant": {"$ne": "b"}})(table).tolist()
    [True, False, True]
    """
    compile_filter(metadata_filter)  # validation, with the same messages
    if not metadata_filter:
        return lambda table: np.ones(table.size, dtype=bool)
    return _mask_mapping(metadata_filter)


def _mask_mapping(spec: Mapping[str, Any]) -> MaskFn:
    parts: list[MaskFn] = []
    for key, value in spec.items():
        if key in LOGICAL_OPERATORS:
            subs = [_mask_mapping(item) for item in value]
            combine = np.logical_and if key == "$and" else np.logical_or
            parts.append(lambda table, subs=subs, combine=combine:
                         combine.reduce([sub(table) for sub in subs]))
        elif _is_operator_dict(value, key):
            tests = [_mask_operator(key, op, operand) for op, operand in value.items()]
            parts.append(lambda table, tests=tests: np.logical_and.reduce([t(table) for t in tests]))
        else:
            parts.append(_mask_eq(key, value))
    if not parts:
        return lambda table: np.ones(table.size, dtype=bool)
    return lambda table: np.logical_and.reduce([part(table) for part in parts])


def _mask_eq(key: str, expected: Any) -> MaskFn:
    want = canonical(expected)
    if _is_list(expected):
        # A list matches only the whole list; its elements' postings are for scalar queries.
        def whole(table: MetadataTable) -> np.ndarray:
            mask = np.zeros(table.size, dtype=bool)
            for i in table.column(key).get(want, ()):
                if canonical(lookup(table.metadatas[i] or {}, key)) == want:
                    mask[i] = True
            return mask

        return whole
    return lambda table: table.docs([table.column(key).get(want, np.zeros(0, dtype=np.int64))])


def _mask_operator(key: str, op: str, operand: Any) -> MaskFn:
    if op == "$eq":
        return _mask_eq(key, operand)
    if op == "$ne":
        eq = _mask_eq(key, operand)
        return lambda table: ~eq(table)
    if op in ("$in", "$nin"):
        eqs = [_mask_eq(key, item) for item in operand]

        def any_of(table: MetadataTable) -> np.ndarray:
            if not eqs:
                return np.zeros(table.size, dtype=bool)
            return np.logical_or.reduce([eq(table) for eq in eqs])

        return any_of if op == "$in" else (lambda table: ~any_of(table))
    compare = _ORDER[op]
    tag = "s" if isinstance(operand, str) else "n"
    bound = operand if tag == "s" else float(operand)

    def ordered(table: MetadataTable) -> np.ndarray:
        return table.docs(docs for (kind, value), docs in table.column(key).items()
                          if kind == tag and compare(value, bound))

    return ordered


__all__ = ["compile_filter", "compile_mask", "MetadataTable", "matches", "validate_filter",
           "filter_key", "canonical", "FIELD_OPERATORS", "LOGICAL_OPERATORS"]
