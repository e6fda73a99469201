"""The local console chat: what `ajuste chat` and a Slack-less `ajuste serve` open.

Like Hubot's shell adapter: type a question, watch the answer stream in, read its sources.
Follow-ups see the conversation so far, as far as the context window allows.
"""

import json
import sys
from typing import TextIO

from bot.engine.answer import Answer, AnswerService
from bot.engine.prompt import Turn
from retrieval.errors import AjusteError

HELP = "Commands: /reset forgets the conversation, /help shows this, /quit (or Ctrl-D) leaves."


def format_sources(answer: Answer) -> str:
    """Evidence quotes, warnings on figures no source or no quote holds, then the sources:
    those the answer cites, and any other a quote comes from."""
    lines = []
    if answer.unsupported:
        lines.append(f"Check this: {', '.join(answer.unsupported)} is not in the sources.")
    if answer.disputed:
        lines.append(
            f"Check this: the sentence closest to the question (marked) doesn't say "
            f"{', '.join(answer.disputed)}."
        )
    if answer.evidence:
        lines.append("Closest in the sources:" if answer.declines else "Evidence:")
        for quote in answer.evidence:
            mark = " ← closest to the question" if answer.disputed and quote.focus else ""
            lines.append(f'  [{quote.n}] "{quote.text}"{mark}')
    cited = {source.n for source in answer.sources}
    # a quote may come from a source the answer doesn't cite: list it too, so [n] has a place
    quoted = {q.n: q for q in answer.evidence if q.n not in cited}
    if answer.sources or quoted:
        lines.append("Sources:")
        lines += [f"  [{s.n}] {s.title} — {s.location}" for s in answer.sources]
        lines += [
            f"  [{q.n}] {q.title} — {q.location} (quoted, not cited)" for q in quoted.values()
        ]
    return "\n".join(lines)


def run_console(
    answers: AnswerService, *, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout
) -> None:
    interactive = stdin.isatty()
    if interactive:
        import readline  # noqa: F401  (line editing and history for input())
    stdout.write(
        f"Ajuste — local chat with {answers.engine.name}. Ask about your documents. {HELP}\n"
    )
    history: list[Turn] = []
    while True:
        stdout.write("\nyou> ")
        stdout.flush()
        line = stdin.readline()
        if not line:
            stdout.write("\n")
            return
        question = line.strip()
        if not question:
            continue
        if question in {"/quit", "/exit"}:
            return
        if question == "/help":
            stdout.write(HELP + "\n")
            continue
        if question == "/reset":
            history.clear()
            stdout.write("(conversation forgotten)\n")
            continue
        stdout.write("ajuste> ")
        stdout.flush()

        def show(piece: str) -> None:
            stdout.write(piece)
            stdout.flush()

        def queued(ahead: int) -> None:
            stdout.write(f"(waiting for the model: {ahead} ahead) ")
            stdout.flush()

        try:
            answer = answers.answer(question, history=history, on_token=show, on_wait=queued)
        except AjusteError as error:
            stdout.write(f"\n{error}\n")
            continue
        stdout.write("\n")
        sources = format_sources(answer)
        if sources:
            stdout.write(sources + "\n")
        if not answer.abstained:
            history.append(Turn(question, answer.text))


def print_json(data: object) -> None:
    """What every `--json` prints: one indented object, non-ASCII kept readable."""
    print(json.dumps(data, indent=2, ensure_ascii=False))
