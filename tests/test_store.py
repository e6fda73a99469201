"""The embedded index on Qdrant Edge: scoping by payload filter, moving an earlier version's
index in without re-embedding, and a damaged index reported without deleting anything."""

import json
import logging
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from retrieval.embeddings import Embedder
from retrieval.indexer import Indexer
from retrieval.settings import QdrantSettings, RetrievalSettings
from retrieval.store import ChunkStore, Scope, open_store
from retrieval.store.client import ClientStore
from retrieval.store.edge import EdgeStore, IndexDamagedError

DOCS = {
    "wiki/door.md": "# Door\n\nThe office door code is 4711.",
    "wiki/lunch.md": "# Lunch\n\nLunch is served at noon in the atrium.",
    "ops/pager.md": "# Pager\n\nThe pager rotation changes on Mondays.",
    "board/pager.md": "# Pager\n\nThe board's pager rotation changes on Fridays.",
}


def _index(store: ChunkStore, embedder: Embedder, root: Path) -> None:
    for name, text in DOCS.items():
        path = root / "docs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    indexer = Indexer(embedder=embedder, store=store, settings=RetrievalSettings())
    indexer.index_paths([root / "docs" / "wiki"], source="wiki")
    indexer.index_paths([root / "docs" / "ops"], source="ops")
    private = indexer.files_source([root / "docs" / "board"], "secret")
    fetch = private.fetch

    def fetch_private(ref, previous):  # type: ignore[no-untyped-def]
        fetched = fetch(ref, previous)
        fetched.private_channel = "CPRIV"
        fetched.title = "Secret pager"
        return fetched

    private.fetch = fetch_private  # type: ignore[method-assign]
    indexer.index_source(private)


def _titles(store: ChunkStore, embedder: Embedder, query: str, scope: Scope) -> list[str]:
    hits = store.search(
        embedder.embed_query(query), limit=6, candidates=20, weights=(2.0, 1.0), scope=scope
    )
    return sorted({hit.title for hit in hits})


def test_scopes_are_payload_filters_and_match_qdrant_client(tmp_path: Path, embedder: Embedder):
    edge_store = open_store(QdrantSettings(), tmp_path / "edge")
    legacy = ClientStore(
        QdrantClient(path=str(tmp_path / "legacy")), collection="ajuste", local=True
    )
    try:
        assert isinstance(edge_store, EdgeStore)
        for store in (edge_store, legacy):
            _index(store, embedder, tmp_path / type(store).__name__)
        scopes = {
            "everywhere": Scope(),
            "only ops": Scope(sources=("ops",)),
            "not ops": Scope(hidden=("ops",)),
            "in the private channel": Scope(channel="CPRIV"),
            "in another channel": Scope(channel="COTHER"),
        }
        for label, scope in scopes.items():
            seen = _titles(edge_store, embedder, "pager rotation door code", scope)
            assert seen == _titles(legacy, embedder, "pager rotation door code", scope), label
            assert ("Secret pager" in seen) == (label == "in the private channel"), label
        assert _titles(edge_store, embedder, "door", Scope(sources=("ops",))) == ["Pager"]
    finally:
        edge_store.close()
        legacy.close()


def test_an_earlier_index_moves_into_qdrant_edge_once(
    tmp_path: Path, embedder: Embedder, caplog: pytest.LogCaptureFixture
):
    root = tmp_path / "data" / "qdrant"
    legacy = ClientStore(QdrantClient(path=str(root)), collection="ajuste", local=True)
    _index(legacy, embedder, tmp_path)
    before = legacy.documents()
    assert legacy.count_documents() == len(before) > 1  # a facet on doc_id, not a scroll
    query = embedder.embed_query("when does the pager rotation change")
    expected = [h.body for h in legacy.search(query, limit=3, candidates=20, weights=(2.0, 1.0))]
    legacy.close()

    with caplog.at_level(logging.WARNING):
        store = open_store(QdrantSettings(), tmp_path / "data")
    try:
        assert isinstance(store, EdgeStore)
        assert "moved 4 chunks into Qdrant Edge" in caplog.text
        assert store.documents().keys() == before.keys()
        assert store.count_documents() == len(before)
        assert store.keywords() == embedder.keywords and store.dimension() == embedder.dim
        found = store.search(query, limit=3, candidates=20, weights=(2.0, 1.0))
        assert [h.body for h in found] == expected
    finally:
        store.close()
    assert not (root / "collection" / "ajuste").exists()  # the old copy went, after the check

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        open_store(QdrantSettings(), tmp_path / "data").close()  # nothing left to move
    assert "moved" not in caplog.text


def test_a_move_cut_short_is_redone_from_the_intact_original(tmp_path: Path, embedder: Embedder):
    root = tmp_path / "data" / "qdrant"
    legacy = ClientStore(QdrantClient(path=str(root)), collection="ajuste", local=True)
    _index(legacy, embedder, tmp_path)
    legacy.close()
    half = EdgeStore(root, settings=QdrantSettings(), holder="test")  # as a killed move left it
    half.ensure_collection(embedder.dim, embedder.keywords, migrating_from=str(root))
    half.close()

    store = open_store(QdrantSettings(), tmp_path / "data")
    try:
        assert store.count_chunks() == 4
        assert "migrating_from" not in json.loads((root / "edge" / "ajuste.json").read_text())
    finally:
        store.close()


def test_a_damaged_index_is_reported_in_one_line_and_kept(tmp_path: Path, embedder: Embedder):
    store = open_store(QdrantSettings(), tmp_path)
    _index(store, embedder, tmp_path)
    store.close()
    shard = tmp_path / "qdrant" / "edge" / "ajuste"
    for segment_file in shard.rglob("*"):
        if segment_file.is_file() and segment_file.stat().st_size > 0:
            segment_file.write_bytes(b"\x00garbage" * 4)
    files = sorted(p.relative_to(shard) for p in shard.rglob("*"))

    with pytest.raises(IndexDamagedError) as raised:
        open_store(QdrantSettings(), tmp_path)
    message = str(raised.value)
    assert "\n" not in message and f"mv {shard} {shard}.broken" in message
    assert "nothing was deleted" in message
    assert sorted(p.relative_to(shard) for p in shard.rglob("*")) == files

    (tmp_path / "qdrant" / "edge" / "ajuste.json").unlink()  # a folder Ajuste didn't make
    with pytest.raises(IndexDamagedError, match="can't tell what made it"):
        open_store(QdrantSettings(), tmp_path)
