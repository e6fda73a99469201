"""How retrieved context is shown to the chat model: numbered sources, then the question.

Serving (`bot.engine.prompt`) and training (`finetune.grounded`) build prompts here, so the model
is fine-tuned on exactly the shape it is asked in.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from retrieval.hits import Hit

SYSTEM_PROMPT = (
    "You are Ajuste, the team's assistant. Answer the question using only the numbered "
    "sources. Copy exact figures, names and steps from them and cite the source like [1]. "
    "Be brief. If the sources do not contain the answer, say that you don't know."
)
# What the grounded model is trained to say when its sources hold no answer.
REFUSAL = "I don't know: the sources don't say."

Message = dict[str, str]
_EMPHASIS = re.compile(r"\*\*|__")


@dataclass(frozen=True)
class Turn:
    question: str
    answer: str


@dataclass
class Source:
    """A document given to the model under one number, with the chunks of it that fit."""

    n: int
    title: str
    location: str
    hits: list[Hit] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(hit.text for hit in self.hits)


def number_sources(hits: Sequence[Hit]) -> list[Source]:
    """Group chunks by document, numbered in the order of each document's best chunk."""
    by_doc: dict[str, Source] = {}
    for hit in hits:
        if hit.doc_id not in by_doc:
            by_doc[hit.doc_id] = Source(len(by_doc) + 1, hit.title, hit.location)
        by_doc[hit.doc_id].hits.append(hit)
    return list(by_doc.values())


class Numbered(Protocol):
    """Anything shown to the model as a numbered source."""

    @property
    def n(self) -> int: ...

    @property
    def title(self) -> str: ...

    @property
    def text(self) -> str: ...


@dataclass(frozen=True)
class Passage:
    """A numbered source kept as text (with a 👍 answer, in a curated example)."""

    n: int
    title: str
    text: str


def plain_text(text: str) -> str:
    """Source text without bold marks: they carry no facts, and the model reads figures better
    without them (its training documents have none)."""
    return _EMPHASIS.sub("", text)


def grounded_messages(
    system: str, sources: Sequence[Numbered], history: Sequence[Turn], question: str
) -> list[Message]:
    """The chat: instructions, earlier turns, then the numbered sources with the question."""
    messages = [{"role": "system", "content": system}]
    for turn in history:
        messages.append({"role": "user", "content": turn.question})
        messages.append({"role": "assistant", "content": turn.answer})
    if sources:
        blocks = [f"[{source.n}] {source.title}\n{plain_text(source.text)}" for source in sources]
        content = "Sources:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question}"
    else:
        content = question
    messages.append({"role": "user", "content": content})
    return messages
