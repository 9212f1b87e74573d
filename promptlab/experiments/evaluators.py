"""Evaluators: small closure factories that score one output against one dataset row.

An evaluator is any callable ``(output: str, row: Mapping[str, Any]) -> Score | float | bool``.
``row`` is the dataset row: the action's input variables plus, optionally, ``"expected"``
(and other ``expected_*`` keys evaluators may read). The factories here return such callables
with a ``.name`` attribute, in the style of inspect_ai scorers::

    from promptlab.experiments.evaluators import exact_match, contains, length, run_evaluators

    checks = [exact_match(), contains("refund"), length(max_chars=280)]
    run_evaluators(checks, "Refunds take 5 days.", {"question": "...", "expected": "..."})

Score convention: ``Score.value`` is always on a 0..1 scale (1 = best). A judge's 0-100 score
is divided by 100. ``passed`` is the evaluator's pass/fail call where it has one, else None.

:class:`LLMJudge` (from :func:`llm_judge`) needs a model call, so it is not a plain callable:
it builds the judge action's variables and parses its reply; the experiment runner makes
the call between the two. No function in this module does I/O.
"""

from __future__ import annotations

import functools
import json
import math
import numbers
import re
from dataclasses import dataclass, replace
from typing import Any, Awaitable, Callable, Iterable, Mapping, Sequence, Union

import numpy as np

from promptlab.errors import ConfigError, InvalidInputError

__all__ = [
    "Score",
    "Evaluator",
    "LLMJudge",
    "DEFAULT_JUDGE_PROMPT",
    "DEFAULT_JUDGE_INSTRUCTIONS",
    "normalize_score",
    "evaluator_name",
    "exact_match",
    "contains",
    "regex",
    "json_valid",
    "length",
    "max_length",
    "min_length",
    "llm_judge",
    "evaluator_spec",
    "rebuild_evaluator",
    "split_evaluators",
    "run_evaluators",
]


@dataclass(frozen=True)
class Score:
    """One evaluator's verdict on one output.

    ``value`` is in [0, 1] (1 = best), or NaN when the evaluator failed to run (then
    ``reason`` starts with ``"error:"``; see :func:`run_evaluators`).
    """

    name: str
    value: float
    passed: bool | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.value, (bool, np.bool_)) or not isinstance(self.value, numbers.Real):
            raise InvalidInputError(
                f"evaluator {self.name!r}: score value must be a number in [0, 1], "
                f"got {self.value!r}")
        value = float(self.value)
        if not math.isnan(value) and not 0.0 <= value <= 1.0:
            raise InvalidInputError(
                f"evaluator {self.name!r}: score value {value!r} is outside [0, 1]")
        object.__setattr__(self, "value", value)
        if self.passed is not None:
            object.__setattr__(self, "passed", bool(self.passed))

    @property
    def errored(self) -> bool:
        """True when this score records an evaluator that raised instead of scoring."""
        return math.isnan(self.value) and (self.reason or "").startswith("error:")

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "passed": self.passed,
                "reason": self.reason}


Evaluator = Callable[[str, Mapping[str, Any]], Union[Score, float, bool]]


# --------------------------------------------------------------------------- helpers


def evaluator_name(fn: Any) -> str:
    """The name an evaluator's scores are filed under: ``fn.name`` if set, else ``__name__``."""
    name = getattr(fn, "name", None)
    if isinstance(name, str) and name:
        return name
    if isinstance(fn, functools.partial):
        return evaluator_name(fn.func)
    name = getattr(fn, "__name__", None)
    if isinstance(name, str) and name:
        return name
    return type(fn).__name__


def normalize_score(name: str, result: Any) -> Score:
    """Turn what an evaluator returned into a :class:`Score` named ``name``.

    ``bool`` -> value 1.0/0.0 with ``passed`` set; a real number must lie in [0, 1] (no pass
    call); a ``Score`` is kept but renamed to ``name`` so a column always means one evaluator.

    >>> normalize_score("short", True)
    Score(name='short', value=1.0, passed=True, reason=None)
    """
    if isinstance(result, Score):
        return replace(result, name=name) if result.name != name else result
    if isinstance(result, (bool, np.bool_)):
        ok = bool(result)
        return Score(name, 1.0 if ok else 0.0, passed=ok)
    if isinstance(result, numbers.Real):
        value = float(result)
        if math.isnan(value) or not 0.0 <= value <= 1.0:
            raise InvalidInputError(
                f"evaluator {name!r} returned {value!r}; a numeric score must be in [0, 1]")
        return Score(name, value)
    raise InvalidInputError(
        f"evaluator {name!r} returned {type(result).__name__} {_clip(repr(result))}; "
        "expected a Score, a number in [0, 1] or a bool")


def _named(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    fn.name = name  # type: ignore[attr-defined]
    fn.__name__ = name
    fn.__qualname__ = name
    return fn


def _rebuildable(factory: Callable[..., Any]) -> Callable[..., Any]:
    """Record how an evaluator was made (``.spec``), so a resumed run can rebuild it from the
    run's config without the user passing it again."""
    @functools.wraps(factory)
    def make(*args: Any, **kwargs: Any) -> Any:
        evaluator = factory(*args, **kwargs)
        spec = {"factory": factory.__name__, "args": list(args), "kwargs": dict(kwargs)}
        try:
            json.dumps(spec)
        except (TypeError, ValueError):  # e.g. a compiled regex: not rebuildable, pass it again
            spec = None
        evaluator.spec = spec
        return evaluator

    return make


def evaluator_spec(evaluator: Any) -> dict[str, Any] | None:
    """How to rebuild ``evaluator`` (a JSON-able dict), or None for user code."""
    return getattr(evaluator, "spec", None)


def rebuild_evaluator(spec: Mapping[str, Any]) -> Any:
    """The evaluator ``evaluator_spec`` described.

    >>> rebuild_evaluator(evaluator_spec(contains("refund"))).name
    'contains:refund'
    """
    factory = FACTORIES.get(spec.get("factory")) if isinstance(spec, Mapping) else None
    if factory is None:
        raise ConfigError(f"cannot rebuild evaluator from {spec!r}; known factories: {sorted(FACTORIES)}")
    return factory(*spec.get("args", []), **spec.get("kwargs", {}))


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(output: Any, name: str) -> str:
    if not isinstance(output, str):
        raise InvalidInputError(
            f"evaluator {name!r} expects the output as text, got {type(output).__name__}")
    return output


def _row_value(row: Mapping[str, Any], key: str, name: str) -> Any:
    if not isinstance(row, Mapping):
        raise InvalidInputError(
            f"evaluator {name!r} expects the dataset row as a mapping, got {type(row).__name__}")
    if key not in row or row[key] is None:
        keys = ", ".join(repr(k) for k in row) or "none"
        raise InvalidInputError(
            f"evaluator {name!r} needs the row key {key!r}, which this row does not have "
            f"(row keys: {keys})")
    return row[key]


def _key_arg(key: Any, what: str) -> str:
    if not isinstance(key, str) or not key:
        raise ConfigError(f"{what} must be a non-empty string, got {key!r}")
    return key


def _bound(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{what} must be a non-negative whole number, got {value!r}")
    return value


# --------------------------------------------------------------------------- factories


@_rebuildable
def exact_match(expected_key: str = "expected", ignore_case: bool = True,
                strip: bool = True) -> Evaluator:
    """Pass when the output equals ``row[expected_key]``.

    The expected value may be a list of acceptable answers. Named ``"exact_match"`` (or
    ``"exact_match:<key>"`` for another key).

    >>> exact_match()(" Paris\\n", {"expected": "paris"}).passed
    True
    """
    key = _key_arg(expected_key, "expected_key")
    name = "exact_match" if key == "expected" else f"exact_match:{key}"

    def norm(s: str) -> str:
        s = s.strip() if strip else s
        return s.casefold() if ignore_case else s

    def evaluate(output: str, row: Mapping[str, Any]) -> Score:
        out = _text(output, name)
        expected = _row_value(row, key, name)
        options = list(expected) if isinstance(expected, (list, tuple)) else [expected]
        if not options:
            raise InvalidInputError(f"evaluator {name!r}: row key {key!r} is an empty list")
        ok = any(norm(out) == norm(str(o)) for o in options)
        if ok:
            return Score(name, 1.0, passed=True, reason="matches expected")
        want = str(options[0]) if len(options) == 1 else " | ".join(map(str, options))
        return Score(name, 0.0, passed=False,
                     reason=f"expected {_clip(want)!r}, got {_clip(out)!r}")

    return _named(evaluate, name)


@_rebuildable
def contains(*needles: str, mode: str = "any", ignore_case: bool = True,
             key: str | None = None) -> Evaluator:
    """Check that the output contains some (``mode="any"``) or all (``"all"``) needles.

    Needles are given literally, ``contains("refund", "policy", mode="all")``, or read from
    the row, ``contains(key="expected_contains")`` (a string or a list of strings). ``"any"``
    scores 1/0; ``"all"`` scores the fraction found and passes only when all are present.
    Names: ``"contains:refund"``, ``"contains_all:refund,policy"``,
    ``"contains_any:{expected_contains}"``.
    """
    if mode not in ("any", "all"):
        raise ConfigError(f"contains(): mode must be 'any' or 'all', got {mode!r}")
    if needles and key is not None:
        raise ConfigError("contains(): give needles or key=, not both")
    if not needles and key is None:
        raise ConfigError("contains(): give at least one needle, or key= to read them from the row")
    for n in needles:
        if not isinstance(n, str) or not n:
            raise ConfigError(f"contains(): needles must be non-empty strings, got {n!r}")
    if key is not None:
        key = _key_arg(key, "contains(): key")
        name = f"contains_{mode}:{{{key}}}"
    elif len(needles) == 1:
        name = f"contains:{needles[0]}"
    else:
        name = f"contains_{mode}:" + ",".join(needles)

    def fold(s: str) -> str:
        return s.casefold() if ignore_case else s

    def evaluate(output: str, row: Mapping[str, Any]) -> Score:
        out = fold(_text(output, name))
        if key is not None:
            raw = _row_value(row, key, name)
            wanted = [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, (list, tuple)) else None
            if not wanted or not all(isinstance(w, str) and w for w in wanted):
                raise InvalidInputError(
                    f"evaluator {name!r}: row key {key!r} must be a non-empty string or list of "
                    f"non-empty strings, got {_clip(repr(raw))}")
        else:
            wanted = list(needles)
        found = [w for w in wanted if fold(w) in out]
        missing = [w for w in wanted if w not in found]
        if mode == "any":
            ok = bool(found)
            value = 1.0 if ok else 0.0
            reason = (f"found {found[0]!r}" if ok
                      else "none found of " + ", ".join(repr(w) for w in wanted))
        else:
            ok = not missing
            value = len(found) / len(wanted)
            reason = ("all found" if ok
                      else "missing " + ", ".join(repr(w) for w in missing))
        return Score(name, value, passed=ok, reason=reason)

    return _named(evaluate, name)


@_rebuildable
def regex(pattern: str | re.Pattern[str], flags: int = 0) -> Evaluator:
    """Pass when ``re.search(pattern, output)`` finds a match. Named ``"regex:<pattern>"``.

    An invalid pattern is a :class:`~promptlab.errors.ConfigError` here, not at scoring time.
    """
    if isinstance(pattern, re.Pattern):
        compiled = pattern if not flags else re.compile(pattern.pattern, pattern.flags | flags)
    elif isinstance(pattern, str):
        try:
            compiled = re.compile(pattern, flags)
        except re.error as exc:
            raise ConfigError(f"regex(): invalid pattern {pattern!r}: {exc}") from None
    else:
        raise ConfigError(f"regex(): pattern must be a string, got {type(pattern).__name__}")
    name = f"regex:{compiled.pattern}"

    def evaluate(output: str, row: Mapping[str, Any]) -> Score:
        m = compiled.search(_text(output, name))
        if m:
            return Score(name, 1.0, passed=True, reason=f"matched {_clip(m.group(0))!r}")
        return Score(name, 0.0, passed=False, reason="no match")

    return _named(evaluate, name)


@_rebuildable
def json_valid(required_keys: str | Sequence[str] = ()) -> Evaluator:
    """Pass when the whole output (surrounding whitespace aside) parses as JSON.

    With ``required_keys`` the JSON must be an object holding each of them. Named
    ``"json_valid"`` or ``"json_valid:key1,key2"``. Markdown code fences are not stripped:
    an output wrapped in them is not JSON.
    """
    keys = (required_keys,) if isinstance(required_keys, str) else tuple(required_keys)
    for k in keys:
        _key_arg(k, "json_valid(): each required key")
    name = "json_valid" + (":" + ",".join(keys) if keys else "")

    def evaluate(output: str, row: Mapping[str, Any]) -> Score:
        try:
            data = json.loads(_text(output, name))
        except ValueError as exc:
            return Score(name, 0.0, passed=False, reason=f"not valid JSON: {exc}")
        if keys:
            if not isinstance(data, dict):
                return Score(name, 0.0, passed=False,
                             reason=f"JSON {type(data).__name__}, not an object with keys")
            missing = [k for k in keys if k not in data]
            if missing:
                return Score(name, 0.0, passed=False,
                             reason="missing keys: " + ", ".join(repr(k) for k in missing))
        return Score(name, 1.0, passed=True, reason="valid JSON")

    return _named(evaluate, name)


@_rebuildable
def length(min_chars: int | None = None, max_chars: int | None = None,
           min_words: int | None = None, max_words: int | None = None) -> Evaluator:
    """Pass when the output's length is within every given bound (inclusive).

    Characters are counted after stripping surrounding whitespace; words are
    whitespace-separated. Named e.g. ``"length:chars<=280,words>=3"``.
    """
    lo_c, hi_c = _bound(min_chars, "min_chars"), _bound(max_chars, "max_chars")
    lo_w, hi_w = _bound(min_words, "min_words"), _bound(max_words, "max_words")
    if lo_c is None and hi_c is None and lo_w is None and hi_w is None:
        raise ConfigError("length(): give at least one of min_chars, max_chars, min_words, max_words")
    if lo_c is not None and hi_c is not None and lo_c > hi_c:
        raise ConfigError(f"length(): min_chars {lo_c} is greater than max_chars {hi_c}")
    if lo_w is not None and hi_w is not None and lo_w > hi_w:
        raise ConfigError(f"length(): min_words {lo_w} is greater than max_words {hi_w}")
    checks = [(unit, op, bound) for unit, op, bound in
              (("chars", ">=", lo_c), ("chars", "<=", hi_c),
               ("words", ">=", lo_w), ("words", "<=", hi_w)) if bound is not None]
    name = "length:" + ",".join(f"{u}{op}{b}" for u, op, b in checks)

    def evaluate(output: str, row: Mapping[str, Any]) -> Score:
        text = _text(output, name)
        counts = {"chars": len(text.strip()), "words": len(text.split())}
        broken = [f"{counts[u]} {u} {'<' if op == '>=' else '>'} {b}"
                  for u, op, b in checks
                  if (counts[u] < b if op == ">=" else counts[u] > b)]
        if broken:
            return Score(name, 0.0, passed=False, reason="; ".join(broken))
        return Score(name, 1.0, passed=True,
                     reason=f"{counts['chars']} chars, {counts['words']} words")

    return _named(evaluate, name)


def _alias_name(prefix: str, chars: int | None, words: int | None) -> str:
    parts = [f"chars={chars}" if chars is not None else "", f"words={words}" if words is not None else ""]
    return prefix + ":" + ",".join(p for p in parts if p)


@_rebuildable
def max_length(chars: int | None = None, words: int | None = None) -> Evaluator:
    """``length(max_chars=chars, max_words=words)``, named e.g. ``"max_length:chars=280"``."""
    fn = length(max_chars=chars, max_words=words)
    return _named(fn, _alias_name("max_length", chars, words))


@_rebuildable
def min_length(chars: int | None = None, words: int | None = None) -> Evaluator:
    """``length(min_chars=chars, min_words=words)``, named e.g. ``"min_length:words=3"``."""
    fn = length(min_chars=chars, min_words=words)
    return _named(fn, _alias_name("min_length", chars, words))


# --------------------------------------------------------------------------- LLM judge

DEFAULT_JUDGE_INSTRUCTIONS = (
    "Score how well the answer responds to the question: is it correct, complete and clear? "
    "If a reference answer is given, judge how well the answer agrees with it."
)

# Jinja template for a judge action. Section headers start their lines so a parser (the
# offline simulator's `judge` model among them) can split the prompt; the reply format is
# stated before the sections so the last section runs cleanly to the end of the text.
DEFAULT_JUDGE_PROMPT = """\
You are an impartial judge grading an answer. {{instructions}}
Reply with only a JSON object, no other text: \
{"score": <integer from 0 (worst) to 100 (best)>, "reason": "<one sentence>"}

Question:
{{input}}

Answer:
{{output}}
{% if reference %}
Reference:
{{reference}}
{% endif %}"""

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.DOTALL)
# A number with an optional "/N" scale: "80", "80/100", "8/10" (rescaled to 0-100).
_NUM = r"(-?\d+(?:\.\d+)?)(?:\s*/\s*(\d+(?:\.\d+)?))?"
_SCORE_WORD = re.compile(r"\bscore\b\s*[:=]?\s*\**\s*" + _NUM, re.IGNORECASE)
_BARE = re.compile(r"^\s*" + _NUM + r"\s*\.?\s*$")
_REASON = re.compile(r"\breason\b\s*[:=]\s*(.+)", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class LLMJudge:
    """An evaluator that asks a judge action to score an output 0-100.

    The runner calls ``await judge.evaluate(output, row, complete)``, where
    ``complete(action, variables) -> str`` runs the judge action; or it may do the two
    halves itself: ``variables = judge.build_input(output, row)``, run ``judge.action`` with
    them, then ``judge.parse(reply_text)``. ``Score.value`` is the judge's score / 100 and
    ``passed`` is ``value >= threshold``.
    """

    action: str
    threshold: float = 0.5
    name: str = "llm_judge"
    instructions: str | None = None

    def __post_init__(self) -> None:
        _key_arg(self.action, "llm_judge(): action")
        _key_arg(self.name, "llm_judge(): name")
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, numbers.Real) or not 0.0 <= float(t) <= 1.0:
            raise ConfigError(
                f"llm_judge(): threshold is on the 0..1 score scale, got {t!r} "
                "(a judge score of 70/100 is threshold 0.7)")
        if self.instructions is not None and not isinstance(self.instructions, str):
            raise ConfigError("llm_judge(): instructions must be a string")

    @property
    def spec(self) -> dict[str, Any]:
        """How to rebuild this judge (see ``evaluator_spec``)."""
        return {"factory": "llm_judge", "args": [self.action],
                "kwargs": {"threshold": self.threshold, "name": self.name, "instructions": self.instructions}}

    def build_input(self, output: str, row: Mapping[str, Any]) -> dict[str, str]:
        """Variables for the judge action: ``input``, ``output``, ``reference``, ``instructions``.

        ``input`` renders the row's input variables as ``key: value`` lines; ``expected`` and
        other ``expected_*`` keys are left out of it (``expected`` becomes ``reference``).
        """
        out = _text(output, self.name)
        if not isinstance(row, Mapping):
            raise InvalidInputError(
                f"evaluator {self.name!r} expects the dataset row as a mapping, "
                f"got {type(row).__name__}")
        lines = [f"{k}: {_render_value(v)}" for k, v in row.items()
                 if not (k == "expected" or str(k).startswith("expected_"))]
        expected = row.get("expected")
        if expected is None:
            reference = ""
        elif isinstance(expected, (list, tuple)):
            reference = "\n".join(_render_value(e) for e in expected)
        else:
            reference = _render_value(expected)
        return {
            "input": "\n".join(lines),
            "output": out,
            "reference": reference,
            "instructions": self.instructions or DEFAULT_JUDGE_INSTRUCTIONS,
        }

    def parse(self, judge_text: str) -> Score:
        """Read the judge's reply into a Score.

        Accepts ``{"score": 0-100, "reason": ...}`` (bare or in a code fence, optionally with
        text around it), a bare number (``"80"``, ``"80/100"``; ``"8/10"`` is rescaled to 80)
        or ``"Score: 80"`` lines.
        Anything else, or a score outside 0-100, raises InvalidInputError quoting the reply.
        """
        if not isinstance(judge_text, str):
            raise InvalidInputError(
                f"judge {self.name!r} reply must be text, got {type(judge_text).__name__}")
        score, reason = _parse_judge(judge_text)
        if score is None:
            raise InvalidInputError(
                f"judge {self.name!r}: no 0-100 score found in reply "
                f"{_clip(judge_text.strip(), 200)!r}")
        if not 0.0 <= score <= 100.0:
            raise InvalidInputError(
                f"judge {self.name!r}: score {score:g} is outside 0-100 in reply "
                f"{_clip(judge_text.strip(), 200)!r}")
        value = score / 100.0
        return Score(self.name, value, passed=value >= self.threshold, reason=reason)

    async def evaluate(self, output: str, row: Mapping[str, Any],
                       complete: Callable[[str, dict[str, str]], Awaitable[str]]) -> Score:
        """Build the judge's input, await ``complete(action, variables)``, parse the reply."""
        reply = await complete(self.action, self.build_input(output, row))
        return self.parse(reply)


def llm_judge(action: str, *, threshold: float = 0.5, name: str = "llm_judge",
              instructions: str | None = None) -> LLMJudge:
    """An :class:`LLMJudge` that scores outputs with the judge action ``action`` (name or GUID).

    Create the judge action from :data:`DEFAULT_JUDGE_PROMPT` (or any template using
    ``{{input}}``, ``{{output}}``, ``{{reference}}``, ``{{instructions}}``).
    """
    return LLMJudge(action=action, threshold=threshold, name=name, instructions=instructions)


def _render_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        m = _BARE.match(value)
        return _scaled(m) if m else None
    return None


def _scaled(m: re.Match[str]) -> float | None:
    score = float(m.group(1))
    if m.group(2) is None:
        return score
    scale = float(m.group(2))
    return score / scale * 100.0 if scale > 0 else None


def _json_candidates(text: str) -> list[Any]:
    """Every JSON value that starts at a ``{`` in ``text`` (fenced blocks first), or the
    whole text if it is JSON."""
    found: list[Any] = []
    pieces = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for piece in pieces:
        stripped = piece.strip()
        try:
            found.append(json.loads(stripped))
            continue
        except ValueError:
            pass
        for i, ch in enumerate(stripped):
            if ch == "{":
                try:
                    found.append(decoder.raw_decode(stripped, i)[0])
                except ValueError:
                    continue
    return found


def _parse_judge(text: str) -> tuple[float | None, str | None]:
    for data in _json_candidates(text):
        if isinstance(data, dict):
            lowered = {str(k).lower(): v for k, v in data.items()}
            if "score" in lowered:
                score = _number(lowered["score"])
                if score is None:
                    continue
                reason = lowered.get("reason")
                return score, (str(reason) if reason not in (None, "") else None)
        elif not isinstance(data, bool) and isinstance(data, (int, float)):
            return float(data), None
    bare = _BARE.match(text)
    if bare:
        return _scaled(bare), None
    m = _SCORE_WORD.search(text)
    if m:
        r = _REASON.search(text)
        reason = r.group(1).strip() if r else None
        return _scaled(m), reason or None
    return None, None


FACTORIES: dict[str, Callable[..., Any]] = {
    "exact_match": exact_match, "contains": contains, "regex": regex, "json_valid": json_valid,
    "length": length, "max_length": max_length, "min_length": min_length, "llm_judge": llm_judge,
}

# --------------------------------------------------------------------------- running


def split_evaluators(evaluators: Iterable[Any]) -> tuple[list[Evaluator], list[LLMJudge]]:
    """Separate plain evaluators from LLM judges, checking both.

    Raises ConfigError for anything that is not callable and for two evaluators with the
    same name (their scores would land in one column); set ``.name`` to tell them apart.
    """
    if callable(evaluators) or isinstance(evaluators, LLMJudge):
        evaluators = [evaluators]
    plain: list[Evaluator] = []
    judges: list[LLMJudge] = []
    seen: set[str] = set()
    for ev in evaluators:
        if isinstance(ev, LLMJudge):
            name = ev.name
            judges.append(ev)
        elif callable(ev):
            name = evaluator_name(ev)
            plain.append(ev)
        else:
            raise ConfigError(f"evaluator {ev!r} is not callable")
        if name in seen:
            raise ConfigError(
                f"two evaluators are named {name!r}; give one a distinct .name attribute")
        seen.add(name)
    return plain, judges


def run_evaluators(evaluators: Iterable[Evaluator], output: str,
                   row: Mapping[str, Any]) -> list[Score]:
    """Run synchronous evaluators on one output; one Score per evaluator, in order.

    An evaluator that raises does not stop the others: its Score has ``value=nan``,
    ``passed=None`` and ``reason="error: <ExceptionType>: <message>"`` (``Score.errored``).
    LLM judges need a model call and are refused here (ConfigError); the runner awaits
    ``LLMJudge.evaluate`` for them.
    """
    plain, judges = split_evaluators(evaluators)
    if judges:
        raise ConfigError(
            f"run_evaluators() runs only synchronous evaluators; LLM judge {judges[0].name!r} "
            "must be run by the experiment runner (LLMJudge.evaluate)")
    scores: list[Score] = []
    for ev in plain:
        name = evaluator_name(ev)
        try:
            scores.append(normalize_score(name, ev(output, row)))
        except Exception as exc:  # isolate each evaluator: one bug must not lose the rest
            scores.append(Score(name, math.nan, passed=None,
                                reason=f"error: {type(exc).__name__}: {exc}"))
    return scores
