"""The Lab: one store, one provider registry, and the resources built on them.

>>> import promptlab as pl
>>> with pl.Lab("sqlite:///demo.db") as lab:
...     lab.actions.create("hello", prompt="Say hello to {{name}}", model="sim:extractive")
...     print(lab.actions.prompt("hello", "Ada").msg)
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from typing import Any, Mapping

from . import pricing
from ._loop import LoopThread
from .actions import Action, Actions
from .errors import ConfigError
from .generations import Generations
from .providers import ProviderRegistry
from .sessions import Sessions
from .store import Store

DEFAULT_MODEL = "sim:extractive"


class Lab:
    """promptlab's entry point.

    ``db``: a SQLAlchemy URL or a SQLite file path; default ``$PROMPTLAB_DB``, else
    ``sqlite:///promptlab.db`` in the working directory. ``prices`` extends the price table
    (USD per 1M tokens by ``provider:model``). ``cache_ttl`` is the response cache's lifetime in
    seconds (None: forever). ``memory_window``: how many earlier session messages a turn sends.
    ``gateway_url``: where a promptlab gateway serves this store, for ``feedback_url``.
    ``sim_options`` configure the in-process simulator (latency_ms, error_rate, ...).
    """

    def __init__(self, db: str | os.PathLike | None = None, *,
                 providers: ProviderRegistry | None = None,
                 prices: Mapping[str, Mapping[str, float]] | None = None,
                 cache_ttl: float | None = 7 * 24 * 3600, memory_window: int = 20,
                 gateway_url: str | None = None, default_model: str = DEFAULT_MODEL,
                 sim_options: Mapping[str, Any] | None = None):
        if memory_window < 0:
            raise ConfigError("memory_window must be >= 0")
        self.store = Store(db)
        self.providers = providers if providers is not None else ProviderRegistry(sim_options=sim_options)
        self.prices = pricing.load_prices(prices)
        self.cache_ttl = cache_ttl
        self.memory_window = memory_window
        self.gateway_url = gateway_url
        self.default_model = default_model
        self._loop = LoopThread()
        self._pending: set[concurrent.futures.Future] = set()
        self._pending_lock = threading.Lock()
        self.actions = Actions(self)
        self.generations = Generations(self)
        self.sessions = Sessions(self)
        self._closed = False

    def __repr__(self) -> str:
        return f"Lab(db={self.store.safe_url!r})"

    # -- helpers for the resources ---------------------------------------------------------

    def cost(self, model: str, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
        return pricing.cost_usd(self.prices, model, prompt_tokens, completion_tokens)

    def _retrieve(self, action: Action, variables: dict[str, Any],
                  metadata_filter: Mapping[str, Any] | None, call_fields: dict[str, Any]) -> dict[str, Any]:
        """Fill a bound context's template variable (no-op for actions without a context)."""
        return variables

    def _track(self, future: concurrent.futures.Future) -> None:
        """Remember background work (async-mode and streamed runs) so close() can finish it."""
        with self._pending_lock:
            self._pending.add(future)
        future.add_done_callback(self._untrack)

    def _untrack(self, future: concurrent.futures.Future) -> None:
        with self._pending_lock:
            self._pending.discard(future)

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self, timeout: float = 60.0) -> None:
        """Finish background generations (up to ``timeout`` s), close clients and the store."""
        if self._closed:
            return
        self._closed = True
        with self._pending_lock:
            pending = list(self._pending)
        if pending:
            concurrent.futures.wait(pending, timeout=timeout)
        self._loop.close(final=self.providers.aclose)
        self.store.close()

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
