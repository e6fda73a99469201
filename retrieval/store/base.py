"""The chunk store: what every Qdrant engine behind it must do, and what they share.

A document's new chunks are written hidden (`pending`), shown in one step, and only then are
its old chunks deleted: a crash at any point leaves the old or the new version searchable,
never neither and never half of one. The next index run tidies whatever a crash left behind.
"""

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from retrieval.embeddings import Embedding
from retrieval.errors import AjusteError
from retrieval.hits import Hit
from retrieval.settings import QdrantSettings
from retrieval.store.records import (
    EVERYWHERE,
    LEGACY_KEYWORDS,
    PRIVATE,
    Found,
    Scope,
    StoredDocument,
    StoredPoint,
    StoredVersion,
    point_id,
)

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

WRITE_BATCH = 64
EVERY = 2**31 - 1  # a facet's limit that lists every value
TIE_MARGIN = 8  # results fetched beyond the limit: hidden chunks dropped, ties settled
_DOCUMENT_KEYS = ["doc_id", "version", "pending", "source", "location", "meta"]


class ChunkStore(ABC):
    """Chunks of documents, with their vectors and source metadata, in one collection."""

    def __init__(self, *, collection: str, settings: QdrantSettings) -> None:
        self.collection = collection
        self.settings = settings

    # What each engine implements.

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def dimension(self) -> int | None:
        """The dense vector size of the index, or None when there is no index yet."""

    @abstractmethod
    def keywords(self) -> str | None:
        """What made the index's keyword vectors ("Qdrant/bm25:spanish"); None: no index."""

    @abstractmethod
    def ensure_collection(self, dim: int, keywords: str = LEGACY_KEYWORDS) -> None:
        """Create the index for `dim`-dimension vectors, or check the existing one matches."""

    @abstractmethod
    def reachable(self) -> bool: ...

    @abstractmethod
    def state_client(self) -> "QdrantClient":
        """Where the bot's shared records live (AJUSTE_SLACK__STATE=qdrant)."""

    @abstractmethod
    def count_chunks(self) -> int: ...

    @abstractmethod
    def count_documents(self) -> int:
        """How many documents the index holds: a count of distinct `doc_id`s, no payloads read."""

    @abstractmethod
    def delete_points(self, ids: Iterable[str]) -> None: ...

    @abstractmethod
    def write(self, points: Sequence[StoredPoint]) -> None:
        """Insert or overwrite points, vectors and payload as given."""

    @abstractmethod
    def _reveal(self, ids: list[str], private_channel: str | None) -> None:
        """Make a document's hidden chunks searchable, all in one write."""

    @abstractmethod
    def scroll(
        self, *, vectors: bool, batch: int = 1024, source: str | None = None
    ) -> Iterator[list[StoredPoint]]:
        """Every point (of one source), payload and, if asked, vectors, a batch at a time."""

    @abstractmethod
    def _query(
        self,
        query: Embedding,
        *,
        limit: int,
        candidates: int,
        weights: tuple[float, float],
        scope: Scope,
        mode: str,
    ) -> list[Found]: ...

    def _complete(self, found: list[Found]) -> list[Found]:
        """The chosen results with their payload and vectors, where `_query` left them out so
        as not to carry them for the candidates that don't make the cut."""
        return found

    def optimize(self) -> None:  # noqa: B027  (engines that build indexes lazily override it)
        """Build search indexes for what was just written; a no-op when there is little."""

    # What they share.

    def _dimension_matches(self, dim: int) -> None:
        existing = self.dimension()
        if existing is not None and existing != dim:
            raise AjusteError(
                f"The collection '{self.collection}' holds {existing}-dimension vectors but the "
                f"embedding model makes {dim}: set AJUSTE_QDRANT__COLLECTION to a new name and "
                "index again (or switch back to the model it was built with)."
            )

    def check_keywords(self, keywords: str) -> str | None:
        """Refuse to mix keyword vectors of two languages (or sparse models) in one index;
        the index's record (None: no index yet)."""
        recorded = self.keywords()
        if recorded is None or recorded == keywords:
            return recorded
        (model, _, made), (other, _, now) = recorded.partition(":"), keywords.partition(":")
        setting = "SPARSE_LANGUAGE" if model == other else "SPARSE_MODEL"
        if model != other:
            made, now = recorded, keywords
        raise AjusteError(
            f"The index's keywords were made for {made} and the settings now ask for {now} "
            f"(AJUSTE_EMBEDDING__{setting}): set it back to {made}, or set "
            "AJUSTE_QDRANT__COLLECTION to a new name and index everything again."
        )

    def copy_to(self, target: "ChunkStore", *, batch: int = 256) -> int:
        """Copy every point, vectors and payload as they are, into `target` (no re-embedding)."""
        dim = self.dimension()
        if dim is None:
            return 0
        target.ensure_collection(dim, self.keywords() or LEGACY_KEYWORDS)
        copied = 0
        for points in self.scroll(vectors=True, batch=batch):
            target.write(points)
            copied += len(points)
        target.optimize()
        return copied

    def documents(self, source: str | None = None) -> dict[str, StoredDocument]:
        """Documents in the index with their versions' point ids (payloads only, no vectors)."""
        stored: dict[str, StoredDocument] = {}
        for points in self.scroll(vectors=False, source=source):
            for point in points:
                payload = point.payload
                doc = stored.setdefault(
                    payload["doc_id"],
                    StoredDocument(
                        payload["doc_id"],
                        payload["source"],
                        payload["location"],
                        meta=payload.get("meta") or {},
                    ),
                )
                version = doc.versions.setdefault(payload["version"], StoredVersion())
                version.point_ids.append(point.id)
                version.pending = version.pending or bool(payload.get("pending"))
        return stored

    def replace_document(
        self,
        *,
        doc_id: str,
        version: str,
        payloads: Sequence[dict[str, object]],
        embeddings: Sequence[Embedding],
        previous: StoredDocument | None,
    ) -> None:
        """Write a document's chunks hidden, reveal them at once, then drop older versions."""
        ids = [point_id(doc_id, version, n) for n in range(len(payloads))]
        for start in range(0, len(ids), WRITE_BATCH):
            self.write(
                [
                    StoredPoint(
                        ids[n],
                        {**payloads[n], "doc_id": doc_id, "version": version, "pending": True},
                        embeddings[n].dense.tolist(),
                        embeddings[n].sparse.indices.tolist(),
                        embeddings[n].sparse.values.tolist(),
                    )
                    for n in range(start, min(start + WRITE_BATCH, len(ids)))
                ]
            )
        private = payloads[0].get(PRIVATE) if payloads else None
        self._reveal(ids, str(private) if private else None)
        if previous is not None:
            stale = [
                pid
                for old, stored in previous.versions.items()
                if old != version
                for pid in stored.point_ids
            ]
            self.delete_points(stale)

    def search(
        self,
        query: Embedding,
        *,
        limit: int,
        candidates: int,
        weights: tuple[float, float],
        scope: Scope = EVERYWHERE,
        mode: str = "hybrid",
    ) -> list[Hit]:
        """Hybrid search: dense and BM25 candidates fused by weighted reciprocal rank.

        `mode` "dense" or "sparse" ranks by one of them alone (to measure what fusion adds).
        """
        found = self._query(
            query,
            limit=limit + TIE_MARGIN,
            candidates=candidates,
            weights=weights,
            scope=scope,
            mode=mode,
        )
        visible = [f for f in found if not f.point.payload.get("pending")]
        ranked = _settle_ties(self._complete(_contenders(visible, limit)), query.dense)[:limit]
        similarities = _cosines([f.point.dense for f in ranked], query.dense)
        keywords = set(query.sparse.indices.tolist())
        return [
            _hit(f, similarity, keywords)
            for f, similarity in zip(ranked, similarities, strict=True)
        ]


def _contenders(found: list[Found], limit: int) -> list[Found]:
    """The best `limit`, and any others tied with the last of them, best first."""
    ordered = sorted(found, key=lambda f: -f.score)
    end = min(limit, len(ordered))
    while 0 < end < len(ordered) and ordered[end].score == ordered[end - 1].score:
        end += 1
    return ordered[:end]


def _settle_ties(found: list[Found], question: np.ndarray) -> list[Found]:
    """Best first, one order every time.

    Reciprocal-rank fusion ties often (under weights 2:1, dense rank 2 scores what keyword
    rank 1 does). Engines break ties their own way, Qdrant's even differently from one call to
    the next; here the chunk closer in meaning goes first, which is also what qdrant-client's
    fusion does (it keeps the dense ranking's order), and the point id settles twins.
    """
    ordered = sorted(found, key=lambda f: -f.score)
    settled: list[Found] = []
    start = 0
    while start < len(ordered):
        end = start + 1
        while end < len(ordered) and ordered[end].score == ordered[start].score:
            end += 1
        tied = ordered[start:end]
        if len(tied) > 1:
            near = _cosines([f.point.dense for f in tied], question)
            tied = [
                f
                for _, _, f in sorted(
                    zip(near, (f.point.id for f in tied), tied, strict=True),
                    key=lambda t: (-t[0], t[1]),
                )
            ]
        settled += tied
        start = end
    return settled


def _cosines(vectors: list[list[float]], question: np.ndarray) -> list[float]:
    """Each chunk's dense similarity to the question, in one matrix product."""
    if not vectors or any(len(v) != question.size for v in vectors):
        return [0.0] * len(vectors)
    matrix = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1) * float(np.linalg.norm(question))
    return [float(x) for x in (matrix @ question) / np.where(norms > 0, norms, 1.0)]


def _hit(found: Found, similarity: float, keywords: set[int]) -> Hit:
    payload = found.point.payload
    matched = keywords.intersection(found.point.sparse_indices)
    return Hit(
        score=found.score,
        similarity=similarity,
        keyword_coverage=len(matched) / len(keywords) if keywords else 0.0,
        doc_id=str(payload.get("doc_id", "")),
        source=str(payload.get("source", "")),
        title=str(payload.get("title", "")),
        location=str(payload.get("location", "")),
        heading=str(payload.get("heading", "")),
        body=str(payload.get("body", "")),
        chunk=int(payload.get("chunk", 0)),
    )
