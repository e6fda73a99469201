"""Questions → training chats in the exact shape Ajuste serves (retrieval-augmented fine-tuning).

For each question the real retriever ranks the training documents' real chunks; the chunk
holding the answer is kept (where retrieval ranked it, or at a random slot when it ranked it
too low) among 2 to 4 chunks, so the model learns to find it among distractors. Some
questions lose that chunk and must be refused; follow-ups carry the previous turn; the
questions written as unanswerable are refused. Seeded: the same inputs give the same chats.
"""

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from finetune.grounded.corpus import CITE, Answerable, Question, plain
from retrieval.context import REFUSAL, SYSTEM_PROMPT, Turn, grounded_messages, number_sources
from retrieval.hits import Hit

Search = Callable[[str, int], list[Hit]]  # query, limit → ranked chunks
Message = dict[str, str]

CHUNK_COUNTS = (2, 3, 3, 3, 4)  # chunks in a prompt, drawn per example (Ajuste serves 3)
VARIANTS = 3  # chats per answerable question, each with other distractors and positions
REFUSE_SHARE = 0.25  # answerable questions that also appear with their answer taken away
RANKED = 8  # chunks fetched per question to draw distractors from


@dataclass
class Built:
    """The chats and what went into them, for the manifest."""

    train: list[list[Message]] = field(default_factory=list)
    eval: list[list[Message]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1


def _holds(hit: Hit, doc: str, answer: Answerable) -> bool:
    return hit.location.endswith(doc) and plain(answer.support) in plain(hit.text)


def _gold(search: Search, doc: str, answer: Answerable, ranked: list[Hit]) -> Hit | None:
    """The chunk that holds the supporting passage: among the ranked ones, else found by it."""
    for hit in [*ranked, *search(answer.support, 3)]:
        if _holds(hit, doc, answer):
            return hit
    return None


def _arrange(gold: Hit, ranked: list[Hit], k: int, rng: random.Random) -> list[Hit]:
    others = [hit for hit in ranked if (hit.doc_id, hit.chunk) != (gold.doc_id, gold.chunk)]
    rank = next(
        (i for i, hit in enumerate(ranked) if (hit.doc_id, hit.chunk) == (gold.doc_id, gold.chunk)),
        k,
    )
    slot = rank if rank < k else rng.randrange(k)
    chosen = others[: k - 1]
    chosen.insert(min(slot, len(chosen)), gold)
    return chosen


def _chat(hits: Sequence[Hit], history: Sequence[Turn], question: str) -> list[Message]:
    return grounded_messages(SYSTEM_PROMPT, number_sources(hits), history, question)


def _cited(reply: str, hits: Sequence[Hit], gold: Hit) -> str:
    number = next(s.n for s in number_sources(hits) if s.hits[0].doc_id == gold.doc_id)
    return reply.replace(CITE, f"[{number}]")


def _answered(
    search: Search, item: Question, rng: random.Random, out: list[list[Message]], built: Built
) -> None:
    assert item.answer is not None
    answer = item.answer
    ranked = search(answer.question, RANKED)
    gold = _gold(search, item.doc, answer, ranked)
    if gold is None:
        built.count("skipped: passage split across chunks")
        return
    for _ in range(VARIANTS):
        hits = _arrange(gold, ranked, rng.choice(CHUNK_COUNTS), rng)
        reply = _cited(answer.reply, hits, gold)
        out.append([*_chat(hits, [], answer.question), {"role": "assistant", "content": reply}])
        built.count("answered")
    if rng.random() < REFUSE_SHARE:
        reference = plain(answer.reference)
        rest = [hit for hit in ranked if reference not in plain(hit.text)]
        if len(rest) >= 2:
            hits = rest[: rng.choice(CHUNK_COUNTS)]
            out.append(
                [*_chat(hits, [], answer.question), {"role": "assistant", "content": REFUSAL}]
            )
            built.count("refused: answer taken away")
    if item.follow_up is not None:
        follow = item.follow_up
        first = _cited(answer.reply, _arrange(gold, ranked, 2, rng), gold)
        ranked_next = search(f"{answer.question} {follow.question}", RANKED)
        gold_next = _gold(search, item.doc, follow, ranked_next)
        if gold_next is None:
            built.count("skipped: passage split across chunks")
            return
        hits = _arrange(gold_next, ranked_next, rng.choice(CHUNK_COUNTS), rng)
        turn = Turn(answer.question, first)
        reply = _cited(follow.reply, hits, gold_next)
        out.append([*_chat(hits, [turn], follow.question), {"role": "assistant", "content": reply}])
        built.count("follow-up")


def build_examples(
    questions: Sequence[Question], search: Search, *, held_out: set[str], seed: int
) -> Built:
    """Chats for training, and for evaluation from the `held_out` documents only."""
    rng = random.Random(seed)
    built = Built()
    for item in questions:
        out = built.eval if item.doc in held_out else built.train
        if item.answer is not None:
            _answered(search, item, rng, out, built)
            continue
        for _ in range(2):
            hits = search(item.question, rng.choice(CHUNK_COUNTS))
            if hits:
                chat = _chat(hits, [], item.question)
                out.append([*chat, {"role": "assistant", "content": REFUSAL}])
                built.count("refused: unanswerable question")
    rng.shuffle(built.train)
    return built
