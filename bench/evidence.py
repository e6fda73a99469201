"""The quotes under the answers and the disputed-figure flag, on three question sets.

`python -m bench.evidence` answers every question of the handbook, unseen and Spanish sets
once with the default settings and, on the answerable questions whose reference was inside
the prompt, counts how often the two quotes hold the reference, and how the flag "the sentence
closest to the question doesn't say …" falls on right and on wrong answers. It reproduces the
kept rows of docs/quality.md's "Evidence, round 3". The Spanish set (`examples/es/`) is kept
out of all training; the English model answers it poorly, but the picking can be judged there.
"""

import argparse
import sys
from collections import Counter
from pathlib import Path

from bench.common import REPO
from bench.quality import EVERY_SET, evaluate_set
from bot.engine.answer import Answer
from retrieval.evaluation import QaItem, contains


def count(models_dir: Path, name: str) -> Counter[str]:
    answered: list[tuple[QaItem, Answer]] = []
    evaluate_set(models_dir, name, on_answer=lambda item, answer: answered.append((item, answer)))
    counts: Counter[str] = Counter()
    for item, answer in answered:
        prompt = " ".join(source.text for source in answer.context)
        if not item.answerable or not item.answers or not contains(prompt, item.answers):
            continue
        counts["in context"] += 1
        quoted = " ".join(quote.text for quote in answer.evidence)
        counts["quotes hold it"] += int(contains(quoted, item.answers))
        if not answer.declines:
            verdict = "right" if contains(answer.text, item.answers) else "wrong"
            counts[verdict] += 1
            counts[f"{verdict}, flagged"] += bool(answer.disputed)
    return counts


def table(models_dir: Path, names: list[str]) -> str:
    lines = [
        "| set | reference in the prompt | quotes hold it | wrong answers flagged "
        "| right answers flagged | flagged answers that were wrong |",
        "|---|---|---|---|---|---|",
    ]
    for name in names:
        c = count(models_dir, name)
        flagged = c["wrong, flagged"] + c["right, flagged"]
        lines.append(
            f"| {name} | {c['in context']} | {c['quotes hold it'] / max(c['in context'], 1):.3f} "
            f"| {c['wrong, flagged']} of {c['wrong']} | {c['right, flagged']} of {c['right']} "
            f"| {c['wrong, flagged']} of {flagged} |"
        )
        print(lines[-1], file=sys.stderr, flush=True)
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.evidence", description=__doc__)
    parser.add_argument("--models-dir", type=Path, default=REPO / "data" / "models")
    parser.add_argument("--sets", nargs="+", choices=list(EVERY_SET), default=list(EVERY_SET))
    args = parser.parse_args()
    print(table(args.models_dir, args.sets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
