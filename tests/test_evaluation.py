"""The evaluation harness: metrics, the question-set reader, and the floors CI holds."""

import json
from pathlib import Path

import pytest

from bot.answer import Answer, AnswerService, SourceRef
from bot.evaluation import declined, evaluate_answers
from bot.llm import LlmEngine
from bot.settings import LlmSettings
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
from retrieval.retriever import Retriever
from tests.conftest import REPO

QA = REPO / "examples" / "eval" / "handbook.jsonl"
FLOORS = json.loads((REPO / "tests" / "quality_floors.json").read_text())


def test_squad_normalisation_and_scores():
    assert normalize("The  Answer, is: 20 weeks!") == "answer is 20 weeks"
    assert exact_match("20 weeks.", "20 weeks") == 1.0
    assert token_f1("It is 20 weeks at full pay", "20 weeks at full pay") == pytest.approx(
        2 * (5 / 7) * 1 / (5 / 7 + 1)
    )
    assert token_f1("nothing alike", "20 weeks") == 0.0
    assert contains("The leave is **20 weeks** at full pay.", "20 weeks") == 1.0


def test_declining_is_recognised():
    def answer(text: str, abstained: bool = False) -> Answer:
        return Answer("q", text, [SourceRef(1, "t", "l")], "m", abstained=abstained)

    assert declined(answer("anything", abstained=True))
    assert declined(answer("I don't know; the sources do not say."))
    assert declined(answer("That is not mentioned in the sources."))
    assert not declined(answer("The password needs 14 characters."))


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
    bad.write_text("not json\n")
    with pytest.raises(AjusteError, match="line 1"):
        load_qa(bad)


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


def test_answers_stay_above_their_floors(handbook: tuple[Retriever, Path], engine: LlmEngine):
    """The whole question set through the real model (about two minutes on two cores)."""
    answers = AnswerService(retriever=handbook[0], engine=engine, settings=LlmSettings())
    scores = evaluate_answers(answers, load_qa(QA)).as_dict()
    for metric, floor in FLOORS["answers"]["at_least"].items():
        assert scores[metric] >= floor, f"{metric} fell to {scores[metric]} < {floor}"
    for metric, ceiling in FLOORS["answers"]["at_most"].items():
        assert scores[metric] <= ceiling, f"{metric} rose to {scores[metric]} > {ceiling}"
