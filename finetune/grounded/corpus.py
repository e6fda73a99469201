"""The hand-written training questions: each names its document, the passage that answers
it, the short reference inside that passage and the ideal reply, with [S] for the citation.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

from finetune.base import FinetuneError

CITE = "[S]"


@dataclass(frozen=True)
class Answerable:
    question: str
    support: str  # verbatim passage of the document
    reference: str  # the shortest span that answers
    reply: str  # the ideal answer, with CITE where the citation goes


@dataclass(frozen=True)
class Question:
    doc: str  # file name under the documents folder
    question: str
    kind: str
    answer: Answerable | None  # None: the document does not answer it
    follow_up: Answerable | None = None
    line: str = ""  # FILE:LINE, for messages


def plain(text: str) -> str:
    """Text as compared across markup and line breaks: no emphasis marks, single spaces."""
    return " ".join(re.sub(r"[*_`]", "", text).split()).casefold()


def _answerable(record: dict[str, object], where: str, document: str) -> Answerable:
    fields = {}
    for key in ("question", "support", "reference", "reply"):
        value = record.get(key)
        if not isinstance(value, str) or not value.strip():
            raise FinetuneError(f"{where}: `{key}` must be a non-empty string")
        fields[key] = value.strip()
    if plain(fields["support"]) not in plain(document):
        raise FinetuneError(f"{where}: `support` is not a passage of the document")
    if plain(fields["reference"]) not in plain(fields["reply"]):
        raise FinetuneError(f"{where}: `reply` does not contain the reference")
    if CITE not in fields["reply"]:
        raise FinetuneError(f"{where}: `reply` has no {CITE} citation marker")
    return Answerable(**fields)


def load_questions(questions: Path, documents: Path) -> list[Question]:
    """Every question file, validated against its document; a bad line stops the build."""
    found: list[Question] = []
    texts: dict[str, str] = {}
    for path in sorted(questions.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise FinetuneError(f"{where}: invalid JSON ({error.msg})") from None
            doc = str(record.get("doc", ""))
            if doc not in texts:
                try:
                    texts[doc] = (documents / doc).read_text(encoding="utf-8")
                except OSError:
                    raise FinetuneError(f"{where}: no document {doc!r} in {documents}") from None
            kind = str(record.get("kind") or "lookup")
            if kind == "unanswerable":
                found.append(Question(doc, str(record["question"]), kind, None, line=where))
                continue
            answer = _answerable(record, where, texts[doc])
            follow = record.get("follow_up")
            follow_up = (
                _answerable(follow, f"{where} follow_up", texts[doc])
                if isinstance(follow, dict)
                else None
            )
            found.append(Question(doc, answer.question, kind, answer, follow_up, where))
    if not found:
        raise FinetuneError(f"No questions in {questions}/*.jsonl")
    return found
