"""A/B experiments (the seed's "A/B Experiments"), online and offline.

Online: one endpoint, two (or more) actions; each call picks a variant, sticky per user or
session, and the generation records which::

    exp = lab.experiments.create("tone", action_a="writer", action_b="writer-v2", split=0.5)
    r = lab.experiments.prompt(exp.guid, {"task": ..., "content": ...}, ext_user_id="u-1")
    r.variant   # "A" or "B"

Offline: every dataset row through every variant, with evaluators and statistics::

    run = lab.experiments.run(exp, "data/support.jsonl", evaluators=[contains("refund")])
    run.summary(); run.significance(); run.to_pandas()
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import random
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

from ..errors import ConfigError, InvalidInputError, NotFoundError
from ..generations import Generation
from ..store import utcnow
from . import evaluators
from .runner import Cell, Runner, RunStats, cells_to_run, plan_cells, split_row, validate_shard
from .summary import ExperimentRun

if TYPE_CHECKING:  # pragma: no cover
    from ..lab import Lab

__all__ = ["Experiments", "Experiment", "Variant", "ExperimentRun", "RunStats", "assign_variant",
           "evaluators"]


@dataclass(frozen=True)
class Variant:
    label: str
    action: str  # action name
    action_guid: str
    weight: float
    environment: str | None = None


@dataclass(frozen=True)
class Experiment:
    guid: str
    name: str
    variants: list[Variant]
    description: str | None = None
    created_at: datetime | None = None

    @property
    def labels(self) -> list[str]:
        return [v.label for v in self.variants]


def assign_variant(experiment_guid: str, variants: Sequence[Variant], sticky_key: str | None,
                   rng: random.Random | None = None) -> Variant:
    """Pick a variant by weight: a stable hash of ``sticky_key`` (the same user or session always
    gets the same variant, in every process), or a random draw when there is no key."""
    if sticky_key is not None:
        digest = hashlib.sha256(f"{experiment_guid}:{sticky_key}".encode()).digest()
        point = int.from_bytes(digest[:8], "big") / 2**64
    else:
        point = (rng or random).random()
    total = sum(v.weight for v in variants)
    edge = 0.0
    for variant in variants:
        edge += variant.weight / total
        if point < edge:
            return variant
    return variants[-1]


def _variant_specs(action_a: str | None, action_b: str | None, split: float,
                   variants: Any) -> list[dict[str, Any]]:
    """Normalise the ways of naming variants into [{label, action, weight, environment}]."""
    if variants is None:
        if not action_a or not action_b:
            raise ConfigError("name two actions (action_a=, action_b=) or pass variants=")
        if not 0 < split < 1:
            raise ConfigError(f"split must be between 0 and 1 (B's share of traffic), not {split!r}")
        return [dict(label="A", action=action_a, weight=1 - split), dict(label="B", action=action_b, weight=split)]
    specs = []
    items = variants.items() if isinstance(variants, Mapping) else enumerate(variants)
    for key, value in items:
        if isinstance(value, str):
            spec = dict(label=str(key) if isinstance(variants, Mapping) else chr(65 + key), action=value, weight=1.0)
        elif isinstance(value, Mapping):
            spec = dict(value)
            spec.setdefault("label", str(key) if isinstance(variants, Mapping) else chr(65 + key))
            spec.setdefault("weight", 1.0)
        elif isinstance(value, (tuple, list)) and len(value) == 2:
            spec = dict(label=str(key), action=value[0], weight=value[1])
        else:
            raise ConfigError(f"variant {key!r}: give an action name, (action, weight) or a dict")
        if "action" not in spec:
            raise ConfigError(f"variant {spec['label']!r} names no action")
        if not isinstance(spec["weight"], (int, float)) or spec["weight"] <= 0:
            raise ConfigError(f"variant {spec['label']!r}: weight must be a positive number")
        specs.append(spec)
    labels = [s["label"] for s in specs]
    if len(specs) < 2 or len(set(labels)) != len(labels):
        raise ConfigError(f"an experiment needs two or more variants with distinct labels, got {labels}")
    return specs


def iter_rows(lab: "Lab", dataset: Any) -> Iterator[dict[str, Any]]:
    """A dataset (DataFrame, list of dicts, or a JSONL/CSV/Parquet path) as {input, expected}
    rows, one at a time, so a large dataset is never copied whole."""
    if isinstance(dataset, (str, os.PathLike)):
        loaded = lab.data.import_dataset(dataset)
        records: Iterable[Any] = getattr(loaded, "rows", loaded)
    elif hasattr(dataset, "to_dict") and hasattr(dataset, "columns"):
        records = (row._asdict() for row in dataset.itertuples(index=False)) if _plain_columns(dataset) \
            else dataset.to_dict("records")
    elif isinstance(dataset, Iterable) and not isinstance(dataset, (str, bytes, Mapping)):
        records = dataset
    else:
        raise InvalidInputError(f"a dataset is a DataFrame, a list of dicts or a file path, "
                                f"not {type(dataset).__name__}")
    for number, record in enumerate(records, start=1):
        if not isinstance(record, Mapping):
            raise InvalidInputError(f"dataset rows must be dicts, got {type(record).__name__}", row=number)
        clean = {str(k): (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()}
        inputs, expected = split_row(clean)
        yield {"input": inputs, "expected": expected}


def _plain_columns(frame: Any) -> bool:
    return all(isinstance(c, str) and c.isidentifier() for c in frame.columns)


def load_rows(lab: "Lab", dataset: Any) -> list[dict[str, Any]]:
    """``iter_rows`` as a list; an empty dataset is an error."""
    rows = list(iter_rows(lab, dataset))
    if not rows:
        raise InvalidInputError("the dataset has no rows")
    return rows


class Experiments:
    """``lab.experiments``."""

    def __init__(self, lab: "Lab"):
        self._lab = lab
        self._rng = random.Random()

    # definitions ----------------------------------------------------------------------------

    def create(self, name: str, action_a: str | None = None, action_b: str | None = None,
               split: float = 0.5, *, variants: Any = None, description: str | None = None) -> Experiment:
        """An A/B experiment between two actions (``split`` is B's share of online traffic), or
        N variants: ``variants={"A": "writer", "B": ("writer-v2", 2.0), "C": {...}}``."""
        specs = _variant_specs(action_a, action_b, split, variants)
        rows = []
        for spec in specs:
            action = self._lab.actions.get(spec["action"], version="latest")
            environment = spec.get("environment")
            rows.append(dict(label=spec["label"], action_guid=action.guid, weight=float(spec["weight"]),
                             environment=environment))
        row = self._lab.store.create_experiment(name, description, rows)
        return self._experiment(row)

    def get(self, experiment: str | Experiment) -> Experiment:
        key = experiment.guid if isinstance(experiment, Experiment) else experiment
        row = self._lab.store.find_experiment(key)
        if row is None:
            raise NotFoundError("experiment", key)
        return self._experiment(row)

    def list(self) -> list[Experiment]:
        return [self._experiment(r) for r in self._lab.store.list_experiments()]

    def _experiment(self, row: Mapping[str, Any]) -> Experiment:
        variants = []
        for v in row["variants"]:
            action_row = self._lab.store.find_action(v["action_guid"])
            variants.append(Variant(label=v["label"], action=action_row["name"], action_guid=v["action_guid"],
                                    weight=v["weight"], environment=v["environment"]))
        return Experiment(guid=row["guid"], name=row["name"], variants=variants,
                          description=row["description"], created_at=row["created_at"])

    # online ---------------------------------------------------------------------------------

    def prompt(self, experiment: str | Experiment, input: Any = None, *, ext_user_id: str | None = None,
               session: str | None = None, **prompt_options: Any) -> Generation:
        """Run one A/B generation: pick a variant (sticky by ext_user_id, else session) and run its
        action. Inputs may carry the union of all variants' variables."""
        call, async_mode = self._online_call(experiment, input, ext_user_id, session, prompt_options)
        return self._lab._loop.run(self._lab.actions._start(call, async_mode))

    async def aprompt(self, experiment: str | Experiment, input: Any = None, *,
                      ext_user_id: str | None = None, session: str | None = None,
                      **prompt_options: Any) -> Generation:
        call, async_mode = self._online_call(experiment, input, ext_user_id, session, prompt_options)
        return await self._lab._loop.arun(self._lab.actions._start(call, async_mode))

    def _online_call(self, experiment, input, ext_user_id, session, options):
        allowed = {"cache", "metadata_filter", "files", "messages", "streaming", "async_mode"}
        unknown = set(options) - allowed
        if unknown:
            raise ConfigError(f"unknown option(s) for experiments.prompt: {sorted(unknown)}")
        exp = self.get(experiment)
        variant = assign_variant(exp.guid, exp.variants, ext_user_id or session, self._rng)
        call = self._lab.actions._prepare(
            variant.action_guid, input, variant.environment, None, options.get("cache", False), ext_user_id,
            session, options.get("metadata_filter"), options.get("files"), options.get("messages"),
            options.get("streaming", False))
        call.experiment, call.variant = exp.guid, variant.label
        return call, options.get("async_mode", False)

    # offline --------------------------------------------------------------------------------

    def start(self, experiment: str | Experiment, dataset: Any, repeats: int = 1, *,
              evaluators: Sequence[Any] = (), dataset_name: str | None = None) -> ExperimentRun:
        """Record a run (its dataset rows and the pinned action versions) without running it.
        Shards in several processes then run it with ``run(exp, resume=run.guid, shard=(k, n))``."""
        exp = self.get(experiment)
        if not isinstance(repeats, int) or repeats < 1:
            raise ConfigError("repeats must be a positive integer")
        rows = iter_rows(self._lab, dataset)
        first = next(rows, None)
        if first is None:
            raise InvalidInputError("the dataset has no rows")
        pinned = {}
        for v in exp.variants:
            # Offline, a variant without an environment tries the action's newest version: the
            # one a prompt engineer just wrote. Online traffic goes to deployed versions.
            version = "latest" if v.environment is None else None
            action = self._lab.actions.get(v.action_guid, version=version, environment=v.environment)
            pinned[v.label] = {"action_guid": action.guid, "action": action.name, "version": action.version,
                               "model": action.model}
        if dataset_name is None and isinstance(dataset, (str, os.PathLike)):
            dataset_name = os.path.basename(os.fspath(dataset))
        config = {"variants": pinned, "labels": exp.labels, "dataset": dataset_name,
                  "evaluators": [evaluators_name(e) for e in evaluators]}
        run = self._lab.store.create_run(exp.guid, repeats, config, itertools.chain([first], rows))
        return ExperimentRun(self._lab, run["guid"])

    def run(self, experiment: str | Experiment, dataset: Any = None, repeats: int = 1, *,
            concurrency: int = 16, rate_limit: Mapping[str, Any] | None = None,
            evaluators: Sequence[Any] = (), resume: Any = None, retry_errors: bool = False,
            shard: tuple[int, int] | None = None, cache: bool = False, streaming: bool = False,
            progress: bool = True, max_attempts: int = 6) -> ExperimentRun:
        """Run every dataset row through every variant ``repeats`` times; returns the run.

        ``resume``: a run (or its GUID) to continue: finished cells are skipped (the dataset is
        read back from the store, so it may be omitted). ``retry_errors``: rerun only the failed
        cells of ``resume``. ``shard=(k, n)``: run only this process's part of the cells.
        ``rate_limit``: ``{"rpm": ..., "tpm": ...}`` for every provider, or per provider name.
        """
        return self._lab._loop.run(self._arun(experiment, dataset, repeats, concurrency, rate_limit,
                                              evaluators, resume, retry_errors, shard, cache, streaming,
                                              progress, max_attempts))

    async def arun(self, experiment: str | Experiment, dataset: Any = None, repeats: int = 1, *,
                   concurrency: int = 16, rate_limit: Mapping[str, Any] | None = None,
                   evaluators: Sequence[Any] = (), resume: Any = None, retry_errors: bool = False,
                   shard: tuple[int, int] | None = None, cache: bool = False, streaming: bool = False,
                   progress: bool = True, max_attempts: int = 6) -> ExperimentRun:
        """Async twin of ``run``."""
        return await self._lab._loop.arun(self._arun(experiment, dataset, repeats, concurrency, rate_limit,
                                                     evaluators, resume, retry_errors, shard, cache,
                                                     streaming, progress, max_attempts))

    async def _arun(self, experiment, dataset, repeats, concurrency, rate_limit, evaluators_, resume,
                    retry_errors, shard, cache, streaming, progress, max_attempts) -> ExperimentRun:
        exp = self.get(experiment)
        shard = validate_shard(shard)
        if retry_errors and resume is None:
            raise ConfigError("retry_errors reruns the failed cells of an earlier run: pass resume=<run>")
        if resume is None:
            if dataset is None:
                raise ConfigError("pass a dataset (or resume= an earlier run)")
            run = self.start(exp, dataset, repeats, evaluators=evaluators_)
        else:
            run = ExperimentRun(self._lab, resume.guid if isinstance(resume, ExperimentRun) else resume)
            if run.experiment_guid != exp.guid:
                raise ConfigError(f"run {run.guid} belongs to another experiment")
            if dataset is not None and sum(1 for _ in iter_rows(self._lab, dataset)) != run.n_rows:
                raise ConfigError(f"the dataset has a different number of rows than run {run.guid} "
                                  f"({run.n_rows}); resume with the same dataset or none")
        record = self._lab.store.get_run(run.guid)
        variants = {label: self._lab.actions.get(spec["action_guid"], version=spec["version"])
                    for label, spec in record["config"]["variants"].items()}
        labels = record["config"]["labels"]
        plan = _CellPlan(self._lab.store, run.guid, record["n_rows"], labels, record["repeats"], shard,
                         resume is not None, retry_errors)
        runner = Runner(self._lab, record, {"guid": exp.guid, "name": exp.name}, variants,
                        concurrency=concurrency, rate_limit=rate_limit, evaluators=evaluators_, cache=cache,
                        streaming=streaming, max_attempts=max_attempts, progress=progress)
        self._lab.store.update_run(run.guid, status="running")
        try:
            stats = await runner.execute(plan.cells_with_rows(), plan.count())
        except BaseException:
            self._lab.store.update_run(run.guid, status="failed", stats=runner.stats.as_dict())
            raise
        complete = len(self._lab.store.cell_statuses(run.guid)) >= record["n_rows"] * record["repeats"] * len(labels)
        self._lab.store.update_run(run.guid, status="done" if complete else "partial", stats=stats.as_dict(),
                                   finished_at=utcnow())
        return ExperimentRun(self._lab, run.guid, stats=stats)

    def get_run(self, guid: str) -> ExperimentRun:
        return ExperimentRun(self._lab, guid)

    def runs(self, experiment: str | Experiment | None = None) -> list[ExperimentRun]:
        guid = self.get(experiment).guid if experiment is not None else None
        return [ExperimentRun(self._lab, r["guid"]) for r in self._lab.store.list_runs(guid)]


class _CellPlan:
    """The cells a run still has to do, streamed from the store a batch of rows at a time, so
    memory does not grow with the dataset."""

    def __init__(self, store: Any, run_guid: str, n_rows: int, labels: Sequence[str], repeats: int,
                 shard: tuple[int, int] | None, resume: bool, retry_errors: bool, batch: int = 1000):
        self.store, self.run_guid, self.n_rows = store, run_guid, n_rows
        self.labels, self.repeats, self.shard = labels, repeats, shard
        self.resume, self.retry_errors, self.batch = resume, retry_errors, batch

    def _cells(self, first: int, last: int) -> Iterator[Cell]:
        statuses = self.store.cell_statuses(self.run_guid, first, last) if self.resume else {}
        return cells_to_run(plan_cells(range(first, last + 1), self.labels, self.repeats, self.shard),
                            statuses, self.resume, self.retry_errors)

    def count(self) -> int:
        return sum(sum(1 for _ in self._cells(first, min(first + self.batch, self.n_rows) - 1))
                   for first in range(0, self.n_rows, self.batch))

    def cells_with_rows(self) -> Iterator[tuple[Cell, Mapping[str, Any]]]:
        for rows in self.store.iter_run_rows(self.run_guid, self.batch):
            by_index = {row["row_index"]: row for row in rows}
            for cell in self._cells(rows[0]["row_index"], rows[-1]["row_index"]):
                yield cell, by_index[cell.row_index]


def evaluators_name(fn: Any) -> str:
    return evaluators.evaluator_name(fn) if not isinstance(fn, evaluators.LLMJudge) else fn.name



