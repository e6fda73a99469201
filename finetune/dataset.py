"""The fine-tune dataset: curated chat examples and 👍/👎 feedback → train/eval/rejected JSONL.

`build_dataset` validates every input line (problems are reported as `FILE:LINE: reason`),
turns votes into examples or preference pairs, dedupes, splits with a seed and writes the
folder atomically with a manifest whose `sha256` identifies the training data.
"""

import codecs
import hashlib
import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from retrieval.context import SYSTEM_PROMPT, Passage, grounded_messages
from retrieval.errors import AjusteError

Message = dict[str, str]
Example = list[Message]
MANIFEST = "manifest.json"
_ROLES = ("system", "user", "assistant")
_SHOWN = 20
_BUILD = "run `ajuste finetune dataset build`"


class DatasetError(AjusteError):
    """Fine-tune data that is missing, malformed or not built yet."""


@dataclass(frozen=True)
class Feedback:
    """One person's vote on one bot answer, as the bot's store hands it over."""

    answer_id: str
    question: str
    answer: str
    vote: int  # +1 or -1
    user: str
    at: float  # Unix time of the vote
    # the numbered sources the model read ({"n", "title", "text", …}); older answers have none
    sources: Sequence[dict[str, object]] = ()


@dataclass
class DatasetSummary:
    """What a build produced, for the CLI to print and the trainer to record."""

    out: Path
    sha256: str
    curated: int = 0
    feedback_approved: int = 0
    feedback_rejected: int = 0
    ties: int = 0
    duplicates: int = 0
    train: int = 0
    eval: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        """Bad lines and inputs left out because of --skip-bad."""
        return len(self.problems)

    def lines(self) -> list[str]:
        """A short human summary, one line per fact, so the CLI can print it as is."""
        lines = [
            f"Dataset written to {self.out} (sha256 {self.sha256[:12]})",
            f"  {self.train} train and {self.eval} eval examples, "
            f"{self.feedback_rejected} rejected answers kept for preference tuning",
            f"  from {self.curated} curated examples and {self.feedback_approved} 👍 answers; "
            f"{self.duplicates} duplicates removed, {self.ties} tied votes left out",
        ]
        if self.problems:
            lines.append(f"  {self.skipped} bad lines skipped:")
            lines += [f"    {problem}" for problem in _shown(self.problems)]
        return lines

    def __str__(self) -> str:
        return "\n".join(self.lines())


class _Bad(Exception):
    """One line's reason for being rejected."""


def _shown(problems: list[str]) -> list[str]:
    extra = len(problems) - _SHOWN
    return problems[:_SHOWN] + ([f"… and {extra} more"] if extra > 0 else [])


def _report(problems: list[str], hint: str) -> DatasetError:
    listed = "\n".join(f"  {problem}" for problem in _shown(problems))
    return DatasetError(f"{len(problems)} problem(s) in the fine-tune data: {hint}\n{listed}")


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise _Bad(f"{what}: content must be a string")
    if not value.strip():
        raise _Bad(f"{what}: empty content")
    return value


def _example(record: object) -> Example:
    """Validate one parsed line of either shape and return it as chat messages."""
    if not isinstance(record, dict) or not ({"messages", "question", "answer"} & set(record)):
        raise _Bad('expected an object with "messages", or "question" and "answer"')
    allowed = {"messages"} if "messages" in record else {"question", "answer", "system", "sources"}
    if unknown := sorted(set(record) - allowed):
        raise _Bad(f"unknown key(s) {', '.join(unknown)} (expected {', '.join(sorted(allowed))})")
    if "messages" not in record:
        question = _text(record.get("question"), '"question"')
        answer = _turn("assistant", _text(record.get("answer"), '"answer"'))
        if "sources" in record:
            system = _text(record.get("system", SYSTEM_PROMPT), '"system"')
            passages = _curated_passages(record["sources"])
            return [*grounded_messages(system, passages, [], question), answer]
        example = (
            [_turn("system", _text(record["system"], '"system"'))] if "system" in record else []
        )
        example.append(_turn("user", question))
        return [*example, answer]
    messages = record["messages"]
    if not isinstance(messages, list) or not messages:
        raise _Bad('"messages" must be a non-empty list')
    example = []
    for number, message in enumerate(messages, 1):
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            raise _Bad(f'message {number} must be an object with just "role" and "content"')
        role = message["role"]
        if role not in _ROLES:
            raise _Bad(f"message {number}: unknown role {role!r} (use system, user or assistant)")
        if role == "system" and number > 1:
            raise _Bad(f"message {number}: a system message may only come first")
        example.append(_turn(role, _text(message["content"], f"message {number}")))
    if not any(message["role"] == "user" for message in example):
        raise _Bad("no user message")
    if example[-1]["role"] != "assistant":
        raise _Bad("does not end with an assistant message")
    return example


def _curated_passages(sources: object) -> list[Passage]:
    """`"sources": [{"title": …, "text": …}, …]`, numbered [1], [2], … in that order."""
    if not isinstance(sources, list) or not sources:
        raise _Bad('"sources" must be a non-empty list of {"title", "text"} objects')
    passages = []
    for number, source in enumerate(sources, 1):
        if not isinstance(source, dict) or not {"title", "text"} <= set(source):
            raise _Bad(f'source {number} must be an object with "title" and "text"')
        title = _text(source["title"], f"source {number} title")
        passages.append(Passage(number, title, _text(source["text"], f"source {number} text")))
    return passages


def feedback_passages(row: Feedback) -> list[Passage]:
    """The sources a 👍 answer was given, as numbered passages; none for older records."""
    passages = []
    for source in row.sources:
        n, title, text = source.get("n"), source.get("title"), source.get("text")
        if isinstance(n, int) and isinstance(title, str) and isinstance(text, str) and text:
            passages.append(Passage(n, title, text))
    return passages


def _feedback_prompt(row: Feedback, system: str | None) -> Example:
    """The prompt as served: numbered sources and the question, or the bare question."""
    passages = feedback_passages(row)
    if passages:
        return grounded_messages(system or SYSTEM_PROMPT, passages, [], row.question)
    return _with_system([_turn("user", row.question)], system)


def _read(path: Path) -> tuple[list[Example], list[str], str | None]:
    """Examples, `FILE:LINE: reason` problems and the sha256 of one JSONL file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], [f"{path}: file not found"], None
    except OSError as error:
        return [], [f"{path}: cannot read ({error.strerror or error})"], None
    examples: list[Example] = []
    problems: list[str] = []
    for number, raw in enumerate(data.split(b"\n"), 1):
        try:
            text = raw.removeprefix(codecs.BOM_UTF8 if number == 1 else b"").decode("utf-8")
        except UnicodeDecodeError:
            problems.append(f"{path}:{number}: not UTF-8 text")
            continue
        if not text.strip():
            continue
        try:
            examples.append(_example(json.loads(text)))
        except json.JSONDecodeError as error:
            problems.append(f"{path}:{number}: invalid JSON ({error.msg}, column {error.colno})")
        except _Bad as error:
            problems.append(f"{path}:{number}: {error}")
    return examples, problems, hashlib.sha256(data).hexdigest()


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def _key(example: Example) -> tuple[tuple[str, str], ...]:
    return tuple((message["role"], _norm(message["content"])) for message in example)


def _turn(role: str, content: str) -> Message:
    return {"role": role, "content": content}


def _with_system(example: Example, system: str | None) -> Example:
    if system and example[0]["role"] != "system":
        return [_turn("system", system), *example]
    return example


def _first_question(example: Example) -> str:
    return next(_norm(m["content"]) for m in example if m["role"] == "user")


def _tally(feedback: Sequence[Feedback]) -> tuple[list[tuple[Feedback, int]], list[str]]:
    """Per answer (oldest first): one row and its score, counting each voter's latest vote."""
    latest: dict[tuple[str, str], Feedback] = {}
    problems: list[str] = []
    for row in feedback:
        if row.vote not in (1, -1):
            problems.append(f"feedback {row.answer_id}: vote must be +1 or -1, not {row.vote}")
        elif not row.question.strip() or not row.answer.strip():
            problems.append(f"feedback {row.answer_id}: empty question or answer")
        elif (voter := (row.answer_id, row.user)) not in latest or row.at >= latest[voter].at:
            latest[voter] = row
    answers: dict[str, list[Feedback]] = {}
    for row in latest.values():
        answers.setdefault(row.answer_id, []).append(row)
    ordered = sorted(answers.values(), key=lambda rs: (min(r.at for r in rs), rs[0].answer_id))
    return [(rows[0], sum(r.vote for r in rows)) for rows in ordered], problems


def _split(examples: list[Example], fraction: float, seed: int) -> tuple[list[Example], ...]:
    """Seeded split that keeps examples sharing a first question on one side when it can."""
    rng = random.Random(seed)
    wanted = min(len(examples) - 1, max(1, round(len(examples) * fraction)))
    groups: dict[str, list[Example]] = {}
    for example in examples:
        groups.setdefault(_first_question(example), []).append(example)
    order = list(groups.values())
    rng.shuffle(order)
    evaluation: list[Example] = []
    for group in order:
        if len(evaluation) + len(group) <= wanted:
            evaluation += group
    if not evaluation:  # every group is bigger than the eval share: split one
        evaluation = [example for group in order for example in group][:wanted]
    chosen = {id(example) for example in evaluation}
    train = [example for example in examples if id(example) not in chosen]
    rng.shuffle(train)
    return train, evaluation


def jsonl(records: Sequence[object]) -> bytes:
    """One JSON object a line, UTF-8, as every dataset file is written."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def _replace(out: Path, write: Callable[[Path], None]) -> None:
    """Write into a temporary sibling folder, then swap it in, so `out` is never half-built."""
    if out.exists() and not (out / MANIFEST).is_file() and (out.is_file() or any(out.iterdir())):
        raise DatasetError(f"{out} exists and is not a dataset: choose another output folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    old = temporary.with_suffix(".old")
    try:
        write(temporary)
        if out.exists():
            os.rename(out, old)
        try:
            os.rename(temporary, out)
        except OSError:
            if old.exists():
                os.rename(old, out)
            raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def build_dataset(
    curated: Sequence[Path],
    feedback: Sequence[Feedback],
    out: Path,
    *,
    system: str | None = None,
    eval_fraction: float = 0.1,
    seed: int = 42,
    skip_bad: bool = False,
) -> DatasetSummary:
    """Validate, merge, dedupe and split the inputs into a fine-tune dataset folder at `out`."""
    if not 0 < eval_fraction < 1:
        raise DatasetError(f"The eval fraction must be between 0 and 1, not {eval_fraction}")
    problems: list[str] = []
    inputs: list[dict[str, str | None]] = []
    examples: list[Example] = []
    for path in curated:
        found, bad, digest = _read(path)
        examples += [_with_system(example, system) for example in found]
        problems += bad
        inputs.append({"path": str(path), "sha256": digest})
    summary = DatasetSummary(out=out, sha256="", curated=len(examples))
    tally, bad = _tally(feedback)
    problems += bad
    refused: list[Feedback] = []
    approved: dict[str, str] = {}  # question → an approved answer, for preference pairs
    for row, score in tally:
        if score > 0:
            examples.append([*_feedback_prompt(row, system), _turn("assistant", row.answer)])
            approved.setdefault(_norm(row.question), row.answer)
            summary.feedback_approved += 1
        elif score < 0:
            refused.append(row)
        else:
            summary.ties += 1
    if problems and not skip_bad:
        raise _report(problems, "fix these lines, or pass --skip-bad to leave them out")
    summary.problems = problems
    unique: dict[tuple[tuple[str, str], ...], Example] = {}
    for example in examples:
        unique.setdefault(_key(example), example)
    summary.duplicates = len(examples) - len(unique)
    if not unique:
        raise DatasetError(
            "No training examples: add Q/A lines to a curated JSONL file, "
            "or have the team 👍 good answers in Slack, then build again"
        )
    for example in unique.values():
        if [m["role"] for m in example if m["role"] != "system"] == ["user", "assistant"]:
            approved.setdefault(_first_question(example), example[-1]["content"])
    rejected = []
    for row in refused:
        chosen = approved.get(_norm(row.question))
        if chosen is not None and _norm(chosen) == _norm(row.answer):
            chosen = None
        prompt = _feedback_prompt(row, system)
        rejected.append({"prompt": prompt, "rejected": row.answer, "chosen": chosen})
    summary.feedback_rejected = len(rejected)
    train, evaluation = _split(list(unique.values()), eval_fraction, seed)
    summary.train, summary.eval = len(train), len(evaluation)
    files = {
        "train.jsonl": jsonl([{"messages": example} for example in train]),
        "eval.jsonl": jsonl([{"messages": example} for example in evaluation]),
        "rejected.jsonl": jsonl(rejected),
    }
    hashes = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    summary.sha256 = hashlib.sha256(
        f"{hashes['train.jsonl']}\n{hashes['eval.jsonl']}\n".encode()
    ).hexdigest()
    counts = {k: v for k, v in asdict(summary).items() if isinstance(v, int)}
    manifest = {
        "counts": counts | {"skipped": summary.skipped},
        "inputs": inputs,
        "feedback": {"answers": len(tally), "votes": len(feedback)},
        "files": hashes,
        "seed": seed,
        "eval_fraction": eval_fraction,
        "system": system,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "sha256": summary.sha256,  # of train.jsonl's and eval.jsonl's hashes: the data's identity
        "problems": problems,
    }

    def write(folder: Path) -> None:
        for name, data in files.items():
            (folder / name).write_bytes(data)
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")

    _replace(out, write)
    return summary


def read_examples(path: Path) -> list[Example]:
    """Read a built train/eval file back for the trainer and evaluator, validated as built."""
    examples, problems, _ = _read(path)
    if problems:
        raise _report(problems, f"{_BUILD} again to rebuild the dataset")
    return examples


def load_manifest(folder: Path) -> dict[str, object]:
    """The manifest of a built dataset folder, with a clear error when there is none."""
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(
            f"{folder} is not a built dataset (no {MANIFEST}): {_BUILD} first"
        ) from None
    except (OSError, ValueError) as error:
        raise DatasetError(f"{path} is unreadable ({error}): {_BUILD} again") from error
    if not isinstance(manifest, dict) or "sha256" not in manifest:
        raise DatasetError(f"{path} is not a dataset manifest: {_BUILD} again")
    return manifest
