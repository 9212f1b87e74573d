"""Context libraries, documents and chunks for retrieval (issue 7).

Tables are defined here on the shared ``schema.metadata``; ``TABLES`` lists them for the
migration that creates them. ``ContextSQL`` holds this area's SQL and is mixed into ``Store``,
so it can use ``self.read()``, ``self.write()``, ``self._upsert()`` and ``self.dialect``.

A context's ``revision`` goes up by one in the same transaction as every change to its
documents, so a process holding an in-memory index knows, with one cheap query, whether its
index is current. Chunk embeddings are stored with the name of the model that made them; they
are a cache of the chunk text and do not change the revision.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import sqlalchemy as sa

from ..errors import ConfigError, NotFoundError
from . import schema as t
from ._util import as_dict, new_guid, named_conflict, utcnow

contexts = sa.Table(
    "contexts",
    t.metadata,
    sa.Column("guid", t.GUID, primary_key=True),
    sa.Column("name", t.SafeString(200), nullable=False, unique=True),
    sa.Column("description", t.SafeText),
    sa.Column("chunk_size", sa.Integer, nullable=False),
    sa.Column("overlap", sa.Integer, nullable=False),
    sa.Column("index_kind", t.SafeString(16), nullable=False),  # bm25 | embeddings | hybrid
    sa.Column("revision", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", t.Time, nullable=False),
    sa.Column("updated_at", t.Time, nullable=False),
)

context_documents = sa.Table(
    "context_documents",
    t.metadata,
    sa.Column("guid", t.GUID, primary_key=True),
    sa.Column("context_guid", t.GUID, sa.ForeignKey("contexts.guid"), nullable=False),
    sa.Column("doc_id", t.SafeString(200), nullable=False),  # the user's id, unique in the context
    sa.Column("text", t.SafeText, nullable=False),
    sa.Column("fields", sa.JSON, nullable=False),  # title, body, url, ...
    sa.Column("metadata", sa.JSON, nullable=False),  # source, filename, type, added_at + custom
    sa.Column("created_at", t.Time, nullable=False),
    sa.UniqueConstraint("context_guid", "doc_id", name="uq_context_doc_id"),
)

context_chunks = sa.Table(
    "context_chunks",
    t.metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("context_guid", t.GUID, sa.ForeignKey("contexts.guid"), nullable=False, index=True),
    sa.Column("document_guid", t.GUID, sa.ForeignKey("context_documents.guid"), nullable=False,
              index=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("text", t.SafeText, nullable=False),
    sa.Column("char_start", sa.Integer, nullable=False),  # offsets in the document text
    sa.Column("char_end", sa.Integer, nullable=False),
    sa.Column("embedding", sa.LargeBinary),  # float32 little-endian, L2-normalised
    sa.Column("embedding_model", t.SafeString(100)),
)

TABLES: list[sa.Table] = [contexts, context_documents, context_chunks]

_INSERT_BATCH = 2000


class ContextSQL:
    """SQL for ``lab.contexts``."""

    # -- contexts -------------------------------------------------------------------------

    def create_context(self, name: str, *, description: str | None, chunk_size: int, overlap: int,
                       index_kind: str) -> dict[str, Any]:
        now = utcnow()
        row = dict(guid=new_guid(), name=name, description=description, chunk_size=chunk_size,
                   overlap=overlap, index_kind=index_kind, revision=0, created_at=now,
                   updated_at=now)
        # a concurrent creator may win between the check and the insert (PostgreSQL)
        with named_conflict(f"a context named {name!r} already exists"), self.write() as conn:
            exists = conn.execute(sa.select(contexts.c.guid).where(contexts.c.name == name)).first()
            if exists:
                raise ConfigError(f"a context named {name!r} already exists")
            conn.execute(contexts.insert().values(**row))
        return self.find_context(row["guid"])

    def find_context(self, key: str) -> dict[str, Any] | None:
        """A context by name or GUID, with its document and chunk counts."""
        with self.read() as conn:
            row = as_dict(conn.execute(sa.select(contexts).where(
                sa.or_(contexts.c.name == key, contexts.c.guid == key))).first())
            if row is None:
                return None
            row.update(_count_fields(self._counts(conn, [row["guid"]]), row["guid"]))
            return row

    def context_state(self, key: str) -> dict[str, Any] | None:
        """``guid``, ``revision`` and ``index_kind`` of a context by name or GUID: the one
        query a search makes when its in-memory index is current."""
        with self.read() as conn:
            return as_dict(conn.execute(
                sa.select(contexts.c.guid, contexts.c.revision, contexts.c.index_kind).where(
                    sa.or_(contexts.c.name == key, contexts.c.guid == key))).first())

    def list_contexts(self) -> list[dict[str, Any]]:
        with self.read() as conn:
            rows = [as_dict(r) for r in conn.execute(sa.select(contexts).order_by(contexts.c.name))]
            counts = self._counts(conn, [r["guid"] for r in rows])
        for row in rows:
            row.update(_count_fields(counts, row["guid"]))
        return rows

    def _counts(self, conn: sa.Connection, guids: Sequence[str]) -> dict[str, tuple[int, int]]:
        if not guids:
            return {}
        docs = dict(conn.execute(
            sa.select(context_documents.c.context_guid, sa.func.count())
            .where(context_documents.c.context_guid.in_(guids))
            .group_by(context_documents.c.context_guid)).all())
        chunks = dict(conn.execute(
            sa.select(context_chunks.c.context_guid, sa.func.count())
            .where(context_chunks.c.context_guid.in_(guids))
            .group_by(context_chunks.c.context_guid)).all())
        return {g: (docs.get(g, 0), chunks.get(g, 0)) for g in guids}

    def delete_context(self, guid: str) -> None:
        with self.write() as conn:
            conn.execute(context_chunks.delete().where(context_chunks.c.context_guid == guid))
            conn.execute(context_documents.delete().where(context_documents.c.context_guid == guid))
            conn.execute(contexts.delete().where(contexts.c.guid == guid))

    # -- documents ------------------------------------------------------------------------

    def add_context_documents(self, context_guid: str,
                              documents: Sequence[Mapping[str, Any]]) -> int:
        """Insert documents with their chunks; a document whose ``doc_id`` exists is replaced.

        Each document: ``doc_id, text, fields, metadata, chunks`` where a chunk is
        ``{"position", "text", "start", "end"}`` plus optional ``embedding``/``embedding_model``.
        Returns the context's new revision.
        """
        now = utcnow()
        with self.write() as conn:
            self._require_context(conn, context_guid)
            ids = [d["doc_id"] for d in documents]
            for start in range(0, len(ids), 500):
                old = [r.guid for r in conn.execute(
                    sa.select(context_documents.c.guid).where(
                        context_documents.c.context_guid == context_guid,
                        context_documents.c.doc_id.in_(ids[start:start + 500])))]
                if old:
                    conn.execute(context_chunks.delete().where(context_chunks.c.document_guid.in_(old)))
                    conn.execute(context_documents.delete().where(context_documents.c.guid.in_(old)))
            doc_rows, chunk_rows = [], []
            for doc in documents:
                guid = new_guid()
                doc_rows.append(dict(guid=guid, context_guid=context_guid, doc_id=doc["doc_id"],
                                     text=doc["text"], fields=dict(doc["fields"]),
                                     metadata=dict(doc["metadata"]), created_at=now))
                for chunk in doc["chunks"]:
                    chunk_rows.append(dict(context_guid=context_guid, document_guid=guid,
                                           position=chunk["position"], text=chunk["text"],
                                           char_start=chunk["start"], char_end=chunk["end"],
                                           embedding=chunk.get("embedding"),
                                           embedding_model=chunk.get("embedding_model")))
            for rows, table in ((doc_rows, context_documents), (chunk_rows, context_chunks)):
                for start in range(0, len(rows), _INSERT_BATCH):
                    conn.execute(table.insert(), rows[start:start + _INSERT_BATCH])
            return self._bump(conn, context_guid, now)

    def delete_context_documents(self, context_guid: str, doc_ids: Sequence[str]) -> int:
        """Delete documents (and their chunks) by id; raises NotFoundError, deleting nothing,
        if any id is unknown. Returns the context's new revision."""
        with self.write() as conn:
            self._require_context(conn, context_guid)
            found: dict[str, str] = {}
            for start in range(0, len(doc_ids), 500):
                found.update(conn.execute(
                    sa.select(context_documents.c.doc_id, context_documents.c.guid).where(
                        context_documents.c.context_guid == context_guid,
                        context_documents.c.doc_id.in_(list(doc_ids[start:start + 500])))).all())
            missing = [d for d in doc_ids if d not in found]
            if missing:
                raise NotFoundError("document", missing[0] if len(missing) == 1 else missing,
                                    "nothing was deleted")
            guids = list(found.values())
            for start in range(0, len(guids), 500):
                part = guids[start:start + 500]
                conn.execute(context_chunks.delete().where(context_chunks.c.document_guid.in_(part)))
                conn.execute(context_documents.delete().where(context_documents.c.guid.in_(part)))
            return self._bump(conn, context_guid, utcnow())

    def list_context_documents(self, context_guid: str, with_text: bool = True) -> list[dict[str, Any]]:
        c = context_documents.c
        columns = [c.doc_id, c.fields, c.metadata, c.created_at] + ([c.text] if with_text else [])
        with self.read() as conn:
            rows = conn.execute(sa.select(*columns).where(c.context_guid == context_guid)
                                .order_by(c.created_at, c.doc_id))
            return [as_dict(r) for r in rows]

    # -- index loading --------------------------------------------------------------------

    def context_snapshot(self, context_guid: str, with_embeddings: bool = False) -> dict[str, Any]:
        """Everything an in-memory index needs, read in one transaction: ``revision``,
        ``documents`` (guid, doc_id, fields, metadata) and ``chunks`` (id, document_guid,
        position, text[, embedding, embedding_model]) in a stable order."""
        d, c = context_documents.c, context_chunks.c
        chunk_columns = [c.id, c.document_guid, c.position, c.text]
        if with_embeddings:
            chunk_columns += [c.embedding, c.embedding_model]
        with self.read() as conn:
            revision = conn.execute(sa.select(contexts.c.revision)
                                    .where(contexts.c.guid == context_guid)).scalar_one_or_none()
            if revision is None:
                raise NotFoundError("context", context_guid)
            documents = [as_dict(r) for r in conn.execute(
                sa.select(d.guid, d.doc_id, d.fields, d.metadata)
                .where(d.context_guid == context_guid).order_by(d.created_at, d.doc_id))]
            chunks = [r._mapping for r in conn.execute(
                sa.select(*chunk_columns).where(c.context_guid == context_guid).order_by(c.id))]
        return {"revision": revision, "documents": documents, "chunks": chunks}

    def context_chunk_embeddings(self, context_guid: str) -> dict[int, tuple[bytes | None, str | None]]:
        """Stored embeddings by chunk id: ``{id: (vector bytes, model id)}``."""
        c = context_chunks.c
        with self.read() as conn:
            rows = conn.execute(sa.select(c.id, c.embedding, c.embedding_model)
                                .where(c.context_guid == context_guid))
            return {r.id: (bytes(r.embedding) if r.embedding is not None else None,
                           r.embedding_model) for r in rows}

    def save_chunk_embeddings(self, rows: Iterable[tuple[int, bytes]], model_id: str) -> None:
        """Store computed embeddings by chunk id (a cache: the revision does not change)."""
        rows = list(rows)
        stmt = (context_chunks.update().where(context_chunks.c.id == sa.bindparam("chunk_id"))
                .values(embedding=sa.bindparam("vector"), embedding_model=model_id))
        with self.write() as conn:
            for start in range(0, len(rows), _INSERT_BATCH):
                conn.execute(stmt, [{"chunk_id": i, "vector": v}
                                    for i, v in rows[start:start + _INSERT_BATCH]])

    # -- helpers --------------------------------------------------------------------------

    def _require_context(self, conn: sa.Connection, context_guid: str) -> None:
        found = conn.execute(sa.select(contexts.c.guid).where(contexts.c.guid == context_guid)).first()
        if found is None:
            raise NotFoundError("context", context_guid)

    def _bump(self, conn: sa.Connection, context_guid: str, now) -> int:
        conn.execute(contexts.update().where(contexts.c.guid == context_guid)
                     .values(revision=contexts.c.revision + 1, updated_at=now))
        return conn.execute(sa.select(contexts.c.revision)
                            .where(contexts.c.guid == context_guid)).scalar_one()


def _count_fields(counts: Mapping[str, tuple[int, int]], guid: str) -> dict[str, int]:
    documents, chunks = counts.get(guid, (0, 0))
    return {"documents": documents, "chunks": chunks}


__all__ = ["TABLES", "ContextSQL", "contexts", "context_documents", "context_chunks"]
