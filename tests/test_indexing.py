"""Incremental indexing with the real embedder and the real embedded Qdrant."""

from pathlib import Path

import pytest

from retrieval.errors import AjusteError
from retrieval.indexer import Indexer
from retrieval.sources.files import FilesSource
from retrieval.store import ChunkStore


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def counts(report: object) -> tuple[int, int, int, int]:
    return (report.added, report.updated, report.deleted, report.unchanged)  # type: ignore[attr-defined]


def test_add_change_delete_and_unchanged(indexer: Indexer, store: ChunkStore, tmp_path: Path):
    docs = tmp_path / "docs"
    write(docs / "a.md", "# Alpha\n\nThe alpha door code is 1234.")
    write(docs / "b.txt", "Bravo team meets on Tuesdays.")
    write(docs / "sub" / "c.rst", "Charlie\n=======\n\nCharlie's budget is EUR 500.")

    first = indexer.index_paths([docs])
    assert counts(first) == (3, 0, 0, 0)
    assert first.chunks_embedded == 3

    again = indexer.index_paths([docs])
    assert counts(again) == (0, 0, 0, 3)
    assert again.chunks_embedded == 0

    write(docs / "a.md", "# Alpha\n\nThe alpha door code is now 9876.")
    (docs / "b.txt").unlink()
    changed = indexer.index_paths([docs])
    assert counts(changed) == (0, 1, 1, 1)

    stored = store.documents()
    assert sorted(Path(doc_id).name for doc_id in stored) == ["a.md", "c.rst"]
    assert store.count_chunks() == 2
    bodies = [hit.body for hit in _search(indexer, "alpha door code")]
    assert any("9876" in body for body in bodies)
    assert not any("1234" in body for body in bodies)


def _search(indexer: Indexer, query: str) -> list:
    return indexer.store.search(
        indexer.embedder.embed_query(query), limit=5, candidates=20, weights=(1.0, 1.0)
    )


def test_missing_path_is_refused_before_anything_changes(indexer: Indexer, tmp_path: Path):
    with pytest.raises(AjusteError, match="No such file or folder"):
        indexer.index_paths([tmp_path / "nope"])


def test_files_outside_an_indexed_folder_are_kept(indexer: Indexer, tmp_path: Path):
    write(tmp_path / "one" / "a.md", "# A\n\nFirst folder.")
    write(tmp_path / "two" / "b.md", "# B\n\nSecond folder.")
    indexer.index_paths([tmp_path / "one"])
    indexer.index_paths([tmp_path / "two"])
    assert counts(indexer.index_paths([tmp_path / "two"])) == (0, 0, 0, 1)
    assert len(indexer.store.documents()) == 2


def test_bad_files_are_reported_and_good_ones_indexed(indexer: Indexer, tmp_path: Path):
    docs = tmp_path / "docs"
    write(docs / "good.md", "# Good\n\nThe good file.")
    (docs / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00" * 10)
    (docs / "latin.txt").write_bytes("Caf\xe9 menu: soup".encode("cp1252"))
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    write(docs / "empty.md", "   \n")
    big = docs / "big.txt"
    with big.open("w") as handle:
        line = "A long line of repeated log text to make the file large. " * 20 + "\n"
        handle.write(line * (50 * 1024 * 1024 // len(line) + 1))

    report = indexer.index_paths([docs])

    assert report.added == 2  # good.md and the Windows-1252 file
    assert report.failed == 4
    problems = "\n".join(report.problems)
    assert "binary.txt" in problems and "binary file" in problems
    assert "big.txt" in problems and "MB limit" in problems
    assert "broken.pdf" in problems and "PDF" in problems
    assert "empty.md" in problems and "no text" in problems


def test_a_file_that_vanishes_mid_index_keeps_the_rest(
    indexer: Indexer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    docs = tmp_path / "docs"
    write(docs / "stays.md", "# Stays\n\nStill here.")
    gone = write(docs / "gone.md", "# Gone\n\nAbout to vanish.")
    listing = FilesSource.refs

    def listing_then_delete(self: FilesSource) -> list:
        found = listing(self)
        gone.unlink()  # listed, then deleted before it is read
        return found

    monkeypatch.setattr(FilesSource, "refs", listing_then_delete)
    report = indexer.index_paths([docs])
    assert report.added == 1 and report.failed == 1
    assert "vanished" in report.problems[0]


def test_a_crash_mid_replace_keeps_the_old_version(
    indexer: Indexer, store: ChunkStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    doc = write(tmp_path / "docs" / "policy.md", "# Policy\n\nThe travel limit is EUR 100.")
    indexer.index_paths([doc.parent])
    write(doc, "# Policy\n\nThe travel limit is EUR 250.")

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed")

    monkeypatch.setattr(store, "_reveal", crash)  # dies after writing the new chunks hidden
    with pytest.raises(RuntimeError):
        indexer.index_paths([doc.parent])
    monkeypatch.undo()

    visible = [hit.body for hit in _search(indexer, "travel limit")]
    assert visible == ["The travel limit is EUR 100."]  # old version only, new one hidden

    report = indexer.index_paths([doc.parent])  # the next run finishes the job
    assert report.updated == 1
    visible = [hit.body for hit in _search(indexer, "travel limit")]
    assert visible == ["The travel limit is EUR 250."]
    versions = store.documents()[str(doc.resolve())].versions
    assert len(versions) == 1


def test_the_index_copies_to_another_qdrant_without_reembedding(
    indexer: Indexer, store: ChunkStore, tmp_path: Path, embedder
):
    """Qdrant Edge into a server (qdrant-client's local mode stands in: the same calls)."""
    from qdrant_client import QdrantClient

    from retrieval.settings import QdrantSettings
    from retrieval.store.client import ClientStore

    docs = tmp_path / "docs"
    write(docs / "a.md", "# Alpha\n\nThe alpha door code is 1234.")
    write(docs / "b.md", "# Bravo\n\nBravo team meets on Tuesdays.")
    indexer.index_paths([docs])
    tuned = QdrantSettings(path=tmp_path / "target", on_disk=True, quantization="int8", hnsw_m=32)
    target = ClientStore(
        QdrantClient(path=str(tmp_path / "target")), collection="ajuste", local=True, settings=tuned
    )
    try:
        assert store.copy_to(target) == store.count_chunks() == target.count_chunks() == 2
        assert target.dimension() == embedder.dim
        assert target.keywords() == store.keywords() == embedder.keywords  # its language too
        assert target.documents().keys() == store.documents().keys()
        query = embedder.embed_query("door code")

        def ranked(s: ChunkStore) -> list[str]:
            return [h.body for h in s.search(query, limit=2, candidates=10, weights=(1.0, 1.0))]

        assert ranked(target) == ranked(store)
        params = target.client.get_collection(target.collection).config.params
        assert params.vectors["dense"].on_disk is True  # type: ignore[index]
    finally:
        target.close()
