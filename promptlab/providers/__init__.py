"""Model providers and the registry that maps ``provider:model`` strings to them.

Every provider speaks OpenAI Chat Completions through ``OpenAIProvider`` (the only user of the
``openai`` SDK), including the offline simulator ``sim``, which is reached in-process through the
real SDK over an ``httpx2.ASGITransport``. Importing this package does not import ``openai``:
that happens when a provider is first built.

>>> reg = ProviderRegistry()
>>> reg.register("ollama", base_url="http://127.0.0.1:11434/v1")
>>> reg.parse("ollama:llama3:8b"), reg.parse("gpt-4o-mini"), reg.parse("ft:gpt-4o-mini:org::id")
(('ollama', 'llama3:8b'), ('openai', 'gpt-4o-mini'), ('openai', 'ft:gpt-4o-mini:org::id'))

An unregistered prefix is an error naming the registered providers (``olama:llama3``).
"""

from __future__ import annotations

import difflib
import os
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from promptlab.errors import ConfigError, NotFoundError
from promptlab.providers.base import ChatRequest, Completion, Provider, StreamItem, Usage
from promptlab.providers.content import image_part, user_message

if TYPE_CHECKING:
    import httpx2

    from promptlab.providers.openai import OpenAIProvider

__all__ = [
    "ProviderRegistry",
    "parse_model",
    "OpenAIProvider",
    "ChatRequest",
    "Completion",
    "Usage",
    "Provider",
    "StreamItem",
    "image_part",
    "user_message",
    "DEFAULT_PROVIDER",
    "SIM_BASE_URL",
]

DEFAULT_PROVIDER = "openai"
SIM_BASE_URL = "http://sim.local/v1"
_BUILTIN_NAMES = ("openai", "sim")
_OPENAI_PUBLIC_BASE_URL = "https://api.openai.com/v1"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")


def __getattr__(name: str) -> Any:
    # Deferred so that `import promptlab` does not pay for importing the openai SDK.
    if name == "OpenAIProvider":
        from promptlab.providers.openai import OpenAIProvider

        return OpenAIProvider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def parse_model(model: str) -> tuple[str, str]:
    """Split a model string using the built-in provider names (``openai``, ``sim``).

    >>> parse_model("sim:extractive"), parse_model("gpt-4o-mini")
    (('sim', 'extractive'), ('openai', 'gpt-4o-mini'))

    Use ``ProviderRegistry.parse`` to also recognise providers registered at run time.
    """
    return _parse(model, _BUILTIN_NAMES)


def _parse(model: str, names: Iterable[str]) -> tuple[str, str]:
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"a model must be a non-empty string such as 'openai:gpt-4o-mini', got {model!r}")
    model = model.strip()
    prefix, sep, rest = model.partition(":")
    known = list(names)
    if sep and prefix in known:
        if not rest:
            raise ConfigError(f"model {model!r} names provider {prefix!r} but no model after the colon")
        return prefix, rest
    if sep and prefix != "ft" and _NAME.match(prefix):
        # A typo ("olama:llama3") must not quietly become an OpenAI model and fail later for want
        # of an OpenAI key. OpenAI fine-tunes ("ft:...") and explicit "openai:..." still work.
        close = difflib.get_close_matches(prefix, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"model {model!r}: {prefix!r} is not a registered provider{hint}; registered providers: "
            f"{', '.join(known)}. Register it with lab.providers.register({prefix!r}, base_url=...), or write "
            f"'openai:{model}' for an OpenAI-compatible model whose name has a colon")
    return DEFAULT_PROVIDER, model


def _check_client_options(*, timeout: Any, max_retries: Any) -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigError(f"max_retries must be a non-negative integer, got {max_retries!r}")


@dataclass
class _Entry:
    name: str
    kind: str  # "endpoint" (built lazily), "object" (given ready), "sim" (built-in simulator)
    base_url: str | None = None
    api_key_env: str | None = None
    api_key: str | None = None
    timeout: float = 60.0
    max_retries: int = 2
    http_client: Any = None
    default_headers: Mapping[str, str] | None = None
    provider: Any = None


class ProviderRegistry:
    """Named providers, built at first use.

    Built in: ``openai`` (``$OPENAI_BASE_URL`` or the public API, key ``$OPENAI_API_KEY``) and
    ``sim``, the offline simulator (options from ``sim_options``, passed to its ``create_app``),
    served in-process through the real openai client over ``LiveASGITransport``.
    The registry owns the providers it holds: ``aclose()`` closes them all.

    >>> reg = ProviderRegistry(sim_options={"latency_ms": 5})
    >>> reg.register("vllm", base_url="http://gpu-box:8000/v1", api_key_env="VLLM_KEY")
    >>> # provider, model = reg.resolve("vllm:meta-llama/Llama-3-8B")
    """

    def __init__(self, sim_options: Mapping[str, Any] | None = None):
        self._sim_options = dict(sim_options or {})
        self._lock = threading.RLock()
        self._entries: dict[str, _Entry] = {
            "openai": _Entry("openai", "endpoint", api_key_env="OPENAI_API_KEY"),
            "sim": _Entry("sim", "sim", base_url=SIM_BASE_URL),
        }
        self._retired: list[Any] = []  # replaced providers, closed by aclose()
        self._sim_app: Any = None
        self._sim_http: httpx2.AsyncClient | None = None

    # -- registration ---------------------------------------------------------------------------

    def register(
        self,
        name: str,
        base_url: str | None = None,
        api_key_env: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        http_client: httpx2.AsyncClient | None = None,
        default_headers: Mapping[str, str] | None = None,
        provider: Provider | None = None,
    ) -> None:
        """Add or replace a provider: an OpenAI-compatible endpoint, or a ready ``Provider`` object.

        With neither ``api_key`` nor ``api_key_env`` the endpoint is called without a real key
        (fine for local servers). A replaced provider is closed by the next ``aclose()``.

        >>> ProviderRegistry().register("ollama", base_url="http://127.0.0.1:11434/v1", api_key_env="OLLAMA_KEY")
        """
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(
                f"provider name {name!r} must start with a letter and contain only letters, digits, '_' or '-'"
            )
        if provider is not None:
            given = [k for k, v in (("base_url", base_url), ("api_key_env", api_key_env), ("api_key", api_key),
                                    ("http_client", http_client), ("default_headers", default_headers)) if v is not None]
            if given:
                raise ConfigError(
                    f"register({name!r}): pass either provider= or endpoint settings, not both ({', '.join(given)})"
                )
            if not isinstance(provider, Provider):
                raise ConfigError(
                    f"register({name!r}): provider= must implement the Provider protocol "
                    f"(name, complete, stream, aclose), got {type(provider).__name__}"
                )
            entry = _Entry(name, "object", provider=provider)
        else:
            if base_url is not None and (not isinstance(base_url, str) or not base_url.startswith(("http://", "https://"))):
                raise ConfigError(f"register({name!r}): base_url must be an http(s) URL, got {base_url!r}")
            if api_key_env is not None and (not isinstance(api_key_env, str) or not api_key_env):
                raise ConfigError(f"register({name!r}): api_key_env must be an environment variable name, got {api_key_env!r}")
            _check_client_options(timeout=timeout, max_retries=max_retries)
            entry = _Entry(name, "endpoint", base_url=base_url, api_key_env=api_key_env, api_key=api_key,
                           timeout=timeout, max_retries=max_retries, http_client=http_client,
                           default_headers=dict(default_headers) if default_headers else None)
        with self._lock:
            old = self._entries.get(name)
            if old is not None and old.provider is not None:
                self._retired.append(old.provider)
            self._entries[name] = entry

    # -- lookup -----------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Registered provider names, built-ins first."""
        with self._lock:
            return list(self._entries)

    def parse(self, model: str) -> tuple[str, str]:
        """``"ollama:llama3:8b"`` -> ``("ollama", "llama3:8b")`` when ``ollama`` is registered; a
        name without a colon (``gpt-4o-mini``) or an OpenAI fine-tune (``ft:...``) is ``openai``'s;
        any other ``prefix:`` must be a registered provider (ConfigError naming them)."""
        return _parse(model, self.names())

    def get(self, name: str) -> Provider:
        """The provider registered as ``name``, built on first use."""
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                raise NotFoundError("provider", name, hint=f"registered providers: {', '.join(self._entries)}")
            if entry.provider is None:
                entry.provider = self._build(entry)
            return entry.provider

    def resolve(self, model: str) -> tuple[Provider, str]:
        """The provider and its own model name for a ``provider:model`` string.

        >>> # provider, name = ProviderRegistry().resolve("sim:extractive")  # name == "extractive"
        """
        name, model_name = self.parse(model)
        return self.get(name), model_name

    def describe(self) -> list[dict[str, Any]]:
        """One dict per provider: ``name``, ``base_url``, ``api_key_env``. Never contains a key."""
        with self._lock:
            entries = list(self._entries.values())
        out = []
        for e in entries:
            base_url, key_env = e.base_url, e.api_key_env
            if e.kind == "object":
                base_url = getattr(e.provider, "base_url", None)
                key_env = getattr(e.provider, "api_key_env", None)
            elif base_url is None:
                base_url = os.environ.get("OPENAI_BASE_URL") or _OPENAI_PUBLIC_BASE_URL
            out.append({"name": e.name, "base_url": base_url, "api_key_env": key_env})
        return out

    @property
    def sim_app(self) -> Any:
        """The simulator's ASGI app (its ``state.stats`` counts requests); builds ``sim`` if needed."""
        with self._lock:
            if self._entries["sim"].kind != "sim":
                raise ConfigError("'sim' was re-registered as another provider, so there is no simulator app")
            self.get("sim")
            return self._sim_app

    # -- lifecycle ----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close every provider built so far (and replaced ones); they are rebuilt on next use."""
        with self._lock:
            providers = list(self._retired)
            self._retired.clear()
            for entry in self._entries.values():
                if entry.provider is not None:
                    providers.append(entry.provider)
                    if entry.kind != "object":
                        entry.provider = None
            sim_http, self._sim_http = self._sim_http, None
        for provider in providers:
            await provider.aclose()
        if sim_http is not None:
            await sim_http.aclose()

    # -- factories ------------------------------------------------------------------------------

    def _build(self, entry: _Entry) -> Provider:
        if entry.kind == "sim":
            return self._build_sim(entry)
        from promptlab.providers.openai import OpenAIProvider

        return OpenAIProvider(
            name=entry.name,
            base_url=entry.base_url,
            api_key=entry.api_key,
            api_key_env=entry.api_key_env,
            timeout=entry.timeout,
            max_retries=entry.max_retries,
            http_client=entry.http_client,
            default_headers=entry.default_headers,
        )

    def _build_sim(self, entry: _Entry) -> Provider:
        import httpx2

        from promptlab.providers.openai import LiveASGITransport, OpenAIProvider

        if self._sim_app is None:
            from promptlab.providers.sim import create_app

            # Kept across aclose() so request counters survive a rebuild of the client.
            self._sim_app = create_app(**self._sim_options)
        # Not httpx2.ASGITransport: it buffers streams and ignores timeouts (see LiveASGITransport).
        self._sim_http = httpx2.AsyncClient(transport=LiveASGITransport(self._sim_app), base_url=SIM_BASE_URL)
        return OpenAIProvider(
            name=entry.name,
            base_url=SIM_BASE_URL,
            api_key="sim-no-key",
            api_key_env=None,
            timeout=entry.timeout,
            max_retries=entry.max_retries,
            http_client=self._sim_http,
        )

    def __repr__(self) -> str:
        return f"ProviderRegistry({', '.join(self.names())})"
