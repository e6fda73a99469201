"""The answer service: retrieve → prompt with numbered sources → stream the answer → citations.

Every front end (console, CLI, Slack) calls `AnswerService.answer` and nothing else.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from bot import metrics
from bot.engine.evidence import (
    CITATION,
    Evidence,
    Reading,
    disputed_figures,
    is_refusal,
    pick_evidence,
    unsupported_figures,
)
from bot.engine.generation import Engine, GenerationStats
from bot.engine.prompt import SYSTEM_PROMPT, Turn, plan_prompt
from bot.settings import LlmSettings
from retrieval.errors import AjusteError
from retrieval.retriever import Retriever
from retrieval.store import EVERYWHERE, Hit, Scope

FOLLOW_UP_WORDS = 6  # a question this short in a conversation is read as a follow-up
NO_ANSWER = (
    "I found nothing about that in the indexed documents, so I won't guess. Try other "
    "words, or ask an admin to index the documents that cover it."
)


class EmptyQuestionError(AjusteError):
    """Nothing was asked."""


@dataclass(frozen=True)
class SourceRef:
    n: int
    title: str
    location: str


@dataclass
class Timings:
    retrieve_s: float = 0.0
    first_token_s: float = 0.0
    total_s: float = 0.0
    tokens: int = 0


@dataclass(frozen=True)
class ContextSource:
    """A source as the model read it: what feedback keeps so a fine-tune sees the same."""

    n: int
    title: str
    location: str
    text: str


@dataclass
class Answer:
    question: str
    text: str
    sources: list[SourceRef]  # the ones it cites (all given, when it cites none)
    model: str
    timings: Timings = field(default_factory=Timings)
    abstained: bool = False
    evidence: list[Evidence] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)  # figures no source holds
    disputed: list[str] = field(default_factory=list)  # figures the question's sentence lacks
    context: list[ContextSource] = field(default_factory=list)  # every source in the prompt

    @property
    def declines(self) -> bool:
        """Nothing found to answer from, or the model said the sources don't hold it (its
        evidence, if any, is then the closest the sources come, not support)."""
        return self.abstained or is_refusal(self.text)

    def as_dict(self) -> dict[str, object]:
        return {
            "answer": self.text,
            "sources": [asdict(source) for source in self.sources],
            "evidence": [quote.as_dict() for quote in self.evidence],
            "unsupported": self.unsupported,
            "disputed": self.disputed,
            "model": self.model,
            "timings": asdict(self.timings),
        }


class AnswerService:
    def __init__(self, *, retriever: Retriever, engine: Engine, settings: LlmSettings):
        self.retriever = retriever
        self.engine = engine
        self.settings = settings

    def related_hits(
        self, question: str, history: Sequence[Turn], scope: Scope = EVERYWHERE
    ) -> list[Hit]:
        """Chunks related to the question; a terse follow-up borrows the previous question.

        "And for contractors?" alone finds little: a follow-up of a few words is searched
        together with the question before it, and any question that finds nothing alone is
        tried that way too.
        """
        hits = self.retriever.related(self.search_text(question, history), scope=scope)
        if not hits and history and not self.is_terse(question):
            hits = self.retriever.related(self.borrowed(question, history), scope=scope)
        return hits

    @staticmethod
    def is_terse(question: str) -> bool:
        return len(question.split()) <= FOLLOW_UP_WORDS

    @staticmethod
    def borrowed(question: str, history: Sequence[Turn]) -> str:
        return f"{history[-1].question} {question}" if history else question

    def search_text(self, question: str, history: Sequence[Turn]) -> str:
        """What a question is searched with: a terse follow-up with the question before it."""
        return self.borrowed(question, history) if self.is_terse(question) else question

    def answer(
        self,
        question: str,
        *,
        history: Sequence[Turn] = (),
        scope: Scope = EVERYWHERE,
        on_token: Callable[[str], None] | None = None,
        on_wait: Callable[[int], None] | None = None,
    ) -> Answer:
        question = question.strip()
        if not question:
            raise EmptyQuestionError("Ask a question: the text is empty.")
        started = time.perf_counter()
        self.engine.follow()  # a newly activated model version serves from here on
        hits = self.related_hits(question, history, scope)
        timings = Timings(retrieve_s=round(time.perf_counter() - started, 4))
        metrics.RETRIEVAL_HITS.observe(len(hits))
        if not hits:
            metrics.QUESTIONS.labels("nothing_found").inc()
            if on_token is not None:
                on_token(NO_ANSWER)
            timings.first_token_s = timings.total_s = round(time.perf_counter() - started, 4)
            return Answer(question, NO_ANSWER, [], self.engine.name, timings, abstained=True)
        plan = plan_prompt(
            question,
            hits,
            history,
            count=self.engine.prompt_tokens,
            n_ctx=self.engine.n_ctx,
            answer_tokens=self.settings.max_tokens,
            system=self.settings.system_prompt or SYSTEM_PROMPT,
        )
        # the sentences the question is most about steer the model while it writes, then
        # stand under its answer as the second quote
        asked = self.search_text(question, history)
        reading = Reading(asked, plan.sources, self.retriever.embedder.closeness)
        favour = reading.focus(self.settings.focus_sentences) if self.settings.focus_bias else []
        stats = GenerationStats()
        pieces: list[str] = []

        def waiting(ahead: int) -> None:
            metrics.QUEUE_DEPTH.set(self.engine.turns.waiting)
            if on_wait is not None:
                on_wait(ahead)

        for piece in self.engine.stream(
            plan.messages,
            max_tokens=self.settings.max_tokens,
            stats=stats,
            on_wait=waiting,
            favour=favour,
            copy_from="\n".join([question, *(source.text for source in plan.sources)]),
        ):
            pieces.append(piece)
            if on_token is not None:
                on_token(piece)
        metrics.QUEUE_DEPTH.set(self.engine.turns.waiting)
        text = "".join(pieces).strip()
        cited = {int(n) for n in CITATION.findall(text)}
        shown = [s for s in plan.sources if s.n in cited] or plan.sources
        timings.first_token_s = round((stats.first_token_at or time.perf_counter()) - started, 4)
        timings.total_s = round(time.perf_counter() - started, 4)
        timings.tokens = stats.tokens
        metrics.QUESTIONS.labels("answered").inc()
        metrics.ANSWER_SECONDS.observe(timings.total_s)
        metrics.FIRST_TOKEN_SECONDS.observe(timings.first_token_s)
        generating = timings.total_s - timings.first_token_s
        if stats.tokens > 1 and generating > 0:
            metrics.TOKENS_PER_SECOND.observe((stats.tokens - 1) / generating)
        evidence = pick_evidence(question, text, plan.sources, reading=reading)
        unsupported = unsupported_figures(question, text, plan.sources)
        return Answer(
            question,
            text,
            [SourceRef(s.n, s.title, s.location) for s in shown],
            stats.model or self.engine.name,
            timings,
            evidence=evidence,
            unsupported=unsupported,
            disputed=disputed_figures(question, text, evidence, unsupported),
            context=[ContextSource(s.n, s.title, s.location, s.text) for s in plan.sources],
        )
