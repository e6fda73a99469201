"""What the listeners are handed: the services they call, built once by the app."""

from dataclasses import dataclass

from bot.reindex import Reindexer
from bot.services import Services
from bot.settings import Settings
from bot.slack.answering import SlackAnswerer


@dataclass
class SlackDeps:
    settings: Settings
    services: Services
    answerer: SlackAnswerer
    reindexer: Reindexer
    bot_user_id: str

    def is_admin(self, user: str) -> bool:
        return user in self.settings.slack.admins
