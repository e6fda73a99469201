"""One answer delivered into a Slack thread as it is written.

Slack's chat streaming methods are used where the workspace allows them; otherwise the answer
is posted once and then edited with chat.update, at most once per `interval` to respect rate
limits. Either way the message settles into its final form: mrkdwn text, sources, feedback.
"""

import contextlib
import logging
import time
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.slack.mrkdwn import to_mrkdwn

log = logging.getLogger(__name__)

THINKING_REACTION = "eyes"
SECTION_LIMIT = 2900  # Slack allows 3000 characters in a section's text


def text_blocks(text: str) -> list[dict[str, Any]]:
    """The answer as section blocks, split at paragraph or line breaks to fit Slack's limit."""
    blocks: list[dict[str, Any]] = []
    rest = text
    while rest:
        cut = len(rest)
        if cut > SECTION_LIMIT:
            window = rest[:SECTION_LIMIT]
            cut = max(window.rfind("\n\n"), window.rfind("\n"), window.rfind(" "))
            cut = cut if cut > SECTION_LIMIT // 2 else SECTION_LIMIT
        part, rest = rest[:cut].strip(), rest[cut:].lstrip()
        if part:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": part}})
    return blocks


class StreamingSupport:
    """Remembers, for the whole process, whether the workspace refused chat streaming."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def refused(self, error: SlackApiError) -> None:
        log.info(
            "chat streaming unavailable (%s): editing messages instead", error.response.get("error")
        )
        self.enabled = False


class ThreadReply:
    def __init__(
        self,
        client: WebClient,
        *,
        channel: str,
        thread_ts: str,
        question_ts: str | None,
        user: str,
        team: str | None,
        streaming: StreamingSupport,
        interval: float,
        assistant: bool = False,
    ) -> None:
        self.client = client
        self.channel = channel
        self.thread_ts = thread_ts
        self.question_ts = question_ts
        self.user = user
        self.team = team
        self.streaming = streaming
        self.interval = interval
        self.assistant = assistant
        self.ts: str | None = None  # the answer message, once there is one
        self._streamed = False
        self._text = ""
        self._sent = 0  # characters of _text already on Slack
        self._last_send = 0.0
        self._reacted = False

    def thinking(self) -> None:
        """Show at once that the question was heard."""
        try:
            if self.assistant:
                self.client.assistant_threads_setStatus(
                    channel_id=self.channel, thread_ts=self.thread_ts, status="is thinking…"
                )
            elif self.question_ts:
                self.client.reactions_add(
                    channel=self.channel, timestamp=self.question_ts, name=THINKING_REACTION
                )
                self._reacted = True
        except SlackApiError as error:
            log.warning("could not show the thinking status: %s", error.response.get("error"))

    def queued(self, ahead: int) -> None:
        noun = "question" if ahead == 1 else "questions"
        self._show(
            f":hourglass_flowing_sand: In line for the model: {ahead} {noun} ahead of yours."
        )

    def append(self, piece: str) -> None:
        self._text += piece
        if time.monotonic() - self._last_send < self.interval and self._sent:
            return
        self._flush()

    def finish(self, text: str, extra_blocks: list[dict[str, Any]]) -> None:
        """Settle the message: the whole answer, then sources and feedback buttons."""
        self._text = text
        mrkdwn = to_mrkdwn(text)
        if self._streamed and self.ts:
            try:
                self.client.chat_stopStream(
                    channel=self.channel,
                    ts=self.ts,
                    markdown_text=self._text[self._sent :] or None,
                    blocks=extra_blocks,
                )
                self._done()
                return
            except SlackApiError as error:  # the stream expired: edit the message instead
                log.warning("chat.stopStream failed: %s", error.response.get("error"))
        self._show(mrkdwn, blocks=text_blocks(mrkdwn) + extra_blocks)
        self._done()

    def fail(self, message: str) -> None:
        if self._streamed and self.ts:
            try:
                self.client.chat_stopStream(
                    channel=self.channel, ts=self.ts, markdown_text=f"\n\n{message}"
                )
                self._done()
                return
            except SlackApiError:
                pass
        shown = to_mrkdwn(self._text).strip()  # what was written before the failure stays
        self._show(f"{shown}\n\n{message}" if shown else message)
        self._done()

    def _flush(self) -> None:
        delta = self._text[self._sent :]
        if not delta.strip():
            return
        if self.ts is None and self.streaming.enabled:
            try:
                response = self.client.chat_startStream(
                    channel=self.channel,
                    thread_ts=self.thread_ts,
                    markdown_text=delta,
                    recipient_user_id=self.user,
                    recipient_team_id=self.team,
                )
                self.ts, self._streamed = response["ts"], True
            except SlackApiError as error:
                self.streaming.refused(error)
        elif self._streamed and self.ts:
            try:
                self.client.chat_appendStream(channel=self.channel, ts=self.ts, markdown_text=delta)
            except SlackApiError as error:
                log.warning("chat.appendStream failed: %s", error.response.get("error"))
                return
        if not self._streamed:
            self._show(to_mrkdwn(self._text) + " …")
        self._sent = len(self._text)
        self._last_send = time.monotonic()

    def _show(self, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        """Post the answer message, or edit it when it exists."""
        if self.ts is None:
            response = self.client.chat_postMessage(
                channel=self.channel, thread_ts=self.thread_ts, text=text, blocks=blocks
            )
            self.ts = response["ts"]
        else:
            self.client.chat_update(channel=self.channel, ts=self.ts, text=text, blocks=blocks)

    def _done(self) -> None:
        if self._reacted and self.question_ts:
            with contextlib.suppress(SlackApiError):
                self.client.reactions_remove(
                    channel=self.channel, timestamp=self.question_ts, name=THINKING_REACTION
                )
            self._reacted = False
