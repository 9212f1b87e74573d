"""Alembic's environment for promptlab's store: migrations run on the connection (and in the
transaction) that ``promptlab.store.migrations.migrate`` hands over."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table="promptlab_alembic", transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
