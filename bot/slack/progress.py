"""Long jobs reported in the channel: one message, edited as the job goes, then the summary.

Edits are spaced `interval` seconds apart to stay well inside chat.update's rate limit. Where
the bot can't post in the channel (not a member), the summary goes to the admin privately.
"""

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.slack.status import reindex_summary
from retrieval.indexer import IndexReport

log = logging.getLogger(__name__)


class ProgressMessage:
    def __init__(
        self,
        client: WebClient,
        *,
        channel: str,
        text: str,
        private_reply: Callable[[str], None],
        interval: float = 3.0,
    ) -> None:
        self.client = client
        self.channel = channel
        self.private_reply = private_reply
        self.interval = interval
        self.ts: str | None = None
        self._last = 0.0
        self._lock = threading.Lock()
        try:
            self.ts = client.chat_postMessage(channel=channel, text=text)["ts"]
        except SlackApiError as error:
            log.info("progress stays private (%s)", error.response.get("error"))

    def update(self, text: str) -> None:
        """Show the job's state, unless the last edit was too recent."""
        with self._lock:
            if self.ts is None or time.monotonic() - self._last < self.interval:
                return
            self._last = time.monotonic()
        self._edit(text)

    def finish(self, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        if self.ts is None or not self._edit(text, blocks):
            self.private_reply(text)

    def _edit(self, text: str, blocks: list[dict[str, Any]] | None = None) -> bool:
        try:
            self.client.chat_update(
                channel=self.channel, ts=self.ts or "", text=text, blocks=blocks
            )
            return True
        except SlackApiError as error:
            log.warning("could not update the progress message: %s", error.response.get("error"))
            return False


class ReindexProgress(ProgressMessage):
    def __init__(
        self,
        client: WebClient,
        *,
        channel: str,
        source: str,
        private_reply: Callable[[str], None],
        interval: float = 3.0,
    ) -> None:
        self.source = source
        super().__init__(
            client,
            channel=channel,
            text=f":arrows_counterclockwise: Re-indexing `{source}`…",
            private_reply=private_reply,
            interval=interval,
        )

    def progress(self, done: int, total: int) -> None:
        self.update(
            f":arrows_counterclockwise: Re-indexing `{self.source}`: {done}/{total} documents…"
        )

    def done(self, report: IndexReport | None, error: str | None) -> None:
        self.finish(reindex_summary(self.source, report, error))
