"""The review queue on the Home tab: Correct opens a modal, its submission becomes a curated
example; Dismiss takes the answer off the queue. Admins only, checked on every step."""

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.slack.deps import SlackDeps
from bot.slack.review import (
    CORRECT,
    CORRECTION_VIEW,
    DISMISS,
    CorrectionError,
    correction_modal,
    curated_example,
    read_correction,
    save_correction,
    thread_message,
)
from bot.tuning import finetune_dir

log = logging.getLogger(__name__)
GONE = "That answer no longer exists in Ajuste's records, so there is nothing to correct."
ADMINS_ONLY = "Only Ajuste admins can review answers."
Button = Callable[[str, dict[str, Any], dict[str, Any], WebClient], None]  # user, body, action


def register(app: App, deps: SlackDeps) -> None:
    state = deps.answerer.state

    def tell(client: WebClient, user: str, text: str) -> None:
        client.chat_postMessage(channel=user, text=text)

    def admins_only(handle: Button) -> Callable[..., None]:
        """A button's listener: acknowledged, then `handle` for an admin, a refusal otherwise."""

        def listener(
            ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient
        ) -> None:
            ack()
            user = body["user"]["id"]
            if not deps.is_admin(user):
                tell(client, user, ADMINS_ONLY)
                return
            handle(user, body, action, client)

        return listener

    @app.action(CORRECT)
    @admins_only
    def correct(user: str, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        record = state.answer(action["value"])
        if record is None:
            tell(client, user, GONE)
            deps.home.publish(client, user)
            return
        client.views_open(trigger_id=body["trigger_id"], view=correction_modal(record))

    @app.action(DISMISS)
    @admins_only
    def dismiss(user: str, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        if not state.review(action["value"], action="dismissed", user=user):
            tell(client, user, GONE)
        deps.home.publish(client, user)

    @app.view(CORRECTION_VIEW)
    def submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        user = body["user"]["id"]

        def refuse(message: str) -> None:
            ack(response_action="errors", errors={"correction": message})

        if not deps.is_admin(user):
            refuse(ADMINS_ONLY)
            return
        try:
            correction = read_correction(view)
        except CorrectionError as error:
            refuse(str(error))
            return
        record = state.answer(correction.answer_id)
        if record is None:
            refuse(GONE)
            return
        save_correction(
            finetune_dir(deps.settings) / "curated", curated_example(record, correction)
        )
        state.review(record.answer_id, action="corrected", user=user, correction=correction.text)
        ack()
        if correction.post_in_thread and record.thread_ts:
            try:
                client.chat_postMessage(
                    channel=record.channel,
                    thread_ts=record.thread_ts,
                    text=thread_message(user, correction.text),
                )
            except SlackApiError as error:
                reason = error.response.get("error")
                tell(client, user, f"Saved, but I could not post it in the thread ({reason}).")
        deps.home.publish(client, user)
