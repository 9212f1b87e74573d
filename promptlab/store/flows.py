"""Assistant flows: conversations and turns (issue 8).

Tables are defined here on the shared ``schema.metadata``; ``TABLES`` lists them for the
migration that creates them. ``FlowSQL`` holds this area's SQL and is mixed into ``Store``,
so it can use ``self.read()``, ``self.write()``, ``self._upsert()``, ``self._insert_for()``
and ``self.dialect``.

``flow_conversations`` holds what persists between turns of one conversation with one flow
(keyed by flow name + conversation id): where the next turn starts, session and conversation
fields, the transcript and the number of turns. ``flow_turns`` logs every turn (actions,
trace, the LLM generations it made). A turn is saved with its answer's generation row in one
transaction, and only if no other turn of the conversation was saved since it started.
"""

from __future__ import annotations

from typing import Any, Mapping

import sqlalchemy as sa

from ..errors import ConfigError, StoreError
from . import schema as t
from ._util import as_dict, is_conflict, utcnow

flow_conversations = sa.Table(
    "flow_conversations",
    t.metadata,
    sa.Column("flow_name", t.SafeString(100), primary_key=True),
    sa.Column("conversation_id", t.SafeString(200), primary_key=True),
    sa.Column("location", t.SafeString(100)),  # the behavior the next turn starts at
    sa.Column("session", sa.JSON, nullable=False),  # bot session fields
    sa.Column("fields", sa.JSON, nullable=False),  # conversation fields
    sa.Column("messages", sa.JSON, nullable=False),  # transcript: [{"author", "text", "turn"}]
    sa.Column("turns", sa.Integer, nullable=False),
    sa.Column("created_at", t.Time, nullable=False),
    sa.Column("updated_at", t.Time, nullable=False),
)

flow_turns = sa.Table(
    "flow_turns",
    t.metadata,
    sa.Column("guid", t.GUID, primary_key=True),  # also the guid of the turn's generation row
    sa.Column("flow_name", t.SafeString(100), nullable=False),
    sa.Column("conversation_id", t.SafeString(200), nullable=False),
    sa.Column("turn", sa.Integer, nullable=False),
    sa.Column("message", t.SafeText, nullable=False),
    sa.Column("answer", t.SafeText),
    sa.Column("actions", sa.JSON, nullable=False),
    sa.Column("start_location", t.SafeString(100)),
    sa.Column("end_location", t.SafeString(100)),
    sa.Column("trace", sa.JSON, nullable=False),
    sa.Column("generations", sa.JSON, nullable=False),  # guids of the turn's LLM calls
    sa.Column("errors", sa.JSON),  # errors handled by on_error / on_fail handlers
    sa.Column("duration_ms", sa.Float),
    sa.Column("created_at", t.Time, nullable=False),
    # Not unique per (flow, conversation, turn): a reset conversation numbers its turns afresh.
    sa.Index("ix_flow_turns_conversation", "flow_name", "conversation_id", "turn"),
)

TABLES: list[sa.Table] = [flow_conversations, flow_turns]


class FlowSQL:
    """SQL for ``lab.flows``."""

    def get_flow_conversation(self, flow: str, conversation: str) -> dict[str, Any] | None:
        c = flow_conversations.c
        with self.read() as conn:
            return as_dict(conn.execute(sa.select(flow_conversations).where(
                c.flow_name == flow, c.conversation_id == conversation)).first())

    def save_flow_turn(self, flow: str, conversation: str, previous_turns: int, state: Mapping[str, Any],
                       turn: Mapping[str, Any], generation: Mapping[str, Any]) -> None:
        """Save a finished turn: the conversation's new state (only if it still has
        ``previous_turns`` turns), the turn row and its generation row, atomically."""
        c = flow_conversations.c
        now = utcnow()
        values = dict(location=state["location"], session=dict(state["session"]),
                      fields=dict(state["fields"]), messages=list(state["messages"]),
                      turns=state["turns"], updated_at=now)
        conflict = StoreError(f"conversation {conversation!r} of flow {flow!r} got another turn while "
                              f"this one ran (it had {previous_turns}); run one turn at a time per "
                              "conversation")
        try:
            with self.write() as conn:
                if previous_turns == 0:
                    conn.execute(flow_conversations.insert().values(
                        flow_name=flow, conversation_id=conversation, created_at=now, **values))
                else:
                    updated = conn.execute(flow_conversations.update().where(
                        c.flow_name == flow, c.conversation_id == conversation,
                        c.turns == previous_turns).values(**values))
                    if updated.rowcount != 1:
                        raise conflict
                conn.execute(flow_turns.insert().values(**turn))
                conn.execute(t.generations.insert().values(**generation))
        except ConfigError as exc:
            if is_conflict(exc):
                raise conflict from None
            raise

    def delete_flow_conversation(self, flow: str, conversation: str) -> bool:
        c = flow_conversations.c
        with self.write() as conn:
            deleted = conn.execute(flow_conversations.delete().where(
                c.flow_name == flow, c.conversation_id == conversation))
            return deleted.rowcount > 0

    def list_flow_conversations(self, flow: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(flow_conversations).order_by(flow_conversations.c.updated_at)
        if flow is not None:
            query = query.where(flow_conversations.c.flow_name == flow)
        with self.read() as conn:
            return [as_dict(r) for r in conn.execute(query)]

    def get_flow_turn(self, guid: str) -> dict[str, Any] | None:
        with self.read() as conn:
            return as_dict(conn.execute(sa.select(flow_turns).where(flow_turns.c.guid == guid)).first())

    def list_flow_turns(self, flow: str | None = None, conversation: str | None = None,
                        limit: int | None = None) -> list[dict[str, Any]]:
        c = flow_turns.c
        query = sa.select(flow_turns).order_by(c.created_at, c.turn)
        if flow is not None:
            query = query.where(c.flow_name == flow)
        if conversation is not None:
            query = query.where(c.conversation_id == conversation)
        if limit is not None:
            query = query.limit(limit)
        with self.read() as conn:
            return [as_dict(r) for r in conn.execute(query)]
