"""A standalone HTML report of an experiment run: one file, works offline, safe to share.

::

    from promptlab.report import write_report
    write_report(run, "report.html")                 # or: promptlab report RUN_GUID -o report.html

The page has the run's header (experiment, run GUID, dataset, date, variants with action,
version and model, repeats, runner statistics), the significance verdict for human ratings and
for each evaluator, the per-variant summary table, the charts of :mod:`promptlab.charts`, and
the first rows of outputs side by side. plotly.js is inlined once, so the file opens without a
network; every piece of user text (inputs, outputs, names) is HTML-escaped by Jinja2.

``report_context`` gathers what the page shows (it reads the run from its store);
``render_report`` turns that into HTML and is pure.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import jinja2
from markupsafe import Markup

from . import charts
from .charts import _num
from .errors import ConfigError
from .experiments.stats import format_p

if TYPE_CHECKING:  # pragma: no cover
    from .experiments.analysis import Analysis
    import pandas as pd

    from .experiments.summary import ExperimentRun
    from .lab import Lab

__all__ = ["write_report", "report_from_guid", "report_context", "render_report", "SAMPLE_ROWS"]

SAMPLE_ROWS = 20
MAX_TEXT = 1200
# side-by-side columns that belong to a variant, as ``<prefix>_<label>`` (see run.to_pandas())
_VARIANT_PREFIXES = ("output", "error", "latency_ms", "cost_usd", "tokens", "rating", "generation")


# -- formatting (pure) ------------------------------------------------------------------------


def fmt_int(value: Any) -> str:
    x = _num(value)
    return "—" if x is None else f"{int(round(x)):,}"


def fmt_ms(value: Any) -> str:
    x = _num(value)
    return "—" if x is None else f"{x:,.0f} ms"


def fmt_usd(value: Any) -> str:
    x = _num(value)
    if x is None:
        return "unknown"
    if x == 0:
        return "$0.00"
    return f"${x:.2g}" if x < 0.01 else f"${x:,.4f}"


def fmt_pct(value: Any) -> str:
    x = _num(value)
    return "—" if x is None else f"{100 * x:.0f}%"


def fmt_score(value: Any) -> str:
    x = _num(value)
    return "—" if x is None else f"{x:.2f}"


def fmt_p(value: Any) -> str:
    """promptlab's one p-value format (``stats.format_p``)."""
    return format_p(_num(value))


def fmt_time(value: Any) -> str:
    if not isinstance(value, datetime):
        return "—" if value is None else str(value)
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%d %H:%M UTC")


def clip(text: Any, limit: int = MAX_TEXT) -> str:
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters)"


# -- what the page shows ----------------------------------------------------------------------


@dataclass
class ReportContext:
    """Everything the report shows, as plain values (figures are plotly Figures)."""

    title: str
    experiment: dict[str, Any]
    run: dict[str, Any]
    variants: list[dict[str, Any]]
    stats: dict[str, Any] | None
    verdicts: list[dict[str, Any]]
    summary_columns: list[str]
    summary_rows: list[dict[str, Any]]
    figures: list[tuple[str, Any]]
    notes: list[str]
    sample_columns: list[tuple[str, str]]
    sample_rows: list[dict[str, Any]]
    sample_total: int
    evaluators: list[str] = field(default_factory=list)
    generated_at: str = ""
    errors: list[dict[str, Any]] = field(default_factory=list)  # failed cells by variant and type


def _verdicts(analysis: "Analysis") -> list[dict[str, Any]]:
    out = []
    for c in analysis.comparisons:
        tone = "unknown" if not c.enough else ("significant" if c.significant else "neutral")
        if c.metric == "rating":
            what = "Human ratings"
        elif c.metric == "preference":
            what = "Human preferences (side by side)"
        elif c.metric in ("latency_ms", "cost_usd"):
            what = {"latency_ms": "Latency", "cost_usd": "Cost"}[c.metric]
        else:
            what = f"Evaluator “{c.metric}”" + (" (pass rate)" if c.kind == "binary" else " (mean score)")
        role = "primary metric" if c.primary else (f"secondary: Holm-adjusted over {c.family_size} comparisons"
                                                   if c.p_adjusted is not None else "secondary")
        details = f"{c.design} {c.test} {fmt_p(c.p_value)}"
        if c.p_adjusted is not None:
            details += f" · Holm-adjusted {fmt_p(c.p_adjusted)}"
        details += f" · unit: {'dataset row' if c.unit == 'rows' else c.unit} · {c.n_units} units, {c.n_outputs} " \
                   f"{'preferences' if c.kind == 'preference' else 'outputs'}"
        out.append(dict(metric=c.metric, what=f"{what} · {role}", a=c.baseline, b=c.challenger, verdict=c.verdict,
                        tone=tone, details=details, winner=c.winner, primary=c.primary))
    return out


def _summary_table(summary: "pd.DataFrame", labels: Sequence[str], variants: Mapping[str, Mapping[str, Any]],
                   evaluators: Sequence[str]) -> tuple[list[str], list[dict[str, Any]]]:
    show_pairs = any(_num(summary.loc[label, c]) for label in summary.index
                     for c in ("wins", "ties", "losses") if c in summary.columns)
    columns = ["Variant", "Action · model", "Cells", "Errors", "Latency p50", "Latency p95", "Tokens",
               "Cost", "Rated", "Positive (95% CI)"]
    if show_pairs:
        columns.append("Wins / ties / losses")
    columns += list(evaluators)
    rows = []
    colors = charts.palette(labels)
    for label in labels:
        if label not in summary.index:
            continue
        s = summary.loc[label]
        spec = variants.get(label, {})
        rated = int(_num(s.get("rated")) or 0)
        if rated:
            positive = (f"{fmt_pct(s.get('positive_rate'))} ({fmt_pct(s.get('positive_ci_low'))}–"
                        f"{fmt_pct(s.get('positive_ci_high'))})")
        else:
            positive = "no ratings yet"
        cells = [label, (f"{spec.get('action', '?')} v{spec.get('version', '?')}", spec.get("model") or "—"),
                 fmt_int(s.get("n")), fmt_int(s.get("errors")), fmt_ms(s.get("latency_p50_ms")),
                 fmt_ms(s.get("latency_p95_ms")), fmt_int(s.get("tokens")), fmt_usd(s.get("cost_usd")),
                 fmt_int(rated), positive]
        if show_pairs:
            cells.append(f"{fmt_int(s.get('wins'))} / {fmt_int(s.get('ties'))} / {fmt_int(s.get('losses'))}")
        cells += [fmt_score(s.get(name)) for name in evaluators]
        rows.append(dict(label=label, color=colors[label], cells=cells))
    return columns, rows


def _sample(frame: "pd.DataFrame", labels: Sequence[str], evaluators: Sequence[str],
            limit: int) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    per_variant = {f"{p}_{label}" for p in (*_VARIANT_PREFIXES, *evaluators) for label in labels}
    inputs = [c for c in frame.columns if c not in per_variant and c not in ("row", "repeat")]
    colors = charts.palette(labels)
    rows = []
    for record in frame.head(limit).to_dict("records"):
        sides = []
        for label in labels:
            error = record.get(f"error_{label}")
            scores = [(name, fmt_score(record.get(f"{name}_{label}"))) for name in evaluators
                      if f"{name}_{label}" in record]
            rating = record.get(f"rating_{label}")
            sides.append(dict(
                label=label, color=colors[label], output=clip(record.get(f"output_{label}")),
                error=clip(error) if isinstance(error, str) and error else "",
                rating=rating if isinstance(rating, str) else None,
                latency=fmt_ms(record.get(f"latency_ms_{label}")), scores=scores))
        row_no = record.get("row")
        rows.append(dict(
            row=int(row_no) + 1 if _num(row_no) is not None else "",
            repeat=int(record.get("repeat") or 0),
            inputs=[(name, clip(record.get(name), 600)) for name in inputs if record.get(name) is not None],
            sides=sides))
    return [(label, colors[label]) for label in labels], rows


def report_context(run: "ExperimentRun", title: str | None = None,
                   sample_rows: int = SAMPLE_ROWS, analysis_options: Mapping[str, Any] | None = None) -> ReportContext:
    """Read everything the report shows from the run's store (figures included).
    ``analysis_options``: ``run.analysis()``'s keywords (primary, baseline, cluster)."""
    lab = run.lab
    record = run.record
    experiment = lab.experiments.get(record["experiment_guid"])
    config = record.get("config") or {}
    labels = list(run.labels)
    variants = config.get("variants") or {}
    summary = run.summary()
    evaluators = charts.evaluator_columns(summary)
    for item in config.get("evaluators") or []:
        name = item["name"] if isinstance(item, Mapping) else item
        if name not in evaluators and name in summary.columns:
            evaluators.append(name)
    cells = run.cells()
    side_by_side = run.to_pandas()
    feedback = charts.feedback_frame(run)

    notes: list[str] = []
    figures: list[tuple[str, Any]] = []
    if int(sum(_num(v) or 0 for v in summary.get("rated", []))):
        figures.append(("ratings", charts.ratings(summary)))
    else:
        notes.append("No human ratings yet: rate outputs with pl.widgets.compare(lab, run) or "
                     "lab.feedback.log(generation_guid, rating=\"Positive\").")
    human = feedback[feedback["source"].fillna("human") == "human"] if "source" in feedback else feedback
    if "rating" in human and human["rating"].notna().any():
        figures.append(("rating_distribution", charts.rating_distribution(feedback)))
    if "issue" in human and human["issue"].notna().any():
        figures.append(("issue_tags", charts.issue_tags(feedback)))
    if any(_num(summary.loc[label, c]) for label in summary.index for c in ("wins", "ties", "losses")
           if c in summary.columns):
        figures.append(("pairwise", charts.pairwise(summary)))
        if len(labels) > 2:
            figures.append(("leaderboard", charts.leaderboard(run)))
    if evaluators:
        figures.append(("evaluator_means", charts.evaluator_means(summary, evaluators)))
        if len(labels) >= 2:
            for name in evaluators:
                figures.append((f"scores_scatter:{name}",
                                charts.scores_scatter(side_by_side, name, labels[0], labels[1])))
    if not cells.empty and cells["latency_ms"].notna().any():
        figures.append(("latency", charts.latency(cells)))
    if not cells.empty and (cells["cost_usd"].fillna(0) > 0).any():
        figures.append(("cost", charts.cost(cells)))
    elif not cells.empty and cells["cost_usd"].notna().any():
        notes.append("Every generation cost $0 (the simulator, or free models): no cost chart.")

    status, detail = run.status, run.status_detail
    expected_cells = record["n_rows"] * record["repeats"] * len(labels)
    if status != "done":
        notes.insert(0, f"This run is {status}: {len(cells)} of {expected_cells} cells recorded"
                        f"{' (' + detail + ')' if detail else ''}. Numbers cover the successful cells only.")
    errors = run.errors().to_dict("records")
    summary_columns, summary_rows = _summary_table(summary, labels, variants, evaluators)
    sample_columns, sample = _sample(side_by_side, labels, evaluators, sample_rows)
    variant_list = [dict(label=label, color=charts.palette(labels)[label], **dict(variants.get(label, {})))
                    for label in labels]
    return ReportContext(
        title=title or f"{experiment.name} — experiment report",
        experiment=dict(name=experiment.name, guid=experiment.guid, description=experiment.description),
        errors=errors,
        run=dict(guid=record["guid"], status=status, n_rows=record["n_rows"], repeats=record["repeats"],
                 dataset=config.get("dataset"), created_at=fmt_time(record.get("created_at")),
                 finished_at=fmt_time(record.get("finished_at")), cells=len(cells), expected_cells=expected_cells),
        variants=variant_list, stats=record.get("stats"), verdicts=_verdicts(run.analysis(**{k: v for k, v in (analysis_options or {}).items() if v is not None})),
        summary_columns=summary_columns, summary_rows=summary_rows, figures=figures, notes=notes,
        sample_columns=sample_columns, sample_rows=sample, sample_total=len(side_by_side),
        evaluators=list(evaluators), generated_at=fmt_time(datetime.now(timezone.utc)),
    )


# -- rendering (pure) -------------------------------------------------------------------------

_TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="promptlab {{ version }}">
<title>{{ c.title }}</title>
<style>
  :root { --ink: #1f2933; --muted: #616e7c; --line: #e4e7eb; --soft: #f5f7fa; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
         background: #fff; }
  main { max-width: 1180px; margin: 0 auto; padding: 28px 24px 60px; }
  h1 { font-size: 26px; margin: 0 0 4px; }
  h2 { font-size: 19px; margin: 36px 0 12px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
  .sub { color: var(--muted); margin: 0 0 18px; }
  code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
  dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; margin: 0; }
  dl.meta dt { color: var(--muted); }
  dl.meta dd { margin: 0; }
  .chip { display: inline-block; min-width: 22px; padding: 0 7px; border-radius: 10px; color: #fff;
          font-weight: 600; text-align: center; font-size: 13px; }
  table { border-collapse: collapse; width: 100%; font-size: 14px; }
  table.summary { font-size: 13px; }
  table.summary th, table.summary td { padding: 6px 8px; }
  th, td { padding: 7px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
  th { background: var(--soft); font-weight: 600; white-space: nowrap; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
  .verdict { border-left: 5px solid #9aa5b1; background: var(--soft); padding: 10px 14px; margin: 10px 0;
             border-radius: 3px; }
  .verdict.significant { border-color: #009E73; background: #eefaf5; }
  .verdict.unknown { border-color: #cbd2d9; }
  .verdict .what { font-size: 13px; color: var(--muted); text-transform: uppercase; letter-spacing: .03em; }
  .verdict .line { font-size: 16px; margin: 2px 0; }
  .verdict .details { font-size: 13px; color: var(--muted); }
  .note { background: #fffbea; border: 1px solid #f7e6a1; padding: 8px 12px; border-radius: 3px; margin: 8px 0; }
  .charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 18px; }
  .chart { border: 1px solid var(--line); border-radius: 4px; padding: 4px; min-height: 300px; overflow: hidden; }
  .scroll { overflow-x: auto; }
  .nowrap { white-space: nowrap; }
  .sample td { max-width: 480px; }
  .inputs div { margin-bottom: 4px; }
  .inputs .k { color: var(--muted); font-size: 12px; }
  .text { white-space: pre-wrap; word-break: break-word; }
  .err { color: #b42318; }
  .facts { font-size: 12px; color: var(--muted); margin-top: 4px; }
  .rating-Positive { color: #00784f; font-weight: 600; }
  .rating-Negative { color: #b23c00; font-weight: 600; }
  footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
</style>
<script type="text/javascript">window.PlotlyConfig = {MathJaxConfig: 'local'};</script>
<script type="text/javascript">{{ plotlyjs }}</script>
</head>
<body>
<main>
<h1>{{ c.title }}</h1>
<p class="sub">Experiment <strong>{{ c.experiment.name }}</strong>{% if c.experiment.description %} — {{ c.experiment.description }}{% endif %}</p>

<dl class="meta">
  <dt>Run</dt><dd class="mono">{{ c.run.guid }}</dd>
  <dt>Status</dt><dd>{{ c.run.status }} ({{ c.run.cells }} of {{ c.run.expected_cells }} cells)</dd>
  <dt>Dataset</dt><dd>{{ c.run.dataset or "(in memory)" }} · {{ c.run.n_rows }} rows × {{ c.run.repeats }} repeat{{ "s" if c.run.repeats != 1 }}</dd>
  <dt>Started</dt><dd>{{ c.run.created_at }}{% if c.run.finished_at != "—" %} · finished {{ c.run.finished_at }}{% endif %}</dd>
  <dt>Variants</dt><dd>{% for v in c.variants %}<div><span class="chip" style="background: {{ v.color }}">{{ v.label }}</span>
      {{ v.action }} v{{ v.version }} · <code>{{ v.model }}</code></div>{% endfor %}</dd>
  {% if c.evaluators %}<dt>Evaluators</dt><dd>{{ c.evaluators | join(", ") }}</dd>{% endif %}
  {% if c.stats %}<dt>Runner</dt><dd>{{ c.stats.requests }} requests · {{ c.stats.retries }} retries ·
      {{ c.stats.rate_limited }} rate-limited (429) · {{ c.stats.errors }} errors ·
      concurrency {{ c.stats.concurrency_max }}{% if c.stats.concurrency_lowest != c.stats.concurrency_max %} (backed off to {{ c.stats.concurrency_lowest }}){% endif %}
      · {{ "%.1f" | format(c.stats.seconds) }} s</dd>{% endif %}
</dl>

{% for note in c.notes %}<div class="note">{{ note }}</div>{% endfor %}

{% if c.errors %}<h2>Errors</h2>
<div class="scroll"><table class="summary">
<thead><tr><th>Variant</th><th>Error</th><th>Cells</th><th>Example</th></tr></thead>
<tbody>{% for e in c.errors %}<tr><td>{{ e.variant }}</td><td>{{ e.error_type }}</td><td>{{ e["count"] }}</td>
<td>{{ e.example }}</td></tr>{% endfor %}</tbody>
</table></div>{% endif %}

<h2>Is the difference real?</h2>
{% for v in c.verdicts %}
<div class="verdict {{ v.tone }}">
  <div class="what">{{ v.what }} · {{ v.b }} vs {{ v.a }}</div>
  <div class="line">{{ v.verdict }}</div>
  <div class="details">{{ v.details }}</div>
</div>
{% endfor %}

<h2>Summary</h2>
<div class="scroll"><table class="summary">
  <thead><tr>{% for col in c.summary_columns %}<th>{{ col }}</th>{% endfor %}</tr></thead>
  <tbody>{% for row in c.summary_rows %}<tr>
    <td><span class="chip" style="background: {{ row.color }}">{{ row.cells[0] }}</span></td>
    <td class="nowrap">{{ row.cells[1][0] }}<div><code>{{ row.cells[1][1] }}</code></div></td>
    {% for cell in row.cells[2:] %}<td class="num">{{ cell }}</td>{% endfor %}
  </tr>{% endfor %}</tbody>
</table></div>

{% if charts %}<h2>Charts</h2>
<div class="charts">{% for name, html in charts %}<div class="chart" data-chart="{{ name }}">{{ html }}</div>{% endfor %}</div>{% endif %}

<h2>Outputs side by side</h2>
<p class="sub">The first {{ c.sample_rows | length }} of {{ c.sample_total }} rows{% if c.sample_total > c.sample_rows | length %}; run.to_pandas() has them all{% endif %}.</p>
<table class="sample">
  <thead><tr><th>#</th><th>Input</th>{% for label, color in c.sample_columns %}<th><span class="chip" style="background: {{ color }}">{{ label }}</span> output</th>{% endfor %}</tr></thead>
  <tbody>{% for row in c.sample_rows %}<tr>
    <td class="num">{{ row.row }}{% if row.repeat %}<div class="facts">repeat {{ row.repeat }}</div>{% endif %}</td>
    <td class="inputs">{% for name, value in row.inputs %}<div><div class="k">{{ name }}</div><div class="text">{{ value }}</div></div>{% endfor %}</td>
    {% for side in row.sides %}<td>
      {% if side.error %}<div class="text err">{{ side.error }}</div>{% else %}<div class="text">{{ side.output }}</div>{% endif %}
      <div class="facts">{{ side.latency }}{% if side.rating %} · <span class="rating-{{ side.rating }}">{{ side.rating }}</span>{% endif %}{% for name, score in side.scores %} · {{ name }} {{ score }}{% endfor %}</div>
    </td>{% endfor %}
  </tr>{% endfor %}</tbody>
</table>

<footer>Generated by promptlab {{ version }} on {{ c.generated_at }}. Charts are interactive (hover, zoom); this file needs no network.</footer>
</main>
</body>
</html>
"""

_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=False)


def render_report(context: ReportContext) -> str:
    """The report page for ``context`` as one HTML string (plotly.js inlined once)."""
    import plotly.offline

    from . import __version__

    rendered = []
    for number, (name, fig) in enumerate(context.figures):
        html = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{number}",
                           default_height=420, config={"displaylogo": False, "responsive": True})
        # plotly escapes "<" inside the figure JSON, so user text in labels cannot close the script
        rendered.append((name, Markup(html)))
    return _ENV.from_string(_TEMPLATE).render(
        c=context, charts=rendered, version=__version__, plotlyjs=Markup(plotly.offline.get_plotlyjs()))


# -- entry points -----------------------------------------------------------------------------


def write_report(run: "ExperimentRun", path: str | os.PathLike[str] = "report.html",
                 title: str | None = None, analysis_options: Mapping[str, Any] | None = None) -> str:
    """Write the run's standalone HTML report to ``path`` and return the path.

    >>> write_report(run, "report.html", title="Support tone, November")
    'report.html'
    """
    from .experiments.summary import ExperimentRun

    if not isinstance(run, ExperimentRun):
        raise ConfigError(f"write_report() takes an ExperimentRun (lab.experiments.get_run(guid)), "
                          f"not {type(run).__name__}")
    html = render_report(report_context(run, title=title, analysis_options=analysis_options))
    target = os.fspath(path)
    try:
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(html)
    except OSError as exc:
        raise ConfigError(f"cannot write the report to {target!r}: {exc.strerror or exc}") from None
    return target


def report_from_guid(lab: "Lab", run_guid: str, path: str | os.PathLike[str] = "report.html",
                     title: str | None = None) -> str:
    """``write_report`` for the run with this GUID in ``lab`` (NotFoundError when there is none)."""
    if not isinstance(run_guid, str) or not run_guid.strip():
        raise ConfigError(f"run_guid must be a run's GUID, got {run_guid!r}")
    return write_report(lab.experiments.get_run(run_guid.strip()), path, title)

