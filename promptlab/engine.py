"""The execution seam: every model call promptlab makes is planned and run here.

::

    call = await lab.engine.plan("writer", {"task": "Fix typos", "content": "Teh cat"})
    generation = await lab.engine.run(call)          # provider call, cache, log, session

``plan`` resolves the action version, renders the template, retrieves a bound context and reads
session memory; retrieval (and index builds), session reads and PostgreSQL reads run in a worker
thread, never on the caller's event loop (a SQLite lookup of an action, about a millisecond, or
one resolved in the last second, is done inline: cheaper than the thread hop). ``run`` sends the request with a total deadline per attempt and per call (keep-alives and
trickled bytes do not extend them), retries transient failures, and writes the generation row;
a write that has started is finished even when the call is cancelled. Actions, experiments
(online and offline), the gateway, widgets and flows all call this seam; the sync methods of
those resources are thin wrappers over it (``blocking``), in which Ctrl-C / a kernel interrupt
cancels the in-flight request and sends nothing more.

Model calls run on one private event loop on a daemon thread, so that a sync call works in a
plain script and inside Jupyter (where the main thread's loop is already running), and every
HTTP connection pool stays on the loop that opened it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import random
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncContextManager, Awaitable, Callable, Coroutine, Mapping, Protocol, \
    Sequence, TypeVar

import anyio
import tenacity

from ._loop import LoopThread
from .actions import Action, Call, Turn, build_turn, completion_fields, error_fields, input_variables, \
    normalize_environment, request_input
from .errors import (
    PromptlabError,
    ProviderConnectionError,
    ProviderError,
    ProviderServerError,
    ProviderTimeoutError,
    RateLimitError,
)
from .generations import Generation, TokenStream
from .owners import process_owner
from .providers.base import Completion, Usage
from .store import new_guid
from .store.values import check_json, problem

if TYPE_CHECKING:  # pragma: no cover
    from .lab import Lab

T = TypeVar("T")

RETRYABLE = (RateLimitError, ProviderServerError, ProviderTimeoutError, ProviderConnectionError)
#: How long a sync call waits, after Ctrl-C, for the cancelled work to log itself.
STOP_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class RetryPolicy:
    """Deadlines and retries of one call.

    ``attempt_timeout``: seconds one attempt may take in total (connect, the whole body or the
    whole stream); None: the provider's ``timeout``. ``call_timeout``: seconds the call may take
    across all its attempts and back-off waits. ``max_attempts``: None means the provider's
    ``max_retries`` + 1. ``lean``: use the provider's single-attempt fast path if it has one.
    """

    max_attempts: int | None = None
    attempt_timeout: float | None = None
    call_timeout: float | None = 300.0
    lean: bool = False


class AttemptHooks(Protocol):
    """What a caller may wrap around every attempt (the experiment runner's limiter, rate
    budgets and circuit breaker): ``attempt(call)`` is entered before the request is sent and
    exited with its outcome; ``on_retry(call, error)`` runs before a back-off wait."""

    def attempt(self, call: Call) -> AsyncContextManager[None]: ...

    def on_retry(self, call: Call, error: BaseException | None) -> None: ...


def wait_before_retry(retry_state: tenacity.RetryCallState) -> float:
    """Honour Retry-After on 429s; jittered exponential backoff otherwise."""
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    if isinstance(exc, RateLimitError) and exc.retry_after is not None:
        return min(60.0, exc.retry_after) * (1 + 0.1 * random.random())
    return tenacity.wait_random_exponential(multiplier=0.25, max=10)(retry_state)


def call_deadline_error(message: str, provider: str) -> ProviderTimeoutError:
    """A ProviderTimeoutError for a call whose deadline across attempts passed (never retried)."""
    error = ProviderTimeoutError(message, provider=provider)
    error.call_deadline = True  # type: ignore[attr-defined]
    return error


def _first_retry_state(retrying: tenacity.AsyncRetrying, exc: BaseException) -> tenacity.RetryCallState:
    """The state tenacity's wait functions read, for the failure of the first attempt (made
    before the retry machinery was built)."""
    state = tenacity.RetryCallState(retrying, fn=None, args=(), kwargs={})
    state.set_exception((type(exc), exc, exc.__traceback__))
    return state


def deadline_at(when: float):
    """A context manager that cancels its body at loop time ``when`` (TimeoutError)."""
    if hasattr(asyncio, "timeout_at"):  # Python 3.11+: the native, cheap one
        return asyncio.timeout_at(when)
    return _anyio_deadline(when)


@contextlib.asynccontextmanager
async def _anyio_deadline(when: float):
    with anyio.fail_after(max(0.0, when - asyncio.get_running_loop().time())):
        yield


def interrupted_fields() -> dict[str, Any]:
    fields = error_fields(RuntimeError())
    fields.update(error_type="Interrupted", error="cancelled before the model answered (interrupt or "
                                                   "task cancellation); nothing more was sent")
    return fields


class Engine:
    """``lab.engine``: plan and run model calls. One per Lab."""

    def __init__(self, lab: "Lab", policy: RetryPolicy | None = None):
        self._lab = lab
        self.policy = policy or RetryPolicy()  # for single calls; the runner brings its own
        self._thread = LoopThread()
        # Store writes of the seam; its own pool, so that a result's row is written even when
        # the caller's task is cancelled while waiting (see ``io``). Few threads: SQLite has one
        # writer at a time, and more threads contend for the GIL (the gateway measured 63 req/s
        # with 4 writer threads on PostgreSQL, 70 with 1).
        writers = 1 if lab.store.dialect == "sqlite" else 2
        self._io = concurrent.futures.ThreadPoolExecutor(max_workers=writers, thread_name_prefix="promptlab-io")
        self._pending: set[concurrent.futures.Future] = set()
        self._pending_lock = threading.Lock()
        self._inflight: dict[str, concurrent.futures.Future] = {}
        self._local_reads = lab.store.dialect == "sqlite"
        self.owner = process_owner()  # recorded with pending generations (see Store.fail_orphaned_generations)
        self._no_retry: dict[int, Any] = {}

    # -- the loop and the threads ---------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """promptlab's event loop (started on first use)."""
        return self._thread.loop

    def in_loop(self) -> bool:
        return self._thread.in_loop()

    def blocking(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on promptlab's loop and wait for it: what every sync method does.

        Ctrl-C (a kernel interrupt in Jupyter) cancels it: in-flight requests are abandoned,
        nothing more is sent, and the work logs itself (up to ``STOP_GRACE_SECONDS``) before
        KeyboardInterrupt reaches the caller."""
        if self._thread.in_loop():
            coro.close()
            raise RuntimeError("blocking promptlab call made from inside promptlab's event loop; "
                               "use the a-prefixed async method instead")
        finished = threading.Event()

        async def guarded() -> T:
            try:
                return await coro
            finally:
                finished.set()

        future = asyncio.run_coroutine_threadsafe(guarded(), self.loop)
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()
            finished.wait(STOP_GRACE_SECONDS)
            raise

    async def awaiting(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on promptlab's loop from a coroutine on any loop. Cancelling the
        awaiting task cancels ``coro``."""
        if self._thread.in_loop():
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def background(self, coro: Coroutine[Any, Any, T]) -> "concurrent.futures.Future[T]":
        """Start ``coro`` on promptlab's loop without waiting; ``Lab.close()`` finishes it."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        with self._pending_lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: concurrent.futures.Future) -> None:
        with self._pending_lock:
            self._pending.discard(future)

    async def io(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run blocking store/retrieval work in a worker thread. Once submitted it runs to the
        end even if the awaiting task is cancelled, so a paid result's row is never half-lost."""
        future = self._io.submit(fn, *args, **kwargs)
        return await asyncio.shield(asyncio.wrap_future(future))

    def inflight(self, guid: str) -> concurrent.futures.Future | None:
        """The future of an async-mode generation started by this process, if still running."""
        return self._inflight.get(guid)

    # -- planning ------------------------------------------------------------------------------

    def plan_sync(self, action: str | Action, input: Any = None, *, environment: str | None = None,
                  version: int | str | None = None, session: str | None = None,
                  metadata_filter: Mapping[str, Any] | None = None, files: Sequence[Any] | None = None,
                  messages: Sequence[Mapping[str, Any]] | None = None, cache: bool = False,
                  streaming: bool = False, ext_user_id: str | None = None, experiment: str | None = None,
                  variant: str | None = None, run: str | None = None, repeat: int | None = None,
                  metadata: Mapping[str, Any] | None = None, log_failure: bool = True) -> Call:
        """``plan`` in the calling thread (it may read the store and build a retrieval index).

        ``action`` is a name/GUID (resolved at ``version`` or the one deployed to
        ``environment``) or an ``Action``. A call that fails here, after its action is known,
        still leaves an error row in the generation log (unless ``log_failure=False``)."""
        if session is not None:
            # Unknown session: NotFoundError before anything. Its user and name go with every
            # generation of the session (a call's own ext_user_id wins).
            known = self._lab.sessions.find(session)
            if ext_user_id is None:
                ext_user_id = known.ext_user_id
            if known.name is not None and (metadata is None or isinstance(metadata, Mapping)):
                metadata = {"session_name": known.name, **dict(metadata or {})}
        resolved, env = self._resolve(action, version, environment)
        options = dict(session=session, metadata_filter=metadata_filter, files=files, messages=messages,
                       cache=cache, streaming=streaming, ext_user_id=ext_user_id, experiment=experiment,
                       variant=variant, run=run, repeat=repeat, metadata=metadata)
        try:
            return self._render(resolved, env, input, **options)
        except PromptlabError as exc:
            if log_failure:
                self._lab.store.insert_generation(self._failure_row(resolved, env, input, exc, **options))
            raise

    async def plan(self, action: str | Action, input: Any = None, **options: Any) -> Call:
        """Decide everything about a call before any request; raises on bad input.

        Options as ``plan_sync``. Retrieval, session memory and PostgreSQL reads run in a worker
        thread, never on the caller's loop. Resolving an action in a SQLite store (a local read
        of about a millisecond), or one resolved in the last second, and rendering are done
        inline: measured, a thread hop per call cost more CPU than the read itself."""
        log_failure = options.pop("log_failure", True)
        known = isinstance(action, Action) or self._local_reads or \
            self._lab.actions.cached(action, options.get("version"), options.get("environment")) is not None
        inline = known and options.get("session") is None
        if not inline:
            return await asyncio.to_thread(self.plan_sync, action, input, log_failure=log_failure, **options)
        resolved, env = self._resolve(action, options.pop("version", None), options.pop("environment", None))
        if resolved.context:  # retrieval may build an index: seconds
            return await asyncio.to_thread(self.plan_sync, resolved, input, environment=env,
                                           log_failure=log_failure, **options)
        try:
            return self._render(resolved, env, input, **options)
        except PromptlabError as exc:
            if log_failure:
                await self.io(self._lab.store.insert_generation,
                              self._failure_row(resolved, env, input, exc, **options))
            raise

    def _resolve(self, action: str | Action, version: int | str | None,
                 environment: str | None) -> tuple[Action, str | None]:
        if isinstance(action, Action):
            return action, environment
        resolved = self._lab.actions.get(action, version=version, environment=environment)
        return resolved, (None if version is not None else normalize_environment(environment))

    def _render(self, resolved: Action, env: str | None, input: Any, *, session: str | None = None,
                metadata_filter: Mapping[str, Any] | None = None, files: Sequence[Any] | None = None,
                messages: Sequence[Mapping[str, Any]] | None = None, cache: bool = False,
                streaming: bool = False, metadata: Mapping[str, Any] | None = None, **tags: Any) -> Call:
        lab = self._lab
        input = request_input(input, messages=messages, files=files)
        check_json(input, "input")  # it is stored with the result: refuse it before paying for one
        if metadata_filter is not None:
            from .contexts.filters import compile_filter

            compile_filter(metadata_filter)  # the same rules whether or not a context is bound
        fields: dict[str, Any] = {"metadata": _metadata(metadata_filter, metadata)}
        variables, user_text = input_variables(resolved, input)
        if resolved.context:
            from .contexts import retrieve_for_action

            variables = retrieve_for_action(lab, resolved, variables, metadata_filter, fields, user_text)
        history = lab.sessions.history(session) if session is not None else []
        turn = build_turn(resolved, variables, user_text, history, files, messages)
        provider_name, provider_model = lab.providers.parse(resolved.model)
        return Call(guid=new_guid(), action=resolved, environment=env, input=input, turn=turn,
                    model=f"{provider_name}:{provider_model}", provider_name=provider_name,
                    provider_model=provider_model, params=dict(resolved.params), session=session,
                    metadata=fields["metadata"], streaming=streaming, use_cache=cache, **tags)

    def _failure_row(self, resolved: Action, env: str | None, input: Any, exc: BaseException, *,
                     session: str | None = None, metadata_filter: Mapping[str, Any] | None = None,
                     cache: bool = False, streaming: bool = False, metadata: Mapping[str, Any] | None = None,
                     files: Any = None, messages: Any = None, **tags: Any) -> dict[str, Any]:
        """The generation row of a call that failed before any request (it records why). An
        input that cannot be stored is left out, and the row says so."""
        metadata = _metadata(metadata_filter, metadata)
        unstorable = problem(input, "input")
        if unstorable:
            input, metadata = None, {**metadata, "input_not_stored": unstorable}
        failed = self.failed_call(resolved, input, environment=env, session=session, streaming=streaming,
                                  use_cache=cache, metadata=metadata, **tags)
        return failed.row(**error_fields(exc))

    def plan_chat(self, model: str, messages: Sequence[Mapping[str, Any]], *, name: str,
                  params: Mapping[str, Any] | None = None, input: Any = None,
                  metadata: Mapping[str, Any] | None = None, **tags: Any) -> Call:
        """A call of ready-made chat ``messages`` to ``model``, not a stored action (flows'
        free-form LLM steps). ``name`` is what the generation log shows as its action."""
        provider_name, provider_model = self._lab.providers.parse(model)
        action = Action(guid=None, name=name, version=None, version_guid=None,  # type: ignore[arg-type]
                        model=model)
        return Call(guid=new_guid(), action=action, environment=None, input=input,
                    turn=Turn(system=[], history=[], new=[dict(m) for m in messages]),
                    model=f"{provider_name}:{provider_model}", provider_name=provider_name,
                    provider_model=provider_model, params=dict(params or {}), metadata=dict(metadata or {}),
                    **tags)

    @staticmethod
    def failed_call(action: Action, input: Any, **tags: Any) -> Call:
        """A call that never got as far as a request (its row records why)."""
        return Call(guid=new_guid(), action=action, input=input, turn=None, model=action.model,
                    provider_name="", provider_model="", params=dict(action.params), **tags)

    # -- running -------------------------------------------------------------------------------

    def provider(self, name: str) -> Any:
        """The provider ``name`` as the seam calls it: without the SDK's own retries (the seam
        retries, with deadlines)."""
        provider = self._lab.providers.get(name)
        sibling = self._no_retry.get(id(provider))
        if sibling is None or sibling[0] is not provider:
            with_options = getattr(provider, "with_options", None)
            sibling = (provider, with_options(max_retries=0) if with_options else provider)
            self._no_retry[id(provider)] = sibling
        return sibling[1]

    async def complete(self, call: Call, *, stream: TokenStream | None = None,
                       policy: RetryPolicy | None = None,
                       hooks: AttemptHooks | None = None) -> tuple[Completion, bool]:
        """The call's completion from the cache or the provider: ``(completion, cached)``.
        Nothing is logged (``run`` logs; the experiment runner logs in batches)."""
        policy = policy or self.policy
        store = self._lab.store
        key = call.cache_key if call.use_cache else None
        if key is not None:
            hit = await asyncio.to_thread(store.cache_get, key, self._lab.cache_ttl)
            if hit is not None:
                completion = Completion(
                    text=hit["output"], model=hit["model"] or call.provider_model,
                    usage=Usage(hit["prompt_tokens"] or 0, hit["completion_tokens"] or 0),
                    finish_reason=hit["finish_reason"], latency_ms=0.0, ttft_ms=0.0 if stream else None)
                if stream is not None:
                    stream.push(completion.text)
                return completion, True
        base = self._lab.providers.get(call.provider_name)
        provider = self.provider(call.provider_name)
        attempts = policy.max_attempts or int(getattr(base, "max_retries", 2)) + 1
        attempt_timeout = policy.attempt_timeout or float(getattr(base, "timeout", 60.0))
        request = call.request
        loop = asyncio.get_running_loop()
        call_deadline = None if policy.call_timeout is None else loop.time() + policy.call_timeout
        pushed = False
        made = 0

        async def once() -> Completion:
            nonlocal pushed, made
            made += 1
            async with (hooks.attempt(call) if hooks is not None else _no_hooks()):
                # Timed from the request, not from waiting for a slot; one timer per attempt:
                # whichever of the two deadlines comes first.
                attempt_deadline = loop.time() + attempt_timeout
                deadline = attempt_deadline if call_deadline is None else min(attempt_deadline, call_deadline)
                try:
                    async with deadline_at(deadline):
                        if stream is None:
                            fast = getattr(provider, "complete_lean", None) if policy.lean else None
                            return await (fast or provider.complete)(request)
                        completion = None
                        async for item in provider.stream(request):
                            if isinstance(item, str):
                                pushed = True
                                stream.push(item)
                            else:
                                completion = item
                        if completion is None:  # a provider that broke the protocol
                            raise ProviderError("stream ended without a final completion", call.provider_name)
                        return completion
                except TimeoutError:
                    if deadline < attempt_deadline:
                        raise call_deadline_error(
                            f"gave up after {policy.call_timeout:g} s across attempts (the call deadline)",
                            call.provider_name) from None
                    raise ProviderTimeoutError(
                        f"no complete answer within {attempt_timeout:g} s (the attempt deadline: "
                        "connect, whole body or stream)", provider=call.provider_name) from None

        def retryable(exc: BaseException) -> bool:
            return isinstance(exc, RETRYABLE) and not getattr(exc, "call_deadline", False) and not pushed

        def wait(state: tenacity.RetryCallState) -> float:
            delay = wait_before_retry(state)
            if call_deadline is not None and loop.time() + delay >= call_deadline:
                # No time left for another attempt: end with the call deadline now.
                raise call_deadline_error(f"gave up after {policy.call_timeout:g} s across attempts (the call "
                                          f"deadline; last: {state.outcome.exception()})", call.provider_name)
            return delay

        try:  # the common case, one attempt, without building the retry machinery
            completion = await once()
        except Exception as exc:
            if attempts <= 1 or not retryable(exc):
                raise
            if hooks is not None:
                hooks.on_retry(call, exc)
            retrying = tenacity.AsyncRetrying(
                retry=tenacity.retry_if_exception(retryable), wait=wait,
                stop=tenacity.stop_after_attempt(attempts - 1), reraise=True,
                before_sleep=(lambda state: hooks.on_retry(call, state.outcome.exception()))
                if hooks is not None else None)
            try:
                await asyncio.sleep(wait(_first_retry_state(retrying, exc)))
                async for attempt in retrying:
                    with attempt:
                        completion = await once()
            except PromptlabError as final:
                if made > 1 and final.args and isinstance(final.args[0], str):
                    final.args = (f"{final.args[0]} (after {made} attempts)",) + final.args[1:]
                raise
        if key is not None:
            await self.io(store.cache_put, key, completion.text, completion.model, completion.finish_reason,
                          completion.usage.prompt_tokens, completion.usage.completion_tokens)
        return completion, False

    async def run(self, call: Call, *, stream: TokenStream | None = None, inserted: bool = False,
                  target: Generation | None = None, policy: RetryPolicy | None = None,
                  hooks: AttemptHooks | None = None) -> Generation:
        """Run a planned call and log it: one generation row (``inserted``: it exists as
        pending), the session's memory, the cache. Raises ProviderError after logging it.

        ``target``, a Generation already handed to the user, is filled in before the stream
        ends, so that ``r.msg`` is whole when iteration stops."""
        try:
            completion, cached = await self.complete(call, stream=stream, policy=policy, hooks=hooks)
        except BaseException as exc:  # provider errors, cancellation, bugs: all leave a trace
            fields = interrupted_fields() if isinstance(exc, asyncio.CancelledError) else error_fields(exc)
            # A stream's reader gets a promptlab error, never another task's CancelledError.
            reported = exc if isinstance(exc, PromptlabError) else PromptlabError(fields["error"])
            try:  # logged before the caller (or a stream's reader) learns of the failure
                await self.io(self._write, call, fields, inserted, None)
            finally:
                self._fill(call, fields, target, stream, reported)
            raise
        cost = 0.0 if cached else self._lab.cost(call.model, completion.usage.prompt_tokens,
                                                 completion.usage.completion_tokens)
        fields = completion_fields(completion, cost, cached)
        memory = None
        if call.session is not None:
            memory = call.turn.new + [{"role": "assistant", "content": completion.text}]
        try:
            await self.io(self._write, call, fields, inserted, memory)
        finally:  # even if cancelled while the row is written (it is written all the same)
            done = self._fill(call, fields, target, stream, None)
        return done

    def _write(self, call: Call, fields: dict[str, Any], inserted: bool,
               memory: list[dict[str, Any]] | None) -> None:
        store = self._lab.store
        if inserted:
            store.update_generation(call.guid, fields)
        else:
            store.insert_generation(call.row(**fields))
        if memory is not None:
            store.append_session_messages(call.session, memory, call.guid)

    def _fill(self, call: Call, fields: dict[str, Any], target: Generation | None,
              stream: TokenStream | None, error: BaseException | None) -> Generation:
        done = self.generation(call, **fields)
        if target is not None:
            for name in ("status", "msg", "usage", "latency_ms", "ttft_ms", "cost_usd", "cached",
                         "finish_reason", "finished_at", "error", "error_type"):
                setattr(target, name, getattr(done, name))
        if stream is not None:
            stream.finish(error)
        return done

    async def start(self, call: Call, *, async_mode: bool = False) -> Generation:
        """``run`` the call; a streamed or async-mode one in the background, returning at once
        (a streamed result fills in as it completes; an async-mode one is a snapshot, read back
        with ``lab.generations.get`` / ``wait``)."""
        if not async_mode and not call.streaming:
            return await self.run(call)
        await self.io(self._lab.store.insert_generation, call.row(), self.owner)
        generation = self.generation(call, status="pending", msg=None if async_mode else "")
        generation.stream = TokenStream() if call.streaming else None
        task = self.background(self.run(call, stream=generation.stream, inserted=True,
                                        target=generation if call.streaming else None))
        if async_mode:
            self._inflight[call.guid] = task
            task.add_done_callback(lambda _f, guid=call.guid: self._inflight.pop(guid, None))
        return generation

    def generation(self, call: Call, **updates: Any) -> Generation:
        """The Generation a call's row describes (with ``updates`` applied)."""
        return Generation.from_row(call.row(**updates), self._lab.gateway_url)

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self, timeout: float = 60.0, final: Callable[[], Awaitable[Any]] | None = None) -> None:
        """Finish background work (up to ``timeout`` s), run ``final()`` on the loop, stop it."""
        with self._pending_lock:
            pending = list(self._pending)
        if pending:
            concurrent.futures.wait(pending, timeout=timeout)
        self._thread.close(final=final)
        self._io.shutdown(wait=True)


@contextlib.asynccontextmanager
async def _no_hooks():
    yield


def _metadata(metadata_filter: Any, metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    # (a filter that is not a dict is refused by compile_filter; the failure row leaves it out)
    kept = {"metadata_filter": dict(metadata_filter)} if isinstance(metadata_filter, Mapping) and metadata_filter else {}
    return {**kept, **dict(metadata or {})}


__all__ = ["Engine", "RetryPolicy", "AttemptHooks", "RETRYABLE", "wait_before_retry", "STOP_GRACE_SECONDS"]
