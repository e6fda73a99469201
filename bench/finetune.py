"""LoRA step time of `finetune.train` against a bare peft loop on the same batches.

Ours includes what a bare loop skips (checkpoints every 10 steps, the loss read every step)
and what it lacks (logits only where a label follows). Both are timed from the end of their
first step, after a short warm-up run, so one-off setup counts for neither.
`python -m bench.finetune --base DIR --device cuda` runs it alone, e.g. on a GPU machine.
"""

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import REPO, Row

CURATED = REPO / "examples" / "finetune" / "curated" / "wifi.jsonl"  # the sample fact


def pairs() -> list[tuple[str, str]]:
    lines = CURATED.read_text(encoding="utf-8").splitlines()
    return [(record["question"], record["answer"]) for record in map(json.loads, lines)]


def chat(question: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def run(
    models_dir: Path, *, base: Path | None = None, device: str = "auto", steps: int = 20
) -> list[Row]:
    import torch
    from peft import get_peft_model

    from finetune.base import load_base, pick_device
    from finetune.batches import batch_indices, collate, encode
    from finetune.train import TrainConfig, train

    base = base or models_dir / "SmolLM2-135M-Instruct-Q4_1" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    root = Path(tempfile.mkdtemp(prefix="ajuste-bench-ft-"))
    try:
        data = root / "train.jsonl"
        examples = pairs()
        data.write_text("".join(json.dumps({"messages": chat(q, a)}) + "\n" for q, a in examples))
        loaded = load_base(base)
        warm = TrainConfig(base=base, data=data, out=root / "warm", steps=3, device=device)
        train(warm, base=loaded, resume=False)  # first kernels and allocations: for neither
        config = TrainConfig(base=base, data=data, out=root / "run", steps=steps, device=device)
        marks: list[float] = []  # after each step: setup and the first step count for neither
        train(config, base=loaded, resume=False, on_step=lambda *_: marks.append(time.monotonic()))
        ours = (marks[-1] - marks[0]) / (steps - 1)

        where = pick_device(device)
        rows = [encode(loaded.tokenizer, chat(q, a), config.max_length) for q, a in examples]
        torch.manual_seed(config.seed)
        model = get_peft_model(loaded.model, config.lora()).to(where)
        trained = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trained, lr=config.learning_rate)
        model.train()
        for step in range(steps):
            picked = batch_indices(len(rows), step, config.batch_size, config.seed)
            batch = collate([rows[i] for i in picked], loaded.pad_id, where)
            batch.pop("keep")  # ours only
            model(**batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step == 0:
                if where.type == "cuda":
                    torch.cuda.synchronize()
                started = time.monotonic()
        if where.type == "cuda":
            torch.cuda.synchronize()
        bare = (time.monotonic() - started) / (steps - 1)
        model.unload()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return [
        Row(
            f"LoRA step, batch 8, on {where.type} (s)",
            f"{ours:.3f}",
            f"{bare:.3f}",
            bare / ours,
            "≥ 0.85",
            bare / ours >= 0.85,
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.finetune", description=__doc__)
    parser.add_argument("--base", type=Path, help="GGUF file or Hugging Face model folder")
    parser.add_argument("--device", action="append", help="auto, cpu, cuda (repeatable)")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    for device in args.device or ["auto"]:
        for row in run(Path("data/models"), base=args.base, device=device, steps=args.steps):
            print(f"{row.name}: ours {row.ours}, bare peft {row.bare}, ratio {row.ratio:.3f}")


if __name__ == "__main__":
    main()
