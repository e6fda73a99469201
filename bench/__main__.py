"""`make bench`: every benchmark, printed as a table of ratios against the bare libraries."""

import argparse
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import finetune, generation, indexing, search
from bench.common import KNOWLEDGE, REPO, Row, cleanup, peak_rss_mb, scratch_settings
from bot.evaluation import evaluate_answers
from bot.models import pull_defaults
from bot.services import Services
from retrieval.evaluation import evaluate_retrieval, load_qa


def table(rows: list[Row]) -> str:
    lines = [
        "| benchmark | Ajuste | bare library | ratio | target | |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        mark = "ok" if row.ok else "MISSED"
        lines.append(
            f"| {row.name} | {row.ours} | {row.bare} | {row.ratio:.3f} | {row.target} | {mark} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--models-dir", type=Path, default=REPO / "data" / "models")
    parser.add_argument(
        "--only",
        choices=["indexing", "generation", "search", "finetune", "quality"],
        action="append",
    )
    parser.add_argument("--write", type=Path, help="also write the table to this Markdown file")
    args = parser.parse_args()
    pull_defaults(args.models_dir)
    chosen = args.only or ["indexing", "generation", "search", "finetune", "quality"]
    modules = {
        "indexing": indexing,
        "generation": generation,
        "search": search,
        "finetune": finetune,
    }
    rows: list[Row] = []
    for name in chosen:
        if name in modules:
            print(f"running {name} …", file=sys.stderr, flush=True)
            rows += modules[name].run(args.models_dir)
    quality_text = ""
    if "quality" in chosen:
        print("running the quality evaluation …", file=sys.stderr, flush=True)
        quality_text = "\n\n" + quality(args.models_dir)
    machine = f"{platform.machine()}, {platform.python_version()}, {_cores()} cores"
    text = (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine}; "
        f"peak RSS {peak_rss_mb():.0f} MB.\n\n{table(rows)}{quality_text}\n"
    )
    print(text)
    if args.write:
        args.write.write_text(f"# Performance\n\nRun `make bench` to refresh.\n\n{text}")
    return 0 if all(row.ok for row in rows) else 1


def quality(models_dir: Path) -> str:
    """Retrieval and answer quality on the sample handbook with the default settings."""
    items = load_qa(REPO / "examples" / "eval" / "handbook.jsonl")
    settings, root = scratch_settings(models_dir)
    try:
        with Services(settings, holder="ajuste bench") as services:
            services.index([KNOWLEDGE])
            retrieval = {
                mode: evaluate_retrieval(services.retriever, items, mode).as_dict()
                for mode in ("hybrid", "dense", "sparse")
            }
            answers = evaluate_answers(services.answers, items).as_dict()
    finally:
        cleanup(root)
    lines = [
        "Quality on the sample handbook (examples/eval/handbook.jsonl):",
        "",
        "| ranking | recall@1 | recall@5 | recall@10 | MRR@10 | nDCG@10 |",
        "|---|---|---|---|---|---|",
    ]
    for mode, r in retrieval.items():
        lines.append(
            f"| {mode} | {r['recall@1']} | {r['recall@5']} | {r['recall@10']} "
            f"| {r['mrr@10']} | {r['ndcg@10']} |"
        )
    lines += [
        "",
        "| answers | contains | F1 | citation precision | abstention | false abstention "
        "| first token p50/p95 | total p50/p95 |",
        "|---|---|---|---|---|---|---|---|",
        f"| {answers['questions']} questions | {answers['contains']} | {answers['f1']} "
        f"| {answers['citation_precision']} | {answers['abstention_correct']} "
        f"| {answers['false_abstention']} | {answers['first_token_p50']} / "
        f"{answers['first_token_p95']} s | {answers['total_p50']} / {answers['total_p95']} s |",
    ]
    return "\n".join(lines)


def _cores() -> int:
    import os

    return os.cpu_count() or 1


if __name__ == "__main__":
    sys.exit(main())
