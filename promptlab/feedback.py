"""Feedback on generations: ratings, corrections, issue tags, scores, pairwise preferences.

The seed's "Save User Feedback", locally::

    r = lab.actions.prompt("writer", {...})
    lab.feedback.log(r.guid, rating="Positive", correction="...", issue="Vague")
    lab.feedback.log(r.guid, rating=2)            # the HTTP API's spelling: 2 positive, 1 negative
    lab.feedback.log(r.feedback_url, issue="Vague")   # the feedback URL names the generation too
    await lab.feedback.alog(r.guid, rating="Negative")  # every method has an a-prefixed async twin
    lab.feedback.prefer(r1.guid, r2.guid, winner="a")
    lab.feedback.to_pandas()

Ratings are stored in one form, ``"Positive"`` / ``"Negative"``. Every call adds a row (the
history is kept); aggregates and exports use, per generation, the latest human value of each
field ("latest wins"). Validation is pure (``normalize_rating``, ``normalize_issue``,
``feedback_row``); nothing is written when any check fails.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from ._twins import async_twin
from .checks import count_or_none
from .errors import ConfigError, InvalidInputError
from .generations import generation_guid
from .store import new_guid, utcnow
from .store.feedback import FEEDBACK_FIELDS, PREFERENCE_FIELDS
from .store.values import check_json

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .lab import Lab

POSITIVE, NEGATIVE = "Positive", "Negative"
RATINGS = (POSITIVE, NEGATIVE)
SOURCES = ("human", "evaluator")
WINNERS = ("a", "b", "tie")

DEFAULT_ISSUE_TAGS: tuple[str, ...] = (
    "Vague", "Incorrect", "Hallucination", "Off-topic", "Too long", "Too short", "Tone",
    "Formatting", "Unsafe", "Incomplete", "Other",
)

_ACCEPTED_RATINGS = "'Positive'/'Negative' (any case), 2/1 or '2'/'1' (the HTTP API's spelling), True/False"
LOG_FIELDS = ("guid", "rating", "correction", "issue", "ext_user_id", "comment", "source", "metadata",
              "score", "evaluator")


# -- pure validation ------------------------------------------------------------------------


def normalize_rating(value: Any) -> str | None:
    """The canonical rating for any accepted spelling; None stays None.

    >>> normalize_rating("positive"), normalize_rating(1), normalize_rating(True)
    ('Positive', 'Negative', 'Positive')
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return POSITIVE if value else NEGATIVE
    if isinstance(value, int):
        if value in (1, 2):
            return POSITIVE if value == 2 else NEGATIVE
    elif isinstance(value, str):
        text = value.strip().lower()
        if text in ("positive", "2"):
            return POSITIVE
        if text in ("negative", "1"):
            return NEGATIVE
    raise InvalidInputError(f"invalid rating {value!r}; accepted: {_ACCEPTED_RATINGS}")


def normalize_issue(value: Any, vocabulary: Sequence[str]) -> str | None:
    """The vocabulary's spelling of an issue tag, matched case-insensitively."""
    if value is None:
        return None
    if isinstance(value, str):
        wanted = " ".join(value.split()).lower()
        for tag in vocabulary:
            if tag.lower() == wanted:
                return tag
    raise InvalidInputError(f"unknown issue tag {value!r}; known tags: {list(vocabulary)} "
                            "(configure them with Lab(issue_tags=[...]))")


def _text(name: str, value: Any, empty_ok: bool = True) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a string, not {type(value).__name__}")
    if not empty_ok and not value.strip():
        raise InvalidInputError(f"{name} must not be empty")
    return value


def _source(value: Any) -> str:
    if isinstance(value, str) and value.strip().lower() in SOURCES:
        return value.strip().lower()
    raise InvalidInputError(f"invalid source {value!r}; accepted: {list(SOURCES)}")


def _score(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or not 0 <= value <= 1:
        raise InvalidInputError(f"score must be a number from 0 to 1, got {value!r}")
    return float(value)


def _metadata(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"metadata must be a dict, not {type(value).__name__}")
    check_json(dict(value), "metadata")
    return dict(value)


def _guid_of(value: Any, name: str = "guid") -> str:
    # a Generation or its feedback_url (absolute or gateway-relative) works as well as its GUID
    return generation_guid(value, name)


def feedback_row(guid: Any, *, rating: Any = None, correction: Any = None, issue: Any = None,
                 ext_user_id: Any = None, comment: Any = None, source: Any = "human",
                 metadata: Any = None, score: Any = None, evaluator: Any = None,
                 vocabulary: Sequence[str] = DEFAULT_ISSUE_TAGS) -> dict[str, Any]:
    """Validate one feedback entry and return the row to store (pure, except the new GUID/time)."""
    row = dict(
        guid=new_guid(), generation_guid=_guid_of(guid), rating=normalize_rating(rating),
        correction=_text("correction", correction, empty_ok=False),
        issue=normalize_issue(issue, vocabulary), comment=_text("comment", comment),
        score=_score(score), evaluator=_text("evaluator", evaluator, empty_ok=False),
        source=_source(source), ext_user_id=_text("ext_user_id", ext_user_id),
        metadata=_metadata(metadata), created_at=utcnow(),
    )
    if all(row[k] is None for k in ("rating", "correction", "issue", "comment", "score")):
        raise InvalidInputError("feedback needs at least one of rating, correction, issue, comment, score")
    if row["source"] == "evaluator" and row["evaluator"] is None:
        raise InvalidInputError("feedback from source='evaluator' needs evaluator=<its name>")
    if row["source"] == "human" and row["evaluator"] is not None:
        raise InvalidInputError(f"evaluator={row['evaluator']!r} was given but source is 'human'; "
                                "pass source='evaluator'")
    return row


def normalize_winner(winner: Any, guid_a: str, guid_b: str) -> str:
    """``"a"`` / ``"b"`` / ``"tie"`` (any case), or the winning generation's GUID (or feedback_url)."""
    if isinstance(winner, str):
        text = winner.strip().lower()
        if text in WINNERS:
            return text
        guid = generation_guid(winner, "winner") if winner else winner
        if guid == guid_a:
            return "a"
        if guid == guid_b:
            return "b"
    raise InvalidInputError(f"invalid winner {winner!r}; accepted: 'a', 'b', 'tie' or one of the two GUIDs")


# -- records --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedbackRecord:
    """One stored feedback row. ``generation`` is the rated generation's GUID."""

    guid: str
    generation: str
    rating: str | None = None
    correction: str | None = None
    issue: str | None = None
    comment: str | None = None
    score: float | None = None
    evaluator: str | None = None
    source: str = "human"
    ext_user_id: str | None = None
    metadata: dict[str, Any] | None = None
    created_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "FeedbackRecord":
        return cls(generation=row["generation_guid"],
                   **{k: row[k] for k in FEEDBACK_FIELDS if k != "generation_guid"})

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Preference:
    """A pairwise preference between two generations. ``winner`` is "a", "b" or "tie"."""

    guid: str
    generation_a: str
    generation_b: str
    winner: str
    source: str = "human"
    evaluator: str | None = None
    ext_user_id: str | None = None
    comment: str | None = None
    metadata: dict[str, Any] | None = None
    created_at: datetime | None = None

    @property
    def chosen(self) -> str | None:
        """The winning generation's GUID (None for a tie)."""
        return {"a": self.generation_a, "b": self.generation_b}.get(self.winner)

    @property
    def rejected(self) -> str | None:
        return {"a": self.generation_b, "b": self.generation_a}.get(self.winner)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "Preference":
        return cls(**{k: row[k] for k in PREFERENCE_FIELDS})

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# -- the resource ---------------------------------------------------------------------------


class Feedback:
    """``lab.feedback``: log and read feedback and pairwise preferences."""

    def __init__(self, lab: "Lab"):
        self._lab = lab

    @property
    def tags(self) -> list[str]:
        """The issue tag vocabulary (``Lab(issue_tags=...)`` or ``DEFAULT_ISSUE_TAGS``)."""
        custom = self._lab.issue_tags
        return list(custom) if custom is not None else list(DEFAULT_ISSUE_TAGS)

    def log(self, guid: Any, rating: Any = None, correction: str | None = None, issue: str | None = None,
            ext_user_id: str | None = None, comment: str | None = None, source: str = "human",
            metadata: Mapping[str, Any] | None = None, score: float | None = None,
            evaluator: str | None = None) -> FeedbackRecord:
        """Save feedback on a generation (by GUID, its ``feedback_url``, or the Generation itself).

        >>> lab.feedback.log(r.guid, rating="Positive", correction="...", issue="Vague")
        >>> lab.feedback.log(r.guid, rating=1)                      # 1 = Negative, 2 = Positive
        >>> lab.feedback.log(r.guid, score=0.0, evaluator="exact_match", source="evaluator")

        Raises InvalidInputError (bad rating, unknown tag, nothing given, ...) or NotFoundError
        (unknown generation); nothing is written then.
        """
        row = feedback_row(guid, rating=rating, correction=correction, issue=issue,
                           ext_user_id=ext_user_id, comment=comment, source=source,
                           metadata=metadata, score=score, evaluator=evaluator, vocabulary=self.tags)
        self._lab.store.insert_feedback([row])
        return FeedbackRecord.from_row(row)

    def log_many(self, records: Iterable[Mapping[str, Any]]) -> list[FeedbackRecord]:
        """Save many feedback entries (dicts with ``log``'s arguments) in ONE transaction.

        All entries are validated first; any error (naming the 1-based entry as ``row``) or an
        unknown generation writes nothing.

        >>> lab.feedback.log_many([{"guid": g, "score": 1.0, "evaluator": "exact_match",
        ...                         "source": "evaluator"} for g in guids])
        """
        rows = []
        vocabulary = self.tags
        if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Iterable):
            raise InvalidInputError(f"records must be a list of dicts, not {type(records).__name__}")
        for number, record in enumerate(records, start=1):
            if not isinstance(record, Mapping):
                raise InvalidInputError(f"a feedback entry must be a dict, not {type(record).__name__}",
                                        row=number)
            unknown = sorted(set(record) - set(LOG_FIELDS))
            if unknown:
                raise ConfigError(f"feedback entry {number}: unknown field(s) {unknown}; "
                                  f"known: {list(LOG_FIELDS)}")
            if "guid" not in record:
                raise InvalidInputError("a feedback entry needs 'guid'", row=number)
            try:
                rows.append(feedback_row(vocabulary=vocabulary, **record))
            except InvalidInputError as exc:
                raise InvalidInputError(str(exc), row=number) from None
        self._lab.store.insert_feedback(rows)
        return [FeedbackRecord.from_row(r) for r in rows]

    def prefer(self, guid_a: Any, guid_b: Any, winner: str, ext_user_id: str | None = None,
               source: str = "human", comment: str | None = None,
               metadata: Mapping[str, Any] | None = None, evaluator: str | None = None) -> Preference:
        """Record which of two generations (of the same input) is better.

        >>> lab.feedback.prefer(r1.guid, r2.guid, winner="a")     # or "b", "tie", or a GUID
        """
        a, b = _guid_of(guid_a, "guid_a"), _guid_of(guid_b, "guid_b")
        if a == b:
            raise InvalidInputError(f"a preference needs two different generations; both are {a!r}")
        source = _source(source)
        evaluator = _text("evaluator", evaluator, empty_ok=False)
        if source == "evaluator" and evaluator is None:
            raise InvalidInputError("a preference from source='evaluator' needs evaluator=<its name>")
        row = dict(guid=new_guid(), generation_a=a, generation_b=b, winner=normalize_winner(winner, a, b),
                   source=source, evaluator=evaluator, ext_user_id=_text("ext_user_id", ext_user_id),
                   comment=_text("comment", comment), metadata=_metadata(metadata), created_at=utcnow())
        self._lab.store.insert_preference(row)
        return Preference.from_row(row)

    def list(self, generation: Any = None, limit: int | None = None, **filters: Any) -> list[FeedbackRecord]:
        """Feedback rows, oldest first. Filters: rating (any spelling), issue, source, evaluator,
        ext_user_id, since, until, and the generation's action, version, environment, experiment."""
        gen = _guid_of(generation, "generation") if generation is not None else None
        rows = self._lab.store.list_feedback(gen, limit=count_or_none(limit, "limit"), **self._filters(filters))
        return [FeedbackRecord.from_row(r) for r in rows]

    def to_pandas(self, generation: Any = None, limit: int | None = None, **filters: Any) -> "pd.DataFrame":
        """``list()`` as a DataFrame, one column per FeedbackRecord field."""
        import pandas as pd

        records = self.list(generation, limit=limit, **filters)
        return pd.DataFrame([r.to_dict() for r in records],
                            columns=[f.name for f in fields(FeedbackRecord)])

    def preferences(self, generation: Any = None, **filters: Any) -> list[Preference]:
        """Pairwise preferences, oldest first (those involving ``generation`` when given).
        Filters: winner, source, evaluator, ext_user_id, since, until."""
        gen = _guid_of(generation, "generation") if generation is not None else None
        allowed = {"winner", "source", "evaluator", "ext_user_id", "since", "until"}
        unknown = sorted(set(filters) - allowed)
        if unknown:
            raise ConfigError(f"unknown preference filter(s) {unknown}; known: {sorted(allowed)}")
        from .data import parse_time

        clean = dict(filters)
        for key in ("since", "until"):
            clean[key] = parse_time(clean.get(key), key)
        return [Preference.from_row(r) for r in self._lab.store.list_preferences(gen, **clean)]

    def ratings(self, generations: Iterable[Any]) -> dict[str, str]:
        """The latest human rating of each generation that has one: ``{guid: "Positive"|"Negative"}``."""
        if isinstance(generations, (str, bytes)) or not isinstance(generations, Iterable):
            raise InvalidInputError(f"generations must be a list of GUIDs or generations, not "
                                    f"{type(generations).__name__}")
        guids = [_guid_of(g, "generation") for g in generations]
        latest = self._lab.store.latest_human_feedback(guids)
        return {guid: v["rating"] for guid, v in latest.items() if v["rating"] is not None}

    def latest(self, generation: Any) -> dict[str, Any]:
        """The generation's current human verdict: latest rating, correction and issue (each None
        when never given)."""
        guid = _guid_of(generation, "generation")
        return self._lab.store.latest_human_feedback([guid]).get(
            guid, {"rating": None, "correction": None, "issue": None})

    def _filters(self, filters: Mapping[str, Any]) -> dict[str, Any]:
        from .data import parse_time

        allowed = {"rating", "issue", "source", "evaluator", "ext_user_id", "since", "until", "action",
                   "version", "environment", "experiment"}
        unknown = sorted(set(filters) - allowed)
        if unknown:
            raise ConfigError(f"unknown feedback filter(s) {unknown}; known: {sorted(allowed)}")
        clean = dict(filters)
        if clean.get("rating") is not None:
            clean["rating"] = normalize_rating(clean["rating"])
        if clean.get("issue") is not None:
            clean["issue"] = normalize_issue(clean["issue"], self.tags)
        if clean.get("source") is not None:
            clean["source"] = _source(clean["source"])
        for key in ("since", "until"):
            clean[key] = parse_time(clean.get(key), key)
        return clean

    # async twins: the same methods, awaited without blocking the caller's event loop
    alog = async_twin(log, writes=True)
    alog_many = async_twin(log_many, writes=True)
    aprefer = async_twin(prefer, writes=True)
    alist = async_twin(list)
    ato_pandas = async_twin(to_pandas)
    apreferences = async_twin(preferences)
    aratings = async_twin(ratings)
    alatest = async_twin(latest)


__all__ = ["Feedback", "FeedbackRecord", "Preference", "DEFAULT_ISSUE_TAGS", "normalize_rating",
           "normalize_issue", "feedback_row"]
