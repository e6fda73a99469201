"""What the index holds, in the words of Ajuste rather than of one Qdrant engine."""

import uuid
from dataclasses import dataclass, field
from typing import Any

DENSE = "dense"
SPARSE = "bm25"
PRIVATE = "private_channel"  # payload key of chunks from a private Slack channel
HOLDER_FILE = "ajuste-holder.json"
KEYWORDS = "keywords"  # index metadata: the sparse model and language of its vectors
LEGACY_KEYWORDS = "Qdrant/bm25:english"  # indexes made before the language was a setting
_POINT_NAMESPACE = uuid.UUID("8c4a5a0e-4f0e-4a54-9a8a-2f8f3f0c1d5e")


def point_id(doc_id: str, version: str, chunk: int) -> str:
    return str(uuid.uuid5(_POINT_NAMESPACE, f"{doc_id}\x00{version}\x00{chunk}"))


@dataclass
class StoredVersion:
    point_ids: list[str] = field(default_factory=list)
    pending: bool = False


@dataclass
class StoredDocument:
    """What the index holds of one document: normally one visible version."""

    doc_id: str
    source: str
    location: str
    versions: dict[str, StoredVersion] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)  # the source's notes, e.g. an ETag

    @property
    def live_version(self) -> str | None:
        live = [v for v, stored in self.versions.items() if not stored.pending]
        return live[0] if len(live) == 1 and len(self.versions) == 1 else None


@dataclass(frozen=True)
class Scope:
    """What one question may see."""

    sources: tuple[str, ...] | None = None  # only these sources; None: any
    hidden: tuple[str, ...] = ()  # never these sources
    channel: str | None = None  # a private channel's content is visible only inside it


EVERYWHERE = Scope()


@dataclass
class StoredPoint:
    """One chunk as an engine stores it; vectors are empty when they were not asked for."""

    id: str
    payload: dict[str, Any]
    dense: list[float] = field(default_factory=list)
    sparse_indices: list[int] = field(default_factory=list)
    sparse_values: list[float] = field(default_factory=list)


@dataclass
class Found:
    """A search result before it becomes a `Hit`."""

    score: float
    point: StoredPoint
