"""`/ajuste finetune`: the fine-tune in its own process, never in the bot's answering path.

The job runs `ajuste finetune dataset build` (curated files and the 👍/👎 votes), then
`ajuste finetune run --promote-if-better --progress json`, and turns the JSON lines into
one channel message edited as it goes and the eval report at the end, with the loss and
score picture uploaded through Slack's files API. The report is kept in the bot's state for
the Home tab. A promoted version is picked up by the running bot on its next question, like
`ajuste model use`.
"""

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.slack.progress import ProgressMessage
from bot.slack.state import State

log = logging.getLogger(__name__)
TITLE = ":hammer_and_wrench: Fine-tune"


class FinetuneJob:
    """At most one fine-tune child process per bot; the CLI's lock guards across processes."""

    def __init__(self, data_dir: Path, state: State) -> None:
        self.data_dir = data_dir
        self.state = state
        self._thread: threading.Thread | None = None
        self._reported = False  # the job is over, though its thread may still tell others

    @property
    def running(self) -> bool:
        alive = self._thread is not None and self._thread.is_alive()
        return alive and not self._reported

    def start(
        self,
        client: WebClient,
        *,
        channel: str,
        private_reply: Callable[[str], None],
        user: str,
        run_args: tuple[str, ...] = (),
        on_done: Callable[[], None] = lambda: None,
    ) -> bool:
        """Start the job unless one is running; progress goes to `channel`, then `on_done()`."""
        if self.running:
            return False
        progress = ProgressMessage(
            client,
            channel=channel,
            text=f"{TITLE}: building the dataset…",
            private_reply=private_reply,
        )
        self._reported = False
        self._thread = threading.Thread(
            target=self._run,
            args=(client, progress, user, run_args, on_done),
            name="finetune",
            daemon=True,
        )
        self._thread.start()
        return True

    def _ajuste(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "bot.cli", "--data-dir", str(self.data_dir), *args]

    def _run(
        self,
        client: WebClient,
        progress: ProgressMessage,
        user: str,
        run_args: tuple[str, ...],
        on_done: Callable[[], None],
    ) -> None:
        text, file_id = self._outcome(client, progress, run_args)
        self.state.record_finetune(report=text, file_id=file_id, user=user)  # before it is told
        progress.finish(text, picture_blocks(text, file_id))
        self._reported = True
        on_done()

    def _outcome(
        self, client: WebClient, progress: ProgressMessage, run_args: tuple[str, ...]
    ) -> tuple[str, str | None]:
        """The report (or why it failed) and the uploaded picture's Slack file id."""
        try:
            built = subprocess.run(
                self._ajuste("finetune", "dataset", "build"), capture_output=True, text=True
            )
            if built.returncode != 0:
                return f"{TITLE} failed: {_error(built.stderr)}", None
            command = self._ajuste(
                "finetune", "run", "--promote-if-better", "--progress", "json", *run_args
            )
            with subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            ) as child:
                assert child.stdout is not None and child.stderr is not None
                outcome: dict[str, Any] | None = None
                for line in child.stdout:
                    event = _parse(line)
                    if event.get("stage") == "done":
                        outcome = event
                    elif event:
                        progress.update(f"{TITLE}: {describe(event)}")
                errors = child.stderr.read()
            if child.returncode != 0 or outcome is None:
                return f"{TITLE} failed: {_error(errors)}", None
        except OSError as error:
            return f"{TITLE} could not start: {error}", None
        text = report(outcome)
        if not outcome.get("picture"):
            return (
                text + f"\n:frame_with_picture: {outcome.get('picture_note') or 'no picture'}.",
                None,
            )
        file_id, note = upload_picture(client, Path(outcome["picture"]), progress)
        return text + f"\n:frame_with_picture: {note}", file_id


def upload_picture(
    client: WebClient, picture: Path, progress: ProgressMessage
) -> tuple[str | None, str]:
    """Upload the PNG into the progress message's thread; its file id and a line saying so."""
    try:
        uploaded = client.files_upload_v2(
            channel=progress.channel if progress.ts else None,
            thread_ts=progress.ts,
            file=str(picture),
            filename=picture.name,
            title="Fine-tune: loss and scores",
            alt_txt="Training loss by step, and held-out scores before and after",
        )
    except (SlackApiError, OSError) as error:
        reason = error.response.get("error") if isinstance(error, SlackApiError) else error
        log.warning("could not upload the fine-tune picture: %s", reason)
        return None, f"the loss and score picture could not be uploaded ({reason})."
    file = uploaded.get("file") or {}
    link = file.get("permalink")
    shown = f"<{link}|loss and scores>" if link else "the loss and scores"
    return file.get("id"), f"Picture: {shown}, below and on the Home tab."


def picture_blocks(text: str, file_id: str | None) -> list[dict[str, Any]]:
    """The report as a section, with the uploaded picture under it when there is one."""
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}
    ]
    if file_id:
        blocks.append(
            {
                "type": "image",
                "slack_file": {"id": file_id},
                "alt_text": "Training loss by step, and held-out scores before and after",
            }
        )
    return blocks


def describe(event: dict[str, Any]) -> str:
    stage = event.get("stage")
    if stage == "train":
        return (
            f"training, step {event['step']}/{event['steps']}, loss {event['loss']:.3f}, "
            f"about {event['eta']:.0f} s left…"
        )
    if stage == "eval":
        return f"evaluating {event['model']}, {event['done']}/{event['total']}…"
    if stage == "export":
        return "merging, converting to GGUF and quantizing…"
    return f"loading {event.get('base', 'the base model')}…"


def report(outcome: dict[str, Any]) -> str:
    """The eval report: before and after on the held-out set, what was registered, the gate."""
    before = outcome["before"]
    lines = [
        f"{TITLE} done (train loss {outcome['train_loss']:.3f}). Held-out set, served model first:",
        f"• current: contains {before['eval_score']:.2f}, loss {before['eval_loss']:.3f}",
    ]
    for version in outcome["versions"]:
        metrics = version["metrics"]
        lines.append(
            f"• v{version['version']} {version['name']}: contains {metrics['eval_score']:.2f}, "
            f"loss {metrics['eval_loss']:.3f}"
        )
    lines.append(outcome["gate"].capitalize() + ".")
    return "\n".join(lines)


def _parse(line: str) -> dict[str, Any]:
    try:
        event = json.loads(line)
    except ValueError:
        return {}
    return event if isinstance(event, dict) else {}


def _error(stderr: str) -> str:
    """The CLI's one-line error (`ajuste: …`), else the last line it wrote."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("ajuste: "):
            return line.removeprefix("ajuste: ")
    return lines[-1] if lines else "it stopped without saying why; see the bot's logs"
