"""lab.contexts end to end on a real store: create/add/get/list/delete round trips, search shape,
filters before ranking, index caching across revisions and processes, embeddings plumbing with
a fake embedder, URL loading, and actions bound to a context through lab.actions.prompt."""

from __future__ import annotations

import hashlib
import re

import httpx2
import numpy as np
import pytest

import promptlab as pl
from promptlab.contexts import format_search_results
from promptlab.errors import (
    ConfigError,
    InvalidInputError,
    MissingVariablesError,
    NotFoundError,
)

HELP = [
    {"id": "acme-refunds", "title": "Refunds", "text": "Refunds for Acme are issued within five "
     "business days to the original card.", "metadata": {"tenant-id": "aa882-bb873", "user-id": "00379-28829999a", "year": 2024}},
    {"id": "acme-sso", "title": "Single sign-on", "text": "Acme workspaces sign in with SAML single "
     "sign-on through Okta.", "metadata": {"tenant-id": "aa882-bb873", "user-id": "00412-1", "year": 2023}},
    {"id": "globex-refunds", "title": "Refunds", "text": "Globex refunds are paid as store credit "
     "within thirty days.", "metadata": {"tenant-id": "cc001", "year": 2024}},
    {"id": "globex-invoices", "title": "Invoices", "text": "Globex invoices are emailed monthly and "
     "can be downloaded from Billing.", "metadata": {"tenant-id": "cc001", "year": 2022}},
]


@pytest.fixture
def kb(lab):
    lab.contexts.create("kb", chunk_size=200, overlap=20)
    lab.contexts.add("kb", HELP)
    return lab


class HashingEmbedder:
    """A real Embedder: hashed bag of lower-cased words, unit length. Counts texts embedded."""

    model_id = "hash-64"

    def __init__(self):
        self.embedded = 0

    def embed(self, texts):
        self.embedded += len(texts)
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] += 1
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)


# -- library round trips --------------------------------------------------------------------


def test_create_get_list(lab):
    created = lab.contexts.create("kb", chunk_size=300, overlap=30, description="Help center")
    assert (created.name, created.chunk_size, created.overlap, created.index, created.revision,
            created.documents, created.chunks) == ("kb", 300, 30, "bm25", 0, 0, 0)
    assert lab.contexts.get("kb") == created
    assert lab.contexts.get(created.guid).name == "kb"
    lab.contexts.create("another")
    assert [c.name for c in lab.contexts.list()] == ["another", "kb"]


def test_create_errors(lab):
    lab.contexts.create("kb")
    with pytest.raises(ConfigError, match="already exists"):
        lab.contexts.create("kb")
    with pytest.raises(ConfigError, match="invalid context name"):
        lab.contexts.create("")
    with pytest.raises(ConfigError, match="index must be one of"):
        lab.contexts.create("x", index="faiss")
    with pytest.raises(ConfigError, match="overlap"):
        lab.contexts.create("x", chunk_size=100, overlap=100)
    with pytest.raises(NotFoundError, match="no context 'nope'; known contexts: \\['kb'\\]"):
        lab.contexts.get("nope")
    with pytest.raises(NotFoundError):
        lab.contexts.add("nope", ["text"])
    with pytest.raises(NotFoundError):
        lab.contexts.search("nope", "query")


def test_add_stores_documents_chunks_and_metadata(kb):
    info = kb.contexts.get("kb")
    assert (info.documents, info.chunks, info.revision) == (4, 4, 1)
    docs = {d["id"]: d for d in kb.contexts.documents("kb")}
    assert set(docs) == {d["id"] for d in HELP}
    refunds = docs["acme-refunds"]
    assert refunds["title"] == "Refunds" and refunds["text"].startswith("Refunds for Acme")
    assert refunds["metadata"]["tenant-id"] == "aa882-bb873"
    assert refunds["metadata"]["source"] == "inline" and refunds["metadata"]["type"] == "text"
    assert re.match(r"\d{4}-\d\d-\d\dT", refunds["metadata"]["added_at"])


def test_add_returns_ids_and_generates_missing_ones(lab):
    lab.contexts.create("kb")
    ids = lab.contexts.add("kb", ["first text", {"text": "second", "id": 42}], metadata={"batch": 1})
    assert re.fullmatch(r"[0-9a-f-]{36}", ids[0]) and ids[1] == "42"
    assert all(d["metadata"]["batch"] == 1 for d in lab.contexts.documents("kb"))


def test_long_documents_are_chunked(lab):
    lab.contexts.create("kb", chunk_size=100, overlap=20)
    text = " ".join(f"Sentence number {i} talks about topic{i}." for i in range(30))
    [doc_id] = lab.contexts.add("kb", [{"text": text, "id": "long"}])
    info = lab.contexts.get("kb")
    assert info.chunks > 10
    [hit] = lab.contexts.search("kb", "topic17", top_k=1)
    assert "topic17" in hit["record"]["text"] and hit["record"]["id"].startswith("long#")
    assert len(hit["record"]["text"]) <= 100


def test_readding_an_id_replaces_the_document(kb):
    kb.contexts.add("kb", [{"id": "acme-refunds", "text": "Acme refunds now take two days.",
                            "metadata": {"tenant-id": "aa882-bb873"}}])
    docs = {d["id"]: d for d in kb.contexts.documents("kb")}
    assert len(docs) == 4 and docs["acme-refunds"]["text"] == "Acme refunds now take two days."
    [hit] = kb.contexts.search("kb", "refunds two days", top_k=1)
    assert hit["record"]["text"] == "Acme refunds now take two days."
    assert kb.contexts.get("kb").chunks == 4


def test_duplicate_ids_in_one_add(lab):
    lab.contexts.create("kb")
    with pytest.raises(InvalidInputError, match="duplicate document id"):
        lab.contexts.add("kb", [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}])
    assert lab.contexts.get("kb").documents == 0


def test_non_json_metadata_is_refused(lab):
    from datetime import date

    lab.contexts.create("kb")
    with pytest.raises(InvalidInputError, match="cannot be stored as JSON"):
        lab.contexts.add("kb", [{"text": "x", "metadata": {"day": date(2024, 1, 1)}}])


def test_delete_documents_and_context(kb):
    assert kb.contexts.delete("kb", ["globex-refunds", "globex-invoices"]) == 2
    assert {d["id"] for d in kb.contexts.documents("kb")} == {"acme-refunds", "acme-sso"}
    assert kb.contexts.get("kb").chunks == 2
    with pytest.raises(NotFoundError, match="nothing was deleted"):
        kb.contexts.delete("kb", ["acme-sso", "unknown"])
    assert kb.contexts.get("kb").documents == 2
    assert kb.contexts.delete("kb") == 2
    with pytest.raises(NotFoundError):
        kb.contexts.get("kb")
    assert kb.store.dump_table("context_chunks") == []
    assert kb.store.dump_table("context_documents") == []


# -- search -----------------------------------------------------------------------------------


def test_search_shape_best_first(kb):
    results = kb.contexts.search("kb", "how are refunds paid", top_k=3)
    assert [r["record"]["document_id"] for r in results][:2] == ["globex-refunds", "acme-refunds"] or \
        [r["record"]["document_id"] for r in results][:2] == ["acme-refunds", "globex-refunds"]
    first = results[0]
    assert set(first) == {"record", "distance"}
    assert list(first["record"]) == ["id", "document_id", "text", "title", "metadata"]
    assert first["record"]["id"] == first["record"]["document_id"] + "#0"
    assert isinstance(first["distance"], float) and 0 < first["distance"] < 1
    distances = [r["distance"] for r in results]
    assert distances == sorted(distances)


def test_seed_filter_on_many_keys(kb):
    results = kb.contexts.search("kb", "refunds single sign-on", top_k=5,
                                 metadata_filter={"user-id": "00379-28829999a",
                                                  "tenant-id": "aa882-bb873"})
    assert [r["record"]["document_id"] for r in results] == ["acme-refunds"]


def test_filter_applies_before_ranking_so_top_k_counts_matching_docs(kb):
    # Unfiltered, the two best hits for "refunds" are one per tenant; filtered to cc001 with
    # top_k=2 we must get two cc001 documents (the second matches on "globex"), not one.
    unfiltered = kb.contexts.search("kb", "Globex refunds", top_k=2)
    assert {r["record"]["metadata"]["tenant-id"] for r in unfiltered} == {"cc001", "aa882-bb873"}
    filtered = kb.contexts.search("kb", "Globex refunds", top_k=2, metadata_filter={"tenant-id": "cc001"})
    assert [r["record"]["document_id"] for r in filtered] == ["globex-refunds", "globex-invoices"]


def test_operator_filters_through_search(kb):
    recent = kb.contexts.search("kb", "refunds invoices sign", top_k=10,
                                metadata_filter={"year": {"$gte": 2024}})
    assert {r["record"]["document_id"] for r in recent} == {"acme-refunds", "globex-refunds"}
    either = kb.contexts.search("kb", "refunds invoices sign", top_k=10, metadata_filter={
        "$or": [{"tenant-id": "cc001", "year": {"$lt": 2023}}, {"user-id": {"$in": ["00412-1"]}}]})
    assert {r["record"]["document_id"] for r in either} == {"globex-invoices", "acme-sso"}
    assert kb.contexts.search("kb", "refunds", metadata_filter={"tenant-id": "nobody"}) == []


@pytest.mark.parametrize("kwargs, error, fragment", [
    ({"metadata_filter": {"year": {"$between": [1, 2]}}}, InvalidInputError, "unknown operator '$between'"),
    ({"metadata_filter": {"tenant-id": {"$in": "cc001"}}}, InvalidInputError, "$in needs a list"),
    ({"metadata_filter": "tenant-id=cc001"}, InvalidInputError, "must be a dict"),
    ({"top_k": 0}, ConfigError, "top_k"),
    ({"top_k": "3"}, ConfigError, "top_k"),
    ({"mode": "vector"}, ConfigError, "mode must be one of"),
])
def test_search_argument_errors(kb, kwargs, error, fragment):
    with pytest.raises(error) as info:
        kb.contexts.search("kb", "refunds", **kwargs)
    assert fragment in str(info.value)


def test_empty_query_is_refused(kb):
    with pytest.raises(InvalidInputError, match="non-empty text"):
        kb.contexts.search("kb", "  ")


def test_search_on_an_empty_context(lab):
    lab.contexts.create("empty")
    assert lab.contexts.search("empty", "anything") == []
    with pytest.raises(InvalidInputError):  # invalid filters fail even with nothing to search
        lab.contexts.search("empty", "anything", metadata_filter={"$nope": 1})


def test_filter_values_never_reach_sql(kb):
    hostile = "x'); DROP TABLE context_documents; --"
    assert kb.contexts.search("kb", "refunds", metadata_filter={"tenant-id": hostile}) == []
    assert kb.contexts.search("kb", hostile) == []
    assert len(kb.contexts.documents("kb")) == 4


def test_results_feed_format_search_results(kb):
    results = kb.contexts.search("kb", "refunds", top_k=2, metadata_filter={"tenant-id": "cc001"})
    assert format_search_results(results, "{title} - {text}") == (
        "Refunds - Globex refunds are paid as store credit within thirty days.")
    with pytest.raises(InvalidInputError, match="no field 'body'"):
        format_search_results(results, "{title} - {body}")


def test_seed_title_body_records(lab):
    lab.contexts.create("catalog")
    lab.contexts.add("catalog", [{"title": "Blue widget", "body": "A small blue widget."},
                                 {"title": "Red gadget", "body": "A large red gadget."}])
    results = lab.contexts.search("catalog", "blue widget", top_k=1)
    assert format_search_results(results, "{title} - {body}") == "Blue widget - A small blue widget."


# -- the in-process index ---------------------------------------------------------------------


def test_index_is_reused_until_the_content_changes(kb):
    kb.contexts.search("kb", "refunds")
    kb.contexts.search("kb", "invoices", metadata_filter={"tenant-id": "cc001"})
    assert kb.contexts.index_builds == 1
    kb.contexts.add("kb", [{"id": "new", "text": "Refunds to PayPal take one day."}])
    hits = kb.contexts.search("kb", "PayPal")
    assert [h["record"]["document_id"] for h in hits] == ["new"]
    assert kb.contexts.index_builds == 2
    kb.contexts.delete("kb", ["new"])
    assert kb.contexts.search("kb", "PayPal") == []
    assert kb.contexts.index_builds == 3


def test_another_process_sees_new_documents(kb, tmp_path):
    kb.contexts.search("kb", "refunds")  # this lab has an index at revision 1
    with pl.Lab(kb.store.url) as other:  # another process: its own store connection and cache
        assert other.contexts.search("kb", "PayPal") == []
        other.contexts.add("kb", [{"id": "paypal", "text": "Refunds to PayPal take one day."}])
    hits = kb.contexts.search("kb", "PayPal")
    assert [h["record"]["document_id"] for h in hits] == ["paypal"]


# -- embeddings plumbing (a fake embedder; the real model is tested in test_context_embeddings) --


def test_embeddings_and_hybrid_modes_with_an_injected_embedder(kb):
    embedder = HashingEmbedder()
    kb.contexts.embedder = embedder
    results = kb.contexts.search("kb", "Globex refunds store credit", top_k=2, mode="embeddings")
    assert results[0]["record"]["document_id"] == "globex-refunds"
    assert 0 <= results[0]["distance"] <= 2
    assert embedder.embedded == 4 + 1  # every chunk once, then the query
    hybrid = kb.contexts.search("kb", "Globex refunds store credit", top_k=2, mode="hybrid",
                                metadata_filter={"tenant-id": "cc001"})
    assert [r["record"]["metadata"]["tenant-id"] for r in hybrid] == ["cc001", "cc001"]
    assert hybrid[0]["record"]["document_id"] == "globex-refunds"
    assert hybrid[0]["distance"] == pytest.approx(0.0)
    assert embedder.embedded == 4 + 2  # chunk vectors were kept; only the query is new


def test_chunk_embeddings_are_stored_and_reused_by_another_lab(kb):
    first = HashingEmbedder()
    kb.contexts.embedder = first
    kb.contexts.search("kb", "refunds", mode="embeddings")
    assert first.embedded == 5
    with pl.Lab(kb.store.url) as other:
        second = HashingEmbedder()
        other.contexts.embedder = second
        other.contexts.search("kb", "refunds", mode="embeddings")
        assert second.embedded == 1  # the query only: chunk vectors came from the store


def test_embeddings_index_embeds_on_add(lab):
    embedder = HashingEmbedder()
    lab.contexts.embedder = embedder
    lab.contexts.create("vec", index="hybrid")
    lab.contexts.add("vec", HELP)
    assert embedder.embedded == 4
    results = lab.contexts.search("vec", "SAML Okta", top_k=1)  # hybrid by default
    assert results[0]["record"]["document_id"] == "acme-sso"
    assert embedder.embedded == 5


def test_embedder_must_implement_the_protocol(lab):
    with pytest.raises(ConfigError, match="model_id"):
        lab.contexts.embedder = object()


# -- URLs and files through add -----------------------------------------------------------------


def test_add_urls_with_an_injected_http_client(lab):
    pages = {"https://help.example.com/sso": "<html><head><title>SSO</title></head><body>"
             "<p>Configure SAML with Okta.</p></body></html>"}
    seen = []

    def handler(request):
        seen.append(str(request.url))
        body = pages.get(str(request.url))
        if body is None:
            return httpx2.Response(404)
        return httpx2.Response(200, text=body, headers={"content-type": "text/html"})

    client = httpx2.Client(transport=httpx2.MockTransport(handler))
    lab.contexts.create("web")
    [doc_id] = lab.contexts.add("web", ["https://help.example.com/sso"], http_client=client,
                                metadata={"tenant-id": "aa882"})
    [hit] = lab.contexts.search("web", "Okta", metadata_filter={"tenant-id": "aa882"})
    assert hit["record"]["title"] == "SSO" and hit["record"]["text"] == "Configure SAML with Okta."
    assert hit["record"]["metadata"]["source"] == "https://help.example.com/sso"
    assert hit["record"]["metadata"]["type"] == "html"
    with pytest.raises(InvalidInputError, match="HTTP 404"):
        lab.contexts.add("web", ["https://help.example.com/missing"], http_client=client)
    assert seen == ["https://help.example.com/sso", "https://help.example.com/missing"]
    assert lab.contexts.get("web").documents == 1


def test_add_files(lab, tmp_path):
    (tmp_path / "faq.md").write_text("# FAQ\n\nPasswords expire every ninety days.\n")
    lab.contexts.create("files")
    lab.contexts.add("files", [tmp_path / "faq.md"], metadata={"product": "auth"})
    [hit] = lab.contexts.search("files", "password expiry", metadata_filter={"type": "markdown"})
    assert hit["record"]["title"] == "FAQ"
    assert hit["record"]["metadata"]["filename"] == "faq.md"
    assert hit["record"]["metadata"]["product"] == "auth"


async def test_async_twins(kb):
    ids = await kb.contexts.aadd("kb", [{"id": "async", "text": "Async refunds arrive instantly."}])
    assert ids == ["async"]
    results = await kb.contexts.asearch("kb", "instantly", top_k=1)
    assert results[0]["record"]["document_id"] == "async"


# -- actions bound to a context ----------------------------------------------------------------


def support_action(lab, **binding):
    return lab.actions.create(
        "support", system="Answer using only the context.",
        prompt="Context:\n{{context}}\n\nQuestion: {{question}}", model="sim:extractive",
        context={"name": "kb", "top_k": 2, **binding})


def test_action_answers_from_retrieved_text_and_logs_hits(kb):
    support_action(kb)
    r = kb.actions.prompt("support", {"question": "How are refunds paid?"},
                          metadata_filter={"tenant-id": "aa882-bb873"})
    assert "Refunds for Acme are issued within five business days" in r.msg
    assert "Globex" not in r.msg
    retrieval = r.metadata["retrieval"]
    assert retrieval["context"] == "kb" and retrieval["query"] == "How are refunds paid?"
    assert retrieval["mode"] == "bm25" and retrieval["top_k"] == 2
    assert retrieval["metadata_filter"] == {"tenant-id": "aa882-bb873"}
    assert [h["id"] for h in retrieval["hits"]] == ["acme-refunds#0"]
    assert 0 < retrieval["hits"][0]["distance"] < 1
    # the generation row in the store carries the same hits
    row = kb.store.get_generation(r.guid)
    assert row["metadata"]["retrieval"]["hits"] == retrieval["hits"]
    assert "Refunds for Acme" in row["messages"][-1]["content"]


def test_metadata_filter_switches_tenant(kb):
    support_action(kb)
    r = kb.actions.prompt("support", {"question": "How are refunds paid?"},
                          metadata_filter={"tenant-id": "cc001"})
    assert "store credit" in r.msg
    assert [h["document_id"] for h in r.metadata["retrieval"]["hits"]] == ["globex-refunds"]


def test_formatted_prompt_shows_retrieved_context(kb):
    support_action(kb, template="[{title}] {text}", separator="\n")
    messages = kb.actions.get_action_prompt("support", {"question": "invoices"},
                                            metadata_filter={"tenant-id": "cc001"})
    assert messages[-1]["content"] == ("Context:\n[Invoices] Globex invoices are emailed monthly "
                                       "and can be downloaded from Billing.\n\nQuestion: invoices")


def test_query_variable_and_plain_string_input(kb):
    kb.actions.create("lookup", prompt="Topic: {{topic}}\nNotes:\n{{notes}}\nAsk: {{ask}}",
                      model="sim:extractive",
                      context={"name": "kb", "variable": "notes", "query": "ask", "top_k": 1})
    r = kb.actions.prompt("lookup", {"topic": "billing", "ask": "Okta"})
    assert r.metadata["retrieval"]["query"] == "Okta"
    assert [h["document_id"] for h in r.metadata["retrieval"]["hits"]] == ["acme-sso"]
    with pytest.raises(MissingVariablesError, match="'ask'"):
        kb.actions.prompt("lookup", {"topic": "billing"})
    kb.actions.create("single", prompt="{{context}}\n\nQ: {{q}}", model="sim:extractive",
                      context={"name": "kb", "variable": "context", "top_k": 1})
    r = kb.actions.prompt("single", "store credit")  # a plain string fills the one variable
    assert r.metadata["retrieval"]["query"] == "store credit"
    assert "store credit" in r.msg


def test_caller_supplied_variable_skips_retrieval(kb):
    support_action(kb)
    r = kb.actions.prompt("support", {"question": "refunds?", "context": "Refunds: never."})
    assert r.metadata["retrieval"] == {"context": "kb", "skipped": "variable supplied",
                                       "variable": "context"}
    assert "Refunds: never." in kb.store.get_generation(r.guid)["messages"][-1]["content"]


def test_no_hits_gives_an_empty_context(kb):
    support_action(kb)
    r = kb.actions.prompt("support", {"question": "zebra"})
    assert r.metadata["retrieval"]["hits"] == []


@pytest.mark.parametrize("binding, error, fragment", [
    ({"name": "missing"}, NotFoundError, "no context 'missing'"),
    ({"name": "kb", "top_k": 0}, ConfigError, "top_k must be an integer"),
    ({"name": "kb", "bogus": 1}, ConfigError, "unknown key(s) ['bogus']"),
    ({"name": "kb", "template": "{summary}"}, ConfigError, "no field 'summary'"),
    ({"name": "kb", "template": "{0}"}, ConfigError, "positional"),
    ({"name": "kb", "mode": "dense"}, ConfigError, "mode must be one of"),
    ({"top_k": 2}, ConfigError, "needs 'name'"),
])
def test_bad_bindings_fail_clearly_and_are_logged(kb, binding, error, fragment):
    kb.actions.create("bad", prompt="{{context}} {{question}}", model="sim:extractive", context=binding)
    with pytest.raises(error) as info:
        kb.actions.prompt("bad", {"question": "refunds"})
    assert fragment in str(info.value)
    [row] = kb.store.list_generations(action="bad")
    assert row["status"] == "error"


def test_invalid_metadata_filter_on_prompt(kb):
    support_action(kb)
    with pytest.raises(InvalidInputError, match="unknown operator"):
        kb.actions.prompt("support", {"question": "refunds"}, metadata_filter={"$xor": []})
