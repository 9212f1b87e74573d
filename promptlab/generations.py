"""Generations: the result of running an action, and the log of every run.

``Generation`` is what ``lab.actions.prompt()`` returns and what ``lab.generations.get()`` reads
back: the seed's response (``msg``, ``feedback_url``, ``streaming``) plus everything promptlab
logs about the call. ``TokenStream`` carries streamed deltas from promptlab's event loop to a
sync or async consumer.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterator

from .checks import count_or_none
from .errors import NotFoundError, PromptlabError

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
    model's price is unknown.
    """

    guid: str
    status: str
    msg: str | None = None
    feedback_url: str | None = None
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


def feedback_url(gateway_url: str | None, guid: str) -> str | None:
    """The seed's feedback URL for a generation, once a gateway URL is configured."""
    if not gateway_url:
        return None
    return f"{gateway_url.rstrip('/')}/v1/data/{guid}"


class Generations:
    """``lab.generations``: read the generation log."""

    def __init__(self, lab: "Lab"):
        self._lab = lab

    def get(self, guid: str) -> Generation:
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
        future = self._lab.engine.inflight(guid)
        if future is not None:
            try:
                future.result(timeout=timeout)
            except PromptlabError:
                pass  # the error is logged on the generation row
            except TimeoutError as exc:
                raise TimeoutError(f"generation {guid} not finished after {timeout} s") from exc
            return self.get(guid)
        deadline = time.monotonic() + timeout
        while True:
            status = self._lab.store.generation_status(guid)
            if status is None:
                raise NotFoundError("generation", guid)
            if status != "pending":
                return self.get(guid)
            if time.monotonic() > deadline:
                raise TimeoutError(f"generation {guid} still pending after {timeout} s")
            time.sleep(poll_interval)
