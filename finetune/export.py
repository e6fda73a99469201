"""Adapter → merged model → f16 GGUF → quantized GGUFs that the served llama.cpp loads.

The GGUF carries where it came from: general.* keys through the converter's `--metadata`
override, and `ajuste.*` keys (base, data hash, date, …) added to the f16 file afterwards,
which llama.cpp's quantizer copies into every quantization.
"""

import contextlib
import copy
import ctypes
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from finetune.base import LoadedBase, load_base, require_extra
from finetune.converter import SCRIPT
from finetune.train import TRAINING_FILE
from retrieval.errors import AjusteError

Value = str | int | float | bool
FTYPES = {"F16": "LLAMA_FTYPE_MOSTLY_F16", "Q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0"}
FTYPES["Q4_K_M"] = "LLAMA_FTYPE_MOSTLY_Q4_K_M"


class ExportError(AjusteError):
    """An adapter that can't be turned into a GGUF."""


def merge_adapter(base: Path | str | LoadedBase, adapter_dir: Path, out_dir: Path) -> Path:
    """Fold the LoRA into the base weights and save a Hugging Face folder the converter reads."""
    require_extra()
    from peft import PeftModel

    if not (adapter_dir / "adapter_config.json").is_file():
        raise ExportError(f"{adapter_dir} is not a LoRA adapter: pass a run's adapter/ folder.")
    # a loaded base may be shared with other runs: merge into a copy of it
    loaded = base if isinstance(base, LoadedBase) else load_base(base)
    model = copy.deepcopy(loaded.model) if isinstance(base, LoadedBase) else loaded.model
    merged: Any = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    merged.hf_quantizer = None  # a GGUF-loaded model refuses to save while it looks quantized
    if hasattr(merged.config, "quantization_config"):
        del merged.config.quantization_config
    merged.save_pretrained(out_dir)
    loaded.tokenizer.save_pretrained(out_dir)
    return out_dir


def convert_to_gguf(
    hf_dir: Path, out_file: Path, converter: Path, metadata: Mapping[str, Value]
) -> Path:
    """Run llama.cpp's converter (f16), then add the keys its `--metadata` can't carry."""
    general = {key: value for key, value in metadata.items() if key.startswith("general.")}
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_file.parent, prefix=".convert-") as temporary:
        work = Path(temporary)
        (work / "metadata.json").write_text(json.dumps(general))
        command = [sys.executable, str(converter / SCRIPT), str(hf_dir)]
        command += ["--outfile", str(work / "f16.gguf"), "--outtype", "f16"]
        command += ["--metadata", str(work / "metadata.json")]
        path = os.pathsep.join(filter(None, [str(converter / "gguf-py"), os.getenv("PYTHONPATH")]))
        environment = {**os.environ, "PYTHONPATH": path}
        done = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
        if done.returncode != 0 or not (work / "f16.gguf").is_file():
            tail = "\n".join(done.stderr.strip().splitlines()[-8:])
            raise ExportError(
                f"llama.cpp's converter failed on {hf_dir} (exit {done.returncode}):\n{tail}\n"
                "Check the model architecture is supported by this llama.cpp."
            )
        add_metadata(work / "f16.gguf", work / "final.gguf", metadata)
        os.replace(work / "final.gguf", out_file)
    return out_file


def add_metadata(source: Path, target: Path, values: Mapping[str, Value]) -> None:
    """Copy a GGUF with keys added or replaced (GGUF has no room to insert in place)."""
    import gguf

    kinds = {bool: gguf.GGUFValueType.BOOL, int: gguf.GGUFValueType.INT64}
    kinds |= {float: gguf.GGUFValueType.FLOAT64, str: gguf.GGUFValueType.STRING}
    reader = gguf.GGUFReader(source)
    architecture = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    writer = gguf.GGUFWriter(target, arch=architecture, endianess=reader.endianess)
    writer.data_alignment = reader.alignment
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == gguf.Keys.General.ARCHITECTURE:
            continue  # written by GGUFWriter itself
        if field.name not in values:
            kind = field.types[0]
            item = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(field.name, field.contents(), kind, sub_type=item)
    for key, value in values.items():
        writer.add_key_value(key, value, kinds[type(value)])
    for tensor in reader.tensors:
        shape, dtype, size = tensor.data.shape, tensor.data.dtype, tensor.data.nbytes
        writer.add_tensor_info(tensor.name, shape, dtype, size, tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in reader.tensors:
        writer.write_tensor_data(tensor.data, tensor_endianess=reader.endianess)
    writer.close()


def quantize(source: Path, target: Path, kind: str) -> Path:
    """Quantize with the served llama.cpp itself, which keeps every metadata key."""
    import llama_cpp

    if kind not in FTYPES:
        raise ExportError(f"Unknown quantization {kind!r}: use one of {', '.join(FTYPES)}.")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, FTYPES[kind])
    params.nthread = os.cpu_count() or 1
    with _native_output() as log:
        status = llama_cpp.llama_model_quantize(
            str(source).encode(), str(target).encode(), ctypes.byref(params)
        )
        log.seek(0)
        tail = "\n".join(log.read().decode(errors="replace").strip().splitlines()[-5:])
    if status != 0 or not target.is_file():
        raise ExportError(
            f"llama.cpp could not quantize {source} to {kind} (status {status}):\n{tail}\n"
            "Check the disk space and that the file is a complete GGUF."
        )
    return target


@contextlib.contextmanager
def _native_output() -> Iterator[Any]:
    """Catch what llama.cpp prints (a line per tensor) so it shows only when it failed."""
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile() as log:
        saved = os.dup(1), os.dup(2)
        try:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            yield log
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def training_metadata(adapter_dir: Path, name: str) -> dict[str, Value]:
    """What the GGUF should say about itself: name, base, data hash, date, run settings."""
    values: dict[str, Value] = {
        "general.name": name,
        "ajuste.created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    try:
        training = json.loads((adapter_dir / TRAINING_FILE).read_text())
    except (OSError, ValueError):
        return values  # an adapter trained elsewhere: nothing more is known
    for key in ("base", "data_sha256", "steps", "rank", "learning_rate", "seed"):
        if isinstance(training.get(key), str | int | float):
            values[f"ajuste.{key}"] = training[key]
    if "ajuste.base" in values:
        values["general.description"] = f"Fine-tune of {Path(str(values['ajuste.base'])).name}"
    return values


def export(
    base: Path | str | LoadedBase,
    adapter_dir: Path,
    out_dir: Path,
    quantizations: Iterable[str] = ("Q8_0", "Q4_K_M"),
    *,
    converter: Path,
    metadata: Mapping[str, Value] | None = None,
    name: str | None = None,
) -> list[Path]:
    """Merge, convert and quantize; files appear in out_dir only once all of them are done."""
    kinds = list(dict.fromkeys(quantizations))
    unknown = [kind for kind in kinds if kind not in FTYPES]
    if unknown or not kinds:
        raise ExportError(f"Unknown quantization {unknown}: use some of {', '.join(FTYPES)}.")
    name = name or out_dir.name
    values = {**training_metadata(adapter_dir, name), **(metadata or {})}
    out_dir.mkdir(parents=True, exist_ok=True)
    produced: list[Path] = []
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as temporary:
        work = Path(temporary)
        merge_adapter(base, adapter_dir, work / "merged")
        f16 = convert_to_gguf(work / "merged", work / "f16.gguf", converter, values)
        shutil.rmtree(work / "merged")  # a full-precision copy of the model: free it early
        finished = [quantize(f16, work / f"{name}.{kind}.gguf", kind) for kind in kinds]
        for file in finished:
            produced.append(out_dir / file.name)
            os.replace(file, produced[-1])
    return produced
