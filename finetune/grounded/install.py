"""The grounded chat model on a new machine: base GGUF + committed adapter → checked Q8_0 GGUF.

Merging and quantizing take seconds and need neither torch nor a network. The result is
checked twice before it is put in place: llama.cpp must load it and answer a question from a
numbered source with that source's figure.
"""

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune.grounded import ADAPTER, FILE, NAME, PROVENANCE
from retrieval.context import SYSTEM_PROMPT
from retrieval.errors import ModelFilesError
from retrieval.packaged import sha256_file

QUANTIZATION = "Q8_0"
RECORD = ".ajuste-model.json"
_PROBE_SOURCES = (
    "Sources:\n\n[1] Parking at Halden Works\nParking at Halden Works › Permits\n"
    "A monthly parking permit costs EUR 35 and is sold at the reception desk on floor 2.\n\n"
    "[2] Visitors\nVisitors › Badges\nVisitors sign in at the front desk and wear a green badge."
    "\n\nQuestion: How much is a parking permit?"
)
_PROBE_ANSWER = "35"


@dataclass(frozen=True)
class GroundedModel:
    file: Path
    provenance: dict[str, Any]  # base, data and adapter hashes, training run, metrics


def shipped(adapter: Path = ADAPTER) -> bool:
    return (adapter / "adapter_model.safetensors").is_file()


def _provenance(base: Path, adapter: Path) -> dict[str, Any]:
    try:
        trained = json.loads((adapter / PROVENANCE).read_text())
    except (OSError, ValueError):
        trained = {}
    return {
        **trained,
        "base_file": base.name,
        "base_sha256": sha256_file(base),
        "adapter_sha256": sha256_file(adapter / "adapter_model.safetensors"),
    }


def _current(folder: Path, provenance: dict[str, Any]) -> GroundedModel | None:
    """The model in place when it was built from this base and adapter and is intact."""
    try:
        record = json.loads((folder / RECORD).read_text())
    except (OSError, ValueError):
        return None
    file = folder / FILE
    same = all(record.get(key) == provenance[key] for key in ("base_sha256", "adapter_sha256"))
    if same and file.is_file() and sha256_file(file) == record.get("sha256"):
        return GroundedModel(file, record)
    return None


def recorded(models_dir: Path) -> GroundedModel | None:
    """The model in place as its record describes it, without hashing (`install` checks)."""
    folder = models_dir / NAME
    try:
        record = json.loads((folder / RECORD).read_text())
    except (OSError, ValueError):
        return None
    return GroundedModel(folder / FILE, record) if (folder / FILE).is_file() else None


def check_answers(file: Path) -> None:
    """llama.cpp loads the file and answers a probe question from its source's figure."""
    from llama_cpp import Llama

    try:
        llama = Llama(str(file), n_ctx=512, n_threads=os.cpu_count() or 1, verbose=False)
    except (ValueError, RuntimeError) as error:
        raise ModelFilesError(f"llama.cpp cannot load the merged model {file}: {error}") from error
    messages: Any = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": _PROBE_SOURCES},
    ]
    reply = llama.create_chat_completion(messages, max_tokens=40, temperature=0.0)
    text = str(reply["choices"][0]["message"]["content"])  # type: ignore[index]
    if _PROBE_ANSWER not in text:
        raise ModelFilesError(
            f"The merged model failed its check (answered {text[:80]!r}): the adapter in "
            f"{ADAPTER} may not match the base model. Nothing was installed."
        )


def install(base: Path, models_dir: Path, *, adapter: Path = ADAPTER) -> tuple[GroundedModel, bool]:
    """Build `<models dir>/ajuste-grounded/` unless it is in place; (model, built now)."""
    from finetune.export import quantize
    from finetune.grounded.merge import merge_into_gguf

    folder = models_dir / NAME
    provenance = _provenance(base, adapter)
    current = _current(folder, provenance)
    if current is not None:
        return current, False
    staging = Path(tempfile.mkdtemp(prefix=f".{NAME}-", dir=models_dir))
    try:
        metadata = {
            "ajuste.base": base.name,
            "ajuste.adapter_sha256": provenance["adapter_sha256"],
            "ajuste.data_sha256": str(provenance.get("data_sha256", "")),
        }
        merged = merge_into_gguf(base, adapter, staging / "merged.f16.gguf", metadata=metadata)
        quantize(merged, staging / FILE, QUANTIZATION)
        merged.unlink()
        check_answers(staging / FILE)
        record = {**provenance, "sha256": sha256_file(staging / FILE), "quantization": QUANTIZATION}
        (staging / RECORD).write_text(json.dumps(record, indent=2))
        staging.chmod(0o755)
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)  # one rename: never a half-built model folder in use
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return GroundedModel(folder / FILE, record), True
