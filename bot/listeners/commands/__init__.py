"""Slash commands: /ask, /reindex (admins) and /ajuste help | status."""

from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.reindex import ReindexBusyError
from bot.slack.answering import Question
from bot.slack.deps import SlackDeps
from bot.slack.status import help_text, reindex_summary, status_blocks


def register(app: App, deps: SlackDeps) -> None:
    @app.command("/ask")
    def ask(ack: Ack, command: dict[str, Any], respond: Respond, client: WebClient) -> None:
        text = command.get("text", "").strip()
        public = "--public" in text.split()
        question = " ".join(word for word in text.split() if word != "--public")
        if not question:
            ack(text="Usage: `/ask QUESTION` (add `--public` to answer in the channel).")
            return
        if public:
            ack()
        else:
            ack(text=f"Looking into: _{question}_ …")
        asked = Question(
            channel=command["channel_id"],
            user=command["user_id"],
            text=question,
            ts=None,
            thread_ts="",
            team=command.get("team_id"),
        )
        blocks = deps.answerer.answer_privately(asked)
        fallback = blocks[0]["text"]["text"] if blocks and "text" in blocks[0] else question
        if public:
            intro = f"<@{command['user_id']}> asked: {question}"
            respond(
                text=fallback,
                blocks=[
                    {"type": "context", "elements": [{"type": "mrkdwn", "text": intro}]},
                    *blocks,
                ],
                response_type="in_channel",
            )
        else:
            respond(text=fallback, blocks=blocks, response_type="ephemeral")

    @app.command("/reindex")
    def reindex(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        if not deps.is_admin(command["user_id"]):
            ack(text="Only Ajuste admins can re-index. Ask one of them, or an admin can add you.")
            return
        source = command.get("text", "").strip() or "files"
        known = deps.reindexer.known_sources()
        if source not in known:
            names = ", ".join(sorted(known)) or "none yet: index with `ajuste index PATH` first"
            ack(text=f"I don't know a source called `{source}`. Known sources: {names}.")
            return

        def done(report: Any, error: str | None) -> None:
            respond(text=reindex_summary(source, report, error), response_type="ephemeral")

        try:
            deps.reindexer.start(source, on_done=done)
        except ReindexBusyError as busy:
            ack(text=f"Re-indexing `{source}` is {busy}. I'll report when it is done.")
            return
        ack(text=f"Re-indexing `{source}` now. I'll post the result here when it is done.")

    @app.command("/ajuste")
    def ajuste(ack: Ack, command: dict[str, Any]) -> None:
        action = command.get("text", "").strip().lower()
        if action == "status":
            ack(text="Ajuste status", blocks=status_blocks(deps))
        else:
            ack(text=help_text(deps.is_admin(command["user_id"])))
