"""Flows: a graph of behaviors run one customer turn at a time.

::

    flow = lab.flows.create("support", behaviors=[...], start="rephrase", targets=[crm])
    result = flow.run_turn("conv-1", "Where is my order?")
    result.actions, result.answer, result.context, result.trace.to_pandas()

How a turn runs
---------------
The turn starts where the conversation rests (the flow's ``start`` for a new conversation).
Each behavior runs its ``on_enter`` logic (a ``changeLocation`` there skips the rest of it),
its own work and handlers. A ``changeLocation`` moves the flow to that behavior in the same
turn (after ``on_leave``). The turn ends when a behavior finishes without a transition: the
next turn starts there if the behavior is a resting point (Prompt AI, or any behavior with
``wait_for_response=True``), otherwise at ``start``. A behavior with ``wait_for_response``
that does change location ends the turn too, and the next turn starts at the target.

The context
-----------
The seed's CustomerAssistantContext, as plain dicts::

    {"flow", "turn", "location",
     "conversation": {"id", "fields": {...}, "messages": [{"author", "text", "turn"}]},
     "session": {...}, "botSession": <the same dict>,          # bot session fields
     "derivedData": {"lastCustomerMessage": ...},
     "searchResults": [], "apiResults": [], "prompts": {}, "evidenceScores": None,
     "verifications": {}, "error": None}

Session and conversation fields, the transcript and the resting location persist across
turns (in the store); ``searchResults``, ``apiResults``, ``prompts``, ``evidenceScores``,
``verifications`` and ``error`` live for one turn. Functions get a deep copy of the context,
so the only way to change it is to return actions.

Every LLM call is a generation row (metadata names the flow, behavior, prompt, conversation
and turn), and so is each turn's answer (model ``flow:<name>``, output = the sendMessage texts
joined by newlines): ``lab.feedback.log(result.guid, rating="Positive")`` rates a turn.
A turn that raises leaves the conversation as it was and logs an error row for the turn.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from ..actions import error_fields
from ..errors import ConfigError, InvalidInputError
from ..store import new_guid, utcnow
from . import ctx as flow_ctx
from .behaviors import Behavior, BehaviorError
from .http import HttpTarget
from .logic import (
    Rule,
    actions_of,
    check_signature,
    evaluate,
    expression_value,
    set_path,
    static_locations,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ..generations import Generation
    from ..lab import Lab

_FLOW_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
MAX_CONVERSATION_ID = 200
PER_TURN_KEYS = ("searchResults", "apiResults", "prompts", "evidenceScores", "verifications", "error")
TRACE_COLUMNS = ["step", "t_ms", "behavior", "kind", "event", "detail", "duration_ms"]


# -- trace ------------------------------------------------------------------------------------


class Trace:
    """The debug trace of one turn: behaviors entered, handlers fired, actions, searches,
    LLM calls, API calls, verification scores and errors, with timings in milliseconds."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._start = time.perf_counter()

    def clock(self) -> float:
        return (time.perf_counter() - self._start) * 1000.0

    def add(self, event: str, behavior: Behavior | None, detail: str = "",
            duration_ms: float | None = None, **data: Any) -> dict[str, Any]:
        entry = {"step": len(self.events) + 1, "t_ms": round(self.clock(), 3),
                 "behavior": behavior.name if behavior is not None else None,
                 "kind": behavior.kind if behavior is not None else None, "event": event,
                 "detail": detail, "duration_ms": round(duration_ms, 3) if duration_ms is not None else None}
        if data:
            entry["data"] = data
        self.events.append(entry)
        return entry

    @property
    def behaviors(self) -> list[str]:
        """Behaviors entered, in order (a behavior entered twice appears twice)."""
        return [e["behavior"] for e in self.events if e["event"] == "enter"]

    def of(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event]

    def to_pandas(self, timings: bool = True) -> "pd.DataFrame":
        """One row per event. ``timings=False`` drops ``t_ms``/``duration_ms`` (stable output)."""
        import pandas as pd

        columns = TRACE_COLUMNS if timings else [c for c in TRACE_COLUMNS if not c.endswith("_ms")]
        return pd.DataFrame([{c: e.get(c) for c in columns} for e in self.events], columns=columns)

    def to_list(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self.events)

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self):
        return iter(self.events)

    def __repr__(self) -> str:
        return f"Trace({len(self.events)} events: {' -> '.join(self.behaviors)})"


@dataclass
class TurnResult:
    """What one turn did: ``actions`` emitted in order, the ``context`` as it was when the turn
    ended (per-turn keys included; they are cleared for the next turn), the ``trace``, the
    turn's generation ``guid`` (rate it with ``lab.feedback.log``), and where the next turn
    starts (``location``)."""

    actions: list[dict[str, Any]]
    context: dict[str, Any]
    trace: Trace
    guid: str
    conversation: str
    turn: int
    location: str
    generations: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def messages(self) -> list[str]:
        """Texts of the sendMessage actions, in order."""
        return [a["message"]["text"] for a in self.actions
                if a["action"] == "sendMessage" and isinstance(a["message"].get("text"), str)]

    @property
    def answer(self) -> str:
        """The turn's answer: the sendMessage texts joined by newlines."""
        return "\n".join(self.messages)

    def __repr__(self) -> str:
        return (f"TurnResult(conversation={self.conversation!r}, turn={self.turn}, "
                f"answer={self.answer[:60]!r}, location={self.location!r}, "
                f"actions={len(self.actions)}, trace={len(self.trace)} events)")


# -- the running turn -------------------------------------------------------------------------


class _VerifierRuntime:
    def __init__(self, run: "TurnRun", behavior: Behavior):
        self._run, self._behavior = run, behavior
        self.lab = run.lab

    async def complete(self, model: str, messages: list[dict[str, Any]], **params: Any) -> str:
        verifier = getattr(self._behavior, "verifier", None)
        name = getattr(verifier, "name", "verifier")
        generation = await self._run.llm(model, messages, params, behavior=self._behavior,
                                         label="verifier", meta={"verifier": name})
        return generation.msg or ""

    async def run_action(self, action: str, variables: Mapping[str, Any]) -> str:
        lab = self._run.lab
        resolved = await asyncio.to_thread(lab.actions.get, action)
        call = await lab.engine.plan(resolved, dict(variables), log_failure=False, metadata=self._run.metadata(
            self._behavior, {"verifier_action": resolved.name}), **self._run.call_tags())
        self._run.trace.add("prompt", self._behavior, f"judge action {resolved.name} ({resolved.model})",
                            guid=call.guid)
        self._run.generations.append(call.guid)
        generation = await lab.engine.run(call)
        self._run.account(generation)
        return generation.msg or ""


class TurnRun:
    """One turn in progress: the live context, emitted actions, trace and logged calls.
    Behaviors call its methods; user code never sees it."""

    def __init__(self, flow: "Flow", lab: "Lab", context: dict[str, Any], conversation: str,
                 turn: int, turn_guid: str, message: str, tags: Mapping[str, Any] | None):
        self.flow, self.lab, self.context = flow, lab, context
        self.conversation, self.turn, self.turn_guid, self.message = conversation, turn, turn_guid, message
        self.tags = dict(tags or {})
        self.emitted: list[dict[str, Any]] = []
        self.trace = Trace()
        self.generations: list[str] = []
        self.errors: list[dict[str, Any]] = []
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost_usd: float | None = None

    def clock(self) -> float:
        return self.trace.clock()

    def snapshot(self) -> dict[str, Any]:
        return copy.deepcopy(self.context)

    def public_context(self) -> dict[str, Any]:
        """The context as JSON for an API that takes it natively (no botSession alias)."""
        data = copy.deepcopy(self.context)
        data.pop("botSession", None)
        return data

    # user functions ----------------------------------------------------------------------------

    async def call(self, fn: Any, available: Mapping[str, Any], where: str,
                   behavior: Behavior | None = None) -> Any:
        """Call a user function by parameter name, in a worker thread (so it may block or use
        the sync promptlab API); ``promptlab.flows.ctx`` is bound to the context it gets."""
        names = check_signature(fn, tuple(available), where)
        kwargs = dict(available) if names is None else {n: available[n] for n in names}
        bound = available.get("context") if isinstance(available.get("context"), Mapping) else self.snapshot()
        started = self.clock()
        try:
            if inspect.iscoroutinefunction(fn):
                with flow_ctx.bound(bound):
                    return await fn(**kwargs)

            def run() -> Any:
                with flow_ctx.bound(bound):
                    return fn(**kwargs)

            return await asyncio.to_thread(run)
        finally:
            self.trace.add("function", behavior, where, duration_ms=self.clock() - started)

    def actions_from(self, result: Any, where: str) -> list[dict[str, Any]]:
        """Validated actions from a function's result, changeLocation targets included."""
        actions = actions_of(result, where)
        for i, action in enumerate(actions):
            if action["action"] == "changeLocation" and action["location"] not in self.flow.behaviors:
                raise InvalidInputError(f"{where} actions[{i}]: changeLocation to unknown behavior "
                                        f"{action['location']!r}; behaviors: {list(self.flow.behaviors)}")
        return actions

    # actions and logic -------------------------------------------------------------------------

    async def apply(self, actions: Sequence[Mapping[str, Any]], behavior: Behavior | None,
                    source: str) -> str | None:
        """Apply actions in order; returns the location of the first changeLocation (the rest
        is skipped) or None."""
        for action in actions:
            kind = action["action"]
            if kind == "setField":
                value = (expression_value(action["expression"], self.context) if "expression" in action
                         else action["value"])
                set_path(self.context, action["field"], value)
                emitted = {"action": "setField", "field": action["field"], "value": copy.deepcopy(value)}
                detail = f"setField {action['field']} = {_short(value)}"
            elif kind == "changeLocation":
                location = action["location"]
                if location not in self.flow.behaviors:
                    raise InvalidInputError(f"{source}: changeLocation to unknown behavior {location!r}; "
                                            f"behaviors: {list(self.flow.behaviors)}")
                emitted, detail = dict(action), f"changeLocation -> {location}"
            elif kind == "sendMessage":
                emitted = copy.deepcopy(dict(action))
                text = emitted["message"].get("text")
                self.context["conversation"]["messages"].append(
                    {"author": "Bot", "text": text, "turn": self.turn})
                detail = f"sendMessage {_short(text)}"
            else:
                emitted, detail = copy.deepcopy(dict(action)), kind
            self.emitted.append(emitted)
            self.trace.add("action", behavior, f"{detail} (from {source})")
            if kind == "changeLocation":
                return emitted["location"]
        return None

    async def logic(self, behavior: Behavior, handler: str) -> str | None:
        """Run one of a behavior's handlers (its Logic steps); returns a location or None."""
        steps = getattr(behavior, handler)
        if not steps:
            return None
        self.trace.add("handler", behavior, handler)
        return await self._steps(steps, behavior, handler)

    async def _steps(self, steps: Iterable[Any], behavior: Behavior, handler: str) -> str | None:
        for step in steps:
            if isinstance(step, Rule):
                holds = evaluate(step.when, self.snapshot() if callable(step.when) else self.context)
                self.trace.add("rule", behavior, f"{handler}: {_condition_text(step.when)} -> {holds}")
                target = await self._steps(step.then if holds else step.otherwise, behavior, handler)
            elif isinstance(step, dict):
                target = await self.apply([step], behavior, handler)
            else:
                where = f"{behavior.name}.{handler} function"
                result = await self.call(step, {"context": self.snapshot()}, where, behavior)
                target = await self.apply(self.actions_from(result, where), behavior, handler)
            if target is not None:
                return target
        return None

    async def fail(self, behavior: Behavior, handler: str, failure: BehaviorError) -> str | None:
        """Record a typed failure in ``context["error"]`` and run the error handler; without
        one, re-raise the original error (the turn fails)."""
        error = {"type": failure.kind, "message": str(failure.error),
                 "errorClass": type(failure.error).__name__, "behavior": behavior.name, **failure.details}
        self.context["error"] = error
        self.errors.append(error)
        self.trace.add("error", behavior, f"{failure.kind}: {failure.error}")
        if not getattr(behavior, handler):
            raise failure.error
        return await self.logic(behavior, handler)

    # LLM calls ---------------------------------------------------------------------------------

    def metadata(self, behavior: Behavior, extra: Mapping[str, Any]) -> dict[str, Any]:
        return {"flow": self.flow.name, "behavior": behavior.name, "conversation": self.conversation,
                "turn": self.turn, "turn_guid": self.turn_guid, **extra, **self.tags}

    def call_tags(self) -> dict[str, Any]:
        return {k: self.tags[k] for k in ("run", "variant") if self.tags.get(k) is not None}

    def account(self, generation: "Generation") -> None:
        usage = generation.usage or {}
        self.prompt_tokens += usage.get("prompt_tokens", 0)
        self.completion_tokens += usage.get("completion_tokens", 0)
        if generation.cost_usd is not None:
            self.cost_usd = (self.cost_usd or 0.0) + generation.cost_usd

    async def llm(self, model: str, messages: list[dict[str, Any]], params: Mapping[str, Any], *,
                  behavior: Behavior, label: str, meta: Mapping[str, Any]) -> "Generation":
        """One logged chat completion (a generation row), through the lab's provider seam."""
        lab = self.lab
        # Not a stored action: the generation row names the flow/behavior/prompt instead.
        call = lab.engine.plan_chat(model, messages, name=f"{self.flow.name}/{behavior.name}/{label}",
                                    params=params, input=self.message, metadata=self.metadata(behavior, meta),
                                    **self.call_tags())
        self.generations.append(call.guid)
        started = self.clock()
        try:
            generation = await lab.engine.run(call)
        except Exception as exc:
            self.trace.add("prompt", behavior, f"{label} on {model}: {type(exc).__name__}",
                           duration_ms=self.clock() - started, guid=call.guid)
            raise
        self.account(generation)
        self.trace.add("prompt", behavior, f"{label} on {model}: {generation.finish_reason}, "
                       f"{(generation.usage or {}).get('total_tokens', 0)} tokens",
                       duration_ms=self.clock() - started, guid=call.guid, model=call.model)
        return generation

    def verifier_runtime(self, behavior: Behavior) -> _VerifierRuntime:
        return _VerifierRuntime(self, behavior)


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else repr(value)
    return repr(text[: limit - 3] + "...") if len(text) > limit else repr(text)


def _condition_text(condition: Any) -> str:
    return condition if isinstance(condition, str) else getattr(condition, "__name__", "condition")


# -- the flow ---------------------------------------------------------------------------------


def _message_text(message: Any) -> str:
    if isinstance(message, Mapping):
        message = message.get("text")
    if not isinstance(message, str):
        raise InvalidInputError(f"a customer message must be text (or a dict with 'text'), got {message!r:.80}")
    return message


def _conversation_id(conversation: Any) -> str:
    if not isinstance(conversation, str) or not conversation.strip() or len(conversation) > MAX_CONVERSATION_ID:
        raise InvalidInputError(f"a conversation id must be non-empty text of at most {MAX_CONVERSATION_ID} "
                                f"characters, got {conversation!r:.80}")
    return conversation


def new_context(flow: str, conversation: str, turn: int, location: str, state: Mapping[str, Any] | None,
                message: str) -> dict[str, Any]:
    """The context at the start of a turn, from the persisted state (pure)."""
    state = state or {}
    session = copy.deepcopy(state.get("session") or {})
    messages = copy.deepcopy(state.get("messages") or [])
    messages.append({"author": "Customer", "text": message, "turn": turn})
    return {
        "flow": flow, "turn": turn, "location": location,
        "conversation": {"id": conversation, "fields": copy.deepcopy(state.get("fields") or {}),
                         "messages": messages},
        "session": session, "botSession": session,
        "derivedData": {"lastCustomerMessage": message},
        "searchResults": [], "apiResults": [], "prompts": {}, "evidenceScores": None,
        "verifications": {}, "error": None,
    }


def _chat_transcript(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"role": "user" if m.get("author") == "Customer" else "assistant", "content": m.get("text") or ""}
            for m in messages]


class Flow:
    """A graph of named behaviors with HTTP targets, bound to a Lab to run.

    ``behaviors``: Behavior objects with unique names. ``start``: where a new conversation
    begins (default: the first behavior). ``targets``: the HttpTargets Call API behaviors may
    call. ``max_steps``: behaviors one turn may enter before it is stopped as a loop.
    Validation happens here: unknown locations or targets are a ConfigError.

    >>> flow = pl.Flow("echo", [PromptAI("reply", prompts=[Prompt("basic", "sim:echo", build_basic,
    ...                                                            handle_basic)])], lab=lab)
    >>> flow.run_turn("conv-1", "hello").answer
    'hello'
    """

    def __init__(self, name: str, behaviors: Sequence[Behavior], *, start: str | None = None,
                 targets: Sequence[HttpTarget] | Mapping[str, HttpTarget] = (), lab: "Lab | None" = None,
                 max_steps: int = 50, description: str | None = None):
        if not isinstance(name, str) or not _FLOW_NAME_RE.match(name):
            raise ConfigError(f"flow name {name!r} must be letters, digits, _ . - (up to 100 characters)")
        behaviors = list(behaviors)
        if not behaviors:
            raise ConfigError(f"flow {name!r} needs at least one behavior")
        for b in behaviors:
            if not isinstance(b, Behavior):
                raise ConfigError(f"flow {name!r}: {b!r:.80} is not a behavior (ExecuteLogic, Search, "
                                  "PromptAI, CallAPI, CallFunction, VerifyClaim)")
        names = [b.name for b in behaviors]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"flow {name!r}: duplicate behavior name(s) {duplicates}")
        self.name = name
        self.description = description
        self.behaviors: dict[str, Behavior] = {b.name: b for b in behaviors}
        self.start = start if start is not None else names[0]
        if self.start not in self.behaviors:
            raise ConfigError(f"flow {name!r}: start {self.start!r} is not a behavior; behaviors: {names}")
        if isinstance(targets, Mapping):
            targets = list(targets.values())
        self.targets: dict[str, HttpTarget] = {}
        for target in targets:
            if not isinstance(target, HttpTarget):
                raise ConfigError(f"flow {name!r}: targets must be HttpTarget objects, got {target!r:.80}")
            if target.id in self.targets:
                raise ConfigError(f"flow {name!r}: duplicate HTTP target id {target.id!r}")
            self.targets[target.id] = target
        for b in behaviors:
            for location in b.locations():
                if location not in self.behaviors:
                    raise ConfigError(f"flow {name!r}: behavior {b.name!r} moves to unknown behavior "
                                      f"{location!r}; behaviors: {names}")
            for target_id in b.http_targets():
                if target_id not in self.targets:
                    raise ConfigError(f"flow {name!r}: behavior {b.name!r} calls unknown HTTP target "
                                      f"{target_id!r}; configured: {sorted(self.targets)}")
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            raise ConfigError(f"flow {name!r}: max_steps must be a positive integer")
        self.max_steps = max_steps
        self.lab = lab

    def __repr__(self) -> str:
        bound = "bound" if self.lab is not None else "unbound"
        return f"Flow({self.name!r}, behaviors={list(self.behaviors)}, start={self.start!r}, {bound})"

    def bind(self, lab: "Lab") -> "Flow":
        """This flow's definition bound to ``lab``."""
        return Flow(self.name, list(self.behaviors.values()), start=self.start,
                    targets=list(self.targets.values()), lab=lab, max_steps=self.max_steps,
                    description=self.description)

    def edges(self) -> list[dict[str, str]]:
        """The graph's static transitions: ``{"from", "handler", "to"}`` for every changeLocation
        written in a handler (functions may add others at run time)."""
        out = []
        for b in self.behaviors.values():
            for handler in b.handler_names():
                for location in static_locations(getattr(b, handler)):
                    out.append({"from": b.name, "handler": handler, "to": location})
        return out

    def _lab(self) -> "Lab":
        if self.lab is None:
            raise ConfigError(f"flow {self.name!r} is not bound to a Lab: use lab.flows.create(...), "
                              "Flow(..., lab=lab) or flow.bind(lab)")
        return self.lab

    # running --------------------------------------------------------------------------------------

    def run_turn(self, conversation: str, message: Any) -> TurnResult:
        """Run one customer turn of ``conversation`` (its id) with the customer's ``message``.
        Ctrl-C stops it: in-flight model calls are cancelled and logged as interrupted."""
        lab = self._lab()
        return lab.engine.blocking(self._turn(conversation, message, None))

    async def arun_turn(self, conversation: str, message: Any, *,
                        tags: Mapping[str, Any] | None = None) -> TurnResult:
        """Async twin of ``run_turn``. ``tags`` (``run``, ``variant``, ...) are recorded on the
        turn and its generations (``lab.flows.compare`` tags its comparisons so)."""
        lab = self._lab()
        return await lab.engine.awaiting(self._turn(conversation, message, tags))

    async def _turn(self, conversation: str, message: Any, tags: Mapping[str, Any] | None) -> TurnResult:
        lab = self._lab()
        cid = _conversation_id(conversation)
        text = _message_text(message)
        stored = await asyncio.to_thread(lab.store.get_flow_conversation, self.name, cid)
        previous_turns = stored["turns"] if stored else 0
        turn = previous_turns + 1
        location = stored["location"] if stored and stored["location"] in self.behaviors else self.start
        context = new_context(self.name, cid, turn, location, stored, text)
        turn_guid = new_guid()
        run = TurnRun(self, lab, context, cid, turn, turn_guid, text, tags)
        started_at = utcnow()
        start_location = location
        try:
            resting = await self._walk(run, location)
        except BaseException as exc:
            row = self._generation_row(run, started_at, start_location, None, error=exc)
            try:
                await asyncio.to_thread(lab.store.insert_generation, row)
            except Exception:  # the original error matters more than the log row
                pass
            raise
        final = copy.deepcopy(run.context)
        answer = "\n".join(a["message"]["text"] for a in run.emitted
                           if a["action"] == "sendMessage" and isinstance(a["message"].get("text"), str))
        state = {"location": resting, "session": run.context["session"],
                 "fields": run.context["conversation"]["fields"],
                 "messages": run.context["conversation"]["messages"], "turns": turn}
        turn_row = {"guid": turn_guid, "flow_name": self.name, "conversation_id": cid, "turn": turn,
                    "message": text, "answer": answer, "actions": run.emitted,
                    "start_location": start_location, "end_location": resting,
                    "trace": run.trace.to_list(), "generations": run.generations,
                    "errors": run.errors or None, "duration_ms": round(run.clock(), 3),
                    "created_at": started_at}
        generation_row = self._generation_row(run, started_at, start_location, resting, answer=answer)
        await asyncio.to_thread(lab.store.save_flow_turn, self.name, cid, previous_turns, state,
                                turn_row, generation_row)
        return TurnResult(actions=copy.deepcopy(run.emitted), context=final, trace=run.trace, guid=turn_guid,
                          conversation=cid, turn=turn, location=resting, generations=list(run.generations),
                          errors=list(run.errors))

    async def _walk(self, run: TurnRun, location: str) -> str:
        """Run behaviors from ``location`` until the flow rests; returns the resting location."""
        steps = 0
        while True:
            steps += 1
            if steps > self.max_steps:
                raise ConfigError(f"flow {self.name!r} entered {self.max_steps} behaviors in one turn "
                                  f"(last: {location!r}); a transition probably loops. Raise max_steps if "
                                  "this is intended")
            behavior = self.behaviors[location]
            run.context["location"] = location
            entered = run.clock()
            run.trace.add("enter", behavior, behavior.kind)
            target = await run.logic(behavior, "on_enter")
            short_circuit = target is not None
            if not short_circuit:
                target = await behavior.execute(run)
            run.trace.add("exit", behavior, f"-> {target}" if target else "no transition",
                          duration_ms=run.clock() - entered)
            if target is None:
                resting = location if (behavior.resting or behavior.wait_for_response) else self.start
                run.trace.add("rest", behavior, f"next turn starts at {resting}")
                return resting
            left = await run.logic(behavior, "on_leave")
            if left is not None:
                target = left
            if behavior.wait_for_response and not short_circuit:
                run.trace.add("rest", behavior, f"waiting for the customer; next turn starts at {target}")
                return target
            location = target

    def _generation_row(self, run: TurnRun, started_at: Any, start_location: str, resting: str | None, *,
                        answer: str | None = None, error: BaseException | None = None) -> dict[str, Any]:
        history = [m for m in run.context["conversation"]["messages"]
                   if not (m.get("author") == "Bot" and m.get("turn") == run.turn)]
        row = dict(
            guid=run.turn_guid, status="done", action_guid=None, action_name=f"flow:{self.name}",
            action_version=None, environment=None, input=run.message, messages=_chat_transcript(history),
            output=answer, model=f"flow:{self.name}", params=None, cached=False, streaming=False,
            session_guid=None, ext_user_id=None,
            metadata={"flow": self.name, "conversation": run.conversation, "turn": run.turn,
                      "start_location": start_location, "location": resting,
                      "generations": list(run.generations), "actions": len(run.emitted),
                      "behaviors": run.trace.behaviors, **run.tags},
            variant=run.tags.get("variant"), run_guid=run.tags.get("run"),
            prompt_tokens=run.prompt_tokens, completion_tokens=run.completion_tokens,
            cost_usd=run.cost_usd, latency_ms=round(run.clock(), 3), finish_reason="stop",
            created_at=started_at, finished_at=utcnow())
        if error is not None:
            row.update(error_fields(error), output=None, finish_reason=None)
        return row

    # state --------------------------------------------------------------------------------------

    def state(self, conversation: str) -> dict[str, Any] | None:
        """What persists of a conversation: ``location`` (where the next turn starts),
        ``session``, ``fields`` (conversation fields), ``messages`` and ``turns``; None if new."""
        row = self._lab().store.get_flow_conversation(self.name, _conversation_id(conversation))
        if row is None:
            return None
        return {k: row[k] for k in ("location", "session", "fields", "messages", "turns", "updated_at")}

    def reset(self, conversation: str) -> bool:
        """Forget a conversation's state (its logged turns stay); True if it existed."""
        return self._lab().store.delete_flow_conversation(self.name, _conversation_id(conversation))

    def turns(self, conversation: str | None = None) -> "pd.DataFrame":
        """This flow's logged turns (one row per turn, oldest first)."""
        return self._lab().flows.turns(flow=self.name, conversation=conversation)


__all__ = ["Flow", "TurnResult", "Trace", "TurnRun", "new_context", "PER_TURN_KEYS"]
