"""Chunking (promptlab.contexts.chunking): sizes, boundaries, overlap, offsets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptlab.contexts.chunking import chunk_text
from promptlab.errors import ConfigError

PARAGRAPHS = ("Refunds are issued to the original card. They take five business days.\n\n"
              "Invoices are emailed on the first of each month. You can download past invoices "
              "from the Billing page.\n\nTo reset a password, open Settings, then Security.")


def test_short_text_is_one_chunk():
    chunks = chunk_text("  Just one line.  ", chunk_size=100, overlap=10)
    assert [(c.text, c.start, c.end) for c in chunks] == [("Just one line.", 2, 16)]


def test_blank_text_has_no_chunks():
    assert chunk_text(" \n\t ", chunk_size=100, overlap=10) == []


def test_prefers_paragraph_then_sentence_boundaries():
    chunks = chunk_text(PARAGRAPHS, chunk_size=120, overlap=0)
    assert chunks[0].text == ("Refunds are issued to the original card. They take five business "
                              "days.")
    assert all(c.text.endswith(".") for c in chunks)
    assert all(len(c.text) <= 120 for c in chunks)


def test_offsets_point_into_the_source():
    for chunk in chunk_text(PARAGRAPHS, chunk_size=60, overlap=15):
        assert PARAGRAPHS[chunk.start:chunk.end] == chunk.text


def test_overlap_repeats_the_end_of_the_previous_chunk():
    text = " ".join(f"word{i}" for i in range(200))
    chunks = chunk_text(text, chunk_size=100, overlap=30)
    for before, after in zip(chunks, chunks[1:]):
        assert after.start < before.end  # they overlap
        assert before.end - after.start <= 30
        assert not after.text.startswith("ord")  # starts at a word boundary
    no_overlap = chunk_text(text, chunk_size=100, overlap=0)
    assert len(no_overlap) < len(chunks)
    assert all(a.end <= b.start for a, b in zip(no_overlap, no_overlap[1:]))


def test_a_word_longer_than_the_chunk_is_cut():
    chunks = chunk_text("x" * 250, chunk_size=100, overlap=0)
    assert [len(c.text) for c in chunks] == [100, 100, 50]


@pytest.mark.parametrize("size, overlap", [(10, 0), (0, 0), (100, 100), (100, -1), (100.0, 0),
                                           (True, 0), (100, None)])
def test_invalid_settings(size, overlap):
    with pytest.raises(ConfigError):
        chunk_text("text", chunk_size=size, overlap=overlap)


@settings(max_examples=60, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("ab .\n")), max_size=600),
       size=st.integers(20, 120), overlap_frac=st.floats(0, 0.9))
def test_property_chunks_cover_the_text_and_respect_size(text, size, overlap_frac):
    overlap = int(size * overlap_frac)
    chunks = chunk_text(text, chunk_size=size, overlap=overlap)
    covered = set()
    for chunk in chunks:
        assert 0 < len(chunk.text) <= size
        assert text[chunk.start:chunk.end] == chunk.text
        covered.update(range(chunk.start, chunk.end))
    # every non-space character is in some chunk
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)
