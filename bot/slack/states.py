"""Where the bot's records live: the one place that reads AJUSTE_SLACK__STATE.

Apart from both kinds of state, so neither module imports the other's.
"""

from bot.services import Services
from bot.slack.shared_state import QdrantBotState
from bot.slack.state import BotState, State


def open_state(services: Services) -> State:
    """SQLite under the data dir (one replica), or a collection beside the index (several)."""
    settings = services.settings
    if settings.slack.state == "qdrant":
        store = services.store
        return QdrantBotState(store.state_client(), f"{store.collection}_bot")
    return BotState(settings.data_dir / "bot.sqlite3")
