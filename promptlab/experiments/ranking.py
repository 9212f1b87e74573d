"""Rank the variants of an A/B/n experiment from pairwise preferences (Bradley-Terry).

Each comparison says which of two variants' outputs was preferred, or that they tied. The
Bradley-Terry model gives every variant a log-strength ``s`` such that
``P(a beats b) = 1 / (1 + exp(-(s_a - s_b)))``; :func:`bradley_terry` fits it with ``choix``
and puts a bootstrap percentile interval on every strength::

    ranking = bradley_terry(run_preferences, cluster="row")
    ranking.table            # best first: rank, strength, p_beats_average (+ intervals), W/L/T
    ranking.probability("B", "A")
    leaderboard_figure(ranking)

**Ties** count as half a win each way. ``choix.ilsr_pairwise_dense`` fits from a matrix of win
counts, which may be fractional, so a tie between ``a`` and ``b`` adds 0.5 to ``a``-beats-``b``
and 0.5 to ``b``-beats-``a``: it pulls the two strengths together with the weight of one
comparison. (Adding a whole win each way would weigh a tie twice as much as a decisive one.)

**The statistical unit is the dataset row.** Several comparisons of one row (repeats, several
judges, every pair of variants) share the row's difficulty and are not independent evidence,
so with ``cluster="row"`` the bootstrap resamples rows, each with all its comparisons. Without
``cluster`` it resamples single comparisons, which is right only when they are independent.

**Regularisation.** ``alpha`` is choix's: a small comparison rate between every pair of
variants. It keeps a variant that won (or lost) every comparison at a finite strength instead
of infinity and moves well-measured strengths by about ``alpha / comparisons per pair``. The
result's ``notes`` say when a strength rests on it rather than on the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Hashable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import choix
import numpy as np

from promptlab.errors import ConfigError, InvalidInputError, NotFoundError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import plotly.graph_objects as go

__all__ = ["Ranking", "bradley_terry", "leaderboard_figure"]

COLUMNS = ("rank", "strength", "strength_low", "strength_high", "p_beats_average",
           "p_beats_average_low", "p_beats_average_high", "wins", "losses", "ties", "comparisons")

_MAX_ITER = 500
_TOL = 1e-8  # choix's default: L1 change of the centred strengths per variant
_CHUNK = 512  # bootstrap samples fitted at once; bounds memory for many rows or variants
_DRAWS = 4_000_000  # unit draws held at once when resampling many distinct rows


@dataclass(frozen=True)
class Ranking:
    """A Bradley-Terry ranking: ``table`` (indexed by variant, best first) and how it was made.

    ``n_clusters`` is the number of units the bootstrap resampled: distinct ``cluster`` values,
    or ``n_comparisons`` without a cluster. ``notes`` flag what the numbers cannot show (an
    uncompared variant, a strength held finite only by the regularisation, few units).
    """

    table: "pd.DataFrame"
    n_comparisons: int
    n_clusters: int
    cluster: str | None
    confidence: float
    n_boot: int
    seed: int | None
    alpha: float
    notes: tuple[str, ...] = ()

    @property
    def labels(self) -> list[Hashable]:
        """The variants, best first (uncompared ones last)."""
        return list(self.table.index)

    def probability(self, a: Hashable, b: Hashable) -> float:
        """P(``a`` is preferred to ``b``) from the point estimates; NaN if either is uncompared.

        >>> r = bradley_terry([{"winner": "B", "loser": "A"}] * 3 + [{"winner": "A", "loser": "B"}])
        >>> round(r.probability("B", "A"), 2)   # 3 wins of 4
        0.75
        """
        strengths = []
        for label in (a, b):
            if label not in self.table.index:
                raise NotFoundError("variant", label, f"ranked variants: {self.labels}")
            strengths.append(float(self.table.at[label, "strength"]))
        if any(math.isnan(s) for s in strengths):
            return math.nan
        return float(choix.probabilities([0, 1], strengths)[0])

    def as_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready data: ``variants`` best first, NaN as ``None``."""
        variants = []
        for label, row in self.table.iterrows():
            record: dict[str, Any] = {"variant": label}
            for column in COLUMNS:
                value = row[column]
                if column in ("rank", "wins", "losses", "ties", "comparisons"):
                    record[column] = None if _missing(value) else int(value)
                else:
                    record[column] = None if _missing(value) else float(value)
            variants.append(record)
        return {"variants": variants, "n_comparisons": self.n_comparisons, "n_clusters": self.n_clusters,
                "cluster": self.cluster, "confidence": self.confidence, "n_boot": self.n_boot,
                "seed": self.seed, "alpha": self.alpha, "notes": list(self.notes)}


# --------------------------------------------------------------------------- input


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN and NaT are not equal to themselves
    except TypeError:  # pd.NA: its comparison is NA again, which refuses to be a bool
        return True
    except ValueError:  # an array: not missing, and refused later as a label
        return False


def _hashable(value: Any, what: str) -> Hashable:
    try:
        hash(value)
    except TypeError:
        raise InvalidInputError(f"{what} must be a label (a string or number), "
                                f"got {type(value).__name__}") from None
    return value


def _tie(value: Any, number: int) -> bool:
    if _missing(value):
        return False
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer)) and value in (0, 1)):
        return bool(value)
    raise InvalidInputError(f"comparison {number}: 'tie' must be true or false, got {value!r}")


def _records(comparisons: Any) -> Iterable[Any]:
    if hasattr(comparisons, "to_dict") and hasattr(comparisons, "columns"):
        return comparisons.to_dict("records")
    if isinstance(comparisons, (str, bytes, Mapping)) or not isinstance(comparisons, Iterable):
        raise InvalidInputError("comparisons must be a list of {'winner': ..., 'loser': ...} dicts "
                                f"or a DataFrame with those columns, not {type(comparisons).__name__}")
    return comparisons


def _parse(comparisons: Any, labels: Any, cluster: str | None):
    """Comparisons as index arrays: (labels, winners, losers, ties, unit of each comparison)."""
    given = labels is not None
    if given:
        if isinstance(labels, (str, bytes, Mapping)) or not isinstance(labels, Iterable):
            raise InvalidInputError(f"labels must be a list of variant labels, not {type(labels).__name__}")
        names = [_hashable(x, "a label") for x in labels]
        duplicated = [x for x in dict.fromkeys(names) if names.count(x) > 1]
        if duplicated:
            raise InvalidInputError(f"labels are listed more than once: {duplicated}")
        if len(names) < 2:
            raise InvalidInputError(f"a ranking needs two or more variants, got labels={names}")
    else:
        names = []
    index = {name: i for i, name in enumerate(names)}
    unknown: dict[Hashable, None] = {}
    winners, losers, ties, units = [], [], [], []
    unit_index: dict[Hashable, int] = {}
    number = 0
    for number, record in enumerate(_records(comparisons), start=1):
        if not isinstance(record, Mapping):
            raise InvalidInputError(f"comparison {number} must be a dict with 'winner' and 'loser', "
                                    f"got {type(record).__name__}")
        pair = []
        for key in ("winner", "loser"):
            value = record.get(key)
            if _missing(value):
                raise InvalidInputError(f"comparison {number} has no {key!r}")
            pair.append(_hashable(value, f"comparison {number}: {key!r}"))
        if pair[0] == pair[1]:
            raise InvalidInputError(f"comparison {number} compares {pair[0]!r} with itself")
        for name in pair:
            if name not in index:
                if given:
                    unknown[name] = None
                else:
                    index[name] = len(names)
                    names.append(name)
        tie = _tie(record.get("tie"), number)
        if cluster is not None:
            value = record.get(cluster)
            if _missing(value):
                raise InvalidInputError(f"comparison {number} has no {cluster!r} (the cluster key)")
            unit = unit_index.setdefault(_hashable(value, f"comparison {number}: {cluster!r}"), len(unit_index))
        else:
            unit = number - 1
        if not unknown:
            winners.append(index[pair[0]])
            losers.append(index[pair[1]])
            ties.append(tie)
            units.append(unit)
    if unknown:
        raise InvalidInputError(f"comparisons name variants not in labels: {list(unknown)} "
                                f"(labels: {names})")
    if number == 0:
        raise InvalidInputError("no comparisons to rank")
    return (names, np.array(winners, dtype=np.intp), np.array(losers, dtype=np.intp),
            np.array(ties, dtype=bool), np.array(units, dtype=np.intp))


def _options(n_boot: Any, confidence: Any, alpha: Any, seed: Any) -> tuple[int, float, float]:
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 100:
        raise InvalidInputError(f"n_boot must be a whole number of at least 100, got {n_boot!r}")
    try:
        conf = float(confidence)
    except (TypeError, ValueError):
        conf = math.nan
    if not 0.0 < conf < 1.0:
        raise InvalidInputError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    try:
        reg = float(alpha)
    except (TypeError, ValueError):
        reg = math.nan
    if not (reg > 0.0 and math.isfinite(reg)):
        raise InvalidInputError(f"alpha must be a positive number (it keeps a variant that won every "
                                f"comparison finite), got {alpha!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise InvalidInputError(f"seed must be a non-negative whole number or None, got {seed!r}")
    return int(n_boot), conf, reg


# --------------------------------------------------------------------------- fitting


def _ilsr_batch(mats: np.ndarray, alpha: float, start: np.ndarray) -> tuple[np.ndarray, int]:
    """``choix.ilsr_pairwise_dense`` for a stack of win matrices at once.

    Same iteration (Maystre & Grossglauser's I-LSR, with choix's weight normalisation and
    ``alpha``), so the same fixed point; looping choix over 2,000 bootstrap samples took about
    2 s, this takes a few hundredths. Returns the centred strengths and how many fits did not
    converge within ``_MAX_ITER`` (their last iterate is kept).
    """
    n, k, _ = mats.shape
    params = np.broadcast_to(start - start.mean(), (n, k)).copy()
    incoming = mats.transpose(0, 2, 1)
    diagonal = np.arange(k)
    rhs = np.zeros((1, k, 1))
    rhs[0, -1, 0] = 1.0
    active = np.arange(n)
    for _ in range(_MAX_ITER):
        current = params[active]
        weights = np.exp(current - current.max(axis=1, keepdims=True))
        weights *= k / weights.sum(axis=1, keepdims=True)
        # The LSR Markov chain: from i to j at rate alpha + (j beat i) / (w_i + w_j).
        rates = alpha + incoming[active] / (weights[:, :, None] + weights[:, None, :])
        rates[:, diagonal, diagonal] = 0.0
        rates[:, diagonal, diagonal] = -rates.sum(axis=2)
        # Stationary distribution: pi @ Q = 0 with one balance equation swapped for sum(pi) = 1.
        system = rates.transpose(0, 2, 1).copy()
        system[:, -1, :] = 1.0
        pi = np.linalg.solve(system, np.broadcast_to(rhs, (len(active), k, 1)))[..., 0]
        logs = np.log(pi)
        new = logs - logs.mean(axis=1, keepdims=True)
        params[active] = new
        active = active[np.abs(new - current).sum(axis=1) > _TOL * k]
        if not len(active):
            break
    return params, len(active)


def _unit_types(n_units: int, units: np.ndarray, cells: np.ndarray, weights: np.ndarray,
                size: int) -> tuple[Any, np.ndarray]:
    """Identical units (same comparisons) merged: a sparse (types x cells) matrix of win counts
    and the type of each unit. Resampling units uniformly is resampling types in proportion to
    their counts, usually with far fewer categories to draw from."""
    from scipy import sparse

    per_unit = sparse.coo_matrix((weights, (units, cells)), shape=(n_units, size)).tocsr()
    per_unit.sum_duplicates()
    per_unit.sort_indices()
    keys: dict[tuple, int] = {}
    first = []
    unit_type = np.empty(n_units, dtype=np.intp)
    for u in range(n_units):
        lo, hi = per_unit.indptr[u], per_unit.indptr[u + 1]
        key = (per_unit.indices[lo:hi].tobytes(), per_unit.data[lo:hi].tobytes())
        t = keys.setdefault(key, len(first))
        if t == len(first):
            first.append(u)
        unit_type[u] = t
    return per_unit[first], unit_type


def _resample(rng: np.random.Generator, unit_type: np.ndarray, n_types: int, size: int) -> np.ndarray:
    """How often each unit type is drawn in each of ``size`` bootstrap samples of all units."""
    n = len(unit_type)
    if 6 * n_types < n:
        # Few distinct units (single comparisons, say): one multinomial draw per sample. Its
        # cost grows with the number of types, so many distinct rows are drawn one by one.
        return rng.multinomial(n, np.bincount(unit_type, minlength=n_types) / n, size=size)
    picks = unit_type[rng.integers(0, n, size=(size, n))]
    picks += np.arange(size)[:, None] * n_types
    return np.bincount(picks.ravel(), minlength=size * n_types).reshape(size, n_types)


def _components(win_matrix: np.ndarray, connection: str) -> tuple[int, np.ndarray]:
    from scipy.sparse.csgraph import connected_components

    return connected_components(win_matrix > 0, directed=True, connection=connection)


# --------------------------------------------------------------------------- public


def bradley_terry(comparisons: Any, labels: Iterable[Hashable] | None = None, *, cluster: str | None = None,
                  n_boot: int = 2000, confidence: float = 0.95, seed: int | None = 0,
                  alpha: float = 0.01) -> Ranking:
    """Bradley-Terry strengths of variants from pairwise preferences, with bootstrap intervals.

    ``comparisons``: dicts (or DataFrame rows) with ``winner`` and ``loser`` labels, optionally
    ``tie`` (true: neither preferred; counts half a win each way) and the ``cluster`` key, e.g.
    ``cluster="row"`` so the bootstrap resamples dataset rows rather than single comparisons.
    ``labels`` fixes the variants (a listed variant never compared gets NaN and a note); by
    default they are the ones the comparisons name. Intervals are bootstrap percentiles at
    ``confidence`` over ``n_boot`` resamples drawn from ``numpy.random.default_rng(seed)``.

    ``strength`` is a log-strength centred to mean 0 over the compared variants, so
    ``p_beats_average = 1 / (1 + exp(-strength))`` is the chance of beating a variant of
    average strength.

    >>> data = [{"winner": "B", "loser": "A", "row": i} for i in range(30)]
    >>> data += [{"winner": "A", "loser": "B", "row": i} for i in range(30, 40)]
    >>> r = bradley_terry(data, cluster="row")
    >>> r.labels, round(float(r.table.at["B", "strength"] - r.table.at["A", "strength"]), 2)
    (['B', 'A'], 1.1)
    """
    import pandas as pd

    n_boot, confidence, alpha = _options(n_boot, confidence, alpha, seed)
    if cluster is not None and not isinstance(cluster, str):
        raise InvalidInputError(f"cluster must name a key of the comparisons (e.g. 'row'), got {cluster!r}")
    names, winners, losers, ties, units = _parse(comparisons, labels, cluster)
    k = len(names)
    n = len(winners)

    decisive = ~ties
    wins = np.bincount(winners[decisive], minlength=k)
    losses = np.bincount(losers[decisive], minlength=k)
    tie_count = np.bincount(winners[ties], minlength=k) + np.bincount(losers[ties], minlength=k)
    compared = wins + losses + tie_count
    # A variant never compared has no likelihood term; fitting it would only report alpha's
    # pull towards the mean as if it were an estimate, so it stays out of the fit.
    fitted = np.flatnonzero(compared > 0)
    position = np.full(k, -1)
    position[fitted] = np.arange(len(fitted))
    kf = len(fitted)
    win_at, lose_at = position[winners], position[losers]

    # Every comparison as weighted cells of a (winner, loser) count matrix: a tie is half a win
    # each way (see the module docstring).
    cells = np.concatenate([win_at * kf + lose_at, lose_at[ties] * kf + win_at[ties]])
    weights = np.concatenate([np.where(ties, 0.5, 1.0), np.full(int(ties.sum()), 0.5)])
    unit_of = np.concatenate([units, units[ties]])
    win_matrix = np.bincount(cells, weights=weights, minlength=kf * kf).reshape(kf, kf)
    try:
        point = choix.ilsr_pairwise_dense(win_matrix, alpha=alpha, max_iter=_MAX_ITER)
    except RuntimeError:  # choix gives up after max_iter; the same iteration, last iterate kept
        point = _ilsr_batch(win_matrix[None], alpha, np.zeros(kf))[0][0]

    n_units = int(units.max()) + 1
    types, unit_type = _unit_types(n_units, unit_of, cells, weights, kf * kf)
    rng = np.random.default_rng(seed)
    boot = np.empty((n_boot, kf))
    stuck = 0
    chunk = max(1, min(_CHUNK, _DRAWS // n_units))
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        draws = _resample(rng, unit_type, types.shape[0], size)
        mats = np.asarray((types.T @ draws.T).T).reshape(size, kf, kf)
        boot[start:start + size], not_converged = _ilsr_batch(mats, alpha, point)
        stuck += not_converged
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(boot, [tail, 1.0 - tail], axis=0)

    strength = np.full(k, np.nan)
    strength_low = np.full(k, np.nan)
    strength_high = np.full(k, np.nan)
    strength[fitted], strength_low[fitted], strength_high[fitted] = point, low, high
    # Rounded so that variants with identical records share a rank despite float noise.
    rounded = np.round(strength, 9)
    rank = np.array([1 + int(np.sum(rounded[fitted] > r)) if not math.isnan(r) else -1 for r in rounded])
    order = sorted(range(k), key=lambda i: (math.isnan(rounded[i]), -np.nan_to_num(rounded[i]), i))

    def expit(x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-x))

    table = pd.DataFrame({
        "rank": pd.array([r if r > 0 else None for r in rank], dtype="Int64"),
        "strength": strength, "strength_low": strength_low, "strength_high": strength_high,
        "p_beats_average": expit(strength), "p_beats_average_low": expit(strength_low),
        "p_beats_average_high": expit(strength_high),
        "wins": wins, "losses": losses, "ties": tie_count, "comparisons": compared,
    }, index=pd.Index(names, name="variant")).iloc[order]

    notes = _notes(names, fitted, win_matrix, n_units, cluster, alpha, stuck, n_boot)
    return Ranking(table=table, n_comparisons=n, n_clusters=n_units, cluster=cluster,
                   confidence=confidence, n_boot=n_boot, seed=None if seed is None else int(seed),
                   alpha=alpha, notes=tuple(notes))


def _notes(names: list, fitted: np.ndarray, win_matrix: np.ndarray, n_units: int, cluster: str | None,
           alpha: float, stuck: int, n_boot: int) -> list[str]:
    notes = []
    compared = set(fitted.tolist())
    absent = [names[i] for i in range(len(names)) if i not in compared]
    if absent:
        notes.append(f"no comparisons of {', '.join(map(repr, absent))}: strength unknown (NaN), not ranked")
    fitted_names = [names[i] for i in fitted]
    groups, group_of = _components(win_matrix, "weak")
    if groups > 1:
        listed = "; ".join(", ".join(repr(fitted_names[i]) for i in np.flatnonzero(group_of == g))
                           for g in range(groups))
        notes.append(f"the variants form {groups} groups never compared with each other ({listed}): "
                     "strengths compare only within a group")
    # The maximum-likelihood strengths are finite only if every variant can be reached from
    # every other along "beat" edges (a strongly connected win graph; Ford, 1957); otherwise
    # only alpha keeps them finite.
    if _components(win_matrix, "strong")[0] > groups:
        never_lost = [fitted_names[i] for i in range(len(fitted)) if win_matrix[:, i].sum() == 0]
        never_won = [fitted_names[i] for i in range(len(fitted)) if win_matrix[i, :].sum() == 0]
        said = []
        if never_lost:
            said.append(f"{', '.join(map(repr, never_lost))} never lost")
        if never_won:
            said.append(f"{', '.join(map(repr, never_won))} never won")
        who = " and ".join(said) if said else "some variants never lost to others"
        notes.append(f"{who}: the data put no bound on how far apart those strengths are; they are "
                     f"held finite by the regularisation (alpha={alpha:g}), so read the gap and its "
                     "interval as 'at least'")
    if n_units < 10:
        unit = f"{cluster!r} values" if cluster else "comparisons"
        notes.append(f"only {n_units} {unit} to resample: the bootstrap intervals are rough")
    if stuck:
        notes.append(f"{stuck} of {n_boot} bootstrap fits did not converge in {_MAX_ITER} iterations")
    return notes


def leaderboard_figure(ranking: Ranking, title: str | None = None) -> "go.Figure":
    """Dot-and-whisker leaderboard: each variant's chance of beating an average variant with
    its bootstrap interval, best on top; hovering shows wins, losses and ties.

    >>> fig = leaderboard_figure(bradley_terry([{"winner": "B", "loser": "A"}] * 3))
    >>> list(fig.data[0].y)
    ['B', 'A']
    """
    import plotly.graph_objects as go

    if not isinstance(ranking, Ranking):
        raise ConfigError(f"leaderboard_figure() takes the Ranking of bradley_terry(), "
                          f"not {type(ranking).__name__}")
    table = ranking.table
    labels = [str(x) for x in table.index]

    def values(column: str) -> list[float | None]:
        return [None if _missing(v) else float(v) for v in table[column]]

    p, low, high = values("p_beats_average"), values("p_beats_average_low"), values("p_beats_average_high")
    plus = [None if x is None else h - x for x, h in zip(p, high)]
    minus = [None if x is None else x - lo for x, lo in zip(p, low)]
    ranks = ["–" if _missing(r) else str(int(r)) for r in table["rank"]]
    custom = [[r, int(wi), int(lo_), int(ti), "n/a" if x is None else f"{lo:.0%} to {h:.0%}"]
              for r, wi, lo_, ti, x, lo, h in zip(ranks, table["wins"], table["losses"], table["ties"],
                                                  p, low, high)]
    conf_pct = f"{ranking.confidence * 100:.4g}%"
    fig = go.Figure()
    fig.update_layout(
        template="plotly_white",  # as promptlab.charts
        title=dict(text=title or "Bradley-Terry ranking"),
        xaxis_title=f"Chance of beating an average variant ({conf_pct} bootstrap interval)",
        yaxis_title="Variant", margin=dict(l=60, r=30, t=70, b=60), showlegend=False)
    # 50% is a variant of average strength: whiskers crossing it are not clearly above or below.
    fig.add_vline(x=0.5, line_dash="dot", line_color="#888888")
    fig.add_trace(go.Scatter(
        x=p, y=labels, mode="markers", name="strength", marker=dict(color="#0072B2", size=10),
        error_x=dict(type="data", symmetric=False, array=plus, arrayminus=minus, thickness=2, width=6),
        customdata=custom,
        hovertemplate=("<b>%{y}</b> (rank %{customdata[0]})<br>beats an average variant %{x:.0%} "
                       "of the time<br>" + conf_pct + " interval %{customdata[4]}<br>"
                       "%{customdata[1]} wins, %{customdata[2]} losses, %{customdata[3]} ties<extra></extra>")))
    fig.update_xaxes(range=[0, 1], tickformat=".0%")
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=labels, autorange="reversed")
    return fig
