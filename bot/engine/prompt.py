"""Prompt assembly within the context window: instructions, numbered sources, history, question.

When everything does not fit, the lowest-ranked chunks go first, then the oldest turns of the
conversation, then the last chunk; a question that alone does not fit is refused.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from retrieval.context import (
    SYSTEM_PROMPT,
    Message,
    Source,
    Turn,
    grounded_messages,
    number_sources,
)
from retrieval.errors import AjusteError
from retrieval.store import Hit

__all__ = ["SYSTEM_PROMPT", "PromptPlan", "QuestionTooLongError", "Turn", "plan_prompt"]


class QuestionTooLongError(AjusteError):
    """The question leaves no room in the context window."""


@dataclass
class PromptPlan:
    messages: list[Message]
    sources: list[Source]
    prompt_tokens: int
    hits_dropped: int = 0
    turns_dropped: int = 0


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
    alone = count(grounded_messages(system, [], [], question))
    if alone > budget:
        raise QuestionTooLongError(
            f"The question is about {alone} tokens, but the model's window leaves room for "
            f"{budget} after reserving {answer_tokens} for the answer: shorten it."
        )
    kept_hits, kept_turns = list(hits), list(history)
    while True:
        sources = number_sources(kept_hits)
        messages = grounded_messages(system, sources, kept_turns, question)
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
