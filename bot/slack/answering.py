"""Slack questions → the answer service → an answer in the thread, exactly once.

Listeners hand every question here: mentions, DMs, thread follow-ups, the assistant pane and
/ask. It deduplicates Slack's retries, rebuilds the thread as conversation memory, applies the
channel's source scope, and turns every failure into a short visible apology.
"""

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.engine.answer import Answer, AnswerService
from bot.engine.prompt import Turn
from bot.engine.turns import QueueFullError
from bot.settings import SlackSettings
from bot.slack.mrkdwn import to_mrkdwn
from bot.slack.reply import StreamingSupport, ThreadReply, text_blocks
from bot.slack.state import State
from retrieval.errors import AjusteError
from retrieval.store import Scope

log = logging.getLogger(__name__)

APOLOGY = (
    "Sorry, something went wrong while I was answering. The admins can find the reason in "
    "Ajuste's log. Please try again in a moment."
)
BUSY = (
    "I'm answering a lot of questions right now and the queue is full. "
    "Please ask again in a minute."
)
VOTE_UP, VOTE_DOWN = "ajuste_vote_up", "ajuste_vote_down"
_MENTION = re.compile(r"<@[UW][A-Z0-9]+(?:\|[^>]*)?>")


@dataclass(frozen=True)
class Question:
    channel: str
    user: str
    text: str
    ts: str | None  # the question's own message, when there is one
    thread_ts: str  # the thread the answer goes to
    team: str | None = None
    in_thread: bool = False  # asked inside an existing thread: read it as memory
    assistant: bool = False

    @classmethod
    def from_message(
        cls, event: dict[str, Any], body: dict[str, Any], *, assistant: bool = False
    ) -> "Question":
        """A message event (a mention, a DM, a thread reply) as a question answered in-thread."""
        thread_ts = event.get("thread_ts")
        return cls(
            channel=event["channel"],
            user=event.get("user", ""),
            text=event.get("text", ""),
            ts=event["ts"],
            thread_ts=thread_ts or event["ts"],
            team=event.get("team") or body.get("team_id"),
            in_thread=bool(thread_ts),
            assistant=assistant,
        )


def feedback_sources(answer: Answer) -> list[dict[str, object]]:
    """Every source the model read, with its text, so a 👍 trains in the served shape."""
    shown = {source.n for source in answer.sources}
    return [
        {"n": s.n, "title": s.title, "location": s.location, "text": s.text, "cited": s.n in shown}
        for s in answer.context
    ]


def strip_mentions(text: str) -> str:
    return " ".join(_MENTION.sub(" ", text).split())


def source_line(answer: Answer) -> str:
    parts = [_link(source.n, source.title, source.location) for source in answer.sources]
    return "*Sources:*  " + "   ".join(parts)


def _link(n: int, title: str, location: str) -> str:
    if location.startswith(("http://", "https://")):
        return f"[{n}] <{location}|{to_mrkdwn(title)}>"
    return f"[{n}] {to_mrkdwn(title)} — `{location}`"


def evidence_block(answer: Answer) -> dict[str, Any] | None:
    """The supporting sentences as a quote with their source, and warnings on figures."""
    lines = []
    if answer.unsupported:
        figures = ", ".join(f"*{to_mrkdwn(figure)}*" for figure in answer.unsupported)
        lines.append(f":warning: {figures} is not in the sources: trust the quote, not the answer.")
    if answer.disputed:
        figures = ", ".join(f"*{to_mrkdwn(figure)}*" for figure in answer.disputed)
        lines.append(
            f":warning: The sentence closest to your question (marked) doesn't say {figures}: "
            "check the answer against it."
        )
    if answer.evidence and answer.declines:
        lines.append("The closest the sources come:")
    for quote in answer.evidence:
        mark = " · _closest to your question_" if answer.disputed and quote.focus else ""
        lines.append(
            f"> {to_mrkdwn(quote.text)}\n> — {_link(quote.n, quote.title, quote.location)}{mark}"
        )
    if not lines:
        return None
    return {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}}


def answer_blocks(answer: Answer, answer_id: str) -> list[dict[str, Any]]:
    """What follows the answer text: its evidence, its sources and the feedback buttons."""
    blocks: list[dict[str, Any]] = []
    if (evidence := evidence_block(answer)) is not None:
        blocks.append(evidence)
    if answer.sources:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": source_line(answer)}]}
        )
    if not answer.abstained:
        blocks.append(
            {
                "type": "actions",
                "block_id": "ajuste_feedback",
                "elements": [
                    _button("👍 Helpful", VOTE_UP, answer_id),
                    _button("👎 Not helpful", VOTE_DOWN, answer_id),
                ],
            }
        )
    return blocks


def _button(text: str, action_id: str, value: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "action_id": action_id,
        "value": value,
    }


class SlackAnswerer:
    def __init__(
        self,
        *,
        answers: AnswerService,
        state: State,
        settings: SlackSettings,
        bot_user_id: str,
        scope_for: Callable[[str], Scope],
    ) -> None:
        self.scope_for = scope_for  # a channel's sources and private content
        self.answers = answers
        self.state = state
        self.settings = settings
        self.bot_user_id = bot_user_id
        self.streaming = StreamingSupport(settings.streaming)

    def first_sight(self, event_id: str | None, channel: str, ts: str | None) -> bool:
        """False for a retry or a second event about the same message."""
        keys = [f"event:{event_id}"] if event_id else []
        if ts:
            keys.append(f"message:{channel}:{ts}")
        return self.state.first_sight(*keys) if keys else True

    def history(self, client: WebClient, question: Question) -> list[Turn]:
        """Earlier questions and this bot's answers in the thread, oldest first."""
        try:
            response = client.conversations_replies(
                channel=question.channel, ts=question.thread_ts, limit=200
            )
        except SlackApiError as error:
            log.warning("could not read the thread: %s", error.response.get("error"))
            return []
        turns: list[Turn] = []
        asked: str | None = None
        messages: list[dict[str, Any]] = response.get("messages", [])
        for message in messages:
            if question.ts and float(message.get("ts", 0)) >= float(question.ts):
                break
            if message.get("user") == self.bot_user_id or message.get("bot_id"):
                if asked is not None and message.get("user") == self.bot_user_id:
                    turns.append(Turn(asked, message.get("text", "")))
                asked = None
            else:
                asked = strip_mentions(message.get("text", "")) or None
        return turns

    def handle(self, client: WebClient, question: Question, event_id: str | None) -> None:
        """Answer a message's question unless Slack already delivered it (a retry)."""
        if self.first_sight(event_id, question.channel, question.ts):
            self.answer_in_thread(client, question)

    def answer_in_thread(self, client: WebClient, question: Question) -> None:
        reply = ThreadReply(
            client,
            channel=question.channel,
            thread_ts=question.thread_ts,
            question_ts=question.ts,
            user=question.user,
            team=question.team,
            streaming=self.streaming,
            interval=self.settings.update_interval,
            assistant=question.assistant,
        )
        reply.thinking()
        history = self.history(client, question) if question.in_thread else []
        try:
            answer = self.answers.answer(
                strip_mentions(question.text),
                history=history,
                scope=self.scope_for(question.channel),
                on_token=reply.append,
                on_wait=reply.queued,
            )
        except QueueFullError:
            reply.fail(BUSY)
            return
        except AjusteError as error:
            reply.fail(str(error))
            return
        except Exception:
            log.exception("answering %s in %s failed", question.ts, question.channel)
            reply.fail(APOLOGY)
            return
        answer_id = self.record(answer, question)
        self.state.join_thread(question.channel, question.thread_ts)
        reply.finish(answer.text, answer_blocks(answer, answer_id))

    def answer_privately(self, question: Question) -> list[dict[str, Any]]:
        """An answer as blocks, for /ask's private reply (no streaming into ephemerals)."""
        try:
            answer = self.answers.answer(
                strip_mentions(question.text), scope=self.scope_for(question.channel)
            )
        except QueueFullError:
            return text_blocks(BUSY)
        except AjusteError as error:
            return text_blocks(str(error))
        except Exception:
            log.exception("/ask in %s failed", question.channel)
            return text_blocks(APOLOGY)
        answer_id = self.record(answer, question)
        return text_blocks(to_mrkdwn(answer.text)) + answer_blocks(answer, answer_id)

    def record(self, answer: Answer, question: Question) -> str:
        return self.state.record_answer(
            question=answer.question,
            answer=answer.text,
            sources=feedback_sources(answer),
            model=answer.model,
            user=question.user,
            channel=question.channel,
            thread_ts=question.thread_ts,
        )
