"""Schema migrations: Alembic revisions under ``store/alembic/versions``, applied in order when a
store is opened.

One path for every database: a new one runs every revision from the first, exactly as an old one
runs the revisions it lacks. Each revision's DDL is frozen (written out, never derived from
today's table definitions), so adding a column to a table later cannot break an old database.
Databases written before Alembic recorded their versions in ``promptlab_schema`` (1-8); they are
stamped at the matching revision and upgraded from there. A store never runs a revision twice and
refuses a database written by a newer promptlab. Add new revisions at the end; never edit one.
"""

from __future__ import annotations

import os

import sqlalchemy as sa

from ..errors import StoreError

#: The newest revision this promptlab knows (a test checks it is the scripts' head).
HEAD = "0008"
VERSION_TABLE = "promptlab_alembic"
SCRIPTS = os.path.join(os.path.dirname(__file__), "alembic")


def current_revision(conn: sa.Connection) -> str | None:
    inspector = sa.inspect(conn)
    if inspector.has_table(VERSION_TABLE):
        return conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    if inspector.has_table("promptlab_schema"):  # written before Alembic: versions 1..8
        newest = conn.execute(sa.text("SELECT max(version) FROM promptlab_schema")).scalar()
        return None if newest is None else f"{int(newest):04d}"
    return None


def _config(conn: sa.Connection):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", SCRIPTS)
    config.attributes["connection"] = conn
    return config


def latest_version() -> int:
    return int(HEAD)


def migrate(engine: sa.Engine) -> int:
    """Bring the database up to ``HEAD``; returns the schema version (its number).

    Runs inside one write transaction holding the database's write lock, so several processes
    opening a fresh store at once migrate it exactly once. Alembic is imported only when there
    is something to do.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Serialise concurrent migrators; the lock is released at commit.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7345120)"))
        revision = current_revision(conn)
        if revision == HEAD:
            return latest_version()
        if revision is not None and (not revision.isdigit() or int(revision) > int(HEAD)):
            raise StoreError(f"the database is at schema revision {revision}, newer than this promptlab "
                             f"understands ({HEAD}); upgrade promptlab")
        from alembic import command

        config = _config(conn)
        if revision is not None and not sa.inspect(conn).has_table(VERSION_TABLE):
            command.stamp(config, revision)  # a database from before Alembic: where it is
        command.upgrade(config, HEAD)
    return latest_version()


__all__ = ["migrate", "latest_version", "current_revision", "HEAD"]
