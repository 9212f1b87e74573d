"""The gateway's ASGI app: the seed's REST API over a Lab's store, behind bearer API keys.

Handlers that only touch the store are plain ``def`` (FastAPI runs them in its thread pool);
handlers that call a model are ``async`` and use the Lab's async twins, so a slow provider never
blocks the server. Every generation and feedback row is committed before its response is sent:
a plain run answers after its row is final; ``async_mode`` answers 202 once the pending row exists;
``streaming`` starts its events after the pending row exists and sends ``done`` after the final one.

Errors are JSON ``{"error": {"type", "message"}}``: 401/403 for keys, 404 unknown names, 413 too
large, 422 invalid requests (the message names the field or the missing template variable), 502
provider failures (504 timeouts) with promptlab's message, 500 only for bugs.
"""

from __future__ import annotations

import json
import logging
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Mapping

from fastapi import Depends, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from .. import __version__
from ..errors import (
    ConfigError,
    InvalidInputError,
    NotFoundError,
    PromptlabError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    StoreError,
    TemplateError,
)
from ..generations import Generation, feedback_url
from .keys import ApiKey, ApiKeys
from .limits import BodyLimit
from .models import (
    ActionPromptRequest,
    ActionResponse,
    DataPointResponse,
    ErrorResponse,
    ExperimentPromptRequest,
    FeedbackRequest,
    FeedbackResponse,
    HealthResponse,
    PromptResponse,
    RunActionRequest,
    SessionRequest,
    SessionResponse,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..lab import Lab

log = logging.getLogger("promptlab.gateway")

MAX_BODY_BYTES = 1_000_000
_ERRORS = {code: {"model": ErrorResponse, "description": text} for code, text in {
    400: "The body cannot be read (not UTF-8, a bad Content-Length).",
    401: "No API key, or an unknown, wrong or revoked one.",
    403: "The API key lacks the scope this endpoint needs.",
    404: "No action, generation, session or experiment by that GUID or name.",
    413: "The request body is larger than the limit.",
    422: "The request is invalid: the message names the field.",
}.items()}
_MODEL_ERRORS = {**_ERRORS,
                 502: {"model": ErrorResponse, "description": "The model provider failed (its message)."},
                 504: {"model": ErrorResponse, "description": "The model provider timed out."}}
_STORE_DOWN = {503: {"model": ErrorResponse, "description": "The store is unavailable."}}


def create_app(lab: "Lab", public_url: str | None = None, *, max_body_bytes: int = MAX_BODY_BYTES,
               close_lab: bool = False) -> FastAPI:
    """The gateway for ``lab``'s store as an ASGI app (serve it with uvicorn).

    ``public_url``: the gateway's address as clients see it, used in ``feedback_url``; by default
    each request's own base URL. ``close_lab``: close the Lab when the app shuts down.

    >>> app = create_app(pl.Lab("postgresql://..."), public_url="https://gw.example.com")
    >>> # uvicorn.run(app, port=8080)
    """
    if public_url is not None and not public_url.startswith(("http://", "https://")):
        raise ConfigError(f"public_url must be an http(s) URL, not {public_url!r}")
    keys = ApiKeys(lab.store)
    # Built now, not lazily inside concurrent handler threads.
    feedback_resource, experiments = lab.feedback, lab.experiments

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if close_lab:
            lab.close()

    app = FastAPI(
        title="promptlab gateway", version=__version__, lifespan=lifespan,
        openapi_url="/openapi.json", docs_url="/docs", redoc_url=None,
        description="Run actions and experiments, read generations, log feedback and create sessions "
                    "on a promptlab store. Authenticate with `Authorization: Bearer pl_<id>_<secret>` "
                    "(create keys with `promptlab keys create --name NAME --scope run --scope feedback`).",
    )
    app.state.lab = lab
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    _install_error_handlers(app)
    bearer = HTTPBearer(auto_error=False, scheme_name="bearerAuth",
                        description="An API key: pl_<id>_<secret>.")

    def require(scope: str) -> Callable[..., ApiKey]:
        def authorize(credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> ApiKey:
            if credentials is None:
                raise _http(401, "unauthorized", "missing API key: send 'Authorization: Bearer <key>'")
            key = keys.authenticate(credentials.credentials)
            if key is None:
                raise _http(401, "unauthorized", "invalid or revoked API key")
            if not key.allows(scope):
                raise _http(403, "forbidden", f"API key {key.id!r} lacks the {scope!r} scope "
                                              f"(it has: {', '.join(key.scopes)})")
            return key

        return authorize

    def base_url(request: Request) -> str:
        return public_url or str(request.base_url)

    # -- health ---------------------------------------------------------------------------

    @app.get("/v1/health", response_model=HealthResponse, tags=["meta"], summary="Liveness (no key needed)")
    async def health() -> Any:
        return {"status": "ok", "version": __version__}

    # -- actions --------------------------------------------------------------------------

    @app.post("/v1/actions/", response_model=ActionResponse, tags=["actions"], summary="Run an action",
              responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                               "description": "The generation; with streaming, server-sent events "
                                              "(start, delta..., done | error)."},
                         202: {"model": ActionResponse, "description": "async_mode: the pending generation."},
                         **_MODEL_ERRORS})
    async def run_action(body: RunActionRequest, request: Request, _key: ApiKey = Depends(require("run"))) -> Any:
        # With ``experiment``, the experiment assigns the variant, or the action must be one of its
        # variants (the seed's manual traffic control): the Python API's experiment form.
        generation = await lab.actions.aprompt(
            body.action, body.lab_input(), environment=body.environment, version=body.version,
            cache=body.cache, ext_user_id=body.user, session=body.session,
            metadata_filter=body.metadata_filter, messages=body.lab_messages(),
            streaming=body.streaming, async_mode=body.async_mode, experiment=body.experiment)
        return _respond(generation, base_url(request), body.async_mode)

    # The seed's URL has the trailing slash; without it, answer the same instead of redirecting a POST.
    app.add_api_route("/v1/actions", run_action, methods=["POST"], include_in_schema=False)

    @app.post("/v1/actions/prompt", response_model=PromptResponse, tags=["actions"],
              summary="The fully formatted prompt (no model call)", responses=_ERRORS)
    def action_prompt(body: ActionPromptRequest, _key: ApiKey = Depends(require("run"))) -> Any:
        variant = None
        if body.experiment is not None:
            # The variant lab.actions.get_action_prompt(experiment=...) shows: sticky by user, else
            # session; the first variant without either (deterministic).
            exp, chosen = experiments.assign(body.experiment, ext_user_id=body.user, session=body.session,
                                             draw=False)
            action = lab.actions.get(chosen.action_guid, environment=chosen.environment)
            variant = chosen.label
        else:
            action = lab.actions.get(body.action, version=body.version, environment=body.environment)
        messages = lab.actions.get_action_prompt(
            action.version_guid, body.lab_input(), session=body.session,
            metadata_filter=body.metadata_filter, messages=body.lab_messages())
        return JSONResponse(_jsonable({"messages": messages, "action": action.name, "action_guid": action.guid,
                                       "action_version": action.version,
                                       "experiment": exp.guid if variant else None, "variant": variant}))

    # -- experiments ----------------------------------------------------------------------

    @app.post("/v1/experiments/{guid}/prompt", response_model=ActionResponse, tags=["experiments"],
              summary="Run one A/B generation",
              responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
                         202: {"model": ActionResponse, "description": "async_mode: the pending generation."},
                         **_MODEL_ERRORS})
    async def experiment_prompt(guid: str, body: ExperimentPromptRequest, request: Request,
                                _key: ApiKey = Depends(require("run"))) -> Any:
        generation = await experiments.aprompt(
            guid, body.lab_input(), ext_user_id=body.user, session=body.session, cache=body.cache,
            metadata_filter=body.metadata_filter, messages=body.lab_messages(), streaming=body.streaming,
            async_mode=body.async_mode)
        return _respond(generation, base_url(request), body.async_mode)

    # -- data points and feedback ---------------------------------------------------------

    @app.get("/v1/data/{guid}", response_model=DataPointResponse, tags=["data"],
             summary="A generation (data point) and its feedback", responses={**_ERRORS, **_STORE_DOWN})
    def get_data(guid: str, request: Request, _key: ApiKey = Depends(require("run"))) -> Any:
        generation = lab.generations.get(guid)
        body = _generation_body(generation, base_url(request))
        body.update(input=generation.input, messages=generation.messages, params=generation.params,
                    metadata=generation.metadata, run=generation.run, repeat=generation.repeat,
                    feedback=[r.to_dict() for r in feedback_resource.list(guid)])
        return JSONResponse(_jsonable(body))

    def log_feedback(guid: str, body: FeedbackRequest) -> JSONResponse:
        record = feedback_resource.log(guid, **body.fields())
        return JSONResponse(_jsonable(record.to_dict()))

    feedback_doc = dict(response_model=FeedbackResponse, tags=["feedback"], responses={**_ERRORS, **_STORE_DOWN})

    @app.post("/v1/feedback", summary="Log feedback (rating 1/2 or Negative/Positive, correction, issue)",
              **feedback_doc)
    def post_feedback(body: FeedbackRequest, _key: ApiKey = Depends(require("feedback"))) -> Any:
        if body.target is None:
            raise _http(422, "validation_error", "body: 'guid' (the generation's GUID) is required")
        return log_feedback(body.target, body)

    @app.post("/v1/data/{guid}", summary="Log feedback by POSTing to the feedback_url", **feedback_doc)
    @app.post("/v1/data/{guid}/feedback", summary="Log feedback on this data point", **feedback_doc)
    def post_data_feedback(guid: str, body: FeedbackRequest, _key: ApiKey = Depends(require("feedback"))) -> Any:
        if body.target is not None and body.target != guid:
            raise _http(422, "validation_error", f"body names generation {body.target!r} but the URL names {guid!r}")
        return log_feedback(guid, body)

    # -- sessions -------------------------------------------------------------------------

    @app.post("/v1/sessions", response_model=SessionResponse, tags=["sessions"], summary="Create a session",
              responses=_ERRORS)
    def create_session(body: SessionRequest, _key: ApiKey = Depends(require("run"))) -> Any:
        session = lab.sessions.create(action=body.action, ext_user_id=body.user, name=body.name,
                                      memory_window=body.memory_window)
        return JSONResponse(_jsonable(_session_body(session)))

    @app.get("/v1/sessions/{guid}", response_model=SessionResponse, tags=["sessions"],
             summary="A session and its messages", responses=_ERRORS)
    def get_session(guid: str, _key: ApiKey = Depends(require("run"))) -> Any:
        return JSONResponse(_jsonable(_session_body(lab.sessions.get(guid))))

    return app


# -- running ------------------------------------------------------------------------------------


def _respond(generation: Generation, base: str, async_mode: bool):
    if generation.stream is not None:
        return StreamingResponse(_sse(generation, base), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    return JSONResponse(_jsonable(_generation_body(generation, base)), status_code=202 if async_mode else 200)


async def _sse(generation: Generation, base: str) -> AsyncIterator[str]:
    """start, one delta per piece, then done (the whole response) or error."""
    yield _event("start", {"guid": generation.guid, "feedback_url": feedback_url(base, generation.guid),
                           "streaming": True})
    try:
        async for delta in generation.stream:
            yield _event("delta", {"delta": delta})
    except PromptlabError as exc:
        status, kind = _status_for(exc)
        yield _event("error", {"guid": generation.guid, "status": status,
                               "error": {"type": kind, "message": str(exc)}})
        return
    yield _event("done", _jsonable(_generation_body(generation, base)))


def _event(name: str, data: Mapping[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


# -- bodies -------------------------------------------------------------------------------------

_RESPONSE_FIELDS = tuple(ActionResponse.model_fields)


def _generation_body(generation: Generation, base: str) -> dict[str, Any]:
    body = {name: getattr(generation, name, None) for name in _RESPONSE_FIELDS}
    body["feedback_url"] = feedback_url(base, generation.guid)
    body["usage"] = dict(generation.usage or {})
    return body


def _session_body(session) -> dict[str, Any]:
    return dict(guid=session.guid, action=session.action, ext_user_id=session.ext_user_id, name=session.name,
                memory_window=session.memory_window, created_at=session.created_at, messages=session.messages)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


# -- errors -------------------------------------------------------------------------------------


def _http(status: int, kind: str, message: str, headers: Mapping[str, str] | None = None) -> HTTPException:
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer", **(headers or {})}
    return HTTPException(status, detail={"type": kind, "message": message}, headers=dict(headers or {}) or None)


def _status_for(exc: PromptlabError) -> tuple[int, str]:
    if isinstance(exc, NotFoundError):
        return 404, type(exc).__name__
    if isinstance(exc, (InvalidInputError, TemplateError, ConfigError)):
        return 422, type(exc).__name__
    if isinstance(exc, ProviderTimeoutError):
        return 504, type(exc).__name__
    if isinstance(exc, ProviderError):
        return 502, type(exc).__name__
    if isinstance(exc, StoreError):
        return 503, type(exc).__name__
    return 400, type(exc).__name__


def _error(status: int, kind: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status,
                        headers=dict(headers) if headers else None)


_UNION_TAGS = {"str", "int", "float", "bool", "dict", "list", "none"}


def _clean_loc(loc) -> tuple:
    # pydantic names the union member it tried ("str", "list[tagged-union[...]]"): not a place.
    return tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in _UNION_TAGS)))


def validation_message(errors: list[Mapping[str, Any]]) -> str:
    """One readable line from pydantic/FastAPI errors: ``body.input: Input should be ...; ...``.

    For a union, a member's "wrong type" error is dropped when another member got further.
    """
    located = [(_clean_loc(err.get("loc", ())), err) for err in errors]
    parts: list[str] = []
    for loc, err in located:
        if str(err.get("type", "")).endswith("_type") and any(
                other is not err and len(other_loc) >= len(loc) and other_loc[:len(loc)] == loc
                and not str(other.get("type", "")).endswith("_type") for other_loc, other in located):
            continue
        where = ".".join(str(p) for p in loc)
        message = str(err.get("msg", "invalid"))
        for prefix in ("Value error, ", "Assertion failed, "):
            if message.startswith(prefix):
                message = message[len(prefix):]
        line = f"{where}: {message}" if where and not message.startswith(where) else message
        if line not in parts:
            parts.append(line)
    if len(parts) > 10:
        parts = parts[:10] + [f"... and {len(parts) - 10} more"]
    return "; ".join(parts)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        if isinstance(exc.detail, dict):
            return _error(exc.status_code, exc.detail["type"], exc.detail["message"], exc.headers)
        kind = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, kind, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "validation_error", validation_message(exc.errors()))

    @app.exception_handler(PromptlabError)
    async def promptlab_error(_request: Request, exc: PromptlabError) -> JSONResponse:
        status, kind = _status_for(exc)
        headers = None
        if isinstance(exc, RateLimitError) and exc.retry_after:
            headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
        if status >= 500:
            log.warning("%s: %s", kind, exc)
        return _error(status, kind, str(exc), headers)

    @app.exception_handler(Exception)
    async def bug(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error in the gateway")
        return _error(500, "internal_error", "internal server error (logged by the gateway)")
