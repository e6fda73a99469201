"""Source kinds beyond retrieval's own (files, web, git), registered where the app is assembled.

`ajuste` (bot/cli.py) registers them before any command reads sources.yaml; the answer engine
and `Services` never import Slack code. A `slack` source loads the Slack SDK only when it runs.
"""

from bot.settings import SlackSettings
from bot.slack.history_config import SlackConfig
from retrieval.sources.base import Source, SourceError
from retrieval.sources.config import SourceContext, register_kind


def register_source_kinds(slack: SlackSettings) -> None:
    """`kind: slack`: the bot's channels, read with its token."""

    def build(config: SlackConfig, context: SourceContext) -> Source:
        from bot.slack.client import web_client
        from bot.slack.history import SlackHistorySource

        if slack.bot_token is None:
            raise SourceError(
                f"source '{config.name}' reads Slack history: set AJUSTE_SLACK__BOT_TOKEN"
            )
        return SlackHistorySource(
            config.name, web_client(slack), config, context.state_dir / f"{config.name}.json"
        )

    register_kind("slack", SlackConfig, build)
