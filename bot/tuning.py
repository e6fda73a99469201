"""`ajuste finetune ...`: the bot's side of the fine-tune (its feedback, its served model).

The pipeline itself lives in `finetune/`; here we hand it the 👍/👎 votes from the bot's
state, the model being served now (what a new version must beat), and draw its progress
as a line that updates, or as JSON lines for the Slack job that runs this command.
"""

import argparse
import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bot.engine.llm import resolve_model_path
from bot.settings import Settings
from finetune.dataset import Feedback
from finetune.registry import ModelRegistry
from retrieval.errors import AjusteError

QUANTIZATIONS = ("Q8_0", "Q4_K_M")


def finetune_dir(settings: Settings) -> Path:
    return settings.data_dir / "finetune"


def served_model(settings: Settings) -> tuple[Path, int | None]:
    """The GGUF the bot serves now, and its registry version (None: not a registered one)."""
    active = ModelRegistry(settings.registry_dir).active()
    if active is not None and settings.llm.model_path is None:
        return Path(active.file), active.version
    return resolve_model_path(settings.llm, settings.models_dir), None


def feedback(settings: Settings) -> list[Feedback]:
    """Every 👍/👎 the bot recorded, wherever its state lives."""
    from bot.slack.state import BotState

    if settings.slack.state == "qdrant":
        from bot.slack.shared_state import QdrantBotState
        from retrieval.store import open_store

        store = open_store(settings.qdrant, settings.data_dir, holder="ajuste finetune")
        try:
            votes = QdrantBotState(store.state_client(), f"{store.collection}_bot").votes()
        finally:
            store.close()
    else:
        path = settings.data_dir / "bot.sqlite3"
        if not path.exists():
            return []
        state = BotState(path)
        votes = state.votes()
        state.close()
    return [
        Feedback(v.answer_id, v.question, v.answer, v.vote, v.user, v.at, tuple(v.sources))
        for v in votes
    ]


def cmd_dataset_build(settings: Settings, args: argparse.Namespace) -> int:
    from finetune.dataset import build_dataset

    default = finetune_dir(settings) / "curated"
    curated = _jsonl_files(args.curated or ([default] if default.is_dir() else []))
    votes = [] if args.no_feedback else feedback(settings)
    summary = build_dataset(
        curated,
        votes,
        args.out or finetune_dir(settings) / "dataset",
        system=args.system,
        eval_fraction=args.eval_fraction,
        seed=settings.finetune.seed,
        skip_bad=args.skip_bad,
    )
    print(summary)
    return 0


def cmd_finetune_run(settings: Settings, args: argparse.Namespace) -> int:
    from finetune.pipeline import run_finetune

    tuning = settings.finetune.model_copy(
        update={
            key: value
            for key, value in {
                "steps": args.steps,
                "lora_rank": args.rank,
                "learning_rate": args.learning_rate,
                "batch_size": args.batch_size,
            }.items()
            if value is not None
        }
    )
    current = served_model(settings)
    out = args.out or finetune_dir(settings) / "runs" / time.strftime("ft-%Y%m%d-%H%M%S")
    progress = JsonProgress() if args.progress == "json" else TextProgress()
    with finetune_lock(settings):
        try:
            outcome = run_finetune(
                tuning,
                base=args.base or current[0],
                dataset=args.data or finetune_dir(settings) / "dataset",
                out=out,
                current=current,
                registry=ModelRegistry(settings.registry_dir),
                quantizations=args.quantize,
                name=args.name,
                promote_if_better=args.promote_if_better,
                fresh=args.fresh,
                tools=settings.data_dir / "tools",
                converter=args.converter,
                on_event=progress,
            )
        except KeyboardInterrupt:
            print(f"\nInterrupted: resume with `ajuste finetune run --out {out}`.", file=sys.stderr)
            return 130
    if args.progress != "json":
        print(f"\nBefore: {outcome.before.line()}")
        for report in outcome.after.values():
            print(f"After:  {report.line()}")
        for version in outcome.versions:
            print(f"Registered v{version.version} {version.name} ({version.size / 1048576:.1f} MB)")
        print(outcome.gate.capitalize() + f". Report: {out / 'report.json'}")
        print(f"Picture: {outcome.picture}" if outcome.picture else outcome.picture_note)
    return 0


def cmd_finetune_eval(settings: Settings, args: argparse.Namespace) -> int:
    from finetune.dataset import read_examples
    from finetune.evaluate import evaluate_gguf

    version = (args.model or "").lower().lstrip("v")
    if args.model is None:
        path = served_model(settings)[0]
    elif version.isdigit():
        path = Path(ModelRegistry(settings.registry_dir).get(int(version)).file)
    else:
        path = Path(args.model)
    data = args.data or finetune_dir(settings) / "dataset"
    report = evaluate_gguf(path, read_examples(data / "eval.jsonl" if data.is_dir() else data))
    if args.json:
        print(json.dumps({"model": str(path), **report.metrics(), "answers": report.answers}))
    else:
        print(report.line())
    return 0


@contextmanager
def finetune_lock(settings: Settings) -> Iterator[None]:
    """One fine-tune at a time per data dir, whether started here or from Slack."""
    path = settings.data_dir / "locks" / "finetune.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise AjusteError(
                f"A fine-tune is already running ({handle.read().strip()}): wait for it."
            ) from None
        handle.truncate(0)
        handle.write(f"pid {os.getpid()}, since {time.strftime('%H:%M:%S')}")
        handle.flush()
        yield


class TextProgress:
    """One updating line on a terminal; a line every few steps in a log."""

    def __init__(self) -> None:
        self.live = sys.stderr.isatty()

    def __call__(self, event: dict[str, object]) -> None:
        stage = event["stage"]
        if stage == "train":
            step, steps = int(str(event["step"])), int(str(event["steps"]))
            line = (
                f"training: step {step}/{steps}, loss {float(str(event['loss'])):.3f}, "
                f"about {float(str(event['eta'])):.0f} s left"
            )
            if self.live:
                print("\r" + line.ljust(70), end="", file=sys.stderr, flush=True)
            elif step == steps or step % 10 == 0:
                print(line, file=sys.stderr, flush=True)
        elif stage == "load":
            print(f"loading {event['base']} …", file=sys.stderr, flush=True)
        elif stage == "export":
            print("\nmerging, converting to GGUF and quantizing …", file=sys.stderr, flush=True)
        elif stage == "eval" and event["done"] == event["total"]:
            print(f"evaluated {event['model']}", file=sys.stderr, flush=True)


class JsonProgress:
    """One JSON object a line on stdout, for the Slack job that runs this command."""

    def __call__(self, event: dict[str, object]) -> None:
        print(json.dumps(event), flush=True)


def _jsonl_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        files += sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    return files


def cmd_finetune_grounded(settings: Settings, args: argparse.Namespace) -> int:
    """Rebuild the shipped grounded adapter from finetune/grounded/ (documents, questions)."""
    from bot.engine.llm import SMOLLM2
    from bot.services import Services
    from finetune.grounded import ADAPTER, DOCUMENTS
    from finetune.grounded.recipe import (
        add_metrics,
        build_dataset,
        publish_adapter,
        score_adapter,
        train_adapter,
    )
    from retrieval.packaged import sha256_file

    work = args.out or finetune_dir(settings) / "grounded"
    scratch = settings.model_copy(
        update={
            "data_dir": work / "index",
            "qdrant": settings.qdrant.model_copy(update={"url": None}),
        }
    )
    scratch.data_dir.mkdir(parents=True, exist_ok=True)
    (scratch.data_dir / "models").unlink(missing_ok=True)
    (scratch.data_dir / "models").symlink_to(settings.models_dir.resolve())
    with Services(scratch, holder="ajuste finetune grounded") as services:
        services.index([DOCUMENTS])
        retriever = services.retriever
        built = build_dataset(lambda q, n: retriever.search(q, limit=n), work / "dataset")
    print(f"Dataset: {len(built.train)} train and {len(built.eval)} eval chats ({built.counts})")
    if args.dataset_only:
        return 0
    base = SMOLLM2.folder(settings.models_dir) / SMOLLM2.files[0].name
    manifest = json.loads((work / "dataset" / "manifest.json").read_text())
    progress = TextProgress()
    with finetune_lock(settings):
        result = train_adapter(
            base,
            work / "dataset",
            work / "run",
            steps=args.steps,
            learning_rate=args.learning_rate,
            schedule=args.schedule,
            seed=settings.finetune.seed,
            device=settings.finetune.device,
            on_step=lambda done, steps, loss, eta: progress(
                {"stage": "train", "step": done, "steps": steps, "loss": loss, "eta": eta}
            ),
        )
    provenance = {
        "base": SMOLLM2.files[0].name,
        "base_sha256": sha256_file(base),
        "data_sha256": manifest["sha256"],
        "corpus_sha256": manifest["corpus_sha256"],
        "counts": manifest["counts"],
        "steps": result.step,
        "learning_rate": args.learning_rate,
        "schedule": args.schedule,
        "train_loss": round(result.loss, 4),
        "device": result.device,
        "seconds": round(result.seconds),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    target = publish_adapter(result.adapter_dir, provenance, args.publish or ADAPTER)
    print("\nscoring the merged model on the held-out documents …", file=sys.stderr, flush=True)
    metrics = score_adapter(base, target, work / "dataset", work)
    add_metrics(target, metrics)
    print(f"Held-out: {metrics}")
    print(f"Adapter written to {target}; `ajuste models pull` merges it into the chat model.")
    return 0
