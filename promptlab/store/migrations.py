"""Versioned schema migrations, applied in order when a store is opened.

Each migration is ``(version, description, apply(connection))``, written against the schema
of the version before it (``ALTER TABLE ... ADD COLUMN``, new tables). A fresh database is
created from the current table definitions in one step and stamped with every version. The applied versions are
recorded in ``promptlab_schema``; a store never runs a migration twice and refuses to open a
database written by a newer promptlab. Add new migrations at the end; never edit a shipped one.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable

import sqlalchemy as sa

from ..errors import StoreError
from . import schema as t


def _create(*tables: sa.Table) -> Callable[[sa.Connection], None]:
    def apply(conn: sa.Connection) -> None:
        for table in tables:
            table.create(conn, checkfirst=True)

    return apply


def _create_area(module: str) -> Callable[[sa.Connection], None]:
    def apply(conn: sa.Connection) -> None:
        import importlib

        for table in importlib.import_module(f"promptlab.store.{module}").TABLES:
            table.create(conn, checkfirst=True)

    return apply


MIGRATIONS: list[tuple[int, str, Callable[[sa.Connection], None]]] = [
    (
        1,
        "actions, versions, deployments, generations, cache, sessions",
        _create(
            t.actions,
            t.action_versions,
            t.deployments,
            t.generations,
            t.cache_entries,
            t.sessions,
            t.session_messages,
        ),
    ),
    (2, "feedback and pairwise preferences", _create_area("feedback")),
    (3, "experiments, variants, runs and cells", _create_area("experiments")),
    (4, "context libraries, documents and chunks", _create_area("contexts")),
    (5, "assistant flows: conversations and turns", _create_area("flows")),
    (6, "gateway API keys", _create_area("gateway")),
    (7, "run leases and the run status detail", lambda conn: _run_leases(conn)),
    (8, "owners of pending generations, an index on generation status", lambda conn: _generation_owners(conn)),
]


def _generation_owners(conn: sa.Connection) -> None:
    t.generation_owners.create(conn, checkfirst=True)
    conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_generations_status ON generations (status)"))


def _run_leases(conn: sa.Connection) -> None:
    from .experiments import run_leases

    run_leases.create(conn, checkfirst=True)
    conn.execute(sa.text("ALTER TABLE runs ADD COLUMN status_detail TEXT"))


def latest_version() -> int:
    return MIGRATIONS[-1][0]


def migrate(engine: sa.Engine) -> int:
    """Bring the database up to the latest schema; returns the version it is at.

    Runs inside one write transaction holding the database's write lock, so several processes
    opening a fresh store at once migrate it exactly once.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Serialise concurrent migrators; the lock is released at commit.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7345120)"))
        t.schema_version.create(conn, checkfirst=True)
        applied = set(conn.execute(sa.select(t.schema_version.c.version)).scalars())
        newest_known = latest_version()
        if applied and max(applied) > newest_known:
            raise StoreError(
                f"the database is at schema version {max(applied)}, newer than this promptlab "
                f"understands ({newest_known}); upgrade promptlab"
            )
        fresh = not applied and not sa.inspect(conn).has_table(t.actions.name)
        if fresh:
            # A new database gets today's schema in one step; the migrations below only
            # ever run against databases created by an older promptlab.
            t.metadata.create_all(conn)
        for version, description, apply in MIGRATIONS:
            if version in applied:
                continue
            if not fresh:
                apply(conn)
            conn.execute(
                t.schema_version.insert().values(
                    version=version, description=description, applied_at=datetime.now(timezone.utc)
                )
            )
    return newest_known
