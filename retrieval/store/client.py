"""The chunk store through qdrant-client: a Qdrant server, or the pure-Python local mode.

A server is what several processes share. The local mode is what earlier versions of Ajuste
kept under the data dir; it is opened only to move such an index into Qdrant Edge (and for
the bot's state records, which are few).
"""

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from qdrant_client import QdrantClient, models

from retrieval.embeddings import Embedding
from retrieval.settings import QdrantSettings
from retrieval.store.base import EVERY, ChunkStore
from retrieval.store.records import (
    DENSE,
    KEYWORDS,
    LEGACY_KEYWORDS,
    PRIVATE,
    SPARSE,
    Found,
    Scope,
    StoredPoint,
)


class ClientStore(ChunkStore):
    def __init__(
        self,
        client: QdrantClient,
        *,
        collection: str,
        local: bool,
        settings: QdrantSettings | None = None,
    ) -> None:
        super().__init__(collection=collection, settings=settings or QdrantSettings())
        self.client = client
        self.local = local
        # Servers index payloads, so they always filter; the local mode only when needed.
        self._has_private: bool | None = None if local else True

    def close(self) -> None:
        self.client.close()

    def state_client(self) -> QdrantClient:
        """Where the bot keeps its shared records: beside the index, on the same server."""
        return self.client

    def dimension(self) -> int | None:
        if not self.client.collection_exists(self.collection):
            return None
        vectors = self.client.get_collection(self.collection).config.params.vectors
        dense = vectors.get(DENSE) if isinstance(vectors, dict) else None
        return dense.size if dense is not None else None

    def reachable(self) -> bool:
        try:
            self.client.get_collections()
        except Exception:  # any transport error means "not now"
            return False
        return True

    def keywords(self) -> str | None:
        if not self.client.collection_exists(self.collection):
            return None
        metadata = self.client.get_collection(self.collection).config.metadata or {}
        return str(metadata.get(KEYWORDS, LEGACY_KEYWORDS))

    def ensure_collection(self, dim: int, keywords: str = LEGACY_KEYWORDS) -> None:
        if self.client.collection_exists(self.collection):
            self._dimension_matches(dim)
            self.check_keywords(keywords)
            return
        tuning = self.settings  # what matters at size; the local mode ignores most of it
        quantization = None
        if tuning.quantization == "int8":
            quantization = models.ScalarQuantization(
                scalar=models.ScalarQuantizationConfig(
                    type=models.ScalarType.INT8, quantile=0.99, always_ram=True
                )
            )
        self.client.create_collection(
            self.collection,
            vectors_config={
                DENSE: models.VectorParams(
                    size=dim, distance=models.Distance.COSINE, on_disk=tuning.on_disk
                )
            },
            sparse_vectors_config={
                SPARSE: models.SparseVectorParams(
                    modifier=models.Modifier.IDF,
                    index=models.SparseIndexParams(on_disk=tuning.on_disk),
                )
            },
            metadata={KEYWORDS: keywords},
            shard_number=tuning.shard_number,
            replication_factor=tuning.replication_factor,
            on_disk_payload=tuning.on_disk,
            hnsw_config=models.HnswConfigDiff(
                m=tuning.hnsw_m, ef_construct=tuning.hnsw_ef_construct
            ),
            quantization_config=quantization,
        )
        if self.local:
            return  # the local mode scans payloads; indexes only help a server
        for key in ("doc_id", "source", PRIVATE):
            self.client.create_payload_index(self.collection, key, models.PayloadSchemaType.KEYWORD)

    def count_chunks(self) -> int:
        if not self.client.collection_exists(self.collection):
            return 0
        return self.client.count(self.collection, exact=True).count

    def count_documents(self) -> int:
        if not self.client.collection_exists(self.collection):
            return 0
        return len(self.client.facet(self.collection, "doc_id", limit=EVERY, exact=True).hits)

    def write(self, points: Sequence[StoredPoint]) -> None:
        if any(point.payload.get(PRIVATE) for point in points):
            self._has_private = True
        self.client.upsert(
            self.collection,
            points=[
                models.PointStruct(
                    id=point.id,
                    vector={
                        DENSE: point.dense,
                        SPARSE: models.SparseVector(
                            indices=point.sparse_indices, values=point.sparse_values
                        ),
                    },
                    payload=point.payload,
                )
                for point in points
            ],
            wait=True,
        )

    def _reveal(self, ids: list[str], private_channel: str | None) -> None:
        self.client.set_payload(
            self.collection,
            {"pending": False},
            points=models.PointIdsList(points=list(ids)),
            wait=True,
        )

    def delete_points(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        for start in range(0, len(ids), 1024):
            self.client.delete(
                self.collection,
                points_selector=models.PointIdsList(points=list(ids[start : start + 1024])),
                wait=True,
            )

    def scroll(
        self, *, vectors: bool, batch: int = 1024, source: str | None = None
    ) -> Iterator[list[StoredPoint]]:
        if not self.client.collection_exists(self.collection):
            return
        where = (
            models.Filter(
                must=[models.FieldCondition(key="source", match=models.MatchValue(value=source))]
            )
            if source is not None
            else None
        )
        offset = None
        while True:
            records, offset = self.client.scroll(
                self.collection,
                scroll_filter=where,
                limit=batch,
                offset=offset,
                with_payload=True,
                with_vectors=vectors,
            )
            yield [_stored(record.id, record.payload, record.vector) for record in records]
            if offset is None:
                return

    def _filter(self, scope: Scope) -> models.Filter | None:
        """The scope as a Qdrant filter; private chunks of other channels are always out."""
        must: list[models.Condition] = []
        must_not: list[models.Condition] = []
        if scope.sources is not None:
            must.append(
                models.FieldCondition(key="source", match=models.MatchAny(any=list(scope.sources)))
            )
        if scope.hidden:
            must_not.append(
                models.FieldCondition(key="source", match=models.MatchAny(any=list(scope.hidden)))
            )
        if self._may_hold_private():  # else skip what costs the local mode a scan of every point
            visible: list[models.Condition] = [
                models.IsEmptyCondition(is_empty=models.PayloadField(key=PRIVATE))
            ]
            if scope.channel is not None:
                visible.append(
                    models.FieldCondition(key=PRIVATE, match=models.MatchValue(value=scope.channel))
                )
            must.append(models.Filter(should=visible))
        if not must and not must_not:
            return None
        return models.Filter(must=must or None, must_not=must_not or None)

    def _may_hold_private(self) -> bool:
        if self._has_private is None:
            found = self.client.count(
                self.collection,
                count_filter=models.Filter(
                    must_not=[models.IsEmptyCondition(is_empty=models.PayloadField(key=PRIVATE))]
                ),
                exact=True,
            ).count
            self._has_private = found > 0
        return self._has_private

    def _query(
        self,
        query: Embedding,
        *,
        limit: int,
        candidates: int,
        weights: tuple[float, float],
        scope: Scope,
        mode: str,
    ) -> list[Found]:
        if not self.client.collection_exists(self.collection):
            return []
        conditions = self._filter(scope)
        sparse = models.SparseVector(
            indices=query.sparse.indices.tolist(), values=query.sparse.values.tolist()
        )
        # Hidden (pending) chunks are rare and only exist while a document is being replaced,
        # so they are dropped after the search (`limit` has a margin for them): a payload
        # filter would cost the local mode a scan of every point on every query.
        common: dict[str, Any] = {
            "limit": limit,
            "with_payload": True,
            "with_vectors": True,
        }
        if mode == "dense":
            response = self.client.query_points(
                self.collection,
                query=query.dense.tolist(),
                using=DENSE,
                query_filter=conditions,
                **common,
            )
        elif mode == "sparse":
            response = self.client.query_points(
                self.collection, query=sparse, using=SPARSE, query_filter=conditions, **common
            )
        else:
            response = self.client.query_points(
                self.collection,
                prefetch=[
                    models.Prefetch(
                        query=query.dense.tolist(), using=DENSE, limit=candidates, filter=conditions
                    ),
                    models.Prefetch(
                        query=sparse, using=SPARSE, limit=candidates, filter=conditions
                    ),
                ],
                query=models.RrfQuery(rrf=models.Rrf(weights=list(weights))),
                **common,
            )
        return [Found(float(p.score), _stored(p.id, p.payload, p.vector)) for p in response.points]


def _stored(pid: Any, payload: dict[str, Any] | None, vector: Any) -> StoredPoint:
    vectors = vector if isinstance(vector, dict) else {}
    sparse = vectors.get(SPARSE)
    if not isinstance(sparse, models.SparseVector):
        sparse = models.SparseVector(indices=[], values=[])
    return StoredPoint(
        str(pid), payload or {}, list(vectors.get(DENSE) or []), sparse.indices, sparse.values
    )
