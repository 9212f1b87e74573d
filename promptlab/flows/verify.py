"""Verify Claim: score a claim against pieces of evidence, 0-100, and aggregate the scores.

A *verifier* scores one piece of evidence against the claim on a 0-100 scale (lower = less
substantiated). It is either

- a plain function ``(claim, evidence) -> score`` (sync or async; the score may also be a
  ``(score, reason)`` tuple or ``{"score", "reason"}`` dict), or
- an object with ``async ascore(claim, evidence, runtime)``, where ``runtime.complete(model,
  messages)`` / ``runtime.run_action(name, variables)`` make logged LLM calls and
  ``runtime.lab`` is the Lab.

Built in:

- :class:`LexicalOverlapVerifier` (the default): a **lexical heuristic, not a hallucination
  model**. It reports the share of the claim's content words found in the evidence. It cannot
  see negation, paraphrase or numbers used differently; use it to wire and test a flow offline.
- :class:`LLMJudgeVerifier`: asks any model (``sim:judge`` offline) or a judge action to score
  support, through the lab, so every call is a logged generation.
- :class:`EmbeddingVerifier`: cosine similarity of claim and evidence embeddings (the
  ``embeddings`` extra, or any ``Embedder``); similarity, not entailment.

``evidence_scores(scores)`` is the pure aggregation the verification condition reads:
``maxScore``, ``meanScore``, ``minScore``, ``numErrors``, ``numScores``.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import numbers
import re
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence

from ..errors import ConfigError, InvalidInputError

DEFAULT_CONDITION = "evidenceScores.numScores > 0 and evidenceScores.maxScore >= 50"

_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_STOPWORDS = frozenset(
    """a about after again all am an and any are as at be because been before being both but by
    can could did do does doing down during each few for from further had has have having he her
    here hers him his how i if in into is it its itself just me more most my no nor not of off on
    once only or other our ours out over own same she should so some such than that the their
    theirs them then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours""".split())


# -- evidence ---------------------------------------------------------------------------------


def default_parse_evidence(context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Evidence from every accumulated search result: the record's text, tagged with the
    resource (context library) it came from."""
    out = []
    for invocation in context.get("searchResults") or []:
        resource = invocation.get("resource")
        for result in invocation.get("results") or []:
            record = result.get("record") or {}
            text = record.get("text") or record.get("body") or ""
            out.append({"text": text, "tags": [resource] if resource else [],
                        "id": record.get("id"), "distance": result.get("distance")})
    return out


def normalize_evidence(items: Any, where: str = "parse_evidence") -> list[dict[str, Any]]:
    """Evidence as dicts ``{"text", "tags", ...}``; a string is a piece without tags."""
    if isinstance(items, Mapping) and "evidence" in items:
        items = items["evidence"]
    if items is None:
        return []
    if isinstance(items, (str, Mapping)) or not isinstance(items, (list, tuple)):
        raise InvalidInputError(f"{where} must return a list of evidence (strings or dicts with "
                                f"'text' and optional 'tags'), got {type(items).__name__}")
    out = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            out.append({"text": item, "tags": []})
            continue
        if not isinstance(item, Mapping) or not isinstance(item.get("text"), str):
            raise InvalidInputError(f"{where}: evidence[{i}] must be a string or a dict with a "
                                    f"'text' string, got {item!r:.80}")
        tags = item.get("tags") or []
        if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
            raise InvalidInputError(f"{where}: evidence[{i}] tags must be a list of strings")
        out.append({**item, "tags": list(tags)})
    return out


def filter_by_tags(evidence: Sequence[Mapping[str, Any]], tags: Sequence[str]) -> list[dict[str, Any]]:
    """Evidence carrying at least one of ``tags`` (all evidence when ``tags`` is empty)."""
    if not tags:
        return [dict(e) for e in evidence]
    wanted = set(tags)
    return [dict(e) for e in evidence if wanted & set(e.get("tags") or ())]


# -- aggregation ------------------------------------------------------------------------------


def evidence_scores(scores: Sequence[float | None]) -> dict[str, Any]:
    """Aggregate per-piece scores (None = that piece errored) into the seed's evidenceScores.

    >>> evidence_scores([80.0, 20.0, None])
    {'maxScore': 80.0, 'meanScore': 50.0, 'minScore': 20.0, 'numErrors': 1, 'numScores': 2}

    With no scored piece, max/mean/min are None.
    """
    valid = [float(s) for s in scores if s is not None]
    return {
        "maxScore": max(valid) if valid else None,
        "meanScore": sum(valid) / len(valid) if valid else None,
        "minScore": min(valid) if valid else None,
        "numErrors": len(scores) - len(valid),
        "numScores": len(valid),
    }


def read_score(value: Any, verifier: str) -> tuple[float, str | None]:
    """A verifier's result as ``(score 0-100, reason)``; InvalidInputError when out of range."""
    reason = None
    if isinstance(value, tuple) and len(value) == 2:
        value, reason = value
    elif isinstance(value, Mapping):
        reason = value.get("reason")
        value = value.get("score")
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(float(value)):
        raise InvalidInputError(f"verifier {verifier!r} returned {value!r}, not a 0-100 score")
    if not 0.0 <= float(value) <= 100.0:
        raise InvalidInputError(f"verifier {verifier!r} returned {value!r}, outside 0-100")
    return float(value), (str(reason) if reason is not None else None)


# -- verifiers --------------------------------------------------------------------------------


class VerifierRuntime(Protocol):
    """What a verifier with ``ascore`` may use (provided by the flow engine)."""

    lab: Any

    async def complete(self, model: str, messages: list[dict[str, Any]], **params: Any) -> str: ...

    async def run_action(self, action: str, variables: Mapping[str, Any]) -> str: ...


def _content_words(text: str) -> list[str]:
    words = []
    for w in _WORD_RE.findall(text.lower()):
        if w in _STOPWORDS:
            continue
        for suffix in ("ing", "ed", "es", "s"):  # crude stemming: "refunds" ~ "refund"
            if len(w) > len(suffix) + 3 and w.endswith(suffix) and not w.endswith("ss"):
                w = w[: -len(suffix)]
                break
        words.append(w)
    return words


@dataclass(frozen=True)
class LexicalOverlapVerifier:
    """Heuristic, offline: the share (0-100) of the claim's distinct content words that occur
    in the evidence. NOT a hallucination model (no negation, paraphrase or entailment)."""

    name: str = "lexical-overlap (heuristic)"

    def __call__(self, claim: str, evidence: str) -> tuple[float, str]:
        wanted = list(dict.fromkeys(_content_words(claim)))
        if not wanted:
            raise InvalidInputError("the claim has no content words to check")
        have = set(_content_words(evidence))
        missing = [w for w in wanted if w not in have]
        score = 100.0 * (len(wanted) - len(missing)) / len(wanted)
        reason = f"{len(wanted) - len(missing)} of {len(wanted)} claim terms in the evidence"
        if missing:
            reason += f"; missing: {', '.join(missing[:5])}"
        return round(score, 2), reason


JUDGE_PROMPT = """\
You check whether a claim is supported by a piece of evidence. {instructions}
Reply with only a JSON object, no other text: \
{{"score": <integer from 0 (unsupported) to 100 (fully supported)>, "reason": "<one sentence>"}}

Claim:
{claim}

Evidence:
{evidence}"""

DEFAULT_JUDGE_INSTRUCTIONS = ("Score how much of the claim the evidence states or directly "
                              "implies; anything the evidence does not back lowers the score.")


@dataclass(frozen=True)
class LLMJudgeVerifier:
    """Scores support with a model (``model="sim:judge"`` works offline) or a judge action.

    With ``action``, that action is run with variables ``claim`` and ``evidence``; otherwise
    ``model`` gets :data:`JUDGE_PROMPT`. The reply is parsed like the experiment judge's
    (``{"score": 0-100, "reason": ...}``, or ``Score: 80``). Each call is a logged generation.
    """

    model: str | None = None
    action: str | None = None
    instructions: str = DEFAULT_JUDGE_INSTRUCTIONS
    temperature: float | None = 0.0
    name: str = "llm-judge"

    def __post_init__(self) -> None:
        if self.model is not None and self.action is not None:
            raise ConfigError("LLMJudgeVerifier: give model= or action=, not both")
        if self.model is None and self.action is None:
            object.__setattr__(self, "model", "sim:judge")

    async def ascore(self, claim: str, evidence: str, runtime: VerifierRuntime) -> tuple[float, str | None]:
        from ..experiments.evaluators import LLMJudge

        if self.action is not None:
            reply = await runtime.run_action(self.action, {"claim": claim, "evidence": evidence})
        else:
            prompt = JUDGE_PROMPT.format(instructions=self.instructions, claim=claim, evidence=evidence)
            params = {"temperature": self.temperature} if self.temperature is not None else {}
            reply = await runtime.complete(self.model, [{"role": "user", "content": prompt}], **params)
        score = LLMJudge(action=self.action or self.model or "judge", name=self.name).parse(reply)
        return round(score.value * 100.0, 2), score.reason


@dataclass
class EmbeddingVerifier:
    """Cosine similarity of claim and evidence embeddings, scaled to 0-100 (negative -> 0).

    ``embedder``: any ``promptlab.contexts.Embedder``; default ``lab.contexts.embedder``
    (all-MiniLM-L6-v2, the ``embeddings`` extra). Similarity is not entailment: a claim that
    contradicts its evidence in the same words still scores high.
    """

    embedder: Any = None
    name: str = "embedding-similarity"

    async def ascore(self, claim: str, evidence: str, runtime: VerifierRuntime) -> float:
        embedder = self.embedder if self.embedder is not None else runtime.lab.contexts.embedder
        vectors = await asyncio.to_thread(embedder.embed, [claim, evidence])
        a, b = vectors[0], vectors[1]
        norm = float((a @ a) ** 0.5 * (b @ b) ** 0.5)
        cosine = float(a @ b) / norm if norm else 0.0
        return round(max(0.0, min(1.0, cosine)) * 100.0, 2)


Verifier = Any  # a function (claim, evidence) -> score, or an object with ``ascore``


def check_verifier(verifier: Any) -> Any:
    if verifier is None:
        return LexicalOverlapVerifier()
    if hasattr(verifier, "ascore") or callable(verifier):
        return verifier
    raise ConfigError(f"a verifier must be a function (claim, evidence) -> score or an object with "
                      f"ascore(claim, evidence, runtime); got {verifier!r:.80}")


def verifier_name(verifier: Any) -> str:
    return getattr(verifier, "name", None) or getattr(verifier, "__name__", None) or type(verifier).__name__


async def score_piece(verifier: Any, claim: str, evidence: str,
                      runtime: VerifierRuntime) -> tuple[float, str | None]:
    """One piece's score and reason (raises when the verifier fails)."""
    name = verifier_name(verifier)
    if hasattr(verifier, "ascore"):
        result = await verifier.ascore(claim, evidence, runtime)
    else:
        result = verifier(claim, evidence)
        if inspect.isawaitable(result):
            result = await result
    return read_score(result, name)


async def score_all(verifier: Any, claim: str, evidence: Sequence[Mapping[str, Any]],
                    runtime: VerifierRuntime) -> list[dict[str, Any]]:
    """Score every piece concurrently; a failing piece gets ``score=None`` and its ``error``."""

    async def one(piece: Mapping[str, Any]) -> dict[str, Any]:
        try:
            score, reason = await score_piece(verifier, claim, piece["text"], runtime)
            return {**piece, "score": score, "reason": reason, "error": None}
        except Exception as exc:  # one bad piece is counted in numErrors, not fatal
            return {**piece, "score": None, "reason": None, "error": f"{type(exc).__name__}: {exc}"}

    return list(await asyncio.gather(*(one(p) for p in evidence)))


__all__ = ["LexicalOverlapVerifier", "LLMJudgeVerifier", "EmbeddingVerifier", "evidence_scores",
           "default_parse_evidence", "normalize_evidence", "filter_by_tags", "read_score",
           "DEFAULT_CONDITION", "JUDGE_PROMPT"]
