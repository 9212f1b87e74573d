"""``lab.flows``: define flows, read their conversations and turns, A/B two flows.

::

    flow = lab.flows.create("support", behaviors=[...], start="rephrase", targets=[...])
    flow.run_turn("conv-1", "Where is my order?")
    lab.flows.turns(flow="support")                     # DataFrame, one row per turn
    df = lab.flows.compare(flow, flow_v2, conversations, evaluators=[contains("refund")])

Flow definitions hold Python functions, so they live in the process (``create`` registers
them by name for ``get``); conversations, turns and every generation are in the store.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from ..checks import count_or_none
from ..errors import ConfigError, InvalidInputError, NotFoundError
from ..store import new_guid
from .behaviors import Behavior
from .engine import Flow, TurnResult
from .http import HttpTarget

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ..lab import Lab

TURN_COLUMNS = ["flow", "conversation", "turn", "message", "answer", "start_location", "end_location",
                "actions", "generations", "errors", "duration_ms", "guid", "created_at"]


def normalize_conversations(conversations: Iterable[Any]) -> list[dict[str, Any]]:
    """A dataset of conversations as dicts ``{"id", "messages": [...], "expected": [...] | None,
    **fields}`` (pure).

    Each item is a message (a one-turn conversation), a list of messages, or a dict with
    ``messages`` (or ``message``), and optionally ``id``, ``expected`` (one value for a
    one-turn conversation, or a list with one per turn) and other fields evaluators may read.
    """
    if isinstance(conversations, (str, Mapping)):
        raise InvalidInputError("conversations must be a list (of messages, message lists or dicts)")
    out, seen = [], set()
    for i, item in enumerate(conversations, start=1):
        if isinstance(item, str):
            item = {"messages": [item]}
        elif isinstance(item, (list, tuple)):
            item = {"messages": list(item)}
        elif not isinstance(item, Mapping):
            raise InvalidInputError(f"conversation must be a message, a list or a dict, got {item!r:.80}", row=i)
        item = dict(item)
        if "message" in item and "messages" not in item:
            item["messages"] = [item.pop("message")]
        messages = item.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, str) and m.strip()
                                                                   for m in messages):
            raise InvalidInputError("a conversation needs 'messages': a non-empty list of texts", row=i)
        cid = str(item.get("id", f"c{i}"))
        if cid in seen:
            raise InvalidInputError(f"duplicate conversation id {cid!r}", row=i)
        seen.add(cid)
        expected = item.get("expected")
        if expected is not None:
            if isinstance(expected, (list, tuple)):
                if len(expected) != len(messages):
                    raise InvalidInputError(f"conversation {cid!r}: 'expected' has {len(expected)} values "
                                            f"for {len(messages)} messages", row=i)
                expected = list(expected)
            else:
                if len(messages) != 1:
                    raise InvalidInputError(f"conversation {cid!r}: give 'expected' as a list, one per "
                                            "message", row=i)
                expected = [expected]
        item.update(id=cid, messages=messages, expected=expected)
        out.append(item)
    if not out:
        raise InvalidInputError("conversations is empty")
    return out


class Flows:
    """``lab.flows``: create flows bound to this lab and inspect what they did."""

    def __init__(self, lab: "Lab"):
        self._lab = lab
        self._flows: dict[str, Flow] = {}

    def create(self, name: str, behaviors: Sequence[Behavior], *, start: str | None = None,
               targets: Sequence[HttpTarget] | Mapping[str, HttpTarget] = (), max_steps: int = 50,
               description: str | None = None) -> Flow:
        """A Flow bound to this lab, registered under ``name`` (a new definition replaces an
        older one of the same name; stored conversations are kept).

        >>> flow = lab.flows.create("basic", [PromptAI("reply", prompts=[
        ...     Prompt("basic", "sim:echo", build_basic, handle_basic)])])
        """
        flow = Flow(name, behaviors, start=start, targets=targets, lab=self._lab, max_steps=max_steps,
                    description=description)
        self._flows[name] = flow
        return flow

    def add(self, flow: Flow) -> Flow:
        """Register an existing Flow definition (bound to this lab); returns the bound flow."""
        if not isinstance(flow, Flow):
            raise ConfigError(f"expected a Flow, got {type(flow).__name__}")
        bound = flow if flow.lab is self._lab else flow.bind(self._lab)
        self._flows[bound.name] = bound
        return bound

    def get(self, name: str) -> Flow:
        """A flow created in this process by name."""
        if isinstance(name, Flow):
            return name if name.lab is self._lab else name.bind(self._lab)
        if not isinstance(name, str):
            raise ConfigError(f"a flow is named by a string (or given as a Flow), not {type(name).__name__}")
        flow = self._flows.get(name)
        if flow is None:
            raise NotFoundError("flow", name, f"flows defined in this process: {sorted(self._flows)}"
                                if self._flows else "define one with lab.flows.create(name, behaviors)")
        return flow

    def list(self) -> list[Flow]:
        return [self._flows[n] for n in sorted(self._flows)]

    # reading ----------------------------------------------------------------------------------------

    def turns(self, flow: str | None = None, conversation: str | None = None,
              limit: int | None = None) -> "pd.DataFrame":
        """Logged turns, oldest first: message, answer, locations, actions, the guids of the
        LLM generations, handled errors, duration; ``guid`` is the turn's generation."""
        import pandas as pd

        rows = self._lab.store.list_flow_turns(flow, conversation, count_or_none(limit, "limit"))
        data = [{"flow": r["flow_name"], "conversation": r["conversation_id"], "turn": r["turn"],
                 "message": r["message"], "answer": r["answer"], "start_location": r["start_location"],
                 "end_location": r["end_location"], "actions": r["actions"], "generations": r["generations"],
                 "errors": r["errors"], "duration_ms": r["duration_ms"], "guid": r["guid"],
                 "created_at": r["created_at"]} for r in rows]
        return pd.DataFrame(data, columns=TURN_COLUMNS)

    def trace(self, guid: str) -> "pd.DataFrame":
        """The stored trace of a turn (by its guid) as a DataFrame."""
        import pandas as pd

        from .engine import TRACE_COLUMNS

        row = self._lab.store.get_flow_turn(guid)
        if row is None:
            raise NotFoundError("flow turn", guid)
        return pd.DataFrame([{c: e.get(c) for c in TRACE_COLUMNS} for e in row["trace"]], columns=TRACE_COLUMNS)

    def conversations(self, flow: str | None = None) -> "pd.DataFrame":
        """Persisted conversation state: flow, conversation, location, turns, session, fields."""
        import pandas as pd

        rows = self._lab.store.list_flow_conversations(flow)
        columns = ["flow", "conversation", "location", "turns", "session", "fields", "updated_at"]
        return pd.DataFrame([{"flow": r["flow_name"], "conversation": r["conversation_id"],
                              "location": r["location"], "turns": r["turns"], "session": r["session"],
                              "fields": r["fields"], "updated_at": r["updated_at"]} for r in rows],
                            columns=columns)

    # A/B ------------------------------------------------------------------------------------------

    def compare(self, flow_a: Flow | str, flow_b: Flow | str, conversations: Iterable[Any],
                evaluators: Sequence[Any] = (), *, concurrency: int = 4) -> "pd.DataFrame":
        """Run two flows over the same conversations and score each turn's answer.

        Every turn's answer is a generation row (model ``flow:<name>``) with ``run`` = this
        comparison's id and ``variant`` = ``"a"``/``"b"`` (columns and metadata), and so is every
        LLM call inside the flows, so ``lab.feedback`` and ``lab.data`` exports work on them.
        Evaluators are the experiment ones (``(output, row) -> score``, ``llm_judge(...)``); the
        row is ``{"message", "conversation", "turn", "expected", **conversation fields}``; their
        scores are also logged as evaluator feedback on the turn's generation.

        Returns one row per conversation turn: ``conversation``, ``turn``, ``message``,
        ``answer_a``/``answer_b``, ``guid_a``/``guid_b``, ``error_a``/``error_b`` and
        ``<evaluator>_a``/``<evaluator>_b`` (0..1). ``df.attrs["run"]`` is the comparison id.
        A turn that raises is recorded in ``error_*`` and the conversation goes on.
        """
        return self._lab.engine.blocking(self._compare(flow_a, flow_b, conversations, evaluators, concurrency))

    async def acompare(self, flow_a: Flow | str, flow_b: Flow | str, conversations: Iterable[Any],
                       evaluators: Sequence[Any] = (), *, concurrency: int = 4) -> "pd.DataFrame":
        """Async twin of ``compare``."""
        return await self._lab.engine.awaiting(self._compare(flow_a, flow_b, conversations, evaluators,
                                                             concurrency))

    async def _compare(self, flow_a, flow_b, conversations, evaluators, concurrency) -> "pd.DataFrame":
        import pandas as pd

        from ..experiments.evaluators import evaluator_name, run_evaluators, split_evaluators

        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigError(f"concurrency must be a positive integer, got {concurrency!r}")
        flows = {"a": self.get(flow_a), "b": self.get(flow_b)}
        dataset = normalize_conversations(conversations)
        plain, judges = split_evaluators(list(evaluators))
        names = [evaluator_name(e) for e in plain] + [j.name for j in judges]
        run_id = new_guid()
        limiter = asyncio.Semaphore(concurrency)

        async def judge_complete(action: str, variables: Mapping[str, Any]) -> str:
            generation = await self._lab.actions.aprompt(action, dict(variables))
            return generation.msg or ""

        async def score(answer: str, row: Mapping[str, Any]) -> dict[str, Any]:
            scores = run_evaluators(plain, answer, row) if plain else []
            for judge in judges:
                try:
                    scores.append(await judge.evaluate(answer, row, judge_complete))
                except Exception as exc:  # one failing judge must not lose the other scores
                    from ..experiments.evaluators import Score

                    scores.append(Score(judge.name, math.nan, None, f"error: {type(exc).__name__}: {exc}"))
            return {s.name: s for s in scores}

        async def play(conv: dict[str, Any], variant: str) -> list[dict[str, Any]]:
            flow = flows[variant]
            cid = f"{conv['id']}#{run_id[:8]}-{variant}"
            tags = {"run": run_id, "variant": variant, "source_conversation": conv["id"]}
            extra = {k: v for k, v in conv.items() if k not in ("id", "messages", "expected")}
            out = []
            async with limiter:
                for n, message in enumerate(conv["messages"], start=1):
                    row = {**extra, "message": message, "conversation": conv["id"], "turn": n,
                           "expected": conv["expected"][n - 1] if conv["expected"] else None}
                    try:
                        result: TurnResult = await flow.arun_turn(cid, message, tags=tags)
                    except Exception as exc:
                        out.append({"answer": None, "guid": None, "error": f"{type(exc).__name__}: {exc}",
                                    "scores": {}})
                        continue
                    scores = await score(result.answer, row) if names else {}
                    out.append({"answer": result.answer, "guid": result.guid, "error": None, "scores": scores})
            return out

        jobs = [(i, v) for i in range(len(dataset)) for v in ("a", "b")]
        results = await asyncio.gather(*(play(dataset[i], v) for i, v in jobs))
        by_job = dict(zip(jobs, results))

        feedback, rows = [], []
        for i, conv in enumerate(dataset):
            for n, message in enumerate(conv["messages"], start=1):
                row: dict[str, Any] = {"conversation": conv["id"], "turn": n, "message": message}
                for v in ("a", "b"):
                    turn = by_job[(i, v)][n - 1]
                    row[f"answer_{v}"], row[f"guid_{v}"] = turn["answer"], turn["guid"]
                    row[f"error_{v}"] = turn["error"]
                for name in names:
                    for v in ("a", "b"):
                        turn = by_job[(i, v)][n - 1]
                        s = turn["scores"].get(name)
                        row[f"{name}_{v}"] = s.value if s is not None else math.nan
                        if s is not None and not math.isnan(s.value):
                            feedback.append({"guid": turn["guid"], "score": s.value, "evaluator": name,
                                             "source": "evaluator", "comment": s.reason,
                                             "metadata": {"run": run_id, "variant": v}})
                rows.append(row)
        if feedback:
            await asyncio.to_thread(self._lab.feedback.log_many, feedback)
        columns = ["conversation", "turn", "message", "answer_a", "answer_b"]
        columns += [f"{n}_{v}" for n in names for v in ("a", "b")]
        columns += ["guid_a", "guid_b", "error_a", "error_b"]
        df = pd.DataFrame(rows, columns=columns)
        df.attrs.update(run=run_id, flow_a=flows["a"].name, flow_b=flows["b"].name, evaluators=names)
        return df


__all__ = ["Flows", "normalize_conversations"]
