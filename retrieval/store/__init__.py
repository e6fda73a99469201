"""The chunk store: Qdrant Edge embedded under the data dir, or a Qdrant server at a URL.

Both run the same queries (dense and BM25 candidates fused by weighted reciprocal rank, with
payload filters for scope) behind `ChunkStore`; `open_store` picks one from the settings.
"""

from retrieval.hits import Hit
from retrieval.store.base import ChunkStore
from retrieval.store.opening import open_store
from retrieval.store.records import (
    DENSE,
    EVERYWHERE,
    HOLDER_FILE,
    KEYWORDS,
    LEGACY_KEYWORDS,
    PRIVATE,
    SPARSE,
    Scope,
    StoredDocument,
    StoredPoint,
    StoredVersion,
    point_id,
)

__all__ = [
    "DENSE",
    "EVERYWHERE",
    "HOLDER_FILE",
    "KEYWORDS",
    "LEGACY_KEYWORDS",
    "PRIVATE",
    "SPARSE",
    "ChunkStore",
    "Hit",
    "Scope",
    "StoredDocument",
    "StoredPoint",
    "StoredVersion",
    "open_store",
    "point_id",
]
