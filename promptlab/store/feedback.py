"""Feedback, ratings and pairwise preferences (issue 4), and the streaming export queries.

Tables are defined here on the shared ``schema.metadata``; ``TABLES`` lists them for the
migration that creates them. ``FeedbackSQL`` holds this area's SQL and is mixed into ``Store``,
so it can use ``self.read()``, ``self.write()``, ``self._upsert()`` and ``self.dialect``.

Table layout::

    feedback     id (autoincrement, the "which is latest" order), guid (unique),
                 generation_guid -> generations.guid, rating ('Positive' | 'Negative' | NULL),
                 correction, issue, comment, score (0..1), evaluator,
                 source ('human' | 'evaluator'), ext_user_id, metadata (JSON), created_at
    preferences  id, guid (unique), generation_a, generation_b -> generations.guid,
                 winner ('a' | 'b' | 'tie'), source, evaluator, ext_user_id, comment,
                 metadata (JSON), created_at

Feedback rows are never updated: several rows per generation are its history. Aggregates take,
per generation and per field, the value of the latest *human* row that sets that field
("latest wins"), so a later comment-only row does not erase an earlier rating.

Exports stream: ``iter_export_*`` generators read through a server-side cursor (PostgreSQL) or
SQLite's incremental stepping, ``yield_per`` rows at a time, so memory does not grow with the
number of rows.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

import sqlalchemy as sa

from ..errors import NotFoundError
from . import schema as t
from ._util import as_dict, aware

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")  # SQLite: INTEGER PRIMARY KEY = rowid

feedback = sa.Table(
    "feedback",
    t.metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("guid", t.GUID, nullable=False, unique=True),
    sa.Column("generation_guid", t.GUID, sa.ForeignKey("generations.guid"), nullable=False),
    sa.Column("rating", t.SafeString(16)),
    sa.Column("correction", t.SafeText),
    sa.Column("issue", t.SafeString(100)),
    sa.Column("comment", t.SafeText),
    sa.Column("score", sa.Float),
    sa.Column("evaluator", t.SafeString(200)),
    sa.Column("source", t.SafeString(16), nullable=False),
    sa.Column("ext_user_id", t.SafeString(300), index=True),
    sa.Column("metadata", sa.JSON),
    sa.Column("created_at", t.Time, nullable=False, index=True),
    # Serves "this generation's feedback, newest first" (latest-wins lookups) and the join.
    sa.Index("ix_feedback_generation_id", "generation_guid", "id"),
)

preferences = sa.Table(
    "preferences",
    t.metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("guid", t.GUID, nullable=False, unique=True),
    sa.Column("generation_a", t.GUID, sa.ForeignKey("generations.guid"), nullable=False, index=True),
    sa.Column("generation_b", t.GUID, sa.ForeignKey("generations.guid"), nullable=False, index=True),
    sa.Column("winner", t.SafeString(4), nullable=False),
    sa.Column("source", t.SafeString(16), nullable=False),
    sa.Column("evaluator", t.SafeString(200)),
    sa.Column("ext_user_id", t.SafeString(300)),
    sa.Column("comment", t.SafeText),
    sa.Column("metadata", sa.JSON),
    sa.Column("created_at", t.Time, nullable=False, index=True),
)

TABLES: list[sa.Table] = [feedback, preferences]

FEEDBACK_FIELDS = ("guid", "generation_guid", "rating", "correction", "issue", "comment", "score",
                   "evaluator", "source", "ext_user_id", "metadata", "created_at")
PREFERENCE_FIELDS = ("guid", "generation_a", "generation_b", "winner", "source", "evaluator",
                     "ext_user_id", "comment", "metadata", "created_at")

# Export filters understood by the queries below (data.py validates names and values first).
GENERATION_FILTERS = ("action", "version", "environment", "experiment", "status")
EXPORT_FILTERS = GENERATION_FILTERS + ("rating", "since", "until", "ext_user_id", "source")

_CHECK_CHUNK = 500  # GUIDs per existence query (well under every driver's parameter limit)


def _latest_human(column: str, generation_guid: sa.ColumnElement) -> sa.ScalarSelect:
    """The generation's latest human value of a feedback field (NULL when never set)."""
    f = feedback.alias()
    return (sa.select(f.c[column])
            .where(f.c.generation_guid == generation_guid, f.c.source == "human",
                   f.c[column].is_not(None))
            .order_by(f.c.id.desc()).limit(1).scalar_subquery())


def _match(column: sa.ColumnElement, value: Any) -> sa.ColumnElement:
    if isinstance(value, (list, tuple, set, frozenset)):
        return column.in_(list(value))
    return column == value


def _generation_clauses(g: sa.FromClause, filters: Mapping[str, Any]) -> list[sa.ColumnElement]:
    clauses = []
    for key in GENERATION_FILTERS:
        value = filters.get(key)
        if value is None:
            continue
        if key == "action":
            clauses.append(sa.or_(_match(g.c.action_name, value), _match(g.c.action_guid, value)))
        elif key == "version":
            clauses.append(_match(g.c.action_version, value))
        elif key == "experiment":
            clauses.append(_match(g.c.experiment_guid, value))
        else:
            clauses.append(_match(g.c[key], value))
    return clauses


def _time_clauses(column: sa.ColumnElement, filters: Mapping[str, Any]) -> list[sa.ColumnElement]:
    clauses = []
    if filters.get("since") is not None:
        clauses.append(column >= filters["since"])
    if filters.get("until") is not None:
        clauses.append(column < filters["until"])
    return clauses


def _generation_columns(g: sa.FromClause, raw_json: bool = False) -> list[sa.ColumnElement]:
    latest = {name: _latest_human(name, g.c.guid).label(name) for name in ("rating", "correction", "issue")}
    return [*[_maybe_text(c, raw_json) for c in g.c], *latest.values()]


def _maybe_text(column: sa.ColumnElement, raw_json: bool, label: str | None = None) -> sa.ColumnElement:
    """The column, or for a JSON column with ``raw_json`` its stored JSON text (no decoding:
    an export writing JSON again need not parse and re-serialise it). JSON null reads 'null'."""
    if raw_json and isinstance(column.type, sa.JSON):
        return sa.cast(column, sa.Text).label(label or column.name)
    return column.label(label) if label else column


class FeedbackSQL:
    """Feedback, preference and export SQL; mixed into ``Store``."""

    # -- writes -------------------------------------------------------------------------

    def _missing_generations(self, conn: sa.Connection, guids: Sequence[str]) -> list[str]:
        wanted = list(dict.fromkeys(guids))
        found: set[str] = set()
        for start in range(0, len(wanted), _CHECK_CHUNK):
            chunk = wanted[start:start + _CHECK_CHUNK]
            found.update(conn.execute(sa.select(t.generations.c.guid)
                                      .where(t.generations.c.guid.in_(chunk))).scalars())
        return [g for g in wanted if g not in found]

    def insert_feedback(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert feedback rows (full rows, validated by the caller) in ONE transaction.

        Raises NotFoundError naming the first unknown generation; then nothing is written.
        """
        if not rows:
            return
        with self.write() as conn:
            missing = self._missing_generations(conn, [r["generation_guid"] for r in rows])
            if missing:
                raise NotFoundError("generation", missing[0],
                                    f"{len(missing)} unknown generation GUID(s); nothing was written"
                                    if len(missing) > 1 else "nothing was written")
            conn.execute(feedback.insert(), [dict(r) for r in rows])

    def insert_preference(self, row: Mapping[str, Any]) -> None:
        with self.write() as conn:
            missing = self._missing_generations(conn, [row["generation_a"], row["generation_b"]])
            if missing:
                raise NotFoundError("generation", missing[0], "nothing was written")
            conn.execute(preferences.insert().values(**row))

    def bulk_insert_generations(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert many complete generation rows in one transaction (imports, benchmarks)."""
        if rows:
            with self.write() as conn:
                conn.execute(t.generations.insert(), [dict(r) for r in rows])

    # -- reads --------------------------------------------------------------------------

    def _feedback_query(self, generation: str | None, filters: Mapping[str, Any]) -> sa.Select:
        f = feedback
        query = sa.select(*[f.c[name] for name in FEEDBACK_FIELDS]).order_by(f.c.id)
        if generation is not None:
            query = query.where(f.c.generation_guid == generation)
        for key in ("rating", "issue", "source", "evaluator", "ext_user_id"):
            if filters.get(key) is not None:
                query = query.where(_match(f.c[key], filters[key]))
        query = query.where(*_time_clauses(f.c.created_at, filters))
        generation_filters = {k: filters.get(k) for k in GENERATION_FILTERS}
        if any(v is not None for v in generation_filters.values()):
            g = t.generations
            query = query.join(g, g.c.guid == f.c.generation_guid).where(
                *_generation_clauses(g, generation_filters))
        return query

    def list_feedback(self, generation: str | None = None, limit: int | None = None,
                      **filters: Any) -> list[dict[str, Any]]:
        """Feedback rows, oldest first. Filters: rating, issue, source, evaluator, ext_user_id,
        since, until, and the generation's action, version, environment, experiment, status."""
        query = self._feedback_query(generation, filters)
        if limit is not None:
            query = query.limit(limit)
        with self.read() as conn:
            return [as_dict(r) for r in conn.execute(query)]

    def count_feedback(self, generation: str | None = None, **filters: Any) -> int:
        query = self._feedback_query(generation, filters).order_by(None)
        with self.read() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()

    def list_preferences(self, generation: str | None = None, **filters: Any) -> list[dict[str, Any]]:
        p = preferences
        query = sa.select(*[p.c[name] for name in PREFERENCE_FIELDS]).order_by(p.c.id)
        if generation is not None:
            query = query.where(sa.or_(p.c.generation_a == generation, p.c.generation_b == generation))
        for key in ("winner", "source", "evaluator", "ext_user_id"):
            if filters.get(key) is not None:
                query = query.where(_match(p.c[key], filters[key]))
        query = query.where(*_time_clauses(p.c.created_at, filters))
        with self.read() as conn:
            return [as_dict(r) for r in conn.execute(query)]

    def latest_human_feedback(self, generation_guids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Per generation: the latest human rating, correction and issue ("latest wins").
        Generations without any human feedback are absent."""
        out: dict[str, dict[str, Any]] = {}
        g = t.generations
        wanted = list(dict.fromkeys(generation_guids))
        with self.read() as conn:
            for start in range(0, len(wanted), _CHECK_CHUNK):
                chunk = wanted[start:start + _CHECK_CHUNK]
                query = sa.select(*_generation_columns(g)[-3:], g.c.guid).where(g.c.guid.in_(chunk))
                for row in conn.execute(query):
                    values = {"rating": row.rating, "correction": row.correction, "issue": row.issue}
                    if any(v is not None for v in values.values()):
                        out[row.guid] = values
        return out

    # -- streaming exports --------------------------------------------------------------

    def _stream(self, query: sa.Select, batch_size: int) -> Iterator[dict[str, Any]]:
        # Hot path of every export (a million rows): plain tuples, and only the DateTime
        # columns get the UTC tzinfo that SQLite drops (as_dict would check every value).
        times = [i for i, column in enumerate(query.selected_columns) if isinstance(column.type, sa.DateTime)]
        with self.read() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(query)
            keys = list(result.keys())
            for partition in result.partitions():
                for row in partition:
                    values = list(row)
                    for i in times:
                        values[i] = aware(values[i])
                    yield dict(zip(keys, values))

    def iter_export_generations(self, filters: Mapping[str, Any], batch_size: int = 2000,
                                raw_json: bool = False) -> Iterator[dict[str, Any]]:
        """Generation rows with their latest human rating/correction/issue, oldest first.
        ``raw_json``: JSON columns as their stored text."""
        g = t.generations.alias("g")
        query = sa.select(*_generation_columns(g, raw_json)).where(*_generation_clauses(g, filters))
        query = query.where(*_time_clauses(g.c.created_at, filters))
        if filters.get("ext_user_id") is not None:
            query = query.where(_match(g.c.ext_user_id, filters["ext_user_id"]))
        if filters.get("rating") is not None:
            query = query.where(_match(_latest_human("rating", g.c.guid), filters["rating"]))
        yield from self._stream(query.order_by(g.c.created_at, g.c.guid), batch_size)

    def iter_export_feedback(self, filters: Mapping[str, Any], batch_size: int = 2000,
                             raw_json: bool = False) -> Iterator[dict[str, Any]]:
        """Feedback rows joined with their generation (``g_*`` columns), in logging order.

        ``rating``, ``source``, ``ext_user_id``, ``since``/``until`` apply to the feedback row;
        the other filters to its generation. ``raw_json``: JSON columns as their stored text."""
        f, g = feedback.alias("f"), t.generations.alias("g")
        gen_columns = ("action_name", "action_guid", "action_version", "environment", "model", "input",
                       "messages", "output", "status", "ext_user_id", "experiment_guid", "variant",
                       "run_guid", "created_at")
        query = (sa.select(*[_maybe_text(f.c[name], raw_json) for name in FEEDBACK_FIELDS],
                           *[_maybe_text(g.c[name], raw_json, f"g_{name}") for name in gen_columns])
                 .select_from(f.join(g, g.c.guid == f.c.generation_guid))
                 .where(*_generation_clauses(g, filters), *_time_clauses(f.c.created_at, filters)))
        for key in ("rating", "source", "ext_user_id"):
            if filters.get(key) is not None:
                query = query.where(_match(f.c[key], filters[key]))
        yield from self._stream(query.order_by(f.c.id), batch_size)

    def iter_export_finetune(self, filters: Mapping[str, Any],
                             batch_size: int = 2000) -> Iterator[dict[str, Any]]:
        """Finished generations that have a latest human correction or a latest Positive rating:
        ``guid``, ``messages``, ``output``, ``rating``, ``correction``; oldest first."""
        g = t.generations.alias("g")
        rating, correction = _latest_human("rating", g.c.guid), _latest_human("correction", g.c.guid)
        query = (sa.select(g.c.guid, g.c.messages, g.c.output, rating.label("rating"),
                           correction.label("correction"))
                 .where(g.c.status == "done", g.c.messages.is_not(None),
                        *_generation_clauses(g, filters), *_time_clauses(g.c.created_at, filters))
                 .where(sa.or_(correction.is_not(None), rating == "Positive")))
        if filters.get("ext_user_id") is not None:
            query = query.where(_match(g.c.ext_user_id, filters["ext_user_id"]))
        if filters.get("rating") is not None:
            query = query.where(_match(rating, filters["rating"]))
        yield from self._stream(query.order_by(g.c.created_at, g.c.guid), batch_size)

    def iter_rated_by_input(self, filters: Mapping[str, Any],
                            batch_size: int = 2000) -> Iterator[dict[str, Any]]:
        """Finished generations with a latest human rating, ordered so that generations with
        identical rendered messages are adjacent (``input_key``: the messages' stored JSON text)."""
        g = t.generations.alias("g")
        rating = _latest_human("rating", g.c.guid)
        key = sa.cast(g.c.messages, sa.Text)
        query = (sa.select(g.c.guid, g.c.messages, g.c.output, g.c.action_name, rating.label("rating"),
                           key.label("input_key"))
                 .where(g.c.status == "done", g.c.messages.is_not(None), g.c.output.is_not(None),
                        rating.is_not(None),
                        *_generation_clauses(g, filters), *_time_clauses(g.c.created_at, filters)))
        if filters.get("ext_user_id") is not None:
            query = query.where(_match(g.c.ext_user_id, filters["ext_user_id"]))
        yield from self._stream(query.order_by(key, g.c.created_at, g.c.guid), batch_size)

    def iter_pairwise(self, filters: Mapping[str, Any],
                      batch_size: int = 2000) -> Iterator[dict[str, Any]]:
        """Non-tie pairwise preferences between two finished generations, in logging order.

        Generation filters match when either side matches; since/until apply to the preference."""
        p, a, b = preferences.alias("p"), t.generations.alias("ga"), t.generations.alias("gb")
        query = (sa.select(p.c.guid, p.c.winner, p.c.source, p.c.created_at,
                           a.c.guid.label("a_guid"), a.c.messages.label("a_messages"),
                           a.c.output.label("a_output"), a.c.action_name.label("a_action"),
                           b.c.guid.label("b_guid"), b.c.messages.label("b_messages"),
                           b.c.output.label("b_output"), b.c.action_name.label("b_action"))
                 .select_from(p.join(a, a.c.guid == p.c.generation_a)
                              .join(b, b.c.guid == p.c.generation_b))
                 .where(p.c.winner != "tie", a.c.status == "done", b.c.status == "done",
                        *_time_clauses(p.c.created_at, filters)))
        side_a = _generation_clauses(a, filters)
        side_b = _generation_clauses(b, filters)
        if filters.get("ext_user_id") is not None:
            side_a.append(_match(a.c.ext_user_id, filters["ext_user_id"]))
            side_b.append(_match(b.c.ext_user_id, filters["ext_user_id"]))
        if side_a:
            query = query.where(sa.or_(sa.and_(*side_a), sa.and_(*side_b)))
        yield from self._stream(query.order_by(p.c.id), batch_size)

