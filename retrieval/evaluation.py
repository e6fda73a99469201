"""Retrieval quality on a question set: recall@k, MRR@10 and nDCG@10, per ranking mode.

The set is JSONL, one `{"question", "relevant": [ids or paths], "answer"?, "kind"?}` a line;
`answer` is a reference string or a list of acceptable ones.
A hit matches a relevant entry when its document id or location equals it or ends with it
as a path (`leave.rst` matches `/kb/leave.rst`). Ranking is by document: a document counts at
the rank of its best chunk.
"""

import json
import math
import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from retrieval.errors import AjusteError
from retrieval.retriever import Retriever
from retrieval.store import Hit

MODES = ("hybrid", "dense", "sparse")
DEPTH = 10  # documents ranked per question
CHUNK_DEPTH = 40  # chunks fetched to rank that many documents


@dataclass(frozen=True)
class QaItem:
    question: str
    relevant: list[str]
    answers: tuple[str, ...] = ()  # acceptable references, the document's own wording first
    kind: str = "question"
    line: int = 0

    @property
    def answerable(self) -> bool:
        return bool(self.relevant)

    @property
    def answer(self) -> str | None:
        return self.answers[0] if self.answers else None


@dataclass
class RetrievalScores:
    questions: int = 0
    recall: dict[int, float] = field(default_factory=dict)
    mrr: float = 0.0
    ndcg: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "questions": self.questions,
            **{f"recall@{k}": round(v, 4) for k, v in sorted(self.recall.items())},
            "mrr@10": round(self.mrr, 4),
            "ndcg@10": round(self.ndcg, 4),
        }


def load_qa(path: Path) -> list[QaItem]:
    """The question set; a malformed line is refused with its number, never skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise AjusteError(f"Cannot read the question set {path}: {error.strerror}") from error
    items = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            question = data["question"]
            relevant = data.get("relevant") or []
            if not isinstance(question, str) or not question.strip():
                raise ValueError("`question` must be a non-empty string")
            if not isinstance(relevant, list) or not all(isinstance(r, str) for r in relevant):
                raise ValueError("`relevant` must be a list of ids or paths")
            answers = data.get("answer") or []
            answers = [answers] if isinstance(answers, str) else answers
            if not isinstance(answers, list) or not all(
                isinstance(a, str) and a.strip() for a in answers
            ):
                raise ValueError("`answer` must be a string or a list of non-empty strings")
        except (ValueError, KeyError, TypeError) as error:
            reason = f"missing {error}" if isinstance(error, KeyError) else str(error)
            raise AjusteError(f"{path} line {number}: {reason}") from None
        items.append(
            QaItem(question, relevant, tuple(answers), data.get("kind") or "question", number)
        )
    if not items:
        raise AjusteError(f"{path} holds no questions")
    return items


def matches_location(value: str, relevant: str) -> bool:
    relevant = relevant.strip()
    return value == relevant or value.endswith("/" + relevant.lstrip("/"))


def matches(hit: Hit, relevant: str) -> bool:
    return matches_location(hit.doc_id, relevant) or matches_location(hit.location, relevant)


def ranked_documents(hits: Sequence[Hit]) -> list[Hit]:
    """Hits collapsed to one per document, in order of each document's best chunk."""
    seen: dict[str, Hit] = {}
    for hit in hits:
        seen.setdefault(hit.doc_id, hit)
    return list(seen.values())


def score_ranking(documents: Sequence[Hit], relevant: Sequence[str]) -> tuple[list[bool], int]:
    flags = [any(matches(doc, r) for r in relevant) for doc in documents[:DEPTH]]
    return flags, len(relevant)


def evaluate_retrieval(
    retriever: Retriever, items: Sequence[QaItem], mode: str = "hybrid"
) -> RetrievalScores:
    scores = RetrievalScores(recall={1: 0.0, 5: 0.0, 10: 0.0})
    answerable = [item for item in items if item.answerable]
    for item in answerable:
        hits = retriever.search(item.question, limit=CHUNK_DEPTH, mode=mode)
        flags, wanted = score_ranking(ranked_documents(hits), item.relevant)
        for k in scores.recall:
            scores.recall[k] += sum(flags[:k]) / wanted
        first = next((rank for rank, hit in enumerate(flags, start=1) if hit), None)
        scores.mrr += 1 / first if first else 0.0
        dcg = sum(1 / math.log2(rank + 1) for rank, hit in enumerate(flags, start=1) if hit)
        ideal = sum(1 / math.log2(rank + 1) for rank in range(1, min(wanted, DEPTH) + 1))
        scores.ndcg += dcg / ideal
    count = len(answerable) or 1
    scores.questions = len(answerable)
    scores.recall = {k: v / count for k, v in scores.recall.items()}
    scores.mrr /= count
    scores.ndcg /= count
    return scores


# Answer text against a short reference, as in SQuAD's official script, with amounts made
# comparable: "€1,200", "EUR 1,200" and "1200 euros" all read "1200 eur".
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_THOUSANDS = re.compile(r"(?<=\d)[,\u202f\u00a0’'](?=\d{3}\b)")
_CURRENCIES = {
    "€": "eur", "eur": "eur", "euro": "eur", "euros": "eur",
    "$": "usd", "usd": "usd", "dollar": "usd", "dollars": "usd",
    "£": "gbp", "gbp": "gbp", "pound": "gbp", "pounds": "gbp",
}  # fmt: skip
_SYMBOL = re.compile(r"([€$£])")
_AMOUNT_FIRST = re.compile(r"(?<!\d )\b(eur|usd|gbp) (\d+(?:\.\d+)?)\b")
_PUNCTUATION = set(string.punctuation) - {"."}


def normalize(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (SQuAD's), amounts comparable."""
    text = _SYMBOL.sub(lambda m: f" {_CURRENCIES[m.group(1)]} ", _THOUSANDS.sub("", text.lower()))
    text = "".join(" " if ch in _PUNCTUATION else ch for ch in text)
    text = re.sub(r"\.(?!\d)|(?<!\d)\.", " ", text)  # keep only decimal points
    words = [_CURRENCIES.get(word, word) for word in _ARTICLES.sub(" ", text).split()]
    text = " ".join(words)
    return re.sub(r"(\d)\.00\b", r"\1", _AMOUNT_FIRST.sub(r"\2 \1", text))


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize(prediction) == normalize(reference))


def token_f1(prediction: str, reference: str) -> float:
    predicted, expected = normalize(prediction).split(), normalize(reference).split()
    common = sum((Counter(predicted) & Counter(expected)).values())
    if not predicted or not expected or common == 0:
        return float(predicted == expected)
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def contains(prediction: str, reference: str | Sequence[str]) -> float:
    """1.0 when any acceptable reference appears, whole words, in the prediction."""
    references = [reference] if isinstance(reference, str) else reference
    found = f" {normalize(prediction)} "
    return float(any(f" {normalize(r)} " in found for r in references if normalize(r)))
