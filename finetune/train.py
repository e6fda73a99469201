"""LoRA fine-tuning in a plain PyTorch loop: seeded, checkpointed atomically, resumable exactly."""

import json
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune.base import FinetuneError, LoadedBase, load_base, pick_device, require_extra
from finetune.batches import batch_indices, collate, encode
from finetune.dataset import read_examples
from retrieval.packaged import sha256_file

if TYPE_CHECKING:
    from finetune.settings import FinetuneSettings

OnStep = Callable[[int, int, float, float], None]  # step, steps, loss, eta in seconds
KEEP_CHECKPOINTS = 2
TRAINING_FILE = "ajuste-training.json"  # beside the adapter: what export writes into the GGUF


@dataclass
class TrainConfig:
    """One LoRA run; everything but out/steps/checkpoint_every must match to resume it."""

    base: Path | str  # a GGUF file, a Hugging Face model folder or a hub name
    data: Path  # JSONL, one {"messages": [...]} per line
    out: Path  # the run folder: checkpoints/ and adapter/
    rank: int = 8
    alpha: int = 16
    learning_rate: float = 1e-3
    steps: int = 30
    batch_size: int = 8
    seed: int = 42
    max_length: int = 512
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    checkpoint_every: int = 10
    device: str = "auto"  # auto: the GPU when torch sees one (CUDA or Apple's MPS), else CPU
    bf16: bool = False  # bfloat16 autocast: about twice as fast on CPUs with AVX512-BF16
    micro_batch: int = 0  # examples per forward pass (0: the whole batch); bounds memory
    # constant, or cosine: a warm-up over the first 5 % of `steps`, then a decay to a tenth
    schedule: str = "constant"

    @classmethod
    def from_settings(
        cls, settings: "FinetuneSettings", base: Path | str, data: Path, out: Path
    ) -> "TrainConfig":
        """The run the team configured, so the CLI and tests build it the same way."""
        return cls(
            base=base,
            data=data,
            out=out,
            rank=settings.lora_rank,
            alpha=2 * settings.lora_rank,
            learning_rate=settings.learning_rate,
            steps=settings.steps,
            batch_size=settings.batch_size,
            seed=settings.seed,
            device=settings.device,
        )

    def lora(self) -> Any:
        """The peft adapter this run trains."""
        from peft import LoraConfig

        return LoraConfig(
            r=self.rank,
            lora_alpha=self.alpha,
            lora_dropout=0.05,
            target_modules=list(self.target_modules),
            task_type="CAUSAL_LM",
        )

    def identity(self) -> dict[str, Any]:
        """What a checkpoint must share to be resumed; more steps may be added to a run."""
        base = Path(self.base)
        values = asdict(self)
        for name in ("out", "steps", "checkpoint_every", "device", "bf16", "micro_batch"):
            values.pop(name)
        if values["schedule"] == "constant":  # as runs made before schedules existed
            values.pop("schedule")
        values["base"] = str(base.resolve()) if base.exists() else str(self.base)
        values["data"] = str(self.data.resolve())
        values["data_sha256"] = sha256_file(self.data)
        values["target_modules"] = list(self.target_modules)
        return values


SCHEDULES = ("constant", "cosine")


def learning_rate(config: TrainConfig, step: int) -> float:
    """The rate of the optimizer step after `step` steps: a function of the step alone, so a
    resumed run continues on the same curve."""
    if config.schedule == "constant":
        return config.learning_rate
    warmup = max(1, config.steps // 20)
    if step < warmup:
        return config.learning_rate * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, config.steps - warmup))
    return config.learning_rate * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))


@dataclass
class TrainResult:
    """What a run produced, for the CLI's summary and the export step."""

    adapter_dir: Path
    loss: float
    steps_run: int
    step: int
    seconds: float
    device: str = ""  # where it trained: "cpu", "cuda (NVIDIA H100 80GB HBM3)"
    losses: list[float] = field(default_factory=list)  # each step's loss, from step 1


def _loss(model: Any, batch: dict[str, Any], reduction: str = "mean") -> Any:
    """Cross-entropy over the assistant tokens; logits only where a label follows."""
    import torch

    targets = batch.pop("labels")[:, 1:]
    keep = batch.pop("keep")  # the vocabulary head is costly: only where a label follows
    try:
        logits = model(**batch, logits_to_keep=keep).logits
    except TypeError:  # a model class without logits_to_keep
        logits = model(**batch).logits[:, keep]
    return torch.nn.functional.cross_entropy(
        logits.flatten(0, 1).float(),
        targets[:, keep].flatten(),
        ignore_index=-100,
        reduction=reduction,
    )


def _step_loss(
    model: Any,
    rows: list[tuple[list[int], list[int]]],
    config: "TrainConfig",
    pad_id: int,
    device: Any,
) -> float:
    """Backpropagate one step's mean token loss, in micro-batches of similar length."""
    import torch

    size = config.micro_batch or len(rows)
    if size >= len(rows):
        batch = collate(rows, pad_id, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
            loss = _loss(model, batch)
        loss.backward()
        return float(loss.detach())
    rows = sorted(rows, key=lambda row: len(row[0]))  # less padding in each micro-batch
    tokens = sum(sum(label != -100 for label in labels[1:]) for _, labels in rows)
    total = 0.0
    for start in range(0, len(rows), size):
        batch = collate(rows[start : start + size], pad_id, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
            part = _loss(model, batch, reduction="sum") / max(tokens, 1)
        part.backward()
        total += float(part.detach())
    return total


def checkpoints(out: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    found = []
    for folder in (out / "checkpoints").glob("step-*"):
        match = re.fullmatch(r"step-(\d+)", folder.name)
        if match and (folder / "state.pt").is_file() and (folder / "config.json").is_file():
            found.append((int(match.group(1)), folder))
    return [folder for _, folder in sorted(found)]


def _discard(folder: Path) -> None:
    """Rename first, so an interrupted delete never leaves a half checkpoint under its name."""
    trash = folder.with_name(f".trash-{folder.name}-{os.getpid()}")
    os.replace(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _save(
    model: Any,
    optimizer: Any,
    step: int,
    losses: list[float],
    identity: dict[str, Any],
    out: Path,
) -> Path:
    import torch

    root = out / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
    model.save_pretrained(temporary / "adapter", save_embedding_layers=False)
    loss = losses[-1]
    training = {**identity, "steps": step, "loss": loss}
    (temporary / "adapter" / TRAINING_FILE).write_text(json.dumps(training, indent=2))
    state = {"step": step, "loss": loss, "losses": losses, "optimizer": optimizer.state_dict()}
    rng: dict[str, Any] = {"rng": torch.get_rng_state()}
    if torch.cuda.is_initialized():
        rng["cuda_rng"] = torch.cuda.get_rng_state_all()
    torch.save({**state, **rng}, temporary / "state.pt")
    (temporary / "config.json").write_text(json.dumps(identity, indent=2))
    final = root / f"step-{step}"
    if final.exists():
        _discard(final)
    os.replace(temporary, final)
    for old in checkpoints(out)[:-KEEP_CHECKPOINTS]:
        _discard(old)
    return final


def _publish(checkpoint: Path, out: Path) -> Path:
    """Copy the checkpoint's adapter to out/adapter atomically: what export reads."""
    temporary = Path(tempfile.mkdtemp(dir=out, prefix=".adapter-"))
    shutil.copytree(checkpoint / "adapter", temporary, dirs_exist_ok=True)
    final = out / "adapter"
    if final.exists():
        _discard(final)
    os.replace(temporary, final)
    return final


def train(
    config: TrainConfig,
    *,
    resume: bool = True,
    on_step: OnStep | None = None,
    base: LoadedBase | None = None,
) -> TrainResult:
    """Train (or continue) a LoRA adapter; a given `base` is reused and handed back unchanged."""
    require_extra()
    import torch
    from peft import get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    began = time.monotonic()
    if config.checkpoint_every < 1 or config.steps < 1 or config.batch_size < 1:
        raise FinetuneError("steps, batch size and checkpoint interval must be at least 1.")
    if config.schedule not in SCHEDULES:
        raise FinetuneError(f"Unknown learning-rate schedule {config.schedule!r}: {SCHEDULES}.")
    examples = read_examples(config.data)
    identity = config.identity()
    config.out.mkdir(parents=True, exist_ok=True)
    for leftover in [*config.out.glob(".adapter-*"), *config.out.glob("checkpoints/.*")]:
        shutil.rmtree(leftover, ignore_errors=True)  # from an interrupted run
    existing = checkpoints(config.out)
    if existing and not resume:
        _discard(config.out / "checkpoints")
        existing = []
    latest = existing[-1] if existing else None
    if latest and json.loads((latest / "config.json").read_text()) != identity:
        raise FinetuneError(
            f"{config.out} holds a run with other settings or data: use a new output folder, "
            "or --fresh to start over."
        )
    loaded = base or load_base(config.base)
    rows = [encode(loaded.tokenizer, messages, config.max_length) for messages in examples]
    rows = [row for row in rows if any(label != -100 for label in row[1])]
    if not rows:
        raise FinetuneError(f"No assistant text fits in {config.max_length} tokens: raise it.")
    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    model = get_peft_model(loaded.model, config.lora()).to(device)  # LoRA starts from the CPU's RNG
    try:
        parameters = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=0.0)
        start, loss = 0, float("nan")
        losses: list[float] = []
        if latest is not None:
            set_peft_model_state_dict(
                model, load_file(latest / "adapter" / "adapter_model.safetensors")
            )
            state = torch.load(latest / "state.pt", weights_only=True, map_location="cpu")
            optimizer.load_state_dict(state["optimizer"])  # moved to the parameters' device
            torch.set_rng_state(state["rng"])
            if "cuda_rng" in state and device.type == "cuda":
                torch.cuda.set_rng_state_all(state["cuda_rng"])
            start, loss = int(state["step"]), float(state["loss"])
            # each step's loss so far (a checkpoint from an older version kept none)
            losses = [float(x) for x in state.get("losses", [float("nan")] * start)]
        model.train()
        saved, resumed = latest, time.monotonic()
        for step in range(start, config.steps):
            picked = batch_indices(len(rows), step, config.batch_size, config.seed)
            loss = _step_loss(model, [rows[i] for i in picked], config, loaded.pad_id, device)
            losses.append(loss)
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, step)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            done = step + 1
            if done % config.checkpoint_every == 0 or done == config.steps:
                saved = _save(model, optimizer, done, losses, identity, config.out)
            if on_step is not None:
                pace = (time.monotonic() - resumed) / (done - start)
                on_step(done, config.steps, loss, pace * (config.steps - done))
        assert saved is not None  # the last step always saves
        adapter = _publish(saved, config.out)
    finally:
        model.unload()  # removes the LoRA layers: the base is as it was loaded
        loaded.model.to("cpu").eval()  # merging and export work on the CPU
    return TrainResult(
        adapter_dir=adapter,
        loss=loss,
        steps_run=max(config.steps - start, 0),
        step=max(config.steps, start),
        seconds=time.monotonic() - began,
        device=_describe(device),
        losses=losses,
    )


def _describe(device: Any) -> str:
    import torch

    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return str(device.type)
