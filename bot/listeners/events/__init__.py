"""Mentions, DMs and follow-ups in threads the bot has answered in."""

from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.slack.answering import Question
from bot.slack.deps import SlackDeps


def register(app: App, deps: SlackDeps) -> None:
    answerer = deps.answerer

    @app.event("app_mention")
    def mention(event: dict[str, Any], body: dict[str, Any], client: WebClient) -> None:
        if event.get("bot_id") or event.get("subtype"):
            return
        if not answerer.first_sight(body.get("event_id"), event["channel"], event["ts"]):
            return
        answerer.answer_in_thread(
            client,
            Question(
                channel=event["channel"],
                user=event.get("user", ""),
                text=event.get("text", ""),
                ts=event["ts"],
                thread_ts=event.get("thread_ts") or event["ts"],
                team=event.get("team") or body.get("team_id"),
                in_thread=bool(event.get("thread_ts")),
            ),
        )

    @app.event("message")
    def message(event: dict[str, Any], body: dict[str, Any], client: WebClient) -> None:
        # Edits, deletions, joins and every bot's messages (ours included) carry a subtype
        # or a bot_id: none of them is a question.
        if event.get("subtype") or event.get("bot_id") or event.get("user") == deps.bot_user_id:
            return
        if f"<@{deps.bot_user_id}>" in event.get("text", ""):
            return  # the app_mention event answers it
        channel, thread_ts = event["channel"], event.get("thread_ts")
        direct = event.get("channel_type") == "im"
        if not direct and not (thread_ts and answerer.state.in_thread(channel, thread_ts)):
            return
        if not answerer.first_sight(body.get("event_id"), channel, event["ts"]):
            return
        answerer.answer_in_thread(
            client,
            Question(
                channel=channel,
                user=event.get("user", ""),
                text=event.get("text", ""),
                ts=event["ts"],
                thread_ts=thread_ts or event["ts"],
                team=event.get("team") or body.get("team_id"),
                in_thread=bool(thread_ts),
            ),
        )
