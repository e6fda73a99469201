"""What the answer service needs of a chat model, whichever backend serves it.

`bot.engine.llm` (llama.cpp in this process) and `bot.engine.llm_server` (llama.cpp servers)
both implement `Engine`; neither imports the other's module for these shapes.
"""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.engine.turns import Turns

Message = dict[str, str]


@dataclass
class GenerationStats:
    model: str = ""
    tokens: int = 0
    first_token_at: float | None = None
    finished_at: float | None = None


class Engine(Protocol):
    """What the answer service needs of a model: in this process, or on llama.cpp servers."""

    n_ctx: int
    turns: Turns

    @property
    def name(self) -> str: ...

    def follow(self) -> None: ...

    def ready(self) -> bool: ...

    def prompt_tokens(self, messages: Sequence[Message]) -> int: ...

    def stream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        stats: GenerationStats | None = None,
        on_wait: Callable[[int], None] | None = None,
        favour: Sequence[str] = (),
        copy_from: str = "",
    ) -> Iterator[str]:
        """Yield the answer's pieces; the tokens of `favour` (source sentences) get the
        settings' `focus_bias` added to their logits while it writes, and code in the answer
        is copied from `copy_from` (the sources) where the backend can see every step."""
        ...


def favoured_tokens(tokenize: Callable[..., list[int]], texts: Sequence[str]) -> list[int]:
    """Every token of `texts`, as they start a line and as they follow a space."""
    ids: set[int] = set()
    for text in texts:
        for variant in (text, f" {text}"):
            ids.update(tokenize(variant.encode("utf-8"), add_bos=False))
    return sorted(ids)
