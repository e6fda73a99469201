"""The `slack` source kind: channel history, one document per thread, with authors and links.

Incremental: a normal run lists the last `lookback` of history and re-reads only threads whose
last reply changed. A full pass (every `full_pass_every`, and the first run) lists everything,
which also picks up edits and deletions. Private channels' content is tagged so that it is only
ever retrieved for questions asked in that same channel.
"""

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.slack.history_config import SlackConfig
from retrieval.documents import Section, content_version
from retrieval.sources.base import UNCHANGED, DocRef, Fetched, Outcome, Source, SourceError
from retrieval.sources.config import parse_duration
from retrieval.store import StoredDocument

SKIPPED_SUBTYPES = {
    "channel_join",
    "channel_leave",
    "channel_topic",
    "channel_purpose",
    "channel_name",
    "bot_add",
    "bot_remove",
    "pinned_item",
    "unpinned_item",
}


class SlackHistorySource(Source):
    kind = "slack"

    def __init__(self, name: str, client: WebClient, config: SlackConfig, state_file: Path) -> None:
        super().__init__(name)
        self.client = client
        self.config = config
        self.state_file = state_file
        self.full_pass = self._full_pass_due()
        self._messages: dict[str, tuple[str, dict[str, Any]]] = {}  # doc id → (channel, parent)
        self._channels: dict[str, dict[str, Any]] = {}
        self._users: dict[str, str] = {}
        self._workspace = ""

    def _full_pass_due(self) -> bool:
        try:
            last = json.loads(self.state_file.read_text())["full_pass_at"]
        except (OSError, ValueError, KeyError):
            return True
        return time.time() - last >= parse_duration(self.config.full_pass_every).total_seconds()

    def _call(self, method: str, **params: Any) -> dict[str, Any]:
        try:
            response = self.client.api_call(method, data={k: str(v) for k, v in params.items()})
            return dict(response.data)  # type: ignore[arg-type]
        except SlackApiError as error:
            raise SourceError(
                f"Slack refused {method} ({error.response.get('error')}): check the bot token, "
                "its scopes and that the bot is in the channel"
            ) from error
        except OSError as error:
            raise SourceError(f"Slack could not be reached for {method}: {error}") from error

    def _paged(self, method: str, key: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self._call(method, limit=200, **params, **({"cursor": cursor} if cursor else {}))
            items += page.get(key, [])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return items

    def refs(self) -> list[DocRef]:
        self._workspace = self._call("auth.test").get("url", "")
        oldest = (
            "0"
            if self.full_pass
            else str(time.time() - parse_duration(self.config.lookback).total_seconds())
        )
        refs = []
        for channel in self.config.channels:
            self._channels[channel] = self._call("conversations.info", channel=channel)["channel"]
            for message in self._paged(
                "conversations.history", "messages", channel=channel, oldest=oldest
            ):
                if (
                    message.get("subtype") in SKIPPED_SUBTYPES
                    or message.get("thread_ts", message["ts"]) != message["ts"]
                ):
                    continue
                doc_id = f"slack:{channel}:{message['ts']}"
                self._messages[doc_id] = (channel, message)
                refs.append(DocRef(doc_id, self._permalink(channel, message["ts"])))
        return refs

    @staticmethod
    def _marker(parent: dict[str, Any]) -> str:
        """Changes when the thread gets a reply or its first message is edited."""
        edited = (parent.get("edited") or {}).get("ts", "")
        return f"{parent.get('latest_reply', parent['ts'])}/{edited}"

    def fetch(self, ref: DocRef, previous: StoredDocument | None) -> Fetched | Outcome:
        channel, parent = self._messages[ref.doc_id]
        marker = self._marker(parent)
        if not self.full_pass and previous is not None and previous.meta.get("marker") == marker:
            return UNCHANGED  # no new reply: skip conversations.replies

        if parent.get("reply_count"):
            thread = self._paged(
                "conversations.replies", "messages", channel=channel, ts=parent["ts"]
            )
        else:
            thread = [parent]
        info = self._channels[channel]
        lines = [self._line(message) for message in thread if message.get("text")]
        first = " ".join(str(parent.get("text", "")).split())
        title = f"#{info.get('name', channel)}: {first[:80]}{'…' if len(first) > 80 else ''}"
        private = info.get("is_private") or info.get("is_im") or info.get("is_mpim")
        text = "\n".join(lines)
        return Fetched(
            title=title,
            sections=[Section((title,), text)],
            version=content_version(text.encode()),  # reply edits show up on a full pass
            location=ref.location,
            meta={"marker": marker},
            private_channel=channel if private else None,
        )

    def owns(self, doc_id: str) -> bool:
        """Only a full pass lists everything, so only it may remove what was not listed."""
        return self.full_pass

    def close(self) -> None:
        if self.full_pass and self._workspace:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            self.state_file.write_text(json.dumps({"full_pass_at": time.time()}))

    def _line(self, message: dict[str, Any]) -> str:
        when = datetime.fromtimestamp(float(message["ts"]), UTC).strftime("%Y-%m-%d %H:%M")
        return f"{self._name(message)} ({when} UTC): {message['text']}"

    def _name(self, message: dict[str, Any]) -> str:
        user = message.get("user")
        if not user:
            return str(message.get("username") or message.get("bot_id") or "someone")
        if user not in self._users:
            try:
                profile = self._call("users.info", user=user)["user"]
                self._users[user] = profile.get("real_name") or profile.get("name") or user
            except SourceError:
                self._users[user] = user
        return self._users[user]

    def _permalink(self, channel: str, ts: str) -> str:
        base = self._workspace or "https://slack.com/"
        return f"{base.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}"
