"""experiments, variants, runs and cells

Frozen: this is the schema as it was when this migration was written. Never edit a shipped
migration; add a new one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('experiments',
    sa.Column('guid', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('guid'),
    sa.UniqueConstraint('name')
    )
    op.create_table('experiment_variants',
    sa.Column('experiment_guid', sa.String(length=36), nullable=False),
    sa.Column('label', sa.String(length=100), nullable=False),
    sa.Column('action_guid', sa.String(length=36), nullable=False),
    sa.Column('environment', sa.String(length=100), nullable=True),
    sa.Column('weight', sa.Float(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['action_guid'], ['actions.guid'], ),
    sa.ForeignKeyConstraint(['experiment_guid'], ['experiments.guid'], ),
    sa.PrimaryKeyConstraint('experiment_guid', 'label')
    )
    op.create_table('runs',
    sa.Column('guid', sa.String(length=36), nullable=False),
    sa.Column('experiment_guid', sa.String(length=36), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('n_rows', sa.Integer(), nullable=False),
    sa.Column('repeats', sa.Integer(), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('stats', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['experiment_guid'], ['experiments.guid'], ),
    sa.PrimaryKeyConstraint('guid')
    )
    op.create_table('run_cells',
    sa.Column('run_guid', sa.String(length=36), nullable=False),
    sa.Column('cell_key', sa.String(length=200), nullable=False),
    sa.Column('row_index', sa.Integer(), nullable=False),
    sa.Column('variant', sa.String(length=100), nullable=False),
    sa.Column('repeat', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('generation_guid', sa.String(length=36), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['run_guid'], ['runs.guid'], ),
    sa.PrimaryKeyConstraint('run_guid', 'cell_key')
    )
    op.create_table('run_rows',
    sa.Column('run_guid', sa.String(length=36), nullable=False),
    sa.Column('row_index', sa.Integer(), nullable=False),
    sa.Column('input', sa.JSON(), nullable=False),
    sa.Column('expected', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['run_guid'], ['runs.guid'], ),
    sa.PrimaryKeyConstraint('run_guid', 'row_index')
    )
    op.create_index(op.f('ix_runs_experiment_guid'), 'runs', ['experiment_guid'], unique=False)
