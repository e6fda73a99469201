"""What the listeners are handed: the services they call, built once by the app."""

from dataclasses import dataclass, field

from bot.reindex import Reindexer
from bot.services import Services
from bot.settings import Settings
from bot.slack.answering import SlackAnswerer
from bot.slack.finetune_job import FinetuneJob
from bot.slack.home import HomeTab


@dataclass
class SlackDeps:
    settings: Settings
    services: Services
    answerer: SlackAnswerer
    reindexer: Reindexer
    bot_user_id: str
    team_url: str = ""  # the workspace's address, for links to threads
    finetune: FinetuneJob = field(init=False)
    home: HomeTab = field(init=False)

    def __post_init__(self) -> None:
        self.finetune = FinetuneJob(self.settings.data_dir, self.answerer.state)
        self.home = HomeTab(
            settings=self.settings,
            services=self.services,
            state=self.answerer.state,
            team_url=self.team_url,
            finetune_running=lambda: self.finetune.running,
        )

    def is_admin(self, user: str) -> bool:
        return user in self.settings.slack.admins
