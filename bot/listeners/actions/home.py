"""The Home tab's admin buttons: re-index, fine-tune, use a version, roll back.

The same functions and checks as /reindex and /ajuste; a non-admin's click (a crafted payload:
the buttons are only shown to admins) changes nothing and is told so. Progress and results go
to the admin's Messages tab with the bot, then the Home tab is rebuilt.
"""

from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.slack import admin
from bot.slack.deps import SlackDeps
from bot.slack.home_blocks import FINETUNE, REINDEX, ROLLBACK, USE_VERSION


def register(app: App, deps: SlackDeps) -> None:
    def allowed(client: WebClient, user: str, what: str) -> bool:
        """Admins only; anyone else hears why in their Messages tab with the bot."""
        if deps.is_admin(user):
            return True
        client.chat_postMessage(channel=user, text=f"Only Ajuste admins can {what}.")
        return False

    def tell(client: WebClient, user: str) -> admin.Reply:
        def reply(text: str) -> None:
            client.chat_postMessage(channel=user, text=text)

        return reply

    @app.action(REINDEX)
    def reindex(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        user = body["user"]["id"]
        if allowed(client, user, "re-index"):
            admin.reindex(
                deps,
                client,
                deps.services.source_names(),
                channel=user,
                private=tell(client, user),
                on_done=lambda: deps.home.publish(client, user),
            )

    @app.action(FINETUNE)
    def finetune(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        user = body["user"]["id"]
        if allowed(client, user, "fine-tune"):
            started = admin.start_finetune(
                deps,
                client,
                channel=user,
                user=user,
                private=tell(client, user),
                on_done=lambda: deps.home.publish(client, user),
            )
            tell(client, user)(started)
            deps.home.publish(client, user)

    @app.action(USE_VERSION)
    @app.action(ROLLBACK)
    def model(ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        ack()
        user = body["user"]["id"]
        if not allowed(client, user, "choose the model"):
            return
        if action["action_id"] == ROLLBACK:
            words = ["rollback"]
        else:
            words = ["use", str((action.get("selected_option") or {}).get("value", ""))]
        tell(client, user)(admin.model_command(deps, words))
        deps.home.publish(client, user)
