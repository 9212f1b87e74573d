"""The simulator's answer functions: pure, deterministic, no I/O.

These are NOT language models. They are small text-processing rules that make offline runs
behave enough like a chat model to exercise promptlab end to end: the answer depends on the
prompt's content, on the system message and on the sampling parameters, and the same request
always yields the same answer.

- ``echo``: the last user message's text.
- ``extractive``: picks sentences from the prompt itself (the ones sharing most words with the
  question or instructions) and dresses them according to style cues in the system message and
  instructions ("concise", "bullet", "JSON", "friendly", "formal", "apologize", "summarize", ...).
- ``judge``: reads ``Question:`` / ``Answer:`` / ``Reference:`` sections (or ``Claim:`` /
  ``Evidence:``) and returns ``{"score": 0-100, "reason": "..."}`` from word overlap.

Any name ``<kind>-<suffix>`` (``extractive-v2``) is the same kind; the suffix also varies the
extractive lead-in so two differently named variants answer visibly differently.

Example::

    >>> respond("echo", [{"role": "user", "content": "hi there"}]).text
    'hi there'
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from dataclasses import dataclass
from typing import Any, Sequence

MODEL_KINDS = ("echo", "extractive", "judge")

MODEL_DESCRIPTIONS = {
    "echo": "Simulator (not a language model): returns the last user message unchanged.",
    "extractive": "Simulator (not a language model): answers with sentences taken from the "
    "prompt itself, styled by cues in the system message and instructions.",
    "judge": "Simulator (not a language model): scores Answer vs Reference/Question sections "
    'by word overlap and returns {"score": 0-100, "reason": ...}.',
}

#: Prompt tokens charged per attached image (OpenAI's low-detail price), so usage is not zero.
IMAGE_TOKENS = 85

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_STREAM_PIECE_RE = re.compile(r"\S+\s*|\s+")

_STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    i'm it's don't can't won't please also use using based given following below above
    answer question text content context write reply respond response provide give tell make
    keep sentence sentences yes get got""".split()
)


# --------------------------------------------------------------------------- tokens & text


def tokenize(text: str) -> list[str]:
    """Split text into simulator tokens: runs of word characters and single punctuation marks.

    >>> tokenize("Hi, there!")
    ['Hi', ',', 'there', '!']
    """
    return _TOKEN_RE.findall(text)


def count_tokens(text: str) -> int:
    """Number of simulator tokens in ``text``."""
    return sum(1 for _ in _TOKEN_RE.finditer(text))


def content_text(content: Any) -> str:
    """The text of one message's ``content``: a string, or the text parts of a parts list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type") in ("text", "input_text"):
                texts.append(str(part.get("text", "")))
        return "\n".join(texts)
    return str(content)


def count_images(messages: Sequence[dict[str, Any]]) -> int:
    """Number of image parts (``image_url`` / ``input_image``) across all messages."""
    total = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            total += sum(
                1
                for part in content
                if isinstance(part, dict) and part.get("type") in ("image_url", "input_image", "image")
            )
    return total


def prompt_tokens(messages: Sequence[dict[str, Any]]) -> int:
    """Prompt usage: tokens of every message's text plus ``IMAGE_TOKENS`` per image."""
    text_tokens = sum(count_tokens(content_text(m.get("content"))) for m in messages)
    return text_tokens + IMAGE_TOKENS * count_images(messages)


def stream_pieces(text: str) -> list[str]:
    """Split text into word-ish stream deltas (each word with its trailing whitespace).

    ``"".join(stream_pieces(t)) == t`` for every ``t``.
    """
    return _STREAM_PIECE_RE.findall(text)


def truncate_tokens(text: str, max_tokens: int | None) -> tuple[str, bool]:
    """Cut ``text`` after its ``max_tokens``-th token. Returns ``(text, was_truncated)``."""
    if max_tokens is None:
        return text, False
    matches = list(_TOKEN_RE.finditer(text))
    if len(matches) <= max_tokens:
        return text, False
    if max_tokens <= 0:
        return "", True
    return text[: matches[max_tokens - 1].end()], True


def apply_stop(text: str, stop: str | Sequence[str] | None) -> str:
    """Cut ``text`` before the earliest occurrence of any stop sequence (as OpenAI does)."""
    if not stop:
        return text
    stops = [stop] if isinstance(stop, str) else list(stop)
    cut = len(text)
    for s in stops:
        if s:
            i = text.find(s)
            if i != -1:
                cut = min(cut, i)
    return text[:cut]


def stable_hash(*parts: Any) -> int:
    """A 64-bit hash that is the same in every process (unlike built-in ``hash``)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return int.from_bytes(hashlib.sha256(blob.encode("utf-8")).digest()[:8], "big")


def resolve_model(name: str) -> str | None:
    """The simulator kind for a model name, or None when the simulator has no such model.

    >>> resolve_model("extractive-v2"), resolve_model("gpt-4o")
    ('extractive', None)
    """
    if not isinstance(name, str):
        return None
    for kind in MODEL_KINDS:
        if name == kind or (name.startswith(kind + "-") and len(name) > len(kind) + 1):
            return kind
    return None


# --------------------------------------------------------------------------- public entry


@dataclass(frozen=True)
class SimOutput:
    """One simulated answer with its usage."""

    text: str
    finish_reason: str  # "stop" or "length"
    prompt_tokens: int
    completion_tokens: int


def respond(
    model: str,
    messages: Sequence[dict[str, Any]],
    *,
    temperature: float | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    repeat: int | None = None,
    max_tokens: int | None = None,
    stop: str | Sequence[str] | None = None,
) -> SimOutput:
    """The whole simulated completion: answer text, finish reason and token usage.

    Raises ``ValueError`` for a model name the simulator does not know (the server checks first).
    """
    text = generate(model, messages, temperature=temperature, top_p=top_p, seed=seed, repeat=repeat)
    text = apply_stop(text, stop)
    text, truncated = truncate_tokens(text, max_tokens)
    return SimOutput(
        text=text,
        finish_reason="length" if truncated else "stop",
        prompt_tokens=prompt_tokens(messages),
        completion_tokens=count_tokens(text),
    )


def generate(
    model: str,
    messages: Sequence[dict[str, Any]],
    *,
    temperature: float | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    repeat: int | None = None,
) -> str:
    """The untruncated answer of simulator ``model`` to ``messages``."""
    kind = resolve_model(model)
    if kind == "echo":
        return echo(messages)
    if kind == "extractive":
        return extractive(messages, temperature=temperature, top_p=top_p, seed=seed,
                          repeat=repeat, variant=model[len(kind) + 1:])
    if kind == "judge":
        return judge(messages)
    raise ValueError(f"unknown simulator model {model!r}; known: {', '.join(MODEL_KINDS)}")


# --------------------------------------------------------------------------- echo


def _last_user_text(messages: Sequence[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def echo(messages: Sequence[dict[str, Any]]) -> str:
    """The last user message's text (empty when there is none)."""
    return _last_user_text(messages)


# --------------------------------------------------------------------------- words


def _stem(word: str) -> str:
    # Crude suffix stripping so "refunds" matches "refund" and "delayed" matches "delay".
    if word.endswith("'s"):
        word = word[:-2]
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix) and not word.endswith("ss"):
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> list[str]:
    """Lower-cased, stemmed words of ``text`` without stop words, in order."""
    return [_stem(w) for w in _WORD_RE.findall(text.lower()) if w not in _STOPWORDS]


# --------------------------------------------------------------------------- extractive

_SEPARATOR_RE = re.compile(r"^\s*(?:[=\-_*#~`\"]\s*){3,}\s*$")
_INSTR_HEADING_RE = re.compile(
    r"^\s*(?:question|task|instructions?|query|request|goal)\s*:\s*(.*)$", re.I)
_CONTENT_HEADING_RE = re.compile(
    r"^\s*(?:context|content|text|document|documents|article|email|input|passage|data|source|"
    r"sources|review|message|ticket|notes|background|transcript|results|search results)\s*:\s*(.*)$",
    re.I,
)
_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_BULLET_PREFIX_RE = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_IMPERATIVES = frozenset(
    """answer summarize summarise write explain review describe list give tell respond reply
    classify translate rewrite extract provide use be keep please compose draft suggest identify
    find compare analyze analyse evaluate check correct fix improve make create generate return
    output format focus avoid do don't include mention state outline highlight propose
    recommend""".split()
)
_INSTR_STARTS = ("you are", "you're", "your task", "your job", "i want", "i need", "act as",
                 "in one ", "in two ", "in three ")

_LEADS = (
    "Based on the text", "From what you shared", "According to the content",
    "Looking at the material", "Reading the input closely", "Going by the details given",
    "Drawing on the provided text", "Judging from the content", "Taking the text at its word",
    "From the passage", "Per the information given", "On a close reading",
)
_CLOSINGS = (
    "Hope this helps.", "Let me know if you need more.", "That is the key point.", "That covers it.",
    "Feel free to ask a follow-up.", "I hope that answers it.", "Those are the relevant details.",
    "That should settle it.", "Happy to clarify further.", "This is what the text supports.",
)
_NEGATIVE_WORDS = frozenset(
    """problem problems issue issues broken refund complaint late delay delayed angry error
    errors fail failed failure wrong damaged cancel cancelled canceled disappointed frustrated
    unhappy bad crash crashed lost missing overcharged charged bug bugs stuck slow""".split()
)
_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
_COUNT_RE = re.compile(
    r"\b(\d+|one|two|three|four|five|six)\s+(?:\w+\s+)?(sentences?|bullets?|bullet points?|"
    r"points?|items?|lines?)\b"
)
_PERSONA_RE = re.compile(r"\b(?:you are|you're|act as)\s+((?:an?|the)\s+[^.,;:!?\n]{1,60})", re.I)


@dataclass(frozen=True)
class _Sentence:
    text: str
    position: int
    from_latest: bool  # taken from the last user message (preferred over older turns)


@dataclass(frozen=True)
class Style:
    """Answer style read from cues in the system message and instructions."""

    sentences: int | None = None  # None: up to 2, but only sentences that match the question
    bullets: bool = False
    json: bool = False
    friendly: bool = False
    formal: bool = False
    apology: bool = False
    summary: bool = False


def read_style(cue_text: str) -> Style:
    """Detect style cues (case-insensitive) in the system message + instructions.

    >>> read_style("Be concise. Use bullet points.").sentences
    1
    """
    t = cue_text.lower()
    bullets = bool(re.search(r"\bbullet|\blist\b|\bbulleted\b", t))
    sentences: int | None = 3 if bullets else None
    if re.search(r"\bdetailed\b|\bthorough|\bin detail\b|\bcomprehensive\b|\bin[- ]depth\b|"
                 r"\belaborate\b", t):
        sentences = 4
    if re.search(r"\bconcise\b|\bbrief\b|\bbriefly\b|\bshort\b|\bsuccinct\b|\btl;?dr\b|"
                 r"\bone sentence\b|\bsingle sentence\b|\bone line\b", t):
        sentences = 1
    summary = bool(re.search(r"summar|\btl;?dr", t))
    if summary and sentences is None:
        sentences = 2
    count = _COUNT_RE.search(t)
    if count:
        raw = count.group(1)
        sentences = max(1, min(10, int(raw) if raw.isdigit() else _NUMBER_WORDS[raw]))
    return Style(
        sentences=sentences,
        bullets=bullets,
        json=bool(re.search(r"\bjson\b", t)),
        friendly=bool(re.search(r"\bfriendly|\bempath|\bwarm\b|\bwarmly\b|\bcaring\b|"
                                r"\bsupportive\b|\bkind\b", t)),
        formal=bool(re.search(r"\bformal", t)),
        apology=bool(re.search(r"apolog", t)),
        summary=summary,
    )


def _split_sentences(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        line = _BULLET_PREFIX_RE.sub("", line).strip()
        if not line or _SEPARATOR_RE.match(line):
            continue
        out.extend(s.strip() for s in _SENTENCE_SPLIT_RE.split(line) if s.strip())
    return out


def _looks_like_instruction(sentence: str) -> bool:
    s = sentence.strip().lower()
    if s.endswith("?"):
        return True
    if s.startswith(_INSTR_STARTS):
        return True
    first = _WORD_RE.findall(s[:40])
    return bool(first) and first[0] in _IMPERATIVES


def _sections(text: str) -> list[tuple[str | None, str]]:
    """Split a message into (kind, text) sections: kind is "instr", "content" or None (unknown).

    Explicit headings (``Question:``, ``Context:``) decide the kind; text before a separator line
    (``=====``) is taken as instructions and text after it as content.
    """
    sections: list[list[Any]] = [[None, []]]
    for line in text.splitlines():
        if _SEPARATOR_RE.match(line):
            if sections[-1][0] is None and any(x.strip() for x in sections[-1][1]):
                sections[-1][0] = "instr"
            sections.append(["content", []])
            continue
        m = _INSTR_HEADING_RE.match(line)
        if m:
            sections.append(["instr", [m.group(1)]])
            continue
        m = _CONTENT_HEADING_RE.match(line)
        if m:
            sections.append(["content", [m.group(1)]])
            continue
        sections[-1][1].append(line)
    return [(kind, "\n".join(lines)) for kind, lines in sections if any(x.strip() for x in lines)]


def _parse_prompt(messages: Sequence[dict[str, Any]]) -> tuple[str, list[str], list[_Sentence]]:
    """Return (system text, instruction sentences, candidate content sentences)."""
    system_parts: list[str] = []
    instructions: list[str] = []
    content: list[_Sentence] = []
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    seen: set[str] = set()

    def add_content(sentence: str, latest: bool) -> None:
        key = sentence.lower()
        if key not in seen:
            seen.add(key)
            content.append(_Sentence(sentence, len(content), latest))

    for i, message in enumerate(messages):
        role = message.get("role")
        text = content_text(message.get("content"))
        if role in ("system", "developer"):
            system_parts.append(text)
            # Retrieved context often travels in the system message under a heading.
            for kind, body in _sections(text):
                if kind == "content":
                    for s in _split_sentences(body):
                        add_content(s, True)
        elif role == "user":
            latest = i == last_user
            for kind, body in _sections(text):
                for s in _split_sentences(body):
                    if kind == "instr" or (kind is None and _looks_like_instruction(s)):
                        if latest:
                            instructions.append(s)
                    else:
                        add_content(s, latest)
    if not content:
        # Nothing but instructions: answer from them rather than from nothing.
        for s in instructions:
            add_content(s, True)
    return "\n".join(system_parts), instructions, content


def _rank(sentences: list[_Sentence], instructions: list[str], system: str) -> list[tuple[float, _Sentence]]:
    weights: dict[str, float] = {}
    for w in content_words(system):
        weights[w] = max(weights.get(w, 0.0), 0.3)
    for w in content_words(" ".join(instructions)):
        weights[w] = 1.0
    ranked = []
    for s in sentences:
        words = set(content_words(s.text))
        overlap = sum(weights.get(w, 0.0) for w in words)
        # No length normalisation: it made short side remarks beat the sentence that answers.
        score = overlap + (0.05 if s.from_latest else 0.0)
        ranked.append((score, s))
    # Highest score first; ties go to the earlier sentence so results never depend on set order.
    ranked.sort(key=lambda item: (-item[0], item[1].position))
    return ranked


def _sample(ranked: list[tuple[float, _Sentence]], n: int, temp: float, top_p: float,
            rng: random.Random) -> list[_Sentence]:
    """Pick n sentences: softmax weights at ``temp`` over the scores, nucleus cut at ``top_p``,
    then weighted sampling without replacement (Efraimidis-Spirakis keys)."""
    best = ranked[0][0]
    # Clamped so a tiny temperature cannot underflow a weight to zero (1/0 in the key below).
    weights = [max(math.exp((score - best) * 2.0 / temp), 1e-300) for score, _ in ranked]
    total = sum(weights)
    keep, mass = 0, 0.0
    while keep < len(ranked) and (keep < n or mass < top_p * total - 1e-12):
        mass += weights[keep]
        keep += 1
    keyed = sorted(((rng.random() ** (1.0 / weights[i]), i) for i in range(keep)), reverse=True)
    return [ranked[i][1] for _, i in keyed[:n]]


def _finish_sentence(s: str) -> str:
    return s if s[-1:] in ".!?\"')]" else s + "."


def extractive(
    messages: Sequence[dict[str, Any]],
    *,
    temperature: float | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    repeat: int | None = None,
    variant: str = "",
) -> str:
    """Answer from the prompt's own sentences, styled by the system message and instructions.

    Temperature 0 always picks the best-scoring sentences and the system message's own lead-in;
    temperature > 0 samples among near-top candidates with a generator seeded from a stable hash
    of the whole request (messages, temperature, top_p, seed, repeat), so it is still repeatable.
    """
    system, instructions, sentences = _parse_prompt(messages)
    style = read_style(system + "\n" + "\n".join(instructions))
    temp = 1.0 if temperature is None else float(temperature)
    nucleus = 1.0 if top_p is None else float(top_p)
    rng = random.Random(stable_hash("extractive", variant, list(messages), temp, nucleus, seed, repeat))

    ranked = _rank(sentences, instructions, system)
    if style.sentences is None:
        # No length cue: answer with the matching sentences only (at most 2, at least 1).
        matching = sum(1 for score, s in ranked if score > (0.05 if s.from_latest else 0.0))
        n = min(len(ranked), max(1, min(2, matching)))
    else:
        n = min(style.sentences, len(ranked))
    if temp <= 0 or n == 0:
        chosen = [s for _, s in ranked[:n]]
    else:
        chosen = _sample(ranked, n, temp, nucleus, rng)
    chosen.sort(key=lambda s: s.position)  # read in document order
    body_sentences = [_finish_sentence(s.text) for s in chosen]

    # Lead-in and closing come from the system message (and variant), so two system messages
    # without any style cue still read differently (1 in 120 chance of a tie).
    voice = stable_hash("voice", system, variant)
    lead_index, closing_index = voice % len(_LEADS), (voice // len(_LEADS)) % len(_CLOSINGS)
    if temp > 0:
        lead_index = (lead_index + rng.randrange(1 + round(temp * 2))) % len(_LEADS)
    lead, closing = _LEADS[lead_index], _CLOSINGS[closing_index]

    images = count_images(messages)
    if style.json:
        return json.dumps({"answer": " ".join(body_sentences)}, ensure_ascii=False)

    if not body_sentences:
        body = "there is no content to answer from."
        body_sentences = [body]

    if style.summary:
        lead = "In summary"
    persona = _PERSONA_RE.search(system)
    if persona:
        phrase = " ".join(persona.group(1).split()[:8])
        lead = f"As {phrase}, {lead[0].lower()}{lead[1:]}"

    if style.bullets:
        body = f"{lead}:\n" + "\n".join(f"- {s}" for s in body_sentences)
    else:
        body = f"{lead}: " + " ".join(body_sentences) + " " + closing

    parts: list[str] = []
    if style.formal:
        parts.append("Dear customer,\n\n")
    if style.apology:
        parts.append("We apologize for the inconvenience. ")
    if style.friendly:
        said = " ".join([s.text for s in sentences] + instructions).lower()
        negative = any(w in _NEGATIVE_WORDS for w in _WORD_RE.findall(said))
        parts.append("I'm sorry to hear that. " if negative else "Thanks for reaching out! ")
    parts.append(body)
    if images:
        plural = "s" if images != 1 else ""
        parts.append(f" ({images} image{plural} received; the simulator does not look at images.)")
    if style.formal:
        parts.append("\n\nKind regards.")
    return "".join(parts)


# --------------------------------------------------------------------------- judge

_JUDGE_HEADING_RE = re.compile(
    r"^[ \t]*(question|input|prompt|query|answer|response|output|completion|reference answer|"
    r"reference|expected answer|expected output|expected|ground truth|claim|evidence|context|"
    r"criteria|rubric)[ \t]*:[ \t]*",
    re.I | re.M,
)
_JUDGE_ROLES = {
    "question": "input", "input": "input", "prompt": "input", "query": "input",
    "answer": "answer", "response": "answer", "output": "answer", "completion": "answer",
    "reference answer": "reference", "reference": "reference", "expected answer": "reference",
    "expected output": "reference", "expected": "reference", "ground truth": "reference",
    "claim": "claim", "evidence": "evidence",
}


def judge_sections(text: str) -> dict[str, str]:
    """Sections of a judge prompt by role: input, answer, reference, claim, evidence.

    Each heading must start a line; repeated roles are concatenated.
    """
    matches = list(_JUDGE_HEADING_RE.finditer(text))
    sections: dict[str, str] = {}
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        role = _JUDGE_ROLES.get(m.group(1).lower())
        if role:
            body = text[m.end():end].strip()
            sections[role] = (sections[role] + "\n" + body).strip() if role in sections else body
    return sections


def _coverage(target: str, source: str) -> tuple[float, list[str], int]:
    """Share of ``target``'s distinct content words found in ``source``; also the missing ones."""
    wanted = list(dict.fromkeys(content_words(target)))
    have = set(content_words(source))
    if not wanted:
        return 0.0, [], 0
    missing = [w for w in wanted if w not in have]
    return (len(wanted) - len(missing)) / len(wanted), missing, len(wanted)


def _verdict(score: int, reason: str) -> str:
    return json.dumps({"score": score, "reason": reason}, ensure_ascii=False)


def judge(messages: Sequence[dict[str, Any]]) -> str:
    """Score the answer in the last user message; returns ``{"score": int, "reason": str}`` JSON.

    With a reference: recall of reference words in the answer. Without: recall of the question's
    keywords. ``Claim:`` + ``Evidence:``: share of claim words supported by the evidence.
    Without recognisable sections: overlap of the last paragraph with the rest of the prompt.
    """
    text = _last_user_text(messages)
    sec = judge_sections(text)
    if "claim" in sec and "evidence" in sec:
        share, missing, total = _coverage(sec["claim"], sec["evidence"])
        if total == 0:
            return _verdict(0, "the claim has no content words to check")
        reason = f"{total - len(missing)} of {total} claim terms appear in the evidence"
        return _verdict(round(100 * share), reason + (f"; unsupported: {', '.join(missing[:3])}" if missing else ""))

    answer = sec.get("answer", sec.get("claim"))
    if answer is not None:
        if not answer.strip():
            return _verdict(0, "the answer is empty")
        if sec.get("reference", "").strip():
            target, label = sec["reference"], "reference"
        elif sec.get("input", "").strip():
            target, label = sec["input"], "question"
        else:
            return _verdict(50, "no reference or question to compare the answer with")
        share, missing, total = _coverage(target, answer)
        if total == 0:
            same = answer.strip().lower() == target.strip().lower()
            return _verdict(100 if same else 0, f"the {label} has no content words; compared verbatim")
        reason = f"answer covers {total - len(missing)} of {total} {label} terms"
        return _verdict(round(100 * share), reason + (f"; missing: {', '.join(missing[:3])}" if missing else ""))

    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    if len(paragraphs) < 2:
        return _verdict(0, "no Answer/Response section found")
    share, _, total = _coverage("\n".join(paragraphs[:-1]), paragraphs[-1])
    return _verdict(round(100 * share), "no sections found; scored the last paragraph against the rest")


__all__ = [
    "MODEL_KINDS",
    "MODEL_DESCRIPTIONS",
    "IMAGE_TOKENS",
    "SimOutput",
    "Style",
    "respond",
    "generate",
    "echo",
    "extractive",
    "judge",
    "judge_sections",
    "read_style",
    "resolve_model",
    "tokenize",
    "count_tokens",
    "content_text",
    "count_images",
    "prompt_tokens",
    "stream_pieces",
    "truncate_tokens",
    "apply_stop",
    "stable_hash",
    "content_words",
]
