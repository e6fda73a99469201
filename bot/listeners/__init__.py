"""Slack listeners, grouped by what Slack sends. Each translates Slack into a service call."""

from slack_bolt import App

from bot.listeners import actions, assistant, commands, events
from bot.slack.deps import SlackDeps


def register(app: App, deps: SlackDeps) -> None:
    assistant.register(app, deps)  # first: it claims DM thread messages of the assistant pane
    events.register(app, deps)
    commands.register(app, deps)
    actions.register(app, deps)
