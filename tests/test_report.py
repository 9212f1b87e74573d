"""The HTML report: one offline file with the verdicts, the numbers and escaped user text."""

from __future__ import annotations

import re

import pytest
from markupsafe import escape

import promptlab as pl
from promptlab.experiments.evaluators import contains
from promptlab.experiments.stats import wilson_interval
from promptlab.report import report_from_guid, write_report

XSS = "<script>alert(1)</script>"
ROWS = [{"message": f"Order #{i:02d} arrived damaged" + (", refund please" if i % 3 else "") + f" {XSS}"}
        for i in range(22)]


def make_run(lab, rows=ROWS, evaluators=(), name="support tone"):
    lab.actions.create("concise", system="Be concise.", prompt="Customer: {{message}}", model="sim:extractive")
    lab.actions.create("warm", system="Be warm.", prompt="Customer says: {{message}}", model="sim:echo")
    exp = lab.experiments.create(name, action_a="concise", action_b="warm")
    return lab.experiments.run(exp, rows, concurrency=4, evaluators=list(evaluators), progress=False)


def rate(lab, run, label, pattern):
    cells = run.cells()
    for guid, positive in zip(cells[cells.variant == label].generation_guid, pattern):
        lab.feedback.log(guid, rating="Positive" if positive else "Negative")


def chart_names(html):
    return re.findall(r'data-chart="([^"]+)"', html)


def test_report_has_verdicts_numbers_charts_and_one_offline_plotly(lab, tmp_path):
    run = make_run(lab, evaluators=[contains("refund")])
    rate(lab, run, "A", [1, 0, 0, 0] * 3)   # 3 of 12 positive
    rate(lab, run, "B", [1] * 11 + [0])     # 11 of 12
    cells = run.cells()
    lab.feedback.log(cells.generation_guid[0], issue="Vague")
    path = write_report(run, tmp_path / "report.html")
    html = open(path, encoding="utf-8").read()

    # verdicts, for human ratings and for the evaluator
    for metric in ("rating", "contains:refund"):
        assert str(escape(run.significance(metric=metric).verdict)) in html
    assert "B is better" in run.significance(metric="rating").verdict
    # the summary table's numbers, formatted
    summary = run.summary()
    iv = wilson_interval(3, 12)
    assert f"25% ({100 * iv.low:.0f}%–{100 * iv.high:.0f}%)" in html
    assert f"{summary.loc['B', 'tokens']:,}" in html
    assert f"{summary.loc['A', 'latency_p50_ms']:,.0f} ms" in html
    assert f"{summary.loc['A', 'contains:refund']:.2f}" in html
    # the header
    assert run.guid in html and "concise v1" in html and "sim:extractive" in html
    assert "22 rows × 1 repeat" in html and "44 requests" in html
    # charts, and plotly.js exactly once, inline
    assert chart_names(html) == ["ratings", "rating_distribution", "issue_tags", "evaluator_means",
                                 "scores_scatter:contains:refund", "latency"]
    assert html.count('class="plotly-graph-div"') == 6
    assert html.count("plotly.js v") == 1
    assert not re.search(r"<script[^>]*\bsrc=", html) and not re.search(r"<link[^>]*\bhref=", html)


def test_report_escapes_user_text(lab, tmp_path):
    run = make_run(lab, rows=ROWS[:3], name=f"tone {XSS}")
    html = open(write_report(run, tmp_path / "r.html", title="<b>Q4</b> & more"), encoding="utf-8").read()
    assert XSS not in html and "alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Order #00 arrived damaged" in html  # the input itself is shown
    assert "<title>&lt;b&gt;Q4&lt;/b&gt; &amp; more</title>" in html
    assert "tone &lt;script&gt;" in html


def test_report_samples_the_first_20_rows(lab, tmp_path):
    run = make_run(lab)
    html = open(write_report(run, tmp_path / "r.html"), encoding="utf-8").read()
    assert "The first 20 of 22 rows" in html
    assert "Order #19 arrived" in html and "Order #20 arrived" not in html


def test_report_of_an_unrated_run_says_not_enough_data(lab, tmp_path):
    run = make_run(lab, rows=ROWS[:4])
    html = open(write_report(run, tmp_path / "r.html"), encoding="utf-8").read()
    assert "No human ratings yet" in html
    assert "Not enough data" in html and str(escape(run.significance().verdict)) in html
    assert chart_names(html) == ["latency"]
    assert "no cost chart" in html  # the simulator costs nothing


def test_report_of_a_run_not_yet_run(lab, tmp_path):
    lab.actions.create("a", prompt="{{m}}", model="sim:echo")
    lab.actions.create("b", prompt="B {{m}}", model="sim:echo")
    exp = lab.experiments.create("later", action_a="a", action_b="b")
    run = lab.experiments.start(exp, [{"m": "x"}, {"m": "y"}])
    html = open(write_report(run, tmp_path / "r.html"), encoding="utf-8").read()
    assert f"This run is {run.status}: 0 of 4 cells recorded" in html
    assert chart_names(html) == []


def test_report_from_guid_and_errors(lab, tmp_path):
    run = make_run(lab, rows=ROWS[:2])
    path = report_from_guid(lab, run.guid, tmp_path / "by-guid.html")
    assert run.guid in open(path, encoding="utf-8").read()
    with pytest.raises(pl.NotFoundError):
        report_from_guid(lab, "no-such-run", tmp_path / "x.html")
    with pytest.raises(pl.ConfigError, match="cannot write the report to .*missing-dir"):
        write_report(run, tmp_path / "missing-dir" / "r.html")
    with pytest.raises(pl.ConfigError, match="takes an ExperimentRun"):
        write_report(run.guid, tmp_path / "r.html")


def test_a_variant_with_no_successful_cell_renders_and_says_why(lab, tmp_path):
    lab.actions.create("ok", prompt="Customer: {{message}}", model="sim:extractive")
    lab.actions.create("broken", prompt="Customer: {{message}} {{tone}}", model="sim:extractive")
    exp = lab.experiments.create("half broken", action_a="ok", action_b="broken")
    run = lab.experiments.run(exp, ROWS, concurrency=4, evaluators=[contains("refund")], progress=False,
                              fail_fast_after=None)
    assert run.status == "done_with_errors"
    for chart in (pl.charts.ratings, pl.charts.latency, pl.charts.cost, pl.charts.evaluator_means):
        chart(run)  # a variant without outputs is drawn as "no data", never an error
    pl.charts.scores_scatter(run, "contains:refund")
    html = open(write_report(run, tmp_path / "r.html")).read()
    assert "This run is done_with_errors" in html and "<h2>Errors</h2>" in html
    assert "MissingVariablesError" in html and "Every cell of B failed" in html
