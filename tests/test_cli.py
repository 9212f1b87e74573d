"""The promptlab command line: experiment files, reports and the demo, through Typer's runner."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

import promptlab as pl
from promptlab.cli import app

runner = CliRunner()


def experiment_file(tmp_path, **overrides):
    (tmp_path / "rows.jsonl").write_text("\n".join(
        json.dumps({"q": f"My parcel {i} is late. Where is my tracking number?", "expected_contains": "tracking"})
        for i in range(12)))
    spec = {"name": "cli-exp",
            "actions": [{"name": "a", "system": "Be concise.", "prompt": "{{q}}", "model": "sim:extractive"},
                        {"name": "b", "system": "Be thorough.", "prompt": "{{q}}", "model": "sim:extractive"}],
            "variants": {"A": "a", "B": "b"}, "dataset": "rows.jsonl",
            "evaluators": [{"contains": {"key": "expected_contains"}}], **overrides}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_experiment_run_prints_the_summary_and_writes_a_report(tmp_path):
    db = tmp_path / "cli.db"
    result = runner.invoke(app, ["experiment", "run", str(experiment_file(tmp_path)), "--db", str(db),
                                 "-o", str(tmp_path / "r.html"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "contains_any:{expected_contains}" in result.output and "Significance (A vs B)" in result.output
    assert (tmp_path / "r.html").stat().st_size > 100_000  # plotly.js inlined: works offline
    with pl.Lab(db) as lab:
        [run] = lab.experiments.runs("cli-exp")
        assert run.guid in result.output and len(run.cells()) == 24
        again = runner.invoke(app, ["report", run.guid, "--db", str(db), "-o", str(tmp_path / "again.html")])
        assert again.exit_code == 0 and (tmp_path / "again.html").exists()


def test_bad_input_is_one_clear_line_and_exit_2(tmp_path):
    result = runner.invoke(app, ["experiment", "run", str(experiment_file(tmp_path, repeats=0)),
                                 "--db", str(tmp_path / "x.db"), "--no-progress"])
    assert result.exit_code == 2 and "error: invalid experiment file" in result.output and "repeats" in result.output
    result = runner.invoke(app, ["report", "no-such-run", "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 2 and "no run 'no-such-run'" in result.output


def test_demo_runs_offline_and_prints_a_generation_row(tmp_path):
    result = runner.invoke(app, ["demo", "--file", str(experiment_file(tmp_path)), "--db", str(tmp_path / "d.db"),
                                 "--report", str(tmp_path / "demo.html")])
    assert result.exit_code == 0, result.output
    assert "not a language model" in result.output and "One row of the generation log" in result.output
    assert (tmp_path / "demo.html").exists()
