"""The offline experiment runner: every dataset row through every variant, ``repeats`` times.

What it gets right, because users of other tools complain about exactly these:

- rate limits: at most ``concurrency`` requests in flight, an AIMD limiter that halves on a 429
  (waiting the server's Retry-After) and climbs back one slot at a time, and optional
  requests/tokens-per-minute budgets per provider (aiolimiter);
- transient failures: 5xx and timeouts retried with jittered exponential backoff (tenacity);
  a cell that still fails is recorded as an error and the run goes on;
- deadlines: a total deadline per attempt (connect + whole body; trickled bytes and SSE
  keep-alives do not extend it) and per cell across its retries (``lab.engine``);
- a provider that goes down, at the start or mid-run: a circuit breaker per provider stops
  sending, probes, and ends the run ``failed`` with the cause if it stays down;
- deterministic failures (a missing template variable, an unknown model, a missing or rejected
  API key): when a variant's first cells all fail the same way, the run stops at once with
  that cause instead of failing every row;
- Ctrl-C: in-flight requests are cancelled, nothing more is sent, finished cells are written;
- lost progress: finished cells are written in small batches as they arrive (never more than
  ``flush_every`` cells or ``flush_seconds`` behind), each under a stable cell key, so a killed
  run resumes with ``resume=`` and neither repeats nor loses a cell; shards of one run can
  run in several processes into the same store;
- memory: cells are generated lazily and results go to the store, not to a list.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence

import anyio

from ..actions import Action, Call, completion_fields, error_fields
from ..engine import RetryPolicy
from ..errors import (
    AuthenticationError,
    ConfigError,
    MissingVariablesError,
    NotFoundError,
    PromptlabError,
    ProviderConnectionError,
    ProviderError,
    ProviderRequestError,
    ProviderServerError,
    ProviderTimeoutError,
    RateLimitError,
    RunFailedError,
    TemplateError,
)
from ..feedback import feedback_row
from ..store import utcnow
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


class CircuitBreaker:
    """One provider's breaker within a run.

    Closed: attempts go through. When at least ``threshold`` of the last ``window`` attempts (and
    at least ``min_attempts``) failed for connection, timeout or 5xx reasons, it opens: no
    attempt is sent; after ``cooldown`` seconds one probe goes through (the cooldown doubles up to
    ``max_cooldown`` while probes fail). A success closes it. If it stays open longer than
    ``give_up_after`` seconds, ``admit`` raises RunFailedError and the run ends ``failed``.
    Rate limiting (429) is not counted: the AIMD limiter handles it.
    """

    def __init__(self, provider: str, *, window: int = 20, threshold: float = 0.8, min_attempts: int = 5,
                 cooldown: float = 1.0, max_cooldown: float = 15.0, give_up_after: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        if not 0 < threshold <= 1 or window < 1 or min_attempts < 1 or give_up_after <= 0 or cooldown <= 0:
            raise ConfigError("breaker: need 0 < threshold <= 1, window >= 1, min_attempts >= 1, "
                              "cooldown > 0 and give_up_after > 0")
        self.provider = provider
        self.window = window
        self.threshold = threshold
        self.min_attempts = min_attempts
        self.cooldown = cooldown
        self.max_cooldown = max_cooldown
        self.give_up_after = give_up_after
        self.clock = clock
        self.state = "closed"
        self.trips = 0
        self.last_error: BaseException | None = None
        self._outcomes: collections.deque[bool] = collections.deque(maxlen=window)
        self._opened_at = 0.0
        self._next_probe = 0.0
        self._delay = cooldown
        self._probing = False
        self._changed = asyncio.Event()
        self._answered = False
        self._refused = 0
        self._dead_on_arrival: RunFailedError | None = None

    def _failures(self) -> int:
        return sum(1 for ok in self._outcomes if not ok)

    def describe(self) -> str:
        cause = f" (last: {type(self.last_error).__name__}: {self.last_error})" if self.last_error else ""
        return (f"provider {self.provider!r} stopped answering: {self._failures()} of its last "
                f"{len(self._outcomes)} attempts failed{cause}")

    async def admit(self) -> bool:
        """Wait until an attempt may be sent; True when this attempt is the probe."""
        while True:
            if self._dead_on_arrival is not None:
                raise self._dead_on_arrival
            if self.state == "closed":
                return False
            now = self.clock()
            if now - self._opened_at > self.give_up_after:
                raise RunFailedError(f"{self.describe()}; it was still down after {self.give_up_after:g} s of "
                                     "probing, so the run stopped: resume it once the provider answers again",
                                     cause=self.last_error)
            if not self._probing and now >= self._next_probe:
                self._probing = True
                return True
            wait = max(0.01, min(self._next_probe, self._opened_at + self.give_up_after) - now) \
                if not self._probing else None
            self._changed.clear()
            with anyio.move_on_after(wait):
                await self._changed.wait()

    def record(self, ok: bool, probe: bool, error: BaseException | None = None) -> None:
        """The outcome of an admitted attempt (connection/timeout/5xx failures are not ok)."""
        if ok:
            self._answered = True
        else:
            self.last_error = error
            refused = isinstance(error, ProviderConnectionError) and not isinstance(error, ProviderTimeoutError)
            self._refused = self._refused + 1 if refused else 0
            if not self._answered and self._refused >= self.min_attempts and self._dead_on_arrival is None:
                # Never reached at all (wrong base_url, server not started): no point probing.
                self._dead_on_arrival = RunFailedError(
                    f"the first {self._refused} requests to provider {self.provider!r} all failed to connect "
                    f"({error}); stopping the run instead of failing every row. Check that the server is "
                    "running and the provider's base_url", cause=error)
                self._changed.set()
        if probe:
            self._probing = False
            if ok:
                self.state, self._delay = "closed", self.cooldown
                self._outcomes.clear()
            else:
                self._delay = min(self.max_cooldown, self._delay * 2)
                self._next_probe = self.clock() + self._delay
            self._changed.set()
            return
        self._outcomes.append(ok)
        if (self.state == "closed" and len(self._outcomes) >= self.min_attempts
                and self._failures() >= self.threshold * len(self._outcomes)):
            self.state = "open"
            self.trips += 1
            self._opened_at = self.clock()
            self._next_probe = self._opened_at + self._delay

    def release(self, probe: bool) -> None:
        """An admitted attempt ended without telling anything about the provider (cancelled)."""
        if probe:
            self._probing = False
            self._changed.set()


#: Errors that fail every cell the same way, whatever the row: stop instead of repeating them.
DETERMINISTIC = (TemplateError, ConfigError, NotFoundError, AuthenticationError)


def deterministic(exc: BaseException) -> bool:
    if isinstance(exc, DETERMINISTIC):
        return True
    return isinstance(exc, ProviderRequestError) and exc.status_code == 404  # unknown model


def check_options(*, concurrency: Any = 16, max_attempts: Any = 6, attempt_timeout: Any = None,
                  cell_timeout: Any = None, fail_fast_after: Any = 5, breaker: Any = None,
                  rate_limit: Any = None, **_others: Any) -> None:
    """Raise ConfigError naming the first bad runner option (before a run is recorded)."""
    for name, value in (("concurrency", concurrency), ("max_attempts", max_attempts)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, not {value!r}")
    for name, value in (("attempt_timeout", attempt_timeout), ("cell_timeout", cell_timeout)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise ConfigError(f"{name} must be a positive number of seconds or None, not {value!r}")
    if fail_fast_after is not None and (isinstance(fail_fast_after, bool) or not isinstance(fail_fast_after, int)
                                        or fail_fast_after < 1):
        raise ConfigError(f"fail_fast_after must be a positive integer or None, not {fail_fast_after!r}")
    if breaker is not None:
        if not isinstance(breaker, Mapping):
            raise ConfigError(f"breaker must be a dict of CircuitBreaker options, not {breaker!r}")
        unknown = sorted(set(breaker) - {"window", "threshold", "min_attempts", "cooldown", "max_cooldown",
                                         "give_up_after"})
        if unknown:
            raise ConfigError(f"unknown breaker option(s) {unknown}; known: window, threshold, min_attempts, "
                              "cooldown, max_cooldown, give_up_after")
        CircuitBreaker("check", **breaker)
    _rate_limiters(rate_limit, {"any"})


@dataclass
class RunStats:
    """Counters of one runner session (stored on the run)."""

    cells: int = 0
    ok: int = 0
    errors: int = 0
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    breaker_trips: int = 0
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
    """Runs the cells of one experiment run on promptlab's event loop, through the Lab's
    execution seam (``lab.engine``), with this runner as the hooks around every attempt."""

    def __init__(self, lab: "Lab", run: Mapping[str, Any], experiment: Mapping[str, Any],
                 variants: Mapping[str, Action], *,
                 concurrency: int = 16, rate_limit: Mapping[str, Any] | None = None,
                 evaluators: Sequence[Any] = (), cache: bool = False, streaming: bool = False,
                 max_attempts: int = 6, attempt_timeout: float | None = None,
                 cell_timeout: float | None = 300.0, progress: bool = True, flush_every: int = 64,
                 flush_seconds: float = 0.5, fail_fast_after: int | None = 5,
                 breaker: Mapping[str, Any] | None = None, lease: Any = None,
                 cells_per_variant: int | None = None):
        check_options(concurrency=concurrency, max_attempts=max_attempts, attempt_timeout=attempt_timeout,
                      cell_timeout=cell_timeout, fail_fast_after=fail_fast_after, breaker=breaker,
                      rate_limit=rate_limit)
        self.lab = lab
        self.engine = lab.engine
        self.run = run
        self.experiment = experiment
        self.variants = variants
        plain, self.judges = split_evaluators(list(evaluators))
        # promptlab's own evaluators are quick pure functions; user code might block (I/O, a
        # model of its own), so it runs in a worker thread, off promptlab's loop.
        self.quick_evaluators = [e for e in plain if getattr(e, "spec", None) is not None]
        self.threaded_evaluators = [e for e in plain if getattr(e, "spec", None) is None]
        self.cache = cache
        self.streaming = streaming
        self.policy = RetryPolicy(max_attempts=max_attempts, attempt_timeout=attempt_timeout,
                                  call_timeout=cell_timeout, lean=not streaming)
        self.progress = progress
        self.flush_every = flush_every
        self.max_buffered = 4 * flush_every
        self.flush_seconds = flush_seconds
        self.fail_fast_after = None if fail_fast_after is None else \
            max(1, min(fail_fast_after, cells_per_variant or fail_fast_after))
        self.breaker_options = dict(breaker or {})
        self.lease = lease
        self.limiter = AdaptiveLimiter(concurrency)
        self.rate_limits = _rate_limiters(rate_limit, {a.model.split(":", 1)[0] for a in variants.values()})
        self.stats = RunStats(concurrency_max=concurrency)
        self.abort: RunFailedError | None = None
        self._buffer = _Buffer()
        self._flush_lock = asyncio.Lock()
        self._breakers: dict[str, CircuitBreaker] = {}
        self._first_outcomes: dict[str, list[BaseException | None]] = collections.defaultdict(list)
        self._judge_actions: dict[str, Action] = {}
        self._workers: anyio.CancelScope | None = None

    # -- the loop -------------------------------------------------------------------------

    async def execute(self, cells: Iterator[tuple[Cell, Mapping[str, Any]]], total: int) -> RunStats:
        """Run (cell, dataset row) pairs from a shared iterator with ``concurrency`` workers.

        Raises RunFailedError when the run had to stop (deterministic failures, a provider that
        stayed down, a lost lease); cancellation (Ctrl-C) propagates after the finished cells are
        written."""
        started = time.perf_counter()
        bar = _progress_bar(total, self.experiment["name"], self.progress)
        iterator = iter(cells)

        async def worker() -> None:
            for cell, row in iterator:  # shared iterator: each cell is taken by exactly one worker
                if self.abort is not None:
                    return  # (a cell that fails while planning never yields, so cancel cannot stop it)
                try:
                    await self._run_cell(cell, row)
                except RunFailedError as exc:
                    self._stop(exc)
                    return
                except Exception as exc:  # a bug must stop the run, not leave it half-running
                    self._stop(RunFailedError(f"internal error: {type(exc).__name__}: {exc}", cause=exc))
                    return
                bar.update(1)
                if len(self._buffer) >= self.max_buffered:
                    # Backpressure: when the store falls behind, workers wait for it rather
                    # than piling results up in memory.
                    await self._flush()

        try:
            async with anyio.create_task_group() as background:
                background.start_soon(self._flush_periodically)
                if self.lease is not None:
                    background.start_soon(self._heartbeat)
                try:
                    async with anyio.create_task_group() as workers:
                        self._workers = workers.cancel_scope
                        for _ in range(self.limiter.maximum):
                            workers.start_soon(worker)
                finally:
                    background.cancel_scope.cancel()
        finally:
            # Whatever ended the run (its end, an abort, Ctrl-C), the finished cells are written.
            await self._flush()
            bar.close()
            self.stats.seconds = time.perf_counter() - started
            self.stats.concurrency_lowest = int(self.limiter.lowest)
            self.stats.concurrency_final = int(self.limiter.limit)
            self.stats.breaker_trips = sum(b.trips for b in self._breakers.values())
        if self.abort is not None:
            raise self.abort
        return self.stats

    def _stop(self, reason: RunFailedError) -> None:
        if self.abort is None:
            self.abort = reason
        if self._workers is not None:
            self._workers.cancel()

    async def _flush_periodically(self) -> None:
        while True:
            await anyio.sleep(self.flush_seconds)
            await self._flush()

    async def _heartbeat(self) -> None:
        while True:
            await anyio.sleep(self.lease.interval)
            if not await self.engine.io(self.lease.renew):
                self._stop(RunFailedError(
                    f"lost the lease on run {self.run['guid']}: another process took the run over "
                    "(this one was thought dead); stopped sending"))
                return

    async def _flush(self) -> None:
        """Write the buffered cells in a worker thread, one batch at a time, so the event loop
        keeps serving responses while SQLite/PostgreSQL commits. Shielded: a flush that has
        begun ends before the run may be finalised (else its status could be computed from the
        cells committed so far, missing this batch)."""
        with anyio.CancelScope(shield=True):
            async with self._flush_lock:
                buffer, self._buffer = self._buffer, _Buffer()
                if buffer.cells or buffer.generations:
                    await self.engine.io(self.lab.store.record_cells, buffer.generations, buffer.cells,
                                         buffer.scores)

    # -- one cell -------------------------------------------------------------------------

    async def _run_cell(self, cell: Cell, row: Mapping[str, Any]) -> None:
        action = self.variants[cell.variant]
        self.stats.cells += 1
        metadata = {"row_index": cell.row_index}
        tags = dict(experiment=self.experiment["guid"], variant=cell.variant, run=self.run["guid"],
                    repeat=cell.repeat)
        try:
            call = await self.engine.plan(action, row["input"], cache=self.cache, streaming=self.streaming,
                                          metadata=metadata, log_failure=False, **tags)
        except PromptlabError as exc:  # e.g. a row missing a template variable
            failed = self.engine.failed_call(action, row["input"], environment=None, metadata=metadata, **tags)
            self._record(cell, failed.row(**error_fields(exc)), [], exc, row)
            return
        try:
            completion, cached = await self.engine.complete(call, policy=self.policy, hooks=self)
        except RunFailedError:
            raise  # the run is stopping; this cell stays unrecorded for a later resume
        except ProviderError as exc:
            self._record(cell, call.row(**error_fields(exc)), [], exc, row)
            return
        cost = 0.0 if cached else self.lab.cost(call.model, completion.usage.prompt_tokens,
                                                completion.usage.completion_tokens)
        generation = call.row(**completion_fields(completion, cost, cached))
        scores = await self._evaluate(completion.text, row, call.guid)
        self._record(cell, generation, scores, None, row)

    def _record(self, cell: Cell, generation: dict[str, Any], scores: list[dict[str, Any]],
                error: BaseException | None, row: Mapping[str, Any]) -> None:
        ok = error is None
        self.stats.ok += ok
        self.stats.errors += not ok
        self._buffer.generations.append(generation)
        self._buffer.cells.append(dict(run_guid=self.run["guid"], cell_key=cell.key, row_index=cell.row_index,
                                       variant=cell.variant, repeat=cell.repeat,
                                       status="done" if ok else "error",
                                       generation_guid=generation["guid"], updated_at=utcnow()))
        self._buffer.scores.extend(scores)
        self._check_fail_fast(cell.variant, error, row)

    def _check_fail_fast(self, variant: str, error: BaseException | None, row: Mapping[str, Any]) -> None:
        """Stop when a variant's first cells all failed the same deterministic way."""
        first = self._first_outcomes[variant]
        if self.fail_fast_after is None or len(first) >= self.fail_fast_after:
            return
        first.append(error)
        if len(first) < self.fail_fast_after:
            return
        kinds = {(type(e), str(e)) if e is not None else None for e in first}
        if len(kinds) != 1 or first[0] is None or not deterministic(first[0]):
            return
        cause = first[0]
        hint = ""
        if isinstance(cause, MissingVariablesError):
            columns = ", ".join(map(str, row.get("input", {}))) or "none"
            hint = (f". The dataset's columns are: {columns}; the action "
                    f"{self.variants[variant].name!r} uses {self.variants[variant].variables}")
        self._stop(RunFailedError(
            f"the first {len(first)} cells of variant {variant} all failed with "
            f"{type(cause).__name__}: {cause}{hint}. Stopped before sending more; fix it and resume the run",
            cause=cause))

    # -- hooks around every attempt (engine.AttemptHooks) --------------------------------------

    @contextlib.asynccontextmanager
    async def attempt(self, call: Call) -> AsyncIterator[None]:
        breaker = self._breaker(call.provider_name)
        probe = await breaker.admit()
        await self.limiter.acquire()
        try:
            await self._respect_rate_limit(call)
            self.stats.requests += 1
            yield
        except RateLimitError:
            self.stats.rate_limited += 1
            self.limiter.on_rate_limited()
            breaker.release(probe)
            raise
        except (ProviderConnectionError, ProviderServerError) as exc:
            breaker.record(False, probe, exc)
            raise
        except ProviderError:
            breaker.record(True, probe)  # it answered: the provider is up
            raise
        except BaseException:
            breaker.release(probe)
            raise
        else:
            breaker.record(True, probe)
            self.limiter.on_success()
        finally:
            self.limiter.release()

    def on_retry(self, call: Call, error: BaseException | None) -> None:
        self.stats.retries += 1

    def _breaker(self, provider: str) -> CircuitBreaker:
        breaker = self._breakers.get(provider)
        if breaker is None:
            breaker = self._breakers[provider] = CircuitBreaker(provider, **self.breaker_options)
        return breaker

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

    # -- evaluation -----------------------------------------------------------------------

    async def _evaluate(self, output: str, row: Mapping[str, Any], generation_guid: str) -> list[dict[str, Any]]:
        if not (self.quick_evaluators or self.threaded_evaluators or self.judges):
            return []
        full_row = {**row["input"], **_expected_fields(row.get("expected"))}
        scores: list[Score] = run_evaluators(self.quick_evaluators, output, full_row)
        if self.threaded_evaluators:
            scores += await asyncio.to_thread(run_evaluators, self.threaded_evaluators, output, full_row)
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
            judge_action = self._judge_actions[action] = await asyncio.to_thread(self.lab.actions.get, action)
        call = await self.engine.plan(judge_action, dict(variables), cache=self.cache,
                                      metadata={"judge_for_run": self.run["guid"]})
        generation = await self.engine.run(call, policy=self.policy, hooks=self)
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
           "CircuitBreaker", "RunStats", "LLMJudge", "deterministic"]
