"""Experiment files: actions + experiment + dataset + evaluators in one YAML, validated.

::

    name: support-tone
    actions:
      - {name: reply-concise, system: "Be concise.", prompt: "{{customer_message}}", model: sim:extractive}
      - {name: reply-warm, system: "Be warm.", prompt: "{{customer_message}}", model: sim:extractive}
    variants: {A: reply-concise, B: reply-warm}     # or action_a/action_b (+ split)
    dataset: support_tickets.jsonl                  # relative to this file
    repeats: 1
    concurrency: 16
    evaluators:
      - contains: {key: expected_contains}
      - length: {max_words: 80}
    primary: contains                               # the headline verdict and the CI gate's metric
    baseline: A                                     # challengers are compared with it
    cluster: conversation_id                        # optional: rows sharing it are one unit
    report: report.html

Running it creates each action (or a new version when its definition changed), creates the
experiment (or reuses it when its variants are the same), and runs it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .._files import read_yaml_mapping, validation_problems
from ..actions import ActionSpec
from ..errors import ConfigError
from . import evaluators as ev

if TYPE_CHECKING:  # pragma: no cover
    from ..lab import Lab
    from .summary import ExperimentRun

FACTORIES = ev.FACTORIES


class ExperimentFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str | None = None
    actions: list[ActionSpec] = Field(default_factory=list)
    action_a: str | None = None
    action_b: str | None = None
    split: float = 0.5
    variants: dict[str, Any] | None = None
    dataset: str
    repeats: int = Field(default=1, ge=1)
    concurrency: int = Field(default=16, ge=1)
    rate_limit: dict[str, Any] | None = None
    cache: bool = False
    evaluators: list[Any] = Field(default_factory=list)
    report: str | None = None
    primary: str | None = None  # the metric of the headline verdict and the CI gate
    baseline: str | None = None  # the variant the others are compared with
    cluster: str | None = None  # a dataset column whose rows form one statistical unit

    @model_validator(mode="after")
    def _names_variants(self):
        if self.variants is None and not (self.action_a and self.action_b):
            raise ValueError("name the variants: 'variants: {A: action, B: action}' or action_a/action_b")
        return self


def build_evaluator(spec: Any) -> Any:
    """``"json_valid"``, ``{"contains": ["refund"]}``, ``{"length": {"max_words": 80}}``..."""
    if isinstance(spec, str):
        name, args = spec, None
    elif isinstance(spec, dict) and len(spec) == 1:
        [(name, args)] = spec.items()
    else:
        raise ConfigError(f"an evaluator is a name or a one-key mapping, not {spec!r}")
    factory = FACTORIES.get(name)
    if factory is None:
        raise ConfigError(f"unknown evaluator {name!r}; known: {sorted(FACTORIES)}")
    try:
        if args is None:
            return factory()
        if isinstance(args, dict):
            return factory(**args)
        if isinstance(args, list):
            return factory(*args)
        return factory(args)
    except TypeError as exc:
        raise ConfigError(f"evaluator {name!r}: {exc}") from None


def load_experiment_file(path: str | os.PathLike) -> tuple[ExperimentFile, Path]:
    """Parse and validate an experiment file; returns it and its folder."""
    path = Path(path)
    data = read_yaml_mapping(path, "experiment file")
    try:
        spec = ExperimentFile(**data)
    except ValidationError as exc:
        raise ConfigError(f"invalid experiment file {str(path)!r}: {validation_problems(exc)}") from None
    return spec, path.parent


def run_experiment_file(lab: "Lab", path: str | os.PathLike, progress: bool = True,
                        resume: Any = None) -> "ExperimentRun":
    """Set up the file's actions and experiment, run it, and return the run.

    ``resume``: a run GUID to continue, or True for the latest unfinished run of this
    experiment on this dataset (a new run when there is none)."""
    spec, folder = load_experiment_file(path)
    for action in spec.actions:
        _ensure_action(lab, action)
    evaluators = [build_evaluator(_ensure_judge(lab, e)) for e in spec.evaluators]
    experiment = _ensure_experiment(lab, spec)
    dataset = spec.dataset if os.path.isabs(spec.dataset) else str(folder / spec.dataset)
    return lab.experiments.run(experiment, dataset, repeats=spec.repeats, concurrency=spec.concurrency,
                               rate_limit=spec.rate_limit, evaluators=evaluators, cache=spec.cache,
                               progress=progress, resume=resume,
                               analysis={"primary": spec.primary, "baseline": spec.baseline,
                                         "cluster": spec.cluster})


def _ensure_judge(lab: "Lab", spec: Any) -> Any:
    """``llm_judge: {action: NAME, model: M}`` creates the judge action (the default judge
    prompt on model M) when it does not exist yet; returns the spec without ``model``."""
    if not (isinstance(spec, dict) and isinstance(spec.get("llm_judge"), dict)
            and "model" in spec["llm_judge"]):
        return spec
    args = dict(spec["llm_judge"])
    model = args.pop("model")
    args.setdefault("action", "llm-judge")
    if lab.store.find_action(args["action"]) is None:
        lab.actions.create(args["action"], prompt=ev.DEFAULT_JUDGE_PROMPT, model=model, temperature=0)
    return {"llm_judge": args}


def _ensure_action(lab: "Lab", spec: ActionSpec) -> None:
    fields = spec.model_dump(exclude={"name", "description"}, exclude_none=True)
    if lab.store.find_action(spec.name) is None:
        lab.actions.create(spec.name, description=spec.description, **fields)
        return
    current = lab.actions.get(spec.name, version="latest").to_spec()
    wanted = {"name": spec.name, **({"description": spec.description} if spec.description else {}),
              "model": fields.get("model", lab.default_model), **fields}
    if {k: v for k, v in current.items() if k != "description"} != {k: v for k, v in wanted.items()
                                                                     if k != "description"}:
        lab.actions.update(spec.name, **fields)


def _ensure_experiment(lab: "Lab", spec: ExperimentFile):
    from .. import errors
    from . import _variant_specs

    wanted = [(v["label"], v["action"]) for v in _variant_specs(spec.action_a, spec.action_b, spec.split,
                                                                spec.variants)]
    try:
        existing = lab.experiments.get(spec.name)
    except errors.NotFoundError:
        return lab.experiments.create(spec.name, spec.action_a, spec.action_b, spec.split,
                                      variants=spec.variants, description=spec.description)
    have = [(v.label, v.action) for v in existing.variants]
    if have != wanted:
        raise ConfigError(f"experiment {spec.name!r} already exists with variants {have}; "
                          f"rename it in the file to compare {wanted}")
    return existing
