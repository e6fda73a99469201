"""What the answer service needs of a chat model, whichever backend serves it.

`bot.llm` (llama.cpp in this process) and `bot.llm_server` (llama.cpp servers) both implement
`Engine`; neither imports the other's module for these shapes.
"""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.turns import Turns

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
    ) -> Iterator[str]: ...
