"""Experiments, variants, runs and run cells (issue 5).

A run is every dataset row through every variant, ``repeats`` times; each (row, variant,
repeat) is a *cell* with a stable key, so resuming, retrying failures and overlapping shards
upsert the same cell instead of duplicating it. A cell points at the generation that produced
its latest result; the generations themselves carry ``run_guid``/``variant``/``repeat``.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import sqlalchemy as sa

from datetime import timedelta

from ..errors import ConfigError, NotFoundError, RunInProgressError
from . import schema as t
from ._util import as_dict, aware, named_conflict, new_guid, utcnow

experiments = sa.Table(
    "experiments",
    t.metadata,
    sa.Column("guid", t.GUID, primary_key=True),
    sa.Column("name", t.SafeString(200), nullable=False, unique=True),
    sa.Column("description", t.SafeText),
    sa.Column("created_at", t.Time, nullable=False),
)

experiment_variants = sa.Table(
    "experiment_variants",
    t.metadata,
    sa.Column("experiment_guid", t.GUID, sa.ForeignKey("experiments.guid"), primary_key=True),
    sa.Column("label", t.SafeString(100), primary_key=True),
    sa.Column("action_guid", t.GUID, sa.ForeignKey("actions.guid"), nullable=False),
    sa.Column("environment", t.SafeString(100)),  # None: the action's Production deployment
    sa.Column("weight", sa.Float, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
)

runs = sa.Table(
    "runs",
    t.metadata,
    sa.Column("guid", t.GUID, primary_key=True),
    sa.Column("experiment_guid", t.GUID, sa.ForeignKey("experiments.guid"), nullable=False, index=True),
    # created | running | done | done_with_errors | failed | interrupted (see ExperimentRun.status)
    sa.Column("status", t.SafeString(20), nullable=False),
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("repeats", sa.Integer, nullable=False),
    sa.Column("config", sa.JSON, nullable=False),  # pinned versions, evaluators, dataset name
    sa.Column("stats", sa.JSON),  # rate limiting and retry counters of the last session
    sa.Column("created_at", t.Time, nullable=False),
    sa.Column("finished_at", t.Time),
    sa.Column("status_detail", t.SafeText),  # why the run is not plainly done (migration 7)
)

run_rows = sa.Table(
    "run_rows",
    t.metadata,
    sa.Column("run_guid", t.GUID, sa.ForeignKey("runs.guid"), primary_key=True),
    sa.Column("row_index", sa.Integer, primary_key=True),
    sa.Column("input", sa.JSON, nullable=False),
    sa.Column("expected", sa.JSON),
)

run_cells = sa.Table(
    "run_cells",
    t.metadata,
    sa.Column("run_guid", t.GUID, sa.ForeignKey("runs.guid"), primary_key=True),
    sa.Column("cell_key", t.SafeString(200), primary_key=True),
    sa.Column("row_index", sa.Integer, nullable=False),
    sa.Column("variant", t.SafeString(100), nullable=False),
    sa.Column("repeat", sa.Integer, nullable=False),
    sa.Column("status", t.SafeString(16), nullable=False),  # done | error
    sa.Column("generation_guid", t.GUID),
    sa.Column("attempts", sa.Integer, nullable=False, default=1),
    sa.Column("updated_at", t.Time, nullable=False),
)

# Who is running (part of) a run: one row per holder ("*" for the whole run, "k/n" for a shard),
# renewed by a heartbeat; a row past expires_at belongs to a dead process (migration 7).
run_leases = sa.Table(
    "run_leases",
    t.metadata,
    sa.Column("run_guid", t.GUID, sa.ForeignKey("runs.guid"), primary_key=True),
    sa.Column("holder", t.SafeString(50), primary_key=True),
    sa.Column("owner", t.SafeString(200), nullable=False),
    sa.Column("acquired_at", t.Time, nullable=False),
    sa.Column("expires_at", t.Time, nullable=False),
)

TABLES: list[sa.Table] = [experiments, experiment_variants, runs, run_rows, run_cells, run_leases]


class ExperimentSQL:
    # experiments -----------------------------------------------------------------------

    def create_experiment(self, name: str, description: str | None,
                          variants: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        guid = new_guid()
        with named_conflict(f"an experiment named {name!r} already exists"), self.write() as conn:
            if conn.execute(sa.select(experiments.c.guid).where(experiments.c.name == name)).first():
                raise ConfigError(f"an experiment named {name!r} already exists")
            conn.execute(experiments.insert().values(guid=guid, name=name, description=description,
                                                      created_at=utcnow()))
            conn.execute(experiment_variants.insert(), [
                dict(experiment_guid=guid, label=v["label"], action_guid=v["action_guid"],
                     environment=v.get("environment"), weight=v["weight"], position=i)
                for i, v in enumerate(variants)])
        return self.find_experiment(guid)

    def find_experiment(self, key: str) -> dict[str, Any] | None:
        """An experiment by GUID or name, with its ``variants`` in order."""
        with self.read() as conn:
            row = as_dict(conn.execute(sa.select(experiments).where(
                sa.or_(experiments.c.guid == key, experiments.c.name == key))).first())
            if row is None:
                return None
            row["variants"] = [as_dict(v) for v in conn.execute(
                sa.select(experiment_variants).where(experiment_variants.c.experiment_guid == row["guid"])
                .order_by(experiment_variants.c.position))]
        return row

    def list_experiments(self) -> list[dict[str, Any]]:
        with self.read() as conn:
            guids = list(conn.execute(sa.select(experiments.c.guid).order_by(experiments.c.created_at))
                         .scalars())
        return [self.find_experiment(g) for g in guids]

    # runs ------------------------------------------------------------------------------

    def create_run(self, experiment_guid: str, repeats: int, config: Mapping[str, Any],
                   rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """Record a run and its dataset rows (consumed in batches, in one transaction: a bad row
        part-way through leaves no run behind)."""
        guid = new_guid()
        n_rows = 0
        with self.write() as conn:
            conn.execute(runs.insert().values(guid=guid, experiment_guid=experiment_guid, status="created",
                                              n_rows=0, repeats=repeats, config=dict(config),
                                              created_at=utcnow()))
            batch: list[dict[str, Any]] = []
            for row in rows:
                batch.append(dict(run_guid=guid, row_index=n_rows, input=row["input"],
                                  expected=row.get("expected")))
                n_rows += 1
                if len(batch) >= 5000:
                    conn.execute(run_rows.insert(), batch)
                    batch = []
            if batch:
                conn.execute(run_rows.insert(), batch)
            conn.execute(runs.update().where(runs.c.guid == guid).values(n_rows=n_rows))
        return self.get_run(guid)

    def get_run(self, guid: str) -> dict[str, Any] | None:
        with self.read() as conn:
            return as_dict(conn.execute(sa.select(runs).where(runs.c.guid == guid)).first())

    def list_runs(self, experiment_guid: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(runs).order_by(runs.c.created_at)
        if experiment_guid:
            query = query.where(runs.c.experiment_guid == experiment_guid)
        with self.read() as conn:
            return [as_dict(r) for r in conn.execute(query)]

    def update_run(self, guid: str, **fields: Any) -> None:
        with self.write() as conn:
            conn.execute(runs.update().where(runs.c.guid == guid).values(**fields))

    # leases ----------------------------------------------------------------------------

    def acquire_run_lease(self, run_guid: str, holder: str, owner: str, ttl: float,
                          dead: Callable[[str], bool] = lambda owner: False) -> None:
        """Take the lease on ``holder`` ("*": the whole run, "k/n": one shard) of a run for
        ``ttl`` seconds, or raise RunInProgressError naming the live holder. Expired leases, and
        those whose ``dead(owner)`` is true (a killed process), are taken over. The whole run
        conflicts with every shard."""
        now = utcnow()
        with self.write() as conn:
            # Serialise lease changes of one run (SQLite's write transactions already are).
            locked = sa.select(runs.c.guid).where(runs.c.guid == run_guid)
            if self.dialect == "postgresql":
                locked = locked.with_for_update()
            if conn.execute(locked).first() is None:
                raise NotFoundError("run", run_guid)
            conn.execute(run_leases.delete().where(run_leases.c.run_guid == run_guid,
                                                   run_leases.c.expires_at < now))
            for live in conn.execute(sa.select(run_leases).where(run_leases.c.run_guid == run_guid)):
                if live.owner == owner or dead(live.owner):
                    continue
                if holder == "*" or live.holder in ("*", holder):
                    part = "the whole run" if live.holder == "*" else f"shard {live.holder}"
                    raise RunInProgressError(
                        f"run {run_guid} is being run by another live process ({live.owner}, {part}, "
                        f"lease until {aware(live.expires_at):%H:%M:%S} UTC); wait for it to finish, or "
                        "run other shards with shard=(k, n)", run_guid=run_guid, owner=live.owner)
            conn.execute(run_leases.delete().where(run_leases.c.run_guid == run_guid,
                                                   run_leases.c.holder == holder))
            conn.execute(run_leases.insert().values(run_guid=run_guid, holder=holder, owner=owner,
                                                    acquired_at=now, expires_at=now + timedelta(seconds=ttl)))

    def renew_run_lease(self, run_guid: str, holder: str, owner: str, ttl: float) -> bool:
        """Extend a held lease; False when it is no longer ours (taken over as expired)."""
        with self.write() as conn:
            result = conn.execute(run_leases.update().where(
                run_leases.c.run_guid == run_guid, run_leases.c.holder == holder, run_leases.c.owner == owner)
                .values(expires_at=utcnow() + timedelta(seconds=ttl)))
            return result.rowcount == 1

    def release_run_lease(self, run_guid: str, holder: str, owner: str) -> None:
        with self.write() as conn:
            conn.execute(run_leases.delete().where(
                run_leases.c.run_guid == run_guid, run_leases.c.holder == holder, run_leases.c.owner == owner))

    def live_run_leases(self, run_guid: str) -> list[dict[str, Any]]:
        with self.read() as conn:
            return [as_dict(r) for r in conn.execute(sa.select(run_leases).where(
                run_leases.c.run_guid == run_guid, run_leases.c.expires_at >= utcnow()))]

    # cells -----------------------------------------------------------------------------

    def cell_counts(self, run_guid: str) -> dict[str, int]:
        """status -> number of the run's recorded cells."""
        query = (sa.select(run_cells.c.status, sa.func.count()).where(run_cells.c.run_guid == run_guid)
                 .group_by(run_cells.c.status))
        with self.read() as conn:
            return {status: count for status, count in conn.execute(query)}

    def run_error_groups(self, run_guid: str) -> list[dict[str, Any]]:
        """The run's failed cells grouped by (variant, error type): count and one message."""
        g = t.generations
        query = (sa.select(run_cells.c.variant, g.c.error_type, sa.func.count().label("count"),
                           sa.func.min(g.c.error).label("example"))
                 .select_from(run_cells.join(g, g.c.guid == run_cells.c.generation_guid))
                 .where(run_cells.c.run_guid == run_guid, run_cells.c.status == "error")
                 .group_by(run_cells.c.variant, g.c.error_type)
                 .order_by(sa.desc("count"), run_cells.c.variant))
        with self.read() as conn:
            return [as_dict(r) for r in conn.execute(query)]

    def run_rows(self, run_guid: str) -> list[dict[str, Any]]:
        with self.read() as conn:
            return [as_dict(r) for r in conn.execute(
                sa.select(run_rows).where(run_rows.c.run_guid == run_guid).order_by(run_rows.c.row_index))]

    def iter_run_rows(self, run_guid: str, batch: int = 1000) -> Iterator[list[dict[str, Any]]]:
        """A run's dataset rows in order, ``batch`` at a time (keyset pagination)."""
        after = -1
        while True:
            with self.read() as conn:
                rows = [as_dict(r) for r in conn.execute(
                    sa.select(run_rows).where(run_rows.c.run_guid == run_guid, run_rows.c.row_index > after)
                    .order_by(run_rows.c.row_index).limit(batch))]
            if not rows:
                return
            yield rows
            after = rows[-1]["row_index"]

    def cell_statuses(self, run_guid: str, first_row: int | None = None,
                      last_row: int | None = None) -> dict[str, str]:
        """cell_key -> status of the cells recorded so far (of rows first_row..last_row)."""
        query = sa.select(run_cells.c.cell_key, run_cells.c.status).where(run_cells.c.run_guid == run_guid)
        if first_row is not None:
            query = query.where(run_cells.c.row_index >= first_row)
        if last_row is not None:
            query = query.where(run_cells.c.row_index <= last_row)
        with self.read() as conn:
            return {r.cell_key: r.status for r in conn.execute(query)}

    def record_cells(self, generations: Sequence[Mapping[str, Any]], cells: Sequence[Mapping[str, Any]],
                     scores: Sequence[Mapping[str, Any]] = ()) -> None:
        """Write a batch of finished cells, their generations and evaluator scores (feedback rows)
        in one transaction.

        A cell already recorded (a resumed or overlapping shard) is overwritten in place, and
        its attempt count grows, so a cell never appears twice.
        """
        if not cells and not generations:
            return
        with self.write() as conn:
            if generations:
                # executemany needs every row to name the same columns
                columns = [c.name for c in t.generations.columns]
                conn.execute(t.generations.insert(), [
                    {c: g.get(c, False if c in ("cached", "streaming") else None) for c in columns}
                    for g in generations])
            if cells:
                insert = self._insert_for(run_cells)
                conn.execute(insert.on_conflict_do_update(
                    index_elements=["run_guid", "cell_key"],
                    set_=dict(status=insert.excluded.status, generation_guid=insert.excluded.generation_guid,
                              updated_at=insert.excluded.updated_at,
                              attempts=run_cells.c.attempts + 1)),
                    [{**cell, "attempts": 1} for cell in cells])
            if scores:
                conn.execute(t.metadata.tables["feedback"].insert(), [dict(r) for r in scores])

    def run_cells(self, run_guid: str) -> list[dict[str, Any]]:
        """Every cell of a run joined with its generation's logged figures."""
        g = t.generations
        query = (sa.select(run_cells.c.cell_key, run_cells.c.row_index, run_cells.c.variant,
                           run_cells.c.repeat, run_cells.c.status, run_cells.c.attempts,
                           run_cells.c.generation_guid, g.c.output, g.c.error, g.c.error_type,
                           g.c.latency_ms, g.c.ttft_ms, g.c.prompt_tokens, g.c.completion_tokens,
                           g.c.cost_usd, g.c.cached, g.c.model, g.c.action_name, g.c.action_version)
                 .select_from(run_cells.outerjoin(g, g.c.guid == run_cells.c.generation_guid))
                 .where(run_cells.c.run_guid == run_guid)
                 .order_by(run_cells.c.row_index, run_cells.c.repeat, run_cells.c.variant))
        with self.read() as conn:
            return [as_dict(r) for r in conn.execute(query)]

    def run_outcome_catalog(self, run_guid: str, evaluators: Sequence[str]) -> dict[str, Any]:
        """What a run has to analyse, without reading its cells one by one: whether any output has
        a human rating, latency or a non-zero cost, and the variants with no succeeded cell.
        ``evaluators``: the names the run recorded (their scores come with every succeeded cell)."""
        g = t.generations
        feedback = t.metadata.tables["feedback"]
        # From human feedback (usually the small part) to its generation by primary key: an IN over
        # a large run's generations cost a second even when nobody rated anything.
        rated = (sa.select(sa.literal(1))
                 .select_from(feedback.join(g, g.c.guid == feedback.c.generation_guid))
                 .where(feedback.c.source == "human", feedback.c.rating.is_not(None), g.c.run_guid == run_guid)
                 .limit(1))
        figures = (sa.select(sa.func.count(sa.case((g.c.cached.is_(False), g.c.latency_ms))),
                             sa.func.count(sa.case((g.c.cost_usd > 0, 1))))
                   .where(g.c.run_guid == run_guid, g.c.status == "done"))
        cells = (sa.select(run_cells.c.variant, run_cells.c.status).distinct()
                 .where(run_cells.c.run_guid == run_guid))
        with self.read() as conn:
            timed, paid = conn.execute(figures).one()
            statuses = conn.execute(cells).all()
            done = sorted({v for v, status in statuses if status == "done"})
            return {"evaluators": sorted(evaluators) if done else [],
                    "ratings": conn.execute(rated).first() is not None, "latency": bool(timed), "cost": bool(paid),
                    "variants": sorted({v for v, _ in statuses}), "done_variants": done}

    def run_outcome_columns(self, run_guid: str, *, cells: bool = True, ratings: bool = True,
                            evaluators: Sequence[str] | None = None) -> tuple[list[tuple], list[tuple]]:
        """What an analysis of the run reads, as plain tuples (fast for 100,000s of cells), only the
        parts asked for (``evaluators=None``: every evaluator's scores):

        - cells: ``(row_index, variant, repeat, status, latency_ms, cost_usd, cached)``;
        - feedback on succeeded cells: ``(row_index, variant, repeat, evaluator, score, rating,
          source)``, oldest first (so "latest wins" is the last of each output and evaluator).
        """
        g = t.generations
        feedback = t.metadata.tables["feedback"]

        def plain(column):
            # Labels, statuses and names never hold an escaped NUL: skipping the Safe types' per-value
            # processing makes reading 100,000s of cells several times faster.
            return sa.type_coerce(column, sa.String)

        cell_query = (sa.select(run_cells.c.row_index, plain(run_cells.c.variant), run_cells.c.repeat,
                                plain(run_cells.c.status), g.c.latency_ms, g.c.cost_usd,
                                sa.type_coerce(g.c.cached, sa.Integer))
                      .select_from(run_cells.outerjoin(g, g.c.guid == run_cells.c.generation_guid))
                      .where(run_cells.c.run_guid == run_guid))
        wanted = []
        if ratings:
            wanted.append(sa.and_(feedback.c.source == "human", feedback.c.rating.is_not(None)))
        if evaluators is None:
            wanted.append(feedback.c.source == "evaluator")
        elif evaluators:
            wanted.append(sa.and_(feedback.c.source == "evaluator", feedback.c.evaluator.in_(list(evaluators))))
        score_query = (sa.select(run_cells.c.row_index, plain(run_cells.c.variant), run_cells.c.repeat,
                                 plain(feedback.c.evaluator), feedback.c.score, plain(feedback.c.rating),
                                 plain(feedback.c.source))
                       .select_from(run_cells.join(feedback,
                                                   feedback.c.generation_guid == run_cells.c.generation_guid))
                       .where(run_cells.c.run_guid == run_guid, run_cells.c.status == "done",
                              sa.or_(sa.false(), *wanted))
                       .order_by(feedback.c.created_at))
        with self.read() as conn:
            return (self._plain_rows(conn, cell_query) if cells else [],
                    self._plain_rows(conn, score_query) if wanted else [])

    @staticmethod
    def _plain_rows(conn: sa.Connection, query: sa.Select) -> list[tuple]:
        # The driver's own tuples: SQLAlchemy's Row objects cost more than the database read here.
        compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        params = compiled.params
        if compiled.positiontup is not None:
            params = tuple(params[name] for name in compiled.positiontup)
        cursor = conn.connection.cursor()
        try:
            cursor.execute(str(compiled), params)
            return cursor.fetchall()
        finally:
            cursor.close()

    # feedback on a run's generations (tables from store/feedback.py) -----------------------

    def run_feedback(self, run_guid: str) -> list[dict[str, Any]]:
        """Every feedback row (human ratings and evaluator scores) on the run's generations."""
        feedback = t.metadata.tables.get("feedback")
        if feedback is None:
            return []
        cells = sa.select(run_cells.c.generation_guid).where(run_cells.c.run_guid == run_guid)
        query = (sa.select(feedback.c.generation_guid, feedback.c.rating, feedback.c.score,
                           feedback.c.evaluator, feedback.c.source, feedback.c.created_at)
                 .where(feedback.c.generation_guid.in_(cells)))
        with self.read() as conn:
            return [as_dict(r) for r in conn.execute(query)]

    def online_outcomes(self, experiment_guid: str) -> list[dict[str, Any]]:
        """Every online generation of an experiment (not an offline run's): its variant, user,
        status and latest human rating (None when unrated), oldest first."""
        g = t.generations
        feedback = t.metadata.tables["feedback"]
        latest = (sa.select(feedback.c.rating).where(feedback.c.generation_guid == g.c.guid,
                                                      feedback.c.rating.is_not(None),
                                                      feedback.c.source == "human")
                  .order_by(feedback.c.created_at.desc()).limit(1).correlate(g).scalar_subquery())
        query = (sa.select(g.c.guid, g.c.variant, g.c.ext_user_id, g.c.status, g.c.created_at,
                           latest.label("rating"))
                 .where(g.c.experiment_guid == experiment_guid, g.c.run_guid.is_(None))
                 .order_by(g.c.created_at))
        with self.read() as conn:
            return [as_dict(r) for r in conn.execute(query)]

    def run_preferences(self, run_guid: str) -> list[dict[str, Any]]:
        preferences = t.metadata.tables.get("preferences")
        if preferences is None:
            return []
        g = t.generations
        # Driven from the (usually small) preferences table through the generations' primary key:
        # an IN over the run's cells read every cell of a large run even when nobody compared any.
        query = (sa.select(preferences.c.generation_a, preferences.c.generation_b, preferences.c.winner,
                           preferences.c.created_at)
                 .select_from(preferences.join(g, g.c.guid == preferences.c.generation_a))
                 .where(g.c.run_guid == run_guid))
        with self.read() as conn:
            return [as_dict(r) for r in conn.execute(query)]
