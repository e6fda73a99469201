"""The model registry and hot swapping in the running engine, with the real GGUF."""

import json
import shutil
import threading
from pathlib import Path

import pytest

from bot.engine.llm import SMOLLM2, GenerationStats, load_engine
from bot.settings import LlmSettings
from finetune.registry import ModelRegistry, RegistryError

QUESTION = [{"role": "user", "content": "Say hello."}]


def gguf(models_dir: Path) -> Path:
    return SMOLLM2.folder(models_dir) / SMOLLM2.files[0].name


def test_versions_are_numbered_activated_and_rolled_back(tmp_path: Path):
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 60)
    registry = ModelRegistry(tmp_path / "registry")
    assert registry.active() is None and registry.versions() == []
    first = registry.register(model, quantization="Q4_1", metrics={"contains": 0.12})
    second = registry.register(model, name="tuned", parent=1)
    assert (first.version, second.version, second.parent) == (1, 2, 1)
    assert Path(second.file).parent.name == "v2" and second.size == 64
    registry.use(1)
    registry.use(2)
    assert registry.active().version == 2  # type: ignore[union-attr]
    assert registry.rollback().version == 1  # type: ignore[union-attr]
    assert registry.rollback() is None  # back to the default model
    with pytest.raises(RegistryError, match="Nothing to roll back"):
        registry.rollback()
    with pytest.raises(RegistryError, match="No model version 7 \\(registered: 1, 2\\)"):
        registry.use(7)
    reopened = ModelRegistry(tmp_path / "registry")
    assert [v.metrics for v in reopened.versions()] == [{"contains": 0.12}, {}]
    Path(first.file).write_bytes(b"GGUF")  # changed behind the registry's back
    with pytest.raises(RegistryError, match="missing or changed"):
        reopened.use(1)


def test_the_engine_follows_the_registry_and_keeps_in_flight_answers(
    tmp_path: Path, models_dir: Path, default_model: Path
):
    registry = ModelRegistry(tmp_path / "registry")
    engine = load_engine(LlmSettings(), models_dir, registry)
    assert engine.name == default_model.stem
    copy = tmp_path / "smol-copy.gguf"
    shutil.copyfile(gguf(models_dir), copy)
    registry.use(registry.register(copy, name="smol-copy", quantization="Q4_1").version)

    in_flight = GenerationStats()
    stream = engine.stream(QUESTION, max_tokens=12, stats=in_flight)
    first_piece = next(stream)  # generating on the default model now
    swapped = threading.Thread(target=engine.follow)
    swapped.start()
    swapped.join(30)  # the swap does not wait for the answer in flight
    assert engine.name == "v1 smol-copy"
    rest = "".join(stream)
    assert first_piece and in_flight.model == default_model.stem
    assert rest is not None and in_flight.finished_at is not None

    after = GenerationStats()
    assert "".join(engine.stream(QUESTION, max_tokens=8, stats=after))
    assert after.model == "v1 smol-copy"

    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 64)
    registry.use(registry.register(broken, name="broken").version)
    engine.follow()  # refused: the old model keeps serving
    assert engine.name == "v1 smol-copy"
    assert "".join(engine.stream(QUESTION, max_tokens=4))

    registry.rollback()
    registry.rollback()
    engine.follow()
    assert engine.name == default_model.stem  # rolled back past v1: the default


def test_model_commands(tmp_path: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]):
    from bot.cli import main

    data = tmp_path / "data"
    data.mkdir()
    (data / "models").symlink_to(models_dir)
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 64)
    assert (
        main(
            [
                "--data-dir",
                str(data),
                "model",
                "register",
                str(gguf(models_dir)),
                "--quantization",
                "Q4_1",
            ]
        )
        == 0
    )
    assert main(["--data-dir", str(data), "model", "register", str(broken)]) == 0
    assert main(["--data-dir", str(data), "model", "use", "1"]) == 0
    assert main(["--data-dir", str(data), "model", "use", "2"]) == 1  # refused: won't load
    capsys.readouterr()
    assert main(["--data-dir", str(data), "model", "list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["active"] == 1 and [v["version"] for v in listing["versions"]] == [1, 2]
