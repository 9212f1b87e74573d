"""The tables, as SQLAlchemy Core objects, for queries. The Alembic revisions in ``alembic/versions``
create and change them (a test checks the two agree on both databases).

Every row has a GUID (uuid4 text) so rows can be exported, merged and referenced from outside
(feedback URLs, the gateway). Times are UTC. JSON columns hold plain dicts/lists.
"""

from __future__ import annotations

import sqlalchemy as sa

from .values import SafeString, SafeText

metadata = sa.MetaData()

GUID = sa.String(36)
Time = sa.DateTime(timezone=True)

actions = sa.Table(
    "actions",
    metadata,
    sa.Column("guid", GUID, primary_key=True),
    sa.Column("name", SafeString(200), nullable=False, unique=True),
    sa.Column("description", SafeText),
    sa.Column("created_at", Time, nullable=False),
)

action_versions = sa.Table(
    "action_versions",
    metadata,
    sa.Column("guid", GUID, primary_key=True),
    sa.Column("action_guid", GUID, sa.ForeignKey("actions.guid"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("system", SafeText),
    sa.Column("prompt", SafeText),
    sa.Column("messages", sa.JSON),  # extra template messages between system and prompt
    sa.Column("model", SafeString(300), nullable=False),
    sa.Column("params", sa.JSON, nullable=False),  # temperature, max_tokens, top_p, seed, stop
    sa.Column("context", sa.JSON),  # retrieval binding: {"name", "top_k", "variable"}
    sa.Column("note", SafeText),
    sa.Column("created_at", Time, nullable=False),
    sa.UniqueConstraint("action_guid", "version", name="uq_action_version"),
)

deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("action_guid", GUID, sa.ForeignKey("actions.guid"), primary_key=True),
    sa.Column("environment", SafeString(100), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("deployed_at", Time, nullable=False),
)

generations = sa.Table(
    "generations",
    metadata,
    sa.Column("guid", GUID, primary_key=True),
    sa.Column("status", SafeString(16), nullable=False),  # pending | done | error
    sa.Column("action_guid", GUID, index=True),
    sa.Column("action_name", SafeString(200)),
    sa.Column("action_version", sa.Integer),
    sa.Column("environment", SafeString(100)),
    sa.Column("input", sa.JSON),
    sa.Column("messages", sa.JSON),  # the fully rendered request messages
    sa.Column("output", SafeText),
    sa.Column("model", SafeString(300)),
    sa.Column("params", sa.JSON),
    sa.Column("prompt_tokens", sa.Integer),
    sa.Column("completion_tokens", sa.Integer),
    sa.Column("cost_usd", sa.Float),
    sa.Column("latency_ms", sa.Float),
    sa.Column("ttft_ms", sa.Float),
    sa.Column("finish_reason", SafeString(32)),
    sa.Column("cached", sa.Boolean, nullable=False, default=False),
    sa.Column("streaming", sa.Boolean, nullable=False, default=False),
    sa.Column("session_guid", GUID, index=True),
    sa.Column("ext_user_id", SafeString(300), index=True),
    sa.Column("error_type", SafeString(100)),
    sa.Column("error", SafeText),
    sa.Column("metadata", sa.JSON),  # retrieval hits, metadata_filter, files, ...
    sa.Column("experiment_guid", GUID, index=True),
    sa.Column("variant", SafeString(100)),
    sa.Column("run_guid", GUID, index=True),
    sa.Column("repeat", sa.Integer),
    sa.Column("created_at", Time, nullable=False, index=True),
    sa.Column("finished_at", Time),
)

# Finding the pending generations quickly, when a process recovers the ones left behind.
sa.Index("ix_generations_status", generations.c.status)

# Who is running a pending generation (a streamed or async-mode call), so that one left pending by
# a killed process can be found and marked failed instead of staying pending forever (migration 8).
generation_owners = sa.Table(
    "generation_owners",
    metadata,
    sa.Column("generation_guid", GUID, primary_key=True),
    sa.Column("owner", SafeString(200), nullable=False),
    sa.Column("started_at", Time, nullable=False),
)

cache_entries = sa.Table(
    "cache_entries",
    metadata,
    sa.Column("key", SafeString(64), primary_key=True),
    sa.Column("output", SafeText, nullable=False),
    sa.Column("model", SafeString(300)),
    sa.Column("finish_reason", SafeString(32)),
    sa.Column("prompt_tokens", sa.Integer),
    sa.Column("completion_tokens", sa.Integer),
    sa.Column("created_at", Time, nullable=False),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("guid", GUID, primary_key=True),
    sa.Column("action_guid", GUID),
    sa.Column("ext_user_id", SafeString(300), index=True),
    sa.Column("name", SafeText),
    sa.Column("memory_window", sa.Integer),
    sa.Column("created_at", Time, nullable=False),
)

session_messages = sa.Table(
    "session_messages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("session_guid", GUID, sa.ForeignKey("sessions.guid"), nullable=False, index=True),
    sa.Column("role", SafeString(20), nullable=False),
    sa.Column("content", sa.JSON, nullable=False),
    sa.Column("generation_guid", GUID),
    sa.Column("created_at", Time, nullable=False),
)
