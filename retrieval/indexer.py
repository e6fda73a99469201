"""Indexing: the one service the CLI, the scheduler and Slack's /reindex all call.

Incremental by content hash: unchanged documents cost a read and a hash, changed ones are
replaced atomically (see store.py), and documents gone from an indexed folder are removed.
"""

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from retrieval.chunking import Chunk, chunk_document
from retrieval.documents import SUPPORTED, Document, content_version, parse_document
from retrieval.embeddings import Embedder
from retrieval.errors import AjusteError, DocumentError
from retrieval.settings import RetrievalSettings
from retrieval.store import ChunkStore, StoredDocument

log = logging.getLogger(__name__)

FILES_SOURCE = "files"
_EMBED_BATCH_CHUNKS = 256  # chunks gathered across small documents per embedding call


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
    document: Document
    chunks: list[Chunk]
    previous: StoredDocument | None


def find_files(root: Path) -> list[Path]:
    """Supported files under a folder, skipping hidden files and folders (.git and the like)."""
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file()
        and path.suffix.lower() in SUPPORTED
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
    )


class Indexer:
    def __init__(self, *, embedder: Embedder, store: ChunkStore, settings: RetrievalSettings):
        self.embedder = embedder
        self.store = store
        self.settings = settings

    def index_paths(
        self,
        paths: Sequence[Path],
        *,
        source: str = FILES_SOURCE,
        on_problem: Callable[[str], None] | None = None,
    ) -> IndexReport:
        """Index files and folders; a folder's vanished files leave the index."""
        started = time.perf_counter()
        missing = [str(path) for path in paths if not path.exists()]
        if missing:
            raise AjusteError(f"No such file or folder: {', '.join(missing)}")
        self.store.ensure_collection(self.embedder.dim)
        report = IndexReport()
        stored = {
            doc_id: doc for doc_id, doc in self.store.documents().items() if doc.source == source
        }
        seen: set[str] = set()
        batch: list[_Prepared] = []
        for path in self._listing(paths):
            doc_id = str(path)
            seen.add(doc_id)
            try:
                prepared = self._prepare(path, doc_id, stored.get(doc_id), report)
            except (DocumentError, OSError) as error:
                report.failed += 1
                self._problem(report, on_problem, _describe(path, error))
                continue
            if prepared is None:
                continue
            batch.append(prepared)
            if sum(len(p.chunks) for p in batch) >= _EMBED_BATCH_CHUNKS:
                self._write(batch, source, report)
                batch = []
        self._write(batch, source, report)
        roots = [path for path in paths if path.is_dir()]
        for doc_id, doc in stored.items():
            if doc_id not in seen and any(Path(doc_id).is_relative_to(root) for root in roots):
                self.store.delete_points(
                    pid for version in doc.versions.values() for pid in version.point_ids
                )
                report.deleted += 1
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    def _listing(self, paths: Iterable[Path]) -> list[Path]:
        listing: dict[Path, None] = {}
        for path in paths:
            resolved = path.resolve()
            for found in find_files(resolved) if resolved.is_dir() else [resolved]:
                listing[found] = None
        return list(listing)

    def _prepare(
        self, path: Path, doc_id: str, previous: StoredDocument | None, report: IndexReport
    ) -> _Prepared | None:
        limit = self.settings.max_file_mb * 1024 * 1024
        size = path.stat().st_size
        if size > limit:
            raise DocumentError(
                f"{size / 1048576:.1f} MB is over the {self.settings.max_file_mb:g} MB limit: "
                "skipped (raise AJUSTE_RETRIEVAL__MAX_FILE_MB or split the file)"
            )
        data = path.read_bytes()
        version = content_version(data)
        if previous is not None and version in previous.versions:
            if previous.live_version == version:
                report.unchanged += 1
                return None
            if not previous.versions[version].pending:  # a crash left an older copy behind
                self.store.delete_points(
                    pid for v, s in previous.versions.items() if v != version for pid in s.point_ids
                )
                report.unchanged += 1
                return None
        title, sections = parse_document(path, data)
        document = Document(doc_id, str(path), title, version, sections)
        chunks = chunk_document(
            title,
            sections,
            count_tokens=self.embedder.count_tokens,
            split_tokens=self.embedder.split_tokens,
            size=self.settings.chunk_tokens,
            overlap=self.settings.chunk_overlap,
        )
        return _Prepared(document, chunks, previous)

    def _write(self, batch: list[_Prepared], source: str, report: IndexReport) -> None:
        if not batch:
            return
        embeddings = self.embedder.embed_documents([c.text for p in batch for c in p.chunks])
        start = 0
        for prepared in batch:
            doc, chunks = prepared.document, prepared.chunks
            self.store.replace_document(
                doc_id=doc.doc_id,
                version=doc.version,
                payloads=[
                    {
                        "source": source,
                        "title": doc.title,
                        "location": doc.location,
                        "heading": chunk.heading,
                        "body": chunk.body,
                        "chunk": number,
                        "n_chunks": len(chunks),
                    }
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


def _describe(path: Path, error: Exception) -> str:
    if isinstance(error, FileNotFoundError):
        return f"{path}: vanished while indexing: skipped (the next run removes it if it is gone)"
    if isinstance(error, PermissionError):
        return f"{path}: permission denied: skipped (make it readable, then index again)"
    if isinstance(error, OSError):
        return f"{path}: could not be read ({error.strerror or error}): skipped"
    return f"{path}: {error}"
