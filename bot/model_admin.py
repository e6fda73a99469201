"""What admins do with the model registry, worded once for `ajuste model` and `/ajuste model`."""

import argparse
from dataclasses import asdict
from pathlib import Path

from bot.console import print_json
from bot.engine.llm import open_gguf
from bot.settings import Settings
from finetune.registry import ModelRegistry


def version_lines(settings: Settings) -> list[str]:
    """Registered versions, `*` on the active one, with their eval score when they have one."""
    registry = ModelRegistry(settings.registry_dir)
    active = registry.active()
    versions = registry.versions()
    if not versions:
        return ["No registered versions: the default model serves. `ajuste model register FILE`."]
    lines = []
    for version in versions:
        mark = "*" if active and active.version == version.version else " "
        score = version.metrics.get("eval_score")
        lines.append(
            f"{mark} v{version.version:<3} {version.name:<32} {version.quantization:<8} "
            f"{version.size / 1048576:7.1f} MB  {version.created}"
            + (f"  score {score:.2f}" if score is not None else "")
        )
    return lines


def use_version(settings: Settings, number: int) -> str:
    """Activate a version after checking llama.cpp loads it; the running bot follows."""
    registry = ModelRegistry(settings.registry_dir)
    chosen = registry.get(number)
    open_gguf(Path(chosen.file), settings.llm)  # refuse a file llama.cpp can't load
    registry.use(number)
    message = (
        f"v{chosen.version} {chosen.name} is active; a running bot switches on its next question."
    )
    if settings.llm.server_url:
        message += (
            " The bot generates on the model servers in AJUSTE_LLM__SERVER_URL, which choose "
            f"their own model: load {chosen.file} there."
        )
    return message


def roll_back(settings: Settings) -> str:
    active = ModelRegistry(settings.registry_dir).rollback()
    shown = f"v{active.version} {active.name}" if active else "the default model"
    return f"Rolled back: {shown} is active."


def cmd_model(settings: Settings, args: argparse.Namespace) -> int:
    """The model registry: list, register, use, rollback (the running bot follows)."""
    registry = ModelRegistry(settings.registry_dir)
    if args.model_command == "register":
        version = registry.register(args.file, name=args.name, quantization=args.quantization)
        print(
            f"Registered v{version.version} {version.name} ({version.size} bytes, "
            f"sha256 {version.sha256[:12]}…). Activate it with `ajuste model use "
            f"{version.version}`."
        )
    elif args.model_command == "use":
        print(use_version(settings, args.version))
    elif args.model_command == "rollback":
        print(roll_back(settings))
    elif args.json:
        active = registry.active()
        print_json(
            {
                "active": active.version if active else None,
                "versions": [asdict(version) for version in registry.versions()],
            }
        )
    else:
        print("\n".join(version_lines(settings)))
    return 0
