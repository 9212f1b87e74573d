"""Request and response bodies of the gateway's HTTP API (pydantic models -> the OpenAPI document).

Requests follow the seed's "Run Action" attributes (``action``, ``input``, ``streaming``,
``async_mode``, ``cache``, ``session``, ``metadata_filter``, ``experiment``, ``messages`` with
``files``) and accept the SDK's ``extUserId`` spelling next to ``ext_user_id``. Unknown fields
are rejected (422) so a misspelt option is not silently ignored.

Every request is plain JSON that the store keeps exactly: no lone surrogates (invalid Unicode),
no NaN/Infinity, nesting at most ``MAX_DEPTH`` deep. NUL characters are fine (the store's value
boundary keeps them, on SQLite and PostgreSQL alike). Files are taken only as http(s) URLs, image data
URLs or base64 image data, never as server-side paths.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..actions import request_input
from ..providers.content import data_url, decode_base64_image

MAX_DEPTH = 32
MAX_FILES = 16

Str100 = Annotated[str, Field(min_length=1, max_length=100)]
Name200 = Annotated[str, Field(min_length=1, max_length=200)]
UserId = Annotated[str, Field(min_length=1, max_length=300)]
Variables = Annotated[dict[str, Any], Field(description="Template variables by name.")]


def check_plain_json(value: Any, path: str = "body") -> None:
    """Raise ValueError naming the place of anything a store cannot hold (iterative: no recursion)."""
    stack = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"{where}: nested more than {MAX_DEPTH} levels deep")
        if isinstance(item, str):
            _check_text(item, where)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError(f"{where}: {item!r} is not a finite number")
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str):
                    _check_text(key, f"{where} key {key[:40]!r}")
                stack.append((child, f"{where}.{key}", depth + 1))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]", depth + 1) for i, child in enumerate(item))


def _check_text(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{where}: contains a lone surrogate (invalid Unicode)") from None


def file_part(source: str) -> dict[str, Any]:
    """An ``image_url`` content part for a request file: http(s) URL, ``data:image/...`` URL or
    base64 image data. Anything else (notably a server path) is refused with ValueError."""
    text = source.strip()
    lowered = text[:11].lower()
    if lowered.startswith(("http://", "https://")) or lowered.startswith("data:image/"):
        return {"type": "image_url", "image_url": {"url": text}}
    decoded = decode_base64_image(text)
    if decoded is not None:
        return {"type": "image_url", "image_url": {"url": data_url(*decoded)}}
    raise ValueError(f"file {source[:60]!r} is not an http(s) URL, a data:image/ URL or base64 PNG/JPEG/GIF/WebP data")


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _plain_json(cls, data: Any) -> Any:
        check_plain_json(data)
        return data


class _WithUser(_Request):
    ext_user_id: UserId | None = Field(None, description="Your own id of the end user (organisation, "
                                                          "username, email, ...).")
    extUserId: UserId | None = Field(None, description="The SDK's spelling of ext_user_id.")

    @model_validator(mode="after")
    def _one_user_id(self):
        if self.ext_user_id and self.extUserId and self.ext_user_id != self.extUserId:
            raise ValueError("ext_user_id and extUserId disagree; send one of them")
        return self

    @property
    def user(self) -> str | None:
        return self.ext_user_id or self.extUserId


class TextPart(_Request):
    type: Literal["text"]
    text: str


class ImageUrl(_Request):
    url: str = Field(min_length=1, description="An http(s) URL or a data:image/ URL.")
    detail: Literal["low", "high", "auto"] | None = None

    @field_validator("url")
    @classmethod
    def _image_url(cls, value):
        if not value.strip()[:11].lower().startswith(("http://", "https://", "data:image/")):
            raise ValueError(f"{value[:60]!r} is not an http(s) URL or a data:image/ URL")
        return value.strip()


class ImagePart(_Request):
    type: Literal["image_url"]
    image_url: ImageUrl


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class Message(_Request):
    """A chat message sent after the action's rendered prompt; ``files`` attach images to it."""

    role: Literal["system", "user", "assistant"]
    content: str | list[ContentPart] = Field("", description="Text, or OpenAI content parts (text, image_url).")
    files: list[Annotated[str, Field(min_length=1)]] | None = Field(
        None, max_length=MAX_FILES, description="Images: http(s) URLs, data:image/ URLs or base64 image data.")

    @field_validator("content", mode="before")
    @classmethod
    def _text_or_parts(cls, value):
        if not isinstance(value, (str, list)):
            raise ValueError("must be a string or a list of content parts")
        return value

    @field_validator("files")
    @classmethod
    def _files_are_images(cls, value):
        for item in value or []:
            file_part(item)
        return value

    def to_lab(self) -> dict[str, Any]:
        content = self.content if isinstance(self.content, str) else \
            [part.model_dump(exclude_none=True) for part in self.content]
        message: dict[str, Any] = {"role": self.role, "content": content}
        if self.files:
            message["files"] = [file_part(f) for f in self.files]
        return message


class _Inputs(_WithUser):
    input: str | Variables | None = Field(
        None, description="An input string (actions with one or no variable) or an object of variables.")
    session: Str100 | None = Field(None, description="A session GUID (POST /v1/sessions) for memory.")
    metadata_filter: dict[str, Any] | None = Field(
        None, description="Filter on the bound context's document metadata.")
    messages: list[Message] | None = Field(None, max_length=500)

    @field_validator("input", mode="before")
    @classmethod
    def _string_or_object(cls, value):
        if value is not None and not isinstance(value, (str, dict)):
            raise ValueError(f"must be a string or an object of variables, not {type(value).__name__}")
        return value

    def lab_input(self) -> Any:
        # The seed's multi-modal example sends "input": "" alongside messages: no input (the
        # Python API's rule, one function for both).
        return request_input(self.input, messages=self.messages)

    def lab_messages(self) -> list[dict[str, Any]] | None:
        return [m.to_lab() for m in self.messages] if self.messages else None


class _RunOptions(_Inputs):
    streaming: bool = Field(False, description="Answer as server-sent events (text/event-stream).")
    async_mode: bool = Field(False, description="Answer at once (202) with the GUID; fetch GET /v1/data/{guid}.")
    cache: bool = Field(False, description="Use a cached response if available.")

    @model_validator(mode="after")
    def _one_mode(self):
        if self.streaming and self.async_mode:
            raise ValueError("streaming and async_mode cannot both be true")
        return self


class RunActionRequest(_RunOptions):
    """The seed's "Run Action" request."""

    action: Name200 | None = Field(None, description="Action GUID or name (required unless experiment is given).")
    experiment: Str100 | None = Field(
        None, description="Run in this experiment: the action must be one of its variants; without "
                          "an action the experiment assigns the variant.")
    environment: Str100 | None = Field(None, description="Production (default), Staging, Preview or custom.")
    version: int | None = Field(None, ge=1, le=2**31 - 1, description="Run this version instead of a deployment.")

    @model_validator(mode="after")
    def _action_or_experiment(self):
        if self.action is None and self.experiment is None:
            raise ValueError("'action' is required (an action GUID or name), unless 'experiment' is given")
        if self.experiment is not None and (self.environment is not None or self.version is not None):
            raise ValueError("environment/version cannot be combined with experiment: each variant has its own")
        if self.environment is not None and self.version is not None:
            raise ValueError("give environment or version, not both")
        return self


class ExperimentPromptRequest(_RunOptions):
    """Run one A/B generation: the experiment picks the variant (sticky by ext_user_id, else session)."""


class ActionPromptRequest(_Inputs):
    """Ask for the fully formatted prompt an action (or an experiment's variant) would send."""

    action: Name200 | None = None
    experiment: Str100 | None = None
    environment: Str100 | None = None
    version: int | None = Field(None, ge=1, le=2**31 - 1)

    @model_validator(mode="after")
    def _action_or_experiment(self):
        if (self.action is None) == (self.experiment is None):
            raise ValueError("give exactly one of 'action' and 'experiment'")
        if self.experiment is not None and (self.environment is not None or self.version is not None):
            raise ValueError("environment/version cannot be combined with experiment: each variant has its own")
        if self.environment is not None and self.version is not None:
            raise ValueError("give environment or version, not both")
        return self


Rating = Literal[1, 2, "1", "2", "Positive", "Negative", "positive", "negative"]


class FeedbackRequest(_WithUser):
    """Feedback on a generation: the SDK's fields (``rating``, ``correction``, ``issue``), or the typed
    form ``{"type": "rating", "value": 2}``. Ratings: 2 or "Positive", 1 or "Negative"."""

    guid: Str100 | None = Field(None, description="The generation (data point) GUID.")
    data_guid: Str100 | None = Field(None, description="Same as guid.")
    rating: Rating | None = None
    correction: str | None = Field(None, min_length=1, max_length=50_000)
    issue: Str100 | None = Field(None, description="An issue tag such as 'Vague' or 'Incorrect'.")
    comment: str | None = Field(None, max_length=50_000)
    metadata: dict[str, Any] | None = None
    type: Literal["rating", "correction", "issue"] | None = None
    value: int | str | None = None

    @field_validator("rating", "value", mode="before")
    @classmethod
    def _no_booleans(cls, value):
        # true == 1 in Python, and 1 is Negative: refuse the ambiguity instead of guessing.
        if isinstance(value, bool):
            raise ValueError("a rating is 1 (negative), 2 (positive), 'Negative' or 'Positive', not a boolean")
        return value

    @model_validator(mode="after")
    def _typed_form(self):
        if self.guid and self.data_guid and self.guid != self.data_guid:
            raise ValueError("guid and data_guid disagree; send one of them")
        if (self.type is None) != (self.value is None):
            raise ValueError("'type' and 'value' go together")
        if self.type is not None:
            if getattr(self, self.type) is not None:
                raise ValueError(f"{self.type!r} was given twice (as a field and as type/value)")
            if self.type == "rating":
                if self.value not in (1, 2, "1", "2", "Positive", "Negative", "positive", "negative"):
                    raise ValueError(f"a rating value is 1 (negative) or 2 (positive), not {self.value!r}")
            elif not isinstance(self.value, str) or not self.value.strip() or len(self.value) > 50_000:
                raise ValueError(f"a {self.type} value must be a non-empty string")
        return self

    @property
    def target(self) -> str | None:
        return self.guid or self.data_guid

    def fields(self) -> dict[str, Any]:
        """Keyword arguments for ``lab.feedback.log`` (without the GUID)."""
        out = dict(rating=self.rating, correction=self.correction, issue=self.issue, comment=self.comment,
                   ext_user_id=self.user, metadata=self.metadata)
        if self.type is not None:
            out[self.type] = self.value
        return out


class SessionRequest(_WithUser):
    """The seed's "Create Session"."""

    action: Name200 | None = Field(None, description="Action GUID or name the session belongs to.")
    name: str | None = Field(None, max_length=10_000)
    memory_window: int | None = Field(None, ge=0, le=100_000,
                                      description="Earlier messages sent with each turn (server default when null).")


# -- responses -------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    type: str = Field(description="The promptlab error class, or an HTTP-level kind.")
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class ActionResponse(BaseModel):
    """The seed's response (``msg``, ``feedback_url``, ``streaming``) plus what promptlab logged."""

    msg: str | None = Field(description="The generated text (null while an async generation is pending).")
    feedback_url: str = Field(description="GET: this data point; POST: feedback on it.")
    streaming: bool
    guid: str
    status: Literal["pending", "done", "error"]
    cached: bool
    usage: dict[str, int] = Field(description="prompt_tokens, completion_tokens, total_tokens (empty if unknown).")
    latency_ms: float | None = None
    ttft_ms: float | None = None
    cost_usd: float | None = None
    model: str | None = None
    action: str | None = None
    action_guid: str | None = None
    action_version: int | None = None
    environment: str | None = None
    session: str | None = None
    ext_user_id: str | None = None
    experiment: str | None = None
    variant: str | None = None
    finish_reason: str | None = None
    error: str | None = None
    error_type: str | None = None
    created_at: str | None = None
    finished_at: str | None = None


class FeedbackResponse(BaseModel):
    guid: str
    generation: str
    rating: Literal["Positive", "Negative"] | None = None
    correction: str | None = None
    issue: str | None = None
    comment: str | None = None
    score: float | None = None
    evaluator: str | None = None
    source: str
    ext_user_id: str | None = None
    metadata: dict[str, Any] | None = None
    created_at: str | None = None


class DataPointResponse(ActionResponse):
    """A generation as logged, with its feedback."""

    input: Any = None
    messages: list[dict[str, Any]] | None = None
    params: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    run: str | None = None
    repeat: int | None = None
    feedback: list[FeedbackResponse]


class SessionResponse(BaseModel):
    guid: str
    action: str | None = Field(None, description="The action's GUID.")
    ext_user_id: str | None = None
    name: str | None = None
    memory_window: int | None = None
    created_at: str | None = None
    messages: list[dict[str, Any]]


class PromptResponse(BaseModel):
    """The fully formatted messages a run would send (no model is called)."""

    messages: list[dict[str, Any]]
    action: str
    action_guid: str
    action_version: int
    experiment: str | None = None
    variant: str | None = None


class HealthResponse(BaseModel):
    status: Literal["ok"]
    version: str
