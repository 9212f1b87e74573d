"""Online A/B checks that stay honest when people look at the results any time: pure functions.

An online experiment's dashboard is looked at every day, and stopping at the first look where a
fixed-sample test says p < 0.05 declares far more false winners than 5% (about one experiment in
three with 50 looks, in simulation). :func:`always_valid_proportions` gives a p-value and a
confidence interval for the difference of two rates that stay valid however often, and whenever,
one looks: the mixture sequential probability ratio test (mSPRT) of Johari, Pekelis and Walsh,
*Always valid inference: bringing sequential analysis to A/B testing* (arXiv:1512.04922,
2015/2017), published with Koomen as *Always valid inference: continuous monitoring of A/B
tests* (Operations Research 70(3), 2022).

:func:`sample_ratio_mismatch` checks the thing to check first: did the assignment split come out
as configured? When it did not, users were lost or moved between variants unevenly and no
comparison of the variants can be trusted.

Direction, as in :mod:`promptlab.experiments.stats`: a *difference* is ``B - A``.

>>> r = always_valid_proportions(300, 1000, 360, 1000)   # Fisher alone would say p=0.005
>>> round(r.difference, 2), round(r.p_value, 2), r.significant
(0.06, 0.08, False)
>>> sample_ratio_mismatch({"A": 5210, "B": 4790}, {"A": 0.5, "B": 0.5}).flagged
True
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np
from scipy import stats as _sp

from promptlab.errors import ConfigError, InvalidInputError
from promptlab.experiments.stats import check_count, check_probability, check_proportion, format_p

__all__ = [
    "DEFAULT_TAU",
    "SequentialResult",
    "SrmResult",
    "always_valid_proportions",
    "sample_ratio_mismatch",
]

#: Standard deviation of the normal mixing distribution on ``p_b - p_a``: 5 percentage points.
#: The mSPRT is most sensitive to differences near where the mixture puts its weight, and prompt
#: changes typically move thumbs-up or pass rates by a few to ten points. In simulation (30% base
#: rate, looks every 100 assignments) tau = 0.05 stopped on a 6-point difference within 5,000
#: assignments as often as any tau from 0.03 to 0.1, and on a 10-point difference within 1,000
#: assignments far more often than 0.02 or 0.03; smaller tau only pays off for tiny differences
#: watched over tens of thousands of assignments.
DEFAULT_TAU = 0.05


@dataclass(frozen=True)
class SequentialResult:
    """An always-valid look at ``p_b - p_a``.

    ``difference`` is the observed ``rate_b - rate_a`` (``None`` while a variant has no
    assignments). ``[interval_low, interval_high]`` is this look's confidence-sequence interval:
    with probability at least ``1 - alpha`` the intervals of *all* looks contain the true
    difference at once. ``p_value`` is always valid; ``significant`` is ``p_value < alpha``.
    """

    difference: float | None
    interval_low: float
    interval_high: float
    p_value: float
    alpha: float
    n_a: int
    n_b: int
    significant: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SrmResult:
    """A sample ratio mismatch check: chi-square goodness of fit of assignment counts to the
    configured split. ``weights`` are the configured weights normalised to sum to 1 and
    ``expected`` the counts they predict; ``flagged`` is ``p_value < threshold``."""

    counts: dict[str, int]
    weights: dict[str, float]
    expected: dict[str, float]
    total: int
    statistic: float
    p_value: float
    threshold: float
    flagged: bool
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- validation


# The house checks (promptlab.experiments.stats): the same messages and error types everywhere.
_count = check_count
_proportion = check_proportion
_probability = check_probability


# --------------------------------------------------------------------------- mSPRT


def _variance(s_a: Any, n_a: Any, s_b: Any, n_b: Any) -> np.ndarray:
    # One success and one failure added per variant (Agresti & Caffo 2000) keeps the variance
    # positive when a variant has all or no successes: the plain plug-in variance is 0 there,
    # which would make 1 success of 1 against 0 of 1 "significant".
    q_a = (np.asarray(s_a, dtype=float) + 1) / (np.asarray(n_a, dtype=float) + 2)
    q_b = (np.asarray(s_b, dtype=float) + 1) / (np.asarray(n_b, dtype=float) + 2)
    return q_a * (1 - q_a) / n_a + q_b * (1 - q_b) / n_b


def _msprt(difference: Any, variance: Any, tau: float, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """``(log Lambda, half-width)`` of the normal-mixture SPRT for ``difference ~ N(theta, variance)``
    against ``theta = 0``, with ``theta ~ N(0, tau^2)`` under the alternative. Works on arrays, so
    simulations can score every look of every experiment at once.

    Lambda = sqrt(v / (v + tau^2)) * exp(tau^2 d^2 / (2 v (v + tau^2))) is the ratio of the
    mixture likelihood to the null likelihood (Johari et al. 2022, the two-stream normal case with
    the estimator's variance v written out). Inverting ``Lambda(theta0) < 1/alpha`` gives the
    confidence sequence ``d +- sqrt(v (v + tau^2) / tau^2 * (log((v + tau^2) / v) - 2 log alpha))``.
    """
    d = np.asarray(difference, dtype=float)
    v = np.asarray(variance, dtype=float)
    t2 = tau * tau
    s = v + t2
    log_lambda = 0.5 * np.log(v / s) + t2 * d * d / (2 * v * s)
    half_width = np.sqrt(v * s / t2 * (np.log(s / v) - 2 * math.log(alpha)))
    return log_lambda, half_width


def always_valid_proportions(successes_a: int, n_a: int, successes_b: int, n_b: int, *,
                             alpha: float = 0.05, tau: float | None = None,
                             previous_p: float | None = None) -> SequentialResult:
    """Always-valid p-value and confidence sequence for ``p_b - p_a`` from the counts so far.

    The mSPRT (Johari et al., *Always valid inference*, 2022) with a normal mixture of standard
    deviation ``tau`` (default :data:`DEFAULT_TAU`, 5 points) on the difference, and the normal
    approximation for the difference of rates. Unlike a fixed-sample test, looking after every
    assignment and stopping at the first ``p < alpha`` still has a false-positive rate of at most
    ``alpha``, and the intervals of all looks cover the true difference together with probability
    ``1 - alpha``. The price: at any single planned sample size it is less powerful.

    The always-valid p-value of the paper is the running minimum over looks of ``1 / Lambda``;
    one call only sees the current counts and returns ``min(1, 1 / Lambda)`` for them. A caller
    that keeps looking passes the p-value of its last look as ``previous_p`` and gets the running
    minimum back; ``significant`` then stays true once reached, as the guarantee allows. The
    interval is this look's only (intersecting it with earlier ones is valid too).

    The p-value and the interval use the same variance, so ``p_value < alpha`` exactly when the
    interval excludes 0 (without ``previous_p``). The variance is the plug-in one with one
    success and one failure added per variant; the normal approximation wants a few dozen
    assignments per variant before its p-values mean much.

    >>> r = always_valid_proportions(480, 2000, 580, 2000)
    >>> round(r.difference, 3), round(r.interval_low, 3), round(r.interval_high, 3), round(r.p_value, 4)
    (0.05, 0.008, 0.092, 0.0095)
    >>> always_valid_proportions(490, 2100, 590, 2100, previous_p=r.p_value).p_value == r.p_value
    True
    """
    s_a, n_a = _proportion(successes_a, n_a, "variant A")
    s_b, n_b = _proportion(successes_b, n_b, "variant B")
    alpha = _probability(alpha, "alpha")
    if tau is None:
        tau = DEFAULT_TAU
    if isinstance(tau, bool) or not isinstance(tau, numbers.Real) or not math.isfinite(tau) or tau <= 0:
        raise ConfigError(f"tau must be a positive number (the mixing SD on the difference), got {tau!r}")
    tau = float(tau)
    previous = 1.0
    if previous_p is not None:
        try:
            previous = float(previous_p)
        except (TypeError, ValueError):
            previous = math.nan
        if not 0.0 <= previous <= 1.0:
            raise InvalidInputError(f"previous_p must be a p-value between 0 and 1, got {previous_p!r}")

    if n_a == 0 or n_b == 0:
        p = min(1.0, previous)
        return SequentialResult(difference=None, interval_low=-1.0, interval_high=1.0, p_value=p,
                                alpha=alpha, n_a=n_a, n_b=n_b, significant=p < alpha)

    diff = s_b / n_b - s_a / n_a
    log_lambda, half = _msprt(diff, _variance(s_a, n_a, s_b, n_b), tau, alpha)
    log_lambda = float(log_lambda)
    p = min(previous, 1.0 if log_lambda <= 0 else math.exp(-log_lambda))
    return SequentialResult(difference=diff, interval_low=max(-1.0, diff - float(half)),
                            interval_high=min(1.0, diff + float(half)), p_value=p, alpha=alpha,
                            n_a=n_a, n_b=n_b, significant=p < alpha)


# --------------------------------------------------------------------------- sample ratio mismatch


def _fmt_split(weights: Mapping[str, float]) -> str:
    return "/".join(f"{round(100 * w, 1):g}" for w in weights.values())


def sample_ratio_mismatch(counts: Mapping[str, int], weights: Mapping[str, float], *,
                          threshold: float = 0.001) -> SrmResult:
    """Chi-square goodness of fit of assignment ``counts`` per variant to the configured ``weights``.

    A sample ratio mismatch (``p < threshold``, 0.001 by default, the usual cut-off: with many
    experiments checked daily a looser one raises false alarms) means the split itself is broken
    (a variant crashing before it logs, bots, sticky assignment gone wrong) and that no comparison
    of the variants can be trusted. Weights need not sum to 1; they are normalised. A variant
    configured but missing from ``counts`` has 0 assignments; a label in ``counts`` that is not
    configured is an error. No assignments at all is nothing to check, so not flagged.

    >>> print(sample_ratio_mismatch({"A": 5210, "B": 4790}, {"A": 1, "B": 1}).message)
    Sample ratio mismatch: A 5,210 vs B 4,790 assignments where 50/50 was configured (chi-square p=2.7e-05); the split is broken, so no result below can be trusted.
    """
    if not isinstance(weights, Mapping) or len(weights) < 2:
        raise ConfigError(f"weights must map at least two variant labels to weights, got {weights!r}")
    if not isinstance(counts, Mapping):
        raise InvalidInputError(f"counts must map variant labels to assignment counts, got {counts!r}")
    threshold = _probability(threshold, "threshold")
    raw: dict[str, float] = {}
    for label, w in weights.items():
        try:
            x = float(w)
        except (TypeError, ValueError):
            raise ConfigError(f"weight of variant {label!r} must be a positive number, got {w!r}") from None
        if isinstance(w, bool) or not math.isfinite(x) or x <= 0:
            raise ConfigError(f"weight of variant {label!r} must be a positive number, got {w!r}")
        raw[str(label)] = x
    unknown = [str(k) for k in counts if str(k) not in raw]
    if unknown:
        raise InvalidInputError(f"assignment counts for unknown variant{'s' if len(unknown) > 1 else ''} "
                                f"{', '.join(repr(u) for u in unknown)}; configured: "
                                f"{', '.join(repr(k) for k in raw)}")
    given = {str(k): v for k, v in counts.items()}
    obs = {label: _count(given.get(label, 0), f"assignments of variant {label!r}") for label in raw}
    weight_sum = sum(raw.values())
    norm = {label: w / weight_sum for label, w in raw.items()}
    total = sum(obs.values())
    expected = {label: total * w for label, w in norm.items()}
    split = _fmt_split(norm)
    listed = " vs ".join(f"{label} {obs[label]:,}" for label in obs)

    if total == 0:
        return SrmResult(counts=obs, weights=norm, expected=expected, total=0, statistic=0.0, p_value=1.0,
                         threshold=threshold, flagged=False,
                         message=f"No assignments yet: nothing to check against the configured {split} "
                                 f"split.")

    res = _sp.chisquare(list(obs.values()), f_exp=list(expected.values()))
    stat, p = float(res.statistic), float(res.pvalue)
    flagged = p < threshold
    p_text = format_p(p, threshold)  # promptlab's one p-value format
    if flagged:
        message = (f"Sample ratio mismatch: {listed} assignments where {split} was configured "
                   f"(chi-square {p_text}); the split is broken, so no result below can be trusted.")
    else:
        message = (f"No sample ratio mismatch: {listed} assignments fit the configured {split} split "
                   f"(chi-square {p_text}).")
    return SrmResult(counts=obs, weights=norm, expected=expected, total=total, statistic=stat, p_value=p,
                     threshold=threshold, flagged=flagged, message=message)
