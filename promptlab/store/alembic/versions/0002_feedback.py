"""feedback and pairwise preferences

Frozen: this is the schema as it was when this migration was written. Never edit a shipped
migration; add a new one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('feedback',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('guid', sa.String(length=36), nullable=False),
    sa.Column('generation_guid', sa.String(length=36), nullable=False),
    sa.Column('rating', sa.String(length=16), nullable=True),
    sa.Column('correction', sa.Text(), nullable=True),
    sa.Column('issue', sa.String(length=100), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('evaluator', sa.String(length=200), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('ext_user_id', sa.String(length=300), nullable=True),
    sa.Column('metadata', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['generation_guid'], ['generations.guid'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('guid')
    )
    op.create_table('preferences',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('guid', sa.String(length=36), nullable=False),
    sa.Column('generation_a', sa.String(length=36), nullable=False),
    sa.Column('generation_b', sa.String(length=36), nullable=False),
    sa.Column('winner', sa.String(length=4), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('evaluator', sa.String(length=200), nullable=True),
    sa.Column('ext_user_id', sa.String(length=300), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('metadata', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['generation_a'], ['generations.guid'], ),
    sa.ForeignKeyConstraint(['generation_b'], ['generations.guid'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('guid')
    )
    op.create_index(op.f('ix_feedback_created_at'), 'feedback', ['created_at'], unique=False)
    op.create_index(op.f('ix_feedback_ext_user_id'), 'feedback', ['ext_user_id'], unique=False)
    op.create_index('ix_feedback_generation_id', 'feedback', ['generation_guid', 'id'], unique=False)
    op.create_index(op.f('ix_preferences_created_at'), 'preferences', ['created_at'], unique=False)
    op.create_index(op.f('ix_preferences_generation_a'), 'preferences', ['generation_a'], unique=False)
    op.create_index(op.f('ix_preferences_generation_b'), 'preferences', ['generation_b'], unique=False)
