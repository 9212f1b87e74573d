"""The in-memory index (promptlab.contexts.index): BM25 ranking and distances, filtering
before ranking, vectors, reciprocal rank fusion."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptlab.contexts.index import ContextIndex, Snapshot, rrf


def snapshot(docs: list[tuple[str, str, dict]], revision: int = 1) -> Snapshot:
    """One chunk per document: (id, text, metadata)."""
    return Snapshot(revision=revision,
                    documents=[{"id": i, "fields": {}, "metadata": m} for i, _t, m in docs],
                    chunk_doc=list(range(len(docs))), chunk_position=[0] * len(docs),
                    chunk_text=[t for _i, t, _m in docs], chunk_keys=list(range(len(docs))))


DOCS = [
    ("reset", "How to reset your password from the login page", {"tenant": "a", "year": 2024}),
    ("rotate", "Rotate API keys and passwords every ninety days", {"tenant": "b", "year": 2023}),
    ("refund", "Refunds are issued within five business days", {"tenant": "a", "year": 2022}),
    ("invoice", "Invoices are emailed monthly; download them from Billing", {"tenant": "b", "year": 2024}),
    ("sso", "Single sign-on with SAML: configure your identity provider", {"tenant": "a", "year": 2021}),
]


def ids(index: ContextIndex, hits) -> list[str]:
    return [index.record(h.chunk)["document_id"] for h in hits]


def test_bm25_ranks_by_term_overlap_with_stemming():
    index = ContextIndex(snapshot(DOCS))
    hits = index.search_bm25("resetting my passwords", top_k=5)
    assert ids(index, hits) == ["reset", "rotate"]  # only chunks sharing a term; stems match
    assert hits[0].distance < hits[1].distance


def test_bm25_distance_is_one_over_one_plus_score():
    index = ContextIndex(snapshot(DOCS))
    scores = index.bm25_scores("refunds business days")
    [hit] = index.search_bm25("refunds business days", top_k=1)
    assert hit.distance == pytest.approx(1 / (1 + scores.max()))
    assert 0 < hit.distance < 1


def test_no_shared_term_means_no_result():
    index = ContextIndex(snapshot(DOCS))
    assert index.search_bm25("zebra giraffe", top_k=3) == []
    assert index.search_bm25("the and of", top_k=3) == []  # stop words only


def test_filter_is_applied_before_ranking_so_top_k_counts_matching_chunks():
    index = ContextIndex(snapshot(DOCS))
    # Unfiltered, tenant b's "rotate" document is second; filtered to tenant a, top_k=2 must
    # still give two tenant-a documents rather than one after dropping "rotate".
    docs = DOCS + [("reset2", "Password reset emails expire after one hour", {"tenant": "a", "year": 2020})]
    index = ContextIndex(snapshot(docs))
    unfiltered = ids(index, index.search_bm25("password reset", top_k=3))
    assert "rotate" in unfiltered
    mask = index.mask({"tenant": "a"})
    filtered = ids(index, index.search_bm25("password reset", top_k=2, mask=mask))
    assert filtered == ["reset", "reset2"]


def test_mask_is_cached_per_filter():
    index = ContextIndex(snapshot(DOCS))
    first = index.mask({"year": {"$gte": 2023}})
    assert first.tolist() == [True, True, False, True, False]
    assert index.mask({"year": {"$gte": 2023}}) is first
    assert index.mask(None) is None and index.mask({}) is None


def test_empty_index():
    index = ContextIndex(snapshot([]))
    assert index.search_bm25("anything", top_k=3) == []
    index.set_vectors(np.zeros((0, 4), dtype=np.float32), "fake")
    assert index.search_vectors(np.ones(4), top_k=3) == []


def test_vectors_cosine_distance_and_mask():
    index = ContextIndex(snapshot(DOCS))
    vectors = np.eye(5, dtype=np.float32)
    index.set_vectors(vectors, "fake")
    query = np.array([0.0, 0.8, 0.6, 0.0, 0.0], dtype=np.float32)
    hits = index.search_vectors(query, top_k=2)
    assert ids(index, hits) == ["rotate", "refund"]
    assert [h.distance for h in hits] == pytest.approx([0.2, 0.4])
    masked = index.search_vectors(query, top_k=2, mask=index.mask({"tenant": "a"}))
    assert ids(index, masked) == ["refund", "reset"]  # reset: cosine 0 -> distance 1
    assert masked[1].distance == pytest.approx(1.0)
    with pytest.raises(ValueError):
        index.set_vectors(np.eye(3, dtype=np.float32), "fake")


def test_rrf():
    fused = rrf([["a", "b", "c"], ["c", "a"]])
    assert [item for item, _ in fused] == ["a", "c", "b"]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert rrf([]) == []


def test_hybrid_fuses_and_normalises_distance():
    index = ContextIndex(snapshot(DOCS))
    vectors = np.eye(5, dtype=np.float32)
    index.set_vectors(vectors, "fake")
    # BM25 prefers "reset"; the vector prefers "reset" too: it is first in both, distance 0.
    hits = index.search_hybrid("reset password", np.array([1, 0, 0, 0, 0], dtype=np.float32), top_k=3)
    assert ids(index, hits)[0] == "reset"
    assert hits[0].distance == pytest.approx(0.0)
    assert all(0 <= h.distance < 1 for h in hits)
    assert [h.distance for h in hits] == sorted(h.distance for h in hits)
    # a document found only by vectors still appears
    only_vec = index.search_hybrid("zebra", np.array([0, 0, 0, 0, 1], dtype=np.float32), top_k=1)
    assert ids(index, only_vec) == ["sso"]


def test_record_shape():
    snap = Snapshot(revision=3, documents=[{"id": "faq-1", "fields": {"title": "Refunds", "body": "B"},
                                            "metadata": {"tenant": "a"}}],
                    chunk_doc=[0, 0], chunk_position=[0, 1], chunk_text=["first", "second"])
    index = ContextIndex(snap)
    assert index.record(1) == {"id": "faq-1#1", "document_id": "faq-1", "text": "second",
                               "title": "Refunds", "body": "B", "metadata": {"tenant": "a"}}
    assert list(index.record(1)) == ["id", "document_id", "text", "title", "body", "metadata"]
    # the title is indexed for BM25 with every chunk of the document
    assert ids(index, index.search_bm25("refunds", top_k=5)) == ["faq-1", "faq-1"]


words = st.sampled_from(["password", "reset", "refund", "invoice", "billing", "sso", "key"])


@settings(max_examples=80, deadline=None)
@given(docs=st.lists(st.tuples(st.sampled_from(["t1", "t2", "t3"]), st.lists(words, min_size=1, max_size=6)),
                     min_size=1, max_size=25),
       tenant=st.sampled_from(["t1", "t2", "t3"]), query=st.lists(words, min_size=1, max_size=3),
       top_k=st.integers(1, 8))
def test_property_tenant_filter_never_returns_another_tenant(docs, tenant, query, top_k):
    index = ContextIndex(snapshot([(str(i), " ".join(w), {"tenant-id": t})
                                   for i, (t, w) in enumerate(docs)]))
    mask = index.mask({"tenant-id": tenant})
    hits = index.search_bm25(" ".join(query), top_k=top_k, mask=mask)
    assert all(index.record(h.chunk)["metadata"]["tenant-id"] == tenant for h in hits)
    # and top_k counts only the tenant's documents: as many as exist with a shared term
    relevant = [i for i, (t, w) in enumerate(docs) if t == tenant and set(w) & set(query)]
    assert len(hits) == min(top_k, len(relevant))
