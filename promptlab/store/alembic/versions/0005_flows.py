"""assistant flows: conversations and turns

Frozen: this is the schema as it was when this migration was written. Never edit a shipped
migration; add a new one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('flow_conversations',
    sa.Column('flow_name', sa.String(length=100), nullable=False),
    sa.Column('conversation_id', sa.String(length=200), nullable=False),
    sa.Column('location', sa.String(length=100), nullable=True),
    sa.Column('session', sa.JSON(), nullable=False),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('messages', sa.JSON(), nullable=False),
    sa.Column('turns', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('flow_name', 'conversation_id')
    )
    op.create_table('flow_turns',
    sa.Column('guid', sa.String(length=36), nullable=False),
    sa.Column('flow_name', sa.String(length=100), nullable=False),
    sa.Column('conversation_id', sa.String(length=200), nullable=False),
    sa.Column('turn', sa.Integer(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('answer', sa.Text(), nullable=True),
    sa.Column('actions', sa.JSON(), nullable=False),
    sa.Column('start_location', sa.String(length=100), nullable=True),
    sa.Column('end_location', sa.String(length=100), nullable=True),
    sa.Column('trace', sa.JSON(), nullable=False),
    sa.Column('generations', sa.JSON(), nullable=False),
    sa.Column('errors', sa.JSON(), nullable=True),
    sa.Column('duration_ms', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('guid')
    )
    op.create_index('ix_flow_turns_conversation', 'flow_turns', ['flow_name', 'conversation_id', 'turn'], unique=False)
