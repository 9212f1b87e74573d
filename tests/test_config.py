"""Experiment files: validation, evaluator specs, and idempotent setup of actions/experiments."""

from __future__ import annotations

import json

import pytest
import yaml

import promptlab as pl
from promptlab.experiments.config import build_evaluator, load_experiment_file, run_experiment_file


def write_file(tmp_path, **overrides):
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps({"q": f"What is {i}? It is refund {i}.",
                                                               "expected_contains": "refund"})
                                                   for i in range(6)))
    spec = {
        "name": "exp",
        "actions": [{"name": "a", "prompt": "{{q}}", "model": "sim:extractive", "system": "Be brief."},
                    {"name": "b", "prompt": "{{q}}", "model": "sim:extractive", "system": "Be thorough."}],
        "variants": {"A": "a", "B": "b"},
        "dataset": "rows.jsonl",
        "evaluators": [{"contains": {"key": "expected_contains"}}, "json_valid",
                       {"llm_judge": {"action": "judge", "model": "sim:judge"}}],
    }
    spec.update(overrides)
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_running_a_file_sets_up_actions_and_stores_scores(lab, tmp_path):
    run = run_experiment_file(lab, write_file(tmp_path), progress=False)
    summary = run.summary()
    assert list(summary.index) == ["A", "B"] and summary.loc["A", "n"] == 6
    assert {"contains_any:{expected_contains}", "json_valid", "llm_judge"} <= set(summary.columns)
    assert lab.actions.get("judge").model == "sim:judge"
    scores = lab.store.run_feedback(run.guid)
    assert len(scores) == 6 * 2 * 3 and {s["source"] for s in scores} == {"evaluator"}


def test_rerunning_reuses_unchanged_actions_and_versions_changed_ones(lab, tmp_path):
    path = write_file(tmp_path)
    run_experiment_file(lab, path, progress=False)
    run_experiment_file(lab, path, progress=False)
    assert lab.actions.get("a", version="latest").version == 1
    spec = yaml.safe_load(path.read_text())
    spec["actions"][0]["system"] = "Be very brief."
    path.write_text(yaml.safe_dump(spec))
    run = run_experiment_file(lab, path, progress=False)
    assert lab.actions.get("a", version="latest").version == 2 and run.config["variants"]["A"]["version"] == 2
    assert len(lab.experiments.runs("exp")) == 3


def test_changed_variants_need_a_new_experiment_name(lab, tmp_path):
    run_experiment_file(lab, write_file(tmp_path), progress=False)
    with pytest.raises(pl.ConfigError, match="rename it"):
        run_experiment_file(lab, write_file(tmp_path, variants={"A": "b", "B": "a"}), progress=False)


def test_invalid_files_are_clear_errors(tmp_path):
    with pytest.raises(pl.ConfigError, match="variants"):
        load_experiment_file(write_file(tmp_path, variants=None))
    with pytest.raises(pl.ConfigError, match="repeats"):
        load_experiment_file(write_file(tmp_path, repeats=0))
    (tmp_path / "bad.yaml").write_text("name: [unclosed")
    with pytest.raises(pl.ConfigError, match="not valid YAML"):
        load_experiment_file(tmp_path / "bad.yaml")
    with pytest.raises(pl.ConfigError, match="cannot read"):
        load_experiment_file(tmp_path / "missing.yaml")


def test_build_evaluator_from_specs():
    assert build_evaluator({"contains": ["refund", "sorry"]})("We will refund you", {}).value == 1.0
    assert build_evaluator({"length": {"max_words": 2}})("one two three", {}).passed is False
    assert build_evaluator("json_valid")('{"a": 1}', {}).passed is True
    with pytest.raises(pl.ConfigError, match="unknown evaluator 'bleu'"):
        build_evaluator("bleu")
    with pytest.raises(pl.ConfigError, match="length"):
        build_evaluator({"length": {"max_lines": 3}})
