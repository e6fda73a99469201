"""Indexing throughput against raw fastembed, and a no-op re-index against the first index."""

import time
from pathlib import Path

from bench.common import Row, cleanup, make_corpus, scratch_settings
from retrieval.chunking import chunk_document
from retrieval.documents import parse_document
from retrieval.embeddings import load_embedder
from retrieval.indexer import Indexer
from retrieval.store import open_store


def run(models_dir: Path, documents: int = 500) -> list[Row]:
    settings, root = scratch_settings(models_dir)
    try:
        corpus = make_corpus(root / "corpus", documents)
        embedder = load_embedder(settings.embedding, settings.models_dir)
        texts = []
        for path in corpus:
            title, sections = parse_document(path, path.read_bytes())
            texts += [
                chunk.text
                for chunk in chunk_document(
                    title,
                    sections,
                    count_tokens=embedder.count_tokens,
                    split_tokens=embedder.split_tokens,
                    size=settings.retrieval.chunk_tokens,
                    overlap=settings.retrieval.chunk_overlap,
                )
            ]
        embedder.embed_documents(texts[:64])  # warm ONNX Runtime for both sides

        started = time.perf_counter()
        list(embedder.dense.embed(texts, batch_size=settings.embedding.batch_size))
        list(embedder.sparse.embed(texts, batch_size=settings.embedding.batch_size))
        bare = time.perf_counter() - started

        store = open_store(settings.qdrant, settings.data_dir)
        indexer = Indexer(embedder=embedder, store=store, settings=settings.retrieval)
        started = time.perf_counter()
        first = indexer.index_paths([root / "corpus"])
        ours = time.perf_counter() - started
        assert first.chunks_embedded == len(texts), (first.chunks_embedded, len(texts))

        started = time.perf_counter()
        again = indexer.index_paths([root / "corpus"])
        noop = time.perf_counter() - started
        assert again.unchanged == documents and again.chunks_embedded == 0
        store.close()
    finally:
        cleanup(root)
    chunks = len(texts)
    throughput = (chunks / ours) / (chunks / bare)
    return [
        Row(
            f"indexing throughput, {documents} docs / {chunks} chunks (dense + BM25)",
            f"{chunks / ours:.0f} chunks/s",
            f"{chunks / bare:.0f} chunks/s (fastembed)",
            throughput,
            ">= 0.85",
            throughput >= 0.85,
        ),
        Row(
            f"no-op re-index of {documents} unchanged docs vs first index",
            f"{noop:.2f} s",
            f"{ours:.2f} s (first index)",
            noop / ours,
            "<= 0.05",
            noop / ours <= 0.05,
        ),
    ]
