"""Chunk sizes in real embedding-model tokens, heading context and overlap."""

import itertools

from retrieval.chunking import chunk_document
from retrieval.documents import Section
from retrieval.embeddings import Embedder


def chunks_of(embedder: Embedder, sections: list[Section], size: int = 64, overlap: int = 16):
    return chunk_document(
        "Handbook",
        sections,
        count_tokens=embedder.count_tokens,
        split_tokens=embedder.split_tokens,
        size=size,
        overlap=overlap,
    )


def test_every_chunk_fits_the_size_with_its_heading(embedder: Embedder):
    sentences = " ".join(f"Rule {n} says the office opens at {n} o'clock." for n in range(60))
    chunks = chunks_of(embedder, [Section(("Handbook", "Office hours"), sentences)])
    assert len(chunks) > 5
    for chunk in chunks:
        assert chunk.heading == "Handbook › Office hours"
        assert chunk.text.startswith("Handbook › Office hours\n")
        assert embedder.count_tokens([chunk.text])[0] <= 64 + 2  # a join may merge two tokens


def test_neighbouring_chunks_overlap(embedder: Embedder):
    sentences = " ".join(f"Fact number {n} is true." for n in range(40))
    chunks = chunks_of(embedder, [Section(("Facts",), sentences)])
    for first, second in itertools.pairwise(chunks):
        last_sentence = first.body.split(". ")[-1].rstrip(".")
        assert last_sentence in second.body


def test_a_sentence_longer_than_a_chunk_is_cut_at_token_windows(embedder: Embedder):
    words = " ".join(f"token{n}" for n in range(400))
    chunks = chunks_of(embedder, [Section((), words)])
    assert len(chunks) > 3
    assert "".join(c.body for c in chunks).replace(" ", "") == words.replace(" ", "")


def test_paragraph_and_line_breaks_survive_packing(embedder: Embedder):
    body = "First paragraph.\n\n- item one\n- item two"
    [chunk] = chunks_of(embedder, [Section(("List",), body)], size=128)
    assert chunk.body == body
    assert chunk.heading == "Handbook › List"
