"""The offline all-MiniLM-L6-v2 embedder (promptlab.contexts.embeddings) and the embeddings and
hybrid search modes with it. Tests that need the ``embeddings`` extra are marked ``embeddings``;
the missing-extra errors are tested without it."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from promptlab.contexts import embeddings
from promptlab.errors import ConfigError



def needs_extra(test):
    """Marked ``embeddings`` (deselect with -m "not embeddings"); skipped without the extra."""
    skip = pytest.mark.skipif(not embeddings.embeddings_available(),
                              reason="the 'embeddings' extra is not installed")
    return pytest.mark.embeddings(skip(test))


@needs_extra
def test_matches_the_published_sentence_transformers_similarities():
    # sentence-transformers' quickstart, with all-MiniLM-L6-v2 (fp32): 0.6660, 0.1046, 0.1411.
    # The int8 ONNX export must stay within 0.01 of them.
    model = embeddings.default_embedder()
    vectors = model.embed(["The weather is lovely today.", "It's so sunny outside!",
                           "He drove to the stadium."])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1, 1, 1], abs=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] == pytest.approx(0.6660, abs=0.01)
    assert sims[0, 2] == pytest.approx(0.1046, abs=0.01)
    assert sims[1, 2] == pytest.approx(0.1411, abs=0.01)


@needs_extra
def test_batches_and_order_do_not_change_vectors():
    model = embeddings.MiniLMEmbedder(batch_size=2)
    texts = ["short", "a much longer sentence about resetting passwords in the app", "medium text"]
    together = model.embed(texts)
    alone = np.vstack([model.embed([t]) for t in texts])
    assert together == pytest.approx(alone, abs=1e-4)


@needs_extra
def test_long_inputs_are_truncated_not_refused():
    vector = embeddings.default_embedder().embed(["word " * 2000])
    assert vector.shape == (1, 384)


@needs_extra
def test_semantic_search_finds_paraphrases_bm25_misses(lab):
    lab.contexts.create("kb", index="embeddings")
    lab.contexts.add("kb", [
        {"id": "pw", "text": "To change a forgotten login credential, use the recovery link."},
        {"id": "bill", "text": "Invoices are emailed on the first day of every month."},
        {"id": "sso", "text": "Single sign-on works with SAML identity providers such as Okta."},
    ])
    assert lab.contexts.search("kb", "I can't remember my password", mode="bm25") == []
    [hit] = lab.contexts.search("kb", "I can't remember my password", top_k=1)
    assert hit["record"]["document_id"] == "pw"
    assert 0 <= hit["distance"] < 1
    hybrid = lab.contexts.search("kb", "monthly invoice email", top_k=2, mode="hybrid")
    assert hybrid[0]["record"]["document_id"] == "bill"


def test_missing_extra_is_a_clear_config_error(monkeypatch, lab):
    # None in sys.modules makes `import onnxruntime` fail as if it were not installed.
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setattr(embeddings, "_default", None)
    with pytest.raises(ConfigError) as info:
        embeddings.MiniLMEmbedder()
    assert "pip install 'jupyter-promptlab[embeddings]'" in str(info.value)
    assert "onnxruntime" in str(info.value)
    # a context that needs embeddings fails at creation, a BM25 one is unaffected
    with pytest.raises(ConfigError, match="embeddings"):
        lab.contexts.create("vec", index="hybrid")
    lab.contexts.create("kb")
    lab.contexts.add("kb", ["Refunds take five days."])
    assert lab.contexts.search("kb", "refunds")
    with pytest.raises(ConfigError, match="jupyter-promptlab\\[embeddings\\]"):
        lab.contexts.search("kb", "refunds", mode="embeddings")


def test_missing_model_file_is_a_config_error(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tokenizers")
    with pytest.raises(ConfigError, match="model file not found"):
        embeddings.MiniLMEmbedder(model_path=tmp_path / "nope.onnx")
