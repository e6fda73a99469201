"""What each `ajuste` subcommand does: build services from settings, call one, print."""

import argparse
import sys
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bot.console import format_sources, print_json, run_console
from bot.models import GROUNDED, describe_models, pull_defaults, register_grounded
from bot.services import Services
from bot.settings import Settings, render_env_example
from finetune.registry import ModelRegistry
from retrieval.errors import AjusteError
from retrieval.runs import RunLog
from retrieval.scheduler import SourceScheduler
from retrieval.sources.config import load_sources
from retrieval.sources.credentials import TokenConfig


def cmd_index(settings: Settings, args: argparse.Namespace) -> int:
    if args.paths == [Path("migrate")] and not Path("migrate").exists():
        return cmd_migrate(settings, args)
    if args.to:
        raise AjusteError("--to goes with `ajuste index migrate --to URL`.")
    if bool(args.paths) == bool(args.source):
        raise AjusteError("Give either PATH... or --source NAME (see `ajuste sources list`).")
    problems = None if args.json else lambda text: print(f"skipped {text}", file=sys.stderr)
    with Services(settings, holder=f"ajuste {args.command}") as services:
        if args.source:
            report = services.run_source(args.source, on_problem=problems)
        else:
            report = services.index(args.paths, on_problem=problems)
    if args.json:
        print_json(
            {
                k: v
                for k, v in report.as_dict().items()
                if k in {"added", "updated", "deleted", "unchanged", "chunks_embedded", "seconds"}
            }
            | {"failed": report.failed, "problems": report.problems}
        )
    else:
        print(
            f"{report.added} added, {report.updated} updated, {report.deleted} deleted, "
            f"{report.unchanged} unchanged, {report.failed} skipped; "
            f"{report.chunks_embedded} chunks embedded in {report.seconds:.1f} s"
        )
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    """Copy the index as it is (no re-embedding) into a Qdrant server."""
    from pydantic import ValidationError

    from retrieval.settings import QdrantSettings
    from retrieval.store import open_store

    if not args.to:
        raise AjusteError("Say where to: `ajuste index migrate --to http://qdrant:6333`.")
    try:
        target_settings = QdrantSettings.model_validate(
            settings.qdrant.model_dump()
            | {"url": args.to, "path": None}
            | ({"api_key": args.api_key} if args.api_key else {})
        )
    except ValidationError:
        raise AjusteError(f"--to {args.to}: not a URL like http://qdrant:6333") from None
    source = open_store(settings.qdrant, settings.data_dir, holder="ajuste index migrate")
    try:
        target = open_store(target_settings, settings.data_dir)
        try:
            copied = source.copy_to(target)
            total = target.count_chunks()
        finally:
            target.close()
    finally:
        source.close()
    print(
        f"Copied {copied} chunks into collection '{target_settings.collection}' at {args.to} "
        f"({total} there now). Set AJUSTE_QDRANT__URL={args.to} to use it."
    )
    return 0


def _declared_sources(settings: Settings) -> tuple[Path, list[Any]]:
    path = settings.scheduler.sources_file or settings.data_dir / "sources.yaml"
    return path, load_sources(path)


def cmd_sources_list(settings: Settings, args: argparse.Namespace) -> int:
    path, sources = _declared_sources(settings)
    rows = [
        {
            "name": c.name,
            "kind": c.kind,
            "schedule": c.schedule,
            "visible_in": c.visible_in,
            **({"secret": c.secret_origin} if isinstance(c, TokenConfig) else {}),
        }
        for c in sources
    ]
    last_files = RunLog(settings.data_dir).last("files")
    if last_files is not None and last_files.paths and "files" not in {c.name for c in sources}:
        rows.append(
            {
                "name": "files",
                "kind": "files",
                "schedule": "manual (ajuste index PATH)",
                "visible_in": None,
            }
        )
    if args.json:
        print_json({"file": str(path), "sources": rows})
        return 0
    if not rows:
        print(
            f"No sources yet: declare them in {path} (see the README), or run `ajuste index PATH`."
        )
    for row in rows:
        where = ", ".join(row["visible_in"]) if row["visible_in"] else "all channels"
        secret = f", secret from {row['secret']}" if "secret" in row else ""
        print(
            f"{row['name']:<20} {row['kind']:<10} {row['schedule']:<28} visible in {where}{secret}"
        )
    return 0


def cmd_sources_status(settings: Settings, args: argparse.Namespace) -> int:
    _, sources = _declared_sources(settings)
    runs = RunLog(settings.data_dir).all()
    names = [c.name for c in sources] + [n for n in runs if n not in {c.name for c in sources}]
    if args.json:
        print_json(
            {
                "sources": [
                    {"name": name, "state": runs[name].state if name in runs else "never run"}
                    | (asdict(runs[name]) if name in runs else {})
                    for name in names
                ]
            }
        )
        return 0
    for name in names:
        print(f"{name:<20} {runs[name].summary() if name in runs else 'never run'}")
    if not names:
        print("No sources and no runs yet.")
    return 0


def cmd_scheduler(settings: Settings, args: argparse.Namespace) -> int:
    with Services(settings, holder="ajuste scheduler") as services:
        scheduler = start_scheduler(services)
        if scheduler is None:
            raise AjusteError(
                f"No source in {services.sources_file} has a schedule (`every` or `cron`)."
            )
        print("Scheduler running; Ctrl-C stops.", file=sys.stderr)
        try:
            threading.Event().wait()
        finally:
            scheduler.shutdown()
    return 0


def start_scheduler(services: Services) -> SourceScheduler | None:
    scheduler = SourceScheduler(
        sources=services.sources, run=services.run_source, runs=services.runs
    )
    names = scheduler.start()
    if not names:
        scheduler.shutdown()
        return None
    print(f"Scheduled sources: {', '.join(names)}", file=sys.stderr)
    return scheduler


def cmd_search(settings: Settings, args: argparse.Namespace) -> int:
    with Services(settings, holder=f"ajuste {args.command}") as services:
        retriever = services.retriever
        hits = retriever.search(args.query, limit=args.limit)
        rows = [
            {
                "score": round(hit.score, 4),
                "text": hit.body,
                "source": hit.source,
                "title": hit.title,
                "location": hit.location,
                "chunk": hit.chunk,
                "heading": hit.heading,
                "similarity": round(hit.similarity, 4),
                "related": retriever.is_related(hit),
            }
            for hit in hits
        ]
    if args.json:
        print_json({"results": rows})
        return 0
    if not rows:
        print("No results: the index is empty. Run `ajuste index PATH` first.")
    for rank, row in enumerate(rows, start=1):
        excerpt = " ".join(str(row["text"]).split())[:160]
        print(f"{rank}. {row['heading']}  ({row['location']}, chunk {row['chunk']})")
        print(f"   score {row['score']}, similarity {row['similarity']}: {excerpt}")
    return 0


def cmd_ask(settings: Settings, args: argparse.Namespace) -> int:
    with Services(settings, holder=f"ajuste {args.command}") as services:
        answers = services.answers
        if args.json:
            print_json(answers.answer(args.question).as_dict())
            return 0

        def show(piece: str) -> None:
            sys.stdout.write(piece)
            sys.stdout.flush()

        answer = answers.answer(args.question, on_token=show)
    print()
    if shown := format_sources(answer):
        print("\n" + shown)
    return 0


def cmd_chat(settings: Settings, args: argparse.Namespace) -> int:
    with Services(settings, holder=f"ajuste {args.command}") as services:
        run_console(services.answers)
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    slack = settings.slack
    if slack.bot_token is None:
        print(
            "No Slack bot token configured (AJUSTE_SLACK__BOT_TOKEN): starting the local "
            "console chat instead.",
            file=sys.stderr,
        )
        with Services(settings, holder="ajuste serve") as services:
            scheduler = start_scheduler(services) if settings.scheduler.enabled else None
            try:
                run_console(services.answers)
            finally:
                if scheduler is not None:
                    scheduler.shutdown()
        return 0
    if args.http and slack.signing_secret is None:
        raise AjusteError(
            "HTTP mode needs AJUSTE_SLACK__SIGNING_SECRET (the app's signing secret)."
        )
    from bot.slack.app import build_app
    from bot.slack.states import open_state

    with Services(settings, holder="ajuste serve") as services:
        services.load_model()  # before the first question arrives, not during it
        state = open_state(services)
        scheduler = start_scheduler(services) if settings.scheduler.enabled else None
        try:
            app, _ = build_app(settings, services, state)
            serve_slack(app, services, settings, args)
        finally:
            if scheduler is not None:
                scheduler.shutdown()
            state.close()
    return 0


def serve_slack(app: Any, services: Services, settings: Settings, args: argparse.Namespace) -> None:
    """Run until Ctrl-C: Slack over HTTP or Socket Mode, health and metrics over HTTP."""
    from bot.http import http_server, serve_in_background
    from bot.slack.app import socket_mode

    port = args.port or settings.slack.port
    server = http_server(
        args.host, port, readiness=services.readiness, app=app if args.http else None
    )
    where = f"http://{args.host}:{port}"
    try:
        if args.http:
            print(
                f"Ajuste is serving Slack at {where}/slack/events, with /healthz, /readyz "
                "and /metrics. Ctrl-C stops.",
                file=sys.stderr,
            )
            server.serve_forever()
        else:
            serve_in_background(server)
            handler = socket_mode(app, settings)
            print(
                f"Ajuste is connected to Slack in Socket Mode; /healthz, /readyz and "
                f"/metrics at {where}. Ctrl-C stops.",
                file=sys.stderr,
            )
            handler.start()
    finally:
        if not args.http:
            server.shutdown()  # the background thread
        server.server_close()


def cmd_eval_retrieval(settings: Settings, args: argparse.Namespace) -> int:
    from retrieval.evaluation import MODES, evaluate_retrieval, load_qa

    items = load_qa(args.qa)
    with Services(settings, holder="ajuste eval") as services:
        retriever = services.retriever
        overall = {mode: evaluate_retrieval(retriever, items, mode).as_dict() for mode in MODES}
        kinds = sorted({item.kind for item in items if item.answerable})
        by_kind = {
            kind: evaluate_retrieval(retriever, [i for i in items if i.kind == kind]).as_dict()
            for kind in kinds
        }
    if args.json:
        print_json({"modes": overall, "by_kind": by_kind})
        return 0
    columns = ["questions", "recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10"]
    print(f"{'':<20}" + "".join(f"{c:>11}" for c in columns))
    for label, row in [*overall.items(), *((f"  {k}", v) for k, v in by_kind.items())]:
        print(f"{label:<20}" + "".join(f"{row[c]:>11}" for c in columns))
    return 0


def cmd_eval_answers(settings: Settings, args: argparse.Namespace) -> int:
    from bot.evaluation import evaluate_answers
    from retrieval.evaluation import load_qa

    items = load_qa(args.qa)

    def progress(item: Any, answer: Any) -> None:
        if not args.json:
            print(f"  line {item.line}: {answer.timings.total_s:.1f} s", file=sys.stderr)

    with Services(settings, holder="ajuste eval") as services:
        scores = evaluate_answers(services.answers, items, on_answer=progress)
    if args.json:
        print_json(scores.as_dict())
        return 0
    for key, value in scores.as_dict().items():
        if key != "by_kind":
            print(f"{key:<20} {value}")
    for kind, row in scores.by_kind.items():
        print(f"  {kind:<18} {row['score']} over {row['questions']}")
    return 0


def cmd_models_pull(settings: Settings, args: argparse.Namespace) -> int:
    if args.from_dir is not None and not args.from_dir.is_dir():
        raise AjusteError(f"--from {args.from_dir}: no such folder")
    for name, fetched in pull_defaults(settings.models_dir, find_links=args.from_dir):
        state = "fetched and verified" if fetched else "already in place (verified)"
        if name == GROUNDED:
            state = "merged and checked" if fetched else "already in place (verified)"
        print(f"{name}: {state}")
    registered = register_grounded(settings)
    if registered is not None and registered[1]:
        version = registered[0]
        active = ModelRegistry(settings.registry_dir).active()
        serving = active is not None and active.version == version.version
        print(
            f"Registered v{version.version} {version.name}"
            + (
                " (active)"
                if serving
                else f": activate it with `ajuste model use {version.version}`"
            )
        )
    return 0


def cmd_models_list(settings: Settings, args: argparse.Namespace) -> int:
    rows = describe_models(settings)
    if args.json:
        print_json({"models": rows})
        return 0
    for row in rows:
        mark = "*" if row["in_use"] == "yes" else " "
        print(f"{mark} {row['kind']:<6} {row['name']:<28} {row['status']:<10} {row['path']}")
    print("(* in use)")
    return 0


def cmd_config_show(settings: Settings, args: argparse.Namespace) -> int:
    """The settings (secrets masked), and where each API source's secret comes from."""
    shown = settings.model_dump(mode="json")
    try:
        _, sources = _declared_sources(settings)
    except AjusteError:
        sources = []  # `ajuste sources list` says what is wrong with the file
    secrets = [
        {"name": c.name, "kind": c.kind, "secret": c.secret_origin}
        for c in sources
        if isinstance(c, TokenConfig)
    ]
    print_json(shown | ({"source_secrets": secrets} if secrets else {}))
    return 0


def cmd_config_example(settings: Settings, args: argparse.Namespace) -> int:
    sys.stdout.write(render_env_example())
    return 0
