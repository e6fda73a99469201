"""The embedded chunk store on Qdrant Edge: Qdrant's own engine, in this process, on disk.

One folder per collection under `<qdrant path>/edge/`, beside a small JSON record of what made
the index (vector size, keyword language) and a lock file naming the process that holds it.
Every search carries a real payload filter on `audience` ("*" for what anyone may see, a
channel id for a private channel's chunks, "~pending" while a document is being replaced), so
scoping costs an indexed lookup, not a scan.
"""

import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import qdrant_edge as edge
from qdrant_client import QdrantClient

from retrieval.embeddings import Embedding
from retrieval.errors import AjusteError, IndexBusyError
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

log = logging.getLogger(__name__)
AUDIENCE = "audience"
EVERYONE = "*"
HIDDEN = "~pending"
_INDEXED = ("doc_id", "source", AUDIENCE)


class IndexDamagedError(AjusteError):
    """The index folder can't be opened as it is; nothing was deleted."""


def audience(payload: dict[str, Any]) -> str:
    if payload.get("pending"):
        return HIDDEN
    return str(payload.get(PRIVATE) or EVERYONE)


class EdgeStore(ChunkStore):
    def __init__(self, root: Path, *, settings: QdrantSettings, holder: str) -> None:
        super().__init__(collection=settings.collection, settings=settings)
        self.root = root  # the embedded Qdrant folder: <data dir>/qdrant unless set
        folder = root / "edge"
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / settings.collection
        self.record_path = folder / f"{settings.collection}.json"
        self._lock = _hold(folder / f"{settings.collection}.lock", holder)
        self._state: QdrantClient | None = None  # the bot's records, opened on first use
        self.shard: edge.EdgeShard | None = None
        try:
            self._open()
        except BaseException:
            self._lock.close()
            raise

    def _open(self) -> None:
        record = self.record()
        has_segments = self.path.is_dir() and any(self.path.iterdir())
        if record is None and has_segments:
            raise IndexDamagedError(
                f"The index folder {self.path} has no {self.record_path.name} beside it, so "
                f"Ajuste can't tell what made it: move it away (mv {self.path} "
                f"{self.path}.unknown) and run `ajuste index` again. Nothing was deleted."
            )
        if record is None:
            return
        if not has_segments:  # a crash between writing the record and creating the shard
            self.shard = edge.EdgeShard.create(str(self.path), self._config(record["dense"]))
            self._create_indexes()
            return
        try:
            self.shard = edge.EdgeShard.load(str(self.path))
        except Exception as error:  # the engine's own error types; reported, not re-raised
            reason = str(error).strip().splitlines()[-1][:200] if str(error).strip() else ""
            raise IndexDamagedError(
                f"The index at {self.path} could not be opened ({reason or type(error).__name__})"
                f": it may be damaged or half-written. Move it away (mv {self.path} "
                f"{self.path}.broken) and run `ajuste index` again; nothing was deleted."
            ) from None

    def record(self) -> dict[str, Any] | None:
        """What made the index (dense size, keywords), or None when there is none yet."""
        try:
            return dict(json.loads(self.record_path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise IndexDamagedError(
                f"{self.record_path} is unreadable ({error}): restore it, or move the index "
                f"folder {self.path} away and run `ajuste index` again."
            ) from None

    def _write_record(self, record: dict[str, Any]) -> None:
        partial = self.record_path.with_suffix(".json.partial")
        partial.write_text(json.dumps(record, indent=1))
        os.replace(partial, self.record_path)

    def _config(self, dim: int) -> edge.EdgeConfig:
        tuning = self.settings
        quantization = None
        if tuning.quantization == "int8":
            quantization = edge.ScalarQuantizationConfig(
                type=edge.ScalarType.Int8, quantile=0.99, memory=edge.Memory.Pinned
            )
        memory = edge.Memory.Cold if tuning.on_disk else None
        return edge.EdgeConfig(
            vectors={
                DENSE: edge.EdgeVectorParams(
                    size=dim,
                    distance=edge.Distance.Cosine,
                    quantization_config=quantization,
                    memory=memory,
                )
            },
            sparse_vectors={SPARSE: edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf)},
            hnsw_config=edge.HnswIndexConfig(
                m=tuning.hnsw_m, ef_construct=tuning.hnsw_ef_construct, full_scan_threshold=10_000
            ),
        )

    def _create_indexes(self) -> None:
        assert self.shard is not None
        for key in _INDEXED:
            self.shard.update(
                edge.UpdateOperation.create_field_index(key, edge.PayloadSchemaType.Keyword)
            )

    def close(self) -> None:
        if self.shard is not None:
            self.shard.close()
            self.shard = None
        if self._state is not None:
            self._state.close()
            self._state = None
        self._lock.close()

    def drop(self) -> None:
        """Delete this index: used only on a half-finished copy that Ajuste itself made."""
        if self.shard is not None:
            self.shard.close()
            self.shard = None
        shutil.rmtree(self.path, ignore_errors=True)
        self.record_path.unlink(missing_ok=True)

    def state_client(self) -> "QdrantClient":
        """The bot's records live in the qdrant-client local mode beside the index (they are few
        and need no speed): what AJUSTE_SLACK__STATE=qdrant uses without a server."""
        if self._state is None:
            self._state = QdrantClient(path=str(self.root))
        return self._state

    def dimension(self) -> int | None:
        record = self.record()
        return int(record["dense"]) if record else None

    def keywords(self) -> str | None:
        record = self.record()
        return str(record.get(KEYWORDS, LEGACY_KEYWORDS)) if record else None

    def reachable(self) -> bool:
        return True

    def ensure_collection(self, dim: int, keywords: str = LEGACY_KEYWORDS, **note: Any) -> None:
        if self.shard is not None:
            self._dimension_matches(dim)
            self.check_keywords(keywords)
            return
        self._write_record({"dense": dim, KEYWORDS: keywords, **note})
        self.shard = edge.EdgeShard.create(str(self.path), self._config(dim))
        self._create_indexes()

    def note(self, **fields: Any) -> None:
        """Add to (or, with None, remove from) the index's record."""
        record = self.record() or {}
        record.update(fields)
        self._write_record({k: v for k, v in record.items() if v is not None})

    def count_chunks(self) -> int:
        if self.shard is None:
            return 0
        return int(self.shard.count(edge.CountRequest(exact=True)))

    def count_documents(self) -> int:
        if self.shard is None:
            return 0
        return len(self.shard.facet(edge.FacetRequest("doc_id", limit=EVERY, exact=True)).hits)

    def write(self, points: Sequence[StoredPoint]) -> None:
        assert self.shard is not None, "ensure_collection first"
        self.shard.update(
            edge.UpdateOperation.upsert_points(
                [
                    edge.Point(
                        point.id,
                        {
                            DENSE: point.dense,
                            SPARSE: edge.SparseVector(point.sparse_indices, point.sparse_values),
                        },
                        {**point.payload, AUDIENCE: audience(point.payload)},
                    )
                    for point in points
                ]
            )
        )

    def _reveal(self, ids: list[str], private_channel: str | None) -> None:
        assert self.shard is not None
        self.shard.update(
            edge.UpdateOperation.set_payload(
                list(ids), {"pending": False, AUDIENCE: private_channel or EVERYONE}
            )
        )

    def delete_points(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        if self.shard is None or not ids:
            return
        for start in range(0, len(ids), 1024):
            self.shard.update(edge.UpdateOperation.delete_points(list(ids[start : start + 1024])))

    def optimize(self) -> None:
        """Build the HNSW and sparse indexes of what was written since the last time.

        Qdrant Edge does this only when asked, and holds the interpreter while it works: after a
        few thousand new chunks it returns at once, after 100k it takes a minute or two.
        """
        if self.shard is None:
            return
        started = time.perf_counter()
        if self.shard.optimize():
            log.info("index optimized in %.1f s", time.perf_counter() - started)

    def scroll(
        self, *, vectors: bool, batch: int = 1024, source: str | None = None
    ) -> Iterator[list[StoredPoint]]:
        if self.shard is None:
            return
        where = (
            edge.Filter(must=[edge.FieldCondition("source", match=edge.MatchValue(source))])
            if source is not None
            else None
        )
        offset = None
        while True:
            records, offset = self.shard.scroll(
                edge.ScrollRequest(
                    offset=offset, limit=batch, filter=where, with_payload=True, with_vector=vectors
                )
            )
            yield [
                _stored(record.id, _without_audience(record.payload), record.vector)
                for record in records
            ]
            if offset is None:
                return

    def _filter(self, scope: Scope) -> edge.Filter:
        seen = [EVERYONE] if scope.channel is None else [EVERYONE, scope.channel]
        must: list[Any] = [edge.FieldCondition(AUDIENCE, match=edge.MatchAny(seen))]
        if scope.sources is not None:
            must.append(edge.FieldCondition("source", match=edge.MatchAny(list(scope.sources))))
        must_not: list[Any] = []
        if scope.hidden:
            must_not.append(edge.FieldCondition("source", match=edge.MatchAny(list(scope.hidden))))
        return edge.Filter(must=must, must_not=must_not or None)

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
        if self.shard is None:
            return []
        where = self._filter(scope)
        dense = edge.Query.Nearest(query.dense.tolist(), using=DENSE)
        sparse = edge.Query.Nearest(
            edge.SparseVector(query.sparse.indices.tolist(), query.sparse.values.tolist()),
            using=SPARSE,
        )
        if mode in ("dense", "sparse"):
            request = edge.QueryRequest(
                limit=limit,
                query=dense if mode == "dense" else sparse,
                filter=where,
                with_payload=False,
                with_vector=False,
            )
        else:
            request = edge.QueryRequest(
                limit=limit,
                prefetches=[
                    edge.Prefetch(limit=candidates, query=dense, filter=where),
                    edge.Prefetch(limit=candidates, query=sparse, filter=where),
                ],
                query=edge.Fusion.Rrf(k=RRF_K, weights=list(weights)),  # type: ignore[arg-type]
                with_payload=False,  # the few chosen get theirs in `_complete`
                with_vector=False,
            )
        return [
            Found(float(p.score), _stored(p.id, p.payload, p.vector))
            for p in self.shard.query(request)
        ]

    def _complete(self, found: list[Found]) -> list[Found]:
        if self.shard is None or not found:
            return found
        records = self.shard.retrieve(
            [f.point.id for f in found], with_payload=True, with_vector=True
        )
        by_id = {str(r.id): r for r in records}
        return [  # a point deleted between the two calls is left out
            Found(f.score, _stored(r.id, r.payload, r.vector))
            for f in found
            if (r := by_id.get(f.point.id)) is not None
        ]


RRF_K = 2  # Qdrant's default reciprocal-rank constant, as the server and qdrant-client use


def _stored(pid: Any, payload: dict[str, Any] | None, vector: Any) -> StoredPoint:
    vectors = vector if isinstance(vector, dict) else {}
    sparse = vectors.get(SPARSE)
    return StoredPoint(
        str(pid),
        payload or {},
        vectors.get(DENSE) or [],
        sparse.indices if sparse is not None else [],
        sparse.values if sparse is not None else [],
    )


def _without_audience(payload: dict[str, Any] | None) -> dict[str, Any]:
    """The document's payload: `audience` is this engine's, and a copy derives its own."""
    return {k: v for k, v in (payload or {}).items() if k != AUDIENCE}


def _hold(path: Path, holder: str) -> IO[str]:
    """Lock the index for this process, or say who holds it."""
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        note = handle.read()
        handle.close()
        raise IndexBusyError(_busy_message(path.parent.parent, note)) from None
    handle.seek(0)
    handle.truncate()
    handle.write(
        json.dumps(
            {
                "pid": os.getpid(),
                "command": holder,
                "since": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
    )
    handle.flush()
    return handle


def _busy_message(path: Path, note: str) -> str:
    holder = ""
    try:
        info = json.loads(note)
        holder = f" (`{info['command']}`, pid {info['pid']}, since {info['since']})"
    except (ValueError, KeyError, TypeError):
        pass
    return (
        f"The index at {path} is open in another Ajuste process{holder}. The embedded "
        "Qdrant serves one process at a time: stop that process and retry, or run a Qdrant "
        "server (AJUSTE_QDRANT__URL) so several processes can share the index."
    )
