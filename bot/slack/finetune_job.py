"""`/ajuste finetune`: the fine-tune in its own process, never in the bot's answering path.

The job runs `ajuste finetune dataset build` (curated files and the 👍/👎 votes), then
`ajuste finetune run --promote-if-better --progress json`, and turns the JSON lines into
one channel message edited as it goes and the eval report at the end. A promoted version is
picked up by the running bot on its next question, like `ajuste model use`.
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

from bot.slack.progress import ProgressMessage

log = logging.getLogger(__name__)
TITLE = ":hammer_and_wrench: Fine-tune"


class FinetuneJob:
    """At most one fine-tune child process per bot; the CLI's lock guards across processes."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(
        self,
        client: WebClient,
        *,
        channel: str,
        private_reply: Callable[[str], None],
        run_args: tuple[str, ...] = (),
    ) -> bool:
        """Start the job unless one is running; progress goes to `channel`."""
        if self.running:
            return False
        progress = ProgressMessage(
            client,
            channel=channel,
            text=f"{TITLE}: building the dataset…",
            private_reply=private_reply,
        )
        self._thread = threading.Thread(
            target=self._run, args=(progress, run_args), name="finetune", daemon=True
        )
        self._thread.start()
        return True

    def _ajuste(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "bot.cli", "--data-dir", str(self.data_dir), *args]

    def _run(self, progress: ProgressMessage, run_args: tuple[str, ...]) -> None:
        try:
            built = subprocess.run(
                self._ajuste("finetune", "dataset", "build"), capture_output=True, text=True
            )
            if built.returncode != 0:
                progress.finish(f"{TITLE} failed: {_error(built.stderr)}")
                return
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
                progress.finish(f"{TITLE} failed: {_error(errors)}")
            else:
                progress.finish(report(outcome))
        except OSError as error:
            progress.finish(f"{TITLE} could not start: {error}")


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
