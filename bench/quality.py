"""The quality experiments behind docs/quality.md: each retrieval setting's effect, measured.

Every variant indexes the sample handbook into a fresh data dir with one setting changed and
runs the handbook question set. `--answers` also runs the answer evaluation for the number of
chunks given to the model (slow: the model answers every question).
"""

import argparse
import sys
from pathlib import Path
from typing import Any

from bench.common import KNOWLEDGE, REPO, cleanup, scratch_settings
from bot.evaluation import evaluate_answers
from bot.services import Services
from retrieval.evaluation import evaluate_retrieval, load_qa

QA = REPO / "examples" / "eval" / "handbook.jsonl"

RETRIEVAL_VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("defaults", {}),
    ("chunks of 128 tokens, overlap 16", {"chunk_tokens": 128, "chunk_overlap": 16}),
    ("chunks of 254 tokens, overlap 48", {"chunk_tokens": 254, "chunk_overlap": 48}),
    ("no overlap", {"chunk_overlap": 0}),
    ("no heading context", {"heading_context": False}),
    ("dense weight 1 (equal fusion)", {"dense_weight": 1.0}),
    ("dense weight 3", {"dense_weight": 3.0}),
    ("short queries (≤3 words) weigh BM25 ×2", {"short_query_words": 3}),
]


def retrieval_rows(models_dir: Path) -> list[tuple[str, dict[str, float], dict[str, float]]]:
    items = load_qa(QA)
    rows = []
    for label, changes in RETRIEVAL_VARIANTS:
        settings, root = scratch_settings(models_dir)
        settings = settings.model_copy(
            update={"retrieval": settings.retrieval.model_copy(update=changes)}
        )
        try:
            with Services(settings, holder="ajuste bench") as services:
                services.index([KNOWLEDGE])
                retriever = services.retriever
                overall = evaluate_retrieval(retriever, items).as_dict()
                by_kind = {
                    kind: evaluate_retrieval(
                        retriever, [i for i in items if i.kind == kind]
                    ).as_dict()["recall@1"]
                    for kind in ("paraphrase", "keyword")
                }
        finally:
            cleanup(root)
        rows.append((label, overall, by_kind))
        print(f"  {label}: {overall}", file=sys.stderr, flush=True)
    return rows


def answer_rows(models_dir: Path, top_ks: list[int]) -> list[tuple[int, dict[str, Any]]]:
    items = load_qa(QA)
    rows = []
    for top_k in top_ks:
        settings, root = scratch_settings(models_dir)
        settings = settings.model_copy(
            update={"retrieval": settings.retrieval.model_copy(update={"top_k": top_k})}
        )
        try:
            with Services(settings, holder="ajuste bench") as services:
                services.index([KNOWLEDGE])
                scores = evaluate_answers(services.answers, items).as_dict()
        finally:
            cleanup(root)
        rows.append((top_k, scores))
        print(f"  top_k {top_k}: {scores}", file=sys.stderr, flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__)
    parser.add_argument("--models-dir", type=Path, default=REPO / "data" / "models")
    parser.add_argument("--answers", type=int, nargs="*", metavar="TOP_K")
    args = parser.parse_args()
    print("| variant | recall@1 | recall@5 | MRR@10 | nDCG@10 | paraphrase R@1 | keyword R@1 |")
    print("|---|---|---|---|---|---|---|")
    for label, overall, kinds in retrieval_rows(args.models_dir):
        print(
            f"| {label} | {overall['recall@1']} | {overall['recall@5']} | {overall['mrr@10']} "
            f"| {overall['ndcg@10']} | {kinds['paraphrase']} | {kinds['keyword']} |"
        )
    if args.answers:
        print(
            "\n| chunks to the model | contains | F1 | citation precision | abstention "
            "| false abstention | first token p50 | total p50 |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for top_k, s in answer_rows(args.models_dir, args.answers):
            print(
                f"| {top_k} | {s['contains']} | {s['f1']} | {s['citation_precision']} "
                f"| {s['abstention_correct']} | {s['false_abstention']} "
                f"| {s['first_token_p50']} s | {s['total_p50']} s |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
