"""Slash commands: /ask, /reindex (admins) and /ajuste help | status."""

from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.reindex import SourceBusyError
from bot.slack.answering import Question
from bot.slack.deps import SlackDeps
from bot.slack.progress import ReindexProgress
from bot.slack.status import help_text, status_blocks


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
    def reindex(ack: Ack, command: dict[str, Any], respond: Respond, client: WebClient) -> None:
        if not deps.is_admin(command["user_id"]):
            ack(text="Only Ajuste admins can re-index. Ask one of them, or an admin can add you.")
            return
        known = deps.services.source_names()
        wanted = command.get("text", "").split() or known
        unknown = [name for name in wanted if name not in known]
        if unknown or not wanted:
            names = ", ".join(f"`{n}`" for n in known) or "none yet"
            ack(text=f"I don't know a source called `{' '.join(unknown)}`. Known sources: {names}.")
            return
        ack(text=f"Re-indexing {', '.join(f'`{n}`' for n in wanted)}: progress follows here.")

        def private(text: str) -> None:
            respond(text=text, response_type="ephemeral")

        for name in wanted:
            busy = deps.reindexer.busy(name)
            if busy:
                private(f"`{name}` {busy}: I'll leave that run to finish.")
                continue
            progress = ReindexProgress(
                client, channel=command["channel_id"], source=name, private_reply=private
            )
            try:
                deps.reindexer.start(name, on_done=progress.done, on_progress=progress.progress)
            except SourceBusyError as error:
                progress.done(None, str(error))

    @app.command("/ajuste")
    def ajuste(ack: Ack, command: dict[str, Any]) -> None:
        action = command.get("text", "").strip().lower()
        if action == "status":
            ack(text="Ajuste status", blocks=status_blocks(deps))
        else:
            ack(text=help_text(deps.is_admin(command["user_id"])))
