"""Prompt assembly within the context window: instructions, numbered sources, history, question.

When everything does not fit, the lowest-ranked chunks go first, then the oldest turns of the
conversation, then the last chunk; a question that alone does not fit is refused.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from retrieval.errors import AjusteError
from retrieval.store import Hit

SYSTEM_PROMPT = (
    "You are Ajuste, the team's assistant. Answer the question using only the numbered "
    "sources. Cite the sources you use like [1]. Be brief and exact. If the sources do not "
    "contain the answer, say that you don't know."
)

Message = dict[str, str]


class QuestionTooLongError(AjusteError):
    """The question leaves no room in the context window."""


@dataclass
class Source:
    """A document given to the model under one number, with the chunks of it that fit."""

    n: int
    title: str
    location: str
    hits: list[Hit] = field(default_factory=list)


@dataclass(frozen=True)
class Turn:
    question: str
    answer: str


@dataclass
class PromptPlan:
    messages: list[Message]
    sources: list[Source]
    prompt_tokens: int
    hits_dropped: int = 0
    turns_dropped: int = 0


def number_sources(hits: Sequence[Hit]) -> list[Source]:
    """Group chunks by document, numbered in the order of each document's best chunk."""
    by_doc: dict[str, Source] = {}
    for hit in hits:
        if hit.doc_id not in by_doc:
            by_doc[hit.doc_id] = Source(len(by_doc) + 1, hit.title, hit.location)
        by_doc[hit.doc_id].hits.append(hit)
    return list(by_doc.values())


def _messages(
    system: str, sources: list[Source], history: Sequence[Turn], question: str
) -> list[Message]:
    messages = [{"role": "system", "content": system}]
    for turn in history:
        messages.append({"role": "user", "content": turn.question})
        messages.append({"role": "assistant", "content": turn.answer})
    if sources:
        blocks = [
            f"[{source.n}] {source.title}\n" + "\n".join(hit.text for hit in source.hits)
            for source in sources
        ]
        content = "Sources:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question}"
    else:
        content = question
    messages.append({"role": "user", "content": content})
    return messages


def plan_prompt(
    question: str,
    hits: Sequence[Hit],
    history: Sequence[Turn],
    *,
    count: Callable[[Sequence[Message]], int],
    n_ctx: int,
    answer_tokens: int,
    system: str = SYSTEM_PROMPT,
) -> PromptPlan:
    budget = n_ctx - answer_tokens
    alone = count(_messages(system, [], [], question))
    if alone > budget:
        raise QuestionTooLongError(
            f"The question is about {alone} tokens, but the model's window leaves room for "
            f"{budget} after reserving {answer_tokens} for the answer: shorten it."
        )
    kept_hits, kept_turns = list(hits), list(history)
    while True:
        sources = number_sources(kept_hits)
        messages = _messages(system, sources, kept_turns, question)
        tokens = count(messages)
        if tokens <= budget:
            return PromptPlan(
                messages,
                sources,
                tokens,
                hits_dropped=len(hits) - len(kept_hits),
                turns_dropped=len(history) - len(kept_turns),
            )
        if len(kept_hits) > 1:
            kept_hits.pop()
        elif kept_turns:
            kept_turns.pop(0)
        else:
            kept_hits.clear()
