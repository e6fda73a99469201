"""Buttons: 👍/👎 on answers (stored for the fine-tune dataset), and the Home tab's."""

from typing import Any

from slack_bolt import Ack, App, Respond

from bot.listeners.actions import home, review
from bot.metrics import FEEDBACK_VOTES
from bot.slack.answering import VOTE_DOWN, VOTE_UP
from bot.slack.deps import SlackDeps


def register(app: App, deps: SlackDeps) -> None:
    home.register(app, deps)
    review.register(app, deps)

    @app.action(VOTE_UP)
    @app.action(VOTE_DOWN)
    def vote(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        ack()
        channel = (body.get("channel") or {}).get("id", "")
        recorded = deps.answerer.state.vote(
            action["value"],
            user=body["user"]["id"],
            channel=channel,
            vote=1 if action["action_id"] == VOTE_UP else -1,
        )
        if recorded:
            FEEDBACK_VOTES.labels("up" if action["action_id"] == VOTE_UP else "down").inc()
        text = (
            "Thanks, your feedback was recorded: it helps the admins improve my answers."
            if recorded
            else "I can't find that answer any more, so the feedback was not recorded."
        )
        respond(text=text, response_type="ephemeral", replace_original=False)
