"""owners of pending generations, an index on generation status

Frozen: this is the schema as it was when this migration was written. Never edit a shipped
migration; add a new one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('generation_owners',
    sa.Column('generation_guid', sa.String(length=36), nullable=False),
    sa.Column('owner', sa.String(length=200), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('generation_guid')
    )
    op.create_index('ix_generations_status', 'generations', ['status'], unique=False)
