"""Slash commands: /ask, /reindex (admins) and /ajuste help | status | model | finetune."""

from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.slack import admin
from bot.slack.answering import Question
from bot.slack.deps import SlackDeps
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

        admin.reindex(
            deps,
            client,
            wanted,
            channel=command["channel_id"],
            private=private,
            on_done=lambda: deps.home.publish(client, command["user_id"]),
        )

    @app.command("/ajuste")
    def ajuste(ack: Ack, command: dict[str, Any], respond: Respond, client: WebClient) -> None:
        words = command.get("text", "").strip().lower().split()
        action = words[0] if words else "help"
        is_admin = deps.is_admin(command["user_id"])
        if action == "status":
            ack(text="Ajuste status", blocks=status_blocks(deps.services))
        elif action in ("model", "finetune") and not is_admin:
            ack(text=f"Only Ajuste admins can use `/ajuste {action}`.")
        elif action == "model":
            ack(text=admin.model_command(deps, words[1:]))
            deps.home.publish(client, command["user_id"])
        elif action == "finetune":
            ack(text=finetune(words[1:], command, respond, client))
        else:
            ack(text=help_text(is_admin))

    def finetune(
        words: list[str], command: dict[str, Any], respond: Respond, client: WebClient
    ) -> str:
        run_args: tuple[str, ...] = ()
        if words[:1] == ["steps"] and len(words) == 2 and words[1].isdigit():
            run_args = ("--steps", words[1])
        elif words:
            return "Usage: `/ajuste finetune [steps N]`."

        def private(text: str) -> None:
            respond(text=text, response_type="ephemeral")

        user = command["user_id"]
        return admin.start_finetune(
            deps,
            client,
            channel=command["channel_id"],
            user=user,
            private=private,
            run_args=run_args,
            on_done=lambda: deps.home.publish(client, user),
        )
