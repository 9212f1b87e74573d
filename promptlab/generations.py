"""Generations: the result of running an action, and the log of every run.

``Generation`` is what ``lab.actions.prompt()`` returns and what ``lab.generations.get()`` reads
back: the seed's response (``msg``, ``feedback_url``, ``streaming``) plus everything promptlab
logs about the call. ``TokenStream`` carries streamed deltas from promptlab's event loop to a
sync or async consumer.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterator

from ._twins import async_twin
from .checks import count_or_none
from .errors import ConfigError, InvalidInputError, NotFoundError, PromptlabError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .lab import Lab

STATUSES = ("pending", "done", "error")


class TokenStream:
    """Text deltas of a streamed generation, iterable with ``for`` or ``async for``.

    Deltas arrive on promptlab's loop thread; the consumer may be any thread or event loop.
    A provider error mid-stream is raised from the iteration after the deltas received so far.
    """

    def __init__(self) -> None:
        self._deltas: list[str] = []
        self._done = False
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    # producer side (promptlab's engine, on its loop) ------------------------------------------
    def push(self, delta: str) -> None:
        """Append a delta (called by the producer, not by consumers)."""
        with self._cond:
            self._deltas.append(delta)
            self._cond.notify_all()
        self._wake_async()

    def finish(self, error: BaseException | None = None) -> None:
        """End the stream, with the error iteration should raise if it failed."""
        with self._cond:
            self._done = True
            self._error = error
            self._cond.notify_all()
        self._wake_async()

    def _wake_async(self) -> None:
        for loop, event in list(self._async_waiters):
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the consumer's loop is closed
                pass

    # consumer side -------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self._done

    @property
    def text(self) -> str:
        """What has arrived so far."""
        with self._cond:
            return "".join(self._deltas)

    def _next(self, index: int) -> tuple[str | None, bool]:
        """(delta at index or None, finished) without blocking; raises a stored error."""
        with self._cond:
            if index < len(self._deltas):
                return self._deltas[index], False
            if self._done:
                if self._error is not None:
                    raise self._error
                return None, True
            return None, False

    def __iter__(self) -> Iterator[str]:
        index = 0
        while True:
            with self._cond:
                while index >= len(self._deltas) and not self._done:
                    self._cond.wait()
            delta, finished = self._next(index)
            if finished:
                return
            if delta is not None:
                index += 1
                yield delta

    async def __aiter__(self) -> AsyncIterator[str]:
        event = asyncio.Event()
        waiter = (asyncio.get_running_loop(), event)
        self._async_waiters.append(waiter)
        try:
            index = 0
            while True:
                event.clear()
                delta, finished = self._next(index)
                if finished:
                    return
                if delta is None:
                    await event.wait()
                    continue
                index += 1
                yield delta
        finally:
            self._async_waiters.remove(waiter)

    def wait(self, timeout: float | None = None) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._done, timeout=timeout):
                raise TimeoutError("the stream did not finish in time")


@dataclass(eq=False)
class Generation:
    """One run of an action: the seed's response fields plus the logged details.

    ``msg`` is the generated text; for ``streaming=True`` it is whole once ``stream`` is
    exhausted. ``usage`` holds prompt/completion/total tokens; ``cost_usd`` is None when the
    model's price is unknown. ``feedback_url`` is the data point's URL on the gateway: absolute
    when the Lab knows its gateway (``Lab(gateway_url=...)`` or ``$PROMPTLAB_GATEWAY_URL``), else
    gateway-relative (``/v1/data/{guid}``); ``lab.feedback.log`` takes it as well as the GUID.
    """

    guid: str
    status: str
    msg: str | None = None
    feedback_url: str = ""
    streaming: bool = False
    cached: bool = False
    usage: dict[str, int] = field(default_factory=dict)
    latency_ms: float | None = None
    ttft_ms: float | None = None
    cost_usd: float | None = None
    model: str | None = None
    action: str | None = None
    action_guid: str | None = None
    action_version: int | None = None
    environment: str | None = None
    input: Any = None
    messages: list[dict[str, Any]] | None = None
    params: dict[str, Any] | None = None
    finish_reason: str | None = None
    session: str | None = None
    ext_user_id: str | None = None
    error: str | None = None
    error_type: str | None = None
    metadata: dict[str, Any] | None = None
    experiment: str | None = None
    variant: str | None = None
    run: str | None = None
    repeat: int | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None
    stream: TokenStream | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return self.msg if self.msg is not None else f"<generation {self.guid} {self.status}>"

    def wait(self, timeout: float | None = None) -> "Generation":
        """Block until a streamed generation has finished; returns self."""
        if self.stream is not None:
            self.stream.wait(timeout)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "stream"}

    @classmethod
    def from_row(cls, row: dict[str, Any], gateway_url: str | None = None) -> "Generation":
        usage = {}
        if row.get("prompt_tokens") is not None or row.get("completion_tokens") is not None:
            prompt_tokens = row.get("prompt_tokens") or 0
            completion_tokens = row.get("completion_tokens") or 0
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                     "total_tokens": prompt_tokens + completion_tokens}
        return cls(
            guid=row["guid"], status=row["status"], msg=row.get("output"),
            feedback_url=feedback_url(gateway_url, row["guid"]),
            streaming=bool(row.get("streaming")), cached=bool(row.get("cached")), usage=usage,
            latency_ms=row.get("latency_ms"), ttft_ms=row.get("ttft_ms"), cost_usd=row.get("cost_usd"),
            model=row.get("model"), action=row.get("action_name"), action_guid=row.get("action_guid"),
            action_version=row.get("action_version"), environment=row.get("environment"),
            input=row.get("input"), messages=row.get("messages"), params=row.get("params"),
            finish_reason=row.get("finish_reason"), session=row.get("session_guid"),
            ext_user_id=row.get("ext_user_id"), error=row.get("error"), error_type=row.get("error_type"),
            metadata=row.get("metadata"), experiment=row.get("experiment_guid"),
            variant=row.get("variant"), run=row.get("run_guid"), repeat=row.get("repeat"),
            created_at=row.get("created_at"), finished_at=row.get("finished_at"),
        )


DATA_PATH = "/v1/data/"


def feedback_url(gateway_url: str | None, guid: str) -> str:
    """The seed's feedback URL for a generation: absolute under ``gateway_url``, or the
    gateway-relative path ``/v1/data/{guid}`` when no gateway URL is known."""
    if not gateway_url:
        return f"{DATA_PATH}{guid}"
    return f"{gateway_url.rstrip('/')}{DATA_PATH}{guid}"


def generation_guid(value: Any, name: str = "guid") -> str:
    """A generation's GUID from its GUID, its ``feedback_url`` (absolute or gateway-relative, also
    with the gateway's ``/feedback`` suffix) or the Generation itself.

    >>> generation_guid("https://gw.example/v1/data/123e4567")
    '123e4567'
    """
    guid = getattr(value, "guid", value)
    if isinstance(guid, str) and DATA_PATH in guid:
        tail = guid[guid.rindex(DATA_PATH) + len(DATA_PATH):].split("?", 1)[0].split("#", 1)[0].strip("/")
        if tail.endswith("/feedback"):
            tail = tail[:-len("/feedback")]
        if not tail or "/" in tail:
            raise InvalidInputError(f"{name}: {value!r} is not a data point URL ({DATA_PATH}<guid>)")
        return tail
    if not isinstance(guid, str) or not guid:
        raise InvalidInputError(f"{name} must be a generation GUID or feedback_url, got {value!r}")
    return guid


class Generations:
    """``lab.generations``: read the generation log."""

    def __init__(self, lab: "Lab"):
        self._lab = lab

    def get(self, guid: str) -> Generation:
        """A generation by its GUID (or its ``feedback_url``)."""
        guid = generation_guid(guid)
        row = self._lab.store.get_generation(guid)
        if row is None:
            raise NotFoundError("generation", guid)
        return Generation.from_row(row, self._lab.gateway_url)

    def list(self, limit: int | None = 100, **filters: Any) -> list[Generation]:
        """Newest first. Filters: action, version, environment, status, session, ext_user_id,
        model, cached, experiment, variant, run, since, until."""
        rows = self._lab.store.list_generations(limit=count_or_none(limit, "limit"), **filters)
        return [Generation.from_row(r, self._lab.gateway_url) for r in rows]

    def to_pandas(self, limit: int | None = None, **filters: Any) -> "pd.DataFrame":
        import pandas as pd

        rows = [g.to_dict() for g in self.list(limit=limit, **filters)]
        return pd.DataFrame(rows, columns=[f.name for f in fields(Generation) if f.name != "stream"])

    def wait(self, guid: str, timeout: float = 120.0, poll_interval: float = 0.05) -> Generation:
        """Wait until an async-mode generation is done or failed, and return it.

        A generation started by this process is awaited directly; one started elsewhere (another
        process sharing the store) is polled.
        """
        guid = generation_guid(guid)
        timeout, poll_interval = _wait_times(timeout, poll_interval)
        future = self._lab.engine.inflight(guid)
        if future is not None:
            try:
                future.result(timeout=timeout)
            except PromptlabError:
                pass  # the error is logged on the generation row
            except TimeoutError as exc:
                raise TimeoutError(f"generation {guid} not finished after {timeout} s") from exc
            return self.get(guid)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self._lab.store.generation_status(guid)
            if status is None:
                raise NotFoundError("generation", guid)
            if status != "pending":
                return self.get(guid)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"generation {guid} still pending after {timeout} s")
            time.sleep(poll_interval)

    async def await_(self, guid: str, timeout: float = 120.0, poll_interval: float = 0.05) -> Generation:
        """Async twin of ``wait`` (``await`` is a keyword, hence the underscore): waits without
        blocking the caller's event loop, and without holding a thread while it waits."""
        guid = generation_guid(guid)
        timeout, poll_interval = _wait_times(timeout, poll_interval)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        future = self._lab.engine.inflight(guid)
        if future is not None:
            try:
                await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), timeout)
            except PromptlabError:
                pass  # the error is logged on the generation row
            except (TimeoutError, asyncio.TimeoutError) as exc:
                raise TimeoutError(f"generation {guid} not finished after {timeout} s") from exc
            return await self.aget(guid)
        while True:
            status = await asyncio.to_thread(self._lab.store.generation_status, guid)
            if status is None:
                raise NotFoundError("generation", guid)
            if status != "pending":
                return await self.aget(guid)
            if deadline is not None and loop.time() > deadline:
                raise TimeoutError(f"generation {guid} still pending after {timeout} s")
            await asyncio.sleep(poll_interval)

    aget = async_twin(get)
    alist = async_twin(list)
    ato_pandas = async_twin(to_pandas)


def _wait_times(timeout: Any, poll_interval: Any) -> tuple[float | None, float]:
    for name, value, none_ok in (("timeout", timeout, True), ("poll_interval", poll_interval, False)):
        if value is None and none_ok:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ConfigError(f"{name} must be a non-negative number of seconds{' or None' if none_ok else ''}, "
                              f"not {value!r}")
    return timeout, poll_interval
