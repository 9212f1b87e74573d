"""context libraries, documents and chunks

Frozen: this is the schema as it was when this migration was written. Never edit a shipped
migration; add a new one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('contexts',
    sa.Column('guid', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('chunk_size', sa.Integer(), nullable=False),
    sa.Column('overlap', sa.Integer(), nullable=False),
    sa.Column('index_kind', sa.String(length=16), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('guid'),
    sa.UniqueConstraint('name')
    )
    op.create_table('context_documents',
    sa.Column('guid', sa.String(length=36), nullable=False),
    sa.Column('context_guid', sa.String(length=36), nullable=False),
    sa.Column('doc_id', sa.String(length=200), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['context_guid'], ['contexts.guid'], ),
    sa.PrimaryKeyConstraint('guid'),
    sa.UniqueConstraint('context_guid', 'doc_id', name='uq_context_doc_id')
    )
    op.create_table('context_chunks',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('context_guid', sa.String(length=36), nullable=False),
    sa.Column('document_guid', sa.String(length=36), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('char_start', sa.Integer(), nullable=False),
    sa.Column('char_end', sa.Integer(), nullable=False),
    sa.Column('embedding', sa.LargeBinary(), nullable=True),
    sa.Column('embedding_model', sa.String(length=100), nullable=True),
    sa.ForeignKeyConstraint(['context_guid'], ['contexts.guid'], ),
    sa.ForeignKeyConstraint(['document_guid'], ['context_documents.guid'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_context_chunks_context_guid'), 'context_chunks', ['context_guid'], unique=False)
    op.create_index(op.f('ix_context_chunks_document_guid'), 'context_chunks', ['document_guid'], unique=False)
