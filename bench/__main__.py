"""`make bench`: every benchmark, printed as a table of ratios against the bare libraries."""

import argparse
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import finetune, generation, indexing, quality, search
from bench.common import REPO, Row, peak_rss_mb
from bot.models import pull_defaults


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
    if "generation" in chosen:
        rows += generation.model_rows(args.models_dir)
    quality_text = ""
    if "quality" in chosen:
        print("running the quality evaluation …", file=sys.stderr, flush=True)
        text, quality_rows = quality.summary(args.models_dir)
        rows += quality_rows
        quality_text = "\n\n" + text
    machine = f"{platform.machine()}, {platform.python_version()}, {_cores()} cores"
    text = (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine}; "
        f"peak RSS {peak_rss_mb():.0f} MB.\n\n{table(rows)}{quality_text}\n"
    )
    print(text)
    if args.write:
        header = "Run `make bench` to refresh. Measurements on a lent GPU: [gpu.md](gpu.md).\n\n"
        args.write.write_text(f"# Performance\n\n{header}{text}{_run_apart(args.write)}")
    return 0 if all(row.ok for row in rows) else 1


def _run_apart(path: Path) -> str:
    """The file's own sections ("## …"), measured apart from `make bench`, kept as they are."""
    existing = path.read_text() if path.exists() else ""
    start = existing.find("\n## ")
    return existing[start:] if start >= 0 else ""


def _cores() -> int:
    import os

    return os.cpu_count() or 1


if __name__ == "__main__":
    sys.exit(main())
