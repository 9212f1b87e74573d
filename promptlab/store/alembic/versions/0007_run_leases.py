"""run leases and the run status detail

Frozen: this is the schema as it was when this migration was written. Never edit a shipped
migration; add a new one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('run_leases',
    sa.Column('run_guid', sa.String(length=36), nullable=False),
    sa.Column('holder', sa.String(length=50), nullable=False),
    sa.Column('owner', sa.String(length=200), nullable=False),
    sa.Column('acquired_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['run_guid'], ['runs.guid'], ),
    sa.PrimaryKeyConstraint('run_guid', 'holder')
    )
    op.add_column('runs', sa.Column('status_detail', sa.Text(), nullable=True))
