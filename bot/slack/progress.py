"""A re-index reported in the channel: one message, edited as the run goes, then the summary.

Edits are spaced `interval` seconds apart to stay well inside chat.update's rate limit. Where
the bot can't post in the channel (not a member), the summary goes to the admin privately.
"""

import logging
import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.slack.status import reindex_summary
from retrieval.indexer import IndexReport

log = logging.getLogger(__name__)


class ReindexProgress:
    def __init__(
        self,
        client: WebClient,
        *,
        channel: str,
        source: str,
        private_reply: Callable[[str], None],
        interval: float = 3.0,
    ) -> None:
        self.client = client
        self.channel = channel
        self.source = source
        self.private_reply = private_reply
        self.interval = interval
        self.ts: str | None = None
        self._last = 0.0
        self._lock = threading.Lock()
        try:
            posted = client.chat_postMessage(
                channel=channel, text=f":arrows_counterclockwise: Re-indexing `{source}`…"
            )
            self.ts = posted["ts"]
        except SlackApiError as error:
            log.info("progress stays private (%s)", error.response.get("error"))

    def progress(self, done: int, total: int) -> None:
        with self._lock:
            if self.ts is None or time.monotonic() - self._last < self.interval:
                return
            self._last = time.monotonic()
        text = f":arrows_counterclockwise: Re-indexing `{self.source}`: {done}/{total} documents…"
        self._edit(text)

    def done(self, report: IndexReport | None, error: str | None) -> None:
        summary = reindex_summary(self.source, report, error)
        if self.ts is None or not self._edit(summary):
            self.private_reply(summary)

    def _edit(self, text: str) -> bool:
        try:
            self.client.chat_update(channel=self.channel, ts=self.ts or "", text=text)
            return True
        except SlackApiError as error:
            log.warning("could not update the progress message: %s", error.response.get("error"))
            return False
