"""Results of an online experiment, safe to read at any time.

Each user sees one variant, so the comparison is unpaired; and people look at the results while
traffic comes in, so a fixed-n test (Fisher at every look) would find a difference that is not
there far more often than 5% of the time. The positive-rating rates are compared with an
always-valid p-value and confidence sequence (mSPRT, ``sequential.always_valid_proportions``):
valid however often, and whenever, they are read. A sample-ratio-mismatch check of the
assignment counts against the configured weights comes first: when the split is broken nothing
else can be trusted.

The unit is the rated generation (one online call and its latest human rating). With several
challengers each is tested at alpha / (number of challengers) (Bonferroni).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ..errors import ConfigError
from . import stats
from .sequential import SequentialResult, SrmResult, always_valid_proportions, sample_ratio_mismatch


@dataclass(frozen=True)
class OnlineComparison:
    """One challenger's positive rate against the baseline's, always valid."""

    baseline: str
    challenger: str
    positives_baseline: int
    rated_baseline: int
    positives_challenger: int
    rated_challenger: int
    result: SequentialResult
    min_n: int

    @property
    def enough(self) -> bool:
        return min(self.rated_baseline, self.rated_challenger) >= self.min_n

    @property
    def winner(self) -> str | None:
        if not self.enough or not self.result.significant or self.result.difference is None:
            return None
        return self.challenger if self.result.difference > 0 else self.baseline

    @property
    def verdict(self) -> str:
        r = self.result
        basis = (f"based on {self.rated_challenger} rated {self.challenger} and {self.rated_baseline} rated "
                 f"{self.baseline} generations")
        if not self.enough:
            return (f"Not enough data: {basis}; rate at least {self.min_n} of each before drawing conclusions "
                    f"(the result below stays valid whenever you look).")
        rate_b, rate_a = self.positives_challenger / self.rated_challenger, self.positives_baseline / self.rated_baseline
        conf = f"{round(100 * (1 - r.alpha))}% confidence sequence"
        effect = (f"positive rate {self.challenger} {rate_b:.0%} vs {self.baseline} {rate_a:.0%}, difference "
                  f"{100 * (r.difference or 0):+.0f} pts ({conf} {100 * r.interval_low:+.0f} to "
                  f"{100 * r.interval_high:+.0f})")
        p = f"always-valid {stats.format_p(r.p_value, r.alpha)}"
        if self.winner:
            return f"{self.winner} is better: {effect}; {p}; {basis}."
        return f"No significant difference yet: {effect}; {p}; {basis}."

    def __str__(self) -> str:
        return self.verdict


@dataclass(frozen=True)
class OnlineResults:
    """``lab.experiments.results(exp)``: assignments, ratings, the split check and the verdicts."""

    experiment: str
    baseline: str
    assignments: dict[str, int]
    weights: dict[str, float]
    srm: SrmResult
    comparisons: list[OnlineComparison] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """The split check first when it fires, then each challenger's verdict."""
        lines = [self.srm.message] if self.srm.flagged else []
        lines += [c.verdict for c in self.comparisons]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.verdict

    def to_pandas(self):
        import pandas as pd

        return pd.DataFrame([dict(challenger=c.challenger, baseline=c.baseline,
                                  assigned_challenger=self.assignments.get(c.challenger, 0),
                                  assigned_baseline=self.assignments.get(c.baseline, 0),
                                  rated_challenger=c.rated_challenger, rated_baseline=c.rated_baseline,
                                  positives_challenger=c.positives_challenger,
                                  positives_baseline=c.positives_baseline, difference=c.result.difference,
                                  low=c.result.interval_low, high=c.result.interval_high,
                                  always_valid_p=c.result.p_value, winner=c.winner, srm_flagged=self.srm.flagged)
                             for c in self.comparisons])


def online_results(experiment: str, outcomes: Sequence[Mapping[str, Any]], weights: Mapping[str, float], *,
                   baseline: str | None = None, alpha: float = 0.05, min_n: int = 10,
                   tau: float | None = None) -> OnlineResults:
    """From the store's online outcomes (variant, rating) of an experiment with these weights."""
    alpha = stats.check_probability(alpha, "alpha")
    if isinstance(min_n, bool) or not isinstance(min_n, int) or min_n < 1:
        raise ConfigError(f"min_n must be a positive whole number, got {min_n!r}")
    labels = list(weights)
    baseline = labels[0] if baseline is None else baseline
    if not isinstance(baseline, str) or baseline not in labels:
        raise ConfigError(f"baseline {baseline!r} is not a variant (variants: {labels})")
    assignments = {label: 0 for label in labels}
    rated = {label: 0 for label in labels}
    positives = {label: 0 for label in labels}
    for row in outcomes:
        label = row["variant"]
        if label not in assignments:
            continue
        assignments[label] += 1
        if row["rating"] is not None:
            rated[label] += 1
            positives[label] += row["rating"] == "Positive"
    srm = sample_ratio_mismatch(assignments, weights)
    comparisons = []
    challengers = [label for label in labels if label != baseline]
    for challenger in challengers:
        # Several challengers share alpha (Bonferroni, which stays valid for always-valid p-values).
        result = always_valid_proportions(positives[baseline], rated[baseline], positives[challenger],
                                          rated[challenger], alpha=alpha / len(challengers), tau=tau)
        comparisons.append(OnlineComparison(baseline, challenger, positives[baseline], rated[baseline],
                                            positives[challenger], rated[challenger], result, min_n))
    return OnlineResults(experiment=experiment, baseline=baseline, assignments=assignments,
                         weights=dict(weights), srm=srm, comparisons=comparisons)


__all__ = ["OnlineResults", "OnlineComparison", "online_results"]
