"""The store seam: every SQL statement in promptlab lives in this package.

``Store(url)`` opens (and migrates) a SQLite file or a PostgreSQL database. Methods take and
return plain dicts; callers never see SQLAlchemy objects. Every write is its own short
transaction, committed before the method returns, so a crash loses nothing already written.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Iterator, Mapping, Sequence

import sqlalchemy as sa
import tenacity
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from ..errors import ConfigError, InvalidInputError, NotFoundError, PromptlabError, StoreError
from . import schema as t
from . import values
from ._util import as_dict, aware, is_conflict, named_conflict, new_guid, utcnow
from .contexts import ContextSQL
from .experiments import ExperimentSQL
from .feedback import FeedbackSQL
from .flows import FlowSQL
from .gateway import GatewaySQL
from .migrations import migrate

DEFAULT_URL = "sqlite:///promptlab.db"


def resolve_url(db: str | os.PathLike | None) -> str:
    """The SQLAlchemy URL for ``db``: an explicit URL or path, else ``$PROMPTLAB_DB``, else
    ``sqlite:///promptlab.db`` in the working directory. A bare ``postgresql://`` URL gets the
    psycopg 3 driver; a plain file path becomes a SQLite URL."""
    value = os.fspath(db) if db is not None else os.environ.get("PROMPTLAB_DB") or DEFAULT_URL
    if "://" not in value:
        return f"sqlite:///{value}"
    if value.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + value.split("://", 1)[1]
    return value



class Store(FeedbackSQL, ExperimentSQL, ContextSQL, FlowSQL, GatewaySQL):
    """A promptlab database. Thread-safe; share one per process."""

    def __init__(self, url: str | os.PathLike | None = None, *, echo: bool = False):
        self.url = resolve_url(url)
        try:
            parsed = sa.make_url(self.url)
        except sa.exc.ArgumentError as exc:
            raise ConfigError(f"not a database URL: {self.url!r}") from exc
        self.dialect = parsed.get_backend_name()
        self._temporary: str | None = None
        if self.dialect == "sqlite" and parsed.database in (None, "", ":memory:"):
            # promptlab's threads each open their own connection, and an in-memory SQLite database
            # exists once per connection: the "in-memory" store is a temporary file, removed on close.
            handle, self._temporary = tempfile.mkstemp(prefix="promptlab-memory-", suffix=".db")
            os.close(handle)
            parsed = parsed.set(database=self._temporary)
        self.safe_url = parsed.render_as_string(hide_password=True)
        if self.dialect == "sqlite":
            self.engine = _sqlite_engine(parsed, echo)
        elif self.dialect == "postgresql":
            self.engine = sa.create_engine(parsed, echo=echo, pool_pre_ping=True, pool_size=10,
                                           max_overflow=20, json_serializer=values.dumps)
        else:
            raise ConfigError(f"unsupported database {self.dialect!r}: use sqlite or postgresql")
        try:
            self.schema_version = migrate(self.engine)
        except sa.exc.OperationalError as exc:
            self.engine.dispose()
            raise StoreError(f"cannot open the store at {self.safe_url}: {exc.orig}") from exc

    def __repr__(self) -> str:
        return f"Store({self.safe_url!r})"

    def close(self) -> None:
        self.engine.dispose()
        if self._temporary is not None:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    os.remove(self._temporary + suffix)

    # -- transactions -------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """A write transaction (SQLite: BEGIN IMMEDIATE, so concurrent writers queue instead
        of failing on lock upgrade). Database errors leave as promptlab errors, without SQL."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.SQLAlchemyError as exc:
            raise database_error(exc, "write") from None
        except OverflowError:  # SQLite's driver, where PostgreSQL raises a data error
            raise InvalidInputError("the database refused a value (a number too large for its column)") from None

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        try:
            with self.engine.connect().execution_options(promptlab_read=True) as conn:
                yield conn
        except sa.exc.SQLAlchemyError as exc:
            raise database_error(exc, "read") from None

    def _insert_for(self, table: sa.Table):
        """An INSERT that supports ON CONFLICT on this dialect."""
        return (pg_dialect.insert if self.dialect == "postgresql" else sqlite_dialect.insert)(table)

    def _upsert(self, conn: sa.Connection, table: sa.Table, values: Mapping[str, Any],
                keys: Sequence[str], update: Sequence[str] | None = None) -> None:
        stmt = self._insert_for(table).values(**values)
        if update:
            stmt = stmt.on_conflict_do_update(index_elements=list(keys),
                                              set_={c: stmt.excluded[c] for c in update})
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
        conn.execute(stmt)

    # -- actions ------------------------------------------------------------------------

    def create_action(self, name: str, description: str | None, version: Mapping[str, Any],
                      environment: str = "Production") -> dict[str, Any]:
        now = utcnow()
        action_guid = new_guid()
        with named_conflict(f"an action named {name!r} already exists; use actions.update()"), self.write() as conn:
            exists = conn.execute(sa.select(t.actions.c.guid).where(t.actions.c.name == name)).first()
            if exists:
                raise ConfigError(f"an action named {name!r} already exists; use actions.update()")
            conn.execute(t.actions.insert().values(guid=action_guid, name=name,
                                                   description=description, created_at=now))
            conn.execute(t.action_versions.insert().values(
                guid=new_guid(), action_guid=action_guid, version=1, created_at=now, **version))
            conn.execute(t.deployments.insert().values(action_guid=action_guid, environment=environment,
                                                       version=1, deployed_at=now))
        return self.find_action(action_guid)

    def add_version(self, action_guid: str, version: Mapping[str, Any],
                    deploy_to: Sequence[str] = ()) -> int:
        now = utcnow()
        for attempt in range(5):
            try:
                with self.write() as conn:
                    current = conn.execute(
                        sa.select(sa.func.max(t.action_versions.c.version))
                        .where(t.action_versions.c.action_guid == action_guid)).scalar_one()
                    number = (current or 0) + 1
                    conn.execute(t.action_versions.insert().values(
                        guid=new_guid(), action_guid=action_guid, version=number, created_at=now,
                        **version))
                    for env in deploy_to:
                        self._upsert(conn, t.deployments,
                                     dict(action_guid=action_guid, environment=env, version=number,
                                          deployed_at=now),
                                     keys=["action_guid", "environment"],
                                     update=["version", "deployed_at"])
                return number
            except ConfigError as exc:
                # Two writers picked the same number (PostgreSQL); the loser takes the next one.
                if not is_conflict(exc) or attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def find_action(self, key: str) -> dict[str, Any] | None:
        """An action by name or GUID, or by one of its version GUIDs (then with ``pinned_version``)."""
        with self.read() as conn:
            return self._find_action(conn, key)

    def _find_action(self, conn: sa.Connection, key: str) -> dict[str, Any] | None:
        row = as_dict(conn.execute(sa.select(t.actions).where(
            sa.or_(t.actions.c.name == key, t.actions.c.guid == key))).first())
        if row is not None:
            return row
        version = conn.execute(sa.select(t.action_versions.c.action_guid, t.action_versions.c.version)
                               .where(t.action_versions.c.guid == key)).first()
        if version is None:
            return None
        row = as_dict(conn.execute(sa.select(t.actions).where(t.actions.c.guid == version.action_guid)).first())
        row["pinned_version"] = version.version
        return row

    def resolve_action(self, key: str, pick: Any) -> tuple[dict, dict[str, int], dict | None] | None:
        """An action, its deployments and one version, read in one transaction (one round of
        connection checkout, which matters on a busy gateway).

        ``pick(action_row, deployments)`` chooses the version number (None: the newest) and may
        raise. Returns None when there is no such action.
        """
        with self.read() as conn:
            row = self._find_action(conn, key)
            if row is None:
                return None
            deployments = self._deployments(conn, row["guid"])
            number = pick(row, deployments)
            return row, deployments, self._version(conn, row["guid"], number)

    def get_version(self, action_guid: str, version: int | None = None) -> dict[str, Any] | None:
        """One version of an action; the newest when ``version`` is None."""
        with self.read() as conn:
            return self._version(conn, action_guid, version)

    def _version(self, conn: sa.Connection, action_guid: str, version: int | None) -> dict[str, Any] | None:
        query = sa.select(t.action_versions).where(t.action_versions.c.action_guid == action_guid)
        if version is None:
            query = query.order_by(t.action_versions.c.version.desc()).limit(1)
        else:
            query = query.where(t.action_versions.c.version == version)
        return as_dict(conn.execute(query).first())

    def list_versions(self, action_guid: str) -> list[dict[str, Any]]:
        with self.read() as conn:
            rows = conn.execute(sa.select(t.action_versions)
                                .where(t.action_versions.c.action_guid == action_guid)
                                .order_by(t.action_versions.c.version))
            return [as_dict(r) for r in rows]

    def list_actions(self) -> list[dict[str, Any]]:
        with self.read() as conn:
            return [as_dict(r) for r in conn.execute(sa.select(t.actions).order_by(t.actions.c.name))]

    def deploy(self, action_guid: str, environment: str, version: int) -> None:
        with self.write() as conn:
            exists = conn.execute(sa.select(t.action_versions.c.guid).where(
                t.action_versions.c.action_guid == action_guid,
                t.action_versions.c.version == version)).first()
            if exists is None:
                raise NotFoundError("action version", version)
            self._upsert(conn, t.deployments,
                         dict(action_guid=action_guid, environment=environment, version=version,
                              deployed_at=utcnow()),
                         keys=["action_guid", "environment"], update=["version", "deployed_at"])

    def deployments(self, action_guid: str) -> dict[str, int]:
        with self.read() as conn:
            return self._deployments(conn, action_guid)

    def _deployments(self, conn: sa.Connection, action_guid: str) -> dict[str, int]:
        rows = conn.execute(sa.select(t.deployments.c.environment, t.deployments.c.version)
                            .where(t.deployments.c.action_guid == action_guid))
        return {r.environment: r.version for r in rows}

    # -- generations --------------------------------------------------------------------

    def insert_generation(self, row: Mapping[str, Any], owner: str | None = None) -> None:
        """Insert a generation row; ``owner`` (``host:pid:token``) marks a pending one as being run
        by that process (see ``fail_orphaned_generations``)."""
        with self.write() as conn:
            conn.execute(t.generations.insert().values(**row))
            if owner is not None:
                conn.execute(t.generation_owners.insert().values(generation_guid=row["guid"], owner=owner,
                                                                 started_at=utcnow()))

    def update_generation(self, guid: str, fields: Mapping[str, Any]) -> None:
        with self.write() as conn:
            conn.execute(t.generations.update().where(t.generations.c.guid == guid).values(**fields))
            if fields.get("status", "pending") != "pending":
                conn.execute(t.generation_owners.delete().where(t.generation_owners.c.generation_guid == guid))

    def fail_orphaned_generations(self, dead: Any, max_age_seconds: float | None = 3600.0) -> int:
        """Mark failed ("Interrupted") the pending generations whose owner is gone: ``dead(owner)``
        is true, or (for any owner, this machine's or another's) they started more than
        ``max_age_seconds`` ago, longer than any call may run. Returns how many."""
        g, o = t.generations, t.generation_owners
        with self.read() as conn:
            pending = conn.execute(sa.select(o.c.generation_guid, o.c.owner, o.c.started_at)
                                   .join(g, g.c.guid == o.c.generation_guid).where(g.c.status == "pending")).all()
        cutoff = None if max_age_seconds is None else utcnow() - timedelta(seconds=max_age_seconds)
        orphans = [row.generation_guid for row in pending
                   if dead(row.owner) or (cutoff is not None and aware(row.started_at) < cutoff)]
        if not orphans:
            return 0
        message = ("the process running it stopped before the model answered (killed or crashed); "
                   "it was marked failed when the store was next opened")
        with self.write() as conn:
            conn.execute(g.update().where(g.c.guid.in_(orphans), g.c.status == "pending").values(
                status="error", error_type="Interrupted", error=message, finished_at=utcnow()))
            conn.execute(o.delete().where(o.c.generation_guid.in_(orphans)))
        return len(orphans)

    def get_generation(self, guid: str) -> dict[str, Any] | None:
        with self.read() as conn:
            return as_dict(conn.execute(sa.select(t.generations).where(t.generations.c.guid == guid)).first())

    def generation_status(self, guid: str) -> str | None:
        with self.read() as conn:
            return conn.execute(sa.select(t.generations.c.status)
                                .where(t.generations.c.guid == guid)).scalar_one_or_none()

    def _generation_filters(self, filters: Mapping[str, Any]) -> list[sa.ColumnElement]:
        c = t.generations.c
        clauses: list[sa.ColumnElement] = []
        for key, value in filters.items():
            if value is None:
                continue
            if key == "action":
                clauses.append(sa.or_(c.action_name == value, c.action_guid == value))
            elif key == "since":
                clauses.append(c.created_at >= value)
            elif key == "until":
                clauses.append(c.created_at < value)
            elif key in ("version", "action_version"):
                clauses.append(c.action_version == value)
            elif key in ("environment", "status", "session_guid", "ext_user_id", "model", "cached"):
                clauses.append(c[key] == value)
            elif key == "session":
                clauses.append(c.session_guid == value)
            elif key in ("experiment", "run"):
                clauses.append(c[f"{key}_guid"] == value)
            elif key in ("variant", "repeat"):
                clauses.append(c[key] == value)
            else:
                raise ConfigError(f"unknown generation filter {key!r}")
        return clauses

    def list_generations(self, limit: int | None = 100, offset: int = 0, newest_first: bool = True,
                         **filters: Any) -> list[dict[str, Any]]:
        c = t.generations.c
        order = (c.created_at.desc(), c.guid) if newest_first else (c.created_at, c.guid)
        query = sa.select(t.generations).where(*self._generation_filters(filters)).order_by(*order)
        if limit is not None:
            query = query.limit(limit).offset(offset)
        with self.read() as conn:
            return [as_dict(r) for r in conn.execute(query)]

    def count_generations(self, **filters: Any) -> int:
        with self.read() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(t.generations)
                                .where(*self._generation_filters(filters))).scalar_one()

    # -- response cache -----------------------------------------------------------------

    def cache_get(self, key: str, ttl_seconds: float | None) -> dict[str, Any] | None:
        query = sa.select(t.cache_entries).where(t.cache_entries.c.key == key)
        if ttl_seconds is not None:
            query = query.where(t.cache_entries.c.created_at >= datetime.fromtimestamp(
                time.time() - ttl_seconds, timezone.utc))
        with self.read() as conn:
            return as_dict(conn.execute(query).first())

    def cache_put(self, key: str, output: str, model: str, finish_reason: str | None,
                  prompt_tokens: int, completion_tokens: int) -> None:
        with self.write() as conn:
            self._upsert(conn, t.cache_entries,
                         dict(key=key, output=output, model=model, finish_reason=finish_reason,
                              prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                              created_at=utcnow()),
                         keys=["key"],
                         update=["output", "model", "finish_reason", "prompt_tokens",
                                 "completion_tokens", "created_at"])

    def cache_clear(self) -> int:
        with self.write() as conn:
            return conn.execute(t.cache_entries.delete()).rowcount

    # -- sessions -----------------------------------------------------------------------

    def create_session(self, action_guid: str | None, ext_user_id: str | None, name: str | None,
                       memory_window: int | None) -> dict[str, Any]:
        row = dict(guid=new_guid(), action_guid=action_guid, ext_user_id=ext_user_id, name=name,
                   memory_window=memory_window, created_at=utcnow())
        with self.write() as conn:
            conn.execute(t.sessions.insert().values(**row))
        return row

    def get_session(self, guid: str) -> dict[str, Any] | None:
        with self.read() as conn:
            return as_dict(conn.execute(sa.select(t.sessions).where(t.sessions.c.guid == guid)).first())

    def list_sessions(self, ext_user_id: str | None = None,
                      action_guid: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(t.sessions).order_by(t.sessions.c.created_at)
        if ext_user_id is not None:
            query = query.where(t.sessions.c.ext_user_id == ext_user_id)
        if action_guid is not None:
            query = query.where(t.sessions.c.action_guid == action_guid)
        with self.read() as conn:
            return [as_dict(r) for r in conn.execute(query)]

    def session_messages(self, guid: str, last: int | None = None) -> list[dict[str, Any]]:
        """The session's messages in order; only the ``last`` N when given."""
        c = t.session_messages.c
        query = sa.select(c.role, c.content, c.generation_guid, c.created_at).where(c.session_guid == guid)
        with self.read() as conn:
            if last is not None:
                rows = list(conn.execute(query.order_by(c.id.desc()).limit(last)))[::-1]
            else:
                rows = list(conn.execute(query.order_by(c.id)))
        return [as_dict(r) for r in rows]

    def append_session_messages(self, guid: str, messages: Iterable[Mapping[str, Any]],
                                generation_guid: str | None) -> None:
        now = utcnow()
        rows = [dict(session_guid=guid, role=m["role"], content=m["content"],
                     generation_guid=generation_guid, created_at=now) for m in messages]
        if rows:
            with self.write() as conn:
                conn.execute(t.session_messages.insert(), rows)

    # -- whole-store helpers ------------------------------------------------------------

    def table_names(self) -> list[str]:
        return [table.name for table in t.metadata.sorted_tables]

    def dump_table(self, name: str) -> list[dict[str, Any]]:
        """Every row of a table (for audits such as the secret scan; not for big tables)."""
        table = t.metadata.tables[name]
        with self.read() as conn:
            return [as_dict(r) for r in conn.execute(sa.select(table))]


def database_error(exc: sa.exc.SQLAlchemyError, what: str) -> PromptlabError:
    """The promptlab error for a database error: the driver's own first line, never the SQL
    statement or its parameters (they hold user data and would reach logs)."""
    orig = getattr(exc, "orig", None)
    if isinstance(orig, PromptlabError):  # raised by promptlab's own value handling (values.py)
        return orig
    detail = str(orig if orig is not None else type(exc).__name__).strip().splitlines()[0][:300] \
        if str(orig if orig is not None else "").strip() else type(exc).__name__
    if isinstance(exc, sa.exc.IntegrityError):
        error: PromptlabError = ConfigError(f"the store refused a duplicate or a dangling reference ({detail}); "
                                            "another process may have created it at the same moment")
        error.conflict = True  # type: ignore[attr-defined]
        return error
    if isinstance(exc, sa.exc.DataError):
        return InvalidInputError(f"the database refused a value ({detail})")
    return StoreError(f"database {what} failed ({type(orig or exc).__name__}: {detail})")


@tenacity.retry(retry=tenacity.retry_if_exception(lambda exc: "locked" in str(exc)),
                wait=tenacity.wait_random_exponential(multiplier=0.01, max=0.5),
                stop=tenacity.stop_after_delay(60), reraise=True)
def _enable_wal(cursor) -> None:
    # Switching a fresh file to WAL needs it unlocked, and SQLite answers "database is locked"
    # at once instead of calling the busy handler while another process is migrating it.
    cursor.execute("PRAGMA journal_mode=WAL")


def _sqlite_engine(url: sa.URL, echo: bool) -> sa.Engine:
    if url.database and url.database != ":memory:":
        directory = os.path.dirname(os.path.abspath(url.database))
        if not os.path.isdir(directory):
            raise ConfigError(f"the folder for the SQLite store does not exist: {directory}")
    engine = sa.create_engine(url, echo=echo, connect_args={"timeout": 60, "check_same_thread": False},
                              json_serializer=values.dumps)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # pragma: no cover - exercised by every test
        # pysqlite's own transaction handling is off so that we can issue BEGIN IMMEDIATE.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA busy_timeout=60000")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn):  # pragma: no cover - exercised by every test
        # Writers take the lock up front: a deferred transaction that later upgrades to a
        # write can fail with SQLITE_BUSY without waiting, losing the write.
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("promptlab_read")
                             else "BEGIN IMMEDIATE")

    return engine


__all__ = ["Store", "resolve_url", "new_guid", "utcnow", "DEFAULT_URL", "is_conflict", "named_conflict",
           "database_error"]
