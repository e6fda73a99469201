"""The answer path on the real model and index: budget, grounding, citations, abstention."""

from pathlib import Path

import pytest

from bot.engine.answer import NO_ANSWER, AnswerService, EmptyQuestionError
from bot.engine.llm import LlmEngine
from bot.engine.prompt import QuestionTooLongError, Turn, plan_prompt
from bot.settings import LlmSettings
from retrieval.retriever import Retriever
from retrieval.store import Hit


def hit(n: int, doc: str, words: int = 60) -> Hit:
    body = f"Fact {n}: " + " ".join(f"word{n}x{i}" for i in range(words))
    return Hit(1 / n, 0.5, 0.0, doc, "files", f"Doc {doc}", f"/kb/{doc}.md", f"Doc {doc}", body, n)


@pytest.fixture
def answers(handbook: tuple[Retriever, Path], engine: LlmEngine) -> AnswerService:
    return AnswerService(retriever=handbook[0], engine=engine, settings=LlmSettings())


def test_everything_fits_when_there_is_room(engine: LlmEngine):
    hits = [hit(1, "a"), hit(2, "b"), hit(3, "a")]
    plan = plan_prompt("What?", hits, [], count=engine.prompt_tokens, n_ctx=2048, answer_tokens=300)
    assert [(s.n, s.title, len(s.hits)) for s in plan.sources] == [(1, "Doc a", 2), (2, "Doc b", 1)]
    assert plan.hits_dropped == 0
    assert plan.prompt_tokens == engine.prompt_tokens(plan.messages) <= 2048 - 300
    assert "[1] Doc a" in plan.messages[-1]["content"]
    assert plan.messages[-1]["content"].endswith("Question: What?")


def test_the_lowest_ranked_chunks_go_first_then_the_oldest_turns(engine: LlmEngine):
    hits = [hit(n, f"d{n}", words=100) for n in range(1, 9)]
    history = [Turn(f"old question {n} " + "blah " * 60, "old answer " * 30) for n in range(4)]
    plan = plan_prompt(
        "Now?", hits, history, count=engine.prompt_tokens, n_ctx=1024, answer_tokens=200
    )
    assert plan.prompt_tokens <= 1024 - 200
    assert plan.hits_dropped > 0
    kept = [h.chunk for s in plan.sources for h in s.hits]
    assert kept == list(range(1, len(kept) + 1))  # a prefix of the ranking survives
    assert plan.turns_dropped > 0 and len(kept) == 1  # turns go once one chunk is left
    questions = [m["content"] for m in plan.messages if m["content"].startswith("old question")]
    assert questions == [t.question for t in history[plan.turns_dropped :]]  # newest kept


def test_a_question_longer_than_the_window_is_refused(engine: LlmEngine):
    with pytest.raises(QuestionTooLongError, match="shorten it"):
        plan_prompt(
            "why " * 3000,
            [hit(1, "a")],
            [],
            count=engine.prompt_tokens,
            n_ctx=2048,
            answer_tokens=300,
        )


def test_a_grounded_answer_streams_and_cites_its_source(answers: AnswerService):
    pieces: list[str] = []
    answer = answers.answer(
        "What is the minimum length of a Kestrel ID password?", on_token=pieces.append
    )
    assert "14" in answer.text
    assert "".join(pieces).strip() == answer.text
    assert any(Path(s.location).name == "security-policy.md" for s in answer.sources)
    assert [s.n for s in answer.sources] == sorted(s.n for s in answer.sources)
    assert answer.timings.tokens > 0
    assert 0 < answer.timings.retrieve_s <= answer.timings.first_token_s <= answer.timings.total_s
    assert answer.model == answers.engine.name


def test_nothing_related_means_no_invented_answer(answers: AnswerService):
    pieces: list[str] = []
    answer = answers.answer("What is the capital of Mongolia?", on_token=pieces.append)
    assert answer.abstained and answer.text == NO_ANSWER == "".join(pieces)
    assert answer.sources == [] and answer.timings.tokens == 0


def test_a_follow_up_sees_the_conversation(answers: AnswerService, engine: LlmEngine):
    first = answers.answer("How long is parental leave for the primary caregiver?")
    follow_up = answers.answer("And is it paid?", history=[Turn(first.question, first.text)])
    assert not follow_up.abstained  # retrieval borrowed the previous question
    assert follow_up.sources


def test_empty_and_too_long_questions_get_clear_errors(answers: AnswerService):
    with pytest.raises(EmptyQuestionError, match="empty"):
        answers.answer("   ")
    with pytest.raises(QuestionTooLongError):
        answers.answer("Tell me about the VPN key rotation procedure. " * 400)
