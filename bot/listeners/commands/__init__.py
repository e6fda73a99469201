"""Slash commands: /ask, /reindex (admins) and /ajuste help | status | model | finetune."""

from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.model_admin import roll_back, use_version, version_lines
from bot.reindex import SourceBusyError
from bot.slack.answering import Question
from bot.slack.deps import SlackDeps
from bot.slack.progress import ReindexProgress
from bot.slack.status import help_text, status_blocks
from retrieval.errors import AjusteError


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
    def ajuste(ack: Ack, command: dict[str, Any], respond: Respond, client: WebClient) -> None:
        words = command.get("text", "").strip().lower().split()
        action = words[0] if words else "help"
        admin = deps.is_admin(command["user_id"])
        if action == "status":
            ack(text="Ajuste status", blocks=status_blocks(deps.services))
        elif action in ("model", "finetune") and not admin:
            ack(text=f"Only Ajuste admins can use `/ajuste {action}`.")
        elif action == "model":
            ack(text=model_admin(words[1:]))
        elif action == "finetune":
            ack(text=start_finetune(words[1:], command["channel_id"], respond, client))
        else:
            ack(text=help_text(admin))

    def model_admin(words: list[str]) -> str:
        try:
            if words[:1] == ["use"] and len(words) == 2 and words[1].lstrip("v").isdigit():
                return use_version(deps.settings, int(words[1].lstrip("v")))
            if words == ["rollback"]:
                return roll_back(deps.settings)
            if words in ([], ["list"]):
                return "```" + "\n".join(version_lines(deps.settings)) + "```"
        except AjusteError as error:
            return f":warning: {error}"
        return "Usage: `/ajuste model [list | use VERSION | rollback]`."

    def start_finetune(words: list[str], channel: str, respond: Respond, client: WebClient) -> str:
        run_args: tuple[str, ...] = ()
        if words[:1] == ["steps"] and len(words) == 2 and words[1].isdigit():
            run_args = ("--steps", words[1])
        elif words:
            return "Usage: `/ajuste finetune [steps N]`."

        def private(text: str) -> None:
            respond(text=text, response_type="ephemeral")

        if not deps.finetune.start(
            client, channel=channel, private_reply=private, run_args=run_args
        ):
            return "A fine-tune is already running: its progress is in the channel."
        return (
            "Fine-tune started in its own process: dataset, LoRA, GGUF, eval. Progress follows "
            "here; the new version is served only if it scores at least as well."
        )
