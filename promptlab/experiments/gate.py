"""The CI gate: does a run's primary verdict pass? Plus its Markdown summary and JUnit XML.

``promptlab experiment run FILE --baseline A --fail-on regression`` exits 1 only when a challenger
is significantly worse than the baseline on the primary metric (after the Holm correction when
there are several challengers); ``--fail-on inconclusive`` also fails when a primary comparison is
inconclusive or has too little data. Secondary metrics are reported, never gated on.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from ..errors import ConfigError
from .analysis import Analysis, Comparison
from .stats import format_p

FAIL_ON = ("regression", "inconclusive")


def check_fail_on(fail_on: str | None) -> str | None:
    if fail_on is not None and fail_on not in FAIL_ON:
        raise ConfigError(f"--fail-on must be one of {', '.join(FAIL_ON)}, not {fail_on!r}")
    return fail_on


def failures(analysis: Analysis, fail_on: str | None) -> list[Comparison]:
    """The primary comparisons that fail the gate (empty: it passes)."""
    check_fail_on(fail_on)
    if fail_on is None:
        return []
    bad = {"worse"} if fail_on == "regression" else {"worse", "inconclusive", "not_enough_data"}
    return [c for c in analysis.primary if c.outcome in bad]


def _value(c: Comparison, which: str) -> str:
    value = c.baseline_value if which == "baseline" else c.challenger_value
    if value is None:
        return "—"
    if c.kind in ("binary", "preference"):
        return f"{100 * value:.0f}%"
    return f"{value:.4g}"


def markdown_summary(analysis: Analysis, title: str, fail_on: str | None = None) -> str:
    """A GitHub step summary: the gate's result, the primary verdicts, then every comparison with
    its raw and Holm-adjusted p and its unit counts."""
    failed = failures(analysis, fail_on)
    gate = ("no gate (--fail-on not given)" if fail_on is None else
            f"**FAILED** (--fail-on {fail_on}: {len(failed)} primary comparison(s))" if failed else
            f"passed (--fail-on {fail_on})")
    lines = [f"## {title}", "",
             f"Primary metric: **{analysis.primary_metric}** · baseline: **{analysis.baseline}** · "
             f"unit: {'dataset row' if analysis.unit == 'rows' else analysis.unit} · gate: {gate}", ""]
    for c in analysis.primary:
        lines += [f"- {c.verdict}"]
    lines += ["", "| metric | challenger | baseline | challenger value | baseline value | difference (CI) | test | p | "
              "Holm-adjusted p | units (outputs) | outcome |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in analysis.comparisons:
        diff = "—" if c.difference is None else (f"{c.difference:+.3g} ({c.interval.low:+.3g} to "
                                                 f"{c.interval.high:+.3g})")
        adjusted = "— (primary)" if c.primary and c.p_adjusted is None else (
            format_p(c.p_adjusted, c.alpha) if c.p_adjusted is not None else "—")
        lines.append(f"| {c.metric}{' (primary)' if c.primary else ''} | {c.challenger} | {c.baseline} | "
                     f"{_value(c, 'challenger')} | {_value(c, 'baseline')} | {diff} | {c.test} | "
                     f"{format_p(c.p_value, c.alpha)} | {adjusted} | {c.n_units} ({c.n_outputs}) | "
                     f"{c.outcome.replace('_', ' ')} |")
    lines += ["", "Secondary comparisons are Holm-adjusted as one family; the gate looks only at the primary metric."]
    return "\n".join(lines) + "\n"


def junit_xml(analysis: Analysis, suite: str, fail_on: str | None = None) -> str:
    """One test case per comparison; the primary ones that fail the gate are failures, the rest pass
    (with their verdict as system-out)."""
    failed = {id(c) for c in failures(analysis, fail_on)}
    root = ET.Element("testsuite", name=suite, tests=str(len(analysis.comparisons)), failures=str(len(failed)))
    for c in analysis.comparisons:
        case = ET.SubElement(root, "testcase", classname=f"{suite}.{c.metric}",
                             name=f"{c.challenger} vs {c.baseline}" + (" (primary)" if c.primary else ""))
        if id(c) in failed:
            ET.SubElement(case, "failure", message=c.outcome.replace("_", " ")).text = c.verdict
        ET.SubElement(case, "system-out").text = c.verdict
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def exit_code(analysis: Analysis, fail_on: str | None) -> int:
    return 1 if failures(analysis, fail_on) else 0


__all__ = ["failures", "markdown_summary", "junit_xml", "exit_code", "check_fail_on", "FAIL_ON"]
