"""Search latency at 10k chunks: Ajuste's retriever against qdrant-client with the same query."""

import time
from pathlib import Path

import numpy as np
from fastembed import SparseEmbedding
from qdrant_client import models

from bench.common import Row, cleanup, percentile, scratch_settings
from retrieval.embeddings import Embedding, load_embedder
from retrieval.retriever import Retriever
from retrieval.store import DENSE, SPARSE, open_store

QUERIES = [
    "how do I rotate the VPN key",
    "KST-4471",
    "parental leave",
    "expense report deadline",
    "who do I page for a sev1 incident",
    "wifi password in Tallinn",
    "laptop encryption",
    "release train schedule",
]


def _synthetic(rng: np.random.Generator, dim: int) -> Embedding:
    dense = rng.standard_normal(dim).astype(np.float32)
    indices = np.unique(rng.integers(0, 2**31 - 1, size=40))
    return Embedding(
        dense / np.linalg.norm(dense),
        SparseEmbedding(indices=indices, values=np.ones(len(indices), dtype=np.float32)),
    )


def _latency(seconds: list[float]) -> str:
    return (
        f"p50 {percentile(seconds, 0.5) * 1e3:.0f} ms, p95 {percentile(seconds, 0.95) * 1e3:.0f} ms"
    )


def run(models_dir: Path, chunks: int = 10_000, repeats: int = 6) -> list[Row]:
    settings, root = scratch_settings(models_dir)
    try:
        embedder = load_embedder(settings.embedding, settings.models_dir)
        store = open_store(settings.qdrant, settings.data_dir)
        store.ensure_collection(embedder.dim, embedder.keywords)
        rng = np.random.default_rng(3)
        per_doc = 100
        for doc in range(chunks // per_doc):
            store.replace_document(
                doc_id=f"doc-{doc}",
                version="v1",
                payloads=[
                    {
                        "source": "files",
                        "title": f"Doc {doc}",
                        "location": f"/kb/{doc}.md",
                        "heading": f"Doc {doc}",
                        "body": f"chunk {n} of doc {doc}",
                        "chunk": n,
                    }
                    for n in range(per_doc)
                ],
                embeddings=[_synthetic(rng, embedder.dim) for _ in range(per_doc)],
                previous=None,
            )
        retriever = Retriever(embedder=embedder, store=store, settings=settings.retrieval)
        retrieval = settings.retrieval
        ours: list[float] = []
        bare: list[float] = []
        for _ in range(repeats):
            for query in QUERIES:
                started = time.perf_counter()
                retriever.search(query)
                ours.append(time.perf_counter() - started)

                started = time.perf_counter()
                dense = next(iter(embedder.dense.query_embed(query)))
                sparse = next(iter(embedder.sparse.query_embed(query)))
                store.client.query_points(
                    store.collection,
                    prefetch=[
                        models.Prefetch(
                            query=dense.tolist(), using=DENSE, limit=retrieval.candidates
                        ),
                        models.Prefetch(
                            query=models.SparseVector(
                                indices=sparse.indices.tolist(), values=sparse.values.tolist()
                            ),
                            using=SPARSE,
                            limit=retrieval.candidates,
                        ),
                    ],
                    query=models.FusionQuery(fusion=models.Fusion.RRF),
                    limit=retrieval.top_k,
                    with_payload=True,
                )
                bare.append(time.perf_counter() - started)
        store.close()
    finally:
        cleanup(root)
    ratio = percentile(ours, 0.5) / percentile(bare, 0.5)
    return [
        Row(
            f"hybrid search latency at {chunks // 1000}k chunks (query embedding included)",
            _latency(ours),
            _latency(bare),
            ratio,
            "<= 1.25",
            ratio <= 1.25,
        )
    ]
