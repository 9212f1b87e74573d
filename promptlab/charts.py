"""Charts of experiment runs and feedback: records in, plotly ``Figure`` out.

Every function takes an :class:`~promptlab.experiments.ExperimentRun` *or* the DataFrame that
run produces (``run.summary()``, ``run.cells()``, ``run.to_pandas()``, or a feedback frame), so a
widget can feed live data without a run. Nothing here displays anything or does I/O, except the
explicit :func:`to_png` (and reading a run's records from its store when given a run)::

    import promptlab as pl
    fig = pl.charts.ratings(run)            # positive-rating rate per variant, 95% interval bars
    fig                                      # the notebook shows it; scripts call fig.show()
    pl.charts.to_png(fig, "ratings.png")     # static export (kaleido + a Chromium browser)

A variant keeps the same colour in every chart (:func:`palette`).

**Feedback frames** (for :func:`rating_distribution` and :func:`issue_tags`) have one row per
feedback entry with these columns:

- ``rating``: ``"Positive"``/``"Negative"`` or empty (``issue`` for :func:`issue_tags`);
- a group column, ``variant`` (preferred) or ``action`` (or name one with ``by=``); without
  one, everything is a single group;
- optional ``generation`` and ``created_at``: when both are present, each generation counts
  once, with its latest non-empty value of each field ("latest wins", as in summaries);
- optional ``source``: only ``"human"`` rows count (evaluator scores are not ratings).

``lab.feedback.to_pandas()`` has all of these except the group column; :func:`feedback_frame`
builds the full frame for a run (adding ``variant`` and ``action``).
"""

from __future__ import annotations

import math
import os
import zlib
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from .errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import plotly.graph_objects as go

__all__ = [
    "palette",
    "feedback_frame",
    "ratings",
    "rating_distribution",
    "issue_tags",
    "pairwise",
    "latency",
    "cost",
    "scores_scatter",
    "evaluator_means",
    "evaluator_columns",
    "to_png",
    "SUMMARY_COLUMNS",
]

TEMPLATE = "plotly_white"
# Okabe-Ito: distinguishable with the common colour-vision deficiencies, and in greyscale.
COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
RATING_COLORS = {"Positive": "#009E73", "Negative": "#D55E00"}
OUTCOME_COLORS = {"wins": "#009E73", "ties": "#BBBBBB", "losses": "#D55E00"}
NO_DATA_COLOR = "#888888"

#: The columns of ``run.summary()`` that are not evaluator means.
SUMMARY_COLUMNS = frozenset({
    "variant", "action", "n", "errors", "error_causes", "latency_p50_ms", "latency_p95_ms", "tokens", "cost_usd",
    "rated", "positive_rate", "positive_ci_low", "positive_ci_high", "wins", "ties", "losses",
})


# -- colours ----------------------------------------------------------------------------------


def palette(labels: Iterable[Any]) -> dict[str, str]:
    """A colour per label, the same in every chart: ``"A"`` is always blue, ``"B"`` orange, ...

    Single capital letters take their alphabet slot; other labels a slot from a stable hash,
    moving to the next free colour when two labels of the same set would collide.

    >>> palette(["A", "B"])
    {'A': '#0072B2', 'B': '#E69F00'}
    """
    names = [str(x) for x in dict.fromkeys(labels)]
    out: dict[str, str] = {}
    taken: set[int] = set()
    for name in names:
        if len(name) == 1 and "A" <= name <= "Z":
            slot = (ord(name) - ord("A")) % len(COLORS)
            out[name] = COLORS[slot]
            taken.add(slot)
    for name in sorted(n for n in names if n not in out):
        slot = zlib.crc32(name.encode()) % len(COLORS)
        for step in range(len(COLORS)):
            if (slot + step) % len(COLORS) not in taken:
                slot = (slot + step) % len(COLORS)
                break
        taken.add(slot)
        out[name] = COLORS[slot]
    return {name: out[name] for name in names}


# -- inputs -----------------------------------------------------------------------------------


def _is_run(obj: Any) -> bool:
    from .experiments.summary import ExperimentRun

    return isinstance(obj, ExperimentRun)


def _frame(obj: Any, produce: str, what: str, needs: Sequence[str]) -> "pd.DataFrame":
    """``obj`` itself when it is a DataFrame with the ``needs`` columns, else ``run.<produce>()``."""
    import pandas as pd

    if _is_run(obj):
        frame = getattr(obj, produce)()
    elif isinstance(obj, pd.DataFrame):
        frame = obj
    else:
        raise ConfigError(f"{what}() takes an ExperimentRun or the DataFrame of run.{produce}(), "
                          f"not {type(obj).__name__}")
    if produce == "summary" and "variant" in frame.columns:
        frame = frame.set_index("variant")
    present = set(frame.columns) | ({frame.index.name} if frame.index.name else set())
    missing = [c for c in needs if c not in present]
    if missing and len(frame):
        raise ConfigError(f"{what}() needs the column(s) {missing} (as in run.{produce}()); "
                          f"the frame has {sorted(map(str, frame.columns))}")
    return frame


def _labels(frame: "pd.DataFrame", column: str | None, run: Any = None) -> list[str]:
    if run is not None and _is_run(run):
        known = [str(x) for x in run.labels]
        seen = [] if column is None else [str(x) for x in frame[column].dropna().unique()]
        return known + [x for x in seen if x not in known]
    values = frame.index if column is None else frame[column].dropna()
    return [str(x) for x in dict.fromkeys(values)]


def _num(value: Any) -> float | None:
    """A float, or None for None/NaN/pd.NA."""
    if value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def _count(value: Any) -> int:
    x = _num(value)
    return int(x) if x is not None else 0


def _figure(title: str, x_title: str | None = None, y_title: str | None = None,
            **layout: Any) -> "go.Figure":
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.update_layout(template=TEMPLATE, title=dict(text=title), xaxis_title=x_title, yaxis_title=y_title,
                      margin=dict(l=60, r=30, t=70, b=60), **layout)
    return fig


def _no_data(fig: "go.Figure", text: str) -> "go.Figure":
    fig.add_annotation(text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font=dict(size=15, color=NO_DATA_COLOR), name="no-data")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def _category_order(fig: "go.Figure", labels: Sequence[str], axis: str = "x") -> None:
    update = fig.update_xaxes if axis == "x" else fig.update_yaxes
    update(type="category", categoryorder="array", categoryarray=list(labels))


# -- ratings ----------------------------------------------------------------------------------


def ratings(run_or_summary: Any, title: str | None = None) -> "go.Figure":
    """Positive-rating rate per variant with its 95% interval as error bars (the row is the unit:
    Wilson, or a bootstrap over rows when rows have several rated outputs; see ``run.summary()``).

    Takes a run or ``run.summary()`` (columns ``rated``, ``positive_rate``, ``positive_ci_low``,
    ``positive_ci_high``). Each bar is labelled with its rate and ``n`` rated outputs; a variant
    nobody has rated gets a "no ratings yet" note instead of a bar.
    """
    import plotly.graph_objects as go

    needs = ("rated", "positive_rate", "positive_ci_low", "positive_ci_high")
    summary = _frame(run_or_summary, "summary", "ratings", needs)
    fig = _figure(title or "Positive ratings per variant (95% interval)", "Variant",
                  "Positive rate", showlegend=False)
    labels = _labels(summary, None, run_or_summary)
    if not labels:
        return _no_data(fig, "no variants yet")
    colors = palette(labels)
    xs, ys, plus, minus, texts, ns, bar_colors = [], [], [], [], [], [], []
    for label in labels:
        row = summary.loc[label] if label in summary.index else {}
        n = _count(row.get("rated")) if len(row) else 0
        rate = _num(row.get("positive_rate")) if n else None
        if rate is None:
            fig.add_annotation(x=label, y=0.04, text="no ratings yet", showarrow=False, yanchor="bottom",
                               font=dict(color=NO_DATA_COLOR), name=f"no-ratings:{label}")
            continue
        low, high = _num(row.get("positive_ci_low")), _num(row.get("positive_ci_high"))
        xs.append(label)
        ys.append(rate)
        plus.append(max(0.0, (high if high is not None else rate) - rate))
        minus.append(max(0.0, rate - (low if low is not None else rate)))
        texts.append(f"{rate:.0%}<br>n={n}")
        ns.append([n, low, high])
        bar_colors.append(colors[label])
    if xs:
        fig.add_trace(go.Bar(
            x=xs, y=ys, name="positive rate", marker_color=bar_colors, text=texts,
            textposition="inside", insidetextanchor="start", customdata=ns,
            error_y=dict(type="data", symmetric=False, array=plus, arrayminus=minus, thickness=1.5,
                         width=8, color="#333333"),
            hovertemplate="%{x}: %{y:.1%} positive<br>n=%{customdata[0]} rated<br>"
                          "95% CI %{customdata[1]:.1%} to %{customdata[2]:.1%}<extra></extra>"))
    _category_order(fig, labels)
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%")
    return fig


def feedback_frame(run: Any) -> "pd.DataFrame":
    """Every feedback row on a run's generations, with ``variant`` and ``action`` added.

    The columns of ``lab.feedback.to_pandas()`` (``generation``, ``rating``, ``issue``, ``source``,
    ``created_at``, ...) plus ``variant`` and ``action``: the input of :func:`rating_distribution`
    and :func:`issue_tags`.
    """
    import pandas as pd

    if not _is_run(run):
        raise ConfigError(f"feedback_frame() takes an ExperimentRun, not {type(run).__name__}")
    cells = run.cells()
    if cells.empty:
        return pd.DataFrame(columns=["generation", "rating", "issue", "source", "created_at", "variant",
                                     "action"])
    cells = cells.dropna(subset=["generation_guid"])
    variant_of = dict(zip(cells.generation_guid, cells.variant))
    action_of = dict(zip(cells.generation_guid, cells.action_name))
    frame = run.lab.feedback.to_pandas(experiment=run.experiment_guid)
    frame = frame[frame["generation"].isin(variant_of)].copy()
    frame["variant"] = frame["generation"].map(variant_of)
    frame["action"] = frame["generation"].map(action_of)
    return frame.reset_index(drop=True)


def _human_latest(frame: "pd.DataFrame", field: str) -> "pd.DataFrame":
    """Human rows only; one row per generation holding its latest non-empty ``field``."""
    if "source" in frame.columns:
        frame = frame[frame["source"].fillna("human") == "human"]
    frame = frame[frame[field].notna()]
    if {"generation", "created_at"} <= set(frame.columns):
        frame = frame.sort_values("created_at", kind="stable").drop_duplicates("generation", keep="last")
    return frame


def _group_column(frame: "pd.DataFrame", by: str | None, what: str) -> str | None:
    if by is not None:
        if by not in frame.columns:
            raise ConfigError(f"{what}(): no column {by!r} to group by; the frame has "
                              f"{sorted(map(str, frame.columns))}")
        return by
    for candidate in ("variant", "action"):
        if candidate in frame.columns:
            return candidate
    return None


def _feedback(data: Any, what: str, field: str, by: str | None) -> tuple["pd.DataFrame", str | None, Any]:
    import pandas as pd

    run = data if _is_run(data) else None
    if run is not None:
        data = feedback_frame(run)
    if not isinstance(data, pd.DataFrame):
        raise ConfigError(f"{what}() takes a feedback DataFrame (see promptlab.charts) or an "
                          f"ExperimentRun, not {type(data).__name__}")
    if field not in data.columns:
        raise ConfigError(f"{what}() needs a {field!r} column; the frame has {sorted(map(str, data.columns))}")
    group = _group_column(data, by, what)
    return _human_latest(data, field), group, run


def rating_distribution(feedback: Any, by: str | None = None, title: str | None = None) -> "go.Figure":
    """Counts of Positive and Negative ratings per variant (or per action), stacked.

    Takes a feedback frame (see the module docstring) or a run. ``by`` names the group column
    (default ``variant``, else ``action``, else one group "all").
    """
    import plotly.graph_objects as go

    frame, group, run = _feedback(feedback, "rating_distribution", "rating", by)
    group_title = (group or "all").capitalize()
    fig = _figure(title or f"Ratings per {group or 'run'}", group_title, "Ratings", barmode="stack",
                  legend_title_text="Rating", legend_traceorder="normal")
    frame = frame.assign(_group=frame[group].astype(str) if group else "all")
    if frame.empty:
        return _no_data(fig, "no ratings yet")
    unknown = sorted(set(frame["rating"]) - set(RATING_COLORS))
    if unknown:
        raise ConfigError(f"rating_distribution(): ratings must be 'Positive' or 'Negative', got {unknown}")
    groups = _labels(frame, "_group", run if group == "variant" else None)
    counts = frame.groupby(["_group", "rating"]).size()
    for rating in RATING_COLORS:
        ys = [int(counts.get((g, rating), 0)) for g in groups]
        fig.add_trace(go.Bar(x=groups, y=ys, name=rating, marker_color=RATING_COLORS[rating], text=ys,
                             textposition="inside",
                             hovertemplate=f"%{{x}}: %{{y}} {rating.lower()}<extra></extra>"))
    _category_order(fig, groups)
    return fig


def issue_tags(feedback: Any, by: str | None = None, per_group: bool = True,
               title: str | None = None) -> "go.Figure":
    """How often each issue tag was given, most frequent first; one bar per variant (or action)
    within each tag when ``per_group`` (coloured as in every other chart).

    Takes a feedback frame with an ``issue`` column (see the module docstring) or a run.
    """
    import plotly.graph_objects as go

    frame, group, run = _feedback(feedback, "issue_tags", "issue", by)
    fig = _figure(title or "Issue tags", "Issue", "Times tagged", barmode="group",
                  legend_title_text=(group or "").capitalize())
    if frame.empty:
        return _no_data(fig, "no issue tags yet")
    totals = frame["issue"].value_counts()
    tags = sorted(totals.index, key=lambda t: (-int(totals[t]), str(t)))
    if group and per_group:
        frame = frame.assign(_group=frame[group].astype(str))
        groups = _labels(frame, "_group", run if group == "variant" else None)
        colors = palette(groups)
        counts = frame.groupby(["_group", "issue"]).size()
        for g in groups:
            ys = [int(counts.get((g, t), 0)) for t in tags]
            fig.add_trace(go.Bar(x=tags, y=ys, name=g, marker_color=colors[g],
                                 hovertemplate=f"{g} · %{{x}}: %{{y}}<extra></extra>"))
    else:
        ys = [int(totals[t]) for t in tags]
        fig.add_trace(go.Bar(x=tags, y=ys, name="all", marker_color=COLORS[0], showlegend=False,
                             hovertemplate="%{x}: %{y}<extra></extra>"))
    _category_order(fig, tags)
    return fig


# -- pairwise ---------------------------------------------------------------------------------


def pairwise(run_or_summary: Any, title: str | None = None) -> "go.Figure":
    """Pairwise win / tie / loss counts per variant as stacked horizontal bars.

    Takes a run or ``run.summary()`` (columns ``wins``, ``ties``, ``losses``: human preferences
    recorded with ``lab.feedback.prefer``). With none recorded, the figure says so.
    """
    import plotly.graph_objects as go

    summary = _frame(run_or_summary, "summary", "pairwise", ("wins", "ties", "losses"))
    fig = _figure(title or "Pairwise preferences", "Comparisons", "Variant", barmode="stack",
                  legend_title_text="Outcome", legend_traceorder="normal")
    labels = _labels(summary, None, run_or_summary)
    table = {label: [_count(summary.loc[label, k]) if label in summary.index else 0
                     for k in ("wins", "ties", "losses")] for label in labels}
    if not any(sum(v) for v in table.values()):
        return _no_data(fig, "no pairwise comparisons yet")
    for i, outcome in enumerate(("wins", "ties", "losses")):
        xs = [table[label][i] for label in labels]
        fig.add_trace(go.Bar(y=labels, x=xs, orientation="h", name=outcome,
                             marker_color=OUTCOME_COLORS[outcome], text=[x or "" for x in xs],
                             textposition="inside",
                             hovertemplate=f"%{{y}}: %{{x}} {outcome}<extra></extra>"))
    _category_order(fig, labels, axis="y")
    fig.update_yaxes(autorange="reversed")
    return fig


# -- latency and cost -------------------------------------------------------------------------


def _distribution(run_or_cells: Any, column: str, what: str, title: str, y_title: str,
                  fmt: Any, exclude_cached: bool, empty_text: str) -> "go.Figure":
    import plotly.graph_objects as go

    from .experiments.stats import summarize_numbers

    cells = _frame(run_or_cells, "cells", what, ("variant", column))
    fig = _figure(title, "Variant", y_title, showlegend=False)
    fig.update_layout(margin=dict(t=90))
    if cells.empty:
        return _no_data(fig, empty_text)
    if "status" in cells.columns:
        cells = cells[cells["status"] == "done"]
    if exclude_cached and "cached" in cells.columns:
        # a cache hit's latency is the store's, not the model's (as in run.summary())
        cells = cells[~cells["cached"].fillna(False).astype(bool)]
    labels = _labels(cells, "variant", run_or_cells)
    colors = palette(labels)
    p50s, p95s, shown = [], [], []
    for label in labels:
        values = [v for v in (_num(x) for x in cells.loc[cells["variant"].astype(str) == label, column])
                  if v is not None]
        summary = summarize_numbers(values)
        if not values:
            fig.add_annotation(x=label, y=0, text="no data", showarrow=False, yanchor="bottom",
                               font=dict(color=NO_DATA_COLOR), name=f"no-data:{label}")
            continue
        fig.add_trace(go.Box(y=values, x=[label] * len(values), name=label, marker_color=colors[label],
                             boxpoints="all", jitter=0.35, pointpos=0, marker=dict(size=5, opacity=0.55),
                             line=dict(width=1.5), hoverinfo="y"))
        shown.append(label)
        p50s.append(summary["p50"])
        p95s.append(summary["p95"])
        fig.add_annotation(x=label, y=1.0, yref="paper", yanchor="bottom", showarrow=False,
                           text=f"p50 {fmt(summary['p50'])} · p95 {fmt(summary['p95'])} · n={summary['n']}",
                           font=dict(size=11), name=f"percentiles:{label}")
    if not shown:
        return _no_data(fig, empty_text)
    mark = dict(symbol="line-ew-open", size=40, color="#333333", line=dict(width=2, color="#333333"))
    fig.add_trace(go.Scatter(x=shown, y=p95s, mode="markers", name="p95", marker=mark,
                             hovertemplate="%{x} p95: %{y}<extra></extra>"))
    # the box draws the median already; this trace carries the p50 values for readers of the data
    fig.add_trace(go.Scatter(x=shown, y=p50s, mode="markers", name="p50", visible="legendonly", marker=mark))
    _category_order(fig, labels)
    return fig


def latency(run_or_cells: Any, title: str | None = None) -> "go.Figure":
    """Latency per variant: a box with every cell as a point, the p95 as a bar mark, and
    "p50 · p95 · n" written above. Errors and cache hits are left out (as in ``run.summary()``).

    Takes a run or ``run.cells()`` (columns ``variant``, ``latency_ms``; ``status``, ``cached``).
    """
    return _distribution(run_or_cells, "latency_ms", "latency", title or "Latency per variant",
                         "Latency (ms)", lambda v: f"{v:,.0f} ms", True, "no latencies yet")


def cost(run_or_cells: Any, title: str | None = None) -> "go.Figure":
    """Cost per generation per variant (box + points, p50/p95 noted), in US dollars.

    Takes a run or ``run.cells()`` (columns ``variant``, ``cost_usd``). Cells whose model has no
    known price have no cost and are left out.
    """
    return _distribution(run_or_cells, "cost_usd", "cost", title or "Cost per generation",
                         "Cost (USD)", _usd, False, "no costs known (no price for these models)")


def _usd(value: float) -> str:
    if value == 0:
        return "$0"
    return f"${value:.2g}" if value < 0.01 else f"${value:,.4f}"


# -- evaluators -------------------------------------------------------------------------------


def evaluator_columns(summary: "pd.DataFrame") -> list[str]:
    """The evaluator-mean columns of ``run.summary()``: the numeric ones it does not always have."""
    import pandas as pd

    return [c for c in summary.columns
            if c not in SUMMARY_COLUMNS and (pd.api.types.is_numeric_dtype(summary[c]) or summary[c].isna().all())]


def evaluator_means(run_or_summary: Any, evaluators: Sequence[str] | None = None,
                    title: str | None = None) -> "go.Figure":
    """Mean score (0-1) of each evaluator, one bar per variant within each evaluator.

    Takes a run or ``run.summary()``; ``evaluators`` picks columns (default: every column that
    is not one of :data:`SUMMARY_COLUMNS`).
    """
    import plotly.graph_objects as go

    summary = _frame(run_or_summary, "summary", "evaluator_means", list(evaluators or ()))
    names = list(evaluators) if evaluators is not None else evaluator_columns(summary)
    fig = _figure(title or "Evaluator means", "Evaluator", "Mean score", barmode="group",
                  legend_title_text="Variant")
    labels = _labels(summary, None, run_or_summary)
    if not names or not labels:
        return _no_data(fig, "no evaluator scores")
    colors = palette(labels)
    for label in labels:
        ys = [_num(summary.loc[label, n]) if label in summary.index else None for n in names]
        fig.add_trace(go.Bar(x=names, y=ys, name=label, marker_color=colors[label],
                             text=[f"{y:.2f}" if y is not None else "—" for y in ys], textposition="outside",
                             hovertemplate=f"{label} · %{{x}}: %{{y:.3f}}<extra></extra>"))
    _category_order(fig, names)
    fig.update_yaxes(range=[0, 1.12])
    return fig


def scores_scatter(run_or_side_by_side: Any, evaluator: str, a: str = "A", b: str = "B",
                   title: str | None = None, jitter: float = 0.02, seed: int = 0) -> "go.Figure":
    """Head to head: ``evaluator``'s score of variant ``a`` (x) against ``b`` (y), row by row,
    with the diagonal (points above it: ``b`` scored higher). Points that would sit on top of
    each other are spread by a small deterministic jitter; hovering shows the true scores.

    Takes a run or ``run.to_pandas()`` (columns ``<evaluator>_<a>`` and ``<evaluator>_<b>``).
    """
    import numpy as np
    import plotly.graph_objects as go

    col_a, col_b = f"{evaluator}_{a}", f"{evaluator}_{b}"
    frame = _frame(run_or_side_by_side, "to_pandas", "scores_scatter", (col_a, col_b))
    fig = _figure(title or f"{evaluator}: {a} vs {b}", f"{a} score", f"{b} score", showlegend=False)
    if frame.empty:
        return _no_data(fig, "no rows yet")
    pairs = [(_num(x), _num(y), row) for x, y, row in
             zip(frame[col_a], frame[col_b], frame["row"] if "row" in frame else range(len(frame)))]
    pairs = [(x, y, row) for x, y, row in pairs if x is not None and y is not None]
    if not pairs:
        return _no_data(fig, f"no rows with {evaluator} scores for both {a} and {b}")
    xs = np.array([p[0] for p in pairs])
    ys = np.array([p[1] for p in pairs])
    seen: dict[tuple[float, float], int] = {}
    for x, y in zip(xs, ys):
        seen[(x, y)] = seen.get((x, y), 0) + 1
    tied = np.array([seen[(x, y)] > 1 for x, y in zip(xs, ys)])
    rng = np.random.default_rng(seed)
    jx = np.where(tied, rng.uniform(-jitter, jitter, len(xs)), 0.0)
    jy = np.where(tied, rng.uniform(-jitter, jitter, len(ys)), 0.0)
    low = min(0.0, float(xs.min()), float(ys.min()))
    high = max(1.0, float(xs.max()), float(ys.max()))
    fig.add_trace(go.Scatter(x=[low, high], y=[low, high], mode="lines", name="equal",
                             line=dict(color="#999999", dash="dash"), hoverinfo="skip"))
    b_higher, a_higher = int((ys > xs).sum()), int((xs > ys).sum())
    colors = palette([a, b])
    point_colors = [colors[b] if y > x else colors[a] if x > y else "#666666" for x, y in zip(xs, ys)]
    fig.add_trace(go.Scatter(
        x=(xs + jx).tolist(), y=(ys + jy).tolist(), mode="markers", name="rows",
        marker=dict(size=9, color=point_colors, opacity=0.75, line=dict(width=0.5, color="white")),
        customdata=[[row, x, y] for (x, y, row) in pairs],
        hovertemplate=f"row %{{customdata[0]}}<br>{a}: %{{customdata[1]:.3g}}<br>"
                      f"{b}: %{{customdata[2]:.3g}}<extra></extra>"))
    fig.add_annotation(x=0, y=1.0, xref="paper", yref="paper", showarrow=False, align="left",
                       xanchor="left", yanchor="bottom", name="counts",
                       text=f"{b} higher: {b_higher} · {a} higher: {a_higher} · "
                            f"equal: {len(pairs) - a_higher - b_higher} (of {len(pairs)} rows)")
    fig.update_layout(margin=dict(t=90))
    pad = (high - low) * 0.05
    fig.update_xaxes(range=[low - pad, high + pad])
    fig.update_yaxes(range=[low - pad, high + pad], scaleanchor="x", scaleratio=1)
    return fig


# -- static export ----------------------------------------------------------------------------

_PNG_HELP = ("PNG export needs kaleido>=1 and a Chromium browser: `pip install 'kaleido>=1'` and, on "
             "Debian/Ubuntu, `apt-get install -y chromium` (kaleido finds it on PATH; set BROWSER_PATH "
             "to use another Chrome/Chromium). Offline machines cannot use `plotly_get_chrome`, which "
             "downloads Chrome. Interactive HTML (fig.write_html) needs neither.")


def leaderboard(run_or_ranking: Any, title: str | None = None) -> "go.Figure":
    """Bradley-Terry leaderboard from side-by-side preferences: each variant's probability of
    beating a variant of average strength, with its bootstrap interval, best on top.
    Takes an ExperimentRun (``run.ranking()``) or a ``Ranking``."""
    from .experiments.ranking import Ranking, leaderboard_figure

    ranking = run_or_ranking.ranking() if _is_run(run_or_ranking) else run_or_ranking
    if not isinstance(ranking, Ranking):
        raise ConfigError(f"leaderboard() takes a run or a Ranking (pl.stats.bradley_terry), "
                          f"not {type(run_or_ranking).__name__}")
    return leaderboard_figure(ranking, title=title)


def to_png(fig: "go.Figure", path: str | os.PathLike[str], width: int = 900, height: int = 500,
           scale: float = 1.0) -> str:
    """Write ``fig`` as a PNG file through kaleido and return the path.

    >>> to_png(ratings(run), "ratings.png", width=800, height=450)
    'ratings.png'

    Raises ConfigError, saying what to install, when kaleido or a Chromium browser is missing.
    """
    import importlib.metadata
    import importlib.util

    import plotly.io as pio

    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"to_png: {name} must be a positive number of pixels, got {value!r}")
    if importlib.util.find_spec("kaleido") is None:
        raise ConfigError(f"kaleido is not installed. {_PNG_HELP}")
    version = importlib.metadata.version("kaleido")
    if int(version.split(".")[0]) < 1:
        raise ConfigError(f"kaleido {version} is too old. {_PNG_HELP}")
    target = os.fspath(path)
    try:
        pio.write_image(fig, target, format="png", width=width, height=height, scale=scale)
    except RuntimeError as exc:
        # plotly turns kaleido's "no browser" into a RuntimeError telling users to download
        # Chrome; choreographer raises BrowserFailedError when it cannot start one.
        if "Chrome" in str(exc) or "Kaleido" in str(exc) or type(exc).__name__.startswith("Browser"):
            raise ConfigError(f"no usable Chromium browser for PNG export ({type(exc).__name__}). "
                              f"{_PNG_HELP}") from exc
        raise
    return target
