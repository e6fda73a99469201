"""The one place that opens the index: a Qdrant server when a URL is set, else Qdrant Edge.

An index made by an earlier version (qdrant-client's local mode, under the same folder) is
moved into Qdrant Edge the first time it is opened: vectors and payloads copied as they are,
no re-embedding. The old copy is deleted only after the new one holds every chunk; a copy cut
short is started again on the next open.
"""

import logging
from pathlib import Path

from qdrant_client import QdrantClient
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from retrieval.errors import IndexBusyError, StoreUnavailableError
from retrieval.settings import QdrantSettings
from retrieval.store.base import ChunkStore
from retrieval.store.client import ClientStore
from retrieval.store.edge import EdgeStore
from retrieval.store.records import LEGACY_KEYWORDS

log = logging.getLogger(__name__)
MIGRATING = "migrating_from"  # in the Edge index's record while a copy is under way


def open_store(settings: QdrantSettings, data_dir: Path, *, holder: str = "ajuste") -> ChunkStore:
    """`holder` names this process (e.g. "ajuste chat") to whoever finds the index busy."""
    if settings.url is not None:
        return _open_server(settings)
    root = settings.path or data_dir / "qdrant"
    store = EdgeStore(root, settings=settings, holder=holder)
    try:
        record = store.record() or {}
        if MIGRATING in record:  # a copy was cut short: ours to redo, the original is intact
            log.warning("an earlier move of the index into Qdrant Edge was cut short: redoing it")
            store.drop()
        if store.dimension() is None and _legacy_collection(root, settings.collection):
            move_legacy_index(root, store)
    except BaseException:
        store.close()
        raise
    return store


def _open_server(settings: QdrantSettings) -> ClientStore:
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
    return ClientStore(client, collection=settings.collection, local=False, settings=settings)


def _legacy_collection(root: Path, collection: str) -> bool:
    """Whether qdrant-client's local mode holds this collection under `root`."""
    return (root / "collection" / collection).is_dir()


def open_legacy(root: Path, settings: QdrantSettings) -> ClientStore:
    """The index as earlier versions kept it (qdrant-client local mode), for moving it."""
    try:
        client = QdrantClient(path=str(root))
    except RuntimeError as error:
        if "already accessed" not in str(error):
            raise
        raise IndexBusyError(
            f"The old index at {root} is open in another process (an earlier Ajuste?): stop it "
            "and start again, so the index can move into Qdrant Edge."
        ) from error
    return ClientStore(client, collection=settings.collection, local=True, settings=settings)


def move_legacy_index(root: Path, store: EdgeStore) -> int:
    """Copy an earlier version's index into `store`, then delete the old copy."""
    legacy = open_legacy(root, store.settings)
    try:
        total = legacy.count_chunks()
        dim = legacy.dimension()
        if dim is None:
            return 0
        log.warning("moving the index at %s (%d chunks) into Qdrant Edge, once", root, total)
        keywords = legacy.keywords() or LEGACY_KEYWORDS
        store.ensure_collection(dim, keywords, **{MIGRATING: str(root)})
        copied = legacy.copy_to(store)
        if store.count_chunks() != total:
            raise StoreUnavailableError(
                f"Moving the index into Qdrant Edge copied {store.count_chunks()} of {total} "
                "chunks; the old index is kept: run the command again."
            )
        store.note(**{MIGRATING: None})
        legacy.client.delete_collection(store.collection)
        log.warning(
            "moved %d chunks into Qdrant Edge at %s; the old copy is deleted", copied, store.path
        )
        return copied
    finally:
        legacy.close()


def _reason(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[-1][:200] if text else type(error).__name__
