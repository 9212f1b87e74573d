"""The seed's behaviors: Execute Logic, Search, Prompt AI, Call API, Call Function, Verify Claim.

Each behavior is a frozen definition (validated when built, no I/O) with an ``execute(run)``
coroutine that the flow engine calls with the running turn (``promptlab.flows.engine``).
Every behavior also has ``on_enter`` (a ``changeLocation`` there skips the rest of the
behavior), ``on_leave`` (runs when the flow moves on) and ``wait_for_response``.

Handlers that end in an error (``on_error`` / ``on_fail``) see ``context["error"]`` =
``{"type", "message", "behavior", ...}``; with no such handler the error ends the turn by being
raised. Error types:

=================  ==============================================================
``function``       a user function raised or returned something malformed
``token_limit``    the completion was cut (finish_reason "length") or the prompt
                   exceeded the model's context length
``provider``       the model provider failed (connection, 5xx, 429, auth, 4xx)
``search``         a search could not run (unknown library, empty search field)
``blocked``        a request builder's path tried to leave its HTTP target
``timeout``        the API call timed out
``connection``     the API could not be reached
``http_status``    the API answered with a non-2xx status (``statusCode`` is set)
``claim``          Verify Claim found no claim text at its field
``condition``      a verification condition could not be evaluated
=================  ==============================================================
"""

from __future__ import annotations

import asyncio
import copy
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Sequence

from ..errors import (
    ConfigError,
    InvalidInputError,
    PromptlabError,
    ProviderError,
    ProviderRequestError,
    ProviderTimeoutError,
)
from . import http as _http
from . import verify as _verify
from .logic import (
    Logic,
    check_signature,
    evaluate,
    get_path,
    normalize_logic,
    start_typing,
    static_locations,
)

if TYPE_CHECKING:  # pragma: no cover
    from .engine import TurnRun

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\- ]{0,99}$")
_PROMPT_ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_CONTEXT_LENGTH_RE = re.compile(r"context[ _]length|maximum context|too many tokens|context window",
                                re.IGNORECASE)

BUILDER_ARGS = ("llm", "context")
HANDLER_ARGS = ("llm", "context", "prompt", "response", "completion")
PROMPT_KEYS = ("temperature", "max_tokens", "top_p", "seed", "stop")


class BehaviorError(Exception):
    """Internal carrier of a typed failure inside a behavior (never escapes the engine)."""

    def __init__(self, kind: str, error: BaseException, **details: Any):
        super().__init__(str(error))
        self.kind = kind
        self.error = error
        self.details = details


@dataclass(frozen=True)
class Behavior:
    """Common fields of every behavior."""

    name: str
    on_enter: Logic = None
    on_leave: Logic = None
    wait_for_response: bool = False

    kind: ClassVar[str] = "behavior"
    #: Whether the flow rests here when the behavior ends without a transition (next turn
    #: starts here) instead of at the flow's start.
    resting: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ConfigError(f"behavior name {self.name!r} must be letters, digits, space, _ . - "
                              "(up to 100 characters)")
        for handler in self.handler_names():
            value = getattr(self, handler)
            object.__setattr__(self, handler, normalize_logic(value, f"{self.name}.{handler}"))
        if not isinstance(self.wait_for_response, bool):
            raise ConfigError(f"{self.name}.wait_for_response must be True or False")

    def handler_names(self) -> tuple[str, ...]:
        return ("on_enter", "on_leave")

    def locations(self) -> list[str]:
        """changeLocation targets named in this behavior's handlers."""
        return [loc for h in self.handler_names() for loc in static_locations(getattr(self, h))]

    def http_targets(self) -> list[str]:
        return []

    async def execute(self, run: "TurnRun") -> str | None:  # pragma: no cover - abstract
        raise NotImplementedError


# -- Execute Logic ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecuteLogic(Behavior):
    """Rules and actions against the context; reusable and visible in the flow graph.

    >>> ExecuteLogic("greet", rules=[Rule("conversation.fields.vip", then=send_message("Welcome back!")),
    ...                              "answer"])
    """

    rules: Logic = None
    kind: ClassVar[str] = "Execute Logic"

    def handler_names(self) -> tuple[str, ...]:
        return ("on_enter", "rules", "on_leave")

    async def execute(self, run: "TurnRun") -> str | None:
        return await run.logic(self, "rules")


# -- Search -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchSpec:
    """One search: the context library (``resource``) and the context field to search with.

    ``field`` is a dotted context path (``"session.rephrased"``) or ``"customerLastMessage"``.
    """

    resource: str
    field: str = "customerLastMessage"
    top_k: int = 3
    metadata_filter: Mapping[str, Any] | None = None
    mode: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.resource, str) or not self.resource:
            raise ConfigError(f"a search needs a resource (context library name), got {self.resource!r}")
        get_path({}, self.field, None)  # validates the path syntax
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 1:
            raise ConfigError(f"search of {self.resource!r}: top_k must be a positive integer")


@dataclass(frozen=True)
class Search(Behavior):
    """Search context libraries and accumulate results on ``context["searchResults"]``.

    Each search appends ``{"resource", "field", "query", "results": [{"record", "distance"}]}``
    in configured order (they run concurrently). Results are cleared when the turn ends.
    """

    searches: Sequence[Any] = ()
    on_success: Logic = None
    on_error: Logic = None
    kind: ClassVar[str] = "Search"

    def __post_init__(self) -> None:
        specs = []
        for item in self.searches:
            if isinstance(item, SearchSpec):
                specs.append(item)
            elif isinstance(item, Mapping):
                try:
                    specs.append(SearchSpec(**item))
                except TypeError as exc:
                    raise ConfigError(f"{self.name}: bad search {dict(item)!r}: {exc}") from None
            elif isinstance(item, str):
                specs.append(SearchSpec(item))
            else:
                raise ConfigError(f"{self.name}: a search is a SearchSpec, a dict or a resource name, "
                                  f"got {item!r:.80}")
        if not specs:
            raise ConfigError(f"Search behavior {self.name!r} needs at least one search")
        object.__setattr__(self, "searches", tuple(specs))
        super().__post_init__()

    def handler_names(self) -> tuple[str, ...]:
        return ("on_enter", "on_success", "on_error", "on_leave")

    async def execute(self, run: "TurnRun") -> str | None:
        async def one(spec: SearchSpec) -> dict[str, Any]:
            value = get_path(run.context, spec.field, None)
            if not isinstance(value, str) or not value.strip():
                raise InvalidInputError(f"search of {spec.resource!r}: context field {spec.field!r} "
                                        f"holds no search text ({value!r:.60})")
            started = run.clock()
            results = await run.lab.contexts.asearch(spec.resource, value, top_k=spec.top_k,
                                                     metadata_filter=spec.metadata_filter,
                                                     mode=spec.mode)
            run.trace.add("search", self, f"{spec.resource} <- {spec.field}: {len(results)} hit(s)",
                          duration_ms=run.clock() - started, resource=spec.resource, query=value,
                          hits=[{"id": r["record"].get("id"), "distance": round(r["distance"], 4)}
                                for r in results])
            return {"resource": spec.resource, "field": spec.field, "query": value, "results": results}

        outcomes = await asyncio.gather(*(one(s) for s in self.searches), return_exceptions=True)
        failure = None
        for spec, outcome in zip(self.searches, outcomes):
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, Exception):
                    raise outcome
                failure = failure or BehaviorError("search", outcome, resource=spec.resource)
            else:
                run.context["searchResults"].append(outcome)
        if failure is not None:
            return await run.fail(self, "on_error", failure)
        return await run.logic(self, "on_success")


# -- Prompt AI --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prompt:
    """One prompt of a Prompt AI behavior.

    ``build(llm, context) -> {"request": {"messages": [...], "temperature": ..., ...}}`` and
    ``handle(llm, context, prompt, response, completion) -> {"actions": [...], "completion": ...}``
    are called by parameter name, so any subset of those names works (the seed's
    ``handle_basic(llm, context, prompt, completion)``). ``llm`` is a promptlab model string.
    Request keys besides ``messages`` and ``temperature``/``max_tokens``/``top_p``/``seed``/
    ``stop`` are passed to the server as extra body fields.
    """

    id: str
    llm: str
    build: Callable[..., Any]
    handle: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _PROMPT_ID_RE.match(self.id):
            raise ConfigError(f"prompt id {self.id!r} must be an identifier (letters, digits, _), "
                              "so that prompts.<id>.completion can be read")
        if not isinstance(self.llm, str) or not self.llm.strip():
            raise ConfigError(f"prompt {self.id!r}: llm must be a model string such as 'sim:extractive'")
        check_signature(self.build, BUILDER_ARGS, f"prompt {self.id!r} builder")
        if self.handle is not None:
            check_signature(self.handle, HANDLER_ARGS, f"prompt {self.id!r} completion handler")


@dataclass
class _PromptOutcome:
    id: str
    llm: str
    completion: str | None = None
    request: Any = None
    guid: str | None = None
    finish_reason: str | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)
    failure: BehaviorError | None = None

    def variables(self) -> dict[str, Any]:
        error = None
        if self.failure is not None:
            error = {"type": self.failure.kind, "message": str(self.failure.error),
                     "errorClass": type(self.failure.error).__name__}
        return {"completion": self.completion, "llm": self.llm, "guid": self.guid,
                "finishReason": self.finish_reason, "error": error}


def split_request(request: Any, prompt_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(messages, params) from a prompt builder's request; params may carry ``extra_body``."""
    from ..actions import convert_messages

    if not isinstance(request, Mapping):
        raise InvalidInputError(f"prompt {prompt_id!r}: 'request' must be a dict, got {type(request).__name__}")
    for key in ("model", "stream", "n"):
        if key in request:
            raise InvalidInputError(f"prompt {prompt_id!r}: request key {key!r} is not allowed "
                                    "(the model is the prompt's llm; flows take one completion)")
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidInputError(f"prompt {prompt_id!r}: request needs a non-empty 'messages' list")
    params = {k: request[k] for k in PROMPT_KEYS if request.get(k) is not None}
    extra = {k: v for k, v in request.items() if k not in PROMPT_KEYS and k != "messages"}
    if extra:
        params["extra_body"] = extra
    return convert_messages(messages), params


@dataclass(frozen=True)
class PromptAI(Behavior):
    """Run several prompts in parallel, then On Success (all succeeded) or On Error.

    Each prompt's result is in ``context["prompts"][<id>]``: ``completion`` (the handler's
    override if it returned one), ``llm``, ``guid`` (the logged generation), ``finishReason``
    and ``error`` (``{"type", "message"}`` or None). Completion handlers' actions are applied
    in prompt order only when every prompt succeeded; otherwise On Error runs with
    ``context["error"]`` describing the first failure. A Prompt AI behavior is a resting
    point: if nothing changes location, the next turn starts here.
    """

    prompts: Sequence[Prompt] = ()
    on_success: Logic = None
    on_error: Logic = None
    kind: ClassVar[str] = "Prompt AI"
    resting: ClassVar[bool] = True

    def __post_init__(self) -> None:
        prompts = tuple(self.prompts)
        if not prompts or not all(isinstance(p, Prompt) for p in prompts):
            raise ConfigError(f"Prompt AI behavior {self.name!r} needs a list of Prompt(...)")
        ids = [p.id for p in prompts]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ConfigError(f"Prompt AI behavior {self.name!r}: duplicate prompt id(s) {duplicates}")
        object.__setattr__(self, "prompts", prompts)
        super().__post_init__()

    def handler_names(self) -> tuple[str, ...]:
        return ("on_enter", "on_success", "on_error", "on_leave")

    async def _one(self, run: "TurnRun", prompt: Prompt) -> _PromptOutcome:
        out = _PromptOutcome(prompt.id, prompt.llm)
        context = run.snapshot()  # the builder and the handler see the same object
        where = f"{self.name}/{prompt.id}"
        try:
            built = await run.call(prompt.build, {"llm": prompt.llm, "context": context},
                                   f"prompt builder {where}", self)
            if not isinstance(built, Mapping) or "request" not in built:
                raise InvalidInputError(f"prompt builder {where} must return {{'request': {{...}}}}, "
                                        f"got {built!r:.80}")
            out.request = built["request"]
            messages, params = split_request(built["request"], prompt.id)
        except Exception as exc:
            out.failure = BehaviorError("function", exc, promptId=prompt.id)
            return out
        try:
            generation = await run.llm(prompt.llm, messages, params, behavior=self, label=prompt.id,
                                       meta={"prompt": prompt.id})
        except ProviderError as exc:
            kind = ("token_limit" if isinstance(exc, ProviderRequestError)
                    and _CONTEXT_LENGTH_RE.search(str(exc)) else "provider")
            out.failure = BehaviorError(kind, exc, promptId=prompt.id)
            return out
        except PromptlabError as exc:  # e.g. unknown provider name
            out.failure = BehaviorError("provider", exc, promptId=prompt.id)
            return out
        out.guid, out.completion, out.finish_reason = generation.guid, generation.msg, generation.finish_reason
        if generation.finish_reason == "length":
            out.failure = BehaviorError("token_limit", InvalidInputError(
                f"prompt {prompt.id!r}: the completion was cut at max_tokens (finish_reason 'length')"),
                promptId=prompt.id)
            return out
        if prompt.handle is None:
            return out
        response = {"id": generation.guid, "object": "chat.completion", "model": generation.model,
                    "choices": [{"index": 0, "finish_reason": generation.finish_reason,
                                 "message": {"role": "assistant", "content": generation.msg}}],
                    "usage": dict(generation.usage)}
        try:
            result = await run.call(prompt.handle, {"llm": prompt.llm, "context": context,
                                                    "prompt": out.request, "response": response,
                                                    "completion": generation.msg},
                                    f"completion handler {where}", self)
            out.actions = run.actions_from(result, f"completion handler {where}")
            if isinstance(result, Mapping) and result.get("completion") is not None:
                override = result["completion"]
                if not isinstance(override, str):
                    raise InvalidInputError(f"completion handler {where}: 'completion' must be a string")
                out.completion = override
        except Exception as exc:
            out.failure = BehaviorError("function", exc, promptId=prompt.id)
        return out

    async def execute(self, run: "TurnRun") -> str | None:
        outcomes = await asyncio.gather(*(self._one(run, p) for p in self.prompts))
        for out in outcomes:
            run.context["prompts"][out.id] = out.variables()
        failed = [o for o in outcomes if o.failure is not None]
        if failed:
            return await run.fail(self, "on_error", failed[0].failure)
        for out in outcomes:
            target = await run.apply(out.actions, self, f"completion handler {out.id}")
            if target is not None:
                return target
        return await run.logic(self, "on_success")


# -- Call Function ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallFunction(Behavior):
    """``function(context) -> {"actions": [...]}``; On Success, or On Error if it raised or
    returned something malformed."""

    function: Callable[..., Any] | None = None
    on_success: Logic = None
    on_error: Logic = None
    kind: ClassVar[str] = "Call Function"

    def __post_init__(self) -> None:
        if self.function is None:
            raise ConfigError(f"Call Function behavior {self.name!r} needs function=")
        check_signature(self.function, ("context",), f"{self.name} function")
        super().__post_init__()

    def handler_names(self) -> tuple[str, ...]:
        return ("on_enter", "on_success", "on_error", "on_leave")

    async def execute(self, run: "TurnRun") -> str | None:
        where = f"function of {self.name}"
        try:
            result = await run.call(self.function, {"context": run.snapshot()}, where, self)
            actions = run.actions_from(result, where)
        except Exception as exc:
            return await run.fail(self, "on_error", BehaviorError("function", exc))
        target = await run.apply(actions, self, "function")
        if target is not None:
            return target
        return await run.logic(self, "on_success")


# -- Call API -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallAPI(Behavior):
    """Call an HTTP target configured on the flow.

    With ``request_builder`` ("Use code"): ``request_builder(context) -> {headers, method,
    params, path, body}``, then ``response_handler(response, context) -> {"actions": [...]}``
    with ``response = {"statusCode", "headers", "body"}``; every call appends
    ``{"targetId", "request", "response"}`` to ``context["apiResults"]``. Without it, the
    context is POSTed as JSON to ``path`` and the answer's ``{"actions": [...]}`` applied.
    A non-2xx status, a timeout, a refused path or a function error runs ``on_fail``.
    """

    target: str = ""
    request_builder: Callable[..., Any] | None = None
    response_handler: Callable[..., Any] | None = None
    path: str = ""
    timeout: float | None = None
    typing_indicator: bool = False
    on_success: Logic = None
    on_fail: Logic = None
    kind: ClassVar[str] = "Call API"

    def __post_init__(self) -> None:
        if not isinstance(self.target, str) or not self.target:
            raise ConfigError(f"Call API behavior {self.name!r} needs target= (an HTTP target id)")
        if self.request_builder is not None:
            check_signature(self.request_builder, ("context",), f"{self.name} request builder")
        if self.response_handler is not None:
            check_signature(self.response_handler, ("response", "context"), f"{self.name} response handler")
            if self.request_builder is None:
                raise ConfigError(f"{self.name}: a response handler needs a request builder (Use code)")
        if self.timeout is not None and (isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float))
                                         or self.timeout <= 0):
            raise ConfigError(f"{self.name}: timeout must be a positive number of seconds")
        super().__post_init__()

    def handler_names(self) -> tuple[str, ...]:
        return ("on_enter", "on_success", "on_fail", "on_leave")

    def http_targets(self) -> list[str]:
        return [self.target]

    async def execute(self, run: "TurnRun") -> str | None:
        if self.typing_indicator:
            await run.apply([start_typing()], self, "typing indicator")
        target = run.flow.targets[self.target]
        use_code = self.request_builder is not None
        try:
            if use_code:
                built = await run.call(self.request_builder, {"context": run.snapshot()},
                                       f"request builder of {self.name}", self)
            else:
                built = {"method": "POST", "path": self.path, "body": run.public_context()}
            prepared = _http.prepare_request(target, {**built, "path": None} if isinstance(built, Mapping)
                                             else built, f"request builder of {self.name}")
        except Exception as exc:
            return await run.fail(self, "on_fail", BehaviorError("function", exc, targetId=target.id))
        try:
            prepared = replace(prepared, url=_http.resolve_path(target, built.get("path")))
        except InvalidInputError as exc:
            run.trace.add("blocked", self, str(exc))
            return await run.fail(self, "on_fail", BehaviorError("blocked", exc, targetId=target.id))
        started = run.clock()
        try:
            raw = await _http.send(target, prepared, self.timeout)
        except ProviderError as exc:
            kind = "timeout" if isinstance(exc, ProviderTimeoutError) else "connection"
            run.trace.add("api", self, f"{prepared.describe()} -> {kind}", duration_ms=run.clock() - started)
            return await run.fail(self, "on_fail", BehaviorError(kind, exc, targetId=target.id))
        response = _http.response_dict(raw)
        run.trace.add("api", self, f"{prepared.describe()} -> {response['statusCode']}",
                      duration_ms=run.clock() - started, target=target.id, status=response["statusCode"])
        if use_code:
            run.context["apiResults"].append({"targetId": target.id, "request": copy.deepcopy(dict(built)),
                                              "response": response})
        if not 200 <= response["statusCode"] < 300:
            return await run.fail(self, "on_fail", BehaviorError(
                "http_status", _http.status_error(target, prepared, response["statusCode"]),
                targetId=target.id, statusCode=response["statusCode"]))
        try:
            if self.response_handler is not None:
                result = await run.call(self.response_handler, {"response": response, "context": run.snapshot()},
                                        f"response handler of {self.name}", self)
                actions = run.actions_from(result, f"response handler of {self.name}")
            elif not use_code and isinstance(response["body"], Mapping):
                actions = run.actions_from(response["body"], f"response of target {target.id!r}")
            else:
                actions = []
        except Exception as exc:
            return await run.fail(self, "on_fail", BehaviorError("function", exc, targetId=target.id))
        target_location = await run.apply(actions, self, "response")
        if target_location is not None:
            return target_location
        return await run.logic(self, "on_success")


# -- Verify Claim -------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyClaim(Behavior):
    """Score a claim against evidence and branch on a verification condition.

    ``claim``: a context field, e.g. ``"session.answer"`` (a bot session field) or
    ``"prompts.answer.completion"`` (a prompt completion). ``parse_evidence(context)`` returns
    evidence as strings or ``{"text", "tags"}`` dicts (default: every search result's text,
    tagged with its resource); ``evidence_tags`` keeps only evidence with one of those tags.
    ``verifier`` scores each piece 0-100 (default: the lexical heuristic; see
    ``promptlab.flows.verify``). ``condition``: an expression over the context (which holds
    ``evidenceScores``) or a callable ``(evidence_scores) -> bool``.
    Sets ``context["evidenceScores"]`` and ``context["verifications"][<name>]`` (claim, every
    piece with its score/reason/error, verified).
    """

    claim: str = ""
    parse_evidence: Callable[..., Any] | None = None
    evidence_tags: Sequence[str] = ()
    verifier: Any = None
    condition: Any = _verify.DEFAULT_CONDITION
    on_verified: Logic = None
    on_unverified: Logic = None
    on_error: Logic = None
    kind: ClassVar[str] = "Verify Claim"

    def __post_init__(self) -> None:
        get_path({}, self.claim, None)  # path syntax
        if self.parse_evidence is not None:
            check_signature(self.parse_evidence, ("context",), f"{self.name} parse_evidence")
        tags = self.evidence_tags
        if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
            raise ConfigError(f"{self.name}: evidence_tags must be a list of strings")
        object.__setattr__(self, "evidence_tags", tuple(tags))
        object.__setattr__(self, "verifier", _verify.check_verifier(self.verifier))
        if not callable(self.condition):
            from .logic import compile_condition

            compile_condition(self.condition)
        super().__post_init__()

    def handler_names(self) -> tuple[str, ...]:
        return ("on_enter", "on_verified", "on_unverified", "on_error", "on_leave")

    async def execute(self, run: "TurnRun") -> str | None:
        claim = get_path(run.context, self.claim, None)
        if not isinstance(claim, str) or not claim.strip():
            return await run.fail(self, "on_error", BehaviorError("claim", InvalidInputError(
                f"{self.name}: no claim text at context field {self.claim!r} (found {claim!r:.60})")))
        try:
            if self.parse_evidence is not None:
                raw = await run.call(self.parse_evidence, {"context": run.snapshot()},
                                     f"parse_evidence of {self.name}", self)
            else:
                raw = _verify.default_parse_evidence(run.context)
            evidence = _verify.normalize_evidence(raw, f"parse_evidence of {self.name}")
        except Exception as exc:
            return await run.fail(self, "on_error", BehaviorError("function", exc))
        kept = _verify.filter_by_tags(evidence, self.evidence_tags)
        started = run.clock()
        scored = await _verify.score_all(self.verifier, claim, kept, run.verifier_runtime(self))
        scores = _verify.evidence_scores([p["score"] for p in scored])
        run.context["evidenceScores"] = scores
        try:
            if callable(self.condition):
                verified = bool(self.condition(copy.deepcopy(scores)))
            else:
                verified = evaluate(self.condition, run.context)
        except Exception as exc:
            return await run.fail(self, "on_error", BehaviorError("condition", exc))
        run.context["verifications"][self.name] = {
            "claim": claim, "verifier": _verify.verifier_name(self.verifier), "evidence": scored,
            "evidenceScores": scores, "verified": verified}
        run.trace.add("verify", self, f"{'verified' if verified else 'unverified'}: "
                      f"max={_fmt(scores['maxScore'])} mean={_fmt(scores['meanScore'])} "
                      f"n={scores['numScores']} errors={scores['numErrors']}",
                      duration_ms=run.clock() - started, claim=claim, scores=[p["score"] for p in scored],
                      evidenceScores=scores, verified=verified, dropped_by_tags=len(evidence) - len(kept))
        return await run.logic(self, "on_verified" if verified else "on_unverified")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


BEHAVIOR_TYPES = (ExecuteLogic, Search, PromptAI, CallAPI, CallFunction, VerifyClaim)

__all__ = ["Behavior", "ExecuteLogic", "Search", "SearchSpec", "PromptAI", "Prompt", "CallAPI",
           "CallFunction", "VerifyClaim", "BEHAVIOR_TYPES", "split_request"]
