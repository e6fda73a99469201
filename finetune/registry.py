"""The model registry: every GGUF the team can serve, numbered, with its provenance.

`<data dir>/registry/registry.json` lists the versions (file, sha256, size, quantization,
metrics, parent, date) and which one is active; `history` remembers the order of activations
so `rollback` returns to the previous one. A running bot notices a new active version on its
next question and switches without a restart.
"""

import json
import os
import shutil
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from retrieval.errors import AjusteError
from retrieval.packaged import sha256_file


class RegistryError(AjusteError):
    """A registry operation that can't be done as asked."""


@dataclass
class ModelVersion:
    version: int
    name: str
    file: str  # absolute path of the GGUF inside the registry
    sha256: str
    size: int
    quantization: str
    created: str
    parent: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    note: str = ""
    provenance: dict[str, object] = field(default_factory=dict)  # base, data and adapter hashes


@dataclass
class _State:
    versions: list[ModelVersion] = field(default_factory=list)
    history: list[int] = field(default_factory=list)  # activations, latest last


class ModelRegistry:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / "registry.json"
        self._lock = threading.Lock()

    def _load(self) -> _State:
        try:
            data = json.loads(self.path.read_text())
            return _State(
                [ModelVersion(**v) for v in data.get("versions", [])],
                [int(v) for v in data.get("history", [])],
            )
        except FileNotFoundError:
            return _State()
        except (OSError, ValueError, TypeError) as error:
            raise RegistryError(
                f"{self.path} is unreadable ({error}): restore it from a backup"
            ) from error

    def _save(self, state: _State) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
        data = {"versions": [asdict(v) for v in state.versions], "history": state.history}
        temporary.write_text(json.dumps(data, indent=2))
        os.replace(temporary, self.path)

    def versions(self) -> list[ModelVersion]:
        return self._load().versions

    def active(self) -> ModelVersion | None:
        history = self._load().history
        return self.get(history[-1]) if history else None

    def get(self, version: int) -> ModelVersion:
        versions = self.versions()
        for candidate in versions:
            if candidate.version == version:
                return candidate
        known = ", ".join(str(v.version) for v in versions) or "none"
        raise RegistryError(f"No model version {version} (registered: {known}).")

    def register(
        self,
        file: Path,
        *,
        name: str | None = None,
        quantization: str = "unknown",
        parent: int | None = None,
        metrics: dict[str, float] | None = None,
        note: str = "",
        provenance: dict[str, object] | None = None,
    ) -> ModelVersion:
        """Copy a GGUF into the registry as the next version (not yet active)."""
        if not file.is_file():
            raise RegistryError(f"No such model file: {file}")
        with self._lock:
            state = self._load()
            number = max((v.version for v in state.versions), default=0) + 1
            folder = self.root / f"v{number}"
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / file.name
            shutil.copyfile(file, target)
            entry = ModelVersion(
                version=number,
                name=name or file.stem,
                file=str(target.resolve()),
                sha256=sha256_file(target),
                size=target.stat().st_size,
                quantization=quantization,
                created=datetime.now(UTC).isoformat(timespec="seconds"),
                parent=parent,
                metrics=metrics or {},
                note=note,
                provenance=provenance or {},
            )
            state.versions.append(entry)
            self._save(state)
        return entry

    def use(self, version: int) -> ModelVersion:
        """Make `version` the active model (the bot switches on its next question)."""
        chosen = self.get(version)
        path = Path(chosen.file)
        if not path.is_file() or path.stat().st_size != chosen.size:
            raise RegistryError(f"Model version {version}'s file {path} is missing or changed.")
        with self._lock:
            state = self._load()
            if not state.history or state.history[-1] != version:
                state.history.append(version)
            self._save(state)
        return chosen

    def rollback(self) -> ModelVersion | None:
        """Return to the version active before the current one; None means the default model."""
        with self._lock:
            state = self._load()
            if not state.history:
                raise RegistryError("Nothing to roll back: no registered version is active.")
            state.history.pop()
            self._save(state)
        return self.active()
