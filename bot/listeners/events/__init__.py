"""Mentions, DMs and follow-ups in threads the bot has answered in; the Home tab opened."""

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
        answerer.handle(client, Question.from_message(event, body), body.get("event_id"))

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
        answerer.handle(client, Question.from_message(event, body), body.get("event_id"))

    @app.event("app_home_opened")
    def home_opened(event: dict[str, Any], client: WebClient) -> None:
        if event.get("tab", "home") == "home":
            deps.home.publish(client, event["user"])
