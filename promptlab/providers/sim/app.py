"""The simulator's HTTP face: an OpenAI-compatible Chat Completions server (Starlette ASGI app).

This is a SIMULATOR, not a language model. Its answers come from the pure rules in
``promptlab.providers.sim.models``; this module only adds what a real endpoint has around the
answer: the OpenAI wire format (JSON and SSE streaming), request validation with OpenAI-shaped
errors, latency, and injectable faults (429 with Retry-After, 500, hangs that trip client
timeouts), so retry and timeout code is exercised offline through the real ``openai`` client.

Routes::

    POST /v1/chat/completions   the simulated model
    GET  /v1/models             echo, extractive, judge (owned_by "promptlab-simulator")
    GET  /v1/models/{id}
    GET  /sim/stats             request counters (also ``app.state.stats``)
    POST /sim/reset             zero the counters and forget fail_times attempts

Per-request knobs travel in the body field ``sim`` (``extra_body={"sim": {...}}`` with the
openai client): ``latency_ms``, ``token_latency_ms``, ``error_rate``, ``server_error_rate``,
``timeout_rate``, ``retry_after``, ``hang_ms``, ``fail_times`` and ``repeat``.

Faults are deterministic: each attempt of a request draws from a ``random.Random`` seeded with
(app seed, hash of the request body, attempt number), so a run is repeatable whatever the
interleaving of concurrent requests. ``fail_times: k`` makes exactly the first k attempts of an
identical request fail (429 if ``error_rate`` > 0, else 500 if ``server_error_rate`` > 0, else a
hang if ``timeout_rate`` > 0, else 429) and every later attempt succeed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from promptlab.errors import ConfigError, InvalidInputError, NotFoundError
from promptlab.providers.sim import models

OWNED_BY = "promptlab-simulator"
_MODELS_CREATED = 1_700_000_000  # fixed so /v1/models is byte-for-byte repeatable
_MAX_REMEMBERED_ATTEMPTS = 100_000
_SERVED = "the simulator serves " + ", ".join(models.MODEL_KINDS) + " and <name>-<suffix> variants"
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


# --------------------------------------------------------------------------- config & stats


@dataclass(frozen=True)
class SimConfig:
    """Latency and fault settings; the app holds the defaults, a request's ``sim`` overrides them."""

    latency_ms: float = 0.0
    token_latency_ms: float = 0.0
    error_rate: float = 0.0
    server_error_rate: float = 0.0
    timeout_rate: float = 0.0
    retry_after: float = 1.0
    hang_ms: float = 30_000.0
    seed: int = 0

    def validated(self, prefix: str = "") -> "SimConfig":
        for name in ("latency_ms", "token_latency_ms", "retry_after", "hang_ms"):
            value = getattr(self, name)
            if not _is_number(value) or value < 0 or not math.isfinite(value):
                raise _invalid(prefix + name, f"{prefix}{name} must be a finite number >= 0, got {value!r}")
        for name in ("error_rate", "server_error_rate", "timeout_rate"):
            value = getattr(self, name)
            if not _is_number(value) or not 0.0 <= value <= 1.0:
                raise _invalid(prefix + name, f"{prefix}{name} must be a number between 0 and 1, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise _invalid(prefix + "seed", f"{prefix}seed must be an integer, got {self.seed!r}")
        return self


_OVERRIDABLE = frozenset(
    {"latency_ms", "token_latency_ms", "error_rate", "server_error_rate", "timeout_rate",
     "retry_after", "hang_ms"}
)
_SIM_KEYS = _OVERRIDABLE | {"fail_times", "repeat"}


@dataclass
class SimStats:
    """Counters for tests and dashboards; every POST /v1/chat/completions counts once.

    ``by_status`` maps HTTP status (int) to count; ``streamed`` counts 200 answers sent as SSE;
    ``timeouts`` counts simulated hangs; ``max_in_flight`` is the peak of concurrent requests;
    ``last_request_at`` is the wall-clock time (``time.time()``) the latest request arrived, so a
    test can tell whether a client kept sending after it was told to stop.
    """

    requests: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    streamed: int = 0
    timeouts: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    last_request_at: float | None = None

    @property
    def ok(self) -> int:
        return self.by_status.get(200, 0)

    @property
    def rate_limited(self) -> int:
        return self.by_status.get(429, 0)

    @property
    def server_errors(self) -> int:
        return self.by_status.get(500, 0)

    def record(self, status: int) -> None:
        self.by_status[status] = self.by_status.get(status, 0) + 1

    def reset(self) -> None:
        in_flight = self.in_flight
        for name, value in SimStats().__dict__.items():
            setattr(self, name, value)
        self.in_flight = in_flight  # requests still running will decrement it

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "ok": self.ok,
            "rate_limited": self.rate_limited,
            "server_errors": self.server_errors,
            "streamed": self.streamed,
            "timeouts": self.timeouts,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "last_request_at": self.last_request_at,
        }


# --------------------------------------------------------------------------- request parsing


@dataclass(frozen=True)
class ChatParams:
    model: str
    messages: list[dict[str, Any]]
    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    seed: int | None
    stop: list[str] | None
    stream: bool
    include_usage: bool
    sim: dict[str, Any]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _invalid(param: str | None, message: str) -> InvalidInputError:
    err = InvalidInputError(message)
    err.param = param  # type: ignore[attr-defined]  # echoed in the OpenAI error body
    return err


def _optional_int(body: dict[str, Any], name: str, minimum: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(name, f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise _invalid(name, f"{name} must be >= {minimum}, got {value}")
    return value


def _optional_range(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if not _is_number(value) or not low <= value <= high:
        raise _invalid(name, f"{name} must be a number between {low:g} and {high:g}, got {value!r}")
    return float(value)


def _check_messages(messages: Any) -> list[dict[str, Any]]:
    if messages is None:
        raise _invalid("messages", "Missing required parameter: 'messages'.")
    if not isinstance(messages, list) or not messages:
        raise _invalid("messages", "messages must be a non-empty array of message objects.")
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _invalid(where, f"{where} must be an object, got {type(message).__name__}.")
        role = message.get("role")
        if role not in _ROLES:
            raise _invalid(f"{where}.role", f"{where}.role must be one of {sorted(_ROLES)}, got {role!r}.")
        content = message.get("content")
        if content is None:
            if role in ("assistant", "tool", "function"):
                continue
            raise _invalid(f"{where}.content", f"Missing required parameter: '{where}.content'.")
        if isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise _invalid(f"{where}.content[{j}]",
                                   f"{where}.content[{j}] must be an object with a 'type'.")
                if part["type"] == "text" and not isinstance(part.get("text"), str):
                    raise _invalid(f"{where}.content[{j}].text",
                                   f"{where}.content[{j}].text must be a string.")
        elif not isinstance(content, str):
            raise _invalid(f"{where}.content",
                           f"{where}.content must be a string or an array of content parts.")
    return messages


def _check_sim(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _invalid("sim", f"sim must be an object, got {type(raw).__name__}.")
    unknown = sorted(set(raw) - _SIM_KEYS)
    if unknown:
        raise _invalid(f"sim.{unknown[0]}",
                       f"unknown sim option {unknown[0]!r}; known: {', '.join(sorted(_SIM_KEYS))}.")
    for name in ("fail_times", "repeat"):
        value = raw.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise _invalid(f"sim.{name}", f"sim.{name} must be an integer >= 0, got {value!r}.")
    return raw


def parse_chat_request(body: Any) -> ChatParams:
    """Validate an OpenAI Chat Completions body.

    Raises ``InvalidInputError`` (HTTP 400; ``.param`` names the field) or ``NotFoundError``
    (HTTP 404) for a model the simulator does not serve.
    """
    if not isinstance(body, dict):
        raise _invalid(None, "The request body must be a JSON object.")
    model = body.get("model")
    if model is None:
        raise _invalid("model", "Missing required parameter: 'model'.")
    if not isinstance(model, str):
        raise _invalid("model", f"model must be a string, got {model!r}.")
    messages = _check_messages(body.get("messages"))
    if models.resolve_model(model) is None:
        raise NotFoundError("model", model, hint=_SERVED)
    n = _optional_int(body, "n", minimum=1)
    if n not in (None, 1):
        raise _invalid("n", f"the simulator only supports n=1, got n={n}.")
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and (not isinstance(stop, list) or len(stop) > 4
                             or not all(isinstance(s, str) for s in stop)):
        raise _invalid("stop", "stop must be a string or an array of up to 4 strings.")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise _invalid("stream", f"stream must be a boolean, got {stream!r}.")
    stream_options = body.get("stream_options")
    include_usage = False
    if stream_options is not None:
        if not stream:
            raise _invalid("stream_options", "The 'stream_options' parameter is only allowed when 'stream' is enabled.")
        if not isinstance(stream_options, dict):
            raise _invalid("stream_options", "stream_options must be an object.")
        include_usage = bool(stream_options.get("include_usage", False))
    max_tokens = _optional_int(body, "max_completion_tokens", minimum=1)
    if max_tokens is None:
        max_tokens = _optional_int(body, "max_tokens", minimum=1)
    return ChatParams(
        model=model,
        messages=messages,
        temperature=_optional_range(body, "temperature", 0.0, 2.0),
        top_p=_optional_range(body, "top_p", 0.0, 1.0),
        max_tokens=max_tokens,
        seed=_optional_int(body, "seed"),
        stop=stop or None,
        stream=stream,
        include_usage=include_usage,
        sim=_check_sim(body.get("sim")),
    )


# --------------------------------------------------------------------------- faults


def request_key(body: dict[str, Any]) -> str:
    """Identity of a request for ``fail_times`` and fault draws: a hash of the whole body."""
    blob = json.dumps(body, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def choose_fault(config: SimConfig, key: str, attempt: int, fail_times: int | None) -> str | None:
    """Which fault, if any, attempt number ``attempt`` (1-based) of request ``key`` gets.

    Returns None, ``"rate_limit"``, ``"server_error"`` or ``"timeout"``.
    """
    if fail_times is not None:
        if attempt > fail_times:
            return None
        if config.error_rate > 0:
            return "rate_limit"
        if config.server_error_rate > 0:
            return "server_error"
        if config.timeout_rate > 0:
            return "timeout"
        return "rate_limit"
    draw = random.Random(models.stable_hash("fault", config.seed, key, attempt)).random()
    if draw < config.error_rate:
        return "rate_limit"
    if draw < config.error_rate + config.server_error_rate:
        return "server_error"
    if draw < config.error_rate + config.server_error_rate + config.timeout_rate:
        return "timeout"
    return None


# --------------------------------------------------------------------------- responses


def _error(status: int, message: str, type_: str, param: str | None = None, code: str | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))


def _completion_body(cid: str, created: int, params: ChatParams, out: models.SimOutput) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": params.model,
        "system_fingerprint": OWNED_BY,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": out.text, "refusal": None},
            "logprobs": None,
            "finish_reason": out.finish_reason,
        }],
        "usage": _usage(out),
    }


def _usage(out: models.SimOutput) -> dict[str, int]:
    return {
        "prompt_tokens": out.prompt_tokens,
        "completion_tokens": out.completion_tokens,
        "total_tokens": out.prompt_tokens + out.completion_tokens,
    }


def _sse(payload: dict[str, Any] | str) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n"


def _model_card(model_id: str) -> dict[str, Any]:
    kind = models.resolve_model(model_id) or model_id
    return {
        "id": model_id,
        "object": "model",
        "created": _MODELS_CREATED,
        "owned_by": OWNED_BY,
        "description": models.MODEL_DESCRIPTIONS[kind],
    }


# --------------------------------------------------------------------------- the app


def create_app(
    latency_ms: float = 0,
    error_rate: float = 0.0,
    server_error_rate: float = 0.0,
    timeout_rate: float = 0.0,
    retry_after: float = 1.0,
    seed: int = 0,
    token_latency_ms: float = 0,
    hang_ms: float = 30_000,
) -> Starlette:
    """Build the simulator ASGI app. Arguments are defaults that a request's ``sim`` overrides.

    Raises ``ConfigError`` naming the bad argument (rates must be in [0, 1], times >= 0).

    Example (in-process, through the real openai client)::

        app = create_app(seed=1)
        client = openai.AsyncOpenAI(api_key="sim", base_url="http://sim/v1",
            http_client=httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app)))
        await client.chat.completions.create(model="extractive", messages=[...])
        app.state.stats.requests  # -> 1
    """
    try:
        defaults = SimConfig(
            latency_ms=latency_ms, token_latency_ms=token_latency_ms, error_rate=error_rate,
            server_error_rate=server_error_rate, timeout_rate=timeout_rate,
            retry_after=retry_after, hang_ms=hang_ms, seed=seed,
        ).validated()
    except InvalidInputError as exc:
        raise ConfigError(f"create_app: {exc}") from None

    stats = SimStats()
    attempts: OrderedDict[str, int] = OrderedDict()

    def next_attempt(key: str) -> int:
        count = attempts.pop(key, 0) + 1
        attempts[key] = count
        if len(attempts) > _MAX_REMEMBERED_ATTEMPTS:
            attempts.popitem(last=False)
        return count

    def finish(status: int, response: Response) -> Response:
        stats.record(status)
        return response

    async def chat_completions(request: Request) -> Response:
        stats.requests += 1
        stats.last_request_at = time.time()
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        streaming_took_over = False
        try:
            try:
                body = json.loads(await request.body())
            except (json.JSONDecodeError, UnicodeDecodeError):
                return finish(400, _error(400, "We could not parse the JSON body of your request.",
                                          "invalid_request_error"))
            try:
                params = parse_chat_request(body)
                overrides = {k: v for k, v in params.sim.items() if k in _OVERRIDABLE}
                config = replace(defaults, **overrides).validated(prefix="sim.")
            except NotFoundError as exc:
                return finish(404, _error(
                    404, f"The model `{exc.key}` does not exist; {_SERVED}.",
                    "invalid_request_error", "model", "model_not_found"))
            except InvalidInputError as exc:
                return finish(400, _error(400, str(exc), "invalid_request_error",
                                          getattr(exc, "param", None), "invalid_value"))

            key = request_key(body)
            fault = choose_fault(config, key, next_attempt(key), params.sim.get("fail_times"))
            if config.latency_ms:
                await asyncio.sleep(config.latency_ms / 1000)
            if fault == "rate_limit":
                seconds = config.retry_after
                return finish(429, _error(
                    429, f"Rate limit reached for {params.model} (simulated by promptlab-sim). "
                         f"Please try again in {_format_seconds(seconds)}s.",
                    "requests", None, "rate_limit_exceeded",
                    headers={"Retry-After": _format_seconds(seconds),
                             "retry-after-ms": _format_seconds(seconds * 1000)}))
            if fault == "server_error":
                return finish(500, _error(
                    500, "The server had an error while processing your request "
                         "(simulated by promptlab-sim).", "server_error"))
            if fault == "timeout":
                stats.timeouts += 1
                # Longer than any sane client timeout; a patient client then gets a normal answer.
                await asyncio.sleep(config.hang_ms / 1000)

            out = models.respond(
                params.model, params.messages, temperature=params.temperature, top_p=params.top_p,
                seed=params.seed, repeat=params.sim.get("repeat"), max_tokens=params.max_tokens,
                stop=params.stop,
            )
            stats.prompt_tokens += out.prompt_tokens
            stats.completion_tokens += out.completion_tokens
            cid = f"chatcmpl-sim-{uuid.uuid4().hex[:24]}"
            created = int(time.time())
            pieces = models.stream_pieces(out.text)

            if not params.stream:
                if config.token_latency_ms:
                    await asyncio.sleep(config.token_latency_ms * len(pieces) / 1000)
                return finish(200, JSONResponse(_completion_body(cid, created, params, out)))

            stats.streamed += 1
            streaming_took_over = True
            return finish(200, StreamingResponse(
                _stream(cid, created, params, out, pieces, config.token_latency_ms),
                media_type="text/event-stream", headers={"Cache-Control": "no-cache"}))
        finally:
            if not streaming_took_over:
                stats.in_flight -= 1

    async def _stream(cid: str, created: int, params: ChatParams, out: models.SimOutput,
                      pieces: list[str], token_latency_ms: float) -> AsyncIterator[str]:
        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            payload: dict[str, Any] = {
                "id": cid, "object": "chat.completion.chunk", "created": created,
                "model": params.model, "system_fingerprint": OWNED_BY,
                "choices": [{"index": 0, "delta": delta, "logprobs": None,
                             "finish_reason": finish_reason}],
            }
            if params.include_usage:
                payload["usage"] = None
            return payload

        try:
            yield _sse(chunk({"role": "assistant", "content": "", "refusal": None}))
            for piece in pieces:
                if token_latency_ms:
                    await asyncio.sleep(token_latency_ms / 1000)
                yield _sse(chunk({"content": piece}))
            yield _sse(chunk({}, out.finish_reason))
            if params.include_usage:
                yield _sse({"id": cid, "object": "chat.completion.chunk", "created": created,
                            "model": params.model, "system_fingerprint": OWNED_BY,
                            "choices": [], "usage": _usage(out)})
            yield _sse("[DONE]")
        finally:
            stats.in_flight -= 1

    async def list_models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [_model_card(m) for m in models.MODEL_KINDS]})

    async def get_model(request: Request) -> Response:
        model_id = request.path_params["model_id"]
        if models.resolve_model(model_id) is None:
            return _error(404, f"The model `{model_id}` does not exist; {_SERVED}.", "invalid_request_error",
                          "model", "model_not_found")
        return JSONResponse(_model_card(model_id))

    async def get_stats(request: Request) -> Response:
        return JSONResponse(stats.as_dict())

    async def reset(request: Request) -> Response:
        stats.reset()
        attempts.clear()
        return JSONResponse(stats.as_dict())

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}",
                      "invalid_request_error", headers=exc.headers)

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/models/{model_id:path}", get_model, methods=["GET"]),
            Route("/sim/stats", get_stats, methods=["GET"]),
            Route("/sim/reset", reset, methods=["POST"]),
        ],
        exception_handlers={HTTPException: http_error},
    )
    app.state.stats = stats
    app.state.config = defaults
    return app
