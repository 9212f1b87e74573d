"""actions, versions, deployments, generations, cache, sessions

Frozen: this is the schema as it was when this migration was written. Never edit a shipped
migration; add a new one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('actions',
    sa.Column('guid', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('guid'),
    sa.UniqueConstraint('name')
    )
    op.create_table('cache_entries',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('output', sa.Text(), nullable=False),
    sa.Column('model', sa.String(length=300), nullable=True),
    sa.Column('finish_reason', sa.String(length=32), nullable=True),
    sa.Column('prompt_tokens', sa.Integer(), nullable=True),
    sa.Column('completion_tokens', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('generations',
    sa.Column('guid', sa.String(length=36), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('action_guid', sa.String(length=36), nullable=True),
    sa.Column('action_name', sa.String(length=200), nullable=True),
    sa.Column('action_version', sa.Integer(), nullable=True),
    sa.Column('environment', sa.String(length=100), nullable=True),
    sa.Column('input', sa.JSON(), nullable=True),
    sa.Column('messages', sa.JSON(), nullable=True),
    sa.Column('output', sa.Text(), nullable=True),
    sa.Column('model', sa.String(length=300), nullable=True),
    sa.Column('params', sa.JSON(), nullable=True),
    sa.Column('prompt_tokens', sa.Integer(), nullable=True),
    sa.Column('completion_tokens', sa.Integer(), nullable=True),
    sa.Column('cost_usd', sa.Float(), nullable=True),
    sa.Column('latency_ms', sa.Float(), nullable=True),
    sa.Column('ttft_ms', sa.Float(), nullable=True),
    sa.Column('finish_reason', sa.String(length=32), nullable=True),
    sa.Column('cached', sa.Boolean(), nullable=False),
    sa.Column('streaming', sa.Boolean(), nullable=False),
    sa.Column('session_guid', sa.String(length=36), nullable=True),
    sa.Column('ext_user_id', sa.String(length=300), nullable=True),
    sa.Column('error_type', sa.String(length=100), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('metadata', sa.JSON(), nullable=True),
    sa.Column('experiment_guid', sa.String(length=36), nullable=True),
    sa.Column('variant', sa.String(length=100), nullable=True),
    sa.Column('run_guid', sa.String(length=36), nullable=True),
    sa.Column('repeat', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('guid')
    )
    op.create_table('sessions',
    sa.Column('guid', sa.String(length=36), nullable=False),
    sa.Column('action_guid', sa.String(length=36), nullable=True),
    sa.Column('ext_user_id', sa.String(length=300), nullable=True),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('memory_window', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('guid')
    )
    op.create_table('action_versions',
    sa.Column('guid', sa.String(length=36), nullable=False),
    sa.Column('action_guid', sa.String(length=36), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('system', sa.Text(), nullable=True),
    sa.Column('prompt', sa.Text(), nullable=True),
    sa.Column('messages', sa.JSON(), nullable=True),
    sa.Column('model', sa.String(length=300), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('context', sa.JSON(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['action_guid'], ['actions.guid'], ),
    sa.PrimaryKeyConstraint('guid'),
    sa.UniqueConstraint('action_guid', 'version', name='uq_action_version')
    )
    op.create_table('deployments',
    sa.Column('action_guid', sa.String(length=36), nullable=False),
    sa.Column('environment', sa.String(length=100), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('deployed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['action_guid'], ['actions.guid'], ),
    sa.PrimaryKeyConstraint('action_guid', 'environment')
    )
    op.create_table('session_messages',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('session_guid', sa.String(length=36), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('content', sa.JSON(), nullable=False),
    sa.Column('generation_guid', sa.String(length=36), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['session_guid'], ['sessions.guid'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_generations_action_guid'), 'generations', ['action_guid'], unique=False)
    op.create_index(op.f('ix_generations_created_at'), 'generations', ['created_at'], unique=False)
    op.create_index(op.f('ix_generations_experiment_guid'), 'generations', ['experiment_guid'], unique=False)
    op.create_index(op.f('ix_generations_ext_user_id'), 'generations', ['ext_user_id'], unique=False)
    op.create_index(op.f('ix_generations_run_guid'), 'generations', ['run_guid'], unique=False)
    op.create_index(op.f('ix_generations_session_guid'), 'generations', ['session_guid'], unique=False)
    op.create_index(op.f('ix_sessions_ext_user_id'), 'sessions', ['ext_user_id'], unique=False)
    op.create_index(op.f('ix_session_messages_session_guid'), 'session_messages', ['session_guid'], unique=False)
