"""Correcting a 👎 answer: the modal an admin fills in, and the curated example it becomes.

A correction is appended to `<data dir>/finetune/curated/corrections.jsonl` in the curated
short form with its sources (`{"question", "answer", "sources"}`), so the next
`ajuste finetune dataset build` trains it in the prompt shape the bot serves: the numbered
sources, then the question.
"""

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.slack.state import AnswerRecord
from retrieval.errors import AjusteError

CORRECT, DISMISS = "ajuste_review_correct", "ajuste_review_dismiss"
CORRECTION_VIEW = "ajuste_correction"
CORRECTIONS = "corrections.jsonl"
MAX_CORRECTION = 4000
_MAX_OPTIONS = 10  # Slack's limit for checkboxes
_writing = threading.Lock()


class CorrectionError(AjusteError):
    """A correction the modal refuses; the message says what to change."""


@dataclass(frozen=True)
class Correction:
    answer_id: str
    text: str
    picked: list[int]  # numbers of the sources that hold the answer; none: every source
    post_in_thread: bool


def usable_sources(record: AnswerRecord) -> list[dict[str, object]]:
    """The sources the model read that still have their text (older answers kept none)."""
    return [s for s in record.sources if isinstance(s.get("text"), str) and s["text"]]


def correction_modal(record: AnswerRecord) -> dict[str, Any]:
    """The modal: the question and the bot's answer, a box for the right one, its sources."""
    quoted = record.answer[:2500]
    blocks: list[dict[str, Any]] = [
        _text(f"*Question:* {_plain(record.question[:500])}"),
        _text(f"*Ajuste answered:*\n{_plain(quoted)}"),
        {
            "type": "input",
            "block_id": "correction",
            "label": {"type": "plain_text", "text": "The right answer"},
            "hint": {"type": "plain_text", "text": "Cite sources as [1], [2]."},
            "element": {"type": "plain_text_input", "action_id": "text", "multiline": True},
        },
    ]
    sources = usable_sources(record)[:_MAX_OPTIONS]
    if sources:
        blocks.append(
            {
                "type": "input",
                "block_id": "sources",
                "optional": True,
                "label": {"type": "plain_text", "text": "Sources that hold the answer"},
                "hint": {
                    "type": "plain_text",
                    "text": "The example keeps the ticked sources, numbered [1], [2]… in this "
                    "order; tick none to keep every source as the bot read them.",
                },
                "element": {
                    "type": "checkboxes",
                    "action_id": "picked",
                    "options": [
                        _option(f"[{s['n']}] {s.get('title', '')}", str(s["n"])) for s in sources
                    ],
                },
            }
        )
    if record.thread_ts:
        blocks.append(
            {
                "type": "input",
                "block_id": "post",
                "optional": True,
                "label": {"type": "plain_text", "text": "In the thread"},
                "element": {
                    "type": "checkboxes",
                    "action_id": "post",
                    "options": [_option("Also post the correction in the original thread", "yes")],
                },
            }
        )
    return {
        "type": "modal",
        "callback_id": CORRECTION_VIEW,
        "private_metadata": record.answer_id,
        "title": {"type": "plain_text", "text": "Correct the answer"},
        "submit": {"type": "plain_text", "text": "Save"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }


def read_correction(view: dict[str, Any]) -> Correction:
    """The submitted modal; CorrectionError for an empty or an over-long correction."""
    values = view.get("state", {}).get("values", {})
    text = ((values.get("correction", {}).get("text") or {}).get("value") or "").strip()
    if not text:
        raise CorrectionError("Write the right answer, or press Cancel.")
    if len(text) > MAX_CORRECTION:
        raise CorrectionError(
            f"The correction is {len(text):,} characters: keep it under {MAX_CORRECTION:,}."
        )
    picked = (values.get("sources", {}).get("picked") or {}).get("selected_options") or []
    posted = (values.get("post", {}).get("post") or {}).get("selected_options") or []
    return Correction(
        answer_id=str(view.get("private_metadata", "")),
        text=text,
        picked=[int(o["value"]) for o in picked if str(o.get("value", "")).isdigit()],
        post_in_thread=bool(posted),
    )


def curated_example(record: AnswerRecord, correction: Correction) -> dict[str, object]:
    """The corrected answer as a curated line, with the sources it stands on."""
    sources = usable_sources(record)
    if correction.picked:
        sources = [s for s in sources if s.get("n") in correction.picked] or sources
    example: dict[str, object] = {"question": record.question, "answer": correction.text}
    if sources:
        example["sources"] = [{"title": str(s.get("title")), "text": s["text"]} for s in sources]
    return example


def save_correction(curated: Path, example: dict[str, object]) -> Path:
    """Append the example to the corrections file of the curated folder."""
    path = curated / CORRECTIONS
    with _writing:
        curated.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(example, ensure_ascii=False) + "\n")
    return path


def thread_message(admin: str, text: str) -> str:
    return f":pencil2: *Correction* by <@{admin}>:\n{text}"


def _plain(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _text(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def _option(text: str, value: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": text[:75]}, "value": value}
