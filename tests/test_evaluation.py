"""The evaluation harness: metrics, the question-set reader, and the floors CI holds."""

import json
from pathlib import Path
from typing import Any

import pytest

from bot.engine.answer import Answer, AnswerService, ContextSource, SourceRef
from bot.engine.evidence import Evidence
from bot.engine.llm import LlmEngine
from bot.evaluation import evaluate_answers
from bot.settings import LlmSettings, Settings
from retrieval.embeddings import Embedder
from retrieval.errors import AjusteError
from retrieval.evaluation import (
    QaItem,
    contains,
    evaluate_retrieval,
    exact_match,
    load_qa,
    matches_location,
    normalize,
    token_f1,
)
from retrieval.indexer import Indexer
from retrieval.retriever import Retriever
from retrieval.store import open_store
from tests.conftest import REPO

QA = REPO / "examples" / "eval" / "handbook.jsonl"
UNSEEN = REPO / "examples" / "eval" / "unseen.jsonl"
FLOORS = json.loads((REPO / "tests" / "quality_floors.json").read_text())


def test_squad_normalisation_and_scores():
    assert normalize("The  Answer, is: 20 weeks!") == "answer is 20 weeks"
    assert exact_match("20 weeks.", "20 weeks") == 1.0
    assert token_f1("It is 20 weeks at full pay", "20 weeks at full pay") == pytest.approx(
        2 * (5 / 7) * 1 / (5 / 7 + 1)
    )
    assert token_f1("nothing alike", "20 weeks") == 0.0
    assert contains("The leave is **20 weeks** at full pay.", "20 weeks") == 1.0


def test_amounts_compare_alike_and_any_listed_reference_counts():
    assert normalize("€1,200") == normalize("EUR 1,200") == normalize("1200 euros") == "1200 eur"
    assert normalize("It costs $19.99 a month") == "it costs 19.99 usd month"
    assert contains("The limit is 1200 euros per trip [1].", "€1,200") == 1.0
    assert contains("Call 4477 [2].", ["extension 4477", "4477"]) == 1.0
    assert contains("Call 44770 [2].", ["4477"]) == 0.0  # whole words only
    assert contains("It takes 2.5 days.", "2.5 days") == 1.0


def test_answers_in_context_and_evidence_are_scored_apart():
    """Retrieval's share of a miss (answer not in the prompt) apart from the model's."""

    class Canned:
        def __init__(self, answers: dict[str, Answer]) -> None:
            self.answers = answers

        def answer(self, question: str) -> Answer:
            return self.answers[question]

    def canned(question: str, text: str, context: str, quote: str) -> Answer:
        sources = [SourceRef(1, "Leave", "/kb/leave.md")]
        return Answer(
            question,
            text,
            sources,
            "m",
            evidence=[Evidence(1, "Leave", "/kb/leave.md", quote)] if quote else [],
            context=[ContextSource(1, "Leave", "/kb/leave.md", context)],
        )

    page = "Employees get 25 working days of leave."
    items = [
        QaItem("days?", ["leave.md"], ("25 working days",)),
        QaItem("carry over?", ["leave.md"], ("31 March",)),
        QaItem("parking?", ["leave.md"], ("EUR 35",)),
    ]
    answers = {
        "days?": canned("days?", "You get 25 working days [1].", page, page),
        "carry over?": canned("carry over?", "Until June [1].", page + " Until 31 March.", ""),
        "parking?": canned("parking?", "35 euros [1].", page, ""),
    }
    scores = evaluate_answers(Canned(answers), items)  # type: ignore[arg-type]
    assert scores.contains == 2 / 3  # "35 euros" matches "EUR 35"
    assert scores.answer_in_context == 2 / 3  # the parking fee was never in the prompt
    assert scores.contains_in_context == 1 / 2
    assert scores.evidence_contains == 1 / 2


def test_declining_is_recognised():
    def answer(text: str, abstained: bool = False) -> Answer:
        return Answer("q", text, [SourceRef(1, "t", "l")], "m", abstained=abstained)

    assert answer("anything", abstained=True).declines
    assert answer("I don't know; the sources do not say.").declines
    assert answer("That is not mentioned in the sources.").declines
    assert not answer("The password needs 14 characters.").declines
    # a refusal after an answer leaves the answer: only the first sentence can decline
    assert not answer("Ring extension 4477 [1]. The sources don't say who answers.").declines


def test_paths_match_by_their_tail():
    assert matches_location("/srv/kb/engineering/on-call.md", "engineering/on-call.md")
    assert not matches_location("/srv/kb/not-on-call.md", "on-call.md")
    assert matches_location("https://x.io/a", "https://x.io/a")


def test_the_question_set_is_read_strictly(tmp_path: Path):
    items = load_qa(QA)
    assert len(items) >= 60
    kinds = {item.kind for item in items}
    assert {"lookup", "paraphrase", "keyword", "multi", "unanswerable"} <= kinds
    assert all(item.answerable == (item.kind != "unanswerable") for item in items)
    for relevant in {r for item in items for r in item.relevant}:
        assert (REPO / "examples" / "knowledge" / relevant).is_file()

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "ok?", "relevant": []}\n{"relevant": ["a.md"]}\n')
    with pytest.raises(AjusteError, match=r"bad\.jsonl line 2: missing 'question'"):
        load_qa(bad)
    bad.write_text('{"question": "ok?", "relevant": "a.md"}\n')
    with pytest.raises(AjusteError, match="line 1: `relevant` must be a list"):
        load_qa(bad)
    bad.write_text('{"question": "ok?", "relevant": ["a.md"], "answer": ["x", 3]}\n')
    with pytest.raises(AjusteError, match="line 1: `answer` must be a string or a list"):
        load_qa(bad)
    bad.write_text("not json\n")
    with pytest.raises(AjusteError, match="line 1"):
        load_qa(bad)


def test_the_unseen_domain_set_is_complete():
    """The held-out set: 100+ questions, each reference verbatim in a relevant document."""
    items = load_qa(UNSEEN)
    assert len(items) >= 100
    assert sum(not item.answerable for item in items) >= 15
    folder = REPO / "examples" / "unseen"
    for item in items:
        texts = [(folder / name).read_text(encoding="utf-8").lower() for name in item.relevant]
        for reference in item.answers:
            assert any(reference.lower() in text for text in texts), (item.line, reference)
    training = {p.name for p in (REPO / "finetune" / "grounded" / "documents").iterdir()}
    assert not training & {p.name for p in folder.iterdir()}


def test_retrieval_stays_above_its_floors(handbook: tuple[Retriever, Path]):
    retriever, _ = handbook
    items = load_qa(QA)
    for mode, floors in FLOORS["retrieval"].items():
        scores = evaluate_retrieval(retriever, items, mode).as_dict()
        for metric, floor in floors.items():
            assert scores[metric] >= floor, f"{mode} {metric} fell to {scores[metric]} < {floor}"
    for kind, floor in FLOORS["retrieval_recall@5_by_kind"].items():
        subset = [item for item in items if item.kind == kind]
        assert evaluate_retrieval(retriever, subset).recall[5] >= floor, kind


def test_metrics_on_a_known_ranking(handbook: tuple[Retriever, Path]):
    retriever, _ = handbook
    items = [
        QaItem("How long is a VPN key valid?", ["it-and-vpn.md"]),
        QaItem("What is the capital of Mongolia?", []),
    ]
    scores = evaluate_retrieval(retriever, items)
    assert scores.questions == 1
    assert scores.recall[1] == scores.mrr == scores.ndcg == 1.0


def _hold_floors(scores: dict[str, Any], floors: dict[str, dict[str, float]]) -> None:
    for metric, floor in floors["at_least"].items():
        assert scores[metric] >= floor, f"{metric} fell to {scores[metric]} < {floor}"
    for metric, ceiling in floors["at_most"].items():
        assert scores[metric] <= ceiling, f"{metric} rose to {scores[metric]} > {ceiling}"


def test_answers_stay_above_their_floors(handbook: tuple[Retriever, Path], engine: LlmEngine):
    """The whole question set through the real model (about two minutes on two cores)."""
    answers = AnswerService(retriever=handbook[0], engine=engine, settings=LlmSettings())
    _hold_floors(evaluate_answers(answers, load_qa(QA)).as_dict(), FLOORS["answers"])


def test_answers_on_unseen_domains_stay_above_their_floors(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, engine: LlmEngine
):
    """Documents and questions no training touched, through the default settings."""
    root = tmp_path_factory.mktemp("unseen")
    settings = Settings(_env_file=None, data_dir=root)  # type: ignore[call-arg]
    store = open_store(settings.qdrant, settings.data_dir)
    try:
        indexer = Indexer(embedder=embedder, store=store, settings=settings.retrieval)
        indexer.index_paths([REPO / "examples" / "unseen"])
        retriever = Retriever(embedder=embedder, store=store, settings=settings.retrieval)
        items = load_qa(UNSEEN)
        retrieval = evaluate_retrieval(retriever, items).as_dict()
        for metric, floor in FLOORS["unseen"]["retrieval"].items():
            assert retrieval[metric] >= floor, f"unseen {metric} fell to {retrieval[metric]}"
        answers = AnswerService(retriever=retriever, engine=engine, settings=LlmSettings())
        _hold_floors(evaluate_answers(answers, items).as_dict(), FLOORS["unseen"]["answers"])
    finally:
        store.close()
