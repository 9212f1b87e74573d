"""Datasets in and out: export logged data (generations, feedback, fine-tuning and preference
sets) as JSONL / CSV / Parquet, and import datasets of inputs for experiments.

::

    lab.data.export("ft.jsonl", kind="finetune", action="writer")   # OpenAI chat fine-tuning
    lab.data.export("prefs.parquet", kind="preferences")            # prompt / chosen / rejected
    lab.data.to_pandas(kind="feedback", rating="Negative")
    ds = lab.data.import_dataset("questions.csv")                   # rows: variables (+ expected)

Kinds:

- ``generations``: one row per generation, with its latest human rating, correction, issue.
- ``feedback``: one row per feedback entry, joined with its generation.
- ``finetune``: ``{"messages": [...rendered request..., {"role": "assistant", "content": ...}]}``;
  the assistant turn is the latest human correction when there is one, else the output of a
  generation whose latest human rating is Positive. Negatives without a correction and failed
  generations are left out.
- ``preferences``: ``{"prompt": messages, "chosen": text, "rejected": text, ...}`` from pairwise
  preferences (ties skipped; the prompt is the chosen generation's messages) and from every
  (Positive, Negative) pair of latest ratings on generations with identical rendered messages.
  Pairs whose two texts are identical are skipped.

Exports stream from the store in batches and never hold all rows; the file appears only once
complete. Nested values (messages, input, metadata) are JSON text in CSV and Parquet.
"""

from __future__ import annotations

import csv
import io
import json
import math
import operator
import os
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence

from .checks import count_or_none
from .errors import ConfigError, InvalidInputError
from .feedback import NEGATIVE, POSITIVE, normalize_rating

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .lab import Lab

KINDS = ("generations", "feedback", "finetune", "preferences")
FORMATS = ("jsonl", "csv", "parquet")
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
BATCH_SIZE = 5000

# (column, type, key in the store row). Types: str int float bool time json.
_GENERATION_COLUMNS: list[tuple[str, str, str]] = [
    ("guid", "str", "guid"), ("status", "str", "status"), ("action", "str", "action_name"),
    ("action_guid", "str", "action_guid"), ("action_version", "int", "action_version"),
    ("environment", "str", "environment"), ("model", "str", "model"), ("input", "json", "input"),
    ("messages", "json", "messages"), ("output", "str", "output"), ("params", "json", "params"),
    ("prompt_tokens", "int", "prompt_tokens"), ("completion_tokens", "int", "completion_tokens"),
    ("cost_usd", "float", "cost_usd"), ("latency_ms", "float", "latency_ms"),
    ("ttft_ms", "float", "ttft_ms"), ("finish_reason", "str", "finish_reason"),
    ("cached", "bool", "cached"), ("streaming", "bool", "streaming"),
    ("session_guid", "str", "session_guid"), ("ext_user_id", "str", "ext_user_id"),
    ("error_type", "str", "error_type"), ("error", "str", "error"), ("metadata", "json", "metadata"),
    ("experiment_guid", "str", "experiment_guid"), ("variant", "str", "variant"),
    ("run_guid", "str", "run_guid"), ("repeat", "int", "repeat"), ("created_at", "time", "created_at"),
    ("finished_at", "time", "finished_at"), ("rating", "str", "rating"),
    ("correction", "str", "correction"), ("issue", "str", "issue"),
]
_FEEDBACK_COLUMNS: list[tuple[str, str, str]] = [
    ("guid", "str", "guid"), ("generation_guid", "str", "generation_guid"), ("rating", "str", "rating"),
    ("correction", "str", "correction"), ("issue", "str", "issue"), ("comment", "str", "comment"),
    ("score", "float", "score"), ("evaluator", "str", "evaluator"), ("source", "str", "source"),
    ("ext_user_id", "str", "ext_user_id"), ("metadata", "json", "metadata"),
    ("created_at", "time", "created_at"), ("action", "str", "g_action_name"),
    ("action_guid", "str", "g_action_guid"), ("action_version", "int", "g_action_version"),
    ("environment", "str", "g_environment"), ("model", "str", "g_model"), ("input", "json", "g_input"),
    ("messages", "json", "g_messages"), ("output", "str", "g_output"),
    ("generation_status", "str", "g_status"), ("generation_ext_user_id", "str", "g_ext_user_id"),
    ("experiment_guid", "str", "g_experiment_guid"), ("variant", "str", "g_variant"),
    ("run_guid", "str", "g_run_guid"), ("generation_created_at", "time", "g_created_at"),
]
_FINETUNE_COLUMNS = [("messages", "json", "messages")]
_PREFERENCE_COLUMNS = [
    ("prompt", "json", "prompt"), ("chosen", "str", "chosen"), ("rejected", "str", "rejected"),
    ("chosen_guid", "str", "chosen_guid"), ("rejected_guid", "str", "rejected_guid"),
    ("origin", "str", "origin"), ("action", "str", "action"),
]
# Kinds whose export reads JSON columns as stored text (see _jsonl_encoder).
_RAW_JSON_KINDS = ("generations", "feedback")
COLUMNS: dict[str, list[tuple[str, str, str]]] = {
    "generations": _GENERATION_COLUMNS, "feedback": _FEEDBACK_COLUMNS,
    "finetune": _FINETUNE_COLUMNS, "preferences": _PREFERENCE_COLUMNS,
}

_COMMON_FILTERS = ("action", "version", "environment", "experiment", "since", "until", "ext_user_id")
FILTERS: dict[str, tuple[str, ...]] = {
    "generations": _COMMON_FILTERS + ("rating", "status"),
    "feedback": _COMMON_FILTERS + ("rating", "source"),
    "finetune": _COMMON_FILTERS + ("rating",),
    "preferences": _COMMON_FILTERS,
}


@dataclass(frozen=True)
class ExportResult:
    """What ``export`` wrote: the file, how many rows, which kind and format."""

    path: Path
    rows: int
    kind: str
    format: str


# -- pure helpers -----------------------------------------------------------------------------


def parse_time(value: Any, name: str = "time") -> datetime | None:
    """A filter bound as an aware UTC datetime: datetimes, dates and ISO 8601 strings; naive
    values are taken as UTC (everything promptlab stores is UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInputError(f"{name}={value!r} is not an ISO 8601 date or time") from None
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time())
    if not isinstance(value, datetime):
        raise InvalidInputError(f"{name} must be a datetime, date or ISO string, not {type(value).__name__}")
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def resolve_format(path: str | os.PathLike, format: str | None) -> str:
    if format is not None:
        if not isinstance(format, str) or format.lower() not in FORMATS:
            raise ConfigError(f"unknown export format {format!r}; known: {list(FORMATS)}")
        return format.lower()
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIXES:
        raise ConfigError(f"cannot tell the format of {os.fspath(path)!r} from its suffix; "
                          f"use one of {sorted(_SUFFIXES)} or pass format= ({list(FORMATS)})")
    return _SUFFIXES[suffix]


def check_kind(kind: Any) -> str:
    if kind not in KINDS:
        raise ConfigError(f"unknown export kind {kind!r}; known: {list(KINDS)}")
    return kind


def clean_filters(kind: str, filters: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and normalise export filters for ``kind`` (None values are dropped)."""
    allowed = FILTERS[kind]
    unknown = sorted(set(filters) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown filter(s) {unknown} for kind={kind!r}; known: {list(allowed)}")
    from .actions import normalize_environment

    clean: dict[str, Any] = {}
    for key, value in filters.items():
        if value is None:
            continue
        many = isinstance(value, (list, tuple, set, frozenset))
        values = list(value) if many else [value]
        if key in ("since", "until"):
            if many:
                raise InvalidInputError(f"{key} takes one date or time, not a list")
            clean[key] = parse_time(value, key)
            continue
        if key == "rating":
            values = [normalize_rating(v) for v in values]
        elif key == "environment":
            values = [normalize_environment(v) for v in values]
        elif key == "version":
            if any(isinstance(v, bool) or not isinstance(v, int) for v in values):
                raise InvalidInputError(f"version must be an integer, got {value!r}")
        elif any(not isinstance(v, str) for v in values):
            raise InvalidInputError(f"{key} must be a string, got {value!r}")
        clean[key] = values if many else values[0]
    return clean


def finetune_record(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """One fine-tuning example from a candidate generation, or None when it does not qualify."""
    if row.get("correction") is not None:
        answer = row["correction"]
    elif row.get("rating") == POSITIVE and row.get("output") is not None:
        answer = row["output"]
    else:
        return None
    return {"messages": [*row["messages"], {"role": "assistant", "content": answer}]}


def rating_pairs(group: Sequence[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every (Positive, Negative) pair among rated generations of one rendered input."""
    positives = [r for r in group if r["rating"] == POSITIVE]
    negatives = [r for r in group if r["rating"] == NEGATIVE]
    for good in positives:
        for bad in negatives:
            if good["output"] != bad["output"]:
                yield {"prompt": good["messages"], "chosen": good["output"], "rejected": bad["output"],
                       "chosen_guid": good["guid"], "rejected_guid": bad["guid"], "origin": "ratings",
                       "action": good["action_name"]}


def pairwise_record(row: Mapping[str, Any]) -> dict[str, Any]:
    win, lose = ("a", "b") if row["winner"] == "a" else ("b", "a")
    return {"prompt": row[f"{win}_messages"], "chosen": row[f"{win}_output"],
            "rejected": row[f"{lose}_output"], "chosen_guid": row[f"{win}_guid"],
            "rejected_guid": row[f"{lose}_guid"], "origin": "pairwise", "action": row[f"{win}_action"]}


def shape(kind: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """A store row as an export row: the kind's columns, in order, under their export names."""
    return {name: row.get(key) for name, _type, key in COLUMNS[kind]}


def _shaper(kind: str) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """``shape`` for one kind, precomputed (it runs once per exported row)."""
    names = [name for name, _t, _k in COLUMNS[kind]]
    getter = operator.itemgetter(*[key for _n, _t, key in COLUMNS[kind]])
    return lambda row: dict(zip(names, getter(row)))


# -- writers ----------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_json_default)


def _columns(kind: str, batch: Sequence[Mapping[str, Any]], raw: bool) -> list[list[Any]]:
    """A batch of rows as columns for CSV/Parquet: nested values as JSON text (``raw``: they
    already are, as stored)."""
    columns = []
    for name, type_, _key in COLUMNS[kind]:
        values = [row[name] for row in batch]
        if type_ == "json":
            if raw:
                values = [None if v is None or v == "null" else v for v in values]
            else:
                values = [None if v is None else _dumps(v) for v in values]
        columns.append(values)
    return columns


def _batches(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _jsonl_encoder(kind: str, raw: bool) -> Callable[[Mapping[str, Any]], str]:
    """Row -> JSON line. With ``raw``, JSON columns hold their stored JSON text and are spliced
    in as is (after the other fields) instead of being parsed and serialised again."""
    if not raw:
        return lambda row: _dumps(row) + "\n"
    nested = frozenset(name for name, type_, _k in COLUMNS[kind] if type_ == "json")
    splices = [(name, f", {json.dumps(name)}: ") for name, type_, _k in COLUMNS[kind] if type_ == "json"]

    def encode(row: Mapping[str, Any]) -> str:
        plain = {k: v for k, v in row.items() if k not in nested}
        tail = "".join(prefix + (row[name] or "null") for name, prefix in splices)
        return _dumps(plain)[:-1] + tail + "}\n"

    return encode


def _write_jsonl(handle: io.TextIOBase, kind: str, rows: Iterable[dict[str, Any]], raw: bool = False) -> int:
    encode = _jsonl_encoder(kind, raw)
    count = 0
    for batch in _batches(rows, BATCH_SIZE):
        handle.write("".join(map(encode, batch)))
        count += len(batch)
    return count


def _write_csv(handle: io.TextIOBase, kind: str, rows: Iterable[dict[str, Any]], raw: bool = False) -> int:
    writer = csv.writer(handle)
    writer.writerow([name for name, _t, _k in COLUMNS[kind]])
    count = 0
    times = [i for i, (_n, type_, _k) in enumerate(COLUMNS[kind]) if type_ == "time"]
    for batch in _batches(rows, BATCH_SIZE):
        columns = _columns(kind, batch, raw)
        for i in times:
            columns[i] = [None if v is None else v.isoformat() for v in columns[i]]
        writer.writerows(zip(*columns))
        count += len(batch)
    return count


def _arrow_schema(kind: str):
    import pyarrow as pa

    types = {"str": pa.string(), "json": pa.string(), "int": pa.int64(), "float": pa.float64(),
             "bool": pa.bool_(), "time": pa.timestamp("us", tz="UTC")}
    return pa.schema([(name, types[type_]) for name, type_, _k in COLUMNS[kind]])


def _write_parquet(path: str, kind: str, rows: Iterable[dict[str, Any]], raw: bool = False) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _arrow_schema(kind)
    count = 0
    with pq.ParquetWriter(path, schema) as writer:
        for batch in _batches(rows, BATCH_SIZE):
            arrays = [pa.array(col, type=field.type) for col, field in zip(_columns(kind, batch, raw), schema)]
            writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
            count += len(batch)
    return count


# -- datasets ---------------------------------------------------------------------------------


class Dataset:
    """Rows for an experiment: each a dict of the action's input variables plus, optionally,
    ``expected``. Iterable, indexable, ``len()``-able; ``to_pandas()`` for a look."""

    def __init__(self, rows: list[dict[str, Any]], source: str | None = None):
        self.rows = rows
        self.source = source

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.rows[index]

    def __repr__(self) -> str:
        where = f" from {self.source!r}" if self.source else ""
        return f"<Dataset {len(self.rows)} rows{where}, columns {self.columns}>"

    @property
    def columns(self) -> list[str]:
        """Every key used by any row, in order of first appearance."""
        seen: dict[str, None] = {}
        for row in self.rows:
            seen.update(dict.fromkeys(row))
        return list(seen)

    @property
    def has_expected(self) -> bool:
        return any("expected" in row for row in self.rows)

    def to_pandas(self) -> "pd.DataFrame":
        import pandas as pd

        return pd.DataFrame(self.rows, columns=self.columns)


def _dataset_row(value: Any, number: int) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"a dataset row must be an object of variables, got "
                                f"{type(value).__name__} {value!r:.60}", row=number)
    for key in value:
        if not isinstance(key, str):
            raise InvalidInputError(f"column names must be strings, got {key!r}", row=number)
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in value.items()}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"{path.name}: not valid JSON ({exc.msg}, column {exc.colno})",
                                        row=number) from None
            rows.append(_dataset_row(value, number))
    return rows


def _read_json(path: Path) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8-sig") as handle:
            value = json.load(handle)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{path.name}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(value, list):
        raise InvalidInputError(f"{path.name}: a .json dataset must be a list of objects")
    return [_dataset_row(v, i) for i, v in enumerate(value, start=1)]


def _read_csv(path: Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = next((r for r in reader if r), None)
            if header is None:
                return []
            names = [h.strip() for h in header]
            if any(not n for n in names) or len(set(names)) != len(names):
                raise InvalidInputError(f"{path.name}: the header needs distinct, non-empty column "
                                        f"names, got {header}")
            number = 0
            for fields_ in reader:
                if not fields_:
                    continue
                number += 1
                if len(fields_) != len(names):
                    raise InvalidInputError(
                        f"{path.name} line {reader.line_num}: {len(fields_)} fields, but the header "
                        f"has {len(names)} ({names})", row=number)
                rows.append(dict(zip(names, fields_)))
        except csv.Error as exc:
            raise InvalidInputError(f"{path.name} line {reader.line_num}: {exc}",
                                    row=len(rows) + 1) from None
    return rows


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInputError(f"{path.name}: not a readable Parquet file ({exc})") from None
    return [_dataset_row(r, i) for i, r in enumerate(table.to_pylist(), start=1)]


_READERS: dict[str, Callable[[Path], list[dict[str, Any]]]] = {
    ".jsonl": _read_jsonl, ".ndjson": _read_jsonl, ".json": _read_json, ".csv": _read_csv,
    ".parquet": _read_parquet, ".pq": _read_parquet,
}


def load_dataset(source: Any) -> Dataset:
    """A Dataset from a file path (JSONL, JSON list, CSV, Parquet), a list of dicts, a
    DataFrame or a Dataset. Malformed rows raise InvalidInputError with ``.row`` (1-based;
    the line number in JSONL, the data row after the header in CSV)."""
    if isinstance(source, Dataset):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        reader = _READERS.get(path.suffix.lower())
        if reader is None:
            raise ConfigError(f"cannot read dataset {os.fspath(path)!r}: use a "
                              f"{'/'.join(sorted(_READERS))} file")
        if not path.is_file():
            raise ConfigError(f"dataset file not found: {os.fspath(path)!r}")
        try:
            rows = reader(path)
        except UnicodeDecodeError as exc:
            raise InvalidInputError(f"{path.name} is not UTF-8 text ({exc.reason})") from None
        if not rows:
            raise InvalidInputError(f"dataset {path.name} has no rows")
        return Dataset(rows, source=os.fspath(path))
    if type(source).__name__ == "DataFrame" and hasattr(source, "to_dict"):
        rows = [_dataset_row(r, i) for i, r in enumerate(source.to_dict("records"), start=1)]
    elif isinstance(source, (list, tuple)):
        rows = [_dataset_row(r, i) for i, r in enumerate(source, start=1)]
    else:
        raise ConfigError(f"a dataset is a file path, a list of dicts or a DataFrame, "
                          f"not {type(source).__name__}")
    if not rows:
        raise InvalidInputError("the dataset has no rows")
    return Dataset(rows)


# -- the resource -----------------------------------------------------------------------------


class Data:
    """``lab.data``: export logged data and import datasets."""

    def __init__(self, lab: "Lab"):
        self._lab = lab

    def rows(self, kind: str, batch_size: int = BATCH_SIZE, **filters: Any) -> Iterator[dict[str, Any]]:
        """Stream export rows of ``kind`` (see the module docstring) without loading them all.

        Filters: action (name or GUID), version, environment, experiment (GUID), since/until
        (datetime or ISO string, on the feedback/preference time for those kinds, else the
        generation's), ext_user_id, and rating (latest human rating; the feedback row's own
        rating for kind="feedback"), status (generations), source (feedback). A list matches any.
        """
        kind = check_kind(kind)
        clean = clean_filters(kind, filters)
        return self._rows(kind, clean, count_or_none(batch_size, "batch_size") or BATCH_SIZE)

    def _rows(self, kind: str, filters: dict[str, Any], batch_size: int,
              raw_json: bool = False) -> Iterator[dict[str, Any]]:
        store = self._lab.store
        if kind in _RAW_JSON_KINDS:
            rows = (store.iter_export_generations if kind == "generations" else store.iter_export_feedback)
            yield from map(_shaper(kind), rows(filters, batch_size, raw_json=raw_json))
        elif kind == "finetune":
            for row in store.iter_export_finetune(filters, batch_size):
                record = finetune_record(row)
                if record is not None:
                    yield record
        else:
            for row in store.iter_pairwise(filters, batch_size):
                pair = pairwise_record(row)
                if pair["chosen"] != pair["rejected"]:  # identical texts teach nothing
                    yield shape(kind, pair)
            rated = store.iter_rated_by_input(filters, batch_size)
            for _key, group in groupby(rated, key=lambda r: r["input_key"]):
                for pair in rating_pairs(list(group)):
                    yield shape(kind, pair)

    def export(self, path: str | os.PathLike, *, kind: str, format: str | None = None,
               **filters: Any) -> ExportResult:
        """Write ``kind`` rows to ``path`` as jsonl, csv or parquet (from the suffix unless
        ``format`` is given). Streams in constant memory; the file appears only when complete.

        >>> lab.data.export("ft.jsonl", kind="finetune", action="writer", since="2026-01-01")
        """
        kind = check_kind(kind)
        fmt = resolve_format(path, format)
        clean = clean_filters(kind, filters)
        target = Path(path)
        if not target.parent.is_dir():
            raise ConfigError(f"the folder for the export does not exist: {os.fspath(target.parent)!r}")
        if target.is_dir():
            raise ConfigError(f"the export path is a folder, not a file: {os.fspath(target)!r}")
        temp = target.with_name(f".{target.name}.{os.getpid()}.partial")
        raw = kind in _RAW_JSON_KINDS
        rows = self._rows(kind, clean, BATCH_SIZE, raw_json=raw)
        try:
            if fmt == "parquet":
                count = _write_parquet(os.fspath(temp), kind, rows, raw)
            else:
                with open(temp, "w", encoding="utf-8", newline="") as handle:
                    count = (_write_jsonl if fmt == "jsonl" else _write_csv)(handle, kind, rows, raw)
            os.replace(temp, target)
        except BaseException as exc:
            rows.close()
            temp.unlink(missing_ok=True)
            if isinstance(exc, OSError):  # full disk, no permission, ...
                raise ConfigError(f"cannot write the export to {os.fspath(target)!r}: "
                                  f"{exc.strerror or exc}") from None
            raise
        return ExportResult(path=target, rows=count, kind=kind, format=fmt)

    def to_pandas(self, *, kind: str, **filters: Any) -> "pd.DataFrame":
        """``kind`` rows as a DataFrame (in memory: for exploring, not for huge exports)."""
        import pandas as pd

        kind = check_kind(kind)
        rows = list(self.rows(kind, **filters))
        return pd.DataFrame(rows, columns=[name for name, _t, _k in COLUMNS[kind]])

    def import_dataset(self, source: Any) -> Dataset:
        """Read a dataset of inputs (and optional ``expected`` outputs) for experiments.

        ``source``: a .jsonl/.json/.csv/.parquet path, a list of dicts, a DataFrame or a Dataset.
        Each row is a dict of the action's variables plus, optionally, ``expected``.

        >>> ds = lab.data.import_dataset("questions.jsonl"); len(ds), ds.columns
        """
        return load_dataset(source)


__all__ = ["Data", "Dataset", "ExportResult", "KINDS", "FORMATS", "COLUMNS", "load_dataset",
           "parse_time"]
