"""One fine-tune, end to end: dataset → LoRA → GGUF → quantize → evaluate → register → gate.

`run_finetune` is what `ajuste finetune run` and Slack's `/ajuste finetune` (through that
command, in its own process) do. Every stage reports through `on_event`, so the caller can
draw a progress bar or post to Slack. The comparison is with the model being served now,
evaluated the same way on the same held-out set.
"""

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from finetune.base import load_base
from finetune.converter import converter_dir
from finetune.dataset import load_manifest, read_examples
from finetune.evaluate import EvalReport, evaluate_gguf, save_report
from finetune.export import export
from finetune.picture import PICTURE, PictureUnavailable, draw_history
from finetune.registry import ModelRegistry, ModelVersion
from finetune.settings import FinetuneSettings
from finetune.train import TrainConfig, train

Event = dict[str, Any]
REPORT = "report.json"


@dataclass
class FinetuneOutcome:
    before: EvalReport
    after: dict[str, EvalReport]  # by quantization
    versions: list[ModelVersion] = field(default_factory=list)
    promoted: ModelVersion | None = None
    gate: str = ""  # why the candidate was or wasn't promoted
    loss: float = 0.0
    losses: list[float] = field(default_factory=list)  # each training step's, for the picture
    picture: Path | None = None  # the loss curve and before/after scores, as a PNG
    picture_note: str = ""  # why there is no picture

    def as_dict(self) -> dict[str, Any]:
        return {
            "before": self.before.metrics(),
            "after": {kind: report.metrics() for kind, report in self.after.items()},
            "versions": [asdict(version) for version in self.versions],
            "promoted": self.promoted.version if self.promoted else None,
            "gate": self.gate,
            "train_loss": round(self.loss, 4),
            "losses": [round(loss, 4) for loss in self.losses],
            "picture": str(self.picture) if self.picture else None,
            "picture_note": self.picture_note,
        }


def run_finetune(
    settings: FinetuneSettings,
    *,
    base: Path | str,
    dataset: Path,
    out: Path,
    current: tuple[Path, int | None],
    registry: ModelRegistry,
    quantizations: Sequence[str] = ("Q8_0", "Q4_K_M"),
    name: str | None = None,
    promote_if_better: bool = False,
    fresh: bool = False,
    tools: Path,
    converter: Path | None = None,
    on_event: Callable[[Event], None] = lambda event: None,
) -> FinetuneOutcome:
    """`current` is the served GGUF and its registry version (None: the default model)."""
    manifest = load_manifest(dataset)
    held_out = read_examples(dataset / "eval.jsonl")
    tool = converter_dir(tools, converter)  # fetched before hours of training, not after
    name = name or out.name
    kinds = list(dict.fromkeys(quantizations))
    on_event({"stage": "load", "base": str(base)})
    loaded = load_base(base)
    config = TrainConfig.from_settings(settings, base, dataset / "train.jsonl", out)

    def step(done: int, steps: int, loss: float, eta: float) -> None:
        on_event({"stage": "train", "step": done, "steps": steps, "loss": loss, "eta": eta})

    result = train(config, resume=not fresh, on_step=step, base=loaded)
    on_event({"stage": "export", "quantizations": kinds})
    files = export(
        loaded,
        result.adapter_dir,
        out / "gguf",
        kinds,
        converter=tool,
        metadata={"ajuste.data_sha256": str(manifest["sha256"])},
        name=name,
    )
    del loaded  # the float32 copy of the base is no longer needed

    def evaluated(path: Path, label: str) -> EvalReport:
        def progress(done: int, total: int) -> None:
            on_event({"stage": "eval", "model": label, "done": done, "total": total})

        return evaluate_gguf(path, held_out, on_example=progress)

    by_kind = dict(zip(kinds, files, strict=True))
    before = evaluated(current[0], "current")
    after = {kind: evaluated(file, file.name) for kind, file in by_kind.items()}
    outcome = FinetuneOutcome(before, after, loss=result.loss, losses=result.losses)
    save_report({"current": before, **after}, out / REPORT)
    for kind, file in by_kind.items():
        version = registry.register(
            file,
            name=f"{name}-{kind}",
            quantization=kind,
            parent=current[1],
            metrics={**after[kind].metrics(), "train_loss": round(result.loss, 4)},
            note=f"fine-tune of {Path(str(base)).name} on data {str(manifest['sha256'])[:12]}",
        )
        shutil.copyfile(out / REPORT, Path(version.file).parent / REPORT)  # kept with the model
        outcome.versions.append(version)
    candidate = outcome.versions[0]
    score, baseline = after[candidate.quantization].score, before.score
    if not promote_if_better:
        outcome.gate = f"not promoted: activate it with `ajuste model use {candidate.version}`"
    elif score >= baseline:
        outcome.promoted = registry.use(candidate.version)
        outcome.gate = f"promoted: score {score:.2f} ≥ {baseline:.2f} of the current model"
    else:
        outcome.gate = f"kept the current model: score {score:.2f} < {baseline:.2f}"
    scores = {"current": before.score, **{kind: report.score for kind, report in after.items()}}
    try:
        outcome.picture = draw_history(result.losses, scores, out / PICTURE, title=name)
    except PictureUnavailable as error:  # the fine-tune stands; the report says why
        outcome.picture_note = str(error)
    (out / "outcome.json").write_text(json.dumps(outcome.as_dict(), indent=2))
    on_event({"stage": "done", **outcome.as_dict()})
    return outcome
