"""The source interface and what a fetch can return."""

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from retrieval.documents import Section
from retrieval.errors import AjusteError

if TYPE_CHECKING:
    from retrieval.store import StoredDocument


class SourceError(AjusteError):
    """A source could not be listed or a document fetched (server down, bad credentials)."""


@dataclass(frozen=True)
class DocRef:
    doc_id: str  # stable across versions: a path, a URL, a channel + thread ts
    location: str  # what users follow: a path or a URL
    version: str | None = None  # when the listing already knows it (git blob, last reply)


@dataclass
class Fetched:
    """A document's current content."""

    title: str
    sections: list[Section]
    version: str
    location: str
    meta: dict[str, str] = field(default_factory=dict)  # e.g. ETag, for the next fetch
    private_channel: str | None = None  # only ever retrieved for questions in this channel


class Outcome(Enum):
    UNCHANGED = "unchanged"  # the server said so (HTTP 304)
    GONE = "gone"  # the document no longer exists (HTTP 404/410)


UNCHANGED = Outcome.UNCHANGED
GONE = Outcome.GONE
FetchResult = Fetched | Outcome | Exception


class Source(ABC):
    """One named, scheduled collection of documents."""

    kind: str = ""
    workers: int = 1  # documents fetched at once

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def refs(self) -> Iterable[DocRef]:
        """Every document the source holds now. Raises SourceError when it can't be listed."""

    @abstractmethod
    def fetch(self, ref: DocRef, previous: "StoredDocument | None") -> Fetched | Outcome:
        """A document's content, or UNCHANGED / GONE. Raises for a document that fails."""

    def fetch_all(
        self, items: list[tuple[DocRef, "StoredDocument | None"]]
    ) -> Iterator[tuple[DocRef, FetchResult]]:
        """Fetch in order, `workers` at a time (sources over a network raise it)."""

        def one(item: tuple[DocRef, "StoredDocument | None"]) -> tuple[DocRef, FetchResult]:
            try:
                return item[0], self.fetch(*item)
            except Exception as error:  # reported per document by the indexer
                return item[0], error

        if self.workers <= 1:
            yield from map(one, items)
            return
        with ThreadPoolExecutor(
            self.workers, thread_name_prefix=f"{self.kind}-{self.name}"
        ) as pool:
            yield from pool.map(one, items)

    def close(self) -> None:  # noqa: B027  (optional hook, nothing to release by default)
        """Release connections; called after every run."""

    def owns(self, doc_id: str) -> bool:
        """Whether a stored document of this source that is no longer listed should go."""
        return True
