"""The OpenAI-compatible provider: every model call in promptlab goes through here.

This is the only module that imports ``openai``. It speaks Chat Completions to OpenAI or to any
compatible server (vLLM, Ollama, llama.cpp, LM Studio, Azure, the built-in simulator) and turns
SDK objects and SDK exceptions into promptlab's plain values and error tree.

Retries for 429, 408/409, 5xx, timeouts and connection errors are the SDK's own (``max_retries``):
it honours ``retry-after-ms`` / ``Retry-After`` (up to 60 s) and otherwise backs off exponentially
with jitter. Callers that retry themselves take a sibling with ``with_options(max_retries=0)``.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import os
import threading
import time
import weakref
from typing import Any, AsyncIterator, Mapping

import httpx2
import openai

from promptlab.errors import (
    AuthenticationError,
    ConfigError,
    ProviderConnectionError,
    ProviderError,
    ProviderRequestError,
    ProviderServerError,
    ProviderTimeoutError,
    RateLimitError,
)
from promptlab.providers import _OPENAI_PUBLIC_BASE_URL, _check_client_options
from promptlab.providers.base import ChatRequest, Completion, StreamItem, Usage

__all__ = ["OpenAIProvider", "LiveASGITransport"]

# Sent when an endpoint needs no key (local servers): the SDK refuses to build a client without one.
_NO_KEY_PLACEHOLDER = "promptlab-no-key"
_OVERRIDABLE = ("timeout", "max_retries")


class _Shared:
    """Connection state shared by a provider and its ``with_options`` siblings.

    Holds the API key (read lazily) and one ``AsyncOpenAI`` per event loop, because an httpx2
    connection pool must only be used on the loop that opened it. An injected ``http_client`` is
    the caller's business: it is used on every loop and never closed here.
    """

    def __init__(
        self,
        *,
        name: str,
        base_url: str | None,
        api_key: str | None,
        api_key_env: str | None,
        timeout: float,
        max_retries: int,
        http_client: httpx2.AsyncClient | None,
        default_headers: Mapping[str, str] | None,
    ):
        self.name = name
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.max_retries = max_retries
        self.http_client = http_client
        self.default_headers = dict(default_headers) if default_headers else None
        self._api_key = api_key
        self._lock = threading.Lock()
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, openai.AsyncOpenAI] = (
            weakref.WeakKeyDictionary()
        )
        self._injected_client: openai.AsyncOpenAI | None = None

    def key(self) -> str:
        if self._api_key:
            return self._api_key
        if self.api_key_env is None:
            return _NO_KEY_PLACEHOLDER
        value = os.environ.get(self.api_key_env)
        if not value:
            raise AuthenticationError(
                f"no API key: set the environment variable {self.api_key_env} "
                f"(or pass api_key=...) to use provider {self.name!r}",
                provider=self.name,
            )
        # Read once: the client below is built with it and keeps it.
        self._api_key = value
        return value

    def scrub(self, text: str) -> str:
        """Remove the key from text that may echo it (server error bodies, exception chains)."""
        if self._api_key and self._api_key != _NO_KEY_PLACEHOLDER:
            text = text.replace(self._api_key, "***")
        return text

    def client(self) -> openai.AsyncOpenAI:
        key = self.key()
        with self._lock:
            if self.http_client is not None:
                if self._injected_client is None:
                    self._injected_client = self._build(key, self.http_client)
                return self._injected_client
            loop = asyncio.get_running_loop()
            for stale in [lp for lp in self._per_loop if lp.is_closed()]:
                # Its pool cannot be closed any more; dropping it lets the sockets be collected.
                del self._per_loop[stale]
            client = self._per_loop.get(loop)
            if client is None:
                client = self._per_loop[loop] = self._build(key, None)
            return client

    def _build(self, key: str, http_client: httpx2.AsyncClient | None) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            api_key=key,
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=self.max_retries,
            default_headers=self.default_headers,
            http_client=http_client,
        )

    def resolved_base_url(self) -> str:
        with self._lock:
            clients = ([self._injected_client] if self._injected_client else []) + list(self._per_loop.values())
        if clients:
            return str(clients[0].base_url)
        return self.base_url or os.environ.get("OPENAI_BASE_URL") or _OPENAI_PUBLIC_BASE_URL

    async def aclose(self) -> None:
        with self._lock:
            owned = list(self._per_loop.items())
            self._per_loop.clear()
            self._injected_client = None  # not ours to close
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for loop, client in owned:
            if loop is current:
                await client.close()
            elif not loop.is_closed() and loop.is_running():
                # Pools belong to their loop: close there, from whichever thread we are on.
                fut = asyncio.run_coroutine_threadsafe(client.close(), loop)
                if current is not None:
                    await asyncio.wrap_future(fut)
                else:
                    fut.result(timeout=10)
            # A pool of a stopped or closed loop cannot be closed cleanly; it is dropped.


class OpenAIProvider:
    """A ``Provider`` for OpenAI or any OpenAI-compatible Chat Completions endpoint.

    The API key is ``api_key`` if given, else read from ``$api_key_env`` at first use
    (``AuthenticationError`` naming the variable if unset, before any request). With both
    ``api_key`` and ``api_key_env`` set to ``None`` the endpoint is treated as keyless (local
    servers). ``base_url=None`` means ``$OPENAI_BASE_URL`` or the SDK's default.

    Connection pools are per event loop (httpx2 pools must stay on the loop that opened them);
    call ``aclose()`` on the loop that used the provider. A pool whose loop was closed without
    ``aclose()`` can only be dropped. An injected ``http_client`` is used on every loop as is.

    >>> p = OpenAIProvider("ollama", base_url="http://127.0.0.1:11434/v1", api_key_env=None)
    >>> # c = await p.complete(ChatRequest(model="llama3", messages=[{"role": "user", "content": "hi"}]))
    """

    def __init__(
        self,
        name: str = "openai",
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout: float = 60.0,
        max_retries: int = 2,
        http_client: httpx2.AsyncClient | None = None,
        default_headers: Mapping[str, str] | None = None,
    ):
        _check_client_options(timeout=timeout, max_retries=max_retries)
        self.name = name
        self._shared = _Shared(
            name=name,
            base_url=base_url,
            api_key=api_key,
            api_key_env=api_key_env,
            timeout=timeout,
            max_retries=max_retries,
            http_client=http_client,
            default_headers=default_headers,
        )
        self._owner = True
        self._timeout = timeout
        self._max_retries = max_retries
        # id(base client) -> (base client, derived client with this sibling's options)
        self._derived: dict[int, tuple[openai.AsyncOpenAI, openai.AsyncOpenAI]] = {}
        self._lean_headers: dict[int, tuple[openai.AsyncOpenAI, dict[str, str]]] = {}

    # -- configuration -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The endpoint requests go to (as configured, or as the SDK resolved it)."""
        return self._shared.resolved_base_url()

    @property
    def api_key_env(self) -> str | None:
        return self._shared.api_key_env

    @property
    def timeout(self) -> float:
        return self._timeout

    @property
    def max_retries(self) -> int:
        return self._max_retries

    def with_options(self, **overrides: Any) -> OpenAIProvider:
        """A sibling sharing this provider's endpoint, key and connections, with other
        ``timeout`` / ``max_retries``. Closing the original closes the shared connections.

        >>> no_retry = OpenAIProvider("openai").with_options(max_retries=0)
        """
        unknown = sorted(set(overrides) - set(_OVERRIDABLE))
        if unknown:
            raise ConfigError(
                f"with_options() got unsupported option(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(_OVERRIDABLE)}"
            )
        timeout = overrides.get("timeout", self._timeout)
        max_retries = overrides.get("max_retries", self._max_retries)
        _check_client_options(timeout=timeout, max_retries=max_retries)
        sibling = object.__new__(OpenAIProvider)
        sibling.name = self.name
        sibling._shared = self._shared
        sibling._owner = False
        sibling._timeout = timeout
        sibling._max_retries = max_retries
        sibling._derived = {}
        sibling._lean_headers = {}
        return sibling

    def __repr__(self) -> str:
        s = self._shared
        key = "set" if (s._api_key or (s.api_key_env and os.environ.get(s.api_key_env))) else "unset"
        return (
            f"OpenAIProvider(name={self.name!r}, base_url={s.base_url!r}, api_key_env={s.api_key_env!r}, "
            f"api_key={key}, timeout={self._timeout}, max_retries={self._max_retries})"
        )

    # -- the Provider protocol -----------------------------------------------------------------

    async def complete(self, request: ChatRequest) -> Completion:
        """One chat completion; latency measured around the whole call including retries."""
        client = self._client()
        start = time.perf_counter()
        try:
            response = await client.chat.completions.create(**_create_kwargs(request))
        except openai.OpenAIError as exc:
            raise self._map_error(exc) from exc
        latency_ms = (time.perf_counter() - start) * 1000.0
        if not response.choices:
            raise ProviderServerError(f"response for model {request.model!r} had no choices", provider=self.name)
        choice = response.choices[0]
        return Completion(
            text=choice.message.content or "",
            model=response.model or request.model,
            usage=_usage(response.usage),
            finish_reason=choice.finish_reason,
            latency_ms=latency_ms,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamItem]:
        """Yield text deltas as they arrive, then exactly one ``Completion`` (text = joined deltas)."""
        client = self._client()
        kwargs = _create_kwargs(request)
        start = time.perf_counter()
        try:
            try:
                chunks = await client.chat.completions.create(
                    **kwargs, stream=True, stream_options={"include_usage": True}
                )
            except openai.BadRequestError as exc:
                # Some compatible servers reject stream_options; usage then stays unknown (zeros).
                if "stream_options" not in f"{exc.message} {exc.body}":
                    raise
                chunks = await client.chat.completions.create(**kwargs, stream=True)
        except openai.OpenAIError as exc:
            raise self._map_error(exc) from exc

        parts: list[str] = []
        ttft_ms: float | None = None
        usage = Usage()
        finish_reason: str | None = None
        model = request.model
        try:
            async for chunk in chunks:
                if chunk.model:
                    model = chunk.model
                if chunk.usage is not None:
                    usage = _usage(chunk.usage)
                for choice in chunk.choices:
                    if choice.index != 0:
                        continue
                    if choice.finish_reason is not None:
                        finish_reason = choice.finish_reason
                    delta = choice.delta.content if choice.delta is not None else None
                    if delta:
                        if ttft_ms is None:
                            ttft_ms = (time.perf_counter() - start) * 1000.0
                        parts.append(delta)
                        yield delta
        except openai.OpenAIError as exc:
            raise self._map_error(exc) from exc
        finally:
            # Also runs when the consumer stops early: release the connection.
            await chunks.close()
        yield Completion(
            text="".join(parts),
            model=model,
            usage=usage,
            finish_reason=finish_reason,
            latency_ms=(time.perf_counter() - start) * 1000.0,
            ttft_ms=ttft_ms,
        )

    async def aclose(self) -> None:
        """Close the connection pools this provider created (never an injected ``http_client``)."""
        if self._owner:
            self._derived.clear()
            await self._shared.aclose()

    # -- internals -------------------------------------------------------------------------------

    def _client(self) -> openai.AsyncOpenAI:
        base = self._shared.client()
        if (self._timeout, self._max_retries) == (self._shared.timeout, self._shared.max_retries):
            return base
        hit = self._derived.get(id(base))
        if hit is None or hit[0] is not base:
            # with_options() copies the client but reuses its http pool.
            hit = (base, base.with_options(timeout=self._timeout, max_retries=self._max_retries))
            self._derived = {k: v for k, v in self._derived.items() if not v[0].is_closed()}
            self._derived[id(base)] = hit
        return hit[1]

    def _after_retries(self, form: str = " after ") -> str:
        """" after 2 retries" when the SDK retried; nothing for a single-attempt sibling (its
        caller, promptlab's engine, counts its own attempts into the message)."""
        if not self._max_retries:
            return ""
        return f"{form}{self._max_retries}" + (" retries" if form == " after " else "")

    def _status_error(self, status: int, headers: httpx2.Headers, detail: str, host: str) -> ProviderError:
        """The promptlab error for an HTTP error status (shared by the SDK and lean paths)."""
        name = self.name
        if status in (401, 403):
            hint = f"; check {self._shared.api_key_env}" if self._shared.api_key_env else ""
            return AuthenticationError(f"{status} from {host}: {detail}{hint}", provider=name, status_code=status)
        if status == 429:
            return RateLimitError(f"rate limited by {host}{self._after_retries()}: {detail}",
                                  provider=name, status_code=status, retry_after=_retry_after(headers))
        if status >= 500:
            return ProviderServerError(f"{status} from {host}{self._after_retries()}: {detail}",
                                       provider=name, status_code=status)
        return ProviderRequestError(f"{status} from {host}: {detail}", provider=name, status_code=status)

    async def complete_lean(self, request: ChatRequest) -> Completion:
        """``complete`` without the SDK's per-request machinery, for high-throughput runs.

        Exactly one HTTP attempt (no retries: the experiment runner retries adaptively) to the
        same endpoint with the same headers, on the SDK client's own connection pool, raising
        the same promptlab errors; it spends about half the CPU of the SDK path per request.
        """
        client = self._client()
        http: httpx2.AsyncClient = client._client  # the SDK's own httpx2 pool (private attribute)
        headers = self._lean_headers.get(id(client))
        if headers is None or headers[0] is not client:
            # The SDK marks headers it leaves out with Omit sentinels; keep only real values.
            merged = {**client.auth_headers, **client.default_headers}  # as the SDK's _build_headers
            values = {k: v for k, v in merged.items() if isinstance(v, (str, bytes))}
            headers = self._lean_headers[id(client)] = (client, {**values, "Content-Type": "application/json"})
        url = str(client.base_url).rstrip("/") + "/chat/completions"
        start = time.perf_counter()
        try:
            response = await http.post(url, content=json.dumps(_lean_body(request)), headers=headers[1],
                                       timeout=self._timeout)
        except httpx2.TimeoutException as exc:
            raise ProviderTimeoutError(f"request to {_url_host(url)} timed out (timeout={self._timeout}s)",
                                       provider=self.name) from exc
        except httpx2.TransportError as exc:
            raise ProviderConnectionError(
                f"could not reach {_url_host(url)} ({type(exc).__name__}): {self._shared.scrub(str(exc))}",
                provider=self.name) from exc
        if response.status_code >= 400:
            raise self._status_error(response.status_code, response.headers,
                                     self._shared.scrub(_error_message(response)), _url_host(url))
        latency_ms = (time.perf_counter() - start) * 1000.0
        try:
            data = response.json()
            choice = data["choices"][0]
            usage = data.get("usage") or {}
            return Completion(text=choice["message"].get("content") or "", model=data.get("model") or request.model,
                              usage=Usage(prompt_tokens=usage.get("prompt_tokens") or 0,
                                          completion_tokens=usage.get("completion_tokens") or 0),
                              finish_reason=choice.get("finish_reason"), latency_ms=latency_ms)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ProviderServerError(f"malformed response from {_url_host(url)}: {exc!r}",
                                      provider=self.name, status_code=response.status_code) from exc

    def _map_error(self, exc: openai.OpenAIError) -> ProviderError:
        scrub = self._shared.scrub
        name = self.name
        if isinstance(exc, openai.APITimeoutError):
            return ProviderTimeoutError(
                f"request to {_host(exc)} timed out (timeout={self._timeout}s{self._after_retries(', retries=')})",
                provider=name,
            )
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__
            detail = f": {scrub(str(cause))}" if cause is not None and str(cause) else ""
            return ProviderConnectionError(
                f"could not reach {_host(exc)} ({type(cause).__name__ if cause else 'connection error'}){detail}",
                provider=name,
            )
        if isinstance(exc, openai.APIStatusError):
            return self._status_error(exc.status_code, exc.response.headers, scrub(_server_message(exc)),
                                      _host(exc))
        return ProviderError(scrub(f"{type(exc).__name__}: {exc}"), provider=name)


def _lean_body(request: ChatRequest) -> dict[str, Any]:
    body: dict[str, Any] = {"model": request.model, "messages": request.messages, **request.params()}
    if request.extra_body:
        body.update(request.extra_body)
    return body


def _error_message(response: httpx2.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(error, Mapping) and error.get("message"):
        return str(error["message"])
    if isinstance(body, Mapping) and (body.get("message") or body.get("detail")):
        return str(body.get("message") or body.get("detail"))
    return response.text.strip()[:500]


def _create_kwargs(request: ChatRequest) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"model": request.model, "messages": request.messages, **request.params()}
    if request.extra_body:
        kwargs["extra_body"] = request.extra_body
    return kwargs


def _usage(usage: Any) -> Usage:
    if usage is None:
        return Usage()
    return Usage(prompt_tokens=usage.prompt_tokens or 0, completion_tokens=usage.completion_tokens or 0)


def _url_host(url: str) -> str:
    parsed = httpx2.URL(url)
    return f"{parsed.scheme}://{parsed.netloc.decode()}"


def _host(exc: openai.APIError) -> str:
    try:
        url = exc.request.url
        return f"{url.scheme}://{url.netloc.decode()}" if url.netloc else str(url)
    except Exception:  # a request-less error still deserves a message
        return "the endpoint"


def _server_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, Mapping):
        message = body.get("message") or body.get("detail") or body.get("error")
        if message:
            return str(message)
    if isinstance(body, str) and body.strip():
        return body.strip()[:500]
    return exc.message


def _retry_after(headers: httpx2.Headers) -> float | None:
    """Seconds the server asked us to wait: ``retry-after-ms``, else ``Retry-After`` (seconds or date)."""
    for header, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(header)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            continue
        if math.isfinite(seconds):
            return max(seconds, 0.0)
    value = headers.get("retry-after")
    if value:
        parsed = email.utils.parsedate_tz(value)
        if parsed is not None:
            return max(float(email.utils.mktime_tz(parsed) - time.time()), 0.0)
    return None


class LiveASGITransport(httpx2.AsyncBaseTransport):
    """An in-process ASGI transport that behaves like a network endpoint.

    ``httpx2.ASGITransport`` buffers the whole response and ignores client timeouts, so through it
    a streamed answer arrives all at once and a hanging server hangs the caller. This transport
    hands body chunks to the client as the app sends them and applies the request's read timeout
    to every wait (raising ``httpx2.ReadTimeout``), so the in-process simulator exercises the same
    streaming, timeout and retry paths as a real server.

    >>> client = httpx2.AsyncClient(transport=LiveASGITransport(app), base_url="http://sim.local/v1")
    """

    def __init__(self, app: Any, client: tuple[str, int] = ("127.0.0.1", 123)):
        self.app = app
        self.client = client

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = await request.aread()
        read_timeout = (request.extensions.get("timeout") or {}).get("read")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "headers": [(k.lower(), v) for (k, v) in request.headers.raw],
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "server": (request.url.host, request.url.port),
            "client": self.client,
            "root_path": "",
        }
        messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        disconnected = asyncio.Event()
        body_sent = False

        async def receive() -> dict[str, Any]:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await disconnected.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            await messages.put(message)

        task = asyncio.ensure_future(self.app(scope, receive, send))
        pipe = _ASGIPipe(request, messages, task, disconnected, read_timeout)
        try:
            start = await pipe.next_message()
            while start["type"] != "http.response.start":
                start = await pipe.next_message()
        except BaseException:
            await pipe.aclose()
            raise
        return httpx2.Response(start["status"], headers=start.get("headers", []), stream=pipe)


class _ASGIPipe(httpx2.AsyncByteStream):
    """The response body of one ``LiveASGITransport`` request, read as the app produces it."""

    def __init__(self, request: httpx2.Request, messages: asyncio.Queue[dict[str, Any]],
                 task: asyncio.Future[Any], disconnected: asyncio.Event, read_timeout: float | None):
        self._request = request
        self._messages = messages
        self._task = task
        self._disconnected = disconnected
        self._read_timeout = read_timeout

    async def next_message(self) -> dict[str, Any]:
        getter = asyncio.ensure_future(self._messages.get())
        try:
            await asyncio.wait({getter, self._task}, timeout=self._read_timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()
        if not self._messages.empty():
            return self._messages.get_nowait()
        if self._task.done():
            self._task.result()  # re-raises the app's exception, like ASGITransport does
            raise httpx2.RemoteProtocolError("the ASGI app returned without completing its response",
                                             request=self._request)
        raise httpx2.ReadTimeout(f"no data from the ASGI app within {self._read_timeout}s", request=self._request)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            message = await self.next_message()
            if message["type"] != "http.response.body":
                continue
            chunk = message.get("body", b"")
            if chunk and self._request.method != "HEAD":
                yield chunk
            if not message.get("more_body", False):
                return

    async def aclose(self) -> None:
        self._disconnected.set()
        if not self._task.done():
            self._task.cancel()
        # asyncio.wait, unlike awaiting the task, neither raises the app's error nor swallows a
        # cancellation of the caller.
        await asyncio.wait({self._task})
        if not self._task.cancelled():
            # Already reported through next_message(), or it came after a complete body.
            self._task.exception()
