"""Where documents come from. A kind of source is one module implementing `Source`.

The indexer only ever sees this interface: list documents with a stable id (and a version when
the listing knows it), then fetch one document's text and metadata.
"""

from retrieval.sources.base import GONE, UNCHANGED, DocRef, Fetched, Source, SourceError

__all__ = ["GONE", "UNCHANGED", "DocRef", "Fetched", "Source", "SourceError"]
