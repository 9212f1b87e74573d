"""The pure core of flows: context paths, conditions, programmatic actions and rule handlers.

Nothing here does I/O. A *handler* (On Entered, On Success, On Error, ... and the Execute Logic
behavior's rules) is given as ``Logic``, any of:

- ``None``: nothing to do;
- a behavior name (``"answer"``): shorthand for ``change_location("answer")``;
- an action dict (``send_message("Hi")``, ``set_field("session.x", 1)``, ...);
- a ``Rule(when, then, otherwise)``: ``when`` is a condition (below);
- a function ``(context) -> {"actions": [...]}`` (or a list of actions);
- a list of the above, run in order.

A *condition* is a callable ``(context) -> bool`` or an expression string over context fields in
Jinja expression syntax, evaluated in a sandbox with undefined names as errors::

    Rule("evidenceScores.numScores > 0 and evidenceScores.maxScore >= 60", then="reply",
         otherwise=send_message("Let me connect you with an agent."))

Actions are the seed's programmatic actions, plain dicts with an ``"action"`` key:
``sendMessage`` (``message: {"text": ...}``), ``setField`` (``field``, ``value`` or
``expression``), ``changeLocation`` (``location``), ``startTyping``, ``closeConversation`` and
``escalate``.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

import jinja2
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..errors import ConfigError, InvalidInputError

ACTION_TYPES = ("sendMessage", "setField", "changeLocation", "startTyping", "closeConversation",
                "escalate")
#: Where ``setField`` may write: session (bot session) fields and conversation fields persist
#: across turns; nothing else in the context can be set.
WRITABLE_ROOTS = ("session", "botSession", "conversation")
_CONVERSATION_READONLY = ("id", "messages")
#: Read-only shorthands for context paths.
PATH_ALIASES = {"customerLastMessage": "derivedData.lastCustomerMessage",
                "lastCustomerMessage": "derivedData.lastCustomerMessage"}

_ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)


# -- context paths ----------------------------------------------------------------------------


def split_path(path: str) -> list[str]:
    """``"session.order.id"`` -> ``["session", "order", "id"]`` (``botSession`` is ``session``)."""
    if not isinstance(path, str) or not path.strip():
        raise ConfigError(f"a context field must be a dotted path such as 'session.answer', got {path!r}")
    path = PATH_ALIASES.get(path.strip(), path.strip())
    parts = path.split(".")
    if any(not p for p in parts):
        raise ConfigError(f"invalid context field {path!r}: empty segment")
    if parts[0] == "botSession":
        parts[0] = "session"
    return parts


_MISSING = object()


def get_path(context: Mapping[str, Any], path: str, default: Any = _MISSING) -> Any:
    """The value at a dotted path of the context; ``default`` (or InvalidInputError) if absent.

    >>> get_path({"session": {"a": {"b": 1}}}, "botSession.a.b")
    1
    """
    value: Any = context
    for i, part in enumerate(split_path(path)):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            if default is not _MISSING:
                return default
            where = ".".join(split_path(path)[:i]) or "the context"
            keys = sorted(value) if isinstance(value, Mapping) else None
            hint = f"; {where} has {keys}" if keys is not None else ""
            raise InvalidInputError(f"context field {path!r} is not set{hint}")
    return value


def writable_path(path: str) -> list[str]:
    """Check a ``setField`` target and return its canonical parts.

    ``session.<name>`` (or ``botSession.<name>``) and ``conversation.<name>`` (stored in
    ``conversation.fields``; ``conversation.fields.<name>`` also works) are writable.
    """
    parts = split_path(path)
    if parts[0] not in ("session", "conversation") or len(parts) < 2:
        raise InvalidInputError(
            f"setField cannot write {path!r}: only session.<name>, botSession.<name> and "
            "conversation.<name> fields can be set")
    if parts[0] == "conversation":
        if parts[1] == "fields":
            parts = parts[2:]
        else:
            if parts[1] in _CONVERSATION_READONLY:
                raise InvalidInputError(f"setField cannot write {path!r}: conversation.{parts[1]} "
                                        "is read-only")
            parts = parts[1:]
        if not parts:
            raise InvalidInputError(f"setField needs a field name after {path!r}")
        return ["conversation", "fields", *parts]
    return parts


def set_path(context: dict[str, Any], path: str, value: Any) -> None:
    """Write ``value`` at a writable path (intermediate dicts are created)."""
    parts = writable_path(path)
    _check_json(value, f"setField {path!r}")
    target = context
    for part in parts[:-1]:
        nxt = target.get(part)
        if not isinstance(nxt, dict):
            nxt = target[part] = {}
        target = nxt
    target[parts[-1]] = copy.deepcopy(value)


def _check_json(value: Any, where: str) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{where}: value must be JSON-serialisable ({exc})") from None


# -- conditions -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=512)
def compile_condition(expression: str) -> Callable[..., Any]:
    """Compile a condition expression (ConfigError when it does not parse)."""
    if not isinstance(expression, str) or not expression.strip():
        raise ConfigError(f"a condition must be a non-empty expression or a callable, got {expression!r}")
    try:
        return _ENV.compile_expression(expression, undefined_to_none=False)
    except TemplateSyntaxError as exc:
        raise ConfigError(f"condition {expression!r} does not parse: {exc.message}") from None


def evaluate(condition: Union[str, Callable[[Mapping[str, Any]], Any]], context: Mapping[str, Any]) -> bool:
    """Evaluate a condition against the context. A missing field or a failing comparison is an
    InvalidInputError naming the condition."""
    if callable(condition):
        return bool(condition(context))
    compiled = compile_condition(condition)
    names = dict(context)
    for alias, target in PATH_ALIASES.items():
        names.setdefault(alias, get_path(context, target, None))
    try:
        return bool(compiled(**names))
    except UndefinedError as exc:
        raise InvalidInputError(f"condition {condition!r}: {exc.message}") from None
    except (SecurityError, TypeError) as exc:
        raise InvalidInputError(f"condition {condition!r} failed: {exc}") from None


def expression_value(expression: str, context: Mapping[str, Any]) -> Any:
    """The value of an expression over the context (for ``setField`` with ``expression``)."""
    compiled = compile_condition(expression)
    names = dict(context)
    for alias, target in PATH_ALIASES.items():
        names.setdefault(alias, get_path(context, target, None))
    try:
        return compiled(**names)
    except UndefinedError as exc:
        raise InvalidInputError(f"expression {expression!r}: {exc.message}") from None
    except (SecurityError, TypeError) as exc:
        raise InvalidInputError(f"expression {expression!r} failed: {exc}") from None


# -- actions ----------------------------------------------------------------------------------


def send_message(text: str | None = None, **message: Any) -> dict[str, Any]:
    """A ``sendMessage`` action: ``{"action": "sendMessage", "message": {"text": ...}}``."""
    body = dict(message)
    if text is not None:
        body["text"] = text
    return {"action": "sendMessage", "message": body}


def set_field(field: str, value: Any = None, *, expression: str | None = None) -> dict[str, Any]:
    """A ``setField`` action; ``expression`` (e.g. ``"prompts.answer.completion"``) is evaluated
    against the context when the action runs, instead of a fixed ``value``."""
    action: dict[str, Any] = {"action": "setField", "field": field}
    if expression is not None:
        action["expression"] = expression
    else:
        action["value"] = value
    return action


def change_location(location: str) -> dict[str, Any]:
    """A ``changeLocation`` action: move the flow to the behavior named ``location``."""
    return {"action": "changeLocation", "location": location}


def start_typing() -> dict[str, Any]:
    """The typing indicator action."""
    return {"action": "startTyping"}


def validate_action(action: Any, where: str = "action") -> dict[str, Any]:
    """Check one programmatic action's shape; returns it as a plain dict."""
    if not isinstance(action, Mapping):
        raise InvalidInputError(f"{where} must be a dict with an 'action' key, got {_preview(action)}")
    kind = action.get("action")
    if kind not in ACTION_TYPES:
        raise InvalidInputError(f"{where}: unknown action {kind!r}; known: {list(ACTION_TYPES)}")
    if kind == "sendMessage":
        message = action.get("message")
        if not isinstance(message, Mapping):
            raise InvalidInputError(f"{where}: sendMessage needs a 'message' dict such as "
                                    f"{{'text': '...'}}, got {_preview(message)}")
        if "text" in message and not isinstance(message["text"], str):
            raise InvalidInputError(f"{where}: sendMessage message.text must be a string, "
                                    f"got {_preview(message['text'])}")
    elif kind == "setField":
        writable_path(action.get("field"))  # type: ignore[arg-type]
        if ("value" in action) == ("expression" in action):
            raise InvalidInputError(f"{where}: setField needs exactly one of 'value' or 'expression'")
        if "expression" in action:
            compile_condition(action["expression"])
    elif kind == "changeLocation":
        if not isinstance(action.get("location"), str) or not action["location"]:
            raise InvalidInputError(f"{where}: changeLocation needs a 'location' (a behavior name)")
    return dict(action)


def actions_of(result: Any, where: str) -> list[dict[str, Any]]:
    """The actions a function returned: ``{"actions": [...]}`` (missing/None/empty allowed),
    a list of actions, or None."""
    if result is None:
        return []
    if isinstance(result, Mapping):
        actions = result.get("actions")
    elif isinstance(result, (list, tuple)):
        actions = result
    else:
        raise InvalidInputError(f"{where} must return a dict with an optional 'actions' list, "
                                f"got {_preview(result)}")
    if actions is None:
        return []
    if not isinstance(actions, (list, tuple)):
        raise InvalidInputError(f"{where}: 'actions' must be a list, got {_preview(actions)}")
    return [validate_action(a, f"{where} actions[{i}]") for i, a in enumerate(actions)]


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# -- rules and handlers -----------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """If ``when`` holds, run ``then``, else ``otherwise`` (both are Logic)."""

    when: Union[str, Callable[[Mapping[str, Any]], Any]]
    then: Any = None
    otherwise: Any = None

    def __post_init__(self) -> None:
        if not callable(self.when):
            compile_condition(self.when)
        object.__setattr__(self, "then", normalize_logic(self.then, "Rule.then"))
        object.__setattr__(self, "otherwise", normalize_logic(self.otherwise, "Rule.otherwise"))


Step = Union[dict, Rule, Callable[..., Any]]
Logic = Union[None, str, Mapping[str, Any], Rule, Callable[..., Any], Sequence[Any]]


def normalize_logic(logic: Any, where: str = "handler") -> tuple[Step, ...]:
    """Logic in any accepted form as a tuple of steps (action dicts, Rules, functions)."""
    if logic is None:
        return ()
    if isinstance(logic, tuple) and all(isinstance(s, (dict, Rule)) or callable(s) for s in logic):
        items: Iterable[Any] = logic
    elif isinstance(logic, (str, Mapping, Rule)) or callable(logic):
        items = [logic]
    elif isinstance(logic, (list, tuple)):
        items = logic
    else:
        raise ConfigError(f"{where}: expected a behavior name, an action dict, a Rule, a function "
                          f"or a list of them, got {_preview(logic)}")
    steps: list[Step] = []
    for i, item in enumerate(items):
        here = f"{where}[{i}]"
        if isinstance(item, str):
            steps.append(change_location(item))
        elif isinstance(item, Rule):
            steps.append(item)
        elif isinstance(item, Mapping):
            try:
                steps.append(validate_action(item, here))
            except InvalidInputError as exc:
                raise ConfigError(str(exc)) from None
        elif callable(item):
            check_signature(item, ("context",), here)
            steps.append(item)
        elif isinstance(item, (list, tuple)):
            steps.extend(normalize_logic(item, here))
        else:
            raise ConfigError(f"{here}: expected a behavior name, an action dict, a Rule or a "
                              f"function, got {_preview(item)}")
    return tuple(steps)


def static_locations(steps: Sequence[Step]) -> list[str]:
    """changeLocation targets visible without running anything (for flow validation)."""
    out: list[str] = []
    for step in steps:
        if isinstance(step, Rule):
            out += static_locations(step.then) + static_locations(step.otherwise)
        elif isinstance(step, dict) and step.get("action") == "changeLocation":
            out.append(step["location"])
    return out


# -- calling user functions by parameter name ---------------------------------------------------


def check_signature(fn: Callable[..., Any], allowed: Sequence[str], where: str) -> tuple[str, ...] | None:
    """The parameter names ``fn`` will be called with (None: pass every allowed name).

    The seed's functions are called by parameter name, so both ``handle(llm, context, prompt,
    response, completion)`` and ``handle_basic(llm, context, prompt, completion)`` work. A
    required parameter with another name is a ConfigError at flow definition time.
    """
    if not callable(fn):
        raise ConfigError(f"{where} must be a function, got {_preview(fn)}")
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None  # builtins without signatures: pass everything by keyword
    names: list[str] = []
    for p in params:
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        if p.name in allowed:
            if p.kind is inspect.Parameter.POSITIONAL_ONLY:
                raise ConfigError(f"{where} {_name(fn)}: parameter {p.name!r} must not be "
                                  "positional-only (functions are called by parameter name)")
            names.append(p.name)
        elif p.default is inspect.Parameter.empty:
            raise ConfigError(f"{where} {_name(fn)} has parameter {p.name!r}; it can take "
                              f"{', '.join(allowed)} (by name)")
    return tuple(names)


def call_by_name(fn: Callable[..., Any], available: Mapping[str, Any], where: str) -> Any:
    """Call ``fn`` with the subset of ``available`` its parameters name."""
    names = check_signature(fn, tuple(available), where)
    kwargs = dict(available) if names is None else {n: available[n] for n in names}
    return fn(**kwargs)


def _name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)

