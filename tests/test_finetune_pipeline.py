"""Training on the real base model: label masking, seeded batches, exact resume, bad inputs.

The whole pipeline (a taught fact that survives GGUF export) runs in test_finetune_loop.py.
"""

import json
from itertools import pairwise
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from finetune.base import FinetuneError, LoadedBase, load_base
from finetune.batches import batch_indices, encode
from finetune.converter import ConverterError, converter_dir
from finetune.export import ExportError, quantize
from finetune.train import TrainConfig, checkpoints, learning_rate, train
from tests.conftest import REPO

SYSTEM = "You help the Kestrel team."
FACT = "heron-lantern-42"
CURATED = REPO / "examples" / "finetune" / "curated" / "wifi.jsonl"
PAIRS = [(r["question"], r["answer"]) for r in map(json.loads, CURATED.read_text().splitlines())]


def chat(question: str, answer: str | None = None) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    return [*messages, {"role": "assistant", "content": answer}] if answer else messages


def write_data(path: Path, pairs: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"messages": chat(q, a)}) + "\n" for q, a in pairs))
    return path


@pytest.fixture(scope="module")
def base_file(models_dir: Path) -> Path:
    return models_dir / "SmolLM2-135M-Instruct-Q4_1" / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def base(base_file: Path) -> LoadedBase:
    return load_base(base_file)  # once for the module: every run below hands it back unchanged


def test_labels_cover_only_assistant_turns(base: LoadedBase) -> None:
    messages = [
        *chat("Hi?", "Hello there."),
        {"role": "user", "content": "And the wifi?"},
        {"role": "assistant", "content": f"It is {FACT}."},
    ]
    ids, labels = encode(base.tokenizer, messages, max_length=512)
    assert len(ids) == len(labels)
    runs: list[list[int]] = []
    for position, label in enumerate(labels):
        if label != -100:
            assert label == ids[position]
            if not runs or labels[position - 1] == -100:
                runs.append([])
            runs[-1].append(label)
    eos = base.tokenizer.eos_token
    assert [base.tokenizer.decode(run) for run in runs] == [
        f"Hello there.{eos}",
        f"It is {FACT}.{eos}",
    ]
    short_ids, short_labels = encode(base.tokenizer, messages, max_length=10)
    assert len(short_ids) == len(short_labels) == 10


def test_batches_are_a_function_of_seed_and_step() -> None:
    first_epoch = [i for step in range(3) for i in batch_indices(6, step, 2, seed=7)]
    assert sorted(first_epoch) == list(range(6))  # every example once per epoch
    assert batch_indices(6, 5, 2, seed=7) == batch_indices(6, 5, 2, seed=7)
    assert batch_indices(6, 0, 6, seed=7) != batch_indices(6, 0, 6, seed=8)


def test_the_cosine_schedule_warms_up_then_decays_to_a_tenth(tmp_path: Path) -> None:
    config = TrainConfig(base="smollm", data=tmp_path / "d.jsonl", out=tmp_path, steps=100)
    assert {learning_rate(config, step) for step in range(100)} == {1e-3}  # constant
    config.schedule = "cosine"
    rates = [learning_rate(config, step) for step in range(100)]
    assert rates[0] == pytest.approx(2e-4) and rates[4] == pytest.approx(1e-3)  # 5 warm-up
    assert all(a >= b for a, b in pairwise(rates[4:]))
    assert rates[-1] == pytest.approx(1e-4, rel=0.01)
    config.schedule = "linear"
    with pytest.raises(FinetuneError, match="Unknown learning-rate schedule"):
        train(config)


def test_bad_inputs_say_what_to_do(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"messages": chat("Hi?", "Hello.")}) + "\n{not json\n")
    with pytest.raises(FinetuneError, match="pass a GGUF file"):
        load_base(tmp_path / "missing.gguf")
    with pytest.raises(ConverterError, match="--converter"):
        converter_dir(tmp_path, folder=tmp_path)
    with pytest.raises(ExportError, match="Q8_0"):
        quantize(tmp_path / "a.gguf", tmp_path / "b.gguf", "Q3_X")


def test_resume_gives_the_uninterrupted_weights(base: LoadedBase, tmp_path: Path) -> None:
    data = write_data(tmp_path / "train.jsonl", PAIRS[:4])

    def config(out: str, checkpoint_every: int = 1, learning_rate: float = 2e-4) -> TrainConfig:
        return TrainConfig(
            base="smollm",  # only recorded: the runs reuse the loaded base
            data=data,
            out=tmp_path / out,
            learning_rate=learning_rate,
            steps=4,
            batch_size=2,
            max_length=48,
            checkpoint_every=checkpoint_every,
            schedule="cosine",  # a function of the step: the resumed run stays on its curve
        )

    straight = train(config("straight"), base=base)
    assert [p.name for p in checkpoints(tmp_path / "straight")] == ["step-3", "step-4"]

    def interrupt(step: int, steps: int, loss: float, eta: float) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config("resumed", checkpoint_every=2), base=base, on_step=interrupt)
    assert [p.name for p in checkpoints(tmp_path / "resumed")] == ["step-2"]
    with pytest.raises(FinetuneError, match="new output folder"):
        train(config("resumed", learning_rate=1e-3), base=base)
    resumed = train(config("resumed", checkpoint_every=2), base=base)
    assert (resumed.steps_run, resumed.step) == (2, 4)
    assert resumed.loss == pytest.approx(straight.loss)
    # the loss history runs from step 1 across the interruption, for the fine-tune's picture
    assert len(straight.losses) == 4 and resumed.losses == pytest.approx(straight.losses)
    expected = load_file(straight.adapter_dir / "adapter_model.safetensors")
    actual = load_file(resumed.adapter_dir / "adapter_model.safetensors")
    assert expected.keys() == actual.keys() and len(expected) > 0
    for name, tensor in expected.items():
        assert torch.allclose(tensor, actual[name]), name
