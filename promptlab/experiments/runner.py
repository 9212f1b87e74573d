"""The offline experiment runner: every dataset row through every variant, ``repeats`` times.

What it gets right, because users of other tools complain about exactly these:

- rate limits: at most ``concurrency`` requests in flight, an AIMD limiter that halves on a 429
  (waiting the server's Retry-After) and climbs back one slot at a time, and optional
  requests/tokens-per-minute budgets per provider (aiolimiter);
- transient failures: 5xx and timeouts retried with jittered exponential backoff (tenacity);
  a cell that still fails is recorded as an error and the run goes on;
- an unreachable provider: if the first requests all fail to connect, the run stops at once
  with one clear error instead of failing every row;
- lost progress: finished cells are written in small batches as they arrive (never more than
  ``flush_every`` cells or ``flush_seconds`` behind), each under a stable cell key, so a killed
  run resumes with ``resume=`` and neither repeats nor loses a cell; shards of one run can
  run in several processes into the same store;
- memory: cells are generated lazily and results go to the store, not to a list.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import math
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence

import tenacity

from ..actions import Action, Call, completion_fields, error_fields
from ..feedback import feedback_row
from ..errors import (
    ConfigError,
    PromptlabError,
    ProviderConnectionError,
    ProviderError,
    ProviderServerError,
    ProviderTimeoutError,
    RateLimitError,
)
from ..store import new_guid, utcnow
from .evaluators import LLMJudge, Score, run_evaluators, split_evaluators

if TYPE_CHECKING:  # pragma: no cover
    from ..lab import Lab

EXPECTED_PREFIX = "expected"


# -- pure planning --------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    row_index: int
    variant: str
    repeat: int

    @property
    def key(self) -> str:
        return f"{self.row_index}:{self.variant}:{self.repeat}"


def split_row(row: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    """A dataset row's template inputs and its expected output (``expected``/``expected_*``)."""
    inputs = {k: v for k, v in row.items() if not str(k).startswith(EXPECTED_PREFIX)}
    expected = {k: v for k, v in row.items() if str(k).startswith(EXPECTED_PREFIX)}
    if list(expected) == ["expected"]:
        return inputs, expected["expected"]
    return inputs, expected or None


def in_shard(cell_key: str, shard: tuple[int, int] | None) -> bool:
    """Whether a cell belongs to shard ``(k, n)``: a stable hash, the same in every process."""
    if shard is None:
        return True
    k, n = shard
    digest = hashlib.blake2b(cell_key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n == k


def validate_shard(shard: Any) -> tuple[int, int] | None:
    if shard is None:
        return None
    try:
        k, n = shard
        k, n = int(k), int(n)
    except (TypeError, ValueError):
        raise ConfigError(f"shard must be a pair (k, n), not {shard!r}") from None
    if n < 1 or not 0 <= k < n:
        raise ConfigError(f"shard {shard!r}: need 0 <= k < n")
    return k, n


def plan_cells(rows: int | Iterable[int], labels: Sequence[str], repeats: int,
               shard: tuple[int, int] | None = None) -> Iterator[Cell]:
    """Cells in row order (so both variants of a row finish close together), lazily.
    ``rows``: the number of rows, or the row indices to plan."""
    for row_index in (range(rows) if isinstance(rows, int) else rows):
        for repeat in range(repeats):
            for label in labels:
                cell = Cell(row_index, label, repeat)
                if in_shard(cell.key, shard):
                    yield cell


def cells_to_run(cells: Iterator[Cell], statuses: Mapping[str, str], resume: bool,
                 retry_errors: bool) -> Iterator[Cell]:
    """Skip what a resumed run already has: done cells always, failed ones unless retried."""
    for cell in cells:
        status = statuses.get(cell.key)
        if status == "done" and resume:
            continue
        if status == "error" and (resume and not retry_errors):
            continue
        if retry_errors and status != "error" and status is not None:
            continue
        yield cell


# -- concurrency control --------------------------------------------------------------------


class AdaptiveLimiter:
    """AIMD concurrency: ``limit`` halves on a 429 (once per burst) and grows back by one slot
    after every ``limit`` successes, up to ``maximum``."""

    def __init__(self, maximum: int, cooldown: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.maximum = maximum
        self.limit = float(maximum)
        self.lowest = float(maximum)
        self.in_use = 0
        self.cuts = 0
        self._cooldown = cooldown
        self._clock = clock
        self._last_cut = -math.inf
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def slots(self) -> int:
        return max(1, int(self.limit))

    async def acquire(self) -> None:
        while self.in_use >= self.slots:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                raise
        self.in_use += 1

    def release(self) -> None:
        self.in_use -= 1
        self._wake()

    def _wake(self) -> None:
        free = self.slots - self.in_use
        while free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1

    def on_success(self) -> None:
        if self.limit < self.maximum:
            self.limit = min(self.maximum, self.limit + 1.0 / max(1.0, self.limit))
            self._wake()

    def on_rate_limited(self) -> None:
        now = self._clock()
        if now - self._last_cut >= self._cooldown:
            self._last_cut = now
            self.limit = max(1.0, self.limit / 2)
            self.lowest = min(self.lowest, self.limit)
            self.cuts += 1


def _wait_for(retry_state: tenacity.RetryCallState) -> float:
    """Honour Retry-After on 429s; jittered exponential backoff otherwise."""
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    if isinstance(exc, RateLimitError) and exc.retry_after is not None:
        return min(60.0, exc.retry_after) * (1 + 0.1 * random.random())
    return tenacity.wait_random_exponential(multiplier=0.25, max=10)(retry_state)


RETRYABLE = (RateLimitError, ProviderServerError, ProviderTimeoutError, ProviderConnectionError)


@dataclass
class RunStats:
    """Counters of one runner session (stored on the run)."""

    cells: int = 0
    ok: int = 0
    errors: int = 0
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    concurrency_max: int = 0
    concurrency_lowest: int = 0
    concurrency_final: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Buffer:
    generations: list[dict[str, Any]] = field(default_factory=list)
    cells: list[dict[str, Any]] = field(default_factory=list)
    scores: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.cells)


class Runner:
    """Runs the cells of one experiment run. Lives on promptlab's event loop."""

    def __init__(self, lab: "Lab", run: Mapping[str, Any], experiment: Mapping[str, Any],
                 variants: Mapping[str, Action], *,
                 concurrency: int = 16, rate_limit: Mapping[str, Any] | None = None,
                 evaluators: Sequence[Any] = (), cache: bool = False, streaming: bool = False,
                 max_attempts: int = 6, progress: bool = True, flush_every: int = 64,
                 flush_seconds: float = 0.5, fail_fast_after: int = 5):
        if concurrency < 1:
            raise ConfigError("concurrency must be >= 1")
        self.lab = lab
        self.run = run
        self.experiment = experiment
        self.variants = variants
        self.plain_evaluators, self.judges = split_evaluators(list(evaluators))
        self.cache = cache
        self.streaming = streaming
        self.max_attempts = max_attempts
        self.progress = progress
        self.flush_every = flush_every
        self.max_buffered = 4 * flush_every
        self.flush_seconds = flush_seconds
        self.fail_fast_after = fail_fast_after
        self.limiter = AdaptiveLimiter(concurrency)
        self.rate_limits = _rate_limiters(rate_limit, {a.model.split(":", 1)[0] for a in variants.values()})
        self.stats = RunStats(concurrency_max=concurrency)
        self._buffer = _Buffer()
        self._full = asyncio.Event()
        self._stopping = False
        self._flush_lock = asyncio.Lock()
        self._connect_failures = 0
        self._abort: ProviderConnectionError | None = None
        self._providers: dict[str, Any] = {}
        self._judge_actions: dict[str, Action] = {}

    # -- the loop -------------------------------------------------------------------------

    async def execute(self, cells: Iterator[tuple[Cell, Mapping[str, Any]]], total: int) -> RunStats:
        """Run (cell, dataset row) pairs from a shared iterator with ``concurrency`` workers."""
        started = time.perf_counter()
        bar = _progress_bar(total, self.experiment["name"], self.progress)
        flusher = asyncio.ensure_future(self._flush_periodically())
        iterator = iter(cells)

        async def worker() -> None:
            for cell, row in iterator:  # shared iterator: each cell is taken by exactly one worker
                if self._abort is not None:
                    return
                await self._run_cell(cell, row)
                bar.update(1)
                if len(self._buffer) >= self.max_buffered:
                    # Backpressure: when the store falls behind, workers wait for it rather
                    # than piling results up in memory.
                    await self._flush()

        try:
            await asyncio.gather(*(worker() for _ in range(self.limiter.maximum)))
        finally:
            # Stopped by a flag, not cancel(): cancelling a task inside asyncio.wait_for can be
            # lost on Python 3.11 when the wait completes at the same moment, hanging the run.
            self._stopping = True
            self._full.set()
            await flusher
            await self._flush()
            bar.close()
            self.stats.seconds = time.perf_counter() - started
            self.stats.concurrency_lowest = int(self.limiter.lowest)
            self.stats.concurrency_final = int(self.limiter.limit)
        if self._abort is not None:
            raise self._abort
        return self.stats

    async def _flush_periodically(self) -> None:
        while not self._stopping:
            try:
                await asyncio.wait_for(self._full.wait(), timeout=self.flush_seconds)
            except asyncio.TimeoutError:
                pass
            self._full.clear()
            if not self._stopping:
                await self._flush()

    async def _flush(self) -> None:
        """Write the buffered cells in a worker thread, one batch at a time, so the event loop
        keeps serving responses while SQLite/PostgreSQL commits."""
        async with self._flush_lock:
            buffer, self._buffer = self._buffer, _Buffer()
            if buffer.cells or buffer.generations:
                await asyncio.to_thread(self.lab.store.record_cells, buffer.generations, buffer.cells,
                                        buffer.scores)

    # -- one cell -------------------------------------------------------------------------

    async def _run_cell(self, cell: Cell, row: Mapping[str, Any]) -> None:
        action = self.variants[cell.variant]
        self.stats.cells += 1
        metadata = {"row_index": cell.row_index}
        try:
            call = self.lab.actions.plan(
                action, row["input"], use_cache=self.cache, streaming=self.streaming,
                experiment=self.experiment["guid"], variant=cell.variant, run=self.run["guid"],
                repeat=cell.repeat, metadata=metadata)
        except PromptlabError as exc:  # e.g. a row missing a template variable
            failed = Call(guid=new_guid(), action=action, environment=None, input=row["input"], turn=None,
                          model=action.model, provider_name="", provider_model="", params=action.params,
                          experiment=self.experiment["guid"], variant=cell.variant, run=self.run["guid"],
                          repeat=cell.repeat, metadata=metadata)
            self._record(cell, failed.row(**error_fields(exc)), [])
            return
        try:
            completion, cached = await self._complete_with_retries(call)
        except ProviderError as exc:
            if self._abort is not None:
                return  # the run is stopping; this cell stays unrecorded for a later resume
            self._record(cell, call.row(**error_fields(exc)), [])
            return
        cost = 0.0 if cached else self.lab.cost(call.model, completion.usage.prompt_tokens,
                                                completion.usage.completion_tokens)
        generation = call.row(**completion_fields(completion, cost, cached))
        scores = await self._evaluate(completion.text, row, call.guid)
        self._record(cell, generation, scores)

    def _record(self, cell: Cell, generation: dict[str, Any], scores: list[dict[str, Any]]) -> None:
        ok = generation["status"] == "done"
        self.stats.ok += ok
        self.stats.errors += not ok
        self._buffer.generations.append(generation)
        self._buffer.cells.append(dict(run_guid=self.run["guid"], cell_key=cell.key, row_index=cell.row_index,
                                       variant=cell.variant, repeat=cell.repeat,
                                       status="done" if ok else "error",
                                       generation_guid=generation["guid"], updated_at=utcnow()))
        self._buffer.scores.extend(scores)
        if len(self._buffer) >= self.flush_every:
            self._full.set()

    async def _complete_with_retries(self, call: Call):
        provider = self._provider(call.provider_name)
        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception_type(RETRYABLE), wait=_wait_for,
            stop=tenacity.stop_after_attempt(self.max_attempts), reraise=True,
            before_sleep=self._before_retry)
        async for attempt in retrying:
            with attempt:
                if self._abort is not None:
                    raise self._abort
                return await self._attempt(call, provider)
        raise AssertionError("unreachable")  # pragma: no cover

    def _before_retry(self, retry_state: tenacity.RetryCallState) -> None:
        self.stats.retries += 1
        if self._abort is not None:
            raise self._abort

    async def _attempt(self, call: Call, provider: Any):
        await self.limiter.acquire()
        try:
            await self._respect_rate_limit(call)
            self.stats.requests += 1
            result = await self.lab.actions._complete(call, None, provider=provider, lean=not self.streaming)
        except RateLimitError:
            self.stats.rate_limited += 1
            self.limiter.on_rate_limited()
            raise
        except ProviderConnectionError as exc:
            if not isinstance(exc, ProviderTimeoutError) and self.stats.ok == 0:
                self._connect_failures += 1
                if self._connect_failures >= self.fail_fast_after and self._abort is None:
                    self._abort = ProviderConnectionError(
                        f"the first {self._connect_failures} requests all failed to connect "
                        f"({exc}); stopping the run instead of failing every row. Check that the "
                        "server is running and the provider's base_url.", provider=exc.provider)
            raise
        finally:
            self.limiter.release()
        self.limiter.on_success()
        return result

    async def _respect_rate_limit(self, call: Call) -> None:
        limits = self.rate_limits.get(call.provider_name)
        if not limits:
            return
        if "rpm" in limits:
            await limits["rpm"].acquire()
        if "tpm" in limits:
            tpm = limits["tpm"]
            estimate = _estimate_tokens(call.turn.messages) + int(call.params.get("max_tokens") or 256)
            await tpm.acquire(min(estimate, tpm.max_rate))

    def _provider(self, name: str) -> Any:
        if name not in self._providers:
            provider = self.lab.providers.get(name)
            # The runner does its own, adaptive retrying: one SDK attempt per request.
            with_options = getattr(provider, "with_options", None)
            self._providers[name] = with_options(max_retries=0) if with_options else provider
        return self._providers[name]

    # -- evaluation -----------------------------------------------------------------------

    async def _evaluate(self, output: str, row: Mapping[str, Any], generation_guid: str) -> list[dict[str, Any]]:
        if not self.plain_evaluators and not self.judges:
            return []
        full_row = {**row["input"], **_expected_fields(row.get("expected"))}
        scores: list[Score] = run_evaluators(self.plain_evaluators, output, full_row)
        for judge in self.judges:
            try:
                scores.append(await judge.evaluate(output, full_row, self._judge_complete))
            except Exception as exc:  # one failing judge never loses the cell or other scores
                scores.append(Score(judge.name, float("nan"), None, f"error: {type(exc).__name__}: {exc}"))
        # Scores are feedback rows (source="evaluator"), written with their cell.
        return [feedback_row(generation_guid, score=None if math.isnan(s.value) else s.value,
                             comment=s.reason or ("evaluator error" if math.isnan(s.value) else None),
                             evaluator=s.name, source="evaluator", metadata={"passed": s.passed})
                for s in scores]

    async def _judge_complete(self, action: str, variables: Mapping[str, Any]) -> str:
        # Resolved once per run, not once per judged cell.
        judge_action = self._judge_actions.get(action)
        if judge_action is None:
            judge_action = self._judge_actions[action] = self.lab.actions.get(action)
        call = self.lab.actions.plan(judge_action, dict(variables), use_cache=self.cache,
                                     metadata={"judge_for_run": self.run["guid"]})
        generation = await self.lab.actions.execute(call)
        return generation.msg or ""


def _expected_fields(expected: Any) -> dict[str, Any]:
    if expected is None:
        return {}
    if isinstance(expected, Mapping):
        return dict(expected)
    return {"expected": expected}


def _estimate_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    chars = sum(len(m["content"]) if isinstance(m["content"], str) else 1000 for m in messages)
    return chars // 4 + 1


def _rate_limiters(rate_limit: Mapping[str, Any] | None, providers: set[str]) -> dict[str, dict[str, Any]]:
    """``{"rpm": 500, "tpm": 200_000}`` for every provider, or ``{"openai": {"rpm": 500}}``."""
    if not rate_limit:
        return {}
    from aiolimiter import AsyncLimiter

    if set(rate_limit) <= {"rpm", "tpm"}:
        per_provider = {name: rate_limit for name in providers}
    else:
        per_provider = dict(rate_limit)
    limiters: dict[str, dict[str, Any]] = {}
    for name, limits in per_provider.items():
        if not isinstance(limits, Mapping) or not set(limits) <= {"rpm", "tpm"}:
            raise ConfigError(f"rate_limit for {name!r} must be a dict with 'rpm' and/or 'tpm'")
        limiters[name] = {}
        for kind, value in limits.items():
            if not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"rate_limit {name}.{kind} must be a positive number")
            limiters[name][kind] = AsyncLimiter(value, 60)
    return limiters


def _progress_bar(total: int, name: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=name, unit="cell", disable=not enabled, smoothing=0.1)


__all__ = ["Runner", "Cell", "plan_cells", "cells_to_run", "in_shard", "split_row", "AdaptiveLimiter",
           "RunStats", "LLMJudge"]
