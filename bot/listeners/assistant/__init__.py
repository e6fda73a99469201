"""Slack's assistant pane (Agents & Assistants): a greeting, suggested prompts, answers."""

from typing import Any

from slack_bolt import App, Assistant, Say, SetSuggestedPrompts
from slack_sdk import WebClient

from bot.slack.answering import Question
from bot.slack.deps import SlackDeps

GREETING = "Hi! Ask me anything about the team's documents and I'll answer with sources."
PROMPTS = [
    {"title": "What can you do?", "message": "What kinds of questions can you answer?"},
    {"title": "Onboarding", "message": "What should I do in my first week?"},
]


def register(app: App, deps: SlackDeps) -> None:
    assistant = Assistant()

    @assistant.thread_started
    def started(say: Say, set_suggested_prompts: SetSuggestedPrompts) -> None:
        say(GREETING)
        set_suggested_prompts(prompts=PROMPTS)

    @assistant.user_message
    def user_message(payload: dict[str, Any], body: dict[str, Any], client: WebClient) -> None:
        question = Question.from_message(payload, body, assistant=True)
        deps.answerer.handle(client, question, body.get("event_id"))

    app.assistant(assistant)
