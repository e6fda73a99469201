"""LoRA fine-tuning in a plain PyTorch loop: seeded, checkpointed atomically, resumable exactly."""

import json
import os
import random
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from finetune.dataset import read_examples
from finetune.settings import FinetuneSettings
from retrieval.errors import AjusteError
from retrieval.packaged import sha256_file

OnStep = Callable[[int, int, float, float], None]  # step, steps, loss, eta in seconds
KEEP_CHECKPOINTS = 2
TRAINING_FILE = "ajuste-training.json"  # beside the adapter: what export writes into the GGUF


class FinetuneError(AjusteError):
    """A fine-tune that can't run as asked."""


class MissingExtraError(FinetuneError):
    """The optional fine-tune dependencies are not installed."""


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

    @classmethod
    def from_settings(
        cls, settings: FinetuneSettings, base: Path | str, data: Path, out: Path
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

    def identity(self) -> dict[str, Any]:
        """What a checkpoint must share to be resumed; more steps may be added to a run."""
        base = Path(self.base)
        values = asdict(self)
        for name in ("out", "steps", "checkpoint_every", "device"):
            values.pop(name)
        values["base"] = str(base.resolve()) if base.exists() else str(self.base)
        values["data"] = str(self.data.resolve())
        values["data_sha256"] = sha256_file(self.data)
        values["target_modules"] = list(self.target_modules)
        return values


@dataclass
class LoadedBase:
    """A base model and its tokenizer, loaded once and reusable by several runs."""

    model: Any
    tokenizer: Any
    source: str
    pad_id: int = field(init=False)

    def __post_init__(self) -> None:
        pad = self.tokenizer.pad_token_id
        self.pad_id = self.tokenizer.eos_token_id if pad is None else pad


@dataclass
class TrainResult:
    """What a run produced, for the CLI's summary and the export step."""

    adapter_dir: Path
    loss: float
    steps_run: int
    step: int
    seconds: float


def require_extra() -> None:
    """Fail with the install command when the optional fine-tune stack is missing."""
    try:
        import peft  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as error:
        raise MissingExtraError(
            f"The fine-tune needs PyTorch, transformers and peft ({error}): run "
            "`pip install torch==2.13.0` then `pip install '.[finetune]'`."
        ) from error


def load_base(base: Path | str) -> LoadedBase:
    """Load a GGUF (dequantized to float32) or a Hugging Face model for training or merging."""
    require_extra()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(base).expanduser()
    options: dict[str, Any] = {}
    if path.is_file():
        source, options["gguf_file"] = str(path.parent), path.name
    elif path.is_dir():
        if not (path / "config.json").is_file():
            raise FinetuneError(f"{base} has no config.json: pass a Hugging Face model folder.")
        source = str(path)
    elif (
        path.suffix == ".gguf" or str(base).startswith(("/", ".", "~")) or str(base).count("/") > 1
    ):
        raise FinetuneError(f"No model at {base}: pass a GGUF file or a Hugging Face model folder.")
    else:
        source = str(base)  # a hub name: works only with network access or a warm HF cache
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **options)
        model: Any = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, **options)
    except ImportError as error:
        raise MissingExtraError(f"{error}: run `pip install '.[finetune]'`.") from error
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise FinetuneError(
            f"Could not load the base model {base} ({reason}): pass a local GGUF file or "
            "Hugging Face model folder (download hub models with network access first)."
        ) from error
    if getattr(model, "hf_quantizer", None) is not None:  # GGUF weights are dequantized now
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    if not tokenizer.chat_template:
        raise FinetuneError(f"{base} has no chat template: use an instruct (chat) model.")
    model.eval()
    return LoadedBase(model, tokenizer, str(base))


def _render(tokenizer: Any, messages: list[dict[str, str]], generation: bool = False) -> str:
    if not messages:
        return ""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)
    return str(text)


def assistant_spans(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[str, list[range]]:
    """The rendered chat and the character ranges of assistant turns (with end-of-turn)."""
    text = _render(tokenizer, messages)
    spans, cursor = [], 0
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:index], generation=True)
        through = _render(tokenizer, messages[: index + 1])
        if text.startswith(through) and through.startswith(before) and len(before) >= cursor:
            start, end = len(before), len(through)
        else:  # a template that rewrites earlier turns: find the content itself
            start = text.find(message["content"], cursor)
            if start < 0:
                raise FinetuneError("The chat template drops assistant text: use another model.")
            end = start + len(message["content"])
            eos = tokenizer.eos_token or ""
            end += len(eos) if eos and text.startswith(eos, end) else 0
        while end > start and text[end - 1].isspace():
            end -= 1
        spans.append(range(start, end))
        cursor = end
    return text, spans


def encode(
    tokenizer: Any, messages: list[dict[str, str]], max_length: int
) -> tuple[list[int], list[int]]:
    """Token ids and labels: -100 everywhere but on the assistant's tokens; truncated."""
    text, spans = assistant_spans(tokenizer, messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoded["input_ids"])[:max_length]
    labels = [
        token if any(start in span for span in spans) else -100
        for token, (start, _) in zip(ids, encoded["offset_mapping"], strict=False)
    ]
    return ids, labels


def batch_indices(count: int, step: int, batch_size: int, seed: int) -> list[int]:
    """Examples of a step: a pure function of (seed, step), so a resumed run sees the same."""
    chosen, orders = [], {}
    for position in range(step * batch_size, (step + 1) * batch_size):
        epoch, index = divmod(position, count)
        if epoch not in orders:
            orders[epoch] = list(range(count))
            random.Random(seed * 1_000_003 + epoch).shuffle(orders[epoch])
        chosen.append(orders[epoch][index])
    return chosen


def collate(rows: list[tuple[list[int], list[int]]], pad_id: int, device: Any) -> dict[str, Any]:
    import torch

    width = max(len(ids) for ids, _ in rows)
    ids = [row[0] + [pad_id] * (width - len(row[0])) for row in rows]
    labels = [row[1] + [-100] * (width - len(row[1])) for row in rows]
    mask = [[1] * len(row[0]) + [0] * (width - len(row[0])) for row in rows]
    # positions followed by a label, found here: on a GPU, finding them there would wait for it
    keep = [j for j in range(width - 1) if any(row[j + 1] != -100 for row in labels)]
    return {
        "input_ids": torch.tensor(ids, device=device),
        "labels": torch.tensor(labels, device=device),
        "attention_mask": torch.tensor(mask, device=device),
        "keep": torch.tensor(keep, device=device),
    }


def pick_device(wanted: str) -> Any:
    """The torch device to train on: `auto` takes a GPU when torch sees one."""
    import torch

    if wanted == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        device = torch.device(wanted)
        torch.empty(1, device=device)
    except (RuntimeError, AssertionError) as error:
        raise FinetuneError(
            f"torch cannot use the device {wanted!r} ({error}): set AJUSTE_FINETUNE__DEVICE "
            "to auto or cpu."
        ) from error
    return device


def _loss(model: Any, batch: dict[str, Any]) -> Any:
    """Mean cross-entropy over the assistant tokens; logits only where a label follows."""
    import torch

    targets = batch.pop("labels")[:, 1:]
    keep = batch.pop("keep")  # the vocabulary head is costly: only where a label follows
    try:
        logits = model(**batch, logits_to_keep=keep).logits
    except TypeError:  # a model class without logits_to_keep
        logits = model(**batch).logits[:, keep]
    return torch.nn.functional.cross_entropy(
        logits.flatten(0, 1).float(), targets[:, keep].flatten(), ignore_index=-100
    )


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
    model: Any, optimizer: Any, step: int, loss: float, identity: dict[str, Any], out: Path
) -> Path:
    import torch

    root = out / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
    model.save_pretrained(temporary / "adapter", save_embedding_layers=False)
    training = {**identity, "steps": step, "loss": loss}
    (temporary / "adapter" / TRAINING_FILE).write_text(json.dumps(training, indent=2))
    state = {"step": step, "loss": loss, "optimizer": optimizer.state_dict()}
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
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    began = time.monotonic()
    if config.checkpoint_every < 1 or config.steps < 1 or config.batch_size < 1:
        raise FinetuneError("steps, batch size and checkpoint interval must be at least 1.")
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
    lora = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=0.05,
        target_modules=list(config.target_modules),
        task_type="CAUSAL_LM",
    )
    device = pick_device(config.device)
    model = get_peft_model(loaded.model, lora).to(device)  # LoRA starts from the CPU's RNG
    try:
        parameters = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=0.0)
        start, loss = 0, float("nan")
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
        model.train()
        saved, resumed = latest, time.monotonic()
        for step in range(start, config.steps):
            picked = batch_indices(len(rows), step, config.batch_size, config.seed)
            batch = collate([rows[i] for i in picked], loaded.pad_id, device)
            batch_loss = _loss(model, batch)
            batch_loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            done, loss = step + 1, float(batch_loss.detach())
            if done % config.checkpoint_every == 0 or done == config.steps:
                saved = _save(model, optimizer, done, loss, identity, config.out)
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
    )
