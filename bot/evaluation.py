"""Answer quality on a question set, through the full answer path.

- answer match: normalised exact match and token F1 against the reference, as in SQuAD's
  official script, plus "contains" (the reference appears within the answer), which suits a
  chat model that answers in sentences;
- citation precision: the share of listed sources that are among the question's relevant
  documents (the set marks where each answer lives);
- abstention: on questions the index cannot answer, the share where Ajuste declined; on the
  others, the share where it wrongly declined;
- answer in context: the share of answerable questions whose reference was inside the prompt
  the model saw, which splits a miss between retrieval and the model; "contains in context"
  is the model's own score on those, and "evidence contains" how often the evidence quote
  under the answer holds the reference there;
- latency percentiles of time to first token and total time.

References are compared normalised ("€1,200", "EUR 1,200" and "1200 euros" alike), and a
question may list several acceptable ones.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bot.engine.answer import Answer, AnswerService
from retrieval.evaluation import QaItem, contains, exact_match, matches_location, token_f1


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
    answer_in_context: float = 0.0  # answerable questions whose reference the prompt held
    contains_in_context: float = 0.0  # contains, on those questions only
    evidence_contains: float = 0.0  # the evidence quote holds the reference, on those only
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
    in_context: list[tuple[float, float]] = []  # (contains, evidence contains)
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
            declined_right += answer.declines
            kinds.setdefault(item.kind, []).append(float(answer.declines))
            continue
        answerable += 1
        declined_wrong += answer.declines
        references = item.answers or ("",)
        triple = (
            max(exact_match(answer.text, reference) for reference in references),
            max(token_f1(answer.text, reference) for reference in references),
            contains(answer.text, references),
        )
        matched.append(triple)
        if item.answers and contains(" ".join(s.text for s in answer.context), references):
            quoted = contains(" ".join(q.text for q in answer.evidence), references)
            in_context.append((triple[2], quoted))
        kinds.setdefault(item.kind, []).append(triple[1])
        for source in answer.sources:
            cited += 1
            correct_citations += any(matches_location(source.location, r) for r in item.relevant)
    if matched:
        scores.exact_match = sum(m[0] for m in matched) / len(matched)
        scores.f1 = sum(m[1] for m in matched) / len(matched)
        scores.contains = sum(m[2] for m in matched) / len(matched)
    scores.citation_precision = correct_citations / cited if cited else 0.0
    if matched:
        scores.answer_in_context = len(in_context) / len(matched)
    if in_context:
        scores.contains_in_context = sum(c for c, _ in in_context) / len(in_context)
        scores.evidence_contains = sum(e for _, e in in_context) / len(in_context)
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
