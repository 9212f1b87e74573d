"""Assistant flows: the second seed's behaviors around a shared context, one customer turn at a time.

::

    import promptlab as pl
    from promptlab.flows import Flow, PromptAI, Prompt, Search, VerifyClaim, Rule, send_message

    def build_basic(llm, context):
        content = context['derivedData']['lastCustomerMessage']
        return {"request": {"messages": [{"role": "user", "content": content}]}}

    def handle_basic(llm, context, prompt, completion):
        return {"actions": [{"action": "sendMessage", "message": {"text": completion}}]}

    flow = lab.flows.create("basic", [PromptAI("reply", prompts=[
        Prompt("basic", "sim:extractive", build_basic, handle_basic)])])
    result = flow.run_turn("conversation-1", "How do refunds work?")
    result.answer, result.actions, result.trace.to_pandas()

Behaviors: :class:`ExecuteLogic`, :class:`Search`, :class:`PromptAI` (with :class:`Prompt`),
:class:`CallAPI` (with :class:`HttpTarget`), :class:`CallFunction`, :class:`VerifyClaim`
(verifiers in :mod:`promptlab.flows.verify`). Handlers take ``Logic``: a behavior name, action
dicts, :class:`Rule` objects or functions (see :mod:`promptlab.flows.logic`). The run model
and the context are described in :mod:`promptlab.flows.engine`. ``quiq.ctx`` (or ``ctx``)
offers the seed's helpers to functions: ``quiq.ctx.format_search_results(resource, template)``.
"""

from __future__ import annotations

from . import ctx, quiq
from .behaviors import (
    Behavior,
    CallAPI,
    CallFunction,
    ExecuteLogic,
    Prompt,
    PromptAI,
    Search,
    SearchSpec,
    VerifyClaim,
)
from .engine import Flow, Trace, TurnResult
from .http import HttpTarget
from .logic import Rule, change_location, send_message, set_field, start_typing
from .resource import Flows
from .verify import (
    EmbeddingVerifier,
    LexicalOverlapVerifier,
    LLMJudgeVerifier,
    evidence_scores,
)

__all__ = [
    "Flow",
    "Flows",
    "TurnResult",
    "Trace",
    "Behavior",
    "ExecuteLogic",
    "Search",
    "SearchSpec",
    "PromptAI",
    "Prompt",
    "CallAPI",
    "HttpTarget",
    "CallFunction",
    "VerifyClaim",
    "Rule",
    "send_message",
    "set_field",
    "change_location",
    "start_typing",
    "LexicalOverlapVerifier",
    "LLMJudgeVerifier",
    "EmbeddingVerifier",
    "evidence_scores",
    "ctx",
    "quiq",
]
