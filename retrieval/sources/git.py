"""Documentation files of a git repository at its current HEAD (a local clone or path)."""

import fnmatch
import subprocess
from pathlib import Path, PurePosixPath

from retrieval.documents import parse_document
from retrieval.sources.base import DocRef, Fetched, Source, SourceError
from retrieval.store import StoredDocument


class GitSource(Source):
    kind = "git"

    def __init__(self, name: str, path: Path, *, include: list[str], url: str | None) -> None:
        super().__init__(name)
        self.path = path
        self.include = include
        self.url = url
        self._names: dict[str, str] = {}  # doc id → path in the repository, from the listing

    def _git(self, *args: str) -> bytes:
        try:
            done = subprocess.run(
                ["git", "-C", str(self.path), *args], capture_output=True, check=False, timeout=60
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise SourceError(f"git could not run in {self.path}: {error}") from error
        if done.returncode != 0:
            reason = done.stderr.decode(errors="replace").strip().splitlines()
            raise SourceError(
                f"{self.path} is not a readable git repository: {reason[-1] if reason else ''}"
            )
        return done.stdout

    def refs(self) -> list[DocRef]:
        """Files at HEAD whose name matches the include globs; the blob id is the version."""
        listing = self._git("ls-tree", "-r", "-z", "HEAD")
        refs = []
        for entry in listing.split(b"\0"):
            if not entry:
                continue
            meta, _, name = entry.decode("utf-8", errors="replace").partition("\t")
            _, kind, blob = meta.split()
            if kind != "blob" or not any(
                fnmatch.fnmatch(PurePosixPath(name).name, g) or fnmatch.fnmatch(name, g)
                for g in self.include
            ):
                continue
            location = self.url.format(path=name) if self.url else str(self.path / name)
            doc_id = f"git:{self.path}/{name}"
            self._names[doc_id] = name
            refs.append(DocRef(doc_id, location, version=blob))
        return refs

    def fetch(self, ref: DocRef, previous: StoredDocument | None) -> Fetched:
        name = self._names[ref.doc_id]
        data = self._git("show", f"HEAD:{name}")
        title, sections = parse_document(Path(name), data)
        return Fetched(title, sections, ref.version or "", ref.location)
