"""The promptlab command line: experiment files, reports and the demo, through Typer's runner."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

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
    assert "contains_any:{expected_contains}" in result.output
    assert "Verdict (primary metric: contains_any:{expected_contains}, baseline A, unit: dataset row)" in result.output
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


def test_a_missing_variable_exits_non_zero_within_the_first_cells_with_the_cause(tmp_path):
    path = experiment_file(tmp_path, actions=[
        {"name": "a", "prompt": "{{task}}: {{q}}", "model": "sim:extractive"},
        {"name": "b", "prompt": "{{q}}", "model": "sim:extractive"}])
    db = tmp_path / "bad.db"
    result = runner.invoke(app, ["experiment", "run", str(path), "--db", str(db), "--no-progress"])
    assert result.exit_code == 1
    assert "MissingVariablesError: missing template variable: 'task'" in result.output
    assert "The dataset's columns are: q" in result.output and "--resume" in result.output
    with pl.Lab(db) as lab:
        [run] = lab.experiments.runs("cli-exp")
        assert run.status == "failed" and len(run.cells()) < 12  # within the first few cells
    listed = runner.invoke(app, ["runs", "--db", str(db)])
    assert listed.exit_code == 0 and run.guid in listed.output and "failed" in listed.output


def test_report_of_an_unknown_run_names_the_store_it_searched(tmp_path):
    result = runner.invoke(app, ["report", "no-such-run", "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 2 and "searched sqlite:///" in result.output and "promptlab runs" in result.output


def test_killed_run_resumes_from_the_cli_without_redoing_done_cells(tmp_path):
    slow = {"sim": {"latency_ms": 150}}
    path = experiment_file(tmp_path, concurrency=4, actions=[
        {"name": "a", "prompt": "{{q}}", "model": "sim:echo", "extra_body": slow},
        {"name": "b", "prompt": "B {{q}}", "model": "sim:echo", "extra_body": slow}])
    rows = [json.dumps({"q": f"parcel {i}", "expected_contains": "parcel"}) for i in range(60)]
    (tmp_path / "rows.jsonl").write_text("\n".join(rows))
    db = tmp_path / "kill.db"
    command = [str(Path(sys.executable).with_name("promptlab")), "experiment", "run", str(path), "--db", str(db),
               "--no-progress"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    with pl.Lab(db) as lab:
        while True:
            runs = lab.experiments.runs() if lab.store.list_experiments() else []
            if runs and len(runs[0].cells()) >= 20:
                break
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()[1][-2000:]
            time.sleep(0.05)
        proc.kill()
        proc.wait()
        [run] = lab.experiments.runs()
        done_before = set(run.cells().query("status == 'done'").generation_guid)
        assert run.status == "interrupted"  # its process is gone: never "running" forever
    resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Status: done" in resumed.stdout and run.guid in resumed.stdout
    with pl.Lab(db) as lab:
        [again] = lab.experiments.runs()
        cells = again.cells()
        assert again.guid == run.guid and len(cells) == 120 and set(cells.status) == {"done"}
        assert set(cells.attempts) == {1} and done_before <= set(cells.generation_guid)
        assert lab.store.count_generations() == 120  # nothing generated twice


def gate_file(tmp_path, challenger_prompt: str):
    """40 rows whose expected word is in the question: the baseline echoes it (passes), the
    challenger answers ``challenger_prompt``."""
    (tmp_path / "gate.jsonl").write_text("\n".join(
        json.dumps({"q": f"Question {i} about refunds", "expected_contains": "refunds"}) for i in range(40)))
    spec = {"name": "gate", "dataset": "gate.jsonl", "primary": "contains_any:{expected_contains}",
            "actions": [{"name": "base", "prompt": "{{q}}", "model": "sim:echo"},
                        {"name": "new", "prompt": challenger_prompt, "model": "sim:echo"}],
            "variants": {"A": "base", "B": "new"}, "evaluators": [{"contains": {"key": "expected_contains"}}]}
    path = tmp_path / "gate.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_the_ci_gate_fails_only_on_a_significant_regression_of_the_primary_metric(tmp_path, monkeypatch):
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    cases = [("worse", "Sorry, I cannot help.", {"regression": 1, "inconclusive": 1}),
             ("same", "{{q}}", {"regression": 0, "inconclusive": 1}),
             ("better", "{{q}}", {"regression": 0, "inconclusive": 0})]
    for name, prompt, expected in cases:
        folder = tmp_path / name
        folder.mkdir()
        path = gate_file(folder, prompt)
        if name == "better":  # swap roles: the echoing variant is the challenger
            spec = yaml.safe_load(path.read_text())
            spec["actions"][0]["prompt"] = "Sorry, I cannot help."
            path.write_text(yaml.safe_dump(spec))
        for fail_on, code in expected.items():
            junit = folder / f"{fail_on}.xml"
            result = runner.invoke(app, ["experiment", "run", str(path), "--db", str(folder / "gate.db"),
                                         "--no-progress", "--baseline", "A", "--fail-on", fail_on,
                                         "--junit", str(junit)])
            assert result.exit_code == code, (name, fail_on, result.output)
            xml = junit.read_text()
            assert ('<failure message="' in xml) == bool(code), (name, fail_on, xml)
        assert f"gate {'failed' if code else 'passed'}" in result.output
    text = summary.read_text()  # appended by every run, as GitHub's step summary is
    assert text.count("## promptlab: gate") == 6
    assert "Primary metric: **contains_any:{expected_contains}**" in text and "based on 40 rows (80 outputs)" in text
    assert "Holm-adjusted p" in text and "| 40 (80) |" in text
    bad = runner.invoke(app, ["experiment", "run", str(path), "--db", str(tmp_path / "x.db"), "--fail-on", "maybe"])
    assert bad.exit_code == 2 and "--fail-on must be one of regression, inconclusive" in bad.output


def test_summary_md_writes_a_fresh_file(tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    path = gate_file(tmp_path, "Sorry, I cannot help.")
    target = tmp_path / "summary.md"
    target.write_text("old content")
    result = runner.invoke(app, ["experiment", "run", str(path), "--db", str(tmp_path / "g.db"), "--no-progress",
                                 "--summary-md", str(target)])
    assert result.exit_code == 0, result.output  # no --fail-on: no gate
    text = target.read_text()
    assert "old content" not in text and "gate: no gate" in text and "worse" in text
