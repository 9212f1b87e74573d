"""Providers: the OpenAI-compatible provider, the registry, image content parts.

Every test reaches the real openai SDK through an injected httpx2 transport (MockTransport,
ASGITransport) or a loopback server; nothing touches the network.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import re
import logging
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Callable

import httpx2
import pytest

from promptlab import errors
from promptlab.providers import (
    ChatRequest,
    Completion,
    Provider,
    ProviderRegistry,
    Usage,
    image_part,
    parse_model,
    user_message,
)
from promptlab.providers.openai import OpenAIProvider

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 17
JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + b"\x00" * 8
GIF = b"GIF89a" + b"\x01\x00\x01\x00" + b"\x00" * 6
WEBP = b"RIFF" + b"\x24\x00\x00\x00" + b"WEBPVP8 " + b"\x00" * 8

FAKE_KEY = "sk-promptlab-TEST-7f3a9c1e5b"


# -- fakes -------------------------------------------------------------------------------------


def completion_json(text: str = "Hello there", model: str = "gpt-4o-mini-2024-07-18", usage: bool = True) -> dict:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    }
    if usage:
        body["usage"] = {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
    return body


def sse_body(deltas: list[str], usage: dict | None = None, model: str = "m-1") -> bytes:
    def chunk(delta: dict, finish: str | None = None) -> dict:
        return {
            "id": "chatcmpl-s",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": d}) for d in deltas]
    events.append(chunk({}, finish="length"))
    if usage is not None:
        events.append({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": model,
                       "choices": [], "usage": usage})
    out = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    return out + b"data: [DONE]\n\n"


class Server:
    """A scripted OpenAI-compatible endpoint behind httpx2.MockTransport that records requests."""

    def __init__(self, *responses: Callable[[httpx2.Request], httpx2.Response] | httpx2.Response):
        self.script = list(responses)
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        step = self.script[min(len(self.requests), len(self.script)) - 1]
        return step(request) if callable(step) else step

    @property
    def count(self) -> int:
        return len(self.requests)

    def body(self, i: int = -1) -> dict:
        return json.loads(self.requests[i].content)

    def client(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(transport=httpx2.MockTransport(self))


def ok(text: str = "Hello there", **kw: Any) -> httpx2.Response:
    return httpx2.Response(200, json=completion_json(text, **kw))


def error(status: int, message: str, headers: dict | None = None) -> httpx2.Response:
    return httpx2.Response(status, json={"error": {"message": message, "type": "invalid_request_error"}},
                           headers=headers or {})


def sse(deltas: list[str], usage: dict | None = None) -> httpx2.Response:
    return httpx2.Response(200, content=sse_body(deltas, usage), headers={"content-type": "text/event-stream"})


def provider(server: Server, **kw: Any) -> OpenAIProvider:
    kw.setdefault("api_key", FAKE_KEY)
    kw.setdefault("base_url", "http://llm.test/v1")
    return OpenAIProvider(http_client=server.client(), **kw)


def req(**kw: Any) -> ChatRequest:
    kw.setdefault("model", "gpt-4o-mini")
    kw.setdefault("messages", [{"role": "user", "content": "hi"}])
    return ChatRequest(**kw)


async def collect(p: Provider, request: ChatRequest) -> list:
    return [item async for item in p.stream(request)]


# -- complete ----------------------------------------------------------------------------------


async def test_complete_sends_model_messages_params_and_records_usage(tmp_path):
    server = Server(ok("A cat on a mat."))
    p = provider(server)
    image = tmp_path / "cat.png"
    image.write_bytes(PNG)
    messages = [{"role": "system", "content": "Be brief."}, user_message("What is this?", [image])]
    c = await p.complete(req(messages=messages, temperature=0.2, max_tokens=50, seed=7, stop=["\n\n"],
                             extra_body={"sim": {"latency_ms": 3}}))

    assert isinstance(c, Completion)
    assert (c.text, c.model, c.finish_reason) == ("A cat on a mat.", "gpt-4o-mini-2024-07-18", "stop")
    assert c.usage == Usage(prompt_tokens=11, completion_tokens=3) and c.usage.total_tokens == 14
    assert c.latency_ms is not None and c.latency_ms > 0 and c.ttft_ms is None

    sent = server.requests[0]
    assert sent.method == "POST" and str(sent.url) == "http://llm.test/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {FAKE_KEY}"
    body = server.body()
    assert body["model"] == "gpt-4o-mini"
    assert (body["temperature"], body["max_tokens"], body["seed"], body["stop"]) == (0.2, 50, 7, ["\n\n"])
    assert "top_p" not in body and "stream" not in body
    assert body["sim"] == {"latency_ms": 3}  # extra_body is merged into the JSON body
    content = body["messages"][1]["content"]
    assert content[0] == {"type": "text", "text": "What is this?"}
    assert content[1]["type"] == "image_url"
    assert content[1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()


async def test_complete_without_usage_gives_zero_usage():
    server = Server(ok("x", usage=False))
    c = await provider(server).complete(req())
    assert c.usage == Usage(0, 0)


async def test_response_without_choices_is_a_server_error():
    body = completion_json()
    body["choices"] = []
    server = Server(httpx2.Response(200, json=body))
    with pytest.raises(errors.ProviderServerError, match="no choices"):
        await provider(server).complete(req())


def test_base_url_reports_where_requests_go(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert OpenAIProvider(api_key=FAKE_KEY).base_url == "https://api.openai.com/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://proxy.test/v1")
    assert OpenAIProvider(api_key=FAKE_KEY).base_url == "http://proxy.test/v1"
    assert OpenAIProvider(base_url="http://x.test/v1").base_url == "http://x.test/v1"


async def test_default_headers_are_sent():
    server = Server(ok())
    await provider(server, default_headers={"X-Team": "lab"}).complete(req())
    assert server.requests[0].headers["x-team"] == "lab"


# -- stream ------------------------------------------------------------------------------------


async def test_stream_yields_deltas_then_one_completion():
    usage = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
    server = Server(sse(["Hel", "lo", " world"], usage))
    items = await collect(provider(server), req(temperature=0.5))

    deltas, final = items[:-1], items[-1]
    assert deltas == ["Hel", "lo", " world"]  # the empty role-only delta is not yielded
    assert all(isinstance(d, str) for d in deltas)
    assert isinstance(final, Completion)
    assert final.text == "".join(deltas) == "Hello world"
    assert final.usage == Usage(9, 3)
    assert final.finish_reason == "length" and final.model == "m-1"
    assert final.ttft_ms is not None and 0 < final.ttft_ms <= final.latency_ms

    body = server.body()
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.5


async def test_stream_without_usage_chunk_gives_zero_usage():
    server = Server(sse(["a", "b"], usage=None))
    final = (await collect(provider(server), req()))[-1]
    assert final.text == "ab" and final.usage == Usage()


async def test_stream_retries_once_without_stream_options_when_server_rejects_them():
    server = Server(error(400, "Unrecognized request argument supplied: stream_options"), sse(["ok"]))
    items = await collect(provider(server), req())
    assert items[0] == "ok" and items[-1].text == "ok"
    assert server.count == 2
    assert "stream_options" in server.body(0) and "stream_options" not in server.body(1)


async def test_stream_other_400_is_not_retried():
    server = Server(error(400, "This model's maximum context length is 8192 tokens"))
    with pytest.raises(errors.ProviderRequestError, match="maximum context length"):
        await collect(provider(server), req())
    assert server.count == 1


async def test_stream_maps_server_error():
    server = Server(error(503, "overloaded"))
    with pytest.raises(errors.ProviderServerError) as info:
        await collect(provider(server, max_retries=0), req())
    assert info.value.status_code == 503 and info.value.provider == "openai"


async def test_stream_consumer_may_stop_early():
    server = Server(sse(["a", "b", "c"]))
    gen = provider(server).stream(req())
    assert await gen.__anext__() == "a"
    await gen.aclose()  # must release the response without error


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, message, cls",
    [
        (401, "Incorrect API key provided", errors.AuthenticationError),
        (403, "You are not allowed to use this model", errors.AuthenticationError),
        (404, "The model `gpt-9` does not exist", errors.ProviderRequestError),
        (400, "This model's maximum context length is 8192 tokens", errors.ProviderRequestError),
        (422, "temperature must be <= 2", errors.ProviderRequestError),
        (500, "internal error", errors.ProviderServerError),
        (502, "bad gateway", errors.ProviderServerError),
    ],
)
async def test_http_errors_map_to_promptlab_errors(status, message, cls):
    server = Server(error(status, message))
    p = provider(server, name="acme", max_retries=0)
    with pytest.raises(cls) as info:
        await p.complete(req())
    err = info.value
    assert type(err) is cls
    assert err.provider == "acme" and err.status_code == status
    assert message in str(err)  # the server's own explanation reaches the user
    assert isinstance(err.__cause__, Exception)  # raised `from` the SDK error
    assert server.count == 1


@pytest.mark.parametrize(
    "headers, expected",
    [({"retry-after": "7"}, 7.0), ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5), ({}, None)],
)
async def test_rate_limit_error_carries_retry_after(headers, expected):
    server = Server(error(429, "Rate limit reached for requests", headers))
    with pytest.raises(errors.RateLimitError) as info:
        await provider(server, max_retries=0).complete(req())
    assert info.value.retry_after == expected
    assert info.value.status_code == 429 and info.value.provider == "openai"
    assert server.count == 1


async def test_connection_error_names_host_not_key():
    def refuse(request):
        raise httpx2.ConnectError("connection refused")

    server = Server(refuse)
    with pytest.raises(errors.ProviderConnectionError) as info:
        await provider(server, max_retries=0).complete(req())
    err = info.value
    assert type(err) is errors.ProviderConnectionError
    assert "http://llm.test" in str(err) and "connection refused" in str(err)
    assert err.status_code is None and err.provider == "openai"
    assert FAKE_KEY not in str(err)


async def test_timeout_maps_to_provider_timeout_error():
    def slow(request):
        raise httpx2.ReadTimeout("read timed out")

    server = Server(slow)
    with pytest.raises(errors.ProviderTimeoutError) as info:
        await provider(server, max_retries=0, timeout=5).complete(req())
    assert "http://llm.test" in str(info.value) and info.value.provider == "openai"
    assert server.count == 1


# -- the lean single-attempt path (the experiment runner's) ------------------------------------


async def test_lean_path_sends_what_the_sdk_sends_and_reads_the_same_answer():
    server = Server(ok("Hello there"), ok("Hello there"))
    p = provider(server, default_headers={"X-Team": "qa"})
    request = req(temperature=0.3, max_tokens=20, extra_body={"sim": {"repeat": 2}})
    sdk, lean = await p.complete(request), await p.complete_lean(request)
    assert server.body(0) == server.body(1)
    for name in ("authorization", "x-team", "content-type"):
        assert server.requests[0].headers[name] == server.requests[1].headers[name]
    assert server.requests[0].url == server.requests[1].url
    assert (lean.text, lean.usage, lean.finish_reason, lean.model) == (sdk.text, sdk.usage, sdk.finish_reason,
                                                                       sdk.model)


@pytest.mark.parametrize("status, cls", [(401, errors.AuthenticationError), (400, errors.ProviderRequestError),
                                         (500, errors.ProviderServerError), (429, errors.RateLimitError)])
async def test_lean_path_maps_errors_like_the_sdk_path(status, cls):
    server = Server(error(status, "explained by the server", {"retry-after": "3"}))
    with pytest.raises(cls) as info:
        await provider(server, name="acme", max_retries=5).complete_lean(req())
    assert server.count == 1  # one attempt: the runner does the retrying
    assert info.value.status_code == status and info.value.provider == "acme"
    assert "explained by the server" in str(info.value) and FAKE_KEY not in str(info.value)
    if status == 429:
        assert info.value.retry_after == 3.0


@pytest.mark.parametrize("exc, cls", [(httpx2.ConnectError("refused"), errors.ProviderConnectionError),
                                      (httpx2.ReadTimeout("slow"), errors.ProviderTimeoutError)])
async def test_lean_path_maps_transport_failures(exc, cls):
    def fail(request):
        raise exc

    with pytest.raises(cls) as info:
        await provider(Server(fail)).complete_lean(req())
    assert type(info.value) is cls and "http://llm.test" in str(info.value)


async def test_lean_path_rejects_a_malformed_answer():
    server = Server(httpx2.Response(200, json={"choices": []}))
    with pytest.raises(errors.ProviderServerError, match="malformed"):
        await provider(server).complete_lean(req())


# -- retries -----------------------------------------------------------------------------------


async def test_sdk_retries_honouring_retry_after_ms():
    limited = error(429, "slow down", {"retry-after-ms": "10"})
    server = Server(limited, limited, ok("finally"))
    c = await provider(server, max_retries=3).complete(req())
    assert c.text == "finally"
    assert server.count == 3


async def test_retries_exhausted_raise_rate_limit_error():
    server = Server(error(429, "slow down", {"retry-after-ms": "5"}))
    with pytest.raises(errors.RateLimitError) as info:
        await provider(server, max_retries=1).complete(req())
    assert server.count == 2 and info.value.retry_after == 0.005


async def test_with_options_sibling_shares_endpoint_but_not_retry_budget():
    server = Server(error(500, "boom", {"retry-after-ms": "1"}))
    parent = provider(server, max_retries=2, name="acme")
    sibling = parent.with_options(max_retries=0)
    assert (sibling.name, sibling.max_retries, sibling.timeout) == ("acme", 0, 60.0)

    with pytest.raises(errors.ProviderServerError):
        await sibling.complete(req())
    assert server.count == 1
    with pytest.raises(errors.ProviderServerError):
        await parent.complete(req())
    assert server.count == 1 + 3
    assert all(r.headers["authorization"] == f"Bearer {FAKE_KEY}" for r in server.requests)


def test_with_options_rejects_unknown_or_bad_options():
    p = OpenAIProvider(api_key=FAKE_KEY)
    with pytest.raises(errors.ConfigError, match="'base_url'"):
        p.with_options(base_url="http://x")
    with pytest.raises(errors.ConfigError, match="max_retries"):
        p.with_options(max_retries=-1)
    with pytest.raises(errors.ConfigError, match="timeout"):
        OpenAIProvider(timeout=0)


# -- keys --------------------------------------------------------------------------------------


async def test_missing_key_fails_before_any_request(monkeypatch):
    monkeypatch.delenv("MY_LLM_KEY", raising=False)
    server = Server(ok())
    p = OpenAIProvider(name="acme", api_key_env="MY_LLM_KEY", http_client=server.client())
    with pytest.raises(errors.AuthenticationError, match="MY_LLM_KEY") as info:
        await p.complete(req())
    assert info.value.provider == "acme"
    with pytest.raises(errors.AuthenticationError, match="MY_LLM_KEY"):
        await collect(p, req())
    assert server.count == 0


async def test_key_is_read_from_env_at_first_use(monkeypatch):
    monkeypatch.delenv("MY_LLM_KEY", raising=False)
    server = Server(ok())
    p = OpenAIProvider(api_key_env="MY_LLM_KEY", http_client=server.client())  # no key yet: fine
    monkeypatch.setenv("MY_LLM_KEY", FAKE_KEY)
    await p.complete(req())
    assert server.requests[0].headers["authorization"] == f"Bearer {FAKE_KEY}"


async def test_keyless_endpoint_needs_no_env(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server = Server(ok())
    c = await OpenAIProvider("local", api_key_env=None, http_client=server.client()).complete(req())
    assert c.text == "Hello there" and server.count == 1


async def test_key_never_in_repr_errors_or_logs(monkeypatch, caplog):
    monkeypatch.setenv("MY_LLM_KEY", FAKE_KEY)
    # A careless server that echoes the key back in its error message.
    server = Server(error(401, f"Incorrect API key provided: {FAKE_KEY}"))
    p = OpenAIProvider(name="acme", api_key_env="MY_LLM_KEY", http_client=server.client(), max_retries=0)
    given = OpenAIProvider(name="acme", api_key=FAKE_KEY)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(errors.AuthenticationError) as info:
        await p.complete(req())
    for text in (repr(p), str(p), repr(given), str(given), repr(p.with_options(timeout=3)),
                 str(info.value), repr(info.value), caplog.text):
        assert FAKE_KEY not in text
    assert "Incorrect API key provided: ***" in str(info.value)
    assert "MY_LLM_KEY" in str(info.value)  # tells the user which variable to fix
    assert "api_key=set" in repr(p)


# -- event loops (real sockets on loopback) ----------------------------------------------------


@pytest.fixture(scope="module")
def loopback_url():
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def chat(request):
        body = await request.json()
        return JSONResponse(completion_json(f"echo {body['model']}"))

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "loopback server did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(5)


@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_provider_survives_use_from_several_event_loops(loopback_url):
    # Each asyncio.run() is a new loop; a pooled keep-alive connection from the first one would
    # be unusable in the second if the provider kept a single client.
    p = OpenAIProvider("local", base_url=loopback_url, api_key=FAKE_KEY, max_retries=0)
    for i in range(3):
        c = asyncio.run(p.complete(req(model=f"m{i}")))
        assert c.text == f"echo m{i}"

    async def two_calls_then_close():
        a = await p.complete(req(model="x"))
        b = await p.complete(req(model="y"))
        await p.aclose()
        return a.text, b.text

    assert asyncio.run(two_calls_then_close()) == ("echo x", "echo y")
    # Pools left on loops that were closed without aclose() can only be dropped: collect them
    # here, where their ResourceWarnings are expected.
    gc.collect()


# -- registry ----------------------------------------------------------------------------------


def test_parse_model_rules():
    assert parse_model("openai:gpt-4o-mini") == ("openai", "gpt-4o-mini")
    assert parse_model("gpt-4o-mini") == ("openai", "gpt-4o-mini")
    assert parse_model("sim:extractive") == ("sim", "extractive")
    # OpenAI fine-tunes keep their colons; any other model name with a colon says "openai:" first.
    assert parse_model("ft:gpt-4o-mini:acme::abc123") == ("openai", "ft:gpt-4o-mini:acme::abc123")
    assert parse_model("openai:llama3:8b") == ("openai", "llama3:8b")

    reg = ProviderRegistry()
    reg.register("ollama", base_url="http://127.0.0.1:11434/v1")
    assert reg.parse("ollama:llama3:8b") == ("ollama", "llama3:8b")  # first colon only
    assert reg.parse("sim:extractive") == ("sim", "extractive")


def test_an_unregistered_provider_prefix_is_an_error_naming_the_registered_ones():
    reg = ProviderRegistry()
    reg.register("ollama", base_url="http://127.0.0.1:11434/v1")
    with pytest.raises(errors.ConfigError, match=r"'olama' is not a registered provider \(did you mean "
                                                 r"'ollama'\?\); registered providers: openai, sim, ollama"):
        reg.parse("olama:llama3")
    with pytest.raises(errors.ConfigError, match="write 'openai:llama3:8b'"):
        reg.parse("llama3:8b")
    with pytest.raises(errors.ConfigError, match="not a registered provider"):
        parse_model("ollama:llama3:8b")  # the built-in names only
    for bad in ("", "   ", "sim:", None):
        with pytest.raises(errors.ConfigError):
            reg.parse(bad)


async def test_register_custom_endpoint_uses_its_url_and_env_key(monkeypatch):
    monkeypatch.setenv("OLLAMA_KEY", "ollama-secret-123")
    server = Server(ok("llama says hi", model="llama3:8b"))
    reg = ProviderRegistry()
    reg.register("ollama", base_url="http://ollama.test:11434/v1", api_key_env="OLLAMA_KEY",
                 http_client=server.client())
    p, model = reg.resolve("ollama:llama3:8b")
    assert model == "llama3:8b" and p.name == "ollama" and reg.get("ollama") is p
    c = await p.complete(req(model=model))
    assert c.text == "llama says hi"
    sent = server.requests[0]
    assert (sent.url.host, sent.url.port, sent.url.path) == ("ollama.test", 11434, "/v1/chat/completions")
    assert sent.headers["authorization"] == "Bearer ollama-secret-123"
    assert server.body()["model"] == "llama3:8b"
    await reg.aclose()


def test_get_unknown_provider_lists_registered_names():
    reg = ProviderRegistry()
    reg.register("vllm", base_url="http://gpu:8000/v1")
    with pytest.raises(errors.NotFoundError) as info:
        reg.get("anthropic")
    assert "anthropic" in str(info.value)
    assert "openai, sim, vllm" in str(info.value)
    assert reg.names() == ["openai", "sim", "vllm"]


@pytest.mark.parametrize("name", ["", "1abc", "has space", "a:b", "x/y", None])
def test_register_rejects_bad_names(name):
    with pytest.raises(errors.ConfigError, match="provider name"):
        ProviderRegistry().register(name, base_url="http://x.test/v1")


def test_register_rejects_bad_endpoint_settings():
    reg = ProviderRegistry()
    with pytest.raises(errors.ConfigError, match="base_url"):
        reg.register("local", base_url="127.0.0.1:8000/v1")
    with pytest.raises(errors.ConfigError, match="timeout"):
        reg.register("local", base_url="http://x.test/v1", timeout=-1)
    with pytest.raises(errors.ConfigError, match="max_retries"):
        reg.register("local", base_url="http://x.test/v1", max_retries="3")


def test_describe_never_contains_keys(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    reg = ProviderRegistry()
    reg.register("team", base_url="https://llm.team.test/v1", api_key=FAKE_KEY)
    reg.register("ollama", base_url="http://127.0.0.1:11434/v1", api_key_env="OLLAMA_KEY")
    rows = reg.describe()
    assert FAKE_KEY not in repr(rows) and FAKE_KEY not in repr(reg)
    by_name = {r["name"]: r for r in rows}
    assert set(by_name) == {"openai", "sim", "team", "ollama"}
    assert all(set(r) == {"name", "base_url", "api_key_env"} for r in rows)
    assert by_name["openai"] == {"name": "openai", "base_url": "https://api.openai.com/v1",
                                 "api_key_env": "OPENAI_API_KEY"}
    assert by_name["ollama"]["api_key_env"] == "OLLAMA_KEY"
    assert by_name["team"]["api_key_env"] is None


def test_openai_builtin_follows_openai_base_url(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://proxy.test/v1")
    reg = ProviderRegistry()
    assert reg.describe()[0]["base_url"] == "http://proxy.test/v1"


class FakeProvider:
    """A Provider that answers with the reversed prompt; records whether it was closed."""

    def __init__(self, name: str):
        self.name = name
        self.closed = False

    async def complete(self, request: ChatRequest) -> Completion:
        return Completion(text=request.messages[-1]["content"][::-1], model=request.model)

    async def stream(self, request: ChatRequest):
        c = await self.complete(request)
        yield c.text
        yield c

    async def aclose(self) -> None:
        self.closed = True


async def test_register_ready_provider_and_replace_closes_old():
    reg = ProviderRegistry()
    first, second = FakeProvider("fake"), FakeProvider("fake")
    reg.register("fake", provider=first)
    p, model = reg.resolve("fake:any")
    assert p is first and model == "any"
    assert (await p.complete(req(model=model, messages=[{"role": "user", "content": "abc"}]))).text == "cba"

    reg.register("fake", provider=second)
    assert reg.get("fake") is second
    await reg.aclose()
    assert first.closed and second.closed


def test_register_provider_conflicts_and_protocol_check():
    reg = ProviderRegistry()
    with pytest.raises(errors.ConfigError, match="base_url"):
        reg.register("fake", provider=FakeProvider("fake"), base_url="http://x.test/v1")
    with pytest.raises(errors.ConfigError, match="Provider protocol"):
        reg.register("fake", provider=object())


async def test_registry_builds_lazily_and_rebuilds_after_aclose():
    server = Server(ok())
    reg = ProviderRegistry()
    reg.register("acme", base_url="http://acme.test/v1", http_client=server.client())
    a = reg.get("acme")
    assert reg.get("acme") is a and isinstance(a, OpenAIProvider)
    await reg.aclose()
    b = reg.get("acme")
    assert b is not a
    assert (await b.complete(req())).text == "Hello there"


def test_importing_promptlab_providers_does_not_import_openai():
    code = "import sys, promptlab.providers as p; p.ProviderRegistry().register('x', base_url='http://x.test'); " \
           "print('openai' in sys.modules, 'httpx2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# -- content parts -----------------------------------------------------------------------------


def test_image_part_urls_pass_through():
    assert image_part("https://example.com/cat.png") == {
        "type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    data_url = "data:image/png;base64,iVBORw0KGgo="
    assert image_part(data_url, detail="low") == {
        "type": "image_url", "image_url": {"url": data_url, "detail": "low"}}


@pytest.mark.parametrize("raw, mime", [(PNG, "image/png"), (JPEG, "image/jpeg"), (GIF, "image/gif"),
                                       (WEBP, "image/webp")])
def test_image_part_bytes_and_base64_sniff_mime(raw, mime):
    expected = f"data:{mime};base64,{base64.b64encode(raw).decode()}"
    assert image_part(raw)["image_url"]["url"] == expected
    assert image_part(bytearray(raw))["image_url"]["url"] == expected
    assert image_part(base64.b64encode(raw).decode())["image_url"]["url"] == expected


def test_image_part_rejects_unknown_bytes():
    with pytest.raises(errors.InvalidInputError, match="not a PNG, JPEG, GIF or WebP"):
        image_part(b"plain text, not an image")


def test_image_part_local_file(tmp_path, monkeypatch):
    path = tmp_path / "tiny.png"
    path.write_bytes(PNG)
    expected = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert image_part(path)["image_url"]["url"] == expected
    assert image_part(str(path))["image_url"]["url"] == expected
    # No magic bytes we know: the extension decides.
    bmp = tmp_path / "pic.bmp"
    bmp.write_bytes(b"BM" + b"\x00" * 20)
    assert image_part(bmp)["image_url"]["url"].startswith("data:image/bmp;base64,")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(errors.InvalidInputError, match="not a recognised image"):
        image_part(text)


def test_image_part_missing_file_names_path(tmp_path):
    missing = tmp_path / "nope.png"
    with pytest.raises(errors.InvalidInputError, match="nope.png"):
        image_part(missing)
    with pytest.raises(errors.InvalidInputError, match="nope.png"):
        image_part(str(missing))
    # A JPEG's base64 starts with "/9j/": it must not be mistaken for a missing path.
    assert image_part(base64.b64encode(JPEG).decode())["image_url"]["url"].startswith("data:image/jpeg")


def test_user_message_shapes(tmp_path):
    assert user_message("hi") == {"role": "user", "content": "hi"}
    assert user_message("hi", []) == {"role": "user", "content": "hi"}
    path = tmp_path / "a.gif"
    path.write_bytes(GIF)
    msg = user_message("compare", ["https://x.test/a.png", path])
    assert msg["role"] == "user"
    assert msg["content"][0] == {"type": "text", "text": "compare"}
    assert msg["content"][1]["image_url"]["url"] == "https://x.test/a.png"
    assert msg["content"][2]["image_url"]["url"].startswith("data:image/gif;base64,")
    # A single source is treated as a one-item list, not iterated character by character.
    assert len(user_message("one", "https://x.test/a.png")["content"]) == 2


# -- LiveASGITransport: in-process apps that stream and can time out ---------------------------


def gated_app(gate: asyncio.Event, calls: list):
    """Streams one chunk, then waits for the test to open the gate before the rest."""
    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    async def body():
        yield b"first;"
        await gate.wait()
        yield b"second"

    async def endpoint(request):
        calls.append(await request.body())
        return StreamingResponse(body(), media_type="text/plain")

    return Starlette(routes=[Route("/stream", endpoint, methods=["POST"])])


async def test_live_asgi_transport_streams_chunks_as_the_app_sends_them():
    from promptlab.providers.openai import LiveASGITransport

    gate, calls = asyncio.Event(), []
    async with httpx2.AsyncClient(transport=LiveASGITransport(gated_app(gate, calls)),
                                  base_url="http://app.local") as client:
        async with client.stream("POST", "/stream", content=b"payload") as response:
            chunks = response.aiter_bytes()
            # httpx2.ASGITransport would only return after the whole body, i.e. never here.
            first = await asyncio.wait_for(chunks.__anext__(), 5)
            assert first == b"first;" and not gate.is_set()
            gate.set()
            rest = b"".join([c async for c in chunks])
    assert rest == b"second" and calls == [b"payload"]


async def test_live_asgi_transport_applies_read_timeout():
    from promptlab.providers.openai import LiveASGITransport

    gate, calls = asyncio.Event(), []  # never opened: the app hangs after the first chunk
    async with httpx2.AsyncClient(transport=LiveASGITransport(gated_app(gate, calls)),
                                  base_url="http://app.local", timeout=0.05) as client:
        with pytest.raises(httpx2.ReadTimeout):
            await client.post("/stream", content=b"x")
    assert len(calls) == 1


async def test_live_asgi_transport_raises_app_errors():
    from promptlab.providers.openai import LiveASGITransport

    async def broken(scope, receive, send):
        raise RuntimeError("app bug")

    async with httpx2.AsyncClient(transport=LiveASGITransport(broken), base_url="http://app.local") as client:
        with pytest.raises(RuntimeError, match="app bug"):
            await client.get("/")


# -- the built-in simulator through the registry ------------------------------------------------

SIM_PROMPT = [{"role": "user", "content": "Paris is the capital of France. It lies on the Seine river."}]


async def test_sim_completion_works_offline_without_any_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    reg = ProviderRegistry()
    p, model = reg.resolve("sim:extractive")
    c = await p.complete(ChatRequest(model=model, messages=SIM_PROMPT, temperature=0))
    assert set(re.findall(r"\w+", c.text)) & {"Paris", "France", "Seine", "capital", "river"}
    assert c.usage.prompt_tokens > 0 and c.usage.completion_tokens > 0
    items = await collect(p, ChatRequest(model=model, messages=SIM_PROMPT, temperature=0))
    assert len(items) > 2 and items[-1].text == "".join(items[:-1]) == c.text
    assert items[-1].usage == c.usage and items[-1].ttft_ms is not None
    stats = reg.sim_app.state.stats
    assert (stats.requests, stats.ok, stats.streamed) == (2, 2, 1)
    await reg.aclose()


async def test_sim_rate_limits_are_retried_honouring_retry_after():
    reg = ProviderRegistry()
    p, model = reg.resolve("sim:extractive")
    request = ChatRequest(model=model, messages=SIM_PROMPT,
                          extra_body={"sim": {"error_rate": 1.0, "fail_times": 2, "retry_after": 0.01}})
    c = await p.complete(request)  # default max_retries=2: two 429s, then the answer
    assert c.text and c.finish_reason == "stop"
    stats = reg.sim_app.state.stats
    assert stats.requests == 3 and stats.rate_limited == 2 and stats.ok == 1

    no_retry = p.with_options(max_retries=0)
    again = ChatRequest(model=model, messages=SIM_PROMPT + [{"role": "user", "content": "again"}],
                        extra_body={"sim": {"error_rate": 1.0, "fail_times": 1, "retry_after": 0.25}})
    with pytest.raises(errors.RateLimitError) as info:
        await no_retry.complete(again)
    assert info.value.retry_after == 0.25 and info.value.provider == "sim"
    assert stats.requests == 4
    await reg.aclose()


async def test_sim_timeouts_trip_the_client_timeout():
    reg = ProviderRegistry(sim_options={"hang_ms": 60_000})
    p = reg.get("sim").with_options(timeout=0.05, max_retries=0)
    with pytest.raises(errors.ProviderTimeoutError) as info:
        await p.complete(ChatRequest(model="extractive", messages=SIM_PROMPT,
                                     extra_body={"sim": {"timeout_rate": 1.0}}))
    assert info.value.provider == "sim"
    assert reg.sim_app.state.stats.timeouts == 1
    await reg.aclose()


async def test_sim_stream_is_incremental_and_early_stop_cancels_the_server_side():
    reg = ProviderRegistry()
    p, model = reg.resolve("sim:extractive")
    stats = reg.sim_app.state.stats
    gen = p.stream(ChatRequest(model=model, messages=SIM_PROMPT, extra_body={"sim": {"token_latency_ms": 50}}))
    first = await gen.__anext__()
    assert isinstance(first, str) and first
    assert stats.in_flight == 1  # the server is still producing tokens: nothing was buffered
    await gen.aclose()
    assert stats.in_flight == 0  # closing the stream stopped the server-side generator
    await reg.aclose()


def test_sim_app_is_kept_by_the_registry():
    reg = ProviderRegistry(sim_options={"seed": 3})
    app = reg.sim_app
    assert app is reg.sim_app and hasattr(app.state, "stats")
    reg.register("sim", base_url="http://other.test/v1")
    with pytest.raises(errors.ConfigError, match="re-registered"):
        reg.sim_app


def test_sim_options_are_validated_by_the_simulator():
    with pytest.raises(errors.ConfigError):
        ProviderRegistry(sim_options={"error_rate": 2.0}).get("sim")
