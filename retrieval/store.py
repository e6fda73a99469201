"""The chunk store on Qdrant: embedded under the data dir by default, a server when a URL is set.

A document's new chunks are written hidden (`pending`), shown in one step, and only then are
its old chunks deleted: a crash at any point leaves the old or the new version searchable,
never neither and never half of one. The next index run tidies whatever a crash left behind.
"""

import json
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from retrieval.embeddings import Embedding
from retrieval.errors import AjusteError, IndexBusyError, StoreUnavailableError
from retrieval.hits import Hit
from retrieval.settings import QdrantSettings

DENSE = "dense"
PRIVATE = "private_channel"  # payload key of chunks from a private Slack channel
SPARSE = "bm25"
HOLDER_FILE = "ajuste-holder.json"
KEYWORDS = "keywords"  # collection metadata: the sparse model and language of its vectors
LEGACY_KEYWORDS = "Qdrant/bm25:english"  # indexes made before the language was a setting
_POINT_NAMESPACE = uuid.UUID("8c4a5a0e-4f0e-4a54-9a8a-2f8f3f0c1d5e")
_UPSERT_BATCH = 64
_PENDING_MARGIN = 8  # extra results fetched so hidden chunks can be dropped


def point_id(doc_id: str, version: str, chunk: int) -> str:
    return str(uuid.uuid5(_POINT_NAMESPACE, f"{doc_id}\x00{version}\x00{chunk}"))


@dataclass
class StoredVersion:
    point_ids: list[str] = field(default_factory=list)
    pending: bool = False


@dataclass
class StoredDocument:
    """What the index holds of one document: normally one visible version."""

    doc_id: str
    source: str
    location: str
    versions: dict[str, StoredVersion] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)  # the source's notes, e.g. an ETag

    @property
    def live_version(self) -> str | None:
        live = [v for v, stored in self.versions.items() if not stored.pending]
        return live[0] if len(live) == 1 and len(self.versions) == 1 else None


@dataclass(frozen=True)
class Scope:
    """What one question may see."""

    sources: tuple[str, ...] | None = None  # only these sources; None: any
    hidden: tuple[str, ...] = ()  # never these sources
    channel: str | None = None  # a private channel's content is visible only inside it

    def conditions(self) -> models.Filter | None:
        must: list[models.Condition] = []
        must_not: list[models.Condition] = []
        if self.sources is not None:
            must.append(
                models.FieldCondition(key="source", match=models.MatchAny(any=list(self.sources)))
            )
        if self.hidden:
            must_not.append(
                models.FieldCondition(key="source", match=models.MatchAny(any=list(self.hidden)))
            )
        return (
            models.Filter(must=must or None, must_not=must_not or None)
            if must or must_not
            else None
        )


EVERYWHERE = Scope()


def open_store(settings: QdrantSettings, data_dir: Path, *, holder: str = "ajuste") -> "ChunkStore":
    """The one place that builds a Qdrant client: a server when a URL is set, else embedded.

    `holder` names this process (e.g. "ajuste chat") to whoever finds the embedded index busy.
    """
    if settings.url is not None:
        url = str(settings.url)
        api_key = settings.api_key.get_secret_value() if settings.api_key else None
        client = QdrantClient(url=url, api_key=api_key, timeout=int(settings.timeout))
        try:
            client.get_collections()
        except (ResponseHandlingException, UnexpectedResponse, OSError) as error:
            raise StoreUnavailableError(
                f"The Qdrant server at {url} did not answer ({_reason(error)}): start it, or "
                "fix AJUSTE_QDRANT__URL / AJUSTE_QDRANT__API_KEY (empty URL: embedded Qdrant)."
            ) from error
        return ChunkStore(
            client, collection=settings.collection, local_path=None, settings=settings
        )
    path = settings.path or data_dir / "qdrant"
    path.mkdir(parents=True, exist_ok=True)
    try:
        client = QdrantClient(path=str(path))
    except RuntimeError as error:
        if "already accessed" not in str(error):
            raise
        raise IndexBusyError(_busy_message(path)) from error
    (path / HOLDER_FILE).write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "command": holder,
                "since": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
    )
    return ChunkStore(client, collection=settings.collection, local_path=path, settings=settings)


def _reason(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[-1][:200] if text else type(error).__name__


def _busy_message(path: Path) -> str:
    holder = ""
    try:
        info = json.loads((path / HOLDER_FILE).read_text())
        holder = f" (`{info['command']}`, pid {info['pid']}, since {info['since']})"
    except (OSError, ValueError, KeyError):
        pass
    return (
        f"The index at {path} is open in another Ajuste process{holder}. The embedded "
        "Qdrant serves one process at a time: stop that process and retry, or run a Qdrant "
        "server (AJUSTE_QDRANT__URL) so several processes can share the index."
    )


class ChunkStore:
    """Chunks of documents, with their vectors and source metadata, in one Qdrant collection."""

    def __init__(
        self,
        client: QdrantClient,
        *,
        collection: str,
        local_path: Path | None,
        settings: QdrantSettings | None = None,
    ) -> None:
        self.client = client
        self.collection = collection
        self.settings = settings or QdrantSettings()
        self._local_path = local_path  # where our holder note lives, for embedded mode
        # Servers index payloads, so they always filter; the embedded mode only when needed.
        self._has_private: bool | None = None if local_path is not None else True

    def close(self) -> None:
        if self._local_path is not None:
            (self._local_path / HOLDER_FILE).unlink(missing_ok=True)
        self.client.close()

    def dimension(self) -> int | None:
        """The dense vector size of the collection, or None when it does not exist yet."""
        if not self.client.collection_exists(self.collection):
            return None
        vectors = self.client.get_collection(self.collection).config.params.vectors
        dense = vectors.get(DENSE) if isinstance(vectors, dict) else None
        return dense.size if dense is not None else None

    def copy_to(self, target: "ChunkStore", *, batch: int = 256) -> int:
        """Copy every point, vectors and payload as they are, into `target` (no re-embedding)."""
        dim = self.dimension()
        if dim is None:
            return 0
        target.ensure_collection(dim, self.keywords() or LEGACY_KEYWORDS)
        copied = 0
        offset = None
        while True:
            points, offset = self.client.scroll(
                self.collection, limit=batch, offset=offset, with_payload=True, with_vectors=True
            )
            if points:
                target.client.upsert(
                    target.collection,
                    points=[
                        models.PointStruct(
                            id=p.id,
                            vector=p.vector,
                            payload=p.payload,
                        )
                        for p in points
                    ],
                    wait=True,
                )
                copied += len(points)
            if offset is None:
                return copied

    def reachable(self) -> bool:
        try:
            self.client.get_collections()
        except Exception:  # any transport error means "not now"
            return False
        return True

    def keywords(self) -> str | None:
        """What made the collection's keyword vectors ("Qdrant/bm25:spanish"); None: no index."""
        if not self.client.collection_exists(self.collection):
            return None
        metadata = self.client.get_collection(self.collection).config.metadata or {}
        return str(metadata.get(KEYWORDS, LEGACY_KEYWORDS))

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

    def ensure_collection(self, dim: int, keywords: str = LEGACY_KEYWORDS) -> None:
        if self.client.collection_exists(self.collection):
            existing = self.dimension()
            if existing != dim:
                raise AjusteError(
                    f"The collection '{self.collection}' holds {existing or 'unknown'}-dimension "
                    f"vectors but the embedding model makes {dim}: set AJUSTE_QDRANT__COLLECTION "
                    "to a new name and index again (or switch back to the model it was built "
                    "with)."
                )
            self.check_keywords(keywords)
            return
        tuning = self.settings  # what matters at size; the embedded mode ignores most of it
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
        if self._local_path is not None:
            return  # the embedded Qdrant scans payloads; indexes only help a server
        for key in ("doc_id", "source", PRIVATE):
            self.client.create_payload_index(self.collection, key, models.PayloadSchemaType.KEYWORD)

    def documents(self, source: str | None = None) -> dict[str, StoredDocument]:
        """Documents in the index with their versions' point ids (payloads only, no vectors)."""
        stored: dict[str, StoredDocument] = {}
        if not self.client.collection_exists(self.collection):
            return stored
        offset = None
        while True:
            points, offset = self.client.scroll(
                self.collection,
                limit=1024,
                offset=offset,
                with_payload=["doc_id", "version", "pending", "source", "location", "meta"],
                with_vectors=False,
            )
            for point in points:
                payload = point.payload or {}
                if source is not None and payload.get("source") != source:
                    continue
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
                version.point_ids.append(str(point.id))
                version.pending = version.pending or bool(payload.get("pending"))
            if offset is None:
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
        if any(payload.get(PRIVATE) for payload in payloads):
            self._has_private = True
        ids: list[models.ExtendedPointId] = [
            point_id(doc_id, version, n) for n in range(len(payloads))
        ]
        for start in range(0, len(ids), _UPSERT_BATCH):
            self.client.upsert(
                self.collection,
                points=[
                    models.PointStruct(
                        id=ids[n],
                        vector={
                            DENSE: embeddings[n].dense.tolist(),
                            SPARSE: models.SparseVector(
                                indices=embeddings[n].sparse.indices.tolist(),
                                values=embeddings[n].sparse.values.tolist(),
                            ),
                        },
                        payload={
                            **payloads[n],
                            "doc_id": doc_id,
                            "version": version,
                            "pending": True,
                        },
                    )
                    for n in range(start, min(start + _UPSERT_BATCH, len(ids)))
                ],
                wait=True,
            )
        self.client.set_payload(
            self.collection, {"pending": False}, points=models.PointIdsList(points=ids), wait=True
        )
        if previous is not None:
            stale = [
                pid
                for old, stored in previous.versions.items()
                if old != version
                for pid in stored.point_ids
            ]
            self.delete_points(stale)

    def delete_points(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        for start in range(0, len(ids), 1024):
            self.client.delete(
                self.collection,
                points_selector=models.PointIdsList(points=list(ids[start : start + 1024])),
                wait=True,
            )

    def _filter(self, scope: Scope) -> models.Filter | None:
        """The scope as a Qdrant filter; private chunks of other channels are always out."""
        conditions = scope.conditions()
        if not self._may_hold_private():
            return conditions  # nothing private here: skip a scan of every point
        visible: list[models.Condition] = [
            models.IsEmptyCondition(is_empty=models.PayloadField(key=PRIVATE))
        ]
        if scope.channel is not None:
            visible.append(
                models.FieldCondition(key=PRIVATE, match=models.MatchValue(value=scope.channel))
            )
        private = models.Filter(should=visible)
        if conditions is None:
            return private
        return models.Filter(must=[*(conditions.must or []), private], must_not=conditions.must_not)

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

    def count_chunks(self) -> int:
        if not self.client.collection_exists(self.collection):
            return 0
        return self.client.count(self.collection, exact=True).count

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
        if not self.client.collection_exists(self.collection):
            return []
        conditions = self._filter(scope)
        sparse = models.SparseVector(
            indices=query.sparse.indices.tolist(), values=query.sparse.values.tolist()
        )
        # Hidden (pending) chunks are rare and only exist while a document is being replaced,
        # so they are dropped after the search: a payload filter would cost the embedded
        # Qdrant a scan of every point on every query.
        common = {"limit": limit + _PENDING_MARGIN, "with_payload": True, "with_vectors": True}
        if mode == "dense":
            response = self.client.query_points(
                self.collection,
                query=query.dense.tolist(),
                using=DENSE,
                query_filter=conditions,
                **common,  # type: ignore[arg-type]
            )
        elif mode == "sparse":
            response = self.client.query_points(
                self.collection,
                query=sparse,
                using=SPARSE,
                query_filter=conditions,
                **common,  # type: ignore[arg-type]
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
                **common,  # type: ignore[arg-type]
            )
        visible = [p for p in response.points if not (p.payload or {}).get("pending")][:limit]
        keywords = set(query.sparse.indices.tolist())
        return [_hit(point, query.dense, keywords) for point in visible]


def _hit(point: models.ScoredPoint, question: np.ndarray, keywords: set[int]) -> Hit:
    payload = point.payload or {}
    vectors = point.vector if isinstance(point.vector, dict) else {}
    dense = np.asarray(vectors.get(DENSE, []), dtype=np.float32)
    similarity = 0.0
    if dense.size == question.size and dense.size:
        norms = float(np.linalg.norm(dense) * np.linalg.norm(question)) or 1.0
        similarity = float(np.dot(dense, question)) / norms
    sparse = vectors.get(SPARSE)
    matched = set(sparse.indices) & keywords if isinstance(sparse, models.SparseVector) else set()
    return Hit(
        score=float(point.score),
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
