"""What a run found: side-by-side rows, per-variant summary, and whether a difference is real.

The functions here are pure (lists of dicts in, DataFrames and dataclasses out); ``ExperimentRun``
reads the records from the store and hands them over.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ..errors import ConfigError
from . import stats
from .analysis import COST_METRICS, Analysis, Comparison, Observations, compare, compare_preferences, correct

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .ranking import Ranking

    from ..lab import Lab

PASS_THRESHOLD = 0.5


def latest_ratings(feedback: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """generation guid -> its latest human rating ("Positive"/"Negative"). Latest wins."""
    latest: dict[str, tuple[Any, str]] = {}
    for row in feedback:
        if row.get("rating") is None or row.get("source", "human") != "human":
            continue
        key = row["generation_guid"]
        if key not in latest or row["created_at"] >= latest[key][0]:
            latest[key] = (row["created_at"], row["rating"])
    return {k: v[1] for k, v in latest.items()}


def scores_by_generation(scores: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float | None]]:
    """generation guid -> {evaluator name: score} (the latest score of each evaluator)."""
    out: dict[str, dict[str, float | None]] = defaultdict(dict)
    for row in sorted(scores, key=lambda r: r["created_at"]):
        out[row["generation_guid"]][row["evaluator"]] = row["score"]
    return dict(out)


def side_by_side(cells: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]],
                 labels: Sequence[str], ratings: Mapping[str, str],
                 scores: Mapping[str, Mapping[str, float | None]]) -> "pd.DataFrame":
    """One row per (dataset row, repeat): the inputs, then each variant's result side by side."""
    import pandas as pd

    by_row = {r["row_index"]: r for r in rows}
    table: dict[tuple[int, int], dict[str, Any]] = {}
    for cell in cells:
        key = (cell["row_index"], cell["repeat"])
        if key not in table:
            source = by_row.get(cell["row_index"], {})
            table[key] = {"row": cell["row_index"], "repeat": cell["repeat"], **(source.get("input") or {})}
            expected = source.get("expected")
            if isinstance(expected, Mapping):  # expected_contains, expected_json, ...: a column each
                table[key].update(expected)
            elif expected is not None:
                table[key]["expected"] = expected
        out = table[key]
        label = cell["variant"]
        guid = cell["generation_guid"]
        out[f"output_{label}"] = cell["output"]
        out[f"error_{label}"] = cell["error"]
        out[f"latency_ms_{label}"] = cell["latency_ms"]
        out[f"cost_usd_{label}"] = cell["cost_usd"]
        out[f"tokens_{label}"] = _tokens(cell)
        out[f"rating_{label}"] = ratings.get(guid)
        out[f"generation_{label}"] = guid
        for name, value in (scores.get(guid) or {}).items():
            out[f"{name}_{label}"] = value
    frame = pd.DataFrame([table[k] for k in sorted(table)])
    # A variant none of whose cells succeeded still has its columns (empty), so charts and the
    # report can show "no data" for it instead of failing.
    evaluator_names = sorted({name for s in scores.values() for name in s})
    for label in labels:
        for column in ["output", "error", "latency_ms", "cost_usd", "tokens", "rating", "generation",
                       *evaluator_names]:
            if len(frame) and f"{column}_{label}" not in frame.columns:
                frame[f"{column}_{label}"] = None
    return frame


def _tokens(cell: Mapping[str, Any]) -> int | None:
    if cell["prompt_tokens"] is None and cell["completion_tokens"] is None:
        return None
    return (cell["prompt_tokens"] or 0) + (cell["completion_tokens"] or 0)


def pairwise_counts(cells: Sequence[Mapping[str, Any]], preferences: Sequence[Mapping[str, Any]],
                    label_a: str, label_b: str) -> tuple[int, int, int]:
    """(wins_a, wins_b, ties) from human pairwise preferences between the two variants."""
    variant_of = {c["generation_guid"]: c["variant"] for c in cells if c["generation_guid"]}
    wins_a = wins_b = ties = 0
    for pref in preferences:
        first, second = variant_of.get(pref["generation_a"]), variant_of.get(pref["generation_b"])
        if {first, second} != {label_a, label_b}:
            continue
        if pref["winner"] == "tie":
            ties += 1
            continue
        winner = first if pref["winner"] == "a" else second
        wins_a += winner == label_a
        wins_b += winner == label_b
    return wins_a, wins_b, ties


def error_causes(cells: Sequence[Mapping[str, Any]]) -> str | None:
    """Failed cells' causes, most common first: ``"80 x MissingVariablesError: missing ..."``."""
    groups: dict[str, list[str]] = defaultdict(list)
    for cell in cells:
        if cell["status"] != "done":
            groups[cell.get("error_type") or "Error"].append(cell.get("error") or "")
    if not groups:
        return None
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    return "; ".join(f"{len(messages)} x {kind}: {_clip(min(messages))}" for kind, messages in ordered)


def _clip(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summarize(cells: Sequence[Mapping[str, Any]], labels: Sequence[str], ratings: Mapping[str, str],
              scores: Mapping[str, Mapping[str, float | None]],
              preferences: Sequence[Mapping[str, Any]]) -> "pd.DataFrame":
    """Per variant: n, errors (and their causes), latency p50/p95, tokens, cost, positive rate
    (95% interval with the row as the unit: Wilson, or a bootstrap over rows with repeats),
    pairwise W/T/L against the other variants, evaluator means."""
    import pandas as pd

    records = []
    evaluator_names = sorted({name for s in scores.values() for name in s})
    for label in labels:
        mine = [c for c in cells if c["variant"] == label]
        done = [c for c in mine if c["status"] == "done"]
        latency = stats.summarize_numbers([c["latency_ms"] for c in done if not c["cached"]])
        costs = [c["cost_usd"] for c in done]
        rated_cells = [c for c in done if c["generation_guid"] in ratings]
        rated = [ratings[c["generation_guid"]] for c in rated_cells]
        positives = sum(r == "Positive" for r in rated)
        interval = _rate_interval(rated_cells, ratings)
        record = {
            "variant": label,
            "action": done[0]["action_name"] + f" v{done[0]['action_version']}" if done else None,
            "n": len(mine), "errors": len(mine) - len(done), "error_causes": error_causes(mine),
            "latency_p50_ms": latency["p50"], "latency_p95_ms": latency["p95"],
            "tokens": sum(_tokens(c) or 0 for c in done),
            "cost_usd": None if any(c is None for c in costs) else round(sum(costs), 6),
            "rated": len(rated),
            "positive_rate": positives / len(rated) if rated else None,
            "positive_ci_low": interval.low if rated else None,
            "positive_ci_high": interval.high if rated else None,
        }
        wins = losses = ties = 0
        for other in labels:
            if other != label:
                w, l, t = pairwise_counts(cells, preferences, label, other)
                wins, losses, ties = wins + w, losses + l, ties + t
        record.update(wins=wins, ties=ties, losses=losses)
        for name in evaluator_names:
            values = [(scores.get(c["generation_guid"]) or {}).get(name) for c in done]
            values = [v for v in values if v is not None and not math.isnan(v)]
            record[f"{name}"] = sum(values) / len(values) if values else None
        records.append(record)
    return pd.DataFrame(records).set_index("variant")


CELL_COLUMNS = ["row_index", "variant", "repeat", "status", "latency_ms", "cost_usd", "cached"]
FEEDBACK_COLUMNS = ["row_index", "variant", "repeat", "evaluator", "score", "rating", "source"]


@dataclass
class Outcomes:
    """What an analysis reads, as columns: one row per cell (``CELL_COLUMNS``), one per feedback
    row on a succeeded cell (``FEEDBACK_COLUMNS``, oldest first), the human preferences as
    ``(row_index, first variant, second variant, winner "a"|"b"|"tie")``, and notes on variants
    whose every cell failed."""

    cells: "pd.DataFrame"
    feedback: "pd.DataFrame"
    preferences: list[tuple[int, str, str, str]]
    failed_notes: dict[str, str]
    available: list[str] | None = None  # set when only some metrics were read (from the store's catalog)
    known_evaluators: list[str] | None = None

    @classmethod
    def from_records(cls, cells: Sequence[Mapping[str, Any]], ratings: Mapping[str, str],
                     scores: Mapping[str, Mapping[str, float | None]],
                     preferences: Sequence[Mapping[str, Any]] = ()) -> "Outcomes":
        """From cell dicts (``run_cells``), guid -> latest rating, guid -> {evaluator: score}."""
        import pandas as pd

        frame = pd.DataFrame([{k: c.get(k) for k in CELL_COLUMNS} for c in cells], columns=CELL_COLUMNS)
        rows = []
        for c in cells:
            if c["status"] != "done":
                continue
            key = (c["row_index"], c["variant"], c.get("repeat", 0))
            if c["generation_guid"] in ratings:
                rows.append((*key, None, None, ratings[c["generation_guid"]], "human"))
            for name, value in (scores.get(c["generation_guid"]) or {}).items():
                rows.append((*key, name, value, None, "evaluator"))
        return cls(frame, pd.DataFrame(rows, columns=FEEDBACK_COLUMNS),
                   _preference_pairs(cells, preferences), _failed_notes(cells))

    @classmethod
    def from_store(cls, store: Any, run_guid: str, metrics: Sequence[str] | None = None,
                   catalog: Mapping[str, Any] | None = None) -> "Outcomes":
        """Read a run's outcomes; with ``metrics``, only what those metrics need (a verdict on one
        evaluator of a 100,000-row run reads that evaluator's scores, not every cell)."""
        import pandas as pd

        if catalog is None:
            record = store.get_run(run_guid)
            catalog = store.run_outcome_catalog(run_guid, recorded_evaluator_names(record["config"]))
        preferences = store.run_preferences(run_guid)  # read once: availability and pairs
        available = catalog_metrics(catalog, preferences)
        wanted = set(available if metrics is None else metrics)
        evaluators = [m for m in catalog["evaluators"] if m in wanted]
        cells, feedback = store.run_outcome_columns(run_guid, cells=bool(wanted & set(COST_METRICS)),
                                                    ratings="rating" in wanted, evaluators=evaluators)
        failed = {}
        missing = sorted(set(catalog["variants"]) - set(catalog["done_variants"]))
        if missing:
            groups = store.run_error_groups(run_guid)
            for label in missing:
                causes = "; ".join(f"{g['count']} x {g['error_type'] or 'Error'}: {_clip(g['example'] or '')}"
                                   for g in groups if g["variant"] == label)
                failed[label] = f"Every cell of {label} failed ({causes}); see run.errors()."
        pairs = (_preference_pairs(store.run_cells(run_guid), preferences)
                 if preferences and "preference" in wanted else [])
        return cls(pd.DataFrame(cells, columns=CELL_COLUMNS), pd.DataFrame(feedback, columns=FEEDBACK_COLUMNS),
                   pairs, failed, available=available, known_evaluators=list(catalog["evaluators"]))

    def ratings(self) -> "pd.DataFrame":
        """The latest human rating of each output: row_index, variant, value (1 positive, 0 not)."""
        f = self.feedback
        human = f[(f.source == "human") & f.rating.notna()]
        latest = human.drop_duplicates(["row_index", "variant", "repeat"], keep="last")
        return latest.assign(value=(latest.rating == "Positive").astype(float))

    def scores(self, evaluator: str | None = None) -> "pd.DataFrame":
        f = self.feedback
        mine = f[(f.source == "evaluator") & f.score.notna() & f.evaluator.notna()]
        if evaluator is not None:
            mine = mine[mine.evaluator == evaluator]
        latest = mine.drop_duplicates(["row_index", "variant", "repeat", "evaluator"], keep="last")
        return latest.assign(value=latest.score.astype(float))

    def evaluator_names(self) -> list[str]:
        if self.known_evaluators is not None:
            return list(self.known_evaluators)
        f = self.feedback
        return sorted(f.loc[(f.source == "evaluator") & f.evaluator.notna(), "evaluator"].unique())


def _preference_pairs(cells: Sequence[Mapping[str, Any]],
                      preferences: Sequence[Mapping[str, Any]]) -> list[tuple[int, str, str, str]]:
    where = {c["generation_guid"]: (c["variant"], c["row_index"]) for c in cells if c.get("generation_guid")}
    pairs = []
    for pref in preferences:
        first, second = where.get(pref["generation_a"]), where.get(pref["generation_b"])
        if first is not None and second is not None and first[0] != second[0]:
            pairs.append((first[1], first[0], second[0], pref["winner"]))
    return pairs


def _failed_notes(cells: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    notes = {}
    for label in dict.fromkeys(c["variant"] for c in cells):
        if note := _failure_note(cells, [label]):
            notes[label] = note
    return notes


def _rate_interval(rated_cells: Sequence[Mapping[str, Any]], ratings: Mapping[str, str]) -> stats.Interval:
    """95% interval of a variant's positive rate with the row as the unit: Wilson when each row
    has one rated output; with repeats, a seeded bootstrap over the rows' positive shares (the
    repeats of a row are not independent evidence, so Wilson on outputs would be too narrow)."""
    by_row: dict[int, list[float]] = defaultdict(list)
    for c in rated_cells:
        by_row[c["row_index"]].append(float(ratings[c["generation_guid"]] == "Positive"))
    if all(len(values) == 1 for values in by_row.values()):
        return stats.wilson_interval(sum(v[0] for v in by_row.values()), len(by_row))
    interval = stats.bootstrap_mean_interval([sum(v) / len(v) for v in by_row.values()])
    return stats.Interval(max(0.0, interval.low), min(1.0, interval.high))


def _unit_map(rows: Sequence[Mapping[str, Any]] | None, cluster: str | None) -> tuple[dict[int, Any] | None, str]:
    """row index -> its unit (the value of the ``cluster`` column); None when the row is the unit."""
    if cluster is None:
        return None, "rows"
    units = {}
    for r in rows or ():
        data = r.get("input") if isinstance(r.get("input"), Mapping) else {}
        if cluster not in data:
            columns = sorted(data) if data else []
            raise ConfigError(f"cluster={cluster!r}: row {r['row_index'] + 1} has no column {cluster!r} "
                              f"(its columns: {columns})")
        value = data[cluster]
        units[r["row_index"]] = value if isinstance(value, (str, int, float, bool)) or value is None else repr(value)
    return units, cluster


def observations(outcomes: Outcomes, metric: str, unit_of: Mapping[int, Any] | None) -> Observations:
    """Every succeeded output's value of ``metric`` with its unit and variant."""
    cells = outcomes.cells
    if metric == "rating":
        frame = outcomes.ratings()
    elif metric == "latency_ms":
        frame = cells[(cells.status == "done") & (cells.cached.fillna(0) == 0) & cells.latency_ms.notna()]
        frame = frame.assign(value=frame.latency_ms.astype(float))
    elif metric == "cost_usd":
        frame = cells[(cells.status == "done") & cells.cost_usd.notna()]
        frame = frame.assign(value=frame.cost_usd.astype(float))
    else:
        frame = outcomes.scores(metric)
    frame = frame[np.isfinite(frame.value.to_numpy(float))]
    values = frame.value.to_numpy(float)
    rows = frame.row_index.to_numpy()
    units = rows if unit_of is None else np.asarray([unit_of.get(r, r) for r in rows], dtype=object)
    binary = metric == "rating" or (metric not in COST_METRICS and bool(np.all((values == 0) | (values == 1))))
    return Observations(metric=metric, kind="binary" if binary else "continuous", units=units,
                        variants=frame.variant.to_numpy(dtype=object), values=values,
                        higher_is_better=metric not in COST_METRICS)


def preference_units(outcomes: Outcomes, unit_of: Mapping[int, Any] | None, baseline: str,
                     challenger: str) -> list[tuple[Any, str, str]]:
    """(unit, winner, loser) of each human preference between the two variants' outputs."""
    out = []
    for row, first, second, winner in outcomes.preferences:
        if {first, second} != {baseline, challenger}:
            continue
        unit = row if unit_of is None else unit_of.get(row, row)
        if winner == "tie":
            out.append((unit, "tie", "tie"))
        else:
            out.append((unit, *((first, second) if winner == "a" else (second, first))))
    return out


def recorded_evaluator_names(config: Mapping[str, Any]) -> list[str]:
    """The evaluators a run recorded when it started (their scores come with its cells)."""
    return [item["name"] if isinstance(item, Mapping) else str(item) for item in config.get("evaluators") or []]


def catalog_metrics(catalog: Mapping[str, Any], preferences: Sequence[Any]) -> list[str]:
    """``available_metrics`` from the store's catalog of a run."""
    return ((["rating"] if catalog["ratings"] else []) + (["preference"] if preferences else [])
            + list(catalog["evaluators"]) + (["latency_ms"] if catalog["latency"] else [])
            + (["cost_usd"] if catalog["cost"] else []))


def available_metrics(outcomes: Outcomes) -> list[str]:
    """The metrics a run has data for, quality first: ratings, preferences, evaluators, latency, cost."""
    if outcomes.available is not None:
        return list(outcomes.available)
    metrics = []
    if len(outcomes.ratings()):
        metrics.append("rating")
    if outcomes.preferences:
        metrics.append("preference")
    metrics += outcomes.evaluator_names()
    cells = outcomes.cells
    done = cells[cells.status == "done"]
    if (done.latency_ms.notna() & (done.cached.fillna(0) == 0)).any():
        metrics.append("latency_ms")
    if (done.cost_usd.fillna(0) > 0).any():
        metrics.append("cost_usd")
    return metrics


def default_primary(metrics: Sequence[str]) -> str:
    """Human ratings when there are any, else human preferences, else the first evaluator."""
    quality = [m for m in metrics if m not in COST_METRICS]
    return quality[0] if quality else "rating"


def analyze(cells: Sequence[Mapping[str, Any]] | Outcomes, rows: Sequence[Mapping[str, Any]] | None,
            labels: Sequence[str], ratings: Mapping[str, str] | None = None,
            scores: Mapping[str, Mapping[str, float | None]] | None = None,
            preferences: Sequence[Mapping[str, Any]] = (), *, baseline: str | None = None,
            primary: str | None = None, metrics: Sequence[str] | None = None, cluster: str | None = None,
            alpha: float = 0.05, min_n: int = 10, paired: bool = True, plan_power: float = 0.8) -> Analysis:
    """Every challenger against the baseline on every metric, at the unit level, Holm-corrected.
    ``cells``: an :class:`Outcomes`, or cell dicts with ``ratings``/``scores``/``preferences``;
    ``rows`` (the run's rows) are read only for ``cluster``."""
    outcomes = cells if isinstance(cells, Outcomes) else Outcomes.from_records(cells, ratings or {}, scores or {},
                                                                               preferences)
    alpha = stats.check_probability(alpha, "alpha")
    if isinstance(min_n, bool) or not isinstance(min_n, int) or min_n < 1:
        raise ConfigError(f"min_n must be a positive whole number, got {min_n!r}")
    baseline = labels[0] if baseline is None else baseline
    if baseline not in labels:
        raise ConfigError(f"baseline {baseline!r} is not a variant of this run (variants: {list(labels)})")
    challengers = [label for label in labels if label != baseline]
    have = available_metrics(outcomes)
    primary = default_primary(have) if primary is None else primary
    evaluators = outcomes.evaluator_names()
    known = {"rating", "preference", *COST_METRICS, *evaluators}
    for name in [primary, *(metrics or [])]:
        if name not in known:
            raise ConfigError(f"unknown metric {name!r}: use 'rating', 'preference', 'latency_ms', 'cost_usd' "
                              f"or an evaluator of this run ({evaluators})")
    chosen = list(metrics) if metrics is not None else have
    chosen = [primary] + [m for m in chosen if m != primary]
    unit_of, unit = _unit_map(rows, cluster)
    notes = outcomes.failed_notes
    comparisons = []
    for metric in chosen:
        obs = None if metric == "preference" else observations(outcomes, metric, unit_of)
        for challenger in challengers:
            if metric == "preference":
                c = compare_preferences(preference_units(outcomes, unit_of, baseline, challenger),
                                        baseline, challenger, unit=unit, alpha=alpha, min_n=min_n,
                                        plan_power=plan_power)
            else:
                c = compare(obs, baseline, challenger, unit=unit, alpha=alpha, min_n=min_n, paired=paired,
                            plan_power=plan_power)
            note = " ".join(notes[label] for label in (baseline, challenger) if label in notes) or None
            comparisons.append(replace(c, note=note) if note else c)
    return Analysis(primary_metric=primary, baseline=baseline, comparisons=correct(comparisons, primary),
                    alpha=alpha, unit=unit)


def _failure_note(cells: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> str | None:
    """"Every cell of B failed (40 x MissingVariablesError: ...)." when a variant has no output."""
    notes = []
    for label in labels:
        mine = [c for c in cells if c["variant"] == label]
        if mine and not any(c["status"] == "done" for c in mine):
            notes.append(f"Every cell of {label} failed ({error_causes(mine)}); see run.errors().")
    return " ".join(notes) or None


class ExperimentRun:
    """A run of an experiment, read from the store (so it can be reopened any time)."""

    def __init__(self, lab: "Lab", guid: str, stats: Any = None):
        self._lab = lab
        record = lab.store.get_run(guid)
        if record is None:
            from ..errors import NotFoundError

            raise NotFoundError("run", guid)
        self.guid = guid
        self.experiment_guid = record["experiment_guid"]
        self.n_rows = record["n_rows"]
        self.repeats = record["repeats"]
        self.config = record["config"]
        self.labels: list[str] = record["config"]["labels"]
        self.stats = stats

    def __repr__(self) -> str:
        return f"<ExperimentRun {self.guid} {self.status} {self.n_rows} rows x {self.labels} x{self.repeats}>"

    @property
    def lab(self) -> "Lab":
        """The Lab whose store holds this run."""
        return self._lab

    @property
    def status(self) -> str:
        """``created``, ``running``, ``done`` (every cell succeeded), ``done_with_errors``,
        ``failed`` or ``interrupted``. A run whose process died (its lease expired) is
        ``interrupted``, never ``running`` forever; every status but ``done`` can be resumed."""
        return self._status_and_detail()[0]

    @property
    def status_detail(self) -> str | None:
        """Why the run is not plainly ``done`` (None when it is)."""
        return self._status_and_detail()[1]

    def _status_and_detail(self) -> tuple[str, str | None]:
        record = self._lab.store.get_run(self.guid)
        status, detail = record["status"], record.get("status_detail")
        from . import live_leases

        if status == "running" and not live_leases(self._lab.store, self.guid):
            counts = self._lab.store.cell_counts(self.guid)
            total = self.n_rows * self.repeats * len(self.labels)
            return "interrupted", (f"the process running it stopped without finishing (killed?); "
                                   f"{sum(counts.values())} of {total} cells recorded; resume to finish")
        return status, detail

    def errors(self) -> "pd.DataFrame":
        """Failed cells grouped by variant and error type: count and one example message."""
        import pandas as pd

        groups = self._lab.store.run_error_groups(self.guid)
        return pd.DataFrame(groups, columns=["variant", "error_type", "count", "example"])

    @property
    def record(self) -> dict[str, Any]:
        return self._lab.store.get_run(self.guid)

    def _inputs(self):
        cells = self._lab.store.run_cells(self.guid)
        feedback = self._lab.store.run_feedback(self.guid)
        ratings = latest_ratings(feedback)
        scores = scores_by_generation([f for f in feedback if f.get("evaluator")])
        preferences = self._lab.store.run_preferences(self.guid)
        return cells, ratings, scores, preferences

    def cells(self) -> "pd.DataFrame":
        """One row per cell (row, variant, repeat) with its status, output and figures."""
        import pandas as pd

        return pd.DataFrame(self._lab.store.run_cells(self.guid))

    def to_pandas(self) -> "pd.DataFrame":
        """One row per input (and repeat), variants side by side."""
        cells, ratings, scores, _ = self._inputs()
        return side_by_side(cells, self._lab.store.run_rows(self.guid), self.labels, ratings, scores)

    def summary(self) -> "pd.DataFrame":
        """Per variant: n, errors, latency p50/p95, tokens, cost, positive rate with its Wilson 95%
        interval, pairwise wins/ties/losses, evaluator means."""
        cells, ratings, scores, preferences = self._inputs()
        return summarize(cells, self.labels, ratings, scores, preferences)

    def analysis(self, *, baseline: str | None = None, primary: str | None = None,
                 metrics: Sequence[str] | None = None, cluster: str | None = None, alpha: float = 0.05,
                 min_n: int = 10, plan_power: float = 0.8) -> Analysis:
        """Every challenger against the baseline (default: the first variant) on every metric
        with data (ratings, preferences, evaluators, latency, cost), with the dataset row (or
        ``cluster``'s value) as the unit: repeats are averaged within their row before paired
        tests. The ``primary`` metric (default: ratings, else preferences, else the first
        evaluator) gets the headline; the other comparisons are Holm-adjusted as one family.
        Defaults come from the run's recorded analysis options (the experiment file's
        ``primary:``, ``baseline:``, ``cluster:``).

        >>> run.analysis().headline  # doctest: +SKIP
        'B is better on positive rate: ... exact McNemar p=0.003; based on 40 rows (200 outputs).'
        """
        recorded = self.config.get("analysis") or {}
        cluster = cluster if cluster is not None else recorded.get("cluster")
        rows = self._lab.store.run_rows(self.guid) if cluster is not None else None
        primary = primary if primary is not None else recorded.get("primary")
        store = self._lab.store
        catalog = store.run_outcome_catalog(self.guid, recorded_evaluator_names(self.config))
        wanted = None
        if metrics is not None:  # read only what is analysed
            first = primary or default_primary(catalog_metrics(catalog, store.run_preferences(self.guid)))
            wanted = [first, *metrics]
        return analyze(Outcomes.from_store(store, self.guid, wanted, catalog), rows, self.labels,
                       baseline=baseline if baseline is not None else recorded.get("baseline"),
                       primary=primary, metrics=metrics, cluster=cluster, alpha=alpha, min_n=min_n,
                       plan_power=plan_power)

    def ranking(self, *, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0) -> "Ranking":
        """Bradley-Terry ranking of every variant from the human side-by-side preferences, with
        bootstrap intervals that resample dataset rows (a row's several choices are not independent
        evidence). ``pl.charts.leaderboard(run)`` draws it.

        >>> run.ranking().table[["rank", "p_beats_average", "wins", "losses"]]  # doctest: +SKIP
        """
        from .ranking import bradley_terry

        cells = self._lab.store.run_cells(self.guid)
        where = {c["generation_guid"]: (c["variant"], c["row_index"]) for c in cells if c["generation_guid"]}
        comparisons = []
        for pref in self._lab.store.run_preferences(self.guid):
            first, second = where.get(pref["generation_a"]), where.get(pref["generation_b"])
            if first is None or second is None or first[0] == second[0]:
                continue
            if pref["winner"] == "tie":
                comparisons.append({"winner": first[0], "loser": second[0], "tie": True, "row": first[1]})
            else:
                winner, loser = (first, second) if pref["winner"] == "a" else (second, first)
                comparisons.append({"winner": winner[0], "loser": loser[0], "tie": False, "row": first[1]})
        if not comparisons:
            raise ConfigError("no side-by-side preferences between variants of this run yet: rate pairs with "
                              "pl.widgets.compare(lab, run) or lab.feedback.prefer(a, b, winner=...)")
        return bradley_terry(comparisons, self.labels, cluster="row", n_boot=n_boot, confidence=confidence,
                             seed=seed)

    def power(self, metric: str | None = None, *, power: float = 0.8, alpha: float = 0.05,
              baseline: str | None = None, cluster: str | None = None) -> "pd.DataFrame":
        """After a pilot: for each challenger on ``metric`` (default: the primary one), the units
        (rows) that would detect the difference seen with this ``power``, and how many more that
        is. Uses the sample-size planner (``pl.stats.sample_size``) on this run's own per-row
        data: discordant share and difference (binary), per-row differences (scores), win and tie
        shares (preferences). ``needed`` is empty when there is no difference to plan for.

        >>> run.power()  # doctest: +SKIP
           metric challenger  rows  needed  more  outcome
        0  rating          B    12     174   162  inconclusive
        """
        import pandas as pd

        stats.check_probability(power, "power")
        recorded = self.config.get("analysis") or {}
        analysis = self.analysis(baseline=baseline, cluster=cluster, alpha=alpha, min_n=1, plan_power=power,
                                 metrics=[] if metric is None or metric == recorded.get("primary") else [metric])
        metric = metric or analysis.primary_metric
        records = []
        for c in analysis.comparisons:
            if c.metric != metric:
                continue
            records.append({"metric": c.metric, "challenger": c.challenger, "units": c.n_units,
                            "needed": c.needed_units,
                            "more": None if c.needed_units is None else max(0, c.needed_units - c.n_units),
                            "difference": c.difference, "p_value": c.p_value, "outcome": c.outcome})
        return pd.DataFrame(records, columns=["metric", "challenger", "units", "needed", "more", "difference",
                                              "p_value", "outcome"])

    def significance(self, metric: str | None = None, a: str | None = None, b: str | None = None,
                     alpha: float = 0.05, min_n: int = 10, *, primary: str | None = None,
                     cluster: str | None = None) -> Comparison:
        """The verdict of ``b`` (default: the second variant) against ``a`` (the baseline) on
        ``metric`` (default: the primary metric), from :meth:`analysis`: paired tests on the
        rows, a one-line ``verdict`` naming the unit and counts, the Holm-adjusted p when the
        metric is not the primary one."""
        recorded = self.config.get("analysis") or {}
        if metric is None or metric == (primary or recorded.get("primary")):
            # The primary family is the primary metric's challengers alone: nothing else to compute.
            analysis = self.analysis(baseline=a, primary=primary, cluster=cluster, alpha=alpha, min_n=min_n,
                                     metrics=[])
        else:
            analysis = self.analysis(baseline=a, primary=primary, cluster=cluster, alpha=alpha, min_n=min_n)
        challenger = b or next(label for label in self.labels if label != analysis.baseline)
        metric = metric or analysis.primary_metric
        if metric not in {c.metric for c in analysis.comparisons}:  # asked for, but no data yet: say so
            shown = list(dict.fromkeys(c.metric for c in analysis.comparisons))
            analysis = self.analysis(baseline=a, primary=primary, cluster=cluster, alpha=alpha, min_n=min_n,
                                     metrics=[*shown, metric])
        return analysis.get(metric, challenger)
