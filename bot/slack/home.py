"""The App Home tab: rebuilt from the shared records when opened and after each change.

Everyone sees what Ajuste does and their own recent questions; admins also see the served
model, the index, the review queue and the fine-tunes, with buttons for each. Everything shown
comes from the data dir or the bot's state, so every replica shows the same tab.
"""

import logging
from collections.abc import Callable
from datetime import datetime

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.services import Services
from bot.settings import Settings
from bot.slack.home_blocks import (
    Block,
    finetune_blocks,
    fit,
    index_blocks,
    model_blocks,
    queue_blocks,
    scores,
    user_blocks,
)
from bot.slack.state import AnswerRecord, State
from bot.slack.status import help_text
from retrieval.scheduler import next_run

log = logging.getLogger(__name__)


class HomeTab:
    def __init__(
        self,
        *,
        settings: Settings,
        services: Services,
        state: State,
        team_url: str,
        finetune_running: Callable[[], bool],
    ) -> None:
        self.settings = settings
        self.services = services
        self.state = state
        self.team_url = team_url.rstrip("/")
        self.finetune_running = finetune_running

    def publish(self, client: WebClient, user: str) -> None:
        """Show `user` their Home tab; a failure is logged, never raised to the caller."""
        try:
            client.views_publish(user_id=user, view={"type": "home", "blocks": self.blocks(user)})
        except SlackApiError as error:
            log.warning("could not publish the Home tab: %s", error.response.get("error"))

    def blocks(self, user: str) -> list[Block]:
        admin = user in self.settings.slack.admins
        blocks = user_blocks(help_text(admin), self.state.answers_by(user, 10), self.link)
        if admin:
            blocks += self.admin_blocks()
        return fit(blocks)

    def admin_blocks(self) -> list[Block]:
        registry = self.services.registry
        active = registry.active()
        store, runs = self.services.store, self.services.runs.all()
        next_runs = {}
        for config in self.services.sources:
            following = next_run(config, runs.get(config.name))
            if following is not None:
                next_runs[config.name] = _at(following)
        return [
            {"type": "divider"},
            *model_blocks(self.served(), active, registry.versions()),
            *index_blocks(store.count_documents(), store.count_chunks(), runs, next_runs),
            *queue_blocks(self.state.disliked(), self.link),
            *finetune_blocks(self.state.finetunes(5), self.finetune_running()),
        ]

    def served(self) -> str:
        """The model answering now, in words, with its eval scores when it has them."""
        llm = self.settings.llm
        active = self.services.registry.active()
        if llm.server_url:
            return "the model loaded on the model servers (AJUSTE_LLM__SERVER_URL)"
        if llm.model_path is not None:
            return f"`{llm.model_path.name}` (AJUSTE_LLM__MODEL_PATH)"
        if active is not None:
            return f"v{active.version} {active.name}: {scores(active)}"
        return f"the default model ({llm.default_model}), not fine-tuned here"

    def link(self, record: AnswerRecord) -> str | None:
        """The answer's thread in Slack; None for a private /ask answer."""
        if not record.thread_ts or not self.team_url:
            return None
        return f"{self.team_url}/archives/{record.channel}/p{record.thread_ts.replace('.', '')}"


def _at(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")
