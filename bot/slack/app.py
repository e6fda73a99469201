"""Builds the Bolt app and runs it in Socket Mode or HTTP mode."""

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from slack_bolt import App, BoltRequest
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot import listeners
from bot.reindex import Reindexer
from bot.services import Services
from bot.settings import Settings
from bot.slack.answering import SlackAnswerer
from bot.slack.deps import SlackDeps
from bot.slack.state import BotState
from retrieval.errors import AjusteError

log = logging.getLogger(__name__)
EVENTS_PATH = "/slack/events"


def web_client(settings: Settings) -> WebClient:
    """The Web API client: retries 429s after Retry-After, connection and server errors."""
    token = settings.slack.bot_token.get_secret_value() if settings.slack.bot_token else None
    return WebClient(
        token=token,
        base_url=str(settings.slack.api_url),
        retry_handlers=[
            RateLimitErrorRetryHandler(max_retry_count=3),
            ConnectionErrorRetryHandler(max_retry_count=3),
            ServerErrorRetryHandler(max_retry_count=2),
        ],
    )


def build_app(settings: Settings, services: Services, state: BotState) -> tuple[App, SlackDeps]:
    client = web_client(settings)
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
    )
    listeners.register(app, deps)
    return app, deps


class _Handler(BaseHTTPRequestHandler):
    app: App

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._send(200, "application/json", json.dumps({"ok": True}).encode())
        else:
            self._send(404, "text/plain", b"not found")

    def do_POST(self) -> None:
        if self.path.split("?")[0] != EVENTS_PATH:
            self._send(404, "text/plain", b"not found")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8")
        request = BoltRequest(
            body=body,
            query=self.path.partition("?")[2],
            headers={k.lower(): [v] for k, v in self.headers.items()},
        )
        response = self.app.dispatch(request)
        self.send_response(response.status)
        for name, values in response.headers.items():
            for value in values:
                self.send_header(name, value)
        payload = response.body.encode("utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _send(self, status: int, content_type: str, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("http: " + format, *args)


def http_server(app: App, host: str, port: int) -> ThreadingHTTPServer:
    """HTTP mode: events, commands and interactivity at /slack/events, and /healthz."""
    handler = type("AjusteHandler", (_Handler,), {"app": app})
    return ThreadingHTTPServer((host, port), handler)


def socket_mode(app: App, settings: Settings) -> SocketModeHandler:
    if settings.slack.app_token is None:
        raise AjusteError(
            "Socket Mode needs an app-level token: set AJUSTE_SLACK__APP_TOKEN (xapp-…), or "
            "run `ajuste serve --http` with AJUSTE_SLACK__SIGNING_SECRET."
        )
    return SocketModeHandler(app, settings.slack.app_token.get_secret_value())


def serve_forever(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    return thread
