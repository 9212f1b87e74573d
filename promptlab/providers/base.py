"""The provider seam: the only place promptlab talks to a model.

A provider turns a ``ChatRequest`` into a ``Completion`` (``complete``) or into a stream of text
deltas ending with the whole ``Completion`` (``stream``). Everything above this seam works with
these plain values and never sees an SDK object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Protocol, Union, runtime_checkable


@dataclass(frozen=True)
class ChatRequest:
    """One chat-completion request, provider-neutral.

    ``model`` is the provider's own model name (``gpt-4o-mini``, ``extractive``), without the
    ``provider:`` prefix. ``messages`` use the OpenAI chat shape; content may be a string or a list
    of content parts (``{"type": "text", ...}``, ``{"type": "image_url", ...}``).
    ``extra_body`` is passed through to the server (the simulator reads ``{"sim": {...}}``).
    """

    model: str
    messages: list[dict[str, Any]]
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] | None = None
    extra_body: dict[str, Any] | None = None

    def params(self) -> dict[str, Any]:
        """Generation parameters that were set, for logging and cache keys."""
        values = {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "seed": self.seed,
            "stop": self.stop,
        }
        return {k: v for k, v in values.items() if v is not None}


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True)
class Completion:
    """A finished model answer with what it cost in time and tokens."""

    text: str
    model: str
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None  # time to first token; None when not streamed


StreamItem = Union[str, Completion]


@runtime_checkable
class Provider(Protocol):
    """What every model provider implements.

    ``stream`` yields ``str`` deltas as they arrive and then exactly one ``Completion`` whose
    ``text`` equals the joined deltas. Both methods raise ``promptlab.errors.ProviderError``
    subclasses, never SDK exceptions.
    """

    name: str

    async def complete(self, request: ChatRequest) -> Completion: ...

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamItem]: ...

    async def aclose(self) -> None: ...
