"""The console chat, driven through its input and output streams."""

import io
from pathlib import Path

from bot.console import run_console
from bot.engine.answer import AnswerService
from bot.engine.llm import LlmEngine
from bot.engine.prompt import Turn
from bot.settings import LlmSettings
from retrieval.retriever import Retriever


class RecordingAnswers(AnswerService):
    """The real service, remembering the history each question was asked with."""

    histories: list[list[Turn]]

    def answer(self, question: str, **kwargs):  # type: ignore[no-untyped-def, override]
        self.histories.append(list(kwargs.get("history", [])))
        return super().answer(question, **kwargs)


def test_a_conversation_streams_answers_with_sources_and_remembers(
    handbook: tuple[Retriever, Path], engine: LlmEngine
):
    answers = RecordingAnswers(retriever=handbook[0], engine=engine, settings=LlmSettings())
    answers.histories = []
    stdin = io.StringIO(
        "When does the on-call rotation change hands?\n"
        "\n"
        "Who gets paged first?\n"
        "/reset\n"
        "What is the capital of Mongolia?\n"
        "/help\n"
        "/quit\n"
        "never read\n"
    )
    stdout = io.StringIO()
    run_console(answers, stdin=stdin, stdout=stdout)
    out = stdout.getvalue()

    assert out.startswith(f"Ajuste — local chat with {engine.name}.")
    assert "Monday" in out
    assert "Evidence:\n  [1] " in out  # the supporting sentence, quoted
    assert "Sources:\n  [1] On-call and Incident Response — " in out
    assert "(conversation forgotten)" in out and "Commands:" in out
    assert [len(h) for h in answers.histories] == [0, 1, 0]
    assert answers.histories[1][0].question == "When does the on-call rotation change hands?"
    assert "I found nothing about that" in out


def test_end_of_input_leaves_quietly(handbook: tuple[Retriever, Path], engine: LlmEngine):
    answers = AnswerService(retriever=handbook[0], engine=engine, settings=LlmSettings())
    stdout = io.StringIO()
    run_console(answers, stdin=io.StringIO(""), stdout=stdout)
    assert stdout.getvalue().endswith("you> \n")
