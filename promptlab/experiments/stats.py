"""Statistics for A/B experiments: pure functions over counts, no I/O.

Everything here works on plain integers (positive ratings out of rated outputs, pairwise
wins and ties) and returns small frozen dataclasses with ``as_dict()``. Direction is fixed
throughout: a *difference* is ``B - A``, and an odds ratio or win share above its null value
(1 and 0.5) favours B.

>>> wilson_interval(8, 10).as_dict()  # doctest: +ELLIPSIS
{'low': 0.4901..., 'high': 0.9433...}
>>> significance(12, 25, 18, 25).verdict  # doctest: +ELLIPSIS
'No significant difference (Fisher p=0.15): positive rate B 72% vs A 48%, difference +24 pts ...'
"""

from __future__ import annotations

import math
import operator
from dataclasses import asdict, dataclass
from typing import Any, Iterable

import numpy as np
from scipy import stats as _sp

from promptlab.errors import ConfigError, InvalidInputError

__all__ = [
    "Interval",
    "TestResult",
    "Significance",
    "wilson_interval",
    "rate_difference_interval",
    "fisher_test",
    "pairwise_test",
    "significance",
    "summarize_numbers",
]


@dataclass(frozen=True)
class Interval:
    """A closed confidence interval ``[low, high]``."""

    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"low": self.low, "high": self.high}


@dataclass(frozen=True)
class TestResult:
    """A two-sided test: its p-value and the statistic it reports.

    For :func:`fisher_test` the statistic is the sample odds ratio of B relative to A (may be
    ``inf`` or ``nan`` for tables with empty cells, as scipy reports it); for
    :func:`pairwise_test` it is B's share of the decisive (non-tied) pairs.
    """

    __test__ = False  # not a pytest test class despite the name

    p_value: float
    statistic: float

    def as_dict(self) -> dict[str, float]:
        return {"p_value": self.p_value, "statistic": self.statistic}


@dataclass(frozen=True)
class Significance:
    """Everything :func:`significance` computed, plus a one-line ``verdict``.

    ``rate_a``/``rate_b`` and ``difference`` are ``None`` when a variant has no rated outputs.
    ``evidence`` names what the verdict rests on: ``"ratings"``, ``"pairwise"``, ``"both"`` or
    ``"none"`` (not enough data). ``winner`` is a label only when the verdict claims one.
    """

    label_a: str
    label_b: str
    positives_a: int
    rated_a: int
    positives_b: int
    rated_b: int
    rate_a: float | None
    rate_b: float | None
    interval_a: Interval
    interval_b: Interval
    difference: float | None
    difference_interval: Interval
    fisher_p: float
    odds_ratio: float
    wins_a: int
    wins_b: int
    ties: int
    pairwise_p: float
    alpha: float
    min_n: int
    evidence: str
    winner: str | None
    significant: bool
    verdict: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- validation


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise InvalidInputError(f"{what} must be a whole number, got {value!r}")
    try:
        n = operator.index(value)
    except TypeError:
        if isinstance(value, float) and value.is_integer():
            n = int(value)
        else:
            raise InvalidInputError(f"{what} must be a whole number, got {value!r}") from None
    if n < 0:
        raise InvalidInputError(f"{what} must not be negative, got {n}")
    return n


def _proportion(successes: Any, n: Any, what: str) -> tuple[int, int]:
    s = _count(successes, f"{what} successes")
    total = _count(n, f"{what} n")
    if s > total:
        raise InvalidInputError(f"{what}: successes ({s}) cannot exceed n ({total})")
    return s, total


def _probability(value: Any, what: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a number strictly between 0 and 1, got {value!r}") from None
    if not 0.0 < x < 1.0:
        raise ConfigError(f"{what} must be strictly between 0 and 1, got {value!r}")
    return x


# --------------------------------------------------------------------------- intervals


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a binomial proportion ``successes / n``.

    ``n == 0`` carries no information and gives ``Interval(0.0, 1.0)``.

    >>> round(wilson_interval(8, 10).low, 4), round(wilson_interval(8, 10).high, 4)
    (0.4902, 0.9433)
    """
    s, total = _proportion(successes, n, "wilson_interval")
    conf = _probability(confidence, "confidence")
    if total == 0:
        return Interval(0.0, 1.0)
    ci = _sp.binomtest(s, total).proportion_ci(confidence_level=conf, method="wilson")
    # Rounding can put the bound a hair outside [0, 1] when s is 0 or n.
    return Interval(max(0.0, float(ci.low)), min(1.0, float(ci.high)))


def rate_difference_interval(s_a: int, n_a: int, s_b: int, n_b: int,
                             confidence: float = 0.95) -> Interval:
    """Confidence interval for ``p_b - p_a`` by Newcombe's hybrid score method.

    Method 10 of Newcombe (1998), *Interval estimation for the difference between independent
    proportions*: combine the two Wilson intervals ``(l_a, u_a)`` and ``(l_b, u_b)`` as
    ``d - sqrt((p_b - l_b)^2 + (u_a - p_a)^2)`` to ``d + sqrt((u_b - p_b)^2 + (p_a - l_a)^2)``.
    If either variant has ``n == 0`` the difference is unknown: ``Interval(-1.0, 1.0)``.

    >>> iv = rate_difference_interval(48, 80, 56, 70)   # the paper's example (a)
    >>> round(iv.low, 4), round(iv.high, 4)
    (0.0524, 0.3339)
    """
    s_a, n_a = _proportion(s_a, n_a, "variant A")
    s_b, n_b = _proportion(s_b, n_b, "variant B")
    conf = _probability(confidence, "confidence")
    if n_a == 0 or n_b == 0:
        return Interval(-1.0, 1.0)
    p_a, p_b = s_a / n_a, s_b / n_b
    wa = wilson_interval(s_a, n_a, conf)
    wb = wilson_interval(s_b, n_b, conf)
    d = p_b - p_a
    low = d - math.hypot(p_b - wb.low, wa.high - p_a)
    high = d + math.hypot(wb.high - p_b, p_a - wa.low)
    return Interval(max(-1.0, low), min(1.0, high))


# --------------------------------------------------------------------------- tests


def fisher_test(s_a: int, n_a: int, s_b: int, n_b: int) -> TestResult:
    """Two-sided Fisher exact test of equal positive rates in A and B.

    ``statistic`` is the sample odds ratio of B relative to A. An empty variant gives
    ``p_value == 1.0`` (nothing to test).
    """
    s_a, n_a = _proportion(s_a, n_a, "variant A")
    s_b, n_b = _proportion(s_b, n_b, "variant B")
    res = _sp.fisher_exact([[s_b, n_b - s_b], [s_a, n_a - s_a]], alternative="two-sided")
    return TestResult(p_value=min(1.0, float(res.pvalue)), statistic=float(res.statistic))


def pairwise_test(wins_a: int, wins_b: int, ties: int) -> TestResult:
    """Two-sided exact binomial test (p = 0.5) on decisive pairwise comparisons.

    Ties carry no preference and are left out. With no decisive pairs the result is
    ``p_value=1.0, statistic=nan``. ``statistic`` is B's share of the decisive pairs.

    >>> pairwise_test(1, 9, 0).p_value   # 22/1024
    0.021484375
    """
    a = _count(wins_a, "wins_a")
    b = _count(wins_b, "wins_b")
    _count(ties, "ties")
    decisive = a + b
    if decisive == 0:
        return TestResult(p_value=1.0, statistic=math.nan)
    res = _sp.binomtest(b, decisive, p=0.5, alternative="two-sided")
    return TestResult(p_value=min(1.0, float(res.pvalue)), statistic=b / decisive)


# --------------------------------------------------------------------------- verdict


def _fmt_p(p: float, threshold: float) -> str:
    if p < 0.001:
        return "<0.001" if threshold > 0.001 else f"={p:.2g}"
    text = f"{p:.2g}"
    # Never let rounding move a p-value across the threshold in the text.
    if (float(text) < threshold) != (p < threshold):
        text = f"{p:.4g}"
    return f"={text}"


def _pct(x: float) -> str:
    return f"{round(100 * x)}%"


def _pts(x: float) -> str:
    v = round(100 * x)
    return f"+{v}" if v > 0 else str(v)


def _rates_text(first: str, r_first: float, second: str, r_second: float,
                diff: float, iv: Interval, conf_pct: str) -> str:
    # ``diff`` is first - second, so the winner-first wording reads as a positive gap.
    return (f"positive rate {first} {_pct(r_first)} vs {second} {_pct(r_second)}, "
            f"difference {_pts(diff)} pts ({conf_pct} CI {_pts(iv.low)} to {_pts(iv.high)})")


def significance(positives_a: int, rated_a: int, positives_b: int, rated_b: int,
                 wins_a: int = 0, wins_b: int = 0, ties: int = 0, *,
                 alpha: float = 0.05, min_n: int = 10,
                 label_a: str = "A", label_b: str = "B") -> Significance:
    """Compare two variants on ratings and pairwise preferences; one honest verdict line.

    Ratings evidence (Fisher exact test on positive rates) is used when both variants have
    at least ``min_n`` rated outputs; pairwise evidence (exact binomial test on decisive
    wins) when there are at least ``min_n`` decisive pairs. With neither, the verdict is
    "Not enough data". When both are used, their p-values are Holm-adjusted for two tests
    before comparing with ``alpha``, so using two tests never inflates the false-positive
    rate; a significant result in opposite directions is reported as conflicting, with no
    winner. Significance is never claimed when a (adjusted) p-value is >= ``alpha``.
    Confidence intervals are at ``1 - alpha``.

    >>> significance(7, 7, 1, 7).verdict  # doctest: +ELLIPSIS
    'Not enough data: 7 rated outputs per variant; rate at least 10 per variant (30+ ...'
    """
    pa, na = _proportion(positives_a, rated_a, f"variant {label_a}")
    pb, nb = _proportion(positives_b, rated_b, f"variant {label_b}")
    wa, wb, nt = _count(wins_a, "wins_a"), _count(wins_b, "wins_b"), _count(ties, "ties")
    alpha = _probability(alpha, "alpha")
    if isinstance(min_n, bool) or not isinstance(min_n, int) or min_n < 1:
        raise ConfigError(f"min_n must be a positive whole number, got {min_n!r}")
    confidence = 1.0 - alpha
    conf_pct = f"{confidence * 100:.4g}%"

    rate_a = pa / na if na else None
    rate_b = pb / nb if nb else None
    iv_a = wilson_interval(pa, na, confidence)
    iv_b = wilson_interval(pb, nb, confidence)
    diff = rate_b - rate_a if rate_a is not None and rate_b is not None else None
    diff_iv = rate_difference_interval(pa, na, pb, nb, confidence)
    fisher = fisher_test(pa, na, pb, nb)
    pair = pairwise_test(wa, wb, nt)

    decisive = wa + wb
    use_ratings = na >= min_n and nb >= min_n
    use_pairs = decisive >= min_n

    def pairs_text(adj: float | None = None, with_p: bool = True) -> str:
        tie_note = f" ({nt} tie{'s' if nt != 1 else ''})" if nt else ""
        if wa == wb:
            text = f"pairwise preferences split {wa}-{wb}{tie_note}"
        else:
            lead, lead_wins = (label_b, wb) if wb > wa else (label_a, wa)
            text = f"{lead} preferred in {lead_wins} of {decisive} decisive pairs{tie_note}"
        if with_p:
            text += f", binomial p{_fmt_p(pair.p_value, alpha)}"
            if adj is not None:
                text += f" (Holm-adjusted p{_fmt_p(adj, alpha)})"
        return text

    def ratings_text(winner: str | None, adj: float | None = None, with_p: bool = True) -> str:
        assert rate_a is not None and rate_b is not None and diff is not None
        if winner == label_a:
            flipped = Interval(-diff_iv.high, -diff_iv.low)
            text = _rates_text(label_a, rate_a, label_b, rate_b, -diff, flipped, conf_pct)
        else:
            text = _rates_text(label_b, rate_b, label_a, rate_a, diff, diff_iv, conf_pct)
        if with_p:
            text += f", Fisher p{_fmt_p(fisher.p_value, alpha)}"
            if adj is not None:
                text += f" (Holm-adjusted p{_fmt_p(adj, alpha)})"
        return text

    def ratings_winner() -> str:
        assert diff is not None
        return label_b if diff > 0 else label_a

    def pairs_winner() -> str:
        return label_b if wb > wa else label_a

    winner: str | None = None
    if not use_ratings and not use_pairs:
        evidence = "none"
        if na == nb:
            have = f"{na} rated output{'s' if na != 1 else ''} per variant"
        else:
            have = f"{na} rated outputs for {label_a} and {nb} for {label_b}"
        if decisive:
            have += f" and {decisive} decisive pairwise comparison{'s' if decisive != 1 else ''}"
        need = f"rate at least {min_n} per variant"
        if min_n < 30:
            need += " (30+ recommended)"
        if decisive:
            need += f" or compare at least {min_n} decisive pairs"
        verdict = f"Not enough data: {have}; {need} before drawing conclusions."
    elif use_ratings and not use_pairs:
        evidence = "ratings"
        basis = f"based on ratings of {na} {label_a} and {nb} {label_b} outputs"
        if fisher.p_value < alpha:
            winner = ratings_winner()
            verdict = f"{winner} is better: {ratings_text(winner)}; {basis}."
        else:
            verdict = (f"No significant difference (Fisher p{_fmt_p(fisher.p_value, alpha)}): "
                       f"{ratings_text(None, with_p=False)}; {basis}.")
    elif use_pairs and not use_ratings:
        evidence = "pairwise"
        basis = (f"based on pairwise comparisons (ratings too few: {na} {label_a}, "
                 f"{nb} {label_b})")
        if pair.p_value < alpha:
            winner = pairs_winner()
            verdict = f"{winner} is better: {pairs_text()}; {basis}."
        else:
            verdict = (f"No significant difference (binomial p{_fmt_p(pair.p_value, alpha)}): "
                       f"{pairs_text(with_p=False)}; {basis}.")
    else:
        evidence = "both"
        # Holm step-down for two tests; valid however the two tests depend on each other,
        # which they do when the same outputs are both rated and compared.
        lo, hi = sorted([fisher.p_value, pair.p_value])
        adj_lo = min(1.0, 2 * lo)
        adj_hi = max(adj_lo, hi)
        adj_f = adj_lo if fisher.p_value <= pair.p_value else adj_hi
        adj_p = adj_hi if fisher.p_value <= pair.p_value else adj_lo
        sig_f, sig_p = adj_f < alpha, adj_p < alpha
        if sig_f and sig_p and ratings_winner() != pairs_winner():
            verdict = (f"Conflicting evidence, no conclusion. Ratings favour {ratings_winner()}: "
                       f"{ratings_text(ratings_winner(), adj_f)}; pairwise comparisons favour "
                       f"{pairs_winner()}: {pairs_text(adj_p)}.")
        elif sig_f and sig_p:
            winner = ratings_winner()
            verdict = (f"{winner} is better on both ratings and pairwise comparisons: "
                       f"{ratings_text(winner, adj_f)}; {pairs_text(adj_p)}.")
        elif sig_f:
            winner = ratings_winner()
            verdict = (f"{winner} is better on ratings: {ratings_text(winner, adj_f)}; "
                       f"pairwise comparisons not significant: {pairs_text(adj_p)}.")
        elif sig_p:
            winner = pairs_winner()
            verdict = (f"{winner} is better on pairwise comparisons: {pairs_text(adj_p)}; "
                       f"ratings not significant: {ratings_text(None, adj_f)}.")
        else:
            verdict = (f"No significant difference on ratings or pairwise comparisons: "
                       f"{ratings_text(None, adj_f)}; {pairs_text(adj_p)}.")

    return Significance(
        label_a=label_a, label_b=label_b,
        positives_a=pa, rated_a=na, positives_b=pb, rated_b=nb,
        rate_a=rate_a, rate_b=rate_b, interval_a=iv_a, interval_b=iv_b,
        difference=diff, difference_interval=diff_iv,
        fisher_p=fisher.p_value, odds_ratio=fisher.statistic,
        wins_a=wa, wins_b=wb, ties=nt, pairwise_p=pair.p_value,
        alpha=alpha, min_n=min_n, evidence=evidence, winner=winner,
        significant=winner is not None, verdict=verdict,
    )


# --------------------------------------------------------------------------- numbers


def summarize_numbers(values: Iterable[Any]) -> dict[str, float | int | None]:
    """Summary of a numeric column (latency, cost, tokens), ignoring ``None`` and NaN.

    Returns ``n, mean, p50, p95, min, max``; with no values ``n == 0`` and the rest ``None``.
    Percentiles use numpy's default linear interpolation.

    >>> summarize_numbers([1, None, 3])["mean"]
    2.0
    """
    kept: list[float] = []
    for i, v in enumerate(values):
        if v is None:
            continue
        if isinstance(v, (str, bytes)) or isinstance(v, bool):
            raise InvalidInputError(f"summarize_numbers: item {i} is {v!r}, not a number")
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise InvalidInputError(f"summarize_numbers: item {i} is {v!r}, not a number") from None
        if not math.isnan(x):
            kept.append(x)
    if not kept:
        return {"n": 0, "mean": None, "p50": None, "p95": None, "min": None, "max": None}
    arr = np.asarray(kept, dtype=float)
    return {
        "n": int(arr.size),
        "mean": float(arr.mean()),
        "p50": float(np.percentile(arr, 50)),
        "p95": float(np.percentile(arr, 95)),
        "min": float(arr.min()),
        "max": float(arr.max()),
    }
