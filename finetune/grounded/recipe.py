"""Rebuild the shipped grounded adapter: corpus → chats → LoRA → `finetune/grounded/adapter/`.

`ajuste finetune grounded` runs it: 600 steps, about 4 minutes on one GPU and about 4 hours on
2 cores (checkpointed, so an interrupted run resumes). The adapter is committed, so a new
install only merges it (`ajuste models pull`).
"""

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from finetune.base import LoadedBase, pick_device
from finetune.dataset import jsonl
from finetune.grounded import ADAPTER, DOCUMENTS, PROVENANCE, QUESTIONS
from finetune.grounded.corpus import load_questions
from finetune.grounded.examples import Built, Search, build_examples
from finetune.train import TrainConfig, TrainResult, train

# Documents kept out of training, so the run's own eval measures unseen documents.
HELD_OUT = {"a-feature-flags-guide.md", "b-refund-policy.md", "c-coworking-handbook.md"}
STEPS = 600  # about 2.3 passes over the chats, in batches of 8
LEARNING_RATE = 1e-3
SCHEDULE = "cosine"
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def corpus_sha256(documents: Path = DOCUMENTS, questions: Path = QUESTIONS) -> str:
    """One hash over every training document and question file, names included."""
    digest = hashlib.sha256()
    for path in sorted([*documents.iterdir(), *questions.glob("*.jsonl")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _jsonl(chats: list[list[dict[str, str]]]) -> str:
    return jsonl([{"messages": chat} for chat in chats]).decode("utf-8")


def build_dataset(search: Search, out: Path, *, seed: int = 42) -> Built:
    """Write `out/train.jsonl`, `out/eval.jsonl` and a manifest with the data's sha256."""
    questions = load_questions(QUESTIONS, DOCUMENTS)
    built = build_examples(questions, search, held_out=HELD_OUT, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    train_text, eval_text = _jsonl(built.train), _jsonl(built.eval)
    (out / "train.jsonl").write_text(train_text, encoding="utf-8")
    (out / "eval.jsonl").write_text(eval_text, encoding="utf-8")
    sha = hashlib.sha256((train_text + "\0" + eval_text).encode()).hexdigest()
    manifest = {
        "sha256": sha,
        "corpus_sha256": corpus_sha256(),
        "seed": seed,
        "held_out": sorted(HELD_OUT),
        "counts": {"train": len(built.train), "eval": len(built.eval), **built.counts},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return built


def train_adapter(
    base: Path,
    dataset: Path,
    out: Path,
    *,
    steps: int = STEPS,
    batch_size: int = 8,
    learning_rate: float = LEARNING_RATE,
    schedule: str = SCHEDULE,
    seed: int = 42,
    device: str = "auto",
    micro_batch: int | None = None,
    on_step: Callable[[int, int, float, float], None] | None = None,
    loaded: LoadedBase | None = None,
) -> TrainResult:
    """The shipped adapter's run, and a `loaded` base is reused across runs. `micro_batch` only
    bounds memory: by default 2 on the CPU (fits 8 GB of RAM), the whole batch on a GPU."""
    if micro_batch is None:
        micro_batch = 2 if pick_device(device).type == "cpu" else 0
    config = TrainConfig(
        base=base,
        data=dataset / "train.jsonl",
        out=out,
        rank=8,
        alpha=16,
        learning_rate=learning_rate,
        steps=steps,
        batch_size=batch_size,
        seed=seed,
        max_length=1024,
        target_modules=TARGETS,
        checkpoint_every=10,
        device=device,
        bf16=True,
        micro_batch=micro_batch,
        schedule=schedule,
    )
    return train(config, on_step=on_step, base=loaded)


def publish_adapter(adapter: Path, provenance: dict[str, Any], target: Path = ADAPTER) -> Path:
    """Copy the adapter in float16 (half the size, a few MB) with where it came from."""
    from safetensors.numpy import load_file, save_file

    target.mkdir(parents=True, exist_ok=True)
    weights = load_file(str(adapter / "adapter_model.safetensors"))
    save_file(
        {k: v.astype("float16") for k, v in weights.items()},
        str(target / "adapter_model.safetensors"),
    )
    shutil.copyfile(adapter / "adapter_config.json", target / "adapter_config.json")
    (target / PROVENANCE).write_text(json.dumps(provenance, indent=2) + "\n")
    return target


def score_adapter(base: Path, adapter: Path, dataset: Path, work: Path) -> dict[str, float]:
    """The merged model's scores on the held-out documents' chats, as the registry keeps them."""
    from finetune.dataset import read_examples
    from finetune.evaluate import evaluate_gguf
    from finetune.grounded.install import install

    models = work / "models"
    shutil.rmtree(models, ignore_errors=True)
    models.mkdir(parents=True)
    model, _ = install(base, models, adapter=adapter)
    report = evaluate_gguf(model.file, read_examples(dataset / "eval.jsonl"))
    return report.metrics()


def add_metrics(adapter: Path, metrics: dict[str, float]) -> None:
    path = adapter / PROVENANCE
    provenance = json.loads(path.read_text())
    path.write_text(json.dumps({**provenance, "metrics": metrics}, indent=2) + "\n")
