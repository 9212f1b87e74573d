"""What a run found: side-by-side rows, per-variant summary, and whether a difference is real.

The functions here are pure (lists of dicts in, DataFrames and dataclasses out); ``ExperimentRun``
reads the records from the store and hands them over.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from . import stats

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

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


def score_pairwise(cells: Sequence[Mapping[str, Any]], scores: Mapping[str, Mapping[str, float | None]],
                   evaluator: str, label_a: str, label_b: str) -> tuple[int, int, int]:
    """(wins_a, wins_b, ties) comparing an evaluator's scores of the two variants row by row."""
    per_row: dict[tuple[int, int], dict[str, float]] = defaultdict(dict)
    for cell in cells:
        value = (scores.get(cell["generation_guid"]) or {}).get(evaluator)
        if value is not None and not math.isnan(value):
            per_row[(cell["row_index"], cell["repeat"])][cell["variant"]] = value
    wins_a = wins_b = ties = 0
    for values in per_row.values():
        if label_a in values and label_b in values:
            a, b = values[label_a], values[label_b]
            wins_a += a > b
            wins_b += b > a
            ties += a == b
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
    (Wilson 95%), pairwise W/T/L against the other variants, evaluator means."""
    import pandas as pd

    records = []
    evaluator_names = sorted({name for s in scores.values() for name in s})
    for label in labels:
        mine = [c for c in cells if c["variant"] == label]
        done = [c for c in mine if c["status"] == "done"]
        latency = stats.summarize_numbers([c["latency_ms"] for c in done if not c["cached"]])
        costs = [c["cost_usd"] for c in done]
        rated = [ratings[c["generation_guid"]] for c in done if c["generation_guid"] in ratings]
        positives = sum(r == "Positive" for r in rated)
        interval = stats.wilson_interval(positives, len(rated))
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


_EVALUATOR_WORDING = [
    ("on both ratings and pairwise comparisons", "on both pass rate and row-by-row scores"),
    ("pairwise comparisons", "row-by-row score comparisons"),
    ("positive rate", "pass rate"),
    ("ratings of", "scores of"),
    ("Ratings favour", "Pass rates favour"),
    ("ratings too few", "scores too few"),
    ("rated outputs", "scored outputs"),
    ("rate at least", "score at least"),
]


@dataclass(frozen=True)
class Verdict:
    """``Significance`` plus what the outcome measured (human ratings or an evaluator)."""

    metric: str
    result: stats.Significance
    note: str | None = None  # why there is little or nothing to compare (failed cells)

    @property
    def verdict(self) -> str:
        text = self.result.verdict
        if self.metric != "rating":
            # stats words its verdict for human ratings; an evaluator's outcome is a pass rate
            for old, new in _EVALUATOR_WORDING:
                text = text.replace(old, new)
        return f"{self.note} {text}" if self.note else text

    def __str__(self) -> str:
        return f"[{self.metric}] {self.verdict}"

    def as_dict(self) -> dict[str, Any]:
        return {**self.result.as_dict(), "metric": self.metric, "verdict": self.verdict}


def significance(cells: Sequence[Mapping[str, Any]], ratings: Mapping[str, str],
                 scores: Mapping[str, Mapping[str, float | None]], preferences: Sequence[Mapping[str, Any]],
                 label_a: str, label_b: str, metric: str | None = None, alpha: float = 0.05,
                 min_n: int = 10) -> Verdict:
    """Is B different from A? Uses human ratings (and pairwise preferences) when there are any,
    else the pass rate of an evaluator (score >= 0.5) and its row-by-row comparison.

    ``metric``: ``"rating"`` or an evaluator's name to choose explicitly.
    """
    evaluator_names = sorted({name for s in scores.values() for name in s})
    if metric is None:
        metric = "rating" if ratings or preferences else (evaluator_names[0] if evaluator_names else "rating")
    outcome: dict[str, list[bool]] = {label_a: [], label_b: []}
    for cell in cells:
        if cell["variant"] not in outcome or cell["status"] != "done":
            continue
        guid = cell["generation_guid"]
        if metric == "rating":
            if guid in ratings:
                outcome[cell["variant"]].append(ratings[guid] == "Positive")
        else:
            value = (scores.get(guid) or {}).get(metric)
            if value is not None and not math.isnan(value):
                outcome[cell["variant"]].append(value >= PASS_THRESHOLD)
    if metric == "rating":
        wins_a, wins_b, ties = pairwise_counts(cells, preferences, label_a, label_b)
    elif metric in evaluator_names:
        wins_a, wins_b, ties = score_pairwise(cells, scores, metric, label_a, label_b)
    else:
        from ..errors import ConfigError

        raise ConfigError(f"unknown metric {metric!r}: use 'rating' or one of {evaluator_names}")
    a, b = outcome[label_a], outcome[label_b]
    result = stats.significance(sum(a), len(a), sum(b), len(b), wins_a, wins_b, ties, alpha=alpha,
                                min_n=min_n, label_a=label_a, label_b=label_b)
    return Verdict(metric=metric, result=result, note=_failure_note(cells, (label_a, label_b)))


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

    def significance(self, metric: str | None = None, a: str | None = None, b: str | None = None,
                     alpha: float = 0.05, min_n: int = 10) -> Verdict:
        """Fisher exact test on the outcome rates, binomial test on pairwise wins, the interval of
        the difference and a one-line verdict (which says "not enough data" when that is so)."""
        cells, ratings, scores, preferences = self._inputs()
        label_a, label_b = a or self.labels[0], b or self.labels[1]
        return significance(cells, ratings, scores, preferences, label_a, label_b, metric, alpha, min_n)
