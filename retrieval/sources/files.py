"""Files and folders, with include/exclude globs."""

import fnmatch
from pathlib import Path

from retrieval.documents import SUPPORTED, content_version, parse_document
from retrieval.errors import DocumentError
from retrieval.sources.base import DocRef, Fetched, Source, SourceError
from retrieval.store import StoredDocument


class FilesSource(Source):
    kind = "files"

    def __init__(
        self,
        name: str,
        paths: list[Path],
        *,
        include: list[str] | None = None,
        exclude: list[str] | None = None,
        max_bytes: int,
    ) -> None:
        super().__init__(name)
        self.paths = [path.resolve() for path in paths]
        self.include = include or []
        self.exclude = exclude or []
        self.max_bytes = max_bytes

    def _wanted(self, relative: str) -> bool:
        if self.include and not any(fnmatch.fnmatch(relative, g) for g in self.include):
            return False
        return not any(fnmatch.fnmatch(relative, g) for g in self.exclude)

    def refs(self) -> list[DocRef]:
        found: dict[Path, None] = {}
        for root in self.paths:
            if not root.exists():
                raise SourceError(f"{root} does not exist (an unmounted share?): nothing changed")
            if root.is_file():
                found[root] = None
                continue
            for path in sorted(root.rglob("*")):
                relative = path.relative_to(root)
                if (
                    path.is_file()
                    and path.suffix.lower() in SUPPORTED
                    and not any(part.startswith(".") for part in relative.parts)
                    and self._wanted(relative.as_posix())
                ):
                    found[path] = None
        return [DocRef(str(path), str(path)) for path in found]

    def fetch(self, ref: DocRef, previous: StoredDocument | None) -> Fetched:
        path = Path(ref.doc_id)
        size = path.stat().st_size
        if size > self.max_bytes:
            limit = self.max_bytes / 1048576
            raise DocumentError(
                f"{size / 1048576:.1f} MB is over the {limit:g} MB limit: skipped "
                "(raise AJUSTE_RETRIEVAL__MAX_FILE_MB or split the file)"
            )
        data = path.read_bytes()
        version = content_version(data)
        known = previous.versions.get(version) if previous is not None else None
        if known is not None and not known.pending:
            return Fetched("", [], version, ref.location)  # indexed already: nothing to parse
        title, sections = parse_document(path, data)
        return Fetched(title, sections, version, ref.location)

    def owns(self, doc_id: str) -> bool:
        """Only what lies under a folder this run listed: other paths were indexed apart."""
        return any(Path(doc_id).is_relative_to(root) for root in self.paths if root.is_dir())
