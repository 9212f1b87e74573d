"""Is a challenger really better? The analysis behind every verdict, with the row as the unit.

Repeats of a row, several ratings of it, and rows sharing a cluster value (``cluster=``, e.g. a
conversation id) are averaged into one value per unit and variant before any test: they are not
independent evidence. When both variants ran on the same units (offline runs) the tests are
paired on those units:

- binary outcomes (human thumbs, pass/fail evaluators): exact McNemar on discordant units when
  every unit's outcome is 0 or 1, else (repeats that disagree) a Wilcoxon signed-rank test on the
  per-unit differences; the interval is a seeded paired bootstrap of the mean difference;
- continuous outcomes (judge scores, latency, cost): Wilcoxon signed-rank p, paired bootstrap
  interval;
- preferences (human "A better / tie / B better"): sign test on decisive units, Wilson interval
  for the challenger's share, ties reported.

A family of comparisons (metrics x challengers) is corrected by Holm in two families: the primary
metric (its challengers), and everything else shown. Every verdict names its unit and counts:
"based on 40 rows (200 outputs)".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..errors import ConfigError, InvalidInputError
from . import stats

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: Metrics measured on every run, lower is better.
COST_METRICS = ("latency_ms", "cost_usd")
_WORDS = {"rating": "positive rate", "preference": "preference", "latency_ms": "latency",
          "cost_usd": "cost"}


@dataclass(frozen=True)
class Comparison:
    """One challenger against the baseline on one metric, at the unit level.

    ``difference`` is challenger - baseline (a share of units for preferences: the challenger's
    win share among decisive units); ``winner`` is set only when the (adjusted, for secondary
    comparisons) p-value is below ``alpha``. ``enough`` is False when fewer than ``min_n`` units
    have data for both, and then there is no verdict either way.
    """

    metric: str
    kind: str  # "binary", "continuous" or "preference"
    design: str  # "paired" or "unpaired"
    baseline: str
    challenger: str
    unit: str  # "rows", or the cluster column's name
    n_units: int
    n_outputs: int
    baseline_value: float | None
    challenger_value: float | None
    difference: float | None
    interval: stats.Interval
    test: str
    p_value: float
    p_adjusted: float | None
    primary: bool
    higher_is_better: bool
    alpha: float
    min_n: int
    enough: bool
    wins_baseline: int = 0  # discordant (McNemar) or decisive (preferences) units won by each side
    wins_challenger: int = 0
    ties: int = 0
    family_size: int = 1
    note: str | None = None  # e.g. why a variant has no data (every cell failed)
    needed_units: int | None = None  # rows that would settle the question (sample-size planner)

    @property
    def p_decision(self) -> float:
        return self.p_adjusted if self.p_adjusted is not None else self.p_value

    @property
    def significant(self) -> bool:
        return self.enough and self.difference is not None and self.p_decision < self.alpha

    @property
    def winner(self) -> str | None:
        if not self.significant:
            return None
        if self.kind == "preference":
            better = self.difference > 0.5
        else:
            better = (self.difference > 0) == self.higher_is_better
        return self.challenger if better else self.baseline

    @property
    def outcome(self) -> str:
        """``better``, ``worse`` (the challenger, significantly), ``inconclusive`` or ``not_enough_data``."""
        if not self.enough:
            return "not_enough_data"
        if self.winner is None:
            return "inconclusive"
        return "better" if self.winner == self.challenger else "worse"

    @property
    def basis(self) -> str:
        unit = "rows" if self.unit == "rows" else f"{self.unit} groups"
        outputs = "preferences" if self.kind == "preference" else "outputs"
        return f"based on {self.n_units:,} {unit} ({self.n_outputs:,} {outputs})"

    @property
    def p_text(self) -> str:
        """``exact McNemar p=0.003``, with the Holm-adjusted p first when there is one."""
        raw = f"{self.test} {stats.format_p(self.p_value, self.alpha)}"
        if self.p_adjusted is None:
            return raw
        return f"Holm-adjusted {stats.format_p(self.p_adjusted, self.alpha)} over {self.family_size} comparisons ({raw})"

    @property
    def verdict(self) -> str:
        return verdict_text(self)

    def __str__(self) -> str:
        return f"[{self.metric}] {self.verdict}"

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["interval"] = self.interval.as_dict()
        out.update(significant=self.significant, winner=self.winner, outcome=self.outcome, verdict=self.verdict)
        return out


# -- wording: built from the fields, one function per kind ------------------------------------------------


def metric_words(metric: str, kind: str) -> str:
    if metric in _WORDS:
        return _WORDS[metric]
    return f"{metric} pass rate" if kind == "binary" else f"{metric} score"


def _pct(x: float) -> str:
    return f"{round(100 * x)}%"


def _pts(x: float, decimals: int = 0) -> str:
    v = round(100 * x, decimals) if decimals else round(100 * x)
    return f"+{v}" if v > 0 else str(v)


def _num(x: float, metric: str) -> str:
    if metric == "latency_ms":
        return f"{x:,.0f} ms" if abs(x) >= 10 else f"{x:.1f} ms"
    if metric == "cost_usd":
        return f"${x:.3g}"
    return f"{x:.3g}"


def _signed(x: float, metric: str) -> str:
    text = _num(abs(x), metric)
    return f"+{text}" if x > 0 else (f"-{text}" if x < 0 else text)


def _effect(c: Comparison) -> str:
    conf = f"{round(100 * (1 - c.alpha))}% CI"
    low, high = c.interval.low, c.interval.high
    if c.kind == "preference":
        tie = f", {c.ties} tied" if c.ties else ""
        decisive = c.wins_baseline + c.wins_challenger
        units = "rows" if c.unit == "rows" else f"{c.unit} groups"
        return (f"{c.challenger} chosen on {c.wins_challenger} of {decisive} decisive {units} "
                f"({_pct(c.difference or 0)}, {conf} {_pct(low)} to {_pct(high)}){tie}")
    if c.kind == "binary":
        places = 1 if math.isfinite(high - low) and 0 < high - low < 0.04 else 0  # a narrow interval needs its decimal
        return (f"{c.challenger} {_pct(c.challenger_value or 0)} vs {c.baseline} {_pct(c.baseline_value or 0)}, "
                f"difference {_pts(c.difference or 0, places)} pts ({conf} {_pts(low, places)} to "
                f"{_pts(high, places)})")
    return (f"mean {c.challenger} {_num(c.challenger_value or 0, c.metric)} vs {c.baseline} "
            f"{_num(c.baseline_value or 0, c.metric)}, difference {_signed(c.difference or 0, c.metric)} "
            f"({conf} {_signed(low, c.metric)} to {_signed(high, c.metric)})")


def verdict_text(c: Comparison) -> str:
    """One line from the fields: the claim (or its absence), the effect with its interval, the
    test's p (Holm-adjusted first when in a family), the unit and counts."""
    note = f"{c.note} " if c.note else ""
    what = metric_words(c.metric, c.kind)
    if not c.enough:
        units = "rows" if c.unit == "rows" else f"{c.unit} groups"
        need = f"at least {c.min_n} {units}"
        if c.needed_units and c.needed_units > c.min_n:
            need += f" (about {c.needed_units} for 80% power at the difference seen)"
        return (f"{note}Not enough data on {what}: {c.basis}; comparing {c.challenger} with {c.baseline} "
                f"needs {need} with data for both before drawing conclusions.")
    if c.winner is not None:
        claim = f"{c.winner} is preferred" if c.kind == "preference" else f"{c.winner} is better on {what}"
    else:
        claim = f"No significant difference on {what}"
    text = f"{note}{claim}: {_effect(c)}; {c.p_text}; {c.basis}."
    if c.winner is None and c.needed_units and c.needed_units > c.n_units:
        units = "rows" if c.unit == "rows" else f"{c.unit} groups"
        text += (f" If the difference seen is real, about {c.needed_units} {units} would show it "
                 f"(80% power): {c.needed_units - c.n_units} more.")
    return text


# -- planning: how many units would settle it ---------------------------------------------------------


def plan_units(design: str, alpha: float, power: float = 0.8, **parameters: Any):
    """The sample-size planner's plan for the difference seen, or None when there is none to
    plan for (no difference, a degenerate pilot)."""
    from .planning import sample_size

    try:
        return sample_size(design, alpha=alpha, power=power, **parameters)
    except (ConfigError, InvalidInputError, ValueError, ZeroDivisionError, OverflowError):
        return None


def _needed(plan: Any) -> int | None:
    return None if plan is None else int(plan.n)


# -- unit-level tables -----------------------------------------------------------------------------------


@dataclass
class Observations:
    """The per-output values of one metric: ``unit``, ``variant``, ``value`` arrays."""

    metric: str
    kind: str
    units: np.ndarray
    variants: np.ndarray
    values: np.ndarray
    higher_is_better: bool = True


def unit_means(obs: Observations, label: str) -> "pd.DataFrame":
    import pandas as pd

    mask = obs.variants == label
    frame = pd.DataFrame({"unit": obs.units[mask], "value": obs.values[mask]})
    return frame.groupby("unit", sort=False)["value"].agg(["mean", "count"])


def compare(obs: Observations, baseline: str, challenger: str, *, unit: str = "rows", alpha: float = 0.05,
            min_n: int = 10, paired: bool = True, n_boot: int = 2000, seed: int = 0,
            plan_power: float = 0.8) -> Comparison:
    """Compare two variants on one metric's observations (see the module docstring)."""
    a, b = unit_means(obs, baseline), unit_means(obs, challenger)
    confidence = 1 - alpha
    common = dict(metric=obs.metric, kind=obs.kind, baseline=baseline, challenger=challenger, unit=unit,
                  higher_is_better=obs.higher_is_better, alpha=alpha, min_n=min_n, p_adjusted=None, primary=False)
    if paired:
        joined = a.add_suffix("_a").join(b.add_suffix("_b"), how="inner")
        n_units = len(joined)
        n_outputs = int(joined["count_a"].sum() + joined["count_b"].sum())
        xa, xb = joined["mean_a"].to_numpy(float), joined["mean_b"].to_numpy(float)
        d = xb - xa
        interval = stats.paired_bootstrap_interval(d, confidence, n_boot, seed) if n_units else stats.Interval(-math.inf, math.inf)
        wins_a = wins_b = 0
        binary_units = obs.kind == "binary" and bool(np.all((xa == 0) | (xa == 1)) and np.all((xb == 0) | (xb == 1)))
        if binary_units:
            wins_b, wins_a = int(np.sum(d > 0)), int(np.sum(d < 0))
            test, p = "exact McNemar", stats.mcnemar_test(wins_a, wins_b).p_value
        else:
            test, p = "Wilcoxon signed-rank", stats.wilcoxon_test(d).p_value
        needed = None
        if n_units >= 2 and (p >= alpha or n_units < min_n) and np.any(d != 0):
            plan_ = (plan_units("paired_binary", alpha, plan_power, discordant=(wins_a + wins_b) / n_units,
                                difference=float(d.mean())) if binary_units
                     else plan_units("paired_continuous", alpha, plan_power, pilot=d))
            needed = _needed(plan_)
        return Comparison(design="paired", n_units=n_units, n_outputs=n_outputs, needed_units=needed,
                          baseline_value=float(xa.mean()) if n_units else None,
                          challenger_value=float(xb.mean()) if n_units else None,
                          difference=float(d.mean()) if n_units else None, interval=interval, test=test,
                          p_value=p, enough=n_units >= min_n, wins_baseline=wins_a, wins_challenger=wins_b,
                          **common)
    xa, xb = a["mean"].to_numpy(float), b["mean"].to_numpy(float)
    n_units = min(len(xa), len(xb))
    n_outputs = int(a["count"].sum() + b["count"].sum())
    if obs.kind == "binary" and np.all((xa == 0) | (xa == 1)) and np.all((xb == 0) | (xb == 1)):
        sa, sb = int(xa.sum()), int(xb.sum())
        test, p = "Fisher exact", stats.fisher_test(sa, len(xa), sb, len(xb)).p_value
        interval = stats.rate_difference_interval(sa, len(xa), sb, len(xb), confidence)
    else:
        result, interval = stats.welch_test(xa, xb, confidence)
        test, p = "Welch t", result.p_value
    return Comparison(design="unpaired", n_units=len(xa) + len(xb), n_outputs=n_outputs,
                      baseline_value=float(xa.mean()) if len(xa) else None,
                      challenger_value=float(xb.mean()) if len(xb) else None,
                      difference=float(xb.mean() - xa.mean()) if len(xa) and len(xb) else None,
                      interval=interval, test=test, p_value=p, enough=n_units >= min_n, **common)


def compare_preferences(prefs: Sequence[tuple[Any, str, str]], baseline: str, challenger: str, *,
                        unit: str = "rows", alpha: float = 0.05, min_n: int = 10,
                        plan_power: float = 0.8) -> Comparison:
    """``prefs``: (unit, winner label or "tie", loser label or "tie") of human pairwise choices
    between the two variants. A unit's choices are netted: it is decisive when one side won more."""
    net: dict[Any, int] = {}
    n = 0
    for unit_key, winner, _ in prefs:
        n += 1
        net[unit_key] = net.get(unit_key, 0) + (winner == challenger) - (winner == baseline)
    wins_b = sum(v > 0 for v in net.values())
    wins_a = sum(v < 0 for v in net.values())
    ties = len(net) - wins_a - wins_b
    decisive = wins_a + wins_b
    result = stats.sign_test(wins_a, wins_b)
    interval = stats.wilson_interval(wins_b, decisive, 1 - alpha)
    needed = None
    if decisive and wins_a != wins_b and (result.p_value >= alpha or decisive < min_n):
        needed = _needed(plan_units("preference", alpha, plan_power, win_share=wins_b / decisive,
                                    tie_share=min(ties / len(net), 0.95)))
    return Comparison(metric="preference", kind="preference", design="paired", baseline=baseline,
                      challenger=challenger, unit=unit, n_units=len(net), n_outputs=n,
                      baseline_value=wins_a / decisive if decisive else None,
                      challenger_value=wins_b / decisive if decisive else None,
                      difference=wins_b / decisive if decisive else None, interval=interval, test="sign test",
                      p_value=result.p_value, p_adjusted=None, primary=False, higher_is_better=True,
                      alpha=alpha, min_n=min_n, enough=decisive >= min_n, wins_baseline=wins_a,
                      wins_challenger=wins_b, ties=ties, needed_units=needed)


# -- families ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Analysis:
    """Every comparison of a run: the primary metric's (its own Holm family when there are several
    challengers) and the secondary ones (metrics x challengers, one Holm family)."""

    primary_metric: str
    baseline: str
    comparisons: list[Comparison]
    alpha: float
    unit: str

    @property
    def primary(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.primary]

    @property
    def secondary(self) -> list[Comparison]:
        return [c for c in self.comparisons if not c.primary]

    def get(self, metric: str, challenger: str) -> Comparison:
        for c in self.comparisons:
            if c.metric == metric and c.challenger == challenger:
                return c
        known = sorted({c.metric for c in self.comparisons})
        raise ConfigError(f"no comparison of {challenger!r} on {metric!r}; metrics: {known}")

    @property
    def headline(self) -> str:
        return " ".join(c.verdict for c in self.primary)

    def to_pandas(self) -> "pd.DataFrame":
        import pandas as pd

        rows = []
        for c in self.comparisons:
            rows.append(dict(metric=c.metric, primary=c.primary, baseline=c.baseline, challenger=c.challenger,
                             kind=c.kind, test=c.test, unit=c.unit, n_units=c.n_units, n_outputs=c.n_outputs,
                             baseline_value=c.baseline_value, challenger_value=c.challenger_value,
                             difference=c.difference, ci_low=c.interval.low, ci_high=c.interval.high,
                             p_value=c.p_value, p_adjusted=c.p_adjusted, outcome=c.outcome, winner=c.winner,
                             verdict=c.verdict))
        return pd.DataFrame(rows)

    def as_dict(self) -> dict[str, Any]:
        return {"primary_metric": self.primary_metric, "baseline": self.baseline, "alpha": self.alpha,
                "unit": self.unit, "comparisons": [c.as_dict() for c in self.comparisons]}


def correct(comparisons: Sequence[Comparison], primary_metric: str) -> list[Comparison]:
    """Mark the primary comparisons and Holm-adjust each family (only comparisons with enough
    data are tested, so only they count in a family)."""
    out = [replace(c, primary=c.metric == primary_metric) for c in comparisons]
    for is_primary in (True, False):
        members = [i for i, c in enumerate(out) if c.primary == is_primary and c.enough]
        if len(members) < 2:
            continue
        adjusted = stats.holm([out[i].p_value for i in members])
        for i, p in zip(members, adjusted):
            out[i] = replace(out[i], p_adjusted=p, family_size=len(members))
    return out


__all__ = ["Comparison", "Analysis", "Observations", "compare", "compare_preferences", "correct",
           "verdict_text", "COST_METRICS"]
