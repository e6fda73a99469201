"""Answer quality on a question set, through the full answer path.

- answer match: normalised exact match and token F1 against the reference, as in SQuAD's
  official script, plus "contains" (the reference appears within the answer), which suits a
  chat model that answers in sentences;
- citation precision: the share of listed sources that are among the question's relevant
  documents (the set marks where each answer lives);
- abstention: on questions the index cannot answer, the share where Ajuste declined; on the
  others, the share where it wrongly declined;
- latency percentiles of time to first token and total time.
"""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bot.answer import Answer, AnswerService
from retrieval.evaluation import QaItem, contains, exact_match, matches_location, token_f1

_DECLINED = re.compile(
    r"i found nothing|don't know|do not know|not (mentioned|provided|stated|specified|"
    r"included|available|in the (sources|documents|context))|no information|"
    r"(cannot|can't|couldn't|could not) (find|answer)",
    re.IGNORECASE,
)


def declined(answer: Answer) -> bool:
    return answer.abstained or bool(_DECLINED.search(answer.text))


def percentile(values: Sequence[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


@dataclass
class AnswerScores:
    questions: int = 0
    exact_match: float = 0.0
    f1: float = 0.0
    contains: float = 0.0
    citation_precision: float = 0.0
    abstention_correct: float = 0.0  # on unanswerable questions
    false_abstention: float = 0.0  # on answerable ones
    first_token_p50: float = 0.0
    first_token_p95: float = 0.0
    total_p50: float = 0.0
    total_p95: float = 0.0
    by_kind: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in vars(self).items()}


def evaluate_answers(
    answers: AnswerService,
    items: Sequence[QaItem],
    *,
    on_answer: Callable[[QaItem, Answer], None] | None = None,
) -> AnswerScores:
    scores = AnswerScores(questions=len(items))
    matched: list[tuple[float, float, float]] = []
    cited = correct_citations = 0
    unanswerable = answerable = declined_right = declined_wrong = 0
    first_tokens: list[float] = []
    totals: list[float] = []
    kinds: dict[str, list[float]] = {}
    for item in items:
        answer = answers.answer(item.question)
        if on_answer is not None:
            on_answer(item, answer)
        first_tokens.append(answer.timings.first_token_s)
        totals.append(answer.timings.total_s)
        if not item.answerable:
            unanswerable += 1
            declined_right += declined(answer)
            kinds.setdefault(item.kind, []).append(float(declined(answer)))
            continue
        answerable += 1
        declined_wrong += declined(answer)
        reference = item.answer or ""
        triple = (
            exact_match(answer.text, reference),
            token_f1(answer.text, reference),
            contains(answer.text, reference),
        )
        matched.append(triple)
        kinds.setdefault(item.kind, []).append(triple[1])
        for source in answer.sources:
            cited += 1
            correct_citations += any(matches_location(source.location, r) for r in item.relevant)
    if matched:
        scores.exact_match = sum(m[0] for m in matched) / len(matched)
        scores.f1 = sum(m[1] for m in matched) / len(matched)
        scores.contains = sum(m[2] for m in matched) / len(matched)
    scores.citation_precision = correct_citations / cited if cited else 0.0
    scores.abstention_correct = declined_right / unanswerable if unanswerable else 0.0
    scores.false_abstention = declined_wrong / answerable if answerable else 0.0
    scores.first_token_p50 = percentile(first_tokens, 0.5)
    scores.first_token_p95 = percentile(first_tokens, 0.95)
    scores.total_p50 = percentile(totals, 0.5)
    scores.total_p95 = percentile(totals, 0.95)
    scores.by_kind = {
        kind: {"questions": len(values), "score": round(sum(values) / len(values), 4)}
        for kind, values in sorted(kinds.items())
    }
    return scores
