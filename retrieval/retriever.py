"""Question → ranked chunks, and which of them are related enough to answer from."""

from retrieval.embeddings import Embedder
from retrieval.settings import RetrievalSettings
from retrieval.store import EVERYWHERE, ChunkStore, Hit, Scope


class Retriever:
    def __init__(self, *, embedder: Embedder, store: ChunkStore, settings: RetrievalSettings):
        self.embedder = embedder
        self.store = store
        self.settings = settings
        self._keywords_checked = False

    def search(
        self,
        query: str,
        *,
        limit: int | None = None,
        scope: Scope = EVERYWHERE,
        mode: str = "hybrid",
    ) -> list[Hit]:
        """Hybrid-ranked chunks, best first, related or not."""
        if not self._keywords_checked:  # once: an index made for another language says so
            recorded = self.store.check_keywords(self.embedder.keywords)
            self._keywords_checked = recorded is not None
        return self.store.search(
            self.embedder.embed_query(query),
            limit=limit or self.settings.top_k,
            candidates=max(self.settings.candidates, limit or 0),
            weights=self.weights(query),
            scope=scope,
            mode=mode,
        )

    def weights(self, query: str) -> tuple[float, float]:
        """Fusion weights; a query of a few words leans on keywords (codes, names, jargon)."""
        sparse = self.settings.sparse_weight
        if len(query.split()) <= self.settings.short_query_words:
            sparse *= self.settings.short_query_sparse_boost
        return self.settings.dense_weight, sparse

    def is_related(self, hit: Hit) -> bool:
        """Close in meaning, or holding every keyword of the question (codes, names)."""
        return hit.similarity >= self.settings.min_similarity or hit.keyword_coverage >= 1.0

    def related(
        self, query: str, *, limit: int | None = None, scope: Scope = EVERYWHERE
    ) -> list[Hit]:
        return [hit for hit in self.search(query, limit=limit, scope=scope) if self.is_related(hit)]
