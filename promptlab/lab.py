"""The Lab: one store, one provider registry, and the resources built on them.

>>> import promptlab as pl
>>> with pl.Lab("sqlite:///demo.db") as lab:
...     lab.actions.create("hello", prompt="Say hello to {{name}}", model="sim:extractive")
...     print(lab.actions.prompt("hello", "Ada").msg)
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from . import pricing
from .actions import Actions
from .engine import Engine, RetryPolicy
from .errors import ConfigError
from .generations import Generations
from .owners import owner_is_dead
from .providers import ProviderRegistry
from .sessions import Sessions
from .store import Store

if TYPE_CHECKING:  # pragma: no cover
    from .contexts import Contexts
    from .data import Data
    from .experiments import Experiments
    from .feedback import Feedback
    from .flows import Flows

DEFAULT_MODEL = "sim:extractive"


class Lab:
    """promptlab's entry point.

    ``db``: a SQLAlchemy URL or a SQLite file path; default ``$PROMPTLAB_DB``, else
    ``sqlite:///promptlab.db`` in the working directory. ``prices`` extends the price table
    (USD per 1M tokens by ``provider:model``). ``cache_ttl`` is the response cache's lifetime in
    seconds (None: forever). ``memory_window``: how many earlier session messages a turn sends.
    ``gateway_url``: where a promptlab gateway serves this store (default
    ``$PROMPTLAB_GATEWAY_URL``), making ``feedback_url`` absolute; without one it is the
    gateway-relative path ``/v1/data/{guid}``.
    ``sim_options`` configure the in-process simulator (latency_ms, error_rate, ...).
    ``issue_tags``: the vocabulary of feedback issue tags (a sensible default list when None).
    ``call_timeout``: seconds a single call (``prompt``, a flow's model call) may take across
    all its attempts; each attempt is bounded by its provider's ``timeout`` in total (connect,
    the whole body or stream), so a server that trickles bytes cannot stretch it.
    ``action_cache_seconds``: how long a resolved action version is reused without reading the
    store (changes made through this Lab are seen at once, another process's within this time).
    """

    def __init__(self, db: str | os.PathLike | None = None, *,
                 providers: ProviderRegistry | None = None,
                 prices: Mapping[str, Mapping[str, float]] | None = None,
                 cache_ttl: float | None = 7 * 24 * 3600, memory_window: int = 20,
                 gateway_url: str | None = None, default_model: str = DEFAULT_MODEL,
                 sim_options: Mapping[str, Any] | None = None,
                 issue_tags: Sequence[str] | None = None, call_timeout: float | None = 300.0,
                 action_cache_seconds: float = 1.0):
        if memory_window < 0:
            raise ConfigError("memory_window must be >= 0")
        if call_timeout is not None and (isinstance(call_timeout, bool) or not isinstance(call_timeout, (int, float))
                                         or call_timeout <= 0):
            raise ConfigError(f"call_timeout must be a positive number of seconds or None, not {call_timeout!r}")
        if gateway_url is None:
            gateway_url = os.environ.get("PROMPTLAB_GATEWAY_URL") or None
        if gateway_url is not None and (not isinstance(gateway_url, str)
                                        or not gateway_url.startswith(("http://", "https://"))):
            raise ConfigError(f"gateway_url must be an http(s) URL (the gateway as clients reach it), "
                              f"not {gateway_url!r}")
        self.store = Store(db)
        # A streamed or async-mode call left pending by a process that died is marked failed,
        # not pending forever (one indexed query).
        self.store.fail_orphaned_generations(owner_is_dead)
        self.providers = providers if providers is not None else ProviderRegistry(sim_options=sim_options)
        self.prices = pricing.load_prices(prices)
        self.cache_ttl = cache_ttl
        self.memory_window = memory_window
        self.gateway_url = gateway_url
        self.default_model = default_model
        self.issue_tags = list(issue_tags) if issue_tags is not None else None
        self.engine = Engine(self, RetryPolicy(call_timeout=call_timeout))
        self.actions = Actions(self, cache_seconds=action_cache_seconds)
        self.generations = Generations(self)
        self.sessions = Sessions(self)
        self._closed = False

    def __repr__(self) -> str:
        return f"Lab(db={self.store.safe_url!r})"

    # Resources beyond the core are built on first use, keeping `import promptlab` and
    # `Lab()` cheap for scripts that only run actions.
    @cached_property
    def feedback(self) -> "Feedback":
        from .feedback import Feedback

        return Feedback(self)

    @cached_property
    def data(self) -> "Data":
        from .data import Data

        return Data(self)

    @cached_property
    def contexts(self) -> "Contexts":
        from .contexts import Contexts

        return Contexts(self)

    @cached_property
    def flows(self) -> "Flows":
        from .flows import Flows

        return Flows(self)

    @cached_property
    def experiments(self) -> "Experiments":
        from .experiments import Experiments

        return Experiments(self)

    # -- helpers for the resources ---------------------------------------------------------

    def cost(self, model: str, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
        return pricing.cost_usd(self.prices, model, prompt_tokens, completion_tokens)

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self, timeout: float = 60.0) -> None:
        """Finish background generations (up to ``timeout`` s), close clients and the store."""
        if self._closed:
            return
        self._closed = True
        self.engine.close(timeout, final=self.providers.aclose)
        self.store.close()

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
