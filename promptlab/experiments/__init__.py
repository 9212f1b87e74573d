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

import asyncio
import hashlib
import itertools
import math
import os
import random
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

import anyio

from .._twins import async_twin
from ..checks import items, one_of, user_id
from ..errors import ConfigError, InvalidInputError, NotFoundError, RunFailedError
from ..owners import owner_is_dead, process_owner
from ..generations import Generation
from ..store import utcnow
from ..store.values import problem
from . import evaluators
from .evaluators import evaluator_spec, rebuild_evaluator
from .runner import Cell, Runner, RunStats, cells_to_run, check_options, plan_cells, split_row, validate_shard
from .summary import ExperimentRun

if TYPE_CHECKING:
    from .online import OnlineResults  # pragma: no cover
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
    pairs = variants.items() if isinstance(variants, Mapping) else enumerate(items(variants, "variants"))
    for key, value in pairs:
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
        unstorable = problem(clean, "the row")
        if unstorable:
            raise InvalidInputError(unstorable, row=number)
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

    def prompt(self, experiment: str | Experiment | None = None, input: Any = None, *,
               ext_user_id: str | None = None, session: str | None = None,
               experiment_guid: str | None = None, extUserId: str | None = None,  # noqa: N803
               **prompt_options: Any) -> Generation:
        """Run one A/B generation: pick a variant (sticky by ext_user_id, else session) and run its
        action. Inputs may carry the union of all variants' variables. ``variant=`` (a label or
        action) runs that variant instead (manual traffic control). The seed's spellings
        ``experiment_guid=`` and ``extUserId=`` work too::

            lab.experiments.prompt(experiment_guid=exp.guid, input={"topic": ..., "task": ...})
        """
        engine = self._lab.engine
        call, async_mode = self.plan_online(experiment, input, ext_user_id=ext_user_id, session=session,
                                            experiment_guid=experiment_guid, extUserId=extUserId,
                                            **prompt_options)
        return engine.blocking(engine.start(call, async_mode=async_mode))

    async def aprompt(self, experiment: str | Experiment | None = None, input: Any = None, *,
                      ext_user_id: str | None = None, session: str | None = None,
                      experiment_guid: str | None = None, extUserId: str | None = None,  # noqa: N803
                      **prompt_options: Any) -> Generation:
        """Async twin of ``prompt``."""
        engine = self._lab.engine
        call, async_mode = await asyncio.to_thread(self.plan_online, experiment, input, ext_user_id=ext_user_id,
                                                   session=session, experiment_guid=experiment_guid,
                                                   extUserId=extUserId, **prompt_options)
        return await engine.awaiting(engine.start(call, async_mode=async_mode))

    def assign(self, experiment: str | Experiment | None = None, *, ext_user_id: str | None = None,
               session: str | None = None, variant: str | None = None, draw: bool = True,
               experiment_guid: str | None = None) -> tuple[Experiment, Variant]:
        """The experiment and the variant a call gets: assigned by weight, sticky by ext_user_id,
        else session; with neither, a random draw (``draw=False``: the first variant, as the
        formatted prompt shows). ``variant`` (a label, action name or GUID) picks one instead
        (manual traffic control); it must be a variant of the experiment."""
        experiment = one_of(experiment, experiment_guid, "experiment", "experiment_guid")
        if experiment is None:
            raise ConfigError("name the experiment (its GUID or name): experiment= or experiment_guid=")
        exp = self.get(experiment)
        if variant is not None:
            matches = [v for v in exp.variants if variant in (v.label, v.action, v.action_guid)]
            if not matches:
                names = ", ".join(f"{v.label}={v.action}" for v in exp.variants)
                raise InvalidInputError(f"action {variant!r} is not a variant of experiment {exp.name!r} "
                                        f"(variants: {names}); omit it to let the experiment choose")
            return exp, matches[0]
        sticky = ext_user_id or session
        if sticky is None and not draw:
            return exp, exp.variants[0]
        return exp, assign_variant(exp.guid, exp.variants, sticky, self._rng)

    def plan_online(self, experiment: str | Experiment | None = None, input: Any = None, *,
                    ext_user_id: str | None = None, session: str | None = None, variant: str | None = None,
                    experiment_guid: str | None = None, extUserId: str | None = None,  # noqa: N803
                    **options: Any) -> tuple[Any, bool]:
        """Plan one online A/B call: ``(call, async_mode)``. The variant is assigned (sticky by
        ext_user_id, else session) unless ``variant`` names one (a label, action name or GUID:
        manual traffic control)."""
        allowed = {"cache", "metadata_filter", "files", "messages", "streaming", "async_mode"}
        unknown = set(options) - allowed
        if unknown:
            raise ConfigError(f"unknown option(s) for experiments.prompt: {sorted(unknown)}")
        ext_user_id = user_id(ext_user_id, extUserId)
        exp, chosen = self.assign(experiment, experiment_guid=experiment_guid, ext_user_id=ext_user_id,
                                  session=session, variant=variant)
        call = self._lab.engine.plan_sync(
            chosen.action_guid, input, environment=chosen.environment, cache=options.get("cache", False),
            ext_user_id=ext_user_id, session=session, metadata_filter=options.get("metadata_filter"),
            files=options.get("files"), messages=options.get("messages"),
            streaming=options.get("streaming", False), experiment=exp.guid, variant=chosen.label)
        return call, options.get("async_mode", False)

    def results(self, experiment: str | Experiment, *, baseline: str | None = None, alpha: float = 0.05,
                min_n: int = 10) -> "OnlineResults":
        """The online experiment's results so far, safe to read at any time: assignments per
        variant, a sample-ratio-mismatch check against the configured split (shown first when it
        fires), and each challenger's positive-rating rate against the baseline with an
        always-valid p-value and confidence sequence (looking often does not inflate false
        positives).

        >>> print(lab.experiments.results("support-tone"))  # doctest: +SKIP
        No significant difference yet: positive rate B 61% vs A 58%, ...; always-valid p=0.8; ...
        """
        from .online import online_results

        exp = self.get(experiment)
        outcomes = self._lab.store.online_outcomes(exp.guid)
        return online_results(exp.name, outcomes, {v.label: v.weight for v in exp.variants}, baseline=baseline,
                              alpha=alpha, min_n=min_n)

    # offline --------------------------------------------------------------------------------

    def start(self, experiment: str | Experiment, dataset: Any, repeats: int = 1, *,
              evaluators: Sequence[Any] = (), dataset_name: str | None = None,
              analysis: Mapping[str, Any] | None = None) -> ExperimentRun:
        """Record a run (its dataset rows, the pinned action versions and its evaluators) without
        running it. Shards in several processes then run it with
        ``run(exp, resume=run.guid, shard=(k, n))``."""
        exp = self.get(experiment)
        if not isinstance(repeats, int) or repeats < 1:
            raise ConfigError("repeats must be a positive integer")
        recorded = [{"name": evaluators_name(e), "spec": evaluator_spec(e)}
                    for e in evaluators_list(evaluators)]
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
        config = {"variants": pinned, "labels": exp.labels, "dataset": dataset_name, "evaluators": recorded}
        options = check_analysis_options(analysis, exp.labels)
        if options:
            config["analysis"] = options
        if isinstance(dataset, (str, os.PathLike)):
            config["dataset_path"] = os.path.abspath(os.fspath(dataset))
        run = self._lab.store.create_run(exp.guid, repeats, config, itertools.chain([first], rows))
        return ExperimentRun(self._lab, run["guid"])

    def run(self, experiment: str | Experiment, dataset: Any = None, repeats: int = 1, *,
            concurrency: int = 16, rate_limit: Mapping[str, Any] | None = None,
            evaluators: Sequence[Any] = (), resume: Any = None, retry_errors: bool = False,
            shard: tuple[int, int] | None = None, cache: bool = False, streaming: bool = False,
            progress: bool = True, max_attempts: int = 6, attempt_timeout: float | None = None,
            cell_timeout: float | None = 300.0, fail_fast_after: int | None = 5,
            breaker: Mapping[str, Any] | None = None, analysis: Mapping[str, Any] | None = None) -> ExperimentRun:
        """Run every dataset row through every variant ``repeats`` times; returns the run.

        ``resume``: a run (or its GUID) to continue, or ``True`` for the latest unfinished run
        of this experiment (on this dataset, if one is given; a new run when there is none).
        Finished cells are skipped, the dataset is read back from the store and the run's
        recorded evaluators are rebuilt. ``retry_errors``: rerun only the failed cells of
        ``resume``. ``shard=(k, n)``: run only this process's part of the cells. A run is owned
        by one process at a time (a lease renewed by a heartbeat): a second process resuming a
        live run gets RunInProgressError; a killed one's lease expires and is taken over.

        Deadlines: ``attempt_timeout`` seconds per attempt in total (default: the provider's
        ``timeout``), ``cell_timeout`` per cell across its ``max_attempts`` attempts. A circuit
        breaker per provider stops sending when most recent attempts fail to connect, time out or
        get 5xx, probes, and ends the run ``failed`` if the provider stays down (``breaker``:
        options of ``runner.CircuitBreaker``, e.g. ``{"give_up_after": 60}``). When a variant's
        first ``fail_fast_after`` cells all fail the same deterministic way (missing variable,
        unknown model, bad API key), the run stops with RunFailedError naming the cause
        (``fail_fast_after=None``: never).

        Ctrl-C stops it within a second: in-flight requests are cancelled, finished cells are
        kept, the run is ``interrupted`` and ``resume`` completes it. ``rate_limit``:
        ``{"rpm": ..., "tpm": ...}`` for every provider, or per provider name.

        ``analysis``: how the run is judged, recorded with it: ``{"primary": metric, "baseline":
        label, "cluster": column}`` (see ``run.analysis()``).
        """
        engine = self._lab.engine
        options = dict(concurrency=concurrency, rate_limit=rate_limit, cache=cache, streaming=streaming,
                       progress=progress, max_attempts=max_attempts, attempt_timeout=attempt_timeout,
                       cell_timeout=cell_timeout, fail_fast_after=fail_fast_after, breaker=breaker)
        return engine.blocking(self._arun(experiment, dataset, repeats, evaluators, resume, retry_errors,
                                          shard, options, analysis))

    async def arun(self, experiment: str | Experiment, dataset: Any = None, repeats: int = 1, *,
                   concurrency: int = 16, rate_limit: Mapping[str, Any] | None = None,
                   evaluators: Sequence[Any] = (), resume: Any = None, retry_errors: bool = False,
                   shard: tuple[int, int] | None = None, cache: bool = False, streaming: bool = False,
                   progress: bool = True, max_attempts: int = 6, attempt_timeout: float | None = None,
                   cell_timeout: float | None = 300.0, fail_fast_after: int | None = 5,
                   breaker: Mapping[str, Any] | None = None,
                   analysis: Mapping[str, Any] | None = None) -> ExperimentRun:
        """Async twin of ``run``; cancelling the awaiting task interrupts the run."""
        engine = self._lab.engine
        options = dict(concurrency=concurrency, rate_limit=rate_limit, cache=cache, streaming=streaming,
                       progress=progress, max_attempts=max_attempts, attempt_timeout=attempt_timeout,
                       cell_timeout=cell_timeout, fail_fast_after=fail_fast_after, breaker=breaker)
        return await engine.awaiting(self._arun(experiment, dataset, repeats, evaluators, resume,
                                                retry_errors, shard, options, analysis))

    async def _arun(self, experiment, dataset, repeats, evaluators_, resume, retry_errors, shard,
                    options, analysis=None) -> ExperimentRun:
        engine, store = self._lab.engine, self._lab.store
        check_options(**options)  # before anything is recorded
        session = await asyncio.to_thread(self._session, experiment, dataset, repeats, evaluators_, resume,
                                          retry_errors, shard, analysis)
        guid = session.record["guid"]
        try:
            runner = Runner(self._lab, session.record, {"guid": session.experiment.guid,
                                                        "name": session.experiment.name},
                            session.variants, evaluators=session.evaluators, lease=session.lease,
                            cells_per_variant=session.record["n_rows"] * session.record["repeats"], **options)
        except BaseException:
            await engine.io(session.lease.release)
            raise
        await engine.io(store.update_run, guid, status="running", status_detail=None)
        status, detail = "failed", None
        try:
            await runner.execute(session.plan.cells_with_rows(), session.total)
        except RunFailedError as exc:
            exc.run_guid = guid
            detail = str(exc)
            raise
        except asyncio.CancelledError:
            status, detail = "interrupted", (f"interrupted by the user after {runner.stats.cells} cells of this "
                                             f"session; resume to finish")
            raise
        except BaseException as exc:
            detail = f"{type(exc).__name__}: {exc}"
            raise
        else:
            status, detail = await engine.io(self._outcome, session)
        finally:
            # Written even while the run is being cancelled: a run never stays "running".
            with anyio.CancelScope(shield=True):
                await engine.io(store.update_run, guid, status=status, status_detail=detail,
                                stats=runner.stats.as_dict(), finished_at=utcnow())
                await engine.io(session.lease.release)
        return ExperimentRun(self._lab, guid, stats=runner.stats)

    def _session(self, experiment, dataset, repeats, evaluators_, resume, retry_errors, shard,
                 analysis=None) -> "_Session":
        """Everything a runner session needs, read (and the run's lease taken) in a worker thread."""
        exp = self.get(experiment)
        shard = validate_shard(shard)
        if retry_errors and resume in (None, False):
            raise ConfigError("retry_errors reruns the failed cells of an earlier run: pass resume=<run>")
        wanted_latest = resume is True or resume == "latest"
        if wanted_latest:
            previous = self.latest_unfinished(exp, dataset)
            resume = previous.guid if previous is not None else None
        if resume in (None, False):
            if dataset is None:
                raise ConfigError(f"no unfinished run of experiment {exp.name!r} to resume; pass a dataset to "
                                  "start one" if wanted_latest else "pass a dataset (or resume= an earlier run)")
            run = self.start(exp, dataset, repeats, evaluators=evaluators_, analysis=analysis)
            resuming = False
        else:
            run = ExperimentRun(self._lab, resume.guid if isinstance(resume, ExperimentRun) else resume)
            if run.experiment_guid != exp.guid:
                raise ConfigError(f"run {run.guid} belongs to another experiment")
            if dataset is not None and sum(1 for _ in iter_rows(self._lab, dataset)) != run.n_rows:
                raise ConfigError(f"the dataset has a different number of rows than run {run.guid} "
                                  f"({run.n_rows}); resume with the same dataset or none")
            resuming = True
        record = self._lab.store.get_run(run.guid)
        variants = {label: self._lab.actions.get(spec["action_guid"], version=spec["version"])
                    for label, spec in record["config"]["variants"].items()}
        chosen = evaluators_list(evaluators_) if not resuming else recorded_evaluators(record, evaluators_)
        lease = RunLease(self._lab.store, run.guid, shard)
        lease.acquire()
        try:
            plan = _CellPlan(self._lab.store, run.guid, record["n_rows"], record["config"]["labels"],
                             record["repeats"], shard, resuming, retry_errors)
            total = plan.count()
        except BaseException:
            lease.release()
            raise
        return _Session(exp, record, variants, chosen, lease, plan, total, shard)

    def _outcome(self, session: "_Session") -> tuple[str, str | None]:
        """The status a finished runner session leaves, and why when it is not plainly done."""
        store, record = self._lab.store, session.record
        guid = record["guid"]
        total = record["n_rows"] * record["repeats"] * len(record["config"]["labels"])
        counts = store.cell_counts(guid)
        recorded, errors = sum(counts.values()), counts.get("error", 0)
        if recorded < total:
            others = [lease for lease in live_leases(store, guid) if lease["owner"] != session.lease.owner]
            if others:
                return "running", None  # the other shards' processes finish it
            part = f" (this process ran shard {session.shard[0]}/{session.shard[1]})" if session.shard else ""
            return "interrupted", f"{total - recorded} of {total} cells not run yet{part}; resume to finish"
        if errors == 0:
            return "done", None
        causes = "; ".join(f"{g['count']} x {g['error_type']} ({g['variant']})"
                           for g in store.run_error_groups(guid)[:3])
        return "done_with_errors", f"{errors} of {total} cells failed: {causes}; see run.errors()"

    def latest_unfinished(self, experiment: str | Experiment, dataset: Any = None) -> ExperimentRun | None:
        """The newest run of ``experiment`` that has cells left to run (created, interrupted or
        failed), on ``dataset`` when one is given (a file path matches by its absolute path)."""
        exp = self.get(experiment)
        wanted = os.path.abspath(os.fspath(dataset)) if isinstance(dataset, (str, os.PathLike)) else None
        for record in reversed(self._lab.store.list_runs(exp.guid)):
            config = record["config"] or {}
            if wanted is not None and config.get("dataset_path") != wanted:
                continue
            run = ExperimentRun(self._lab, record["guid"])
            if run.status in ("created", "interrupted", "failed"):
                return run
        return None

    def get_run(self, guid: str) -> ExperimentRun:
        return ExperimentRun(self._lab, guid)

    def runs(self, experiment: str | Experiment | None = None) -> list[ExperimentRun]:
        guid = self.get(experiment).guid if experiment is not None else None
        return [ExperimentRun(self._lab, r["guid"]) for r in self._lab.store.list_runs(guid)]

    # async twins of the other methods: awaited without blocking the caller's event loop
    acreate = async_twin(create, writes=True)
    aget = async_twin(get)
    alist = async_twin(list)
    aassign = async_twin(assign)
    aresults = async_twin(results)
    astart = async_twin(start)
    alatest_unfinished = async_twin(latest_unfinished)
    aget_run = async_twin(get_run)
    aruns = async_twin(runs)


@dataclass
class _Session:
    experiment: Experiment
    record: dict[str, Any]
    variants: dict[str, Any]
    evaluators: list[Any]
    lease: "RunLease"
    plan: "_CellPlan"
    total: int
    shard: tuple[int, int] | None


class RunLease:
    """This process's hold on (a shard of) a run, kept alive by the runner's heartbeat.

    A lease expires ``ttl`` seconds after its last renewal, so a killed process's run is taken
    over by the next resumer instead of staying "running" forever."""

    ttl = 30.0
    interval = 5.0

    def __init__(self, store: Any, run_guid: str, shard: tuple[int, int] | None):
        self.store, self.run_guid = store, run_guid
        self.holder = "*" if shard is None else f"{shard[0]}/{shard[1]}"
        self.owner = process_owner()

    def acquire(self) -> None:
        self.store.acquire_run_lease(self.run_guid, self.holder, self.owner, self.ttl, dead=owner_is_dead)

    def renew(self) -> bool:
        return self.store.renew_run_lease(self.run_guid, self.holder, self.owner, self.ttl)

    def release(self) -> None:
        self.store.release_run_lease(self.run_guid, self.holder, self.owner)


def live_leases(store: Any, run_guid: str) -> list[dict[str, Any]]:
    """The run's unexpired leases held by processes that are still alive."""
    return [lease for lease in store.live_run_leases(run_guid) if not owner_is_dead(lease["owner"])]


def check_analysis_options(options: Mapping[str, Any] | None, labels: Sequence[str]) -> dict[str, Any]:
    """``{"primary", "baseline", "cluster"}`` without the unset ones; a wrong key or baseline is a
    ConfigError before the run is recorded (a metric name is checked when the run is analysed:
    evaluators' scores do not exist yet)."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ConfigError(f"analysis must be a mapping like {{'primary': 'rating'}}, not {type(options).__name__}")
    unknown = set(options) - {"primary", "baseline", "cluster"}
    if unknown:
        raise ConfigError(f"unknown analysis option(s) {sorted(unknown)}: use primary, baseline, cluster")
    kept = {k: v for k, v in options.items() if v is not None}
    for key, value in kept.items():
        if not isinstance(value, str) or not value:
            raise ConfigError(f"analysis {key!r} must be a name, not {value!r}")
    if "baseline" in kept and kept["baseline"] not in labels:
        raise ConfigError(f"baseline {kept['baseline']!r} is not a variant (variants: {list(labels)})")
    return kept


def evaluators_list(given: Any) -> list[Any]:
    if callable(given) or isinstance(given, evaluators.LLMJudge):
        return [given]
    return items(given or [], "evaluators")


def recorded_evaluators(record: Mapping[str, Any], given: Sequence[Any]) -> list[Any]:
    """The evaluators a resumed run scores with: the ones recorded when it started, rebuilt
    from their specs, or taken from ``given`` (a custom function must be passed again)."""
    given = evaluators_list(given)
    by_name = {evaluators_name(e): e for e in given}
    recorded = [{"name": item, "spec": None} if isinstance(item, str) else item
                for item in (record["config"].get("evaluators") or [])]
    names = {item["name"] for item in recorded}
    extra = sorted(set(by_name) - names)
    if extra:
        raise ConfigError(f"run {record['guid']} was not scored by {extra}: resuming with them would score only "
                          "the remaining cells; start a new run to add an evaluator")
    chosen = []
    for item in recorded:
        if item["name"] in by_name:
            chosen.append(by_name[item["name"]])
        elif item.get("spec") is not None:
            chosen.append(rebuild_evaluator(item["spec"]))
        else:
            raise ConfigError(f"run {record['guid']} is scored by evaluator {item['name']!r}, which promptlab "
                              "cannot rebuild from the run's config (your own function, or one made from a "
                              "compiled object): pass it again, evaluators=[...], to resume")
    return chosen


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



