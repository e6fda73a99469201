"""Indexing: the one service the CLI, the scheduler and Slack's /reindex all call.

Source-agnostic and incremental: a document whose version is unchanged is not re-embedded, a
changed one is replaced atomically (see store.py), and one its source no longer lists is
removed. A source that cannot be listed changes nothing: its documents stay searchable.
"""

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from retrieval.chunking import Chunk, chunk_document
from retrieval.embeddings import Embedder
from retrieval.errors import AjusteError
from retrieval.settings import RetrievalSettings
from retrieval.sources.base import GONE, UNCHANGED, DocRef, Fetched, Source, SourceError
from retrieval.sources.files import FilesSource
from retrieval.store import ChunkStore, StoredDocument

log = logging.getLogger(__name__)

FILES_SOURCE = "files"
_EMBED_BATCH_CHUNKS = 256  # chunks gathered across small documents per embedding call

Progress = Callable[[int, int], None]  # (documents done, documents listed)


@dataclass
class IndexReport:
    added: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    failed: int = 0
    chunks_embedded: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class _Prepared:
    ref: DocRef
    fetched: Fetched
    chunks: list[Chunk]
    previous: StoredDocument | None


def require_paths(paths: Sequence[Path]) -> None:
    """Refuse, before anything changes, a path that does not exist (a typo, not a deletion)."""
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        raise AjusteError(f"No such file or folder: {', '.join(missing)}")


class Indexer:
    def __init__(self, *, embedder: Embedder, store: ChunkStore, settings: RetrievalSettings):
        self.embedder = embedder
        self.store = store
        self.settings = settings

    def files_source(self, paths: Sequence[Path], name: str = FILES_SOURCE) -> FilesSource:
        return FilesSource(name, list(paths), max_bytes=int(self.settings.max_file_mb * 1048576))

    def index_paths(
        self,
        paths: Sequence[Path],
        *,
        source: str = FILES_SOURCE,
        on_problem: Callable[[str], None] | None = None,
    ) -> IndexReport:
        """Index files and folders; a folder's vanished files leave the index."""
        require_paths(paths)
        return self.index_source(self.files_source(paths, source), on_problem=on_problem)

    def index_source(
        self,
        source: Source,
        *,
        on_problem: Callable[[str], None] | None = None,
        on_progress: Progress | None = None,
    ) -> IndexReport:
        started = time.perf_counter()
        self.store.ensure_collection(self.embedder.dim, self.embedder.keywords)
        report = IndexReport()
        stored = self.store.documents(source=source.name)
        try:
            refs = list(source.refs())
        except OSError as error:
            raise SourceError(f"could not list source '{source.name}': {error}") from error
        listed = {ref.doc_id for ref in refs}
        to_fetch: list[tuple[DocRef, StoredDocument | None]] = []
        for ref in refs:
            previous = stored.get(ref.doc_id)
            if ref.version and previous is not None and previous.live_version == ref.version:
                report.unchanged += 1
            else:
                to_fetch.append((ref, previous))
        done = report.unchanged
        batch: list[_Prepared] = []
        for ref, result in source.fetch_all(to_fetch):
            done += 1
            previous = stored.get(ref.doc_id)
            prepared = self._prepare(ref, result, previous, report, on_problem)
            if prepared is not None:
                batch.append(prepared)
                if sum(len(p.chunks) for p in batch) >= _EMBED_BATCH_CHUNKS:
                    self._write(batch, source.name, report)
                    batch = []
            if on_progress is not None:
                on_progress(done, len(refs))
        self._write(batch, source.name, report)
        for doc_id, doc in stored.items():
            if doc_id not in listed and source.owns(doc_id):
                self._delete(doc)
                report.deleted += 1
        if report.added or report.updated or report.deleted:
            self.store.optimize()  # a no-op after small changes; builds indexes after large ones
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    def _prepare(
        self,
        ref: DocRef,
        result: Fetched | Exception | object,
        previous: StoredDocument | None,
        report: IndexReport,
        on_problem: Callable[[str], None] | None,
    ) -> _Prepared | None:
        if isinstance(result, Exception):
            report.failed += 1
            self._problem(report, on_problem, _describe(ref.location, result))
            return None
        if result is UNCHANGED:
            report.unchanged += 1
            return None
        if result is GONE:
            if previous is not None:
                self._delete(previous)
                report.deleted += 1
            return None
        assert isinstance(result, Fetched)
        if previous is not None and result.version in previous.versions:
            if previous.live_version == result.version:
                report.unchanged += 1
                return None
            if not previous.versions[result.version].pending:  # a crash left an old copy
                self.store.delete_points(
                    pid
                    for v, s in previous.versions.items()
                    if v != result.version
                    for pid in s.point_ids
                )
                report.unchanged += 1
                return None
        if not result.sections:
            report.failed += 1
            self._problem(report, on_problem, f"{ref.location}: no text: skipped")
            return None
        chunks = chunk_document(
            result.title,
            result.sections,
            count_tokens=self.embedder.count_tokens,
            split_tokens=self.embedder.split_tokens,
            size=self.settings.chunk_tokens,
            overlap=self.settings.chunk_overlap,
        )
        return _Prepared(ref, result, chunks, previous)

    def _delete(self, doc: StoredDocument) -> None:
        self.store.delete_points(
            pid for version in doc.versions.values() for pid in version.point_ids
        )

    def _write(self, batch: list[_Prepared], source: str, report: IndexReport) -> None:
        if not batch:
            return
        with_headings = self.settings.heading_context
        embeddings = self.embedder.embed_documents(
            [c.text if with_headings else c.body for p in batch for c in p.chunks]
        )
        start = 0
        for prepared in batch:
            fetched, chunks = prepared.fetched, prepared.chunks
            document = {
                "source": source,
                "title": fetched.title,
                "location": fetched.location,
                "meta": fetched.meta,
                "n_chunks": len(chunks),
            }
            if fetched.private_channel:
                document["private_channel"] = fetched.private_channel
            self.store.replace_document(
                doc_id=prepared.ref.doc_id,
                version=fetched.version,
                payloads=[
                    {**document, "heading": chunk.heading, "body": chunk.body, "chunk": number}
                    for number, chunk in enumerate(chunks)
                ],
                embeddings=embeddings[start : start + len(chunks)],
                previous=prepared.previous,
            )
            start += len(chunks)
            report.chunks_embedded += len(chunks)
            previous = prepared.previous
            if previous is None or all(v.pending for v in previous.versions.values()):
                report.added += 1
            else:
                report.updated += 1

    @staticmethod
    def _problem(report: IndexReport, on_problem: Callable[[str], None] | None, text: str) -> None:
        report.problems.append(text)
        log.warning("%s", text)
        if on_problem is not None:
            on_problem(text)


def _describe(location: str, error: Exception) -> str:
    if isinstance(error, FileNotFoundError):
        return f"{location}: vanished while indexing: skipped (the next run removes it if gone)"
    if isinstance(error, PermissionError):
        return f"{location}: permission denied: skipped (make it readable, then index again)"
    if isinstance(error, OSError):
        return f"{location}: could not be read ({error.strerror or error}): skipped"
    return f"{location}: {error}"
