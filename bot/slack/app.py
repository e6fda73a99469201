"""Builds the Bolt app and runs it in Socket Mode or HTTP mode."""

import logging
from concurrent.futures import ThreadPoolExecutor

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler

from bot import listeners
from bot.reindex import Reindexer
from bot.services import Services
from bot.settings import Settings
from bot.slack.answering import SlackAnswerer
from bot.slack.client import web_client
from bot.slack.deps import SlackDeps
from bot.slack.state import State
from retrieval.errors import AjusteError

log = logging.getLogger(__name__)


def build_app(settings: Settings, services: Services, state: State) -> tuple[App, SlackDeps]:
    client = web_client(settings.slack)
    try:
        identity = client.auth_test()
    except Exception as error:  # SlackApiError or a network error: either way, say what to do
        raise AjusteError(
            f"Slack did not accept the bot token ({error}): check AJUSTE_SLACK__BOT_TOKEN "
            f"and AJUSTE_SLACK__API_URL ({settings.slack.api_url})."
        ) from error
    signing_secret = settings.slack.signing_secret
    app = App(
        client=client,
        signing_secret=signing_secret.get_secret_value() if signing_secret else None,
        token_verification_enabled=False,  # auth.test just ran, above
        # Enough workers that queued askers get a thread and can be told their place in line.
        listener_executor=ThreadPoolExecutor(max_workers=settings.llm.max_queue + 4),
    )
    deps = SlackDeps(
        settings=settings,
        services=services,
        answerer=SlackAnswerer(
            answers=services.answers,
            state=state,
            settings=settings.slack,
            bot_user_id=identity["user_id"],
            scope_for=services.channel_scope,
        ),
        reindexer=Reindexer(services),
        bot_user_id=identity["user_id"],
        team_url=identity.get("url") or "",
    )
    listeners.register(app, deps)
    return app, deps


def socket_mode(app: App, settings: Settings) -> SocketModeHandler:
    if settings.slack.app_token is None:
        raise AjusteError(
            "Socket Mode needs an app-level token: set AJUSTE_SLACK__APP_TOKEN (xapp-…), or "
            "run `ajuste serve --http` with AJUSTE_SLACK__SIGNING_SECRET."
        )
    return SocketModeHandler(app, settings.slack.app_token.get_secret_value())
