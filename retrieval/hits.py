"""A ranked chunk: what search returns and prompts are built from.

Apart from the store, so the prompt shape (`retrieval.context`) and the fine-tune that trains
on it import no Qdrant client: a training machine needs only the fine-tune stack.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Hit:
    score: float
    similarity: float  # cosine between question and chunk
    keyword_coverage: float  # share of the question's keywords the chunk holds
    doc_id: str
    source: str
    title: str
    location: str
    heading: str
    body: str
    chunk: int

    @property
    def text(self) -> str:
        return f"{self.heading}\n{self.body}" if self.heading else self.body
