"""promptlab's offline simulator: an OpenAI-compatible Chat Completions server.

It is a SIMULATOR, not a language model: answers are deterministic text-processing rules over
the prompt (see ``models``), served with the OpenAI wire format, latency and injectable faults
(see ``app``). Use it in-process through the real openai client over ``httpx2.ASGITransport``,
or on localhost with ``promptlab sim serve --port 8000``.
"""

from __future__ import annotations

from promptlab.providers.sim.app import SimConfig, SimStats, create_app
from promptlab.providers.sim.models import MODEL_KINDS, SimOutput, respond, resolve_model

__all__ = ["create_app", "SimConfig", "SimStats", "MODEL_KINDS", "SimOutput", "respond", "resolve_model"]
