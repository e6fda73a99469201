"""The App Home tab as Block Kit, built by plain functions from plain records.

Slack takes at most 100 blocks per view and 3,000 characters per text: long lists end with
"… and N more", long texts with "…".
"""

import time
from collections.abc import Callable, Sequence
from typing import Any

from bot.slack.mrkdwn import to_mrkdwn
from bot.slack.review import CORRECT, DISMISS
from bot.slack.state import AnswerRecord, FinetuneRun
from finetune.registry import ModelVersion
from retrieval.runs import SourceRun

Block = dict[str, Any]
Link = Callable[[AnswerRecord], str | None]
MAX_BLOCKS, MAX_TEXT = 100, 3000
REINDEX, FINETUNE = "ajuste_home_reindex", "ajuste_home_finetune"
USE_VERSION, ROLLBACK = "ajuste_home_use_version", "ajuste_home_rollback"
QUEUE_SHOWN, FINETUNES_SHOWN, QUESTIONS_SHOWN = 10, 5, 10


def clip(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plain(text: str) -> str:
    """User text shown as is: Slack's three control characters escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text)}}


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": clip(text, 150)}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text)}]}


def button(text: str, action_id: str, value: str = "", style: str | None = None) -> Block:
    made: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "action_id": action_id,
        "value": value or action_id,
    }
    return made | ({"style": style} if style else {})


def when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at))


def more(total: int, shown: int) -> list[Block]:
    return [context(f"… and {total - shown} more")] if total > shown else []


def fit(blocks: list[Block]) -> list[Block]:
    """At most Slack's 100 blocks, the last one saying how many were left out."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    return blocks[: MAX_BLOCKS - 1] + more(len(blocks) - MAX_BLOCKS + 1, 0)


def user_blocks(help_text: str, asked: Sequence[AnswerRecord], link: Link) -> list[Block]:
    """What everyone sees: what Ajuste does, how to ask, and their own recent questions."""
    lines = []
    for record in asked[:QUESTIONS_SHOWN]:
        question = plain(clip(record.question, 120))
        url = link(record)
        shown = f"<{url}|{question}>" if url else question
        lines.append(f"• {shown}  _({when(record.at)})_")
    if not lines:
        lines.append("Nothing yet: mention me in a channel, or send me a message.")
    return [
        header("Ajuste"),
        section(help_text),
        header("Your recent questions"),
        section("\n".join(lines)),
    ]


def model_blocks(
    served: str, active: ModelVersion | None, versions: Sequence[ModelVersion]
) -> list[Block]:
    """The served model and its eval scores; every version to switch to; roll back."""
    lines = [f"*Serving:* {served}"]
    for version in reversed(versions[-10:]):
        mark = "▶" if active and active.version == version.version else "•"
        lines.append(f"{mark} v{version.version} {plain(version.name)}: {scores(version)}")
    blocks = [header("Model"), section("\n".join(lines))]
    elements: list[Block] = []
    if versions:
        elements.append(
            {
                "type": "static_select",
                "action_id": USE_VERSION,
                "placeholder": {"type": "plain_text", "text": "Use a version"},
                "options": [
                    {
                        "text": {"type": "plain_text", "text": clip(f"v{v.version} {v.name}", 75)},
                        "value": str(v.version),
                    }
                    for v in reversed(versions[-100:])
                ],
            }
        )
    if active is not None:
        elements.append(button("Roll back", ROLLBACK))
    return blocks + ([{"type": "actions", "elements": elements}] if elements else [])


def scores(version: ModelVersion) -> str:
    metrics = version.metrics
    if "eval_score" not in metrics:
        return f"{version.quantization}, not evaluated"
    return (
        f"{version.quantization}, contains {metrics['eval_score']:.2f}, "
        f"loss {metrics.get('eval_loss', float('nan')):.3f} _({version.created})_"
    )


def index_blocks(
    documents: int, chunks: int, runs: dict[str, SourceRun], next_runs: dict[str, str]
) -> list[Block]:
    """Index size, each source's last run (counts or error) and next scheduled run."""
    lines = [f"*{documents}* documents, *{chunks}* chunks"]
    for name in sorted(set(runs) | set(next_runs)):
        run = runs.get(name)
        line = f"*{plain(name)}:* {plain(run.summary()) if run else 'never run'}"
        if name in next_runs:
            line += f"; next run {next_runs[name]}"
        lines.append(line)
    return [
        header("Index"),
        section("\n".join(lines)),
        {"type": "actions", "elements": [button("Re-index every source", REINDEX)]},
    ]


def queue_blocks(queue: Sequence[AnswerRecord], link: Link) -> list[Block]:
    """Answers rated 👎 more than 👍, newest first, each with Correct and Dismiss."""
    blocks = [header(f"Review queue ({len(queue)})")]
    if not queue:
        return [*blocks, context("Nothing to review: no answer has more 👎 than 👍.")]
    for record in queue[:QUEUE_SHOWN]:
        text = (
            f"*Q:* {plain(clip(record.question, 300))}\n*A:* {to_mrkdwn(clip(record.answer, 900))}"
        )
        titles = [f"[{s.get('n')}] {plain(str(s.get('title')))}" for s in record.sources]
        url = link(record)
        facts = [f"👎 {record.down} · 👍 {record.up}", when(record.at)]
        facts.append(f"<{url}|thread>" if url else "asked privately")
        facts.append("sources: " + (", ".join(titles) if titles else "none"))
        blocks += [
            section(text),
            context(" · ".join(facts)),
            {
                "type": "actions",
                "block_id": f"review_{record.answer_id}",
                "elements": [
                    button("Correct", CORRECT, record.answer_id, "primary"),
                    button("Dismiss", DISMISS, record.answer_id),
                ],
            },
        ]
    return blocks + more(len(queue), QUEUE_SHOWN)


def finetune_blocks(runs: Sequence[FinetuneRun], running: bool) -> list[Block]:
    """Recent fine-tunes from Slack, each report with its loss and score picture."""
    action = (
        context("A fine-tune is running: its progress is in the Messages tab or its channel.")
        if running
        else {"type": "actions", "elements": [button("Fine-tune now", FINETUNE, style="primary")]}
    )
    blocks = [header("Fine-tunes"), action]
    if not runs:
        blocks.append(context("No fine-tune run from Slack yet."))
    for run in runs[:FINETUNES_SHOWN]:
        blocks += [context(f"{when(run.at)}, by <@{run.user}>"), section(run.report)]
        if run.file_id:
            blocks.append(
                {
                    "type": "image",
                    "slack_file": {"id": run.file_id},
                    "alt_text": "Training loss by step, and held-out scores before and after",
                }
            )
    return blocks
