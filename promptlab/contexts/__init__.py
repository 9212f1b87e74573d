"""Context libraries: documents with metadata, searched with metadata filters (RAG).

The seed's "Context w/ Filtering" and the Search behavior, locally::

    lab.contexts.create("kb")                                      # BM25 by default
    lab.contexts.add("kb", [{"text": "Refunds take 5 days.", "metadata": {"tenant-id": "aa882"}},
                            "docs/guide.pdf", "https://example.com/faq.html"])
    hits = lab.contexts.search("kb", "how long do refunds take", top_k=3,
                               metadata_filter={"tenant-id": "aa882"})
    hits[0]["record"]["text"], hits[0]["distance"]                 # lower distance is better
    pl.format_search_results(hits, "{text}")

    lab.actions.create("support", prompt="Answer from:\\n{{context}}\\n\\nQ: {{question}}",
                       context={"name": "kb", "top_k": 3})
    lab.actions.prompt("support", {"question": "..."}, metadata_filter={"tenant-id": "aa882"})

Documents and chunks live in the store (so a PostgreSQL team store shares them). Each process
keeps an in-memory index per context and rebuilds it only when the context's revision changes;
a search costs one small query to check the revision. Ranking and distances: see ``index``.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from ..checks import items
from ..errors import ConfigError, InvalidInputError, MissingVariablesError, NotFoundError
from ..store import new_guid
from ..store.values import check_json
from .binding import MODES, Binding, parse_binding
from .chunking import check_chunking, chunk_text
from .embeddings import INSTALL_HINT, Embedder, default_embedder, from_bytes, to_bytes
from .filters import compile_filter
from .index import ContextIndex, Snapshot, search_text
from .loaders import load_documents
from .results import format_search_results, template_fields

if TYPE_CHECKING:  # pragma: no cover
    from ..actions import Action
    from ..lab import Lab

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\- ]{0,199}$")
INDEX_KINDS = MODES
MAX_TOP_K = 1000


@dataclass(frozen=True)
class Context:
    """A context library (counts as of when it was read)."""

    guid: str
    name: str
    description: str | None
    chunk_size: int
    overlap: int
    index: str
    revision: int
    documents: int
    chunks: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "Context":
        return cls(guid=row["guid"], name=row["name"], description=row["description"],
                   chunk_size=row["chunk_size"], overlap=row["overlap"], index=row["index_kind"],
                   revision=row["revision"], documents=row.get("documents", 0),
                   chunks=row.get("chunks", 0), created_at=row["created_at"],
                   updated_at=row["updated_at"])


class Contexts:
    """``lab.contexts``: create context libraries, add documents, search them."""

    def __init__(self, lab: "Lab"):
        self._lab = lab
        self._indexes: dict[str, ContextIndex] = {}
        self._build_lock = threading.Lock()
        self._embedder: Embedder | None = None
        self.index_builds = 0  # how many times an index was (re)built: lets tests see caching

    # -- the embedder -----------------------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        """The embedding model for ``embeddings``/``hybrid`` search (all-MiniLM-L6-v2 unless
        another ``Embedder`` is assigned). Raises ConfigError when the extra is missing."""
        if self._embedder is None:
            self._embedder = default_embedder()
        return self._embedder

    @embedder.setter
    def embedder(self, value: Embedder) -> None:
        if not hasattr(value, "embed") or not isinstance(getattr(value, "model_id", None), str):
            raise ConfigError("an embedder needs a string model_id and an embed(texts) method")
        self._embedder = value

    # -- libraries --------------------------------------------------------------------------

    def create(self, name: str, chunk_size: int = 800, overlap: int = 100, index: str = "bm25",
               description: str | None = None) -> Context:
        """Create an empty context library.

        ``chunk_size``/``overlap`` are in characters. ``index`` is the default search mode:
        ``"bm25"`` (no extra dependency), ``"embeddings"`` or ``"hybrid"`` (need the
        ``embeddings`` extra; chunks are embedded when added).

        >>> lab.contexts.create("kb", chunk_size=500, overlap=50)
        """
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ConfigError(f"invalid context name {name!r}: use letters, digits, space, _ . - "
                              "(up to 200 characters)")
        check_chunking(chunk_size, overlap)
        if index not in INDEX_KINDS:
            raise ConfigError(f"index must be one of {list(INDEX_KINDS)}, got {index!r}")
        if index != "bm25":
            self.embedder  # noqa: B018  (missing extra: fail now, not at the first add)
        row = self._lab.store.create_context(name, description=description, chunk_size=chunk_size,
                                             overlap=overlap, index_kind=index)
        return Context.from_row(row)

    def get(self, name: str) -> Context:
        """A context library by name or GUID."""
        return Context.from_row(self._row(name))

    def list(self) -> list[Context]:
        """Every context library, by name."""
        return [Context.from_row(r) for r in self._lab.store.list_contexts()]

    def documents(self, name: str, with_text: bool = True) -> list[dict[str, Any]]:
        """The documents of a context: ``{"id", "text", ...fields, "metadata", "created_at"}``."""
        rows = self._lab.store.list_context_documents(self._row(name)["guid"], with_text=with_text)
        out = []
        for row in rows:
            doc = {**row["fields"], "id": row["doc_id"]}
            if with_text:
                doc["text"] = row["text"]
            doc["metadata"] = row["metadata"]
            doc["created_at"] = row["created_at"]
            out.append(doc)
        return out

    def delete(self, name: str, ids: str | Sequence[str] | None = None) -> int:
        """Delete documents by id (all or nothing), or the whole context when ``ids`` is None.

        Returns the number of documents deleted.
        """
        row = self._row(name)
        if ids is None:
            self._lab.store.delete_context(row["guid"])
            self._indexes.pop(row["guid"], None)
            return row["documents"]
        ids = [str(i) for i in items(ids, "ids", allow_str=True)]
        if not ids:
            return 0
        self._lab.store.delete_context_documents(row["guid"], list(dict.fromkeys(ids)))
        return len(set(ids))

    # -- documents --------------------------------------------------------------------------

    def add(self, name: str, documents: Iterable[Any], *, metadata: Mapping[str, Any] | None = None,
            http_client: Any = None) -> list[str]:
        """Add documents; returns their ids (in order). A document with an existing id replaces it.

        A document is text, a dict ``{"text", "metadata", "id", ...fields}``, a path to a
        .txt/.md/.html/.pdf file or an http(s) URL (fetched with httpx2; ``http_client`` is an
        ``httpx2.Client`` to use). ``metadata`` is added to every document of the call.
        Automatic metadata: ``source``, ``filename``, ``type``, ``added_at``.

        >>> lab.contexts.add("kb", [{"text": "Refunds take 5 days.", "id": "refunds",
        ...                          "metadata": {"tenant-id": "aa882"}}])
        ['refunds']
        """
        row = self._row(name)
        if metadata is not None and not isinstance(metadata, Mapping):
            raise InvalidInputError(f"metadata must be a dict, not {type(metadata).__name__}")
        loaded = load_documents(documents, metadata=metadata, http_client=http_client)
        prepared, ids = [], []
        for i, doc in enumerate(loaded):
            doc_id = doc.id if doc.id is not None else new_guid()
            if len(doc_id) > 200:
                raise InvalidInputError(f"documents[{i}]: id longer than 200 characters")
            check_json(doc.metadata, f"documents[{i}] metadata")
            check_json(doc.fields, f"documents[{i}] fields")
            chunks = chunk_text(doc.text, row["chunk_size"], row["overlap"])
            prepared.append({"doc_id": doc_id, "text": doc.text, "fields": doc.fields,
                             "metadata": doc.metadata,
                             "chunks": [{"position": n, "text": c.text, "start": c.start,
                                         "end": c.end} for n, c in enumerate(chunks)]})
            ids.append(doc_id)
        duplicates = sorted({d for d in ids if ids.count(d) > 1})
        if duplicates:
            raise InvalidInputError(f"duplicate document id(s) in one add: {duplicates}")
        if row["index_kind"] != "bm25" and prepared:
            self._embed_new(prepared)
        if prepared:
            self._lab.store.add_context_documents(row["guid"], prepared)
        return ids

    def _embed_new(self, prepared: list[dict[str, Any]]) -> None:
        embedder = self.embedder
        pairs = [(doc, chunk) for doc in prepared for chunk in doc["chunks"]]
        vectors = embedder.embed([search_text(doc, chunk["text"]) for doc, chunk in pairs])
        for (_doc, chunk), vector in zip(pairs, vectors):
            chunk["embedding"] = to_bytes(vector)
            chunk["embedding_model"] = embedder.model_id

    # -- search -----------------------------------------------------------------------------

    def search(self, name: str, query: str, top_k: int = 3,
               metadata_filter: Mapping[str, Any] | None = None,
               mode: str | None = None) -> list[dict[str, Any]]:
        """The ``top_k`` chunks best matching ``query`` among documents matching
        ``metadata_filter``, best first, shaped as the seed's search results::

            [{"record": {"id": "refunds#0", "document_id": "refunds", "text": "...",
                         ...document fields..., "metadata": {...}},
              "distance": 0.31}, ...]

        ``mode``: ``"bm25"``, ``"embeddings"`` or ``"hybrid"`` (default: the context's index).
        Distances are lower-is-better (see ``promptlab.contexts.index`` for each mode's scale).
        BM25 returns only chunks sharing at least one term with the query.
        """
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError(f"search query must be non-empty text, got {query!r}")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise ConfigError(f"top_k must be an integer from 1 to {MAX_TOP_K}, got {top_k!r}")
        if mode is not None and mode not in MODES:
            raise ConfigError(f"mode must be one of {list(MODES)}, got {mode!r}")
        return self._search(name, query, top_k, metadata_filter, mode)[0]

    def _search(self, name: str, query: str, top_k: int, metadata_filter: Mapping[str, Any] | None,
                mode: str | None) -> tuple[list[dict[str, Any]], str]:
        compile_filter(metadata_filter)  # invalid filters fail even on an empty context
        state = self._lab.store.context_state(name)
        if state is None:
            raise self._not_found(name)
        guid = state["guid"]
        index = self._index(guid, state["revision"])
        mode = mode or state["index_kind"]
        mask = index.mask(metadata_filter)
        if mode == "bm25":
            hits = index.search_bm25(query, top_k, mask)
        else:
            embedder = self.embedder
            self._ensure_vectors(guid, index, embedder)
            vector = embedder.embed([query])[0]
            if mode == "embeddings":
                hits = index.search_vectors(vector, top_k, mask)
            else:
                hits = index.search_hybrid(query, vector, top_k, mask)
        return [{"record": index.record(h.chunk), "distance": h.distance} for h in hits], mode

    async def asearch(self, name: str, query: str, top_k: int = 3,
                      metadata_filter: Mapping[str, Any] | None = None,
                      mode: str | None = None) -> list[dict[str, Any]]:
        """Async twin of ``search`` (runs in a worker thread)."""
        return await asyncio.to_thread(self.search, name, query, top_k, metadata_filter, mode)

    async def aadd(self, name: str, documents: Iterable[Any], *,
                   metadata: Mapping[str, Any] | None = None, http_client: Any = None) -> list[str]:
        """Async twin of ``add`` (runs in a worker thread; ``http_client`` is a sync client)."""
        return await asyncio.to_thread(self.add, name, documents, metadata=metadata,
                                       http_client=http_client)

    # -- internals --------------------------------------------------------------------------

    def _row(self, name: str) -> dict[str, Any]:
        if not isinstance(name, str):
            raise ConfigError(f"a context name must be a string, not {type(name).__name__}")
        row = self._lab.store.find_context(name)
        if row is None:
            raise self._not_found(name)
        return row

    def _not_found(self, name: str) -> NotFoundError:
        names = [c["name"] for c in self._lab.store.list_contexts()]
        return NotFoundError("context", name, f"known contexts: {names}" if names
                             else "no contexts yet; create one with lab.contexts.create(name)")

    def _index(self, guid: str, revision: int) -> ContextIndex:
        index = self._indexes.get(guid)
        if index is not None and index.revision == revision:
            return index
        with self._build_lock:
            index = self._indexes.get(guid)
            if index is not None and index.revision >= revision:
                return index
            raw = self._lab.store.context_snapshot(guid)
            position = {d["guid"]: i for i, d in enumerate(raw["documents"])}
            snapshot = Snapshot(
                revision=raw["revision"],
                documents=[{"id": d["doc_id"], "fields": d["fields"] or {},
                            "metadata": d["metadata"] or {}} for d in raw["documents"]],
                chunk_doc=[position[c["document_guid"]] for c in raw["chunks"]],
                chunk_position=[c["position"] for c in raw["chunks"]],
                chunk_text=[c["text"] for c in raw["chunks"]],
                chunk_keys=[c["id"] for c in raw["chunks"]])
            index = ContextIndex(snapshot)
            self._indexes[guid] = index
            self.index_builds += 1
            return index

    def _ensure_vectors(self, guid: str, index: ContextIndex, embedder: Embedder) -> None:
        if index.vector_model == embedder.model_id:
            return
        with self._build_lock:
            if index.vector_model == embedder.model_id:
                return
            stored = self._lab.store.context_chunk_embeddings(guid)
            snap = index.snapshot
            vectors: list[np.ndarray | None] = []
            todo = []
            for i, key in enumerate(snap.chunk_keys):
                blob, model = stored.get(key, (None, None))
                if blob is not None and model == embedder.model_id:
                    vectors.append(from_bytes(blob))
                else:
                    vectors.append(None)
                    todo.append(i)
            if todo:
                texts = [search_text(snap.documents[snap.chunk_doc[i]], snap.chunk_text[i])
                         for i in todo]
                computed = embedder.embed(texts)
                for i, vector in zip(todo, computed):
                    vectors[i] = np.asarray(vector, dtype=np.float32)
                self._lab.store.save_chunk_embeddings(
                    [(snap.chunk_keys[i], to_bytes(vectors[i])) for i in todo], embedder.model_id)
            matrix = (np.vstack(vectors) if vectors
                      else np.zeros((0, 1), dtype=np.float32))
            index.set_vectors(matrix, embedder.model_id)


# -- actions bound to a context -------------------------------------------------------------


def retrieve_for_action(lab: "Lab", action: "Action", variables: Mapping[str, Any],
                        metadata_filter: Mapping[str, Any] | None, call_fields: dict[str, Any],
                        user_text: str | None = None) -> dict[str, Any]:
    """Search the action's bound context and put the formatted results in its variable.

    Returns a new variables dict. Records ``call_fields["metadata"]["retrieval"]`` =
    ``{"context", "query", "mode", "top_k", "metadata_filter", "hits": [{"id", "document_id",
    "distance"}]}`` so the retrieval is logged with the generation. A variable the caller
    supplied themselves is left alone (retrieval is skipped and logged as such).
    """
    binding = parse_binding(action.context, action.name)
    try:
        template_fields(binding.template)
    except InvalidInputError as exc:
        raise ConfigError(f"action {action.name!r} context binding: {exc}") from None
    metadata = call_fields.setdefault("metadata", {})
    if metadata is None:
        metadata = call_fields["metadata"] = {}
    if binding.variable in variables:
        metadata["retrieval"] = {"context": binding.name, "skipped": "variable supplied",
                                 "variable": binding.variable}
        return dict(variables)
    query = _binding_query(action, binding, variables, user_text)
    results, mode = lab.contexts._search(binding.name, query, binding.top_k, metadata_filter,
                                         binding.mode)
    try:
        text = format_search_results(results, binding.template, binding.separator)
    except InvalidInputError as exc:
        raise ConfigError(f"action {action.name!r} context template {binding.template!r}: "
                          f"{exc}") from None
    metadata["retrieval"] = {
        "context": binding.name, "query": query, "mode": mode, "top_k": binding.top_k,
        "metadata_filter": dict(metadata_filter) if metadata_filter else None,
        "hits": [{"id": r["record"]["id"], "document_id": r["record"]["document_id"],
                  "distance": round(r["distance"], 6)} for r in results],
    }
    return {**variables, binding.variable: text}


def _binding_query(action: "Action", binding: Binding, variables: Mapping[str, Any],
                   user_text: str | None) -> str:
    if binding.query is not None:
        if binding.query not in variables:
            raise MissingVariablesError([binding.query], action.name)
        value = variables[binding.query]
    else:
        names = [v for v in action.variables if v in variables and v != binding.variable]
        if names:
            value = variables[names[0]]
        elif user_text is not None:
            value = user_text
        else:
            others = [v for v in action.variables if v != binding.variable]
            if others:
                raise MissingVariablesError(others, action.name)
            raise InvalidInputError(
                f"action {action.name!r} searches context {binding.name!r} but there is nothing "
                "to search with: pass a plain-string input, or set the binding's 'query'")
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if not text.strip():
        raise InvalidInputError(f"action {action.name!r}: the search query "
                                f"{binding.query or 'input'!r} is empty")
    return text


__all__ = ["Contexts", "Context", "retrieve_for_action", "format_search_results", "Embedder"]
