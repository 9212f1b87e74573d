"""In-memory search over one revision of a context (pure: no I/O).

A ``ContextIndex`` holds a context's chunks and their documents' metadata as loaded from the
store at one revision. It ranks chunks three ways:

- **BM25** (``bm25s``, Lucene variant, English stop words, Snowball stemming). Only chunks that
  share a term with the query are returned. ``distance = 1 / (1 + score)``, in (0, 1].
- **embeddings**: cosine similarity of unit vectors. ``distance = 1 - cosine``, in [0, 2].
- **hybrid**: reciprocal rank fusion (RRF, k=60) of the two rankings, each taken over the
  best ``max(50, 5 * top_k)`` matching chunks. ``distance = 1 - rrf / rrf_max``, in [0, 1),
  where ``rrf_max = 2 / 61`` is the score of a chunk ranked first by both.

Lower distance is better in every mode. Metadata filters are applied *before* ranking, as a
boolean mask over chunks, so ``top_k`` counts only matching chunks. Filter masks are cached per
filter (a tenant filter repeated on every call costs one dictionary lookup); a new filter is
evaluated over an inverted index of the metadata (``filters.MetadataTable``), not per document.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .filters import MetadataTable, compile_mask, filter_key

RRF_K = 60
HYBRID_POOL = 50
_MASK_CACHE_SIZE = 64


@dataclass
class Snapshot:
    """A context's content at one revision, as the store returns it."""

    revision: int
    documents: list[dict[str, Any]]  # {"id", "fields", "metadata"} in a fixed order
    chunk_doc: list[int]  # for each chunk: its document's position in ``documents``
    chunk_position: list[int]  # the chunk's number within its document
    chunk_text: list[str]
    chunk_keys: list[Any] = field(default_factory=list)  # store keys, to save embeddings


@dataclass(frozen=True)
class Hit:
    chunk: int  # index into the snapshot's chunks
    distance: float


class _Tokenizer:
    """bm25s's tokenizer with English stop words and the Snowball stemmer."""

    def __init__(self):
        import Stemmer
        from bm25s.tokenization import Tokenizer

        self.inner = Tokenizer(stopwords="en", stemmer=Stemmer.Stemmer("english"))


def search_text(document: Mapping[str, Any], chunk: str) -> str:
    """The text BM25 indexes for a chunk: the document title (if any) and the chunk."""
    title = document.get("fields", {}).get("title")
    return f"{title}\n{chunk}" if isinstance(title, str) and title else chunk


class ContextIndex:
    """Searchable view of one snapshot. Thread-safe; builds each sub-index on first use."""

    def __init__(self, snapshot: Snapshot):
        self.snapshot = snapshot
        self.revision = snapshot.revision
        self.size = len(snapshot.chunk_text)
        self._chunk_doc = np.asarray(snapshot.chunk_doc, dtype=np.int64)
        self._lock = threading.Lock()
        self._bm25 = None
        self._tokenizer = None
        self._empty_token: int | None = None
        self._vectors: np.ndarray | None = None
        self._vector_model: str | None = None
        self._masks: OrderedDict[str, np.ndarray] = OrderedDict()
        self._table: MetadataTable | None = None

    # -- filters ------------------------------------------------------------------------

    def mask(self, metadata_filter: Mapping[str, Any] | None) -> np.ndarray | None:
        """Boolean mask of chunks whose document matches (None: no filter)."""
        if not metadata_filter:
            return None
        key = filter_key(metadata_filter)
        with self._lock:
            cached = self._masks.get(key)
            if cached is not None:
                self._masks.move_to_end(key)
                return cached
        doc_ok = compile_mask(metadata_filter)(self._metadata_table())
        chunk_ok = doc_ok[self._chunk_doc] if self.size else np.zeros(0, dtype=bool)
        with self._lock:
            self._masks[key] = chunk_ok
            while len(self._masks) > _MASK_CACHE_SIZE:
                self._masks.popitem(last=False)
        return chunk_ok

    def _metadata_table(self) -> MetadataTable:
        if self._table is None:
            self._table = MetadataTable([d["metadata"] or {} for d in self.snapshot.documents])
        return self._table

    # -- BM25 ---------------------------------------------------------------------------

    def _ensure_bm25(self) -> None:
        if self._bm25 is not None:
            return
        with self._lock:
            if self._bm25 is not None:
                return
            import bm25s

            tokenizer = _Tokenizer().inner
            docs = self.snapshot.documents
            texts = [search_text(docs[d], text)
                     for d, text in zip(self.snapshot.chunk_doc, self.snapshot.chunk_text)]
            tokens = tokenizer.tokenize(texts, return_as="tuple", show_progress=False)
            retriever = bm25s.BM25(method="lucene")
            retriever.index(tokens, show_progress=False)
            self._empty_token = tokenizer.get_vocab_dict().get("")
            self._tokenizer = tokenizer
            self._bm25 = retriever

    def bm25_scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk for ``query`` (0 where no query term occurs)."""
        if self.size == 0:
            return np.zeros(0, dtype=np.float32)
        self._ensure_bm25()
        with self._lock:  # the tokenizer's vocabulary lookups are not thread-safe
            ids = self._tokenizer.tokenize([query], update_vocab=False, return_as="ids",
                                           show_progress=False)[0]
        ids = [i for i in ids if i != self._empty_token]
        if not ids:
            return np.zeros(self.size, dtype=np.float32)
        return self._bm25.get_scores_from_ids(ids)

    def search_bm25(self, query: str, top_k: int, mask: np.ndarray | None = None) -> list[Hit]:
        scores = self.bm25_scores(query)
        order = _top(scores, top_k, mask, positive_only=True)
        return [Hit(int(i), float(1.0 / (1.0 + scores[i]))) for i in order]

    # -- embeddings ---------------------------------------------------------------------

    @property
    def vector_model(self) -> str | None:
        return self._vector_model

    def set_vectors(self, vectors: np.ndarray, model_id: str) -> None:
        if vectors.shape[0] != self.size:
            raise ValueError(f"expected {self.size} vectors, got {vectors.shape[0]}")
        self._vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._vector_model = model_id

    def cosine(self, query_vector: np.ndarray) -> np.ndarray:
        if self._vectors is None:
            raise RuntimeError("vectors not loaded")
        if self.size == 0:
            return np.zeros(0, dtype=np.float32)
        return self._vectors @ np.asarray(query_vector, dtype=np.float32).reshape(-1)

    def search_vectors(self, query_vector: np.ndarray, top_k: int,
                       mask: np.ndarray | None = None) -> list[Hit]:
        sims = self.cosine(query_vector)
        order = _top(sims, top_k, mask, positive_only=False)
        return [Hit(int(i), float(1.0 - sims[i])) for i in order]

    # -- hybrid -------------------------------------------------------------------------

    def search_hybrid(self, query: str, query_vector: np.ndarray, top_k: int,
                      mask: np.ndarray | None = None) -> list[Hit]:
        pool = max(HYBRID_POOL, 5 * top_k)
        lexical = [h.chunk for h in self.search_bm25(query, pool, mask)]
        semantic = [h.chunk for h in self.search_vectors(query_vector, pool, mask)]
        fused = rrf([lexical, semantic])
        best = 2.0 / (RRF_K + 1)
        return [Hit(chunk, 1.0 - score / best) for chunk, score in fused[:top_k]]

    # -- records ------------------------------------------------------------------------

    def record(self, chunk: int) -> dict[str, Any]:
        """The seed's search-result record for a chunk: ``id`` (``<document id>#<chunk
        number>``), ``document_id``, ``text`` (the chunk), the document's own fields (``title``,
        ``body``, ...) and ``metadata``."""
        snap = self.snapshot
        doc = snap.documents[snap.chunk_doc[chunk]]
        record = {"id": f"{doc['id']}#{snap.chunk_position[chunk]}", "document_id": doc["id"],
                  "text": snap.chunk_text[chunk]}
        record.update((k, v) for k, v in doc["fields"].items() if k not in record)
        record["metadata"] = dict(doc["metadata"] or {})
        return record


def _top(scores: np.ndarray, k: int, mask: np.ndarray | None, positive_only: bool) -> list[int]:
    """Indices of the ``k`` best scores among allowed chunks, best first (ties: lower index)."""
    if scores.size == 0 or k <= 0:
        return []
    allowed = np.ones(scores.shape, dtype=bool) if mask is None else mask.copy()
    if positive_only:
        allowed &= scores > 0
    candidates = np.flatnonzero(allowed)
    if candidates.size == 0:
        return []
    values = scores[candidates]
    if candidates.size > k:
        part = np.argpartition(-values, k - 1)[:k]
        candidates, values = candidates[part], values[part]
    order = np.lexsort((candidates, -values))
    return [int(i) for i in candidates[order]]


def rrf(rankings: Sequence[Sequence[Any]], k: int = RRF_K) -> list[tuple[Any, float]]:
    """Reciprocal rank fusion: ``score(d) = sum 1 / (k + rank)`` over the rankings (rank from 1).

    >>> rrf([["a", "b"], ["b", "c"]])[0][0]
    'b'
    """
    scores: dict[Any, float] = {}
    first_seen: dict[Any, int] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
            first_seen.setdefault(item, len(first_seen))
    return sorted(scores.items(), key=lambda kv: (-kv[1], first_seen[kv[0]]))


__all__ = ["ContextIndex", "Snapshot", "Hit", "rrf", "search_text", "RRF_K"]
